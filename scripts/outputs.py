"""What the drills compare of an output folder (imported by scripts/resume-drill.py and scripts/cold-drill.py)."""
import json, os


def contents(folder):
    """Every file of the folder by name, the manifest less the times it records (when the run started and ended,
    how long, how much it read around the page cache: figures of the run, not of the output)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        if name == "manifest.json":
            m = json.loads(data)
            for key in ("started_at", "finished_at", "timings"):
                m.pop(key, None)
            data = json.dumps(m, sort_keys=True).encode()
        out[name] = data
    return out
