# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks log``: recent hook calls from the dispatcher's JSON-lines log, readable or raw."""

from ..runlog import read_records
from .util import emit, load


def _list(value):
    return value if isinstance(value, list) else [] if value is None else [value]


def print_script(s, out) -> None:
    """One script of a call: status, name, exit, duration, and the tail of its output."""
    if not isinstance(s, dict):
        emit(out, "    %s" % s)
        return
    extra = " %s" % s["message"] if s.get("message") else ""
    fields = (s.get("status"), s.get("name"), s.get("exit"), s.get("duration_ms", "-"), extra)
    emit(out, "    %-8s %-30s exit=%s %s ms%s" % fields)
    for stream in ("stderr", "stdout"):
        if s.get(stream):
            text = str(s[stream]).strip().split("\n")
            emit(out, "             %s: %s" % (stream, " | ".join(text[-3:])))


def print_record(rec, out) -> None:
    """A log record, readable; any field may hold anything (the log is only ever appended to)."""
    if set(rec) == {"unparsable"}:
        emit(out, "unparsable log line: %s" % rec["unparsable"])
        return
    emit(out, "%s %-7s %s %s %s %s -> %s (exit %s, %s ms)" % (
        rec.get("time", "?"), rec.get("driver"), rec.get("object"), rec.get("operation"), rec.get("suboperation"),
        rec.get("extra"), rec.get("result"), rec.get("exit"), rec.get("duration_ms")))
    if rec.get("error"):
        emit(out, "    error: %s" % rec["error"])
    for note in _list(rec.get("notes")):
        emit(out, "    note: %s" % note)
    for s in _list(rec.get("scripts")):
        print_script(s, out)


def add_parser(sub) -> None:
    lg = sub.add_parser("log", help="recent hook calls")
    lg.add_argument("-n", type=int, default=20, help="how many calls (default 20)")
    lg.add_argument("--failed", action="store_true", help="only calls that failed")
    lg.add_argument("--json", action="store_true", help="raw JSON lines")


def run(args, out) -> int:
    config = load(args.hooks_dir)
    if not config["log"]["file"]:
        emit(out, "file logging is off (log.file is null); see syslog (ident virthooks)")
        return 0
    records = read_records(config["log"]["file"], 0, config["log"]["backups"])
    if args.failed:
        records = [r for r in records if r.get("result") in ("failed", "error")]
    records = records[-args.n:] if args.n > 0 else records
    if args.json:
        from ..minijson import dumps
        for rec in records:
            out.write(dumps(rec) + "\n")  # ASCII: every control character is a JSON escape
        return 0
    for rec in records:
        print_record(rec, out)
    if not records:
        emit(out, "no calls logged in %s" % config["log"]["file"])
    return 0
