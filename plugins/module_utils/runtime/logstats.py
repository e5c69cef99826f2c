# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Statistics of the dispatcher's log over a time window (the ``hooks_stats`` module, the report).

Per driver/operation and per script: counts, duration percentiles and the last failures since a
time, read with ``logread``'s line reader; records older than the window are dropped without
being parsed. Nothing here runs on a hook call.

Standard library only, Python 3.9+: this file ships to the hosts with the runtime.
"""

from .logread import OpenLog, iso_time, label, number, parse_line, read_lines, scripts_of
from .runlog import STDERR_TAIL, printable

FAIL_STATUSES = ("failed", "timeout", "refused", "error", "killed")
SCRIPT_STATUSES = ("ok",) + FAIL_STATUSES + ("skipped",)
CALL_RESULTS = ("ok", "failed", "no-match", "error", "interrupted")
LAST_FAILURES = 5
UNPARSABLE_NAMED = 10
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class StatsError(ValueError):
    """A bad argument (an unreadable ``since``); the message says what would be valid."""


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
        result = label(rec.get("result"))
        self.results[result] = self.results.get(result, 0) + 1
        key = (label(rec.get("driver")), label(rec.get("operation")))
        op = self.ops.get(key)
        if op is None:
            op = self.ops[key] = [0, {}, [], 0, 0]
        op[0] += 1
        op[1][result] = op[1].get(result, 0) + 1
        took = number(rec.get("duration_ms"))
        if took is not None:
            self.durations.append(took)
            op[2].append(took)
        failed_script = False
        for s in scripts_of(rec):
            name = label(s.get("name"))
            status = label(s.get("status"))
            entry = self.scripts.get(name)
            if entry is None:
                entry = self.scripts[name] = [{}, [], label(s.get("source"))]
            entry[0][status] = entry[0].get(status, 0) + 1
            ran = number(s.get("duration_ms"))
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
            "event": printable(" ".join(label(rec.get(k)) for k in ("driver", "object", "operation", "suboperation"))),
            "script": script, "status": status, "exit": number(code), "stderr": _tail(text)})
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
