"""How long the fleet report's reader takes on one host: N log records (default 1 million).

Writes N dispatcher-shaped records (1-3 scripts each, a few failures, timeouts and refusals, a
corrupt line every 100 000) into a log and its rotated backups, the way runlog rotates them, then
times, in one run:
  (a) logstats.window_stats over everything (the hooks_stats module with since = the first record);
  (b) logstats.window_stats over the last 24 h (older records skipped without parsing);
  (c) `virthooks metrics` from nothing (every record) and (d) again with nothing new.
Prints one row per measurement. Target: (a) under 10 s for 1 million records on the 2-core test machine.

  python benchmarks/logstats.py [N] [--files K]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "output" / "collections"))
sys.path.insert(0, str(REPO))

from tests.conftest import _link_collection

_link_collection()
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import logmetrics, logstats
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.minijson import dumps
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.runlog import iso_time

OPS = [("qemu", "prepare", "begin"), ("qemu", "start", "begin"), ("qemu", "started", "begin"),
       ("qemu", "stopped", "end"), ("qemu", "release", "end"), ("network", "started", "begin")]


def record(i: int, t: float) -> dict:
    driver, op, sub = OPS[i % len(OPS)]
    scripts = []
    for j in range(1 + i % 3):
        status = "ok"
        if i % 97 == 0 and j == 0:
            status = "failed"
        elif i % 1009 == 0:
            status = "timeout"
        elif i % 4999 == 0:
            status = "refused"
        s = {"name": "script-%d" % ((i + j) % 12), "source": "rule", "policy": "fail", "status": status,
             "exit": 0 if status == "ok" else 1, "duration_ms": float((i * 7 + j) % 900) / 10}
        if status != "ok":
            s["stderr"] = "something went wrong on vm-%d\n" % i
        scripts.append(s)
    failed = any(s["status"] != "ok" for s in scripts)
    return {"time": iso_time(t), "pid": 1000 + i % 30000, "driver": driver, "object": "vm-%d" % (i % 500),
            "operation": op, "suboperation": sub, "extra": "-", "result": "failed" if failed else "ok",
            "exit": 1 if failed else 0, "scripts": scripts, "duration_ms": 12.5 + i % 50}


def write_log(path: Path, n: int, files: int, span: float) -> int:
    """n records spread over `files` files, oldest in the highest backup number; their total size."""
    now = time.time()
    per_file = -(-n // files)
    total = 0
    for k in range(files):
        name = path if k == files - 1 else Path("%s.%d" % (path, files - 1 - k))
        lines = []
        for i in range(k * per_file, min(n, (k + 1) * per_file)):
            lines.append(dumps(record(i, now - span + span * i / n)))
            if i % 100000 == 99999:
                lines.append('{"time": "2026-11-29T10:00:00.000Z", "scripts": [')   # a torn line
        data = ("\n".join(lines) + "\n").encode("ascii")
        name.write_bytes(data)
        total += len(data)
    return total


def timed(label: str, fn):
    t0 = time.perf_counter()
    value = fn()
    print("%-62s %8.2f s" % (label, time.perf_counter() - t0), flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10, help="the log and K-1 rotated backups")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp, "virthooks.jsonl")
        size = timed("write %d records in %d files" % (args.n, args.files),
                     lambda: write_log(log, args.n, args.files, span=30 * 86400))
        print("log size: %.0f MiB, Python %s" % (size / 2**20, sys.version.split()[0]))
        backups = args.files - 1
        stats = timed("(a) window_stats, every record (since = 31 days)",
                      lambda: logstats.window_stats(str(log), backups, time.time() - 31 * 86400))
        assert stats["calls"] == args.n, stats["calls"]
        print("    calls %d, failures %d, timeouts %d, refused %d, unparsable %d, p95 %.1f ms"
              % (stats["calls"], stats["failures"], stats["timeouts"], stats["refused"],
                 stats["unparsable"]["count"], stats["duration_ms"]["p95"]))
        day = timed("(b) window_stats, last 24 h", lambda: logstats.window_stats(str(log), backups, time.time() - 86400))
        print("    calls %d" % day["calls"])
        textfile = Path(tmp, "textfile")
        textfile.mkdir()
        first = timed("(c) virthooks metrics, no state (every record)",
                      lambda: logmetrics.write_textfile(str(log), backups, str(textfile)))
        assert first["read"] == args.n, first
        again = timed("(d) virthooks metrics again, nothing new",
                      lambda: logmetrics.write_textfile(str(log), backups, str(textfile)))
        assert again["read"] == 0, again


if __name__ == "__main__":
    main()
