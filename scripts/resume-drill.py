#!/usr/bin/env python3
"""The resume drill behind the README's figure: a daemon SIGKILLed at a fraction of a sharded job, restarted, and
timed to its commit, against the same job uninterrupted; the two outputs compared byte for byte.

    scripts/resume-drill.py QUANTD INPUT_FOLDER [--at 0.7] [--threads 0] [--rounds 1] [--whole-runs 3] [--timeline]

INPUT_FOLDER (e.g. from scripts/make-sharded.py /tmp/sh4 --gib 2.1 --shards 4) is dropped into each spool as hard
links, so nothing is copied. Whole job: from the daemon's start to its `committed` line, uninterrupted (the median of
--whole-runs runs; the first is the reference output). After the kill: from the second daemon's start to its
`committed` line. --timeline prints the restarted daemon's events, timed from its start. Each round prints the restarted
daemon's CPU (user + system) up to its commit. Exits 1 when the outputs differ."""
import argparse, json, os, shutil, signal, subprocess, sys, tempfile, time
from datetime import datetime

from outputs import contents


def warm(folder):
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            while f.read(8 << 20):
                pass


def cpu_seconds(pid):
    """User and system CPU of process `pid` so far (it still runs: the daemon idles once it committed)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def logged(log, event):
    if not os.path.exists(log):
        return False
    with open(log) as f:
        return any(json.loads(line).get("event") == event for line in f if line.strip())


def wait_for(log, event, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(log):
            with open(log) as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("event") == event:
                        return entry, time.monotonic()
        if proc.poll() is not None:
            sys.exit(f"quantd exited ({proc.returncode}) before '{event}'; log: {log}")
        time.sleep(0.01)
    sys.exit(f"no '{event}' within {timeout} s; log: {log}")


def timeline(log, started):
    """Each event of `log` at its time from `started` (monotonic; the log's `time` is the wall clock)."""
    offset = time.time() - time.monotonic()
    with open(log) as f:
        for line in f:
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp() - offset - started
            extra = {k: entry[k] for k in ("seconds", "kept", "files", "resumed_within") if k in entry}
            print(f"    {at:7.3f} s  {entry.get('event')}  {extra if extra else ''}")


def start(quantd, spool, log, threads):
    return subprocess.Popen([quantd, "run", "--spool", spool, "--settle-seconds", "0", "--threads", str(threads),
                             "--set", "instance=drill", "--log-file", log],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def drop(source, spool):
    incoming = os.path.join(spool, "incoming")
    os.makedirs(incoming, exist_ok=True)
    temp = os.path.join(incoming, ".model.tmp")
    shutil.copytree(source, temp, copy_function=os.link)
    os.rename(temp, os.path.join(incoming, "model"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("quantd")
    p.add_argument("input")
    p.add_argument("--at", type=float, default=0.7)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--whole-runs", type=int, default=3, help="uninterrupted runs; their median is the whole job")
    p.add_argument("--timeline", action="store_true", help="print the restarted daemon's log events, timed from its start")
    a = p.parse_args()
    warm(a.input)  # the page cache hot for both runs, so the kill lands at the same point of the work
    work = tempfile.mkdtemp(prefix="quantd-drill-", dir=os.path.dirname(os.path.abspath(a.input)))
    try:
        wholes = []
        for w in range(a.whole_runs):
            spool = os.path.join(work, f"whole{w}")
            t0 = time.monotonic()
            proc = start(a.quantd, spool, spool + ".log", a.threads)
            drop(a.input, spool)
            committed, t1 = wait_for(spool + ".log", "committed", proc)
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            wholes.append(t1 - t0)
            if w == 0:
                reference = contents(os.path.join(spool, "out", "model"))
            shutil.rmtree(spool, ignore_errors=True)
        whole = sorted(wholes)[len(wholes) // 2]
        print(f"whole job: {whole:.2f} s from start to committed (median of {len(wholes)}: "
              f"{', '.join(f'{t:.2f}' for t in wholes)})")
        same = True
        for r in range(a.rounds):
            spool = os.path.join(work, f"killed{r}")
            t0 = time.monotonic()
            proc = start(a.quantd, spool, spool + ".log", a.threads)
            drop(a.input, spool)
            time.sleep(max(0.0, a.at * whole - (time.monotonic() - t0)))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if logged(spool + ".log", "committed"):
                print(f"round {r}: the job committed before the kill at {a.at:.0%}: nothing to resume")
                continue
            t2 = time.monotonic()
            proc = start(a.quantd, spool, spool + ".restart.log", a.threads)
            resumed, _ = wait_for(spool + ".restart.log", "resumed", proc)
            _, t3 = wait_for(spool + ".restart.log", "committed", proc)
            cpu = cpu_seconds(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            if a.timeline:
                timeline(spool + ".restart.log", t2)
            output = contents(os.path.join(spool, "out", "model"))
            identical = output == reference
            same = same and identical
            print(f"killed at {a.at:.0%} ({a.at * whole:.2f} s): restart to committed {t3 - t2:.2f} s = "
                  f"{(t3 - t2) / whole:.2f} of the whole job (CPU {cpu:.2f} s); kept {resumed['kept']} of {resumed['files']} files "
                  f"({resumed['kept_files'] or '-'}); within: {resumed.get('resumed_within', '-')}; output identical: {'yes' if identical else 'NO'}")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
