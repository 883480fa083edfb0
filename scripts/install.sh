#!/bin/sh
# Installs quantd: the binary (Swift runtime linked statically, so no toolchain is needed where
# it runs), the systemd unit, sysusers.d and tmpfiles.d entries, the configuration and the
# logrotate file.
#
#   scripts/install.sh                          build (release, --static-swift-stdlib) and install
#   DESTDIR=/tmp/stage PREFIX=/usr scripts/install.sh   stage for a package: no change to this host
#   QUANTD_BINARY=path/to/quantd scripts/install.sh     install a binary built before
#
# PREFIX (default /usr/local) holds bin/quantd and lib/{systemd/system,sysusers.d,tmpfiles.d};
# configuration goes to /etc/quantd and /etc/logrotate.d. An existing /etc/quantd/quantd.toml is
# kept (the new one is written beside it as quantd.toml.new). Without DESTDIR, on a host running
# systemd, the user and folders are created (systemd-sysusers, systemd-tmpfiles) and systemd is
# reloaded; then: systemctl enable --now quantd
set -eu

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
root=$(cd "$(dirname "$0")/.." && pwd)

binary=${QUANTD_BINARY:-}
if [ -z "$binary" ]; then
    (cd "$root" && swift build -c release --static-swift-stdlib --product quantd)
    binary="$root/.build/release/quantd"
fi
[ -x "$binary" ] || { echo "install.sh: no executable at $binary" >&2; exit 1; }

unitdir="$PREFIX/lib/systemd/system"
install -d "$DESTDIR$PREFIX/bin" "$DESTDIR$unitdir" "$DESTDIR$PREFIX/lib/sysusers.d" \
    "$DESTDIR$PREFIX/lib/tmpfiles.d" "$DESTDIR/etc/quantd" "$DESTDIR/etc/logrotate.d"
install -m 0755 "$binary" "$DESTDIR$PREFIX/bin/quantd"
sed "s|/usr/local/bin/quantd|$PREFIX/bin/quantd|g" "$root/systemd/quantd.service" > "$DESTDIR$unitdir/quantd.service"
chmod 0644 "$DESTDIR$unitdir/quantd.service"
sed "s|/usr/local/bin/quantd|$PREFIX/bin/quantd|g" "$root/systemd/quantd@.service" > "$DESTDIR$unitdir/quantd@.service"
chmod 0644 "$DESTDIR$unitdir/quantd@.service"
install -m 0644 "$root/systemd/quantd.sysusers" "$DESTDIR$PREFIX/lib/sysusers.d/quantd.conf"
install -m 0644 "$root/systemd/quantd.tmpfiles" "$DESTDIR$PREFIX/lib/tmpfiles.d/quantd.conf"
install -m 0644 "$root/systemd/quantd.logrotate" "$DESTDIR/etc/logrotate.d/quantd"
if [ -e "$DESTDIR/etc/quantd/quantd.toml" ]; then
    install -m 0644 "$root/config/quantd.toml" "$DESTDIR/etc/quantd/quantd.toml.new"
    echo "install.sh: kept /etc/quantd/quantd.toml; the shipped one is quantd.toml.new"
else
    install -m 0644 "$root/config/quantd.toml" "$DESTDIR/etc/quantd/quantd.toml"
fi

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemd-sysusers "$PREFIX/lib/sysusers.d/quantd.conf"
    systemd-tmpfiles --create "$PREFIX/lib/tmpfiles.d/quantd.conf"
    systemctl daemon-reload
    echo "install.sh: installed; start it with: systemctl enable --now quantd"
else
    echo "install.sh: staged under ${DESTDIR:-/}"
fi
