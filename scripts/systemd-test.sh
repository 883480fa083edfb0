#!/bin/bash
# Runs quantd under a real systemd: builds a Debian root with debootstrap (cached), installs
# quantd into it with scripts/install.sh (DESTDIR), boots it with systemd-nspawn, and inside it
# `systemctl enable --now quantd`, drops a checkpoint, waits for the commit, reloads, stops.
# Checks: the unit was active with no restart, the output committed, the stop clean.
#
#   scripts/systemd-test.sh --checkpoint FILE [--binary QUANTD]
#
# Root only: exits 77 (skipped) otherwise. Without --binary it builds the release binary with
# --static-swift-stdlib (the container has no Swift toolchain). The Debian root is cached in
# $QUANTD_NSPAWN_CACHE (default /var/tmp/quantd-nspawn-base); the mirror is the Debian URI in
# /etc/apt/sources.list.d (or $QUANTD_DEBIAN_MIRROR).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
checkpoint=""
binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --checkpoint) checkpoint=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        *) echo "usage: $0 --checkpoint FILE [--binary QUANTD]" >&2; exit 64 ;;
    esac
done
[ -n "$checkpoint" ] && [ -f "$checkpoint" ] || { echo "systemd-test: --checkpoint FILE is required" >&2; exit 64; }
if [ "$(id -u)" != 0 ]; then
    echo "systemd-test: skipped: needs root (debootstrap, systemd-nspawn)"
    exit 77
fi
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
    apt-get install -y -qq debootstrap systemd-container >/dev/null
fi

if [ -z "$binary" ]; then
    (cd "$root" && swift build -c release --static-swift-stdlib --product quantd)
    binary="$root/.build/release/quantd"
fi
if ldd "$binary" | grep -q libswift; then
    echo "systemd-test: FAIL: $binary links the Swift runtime dynamically:" >&2
    ldd "$binary" >&2
    exit 1
fi

cache=${QUANTD_NSPAWN_CACHE:-/var/tmp/quantd-nspawn-base}
# procps: /bin/kill for ExecReload, as on any non-minimal Debian.
packages=systemd,systemd-sysv,dbus,libzstd1,procps
if [ "$(cat "$cache/.complete" 2>/dev/null)" != "$packages" ]; then
    mirror=${QUANTD_DEBIAN_MIRROR:-$(grep -hoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
        /etc/apt/sources.list.d/* /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}' || true)}
    [ -n "$mirror" ] || { echo "systemd-test: no Debian mirror found in /etc/apt" >&2; exit 1; }
    echo "systemd-test: debootstrap bookworm from $mirror into $cache"
    rm -rf "$cache.tmp"
    debootstrap --variant=minbase --include="$packages" bookworm "$cache.tmp" "$mirror" \
        > /var/tmp/quantd-debootstrap.log 2>&1 || { tail -20 /var/tmp/quantd-debootstrap.log >&2; exit 1; }
    echo "$packages" > "$cache.tmp/.complete"
    rm -rf "$cache"
    mv "$cache.tmp" "$cache"
fi

work=$(mktemp -d /var/tmp/quantd-nspawn.XXXXXX)
machine="$work/root"
cp -a "$cache" "$machine"
DESTDIR="$machine" QUANTD_BINARY="$binary" "$root/scripts/install.sh" >/dev/null
cp "$checkpoint" "$machine/root/check.safetensors"

cat > "$machine/usr/local/sbin/quantd-check" <<'CHECK'
#!/bin/sh
# Runs inside the container at boot; what it sees goes to /root/quantd-check.out.
exec > /root/quantd-check.out 2>&1
systemctl enable --now quantd.service
echo "ENABLE-STATUS: $?"
for i in $(seq 1 60); do systemctl is-active -q quantd.service && break; sleep 0.5; done
spool=/var/spool/quantd
cp /root/check.safetensors "$spool/incoming/.check.tmp" && mv "$spool/incoming/.check.tmp" "$spool/incoming/check.safetensors"
for i in $(seq 1 240); do [ -e "$spool/out/check/manifest.json" ] && break; sleep 0.5; done
ls -l "$spool/out/check" "$spool/done" "$spool/failed"
systemctl reload quantd.service
sleep 1
systemctl show -p ActiveState -p NRestarts quantd.service | sed 's/^/BEFORE-STOP: /'
systemctl stop quantd.service
systemctl show -p ActiveState -p Result -p ExecMainStatus quantd.service | sed 's/^/AFTER-STOP: /'
echo "METRICS-BEGIN"
cat /var/lib/quantd/quantd.prom
echo "METRICS-END"
echo "USER: $(id quantd)"
echo "LOG-BEGIN"
cat /var/log/quantd/quantd.log
echo "LOG-END"
journalctl -u quantd.service --no-pager | tail -40
echo "CHECK-DONE"
systemctl poweroff
CHECK
chmod 0755 "$machine/usr/local/sbin/quantd-check"
cat > "$machine/etc/systemd/system/quantd-check.service" <<'UNIT'
[Unit]
Description=quantd systemd test
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/quantd-check

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$machine/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/quantd-check.service "$machine/etc/systemd/system/multi-user.target.wants/"

mkdir -p /run/systemd/nspawn
mountpoint -q /run/systemd/nspawn || mount -t tmpfs tmpfs /run/systemd/nspawn
echo "systemd-test: booting $machine"
timeout 300 systemd-nspawn -q -D "$machine" -b --register=no --keep-unit > "$work/console.log" 2>&1 || true

out="$machine/root/quantd-check.out"
fail() {
    echo "systemd-test: FAIL: $1" >&2
    [ -f "$out" ] && cat "$out" >&2
    tail -30 "$work/console.log" >&2
    echo "systemd-test: kept $work for inspection" >&2
    exit 1
}
[ -f "$out" ] && grep -q CHECK-DONE "$out" || fail "the check did not finish"
grep -q '^ENABLE-STATUS: 0' "$out" || fail "systemctl enable --now failed"
grep -qx 'BEFORE-STOP: ActiveState=active' "$out" || fail "not active before the stop"
grep -qx 'BEFORE-STOP: NRestarts=0' "$out" || fail "restarted before the stop"
grep -qx 'AFTER-STOP: ActiveState=inactive' "$out" || fail "still active after the stop"
grep -qx 'AFTER-STOP: Result=success' "$out" || fail "the stop was not clean"
grep -qx 'AFTER-STOP: ExecMainStatus=0' "$out" || fail "quantd did not exit 0"
grep -q '^quantd_jobs_committed_total{instance="[^"]*"} 1$' "$out" || fail "no metrics file with the commit"
grep -q '^USER: uid=[0-9]*(quantd)' "$out" || fail "no quantd user from sysusers.d"
sed -n '/^LOG-BEGIN$/,/^LOG-END$/p' "$out" | grep -q '"event":"committed","job":"check.safetensors"' \
    || fail "the checkpoint was not committed"
sed -n '/^LOG-BEGIN$/,/^LOG-END$/p' "$out" | grep -q '"event":"reloaded"' || fail "no reload in the log"
sed -n '/^LOG-BEGIN$/,/^LOG-END$/p' "$out" | grep -q '"event":"stopped"' || fail "no clean stop in the log"
echo "systemd-test: PASS"
sed -n '/^LOG-BEGIN$/,/^LOG-END$/p' "$out"
rm -rf "$work"
