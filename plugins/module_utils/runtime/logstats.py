# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the dispatcher's JSON-lines log after the fact: statistics and Prometheus metrics.

Nothing here runs on a hook call. The log (runlog.py) and its rotated backups FILE.1..FILE.N
are read the way runlog.read_records reads them (regular files only, no symlink followed),
oldest first. Two consumers share one line reader:

- ``window_stats``: per driver/operation and per script counts, duration percentiles and the
  last failures over a time window (the ``hooks_stats`` module, the report playbook);
- ``update_metrics`` / ``write_textfile``: cumulative counters kept in a state file next to
  the log, so each run reads only the records appended since the last one, across rotations,
  written for node_exporter's textfile collector (``virthooks metrics --textfile-dir DIR``).

Standard library only, Python 3.9+: this file ships to the hosts with the runtime.
"""

import math
import os
import time
from bisect import bisect_left

from .minijson import JSONError, dumps, loads
from .runlog import READ_FLAGS, STDERR_TAIL, iso_time, open_regular, printable

FAIL_STATUSES = ("failed", "timeout", "refused", "error", "killed")
SCRIPT_STATUSES = ("ok",) + FAIL_STATUSES + ("skipped",)
CALL_RESULTS = ("ok", "failed", "no-match", "error", "interrupted")
LAST_FAILURES = 5
UNPARSABLE_NAMED = 10
CHUNK = 4 << 20
# node_exporter textfile histogram buckets for script durations, seconds.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PROM_FILE = "virthooks.prom"
STATE_SUFFIX = ".metrics-state"
STATE_VERSION = 1
HEAD_BYTES = 64
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class StatsError(ValueError):
    """A bad argument (an unreadable ``since``); the message says what would be valid."""


# --- time ----------------------------------------------------------------------------------

def parse_since(text, now: float) -> float:
    """Epoch seconds for ``24h``, ``30m``, ``7d``, ``2w``, ``90s``, or an ISO 8601 time (UTC if no zone)."""
    value = str(text).strip()
    if len(value) > 1 and value[-1] in _UNITS and value[:-1].isascii() and value[:-1].isdigit():
        seconds = int(value[:-1]) * _UNITS[value[-1]]
        if seconds > now:
            raise StatsError("since: %r reaches back before 1970-01-01T00:00:00Z; give a shorter duration"
                             % value)
        return now - seconds
    from datetime import datetime, timezone
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise StatsError("since: %r is neither a duration (24h, 30m, 7d, 2w, 90s) nor an ISO 8601 time "
                         "(2026-11-29T10:00:00Z)" % value) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def record_epoch(stamp) -> float:
    """Epoch seconds of a record's ``time`` (``2026-11-29T10:00:00.123Z``); ValueError if it is not one."""
    import calendar
    if not isinstance(stamp, str) or len(stamp) < 20 or stamp[10] != "T":
        raise ValueError("not a log time: %r" % (stamp,))
    whole = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = stamp[19:].rstrip("Zz")
    return whole + (float("0" + frac) if frac.startswith(".") else 0.0)


# --- reading the log -----------------------------------------------------------------------

def log_files(path: str, backups: int) -> list:
    """The log's files that exist, oldest first: FILE.N, ..., FILE.1, FILE (as runlog names them)."""
    return ["%s.%d" % (path, i) for i in range(backups, 0, -1)] + [path]


class OpenLog(object):
    """The log's files, opened together (so a rotation in between cannot shuffle them).

    While opening, a shared flock is held on FILE: a writer that rotates needs it exclusively
    (runlog.append_line), so the set is consistent. Each entry is (name, fd, dev, ino, size, head).
    """

    def __init__(self, path: str, backups: int):
        self.files = []
        lock_fd = -1
        try:
            try:
                lock_fd = open_regular(path, READ_FLAGS)
                import fcntl
                fcntl.flock(lock_fd, fcntl.LOCK_SH)
            except OSError:
                pass
            for name in log_files(path, backups):
                if name == path and lock_fd >= 0:
                    fd = os.dup(lock_fd)
                else:
                    try:
                        fd = open_regular(name, READ_FLAGS)
                    except OSError:
                        continue
                st = os.fstat(fd)
                self.files.append((name, fd, st.st_dev, st.st_ino, st.st_size, os.pread(fd, HEAD_BYTES, 0)))
        finally:
            if lock_fd >= 0:
                import fcntl
                fcntl.flock(lock_fd, fcntl.LOCK_UN)     # the dup shares the lock: release it explicitly
                os.close(lock_fd)

    def close(self) -> None:
        for entry in self.files:
            os.close(entry[1])
        self.files = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_lines(fd: int, start: int, end: int, final: bool):
    """Yield each complete line (bytes, no newline) of fd between start and end, then the offset
    after the last one. A trailing piece without newline is a line only when ``final``."""
    pos = start
    rest = b""
    while pos < end:
        data = os.pread(fd, min(CHUNK, end - pos), pos)
        if not data:
            break
        pos += len(data)
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        yield from lines
    consumed = pos - len(rest)
    if rest and final:
        yield rest
        consumed = pos
    yield consumed


def parse_line(line: bytes):
    """(record, None) for a JSON object with a string ``time``, else (None, reason)."""
    try:
        record = loads(line)
    except JSONError as exc:
        return None, str(exc)
    if not isinstance(record, dict):
        return None, "not a JSON object"
    if not isinstance(record.get("time"), str):
        return None, "no 'time'"
    return record, None


def _scripts(record) -> list:
    scripts = record.get("scripts")
    return [s for s in scripts if isinstance(s, dict)] if isinstance(scripts, list) else []


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _label(value) -> str:
    """A record's field as a label value: text, valid UTF-8 (a byte that was not, U+FFFD)."""
    text = value if isinstance(value, str) else "?" if value is None else str(value)
    return text if text.isprintable() else valid_utf8(text)


def valid_utf8(text: str) -> str:
    """text with each undecodable byte (surrogateescape) or lone surrogate replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


# --- window statistics ---------------------------------------------------------------------

def percentiles(values: list) -> dict:
    """p50, p95 (nearest rank) and max of values, or nulls when there are none."""
    if not values:
        return {"p50": None, "p95": None, "max": None}
    ordered = sorted(values)
    n = len(ordered)

    def rank(p):
        return ordered[max(0, -(-p * n // 100) - 1)]
    return {"p50": rank(50), "p95": rank(95), "max": ordered[-1]}


def _tail(text, size: int = STDERR_TAIL) -> str:
    text = printable(str(text).strip()) if text else ""
    return text[-size:]


class WindowStats(object):
    """Everything the hooks_stats module returns, built one record at a time."""

    def __init__(self, since_iso: str):
        self.since = since_iso
        self.calls = 0
        self.results = dict.fromkeys(CALL_RESULTS, 0)
        self.durations = []
        self.ops = {}           # (driver, operation) -> [calls, {result: n}, durations, timeouts, refused]
        self.scripts = {}       # name -> [{status: n}, durations, source]
        self.failures = 0
        self.last = []          # newest last, trimmed to LAST_FAILURES
        self.first_time = self.last_time = None
        self.unparsable = 0
        self.unparsable_named = []
        self.files = []

    def bad_line(self, name: str, lineno: int, reason: str, line: bytes) -> None:
        self.unparsable += 1
        if len(self.unparsable_named) < UNPARSABLE_NAMED:
            text = printable(line[:120].decode("utf-8", "surrogateescape"))
            self.unparsable_named.append({"file": name, "line": lineno, "reason": reason, "text": text})

    def add(self, rec: dict) -> None:
        stamp = rec["time"]
        self.calls += 1
        if self.first_time is None:
            self.first_time = stamp
        self.last_time = stamp
        result = _label(rec.get("result"))
        self.results[result] = self.results.get(result, 0) + 1
        key = (_label(rec.get("driver")), _label(rec.get("operation")))
        op = self.ops.get(key)
        if op is None:
            op = self.ops[key] = [0, {}, [], 0, 0]
        op[0] += 1
        op[1][result] = op[1].get(result, 0) + 1
        took = _number(rec.get("duration_ms"))
        if took is not None:
            self.durations.append(took)
            op[2].append(took)
        failed_script = False
        for s in _scripts(rec):
            name = _label(s.get("name"))
            status = _label(s.get("status"))
            entry = self.scripts.get(name)
            if entry is None:
                entry = self.scripts[name] = [{}, [], _label(s.get("source"))]
            entry[0][status] = entry[0].get(status, 0) + 1
            ran = _number(s.get("duration_ms"))
            if ran is not None:
                entry[1].append(ran)
            if status == "timeout":
                op[3] += 1
            elif status == "refused":
                op[4] += 1
            if status in FAIL_STATUSES:
                failed_script = True
                self.failures += 1
                self._remember(rec, name, status, s.get("exit"), s.get("stderr") or s.get("message"))
        if result in ("error", "interrupted") and not failed_script:
            self.failures += 1
            self._remember(rec, None, result, rec.get("exit"), rec.get("error"))

    def _remember(self, rec, script, status, code, text) -> None:
        self.last.append({
            "time": rec["time"],
            "event": printable(" ".join(_label(rec.get(k)) for k in ("driver", "object", "operation", "suboperation"))),
            "script": script, "status": status, "exit": _number(code), "stderr": _tail(text)})
        if len(self.last) > 4 * LAST_FAILURES:
            del self.last[:-LAST_FAILURES]

    def result(self) -> dict:
        operations = []
        for (driver, operation), (calls, results, durations, timeouts, refused) in sorted(self.ops.items()):
            operations.append({
                "driver": driver, "operation": operation, "calls": calls, "ok": results.get("ok", 0),
                "failed": results.get("failed", 0), "no_match": results.get("no-match", 0),
                "error": results.get("error", 0), "interrupted": results.get("interrupted", 0),
                "timeouts": timeouts, "refused": refused, "duration_ms": percentiles(durations)})
        scripts = []
        for name, (statuses, durations, source) in sorted(self.scripts.items()):
            entry = {"name": name, "source": source, "runs": sum(statuses.values()) - statuses.get("skipped", 0)}
            for status in SCRIPT_STATUSES:
                entry[status] = statuses.get(status, 0)
            entry["timeouts"] = entry.pop("timeout")
            entry["failures"] = sum(statuses.get(s, 0) for s in FAIL_STATUSES)
            entry["duration_ms"] = percentiles(durations)
            scripts.append(entry)
        worst = max(scripts, key=lambda s: (s["failures"], s["duration_ms"]["p95"] or 0), default=None)
        return {
            "since": self.since, "first_time": self.first_time, "last_time": self.last_time,
            "files": self.files, "calls": self.calls,
            "results": {k.replace("-", "_"): v for k, v in self.results.items()},
            "failures": self.failures,
            "timeouts": sum(s["timeouts"] for s in scripts), "refused": sum(s["refused"] for s in scripts),
            "duration_ms": percentiles(self.durations),
            "worst_script": worst["name"] if worst and worst["failures"] else None,
            "operations": operations, "scripts": scripts,
            "last_failures": list(reversed(self.last[-LAST_FAILURES:])),
            "unparsable": {"count": self.unparsable, "lines": self.unparsable_named},
        }


def window_stats(path: str, backups: int, since: float) -> dict:
    """Statistics of the records at or after epoch ``since`` in the log and its backups."""
    since_iso = iso_time(since)
    stats = WindowStats(since_iso)
    prefix = b'{"time":"'
    cut = since_iso.encode("ascii")
    with OpenLog(path, backups) as log:
        for name, fd, _dev, _ino, size, _head in log.files:
            lineno = 0
            count = 0
            for line in read_lines(fd, 0, size, final=name != path):
                if isinstance(line, int):
                    break
                lineno += 1
                if not line.strip():
                    continue
                # The dispatcher writes time first: old records are dropped without parsing them.
                if line.startswith(prefix) and line[9:33] < cut and line[33:34] == b'"':
                    continue
                rec, reason = parse_line(line)
                if rec is None:
                    stats.bad_line(name, lineno, reason, line)
                    continue
                if rec["time"] < since_iso:
                    continue
                count += 1
                stats.add(rec)
            stats.files.append({"path": name, "bytes": size, "records": count})
    return stats.result()


# --- cumulative metrics --------------------------------------------------------------------

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
        key = (_label(rec.get("driver")), _label(rec.get("operation")), _label(rec.get("result")))
        self.calls[key] = self.calls.get(key, 0) + 1
        stamp = rec["time"]
        if self.newest is None or stamp > self.newest:   # fixed-width UTC times sort as strings
            self.newest = stamp
        for s in _scripts(rec):
            status = _label(s.get("status"))
            if status == "skipped":
                continue
            name = _label(s.get("name"))
            self.runs[(name, status)] = self.runs.get((name, status), 0) + 1
            took = _number(s.get("duration_ms"))
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
            # Labels go through _label again: a state written before it made them valid UTF-8
            # is repaired, counts of names that are now the same label added up.
            for *saved, n in data["calls"]:
                key = tuple(_label(k) for k in saved)
                self.calls[key] = self.calls.get(key, 0) + int(n)
            for script, status, n in data["runs"]:
                key = (_label(script), _label(status))
                self.runs[key] = self.runs.get(key, 0) + int(n)
            for script, *saved in data["hist"]:
                if len(saved) != len(BUCKETS) + 2:
                    raise ValueError("histogram of %r has %d values" % (script, len(saved)))
                row = [int(n) for n in saved[:-1]] + [float(saved[-1])]
                old = self.hist.get(_label(script))
                self.hist[_label(script)] = [a + b for a, b in zip(old, row)] if old else row
            self.last_call = _number(data["last_call"])
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


def write_textfile(log_path: str, backups: int, textfile_dir: str, state_file: str = "") -> dict:
    """Bring the counters up to date and write textfile_dir/virthooks.prom; what was done."""
    import fcntl
    from .fileops import atomic_write
    state_file = state_file or state_path(log_path)
    os.makedirs(os.path.dirname(state_file) or ".", 0o750, exist_ok=True)
    lock = os.open(state_file + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)    # one updater at a time (cron and an operator)
        counters, note = load_state(state_file)
        read = update_metrics(log_path, backups, counters)
        text = render_metrics(counters, runtime_version())
        # State first: a crash in between repeats nothing, it only delays the .prom file.
        atomic_write(state_file, counters.to_json().encode("ascii"), 0o640)
        target = os.path.join(textfile_dir, PROM_FILE)
        atomic_write(target, text.encode("utf-8"))
    finally:
        os.close(lock)
    return {"read": read, "note": note, "file": target, "state": state_file}


# --- the CLI's ``metrics`` command (wired in cli.py) ----------------------------------------

def add_metrics_parser(sub) -> None:
    mp = sub.add_parser("metrics", help="write Prometheus metrics for node_exporter's textfile collector")
    mp.add_argument("--textfile-dir", required=True, help="node_exporter's --collector.textfile.directory")
    mp.add_argument("--state", default="", help="cumulative state file (default: LOG%s)" % STATE_SUFFIX)


def cmd_metrics(args, out, config) -> int:
    log = config["log"]
    if not log["file"]:
        out.write("virthooks: file logging is off (log.file is null): no metrics\n")
        return 1
    if not os.path.isdir(args.textfile_dir):
        out.write(printable("virthooks: --textfile-dir %s is not a directory" % args.textfile_dir) + "\n")
        return 1
    done = write_textfile(log["file"], log["backups"], args.textfile_dir, args.state)
    if done["note"]:
        out.write(printable("virthooks: %s" % done["note"]) + "\n")
    out.write(printable("%s: %d new record(s)" % (done["file"], done["read"])) + "\n")
    return 0
