# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cumulative Prometheus metrics of the dispatcher's log, for node_exporter's textfile collector.

The counters are kept in a state file next to the log, so each run (``virthooks metrics
--textfile-dir DIR``, from cron or a systemd timer) reads only the records appended since the
last one, across rotations, with ``logread``'s line reader. Nothing here runs on a hook call.

Standard library only, Python 3.9+: this file ships to the hosts with the runtime.
"""

import errno
import math
import os
from bisect import bisect_left

from .fileops import atomic_write
from .logread import OpenLog, label, number, parse_line, read_lines, record_epoch, scripts_of, valid_utf8
from .minijson import JSONError, dumps, loads

# node_exporter textfile histogram buckets for script durations, seconds.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PROM_FILE = "virthooks.prom"
STATE_SUFFIX = ".metrics-state"
STATE_VERSION = 1


class Counters(object):
    """The cumulative state behind virthooks.prom, saved next to the log between runs."""

    def __init__(self):
        self.calls = {}         # (driver, operation, result) -> n
        self.runs = {}          # (script, status) -> n
        self.hist = {}          # script -> [count per bucket (not cumulative)..., +Inf, sum seconds]
        self.last_call = None   # epoch of the newest record, kept in the state
        self.newest = None      # its time as logged, while reading
        self.unparsable = 0
        self.file = None        # {"dev", "ino", "offset", "head"} of the newest file read

    def add(self, rec: dict) -> None:
        key = (label(rec.get("driver")), label(rec.get("operation")), label(rec.get("result")))
        self.calls[key] = self.calls.get(key, 0) + 1
        stamp = rec["time"]
        if self.newest is None or stamp > self.newest:   # fixed-width UTC times sort as strings
            self.newest = stamp
        for s in scripts_of(rec):
            status = label(s.get("status"))
            if status == "skipped":
                continue
            name = label(s.get("name"))
            self.runs[(name, status)] = self.runs.get((name, status), 0) + 1
            took = number(s.get("duration_ms"))
            if took is None:
                continue
            seconds = took / 1000.0
            row = self.hist.get(name)
            if row is None:
                row = self.hist[name] = [0] * (len(BUCKETS) + 1) + [0.0]
            row[bisect_left(BUCKETS, seconds)] += 1     # the first bucket with seconds <= le
            row[-1] += seconds

    def settle(self) -> None:
        """Fold the newest time read into last_call (parsed once, not per record)."""
        if self.newest is not None:
            try:
                stamp = record_epoch(self.newest)
                if self.last_call is None or stamp > self.last_call:
                    self.last_call = stamp
            except (ValueError, OverflowError):
                pass
            self.newest = None

    def to_json(self) -> str:
        return dumps({"version": STATE_VERSION, "file": self.file, "last_call": self.last_call,
                      "unparsable": self.unparsable, "buckets": list(BUCKETS),
                      "calls": [list(k) + [v] for k, v in sorted(self.calls.items())],
                      "runs": [list(k) + [v] for k, v in sorted(self.runs.items())],
                      "hist": [[k] + v for k, v in sorted(self.hist.items())]})

    @classmethod
    def from_json(cls, text):
        """The saved state; ValueError when it is not one this version wrote."""
        try:
            data = loads(text)
        except JSONError as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION or data.get("buckets") != list(BUCKETS):
            raise ValueError("not a version %d state with these buckets" % STATE_VERSION)
        self = cls()
        try:
            # Labels go through label() again: a state written before it made them valid UTF-8
            # is repaired, counts of names that are now the same label added up.
            for *saved, n in data["calls"]:
                key = tuple(label(k) for k in saved)
                self.calls[key] = self.calls.get(key, 0) + int(n)
            for script, status, n in data["runs"]:
                key = (label(script), label(status))
                self.runs[key] = self.runs.get(key, 0) + int(n)
            for script, *saved in data["hist"]:
                if len(saved) != len(BUCKETS) + 2:
                    raise ValueError("histogram of %r has %d values" % (script, len(saved)))
                row = [int(n) for n in saved[:-1]] + [float(saved[-1])]
                old = self.hist.get(label(script))
                self.hist[label(script)] = [a + b for a, b in zip(old, row)] if old else row
            self.last_call = number(data["last_call"])
            self.unparsable = int(data["unparsable"])
            position = data["file"]
            if position is not None:
                self.file = {"dev": int(position["dev"]), "ino": int(position["ino"]),
                             "offset": int(position["offset"]), "head": str(position["head"])}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("malformed state: %s" % exc) from None
        return self


def state_path(log_path: str) -> str:
    return log_path + STATE_SUFFIX


def load_state(path: str):
    """(Counters, note): the saved counters, or fresh ones and why (missing, corrupt)."""
    try:
        with open(path, "rb") as f:
            return Counters.from_json(f.read()), None
    except FileNotFoundError:
        return Counters(), "no state file: counting every record in the log"
    except (OSError, ValueError) as exc:
        return Counters(), "state file %s unusable (%s): rebuilt from the log" % (path, exc)


def _resume_at(files: list, position) -> tuple:
    """(index of the file to continue in, offset): where the last run stopped, else (0, 0)."""
    if position:
        for i, (_name, _fd, dev, ino, size, head) in enumerate(files):
            if (dev, ino) == (position["dev"], position["ino"]) and size >= position["offset"] \
                    and head.hex()[:len(position["head"])] == position["head"]:
                return i, position["offset"]
    return 0, 0


def update_metrics(log_path: str, backups: int, counters) -> int:
    """Add the records appended since counters.file to counters; how many were read."""
    read = 0
    with OpenLog(log_path, backups) as log:
        files = log.files
        index, offset = _resume_at(files, counters.file)
        newest = None
        for i in range(index, len(files)):
            name, fd, dev, ino, size, head = files[i]
            final = name != log_path        # a rotated file is complete; FILE may hold half a line
            start = offset if i == index else 0
            end = start
            for line in read_lines(fd, start, size, final):
                if isinstance(line, int):
                    end = line
                    break
                if not line.strip():
                    continue
                rec, _reason = parse_line(line)
                if rec is None:
                    counters.unparsable += 1
                    continue
                read += 1
                counters.add(rec)
            newest = {"dev": dev, "ino": ino, "offset": end, "head": head.hex()}
        if newest is not None:
            counters.file = newest
    counters.settle()
    return read


def _escape(value: str) -> str:
    """A label value as the text exposition format writes it: backslash, double quote and line
    feed escaped (the only escapes it knows), anything else as it is, in valid UTF-8."""
    return valid_utf8(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**pairs) -> str:
    return "{" + ",".join('%s="%s"' % (k, _escape(v)) for k, v in pairs.items()) + "}"


def _float(value: float) -> str:
    return "NaN" if math.isnan(value) else repr(float(value))


def render_metrics(counters, version: str) -> str:
    """The text exposition format (Prometheus 0.0.4) of the counters."""
    out = []

    def family(name, kind, text):
        out.append("# HELP %s %s" % (name, text))
        out.append("# TYPE %s %s" % (name, kind))

    family("virthooks_calls_total", "counter", "Hook calls handled by the virthooks dispatcher, by result.")
    calls = dict(counters.calls)
    for driver, operation in {(d, o) for d, o, _r in calls}:
        for result in ("ok", "failed", "no-match"):
            calls.setdefault((driver, operation, result), 0)
    for (driver, operation, result), n in sorted(calls.items()):
        out.append("virthooks_calls_total%s %d" % (_labels(driver=driver, operation=operation, result=result), n))
    family("virthooks_script_runs_total", "counter", "Hook script runs, by result.")
    runs = dict(counters.runs)
    for script in {s for s, _r in runs}:
        for result in ("ok", "failed", "timeout", "refused"):
            runs.setdefault((script, result), 0)
    for (script, result), n in sorted(runs.items()):
        out.append("virthooks_script_runs_total%s %d" % (_labels(script=script, result=result), n))
    family("virthooks_script_duration_seconds", "histogram", "Duration of hook script runs.")
    for script, row in sorted(counters.hist.items()):
        total = 0
        for bound, n in zip(BUCKETS + (None,), row[:-1]):
            total += n
            le = "+Inf" if bound is None else _float(bound)
            out.append("virthooks_script_duration_seconds_bucket%s %d" % (_labels(script=script, le=le), total))
        out.append("virthooks_script_duration_seconds_sum%s %s" % (_labels(script=script), _float(row[-1])))
        out.append("virthooks_script_duration_seconds_count%s %d" % (_labels(script=script), total))
    if counters.last_call is not None:
        family("virthooks_last_call_timestamp_seconds", "gauge", "Time of the newest hook call in the log.")
        out.append("virthooks_last_call_timestamp_seconds %s" % _float(counters.last_call))
    family("virthooks_log_unparsable_records_total", "counter", "Log lines that were not a virthooks record.")
    out.append("virthooks_log_unparsable_records_total %d" % counters.unparsable)
    family("virthooks_runtime_info", "gauge", "The virthooks runtime version on this host.")
    out.append("virthooks_runtime_info%s 1" % _labels(version=version))
    return "\n".join(out) + "\n"


def runtime_version() -> str:
    from . import VERSION           # the collection's version, installed with the package
    return str(VERSION)


# What a log directory under a disk fault answers: the state is then not saved, the metrics are still written.
# Any other error (a --state path that cannot be a file, permissions) is a mistake to fix, and fails the run.
DISK_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _state_lock(state_file: str) -> tuple:
    """(fd holding the state's lock, '') or, under a disk fault, (-1, why it cannot be taken). One updater at a
    time (cron and an operator); an existing lock file on a read-only file system is locked read-only."""
    import fcntl
    path = state_file + ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        if exc.errno not in DISK_FAULTS:
            raise
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return -1, "cannot lock %s: %s" % (path, exc.strerror or exc)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd, ""


def _save_state(state_file: str, counters, unsaved: str) -> str:
    """Save the counters unless unsaved already says why not; '' or why they are not saved (a disk fault)."""
    if not unsaved:
        try:
            atomic_write(state_file, counters.to_json().encode("ascii"), 0o640)
            return ""
        except OSError as exc:
            if exc.errno not in DISK_FAULTS:
                raise
            unsaved = "%s: %s" % (state_file, exc.strerror or exc)
    return "could not save the metrics state (%s): the metrics are written; the next run reads these records " \
           "again" % unsaved


def write_textfile(log_path: str, backups: int, textfile_dir: str, state_file: str = "") -> dict:
    """Bring the counters up to date and write textfile_dir/virthooks.prom; what was done.

    The state lives beside the log: when it cannot be saved there (a full or read-only log directory, not
    another error), the metrics are written all the same (the counters are the saved ones plus the records
    read, so the next run reaches the same numbers again) and ``unsaved`` says why. The .prom file failing is
    an OSError naming it (the previous file is then left whole: it is replaced by a rename)."""
    state_file = state_file or state_path(log_path)
    try:
        os.makedirs(os.path.dirname(state_file) or ".", 0o750, exist_ok=True)
    except OSError as exc:
        if exc.errno not in DISK_FAULTS:
            raise                           # else _state_lock says why the state cannot be kept there
    lock, unsaved = _state_lock(state_file)
    try:
        counters, note = load_state(state_file)
        read = update_metrics(log_path, backups, counters)
        text = render_metrics(counters, runtime_version())
        # State first: a crash in between repeats nothing, it only delays the .prom file.
        unsaved = _save_state(state_file, counters, unsaved)
        target = os.path.join(textfile_dir, PROM_FILE)
        try:
            atomic_write(target, text.encode("utf-8"))
        except OSError as exc:              # name the file, not atomic_write's temporary one
            raise OSError(exc.errno, exc.strerror, target) from None
    finally:
        if lock != -1:
            os.close(lock)
    return {"read": read, "note": note, "file": target, "state": state_file, "unsaved": unsaved}
