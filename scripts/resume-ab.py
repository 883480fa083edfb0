#!/usr/bin/env python3
"""A/B of two quantd builds' restarts from the same interrupted job, so that where the kill lands (which the
resume drill cannot hold still: one checkpoint more or less moves its ratio by 0.05-0.1) is the same for both.

    scripts/resume-ab.py OLD_QUANTD NEW_QUANTD INPUT_FOLDER [--at 0.7] [--rounds 5] [--threads 0]

NEW's daemon is SIGKILLed at --at of its whole job (the median of three) over INPUT_FOLDER (hard links, as in
scripts/resume-drill.py), and the spool it leaves is kept. Each round then restores that spool once per build, in
turns (the sources hard-linked, everything else copied and dropped from the page cache, as the O_DIRECT outputs
were), restarts the daemon on it and times its start to its `committed` line, with the CPU it used by then; a
whole job of each build is timed in the same turns. Every restarted output is compared byte for byte with an
uninterrupted one. Both builds must read the journal NEW writes (same quantd version and options). Exits 1 when
an output differs."""
import argparse, json, os, shutil, signal, statistics, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outputs import contents
from importlib import import_module

drill = import_module("resume-drill")


def run(quantd, spool, log, threads, drop_from=None):
    """A daemon on `spool` until its `committed` line: (seconds, CPU seconds). With `drop_from`, drops that
    folder in once it runs (a whole job)."""
    t0 = time.monotonic()
    proc = drill.start(quantd, spool, log, threads)
    if drop_from:
        drill.drop(drop_from, spool)
    _, t1 = drill.wait_for(log, "committed", proc)
    cpu = drill.cpu_seconds(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    return t1 - t0, cpu


def restore(snapshot, spool):
    """`snapshot` again at `spool`: the sources (under active/) hard-linked, the rest copied, fsynced and dropped
    from the page cache."""
    for root, dirs, files in os.walk(snapshot):
        rel = os.path.relpath(root, snapshot)
        target = os.path.join(spool, rel)
        os.makedirs(target, exist_ok=True)
        shutil.copystat(root, target)
        for name in files:
            src, dst = os.path.join(root, name), os.path.join(target, name)
            if rel.split(os.sep)[0] == "active" and name.endswith(".safetensors"):
                os.link(src, dst)
                continue
            shutil.copy2(src, dst)
            fd = os.open(dst, os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("input")
    p.add_argument("--at", type=float, default=0.7)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    drill.warm(a.input)
    work = tempfile.mkdtemp(prefix="quantd-resume-ab-", dir=os.path.dirname(os.path.abspath(a.input)))
    try:
        wholes = []
        for w in range(3):
            spool = os.path.join(work, f"whole{w}")
            wholes.append(run(a.new, spool, spool + ".log", a.threads, drop_from=a.input)[0])
            if w == 0:
                reference = contents(os.path.join(spool, "out", "model"))
            shutil.rmtree(spool)
        whole = statistics.median(wholes)
        snapshot = os.path.join(work, "snapshot")
        proc = drill.start(a.new, snapshot, os.path.join(work, "killed.log"), a.threads)
        t0 = time.monotonic()
        drill.drop(a.input, snapshot)
        time.sleep(max(0.0, a.at * whole - (time.monotonic() - t0)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if drill.logged(os.path.join(work, "killed.log"), "committed"):
            sys.exit(f"the job committed before the kill at {a.at:.0%}: nothing to resume")
        figures = {"old": [], "new": []}
        resumed = None
        same = True
        for r in range(a.rounds):
            for which in ("old", "new"):
                quantd = getattr(a, which)
                spool = os.path.join(work, f"{which}{r}")
                restore(snapshot, spool)
                seconds, cpu = run(quantd, spool, spool + ".log", a.threads)
                with open(spool + ".log") as f:
                    events = [json.loads(line) for line in f if line.strip()]
                resumed = next(e for e in events if e.get("event") == "resumed")
                same = same and contents(os.path.join(spool, "out", "model")) == reference
                shutil.rmtree(spool)
                whole_spool = os.path.join(work, f"{which}{r}-whole")
                whole_seconds, _ = run(quantd, whole_spool, whole_spool + ".log", a.threads, drop_from=a.input)
                shutil.rmtree(whole_spool)
                figures[which].append((seconds, cpu, whole_seconds))
        print(f"killed NEW at {a.at:.0%} of its whole job ({a.at * whole:.2f} s); each restart kept "
              f"{resumed['kept']} of {resumed['files']} files; within: {resumed.get('resumed_within', '-')}")
        for which, rows in figures.items():
            med = lambda k: statistics.median(row[k] for row in rows)
            print(f"{which}: restart to committed median {med(0):.3f} s (best {min(r[0] for r in rows):.3f}), "
                  f"CPU {med(1):.2f} s; whole job median {med(2):.3f} s; restart / whole {med(0) / med(2):.3f}")
        old, new = (statistics.median(r[0] for r in figures[k]) for k in ("old", "new"))
        print(f"new / old restart: {new / old:.3f}; outputs identical to an uninterrupted run: {'yes' if same else 'NO'}")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
