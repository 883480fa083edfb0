#!/usr/bin/env python3
"""Cold page cache against hot, for `quantd quantize` on one input (a file or a folder of shards).

    scripts/cold-drill.py QUANTD INPUT [--rounds N] [--threads T]

Each round, interleaved: the input read cold (`cat`, after its pages are dropped), the job hot (after a warm-up
read), the job cold with the default reads (O_DIRECT for pages not in the cache), and the job cold with
QUANTD_READS=buffered (every read through the page cache, as before). The input's pages are dropped with
posix_fadvise(DONTNEED) after a sync, file by file: no root needed, and nothing else on the machine loses its
cache; `fincore` (util-linux), where present, checks that they are gone. Prints each figure's best and the
ratio the issue asks for, cold / max(read cold, hot), and checks that every output equals the hot one.
"""
import argparse, hashlib, os, resource, shutil, subprocess, sys, tempfile, time

from outputs import contents


def files_of(path):
    if os.path.isdir(path):
        return sorted(os.path.join(path, n) for n in os.listdir(path) if not n.startswith("."))
    return [path]


def drop(paths):
    os.sync()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    if shutil.which("fincore"):
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES"] + paths,
                             capture_output=True, text=True).stdout.split()
        resident = sum(int(x) for x in out if x.isdigit())
        if resident > 16 << 20:
            print(f"cold-drill: {resident} bytes of the input are still cached after the drop", file=sys.stderr)


def warm(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 << 20):
                pass


cpu = {}


def timed(cmd, env=None, name=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"cold-drill: {' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if name:
        cpu.setdefault(name, []).append((after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))
    return wall


def digest(folder):
    h = hashlib.sha256()
    for name, data in contents(folder).items():
        h.update(name.encode() + b"\0" + data)
    return h.hexdigest()


def main():
    a = argparse.ArgumentParser()
    a.add_argument("quantd")
    a.add_argument("input")
    a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--threads", type=int, default=os.cpu_count())
    a.add_argument("--scratch", default=None, help="folder for the outputs (default: beside the input)")
    o = a.parse_args()
    paths = files_of(o.input)
    scratch = tempfile.mkdtemp(prefix=".cold-drill-", dir=o.scratch or os.path.dirname(os.path.abspath(o.input)))
    figures = {"read cold (cat)": [], "job hot": [], "job cold": [], "job cold, buffered reads": []}
    reference = None
    try:
        for r in range(o.rounds):
            drop(paths)
            figures["read cold (cat)"].append(timed(["sh", "-c", 'cat "$@" > /dev/null', "cat"] + paths))
            for name, cold, reads in [("job hot", False, None), ("job cold", True, None),
                                      ("job cold, buffered reads", True, "buffered")]:
                out = os.path.join(scratch, "out")
                shutil.rmtree(out, ignore_errors=True)
                env = dict(os.environ)
                env.pop("QUANTD_READS", None)
                if reads:
                    env["QUANTD_READS"] = reads
                drop(paths) if cold else warm(paths)
                cmd = [o.quantd, "quantize", "--no-resume", "--threads", str(o.threads), o.input, "-o", out]
                figures[name].append(timed(cmd, env=env, name=name))
                d = digest(out)
                if reference is None:
                    reference = d
                elif d != reference:
                    sys.exit(f"cold-drill: the output of '{name}' differs from the first one")
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in figures.items()), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    best = {k: min(v) for k, v in figures.items()}
    size = sum(os.path.getsize(p) for p in paths)
    print(f"input: {o.input}, {size / 1e9:.2f} GB in {len(paths)} files, {o.threads} threads, best of {o.rounds}")
    for k, v in best.items():
        c = cpu.get(k)
        used = (f", CPU user {min(u for u, _ in c):.2f} s, system {min(s for _, s in c):.2f} s (least of the rounds)"
                if c else "")
        print(f"  {k:28} {v:6.2f} s  {size / v / 1e9:5.2f} GB/s{used}")
    floor = max(best["read cold (cat)"], best["job hot"])
    print(f"  cold / max(read cold, hot): {best['job cold'] / floor:.3f} (buffered reads: "
          f"{best['job cold, buffered reads'] / floor:.3f}); outputs identical")


if __name__ == "__main__":
    main()
