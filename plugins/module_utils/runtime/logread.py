# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the dispatcher's JSON-lines log after the fact, for statistics and metrics.

Nothing here runs on a hook call. The log (runlog.py) and its rotated backups FILE.1..FILE.N
are read the way runlog.read_records reads them (regular files only, no symlink followed),
oldest first, by one line reader that ``logstats`` (a window's statistics) and ``logmetrics``
(cumulative Prometheus counters) share; the field helpers turn whatever a record holds into
label text.

Standard library only, Python 3.9+: this file ships to the hosts with the runtime.
"""

import os
import time

from .minijson import JSONError, loads
from .runlog import READ_FLAGS, iso_time, open_regular

__all__ = ["CHUNK", "HEAD_BYTES", "OpenLog", "iso_time", "label", "log_files", "number", "parse_line",
           "read_lines", "record_epoch", "scripts_of", "valid_utf8"]

CHUNK = 4 << 20
HEAD_BYTES = 64


def record_epoch(stamp) -> float:
    """Epoch seconds of a record's ``time`` (``2026-11-29T10:00:00.123Z``); ValueError if it is not one."""
    import calendar
    if not isinstance(stamp, str) or len(stamp) < 20 or stamp[10] != "T":
        raise ValueError("not a log time: %r" % (stamp,))
    whole = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = stamp[19:].rstrip("Zz")
    return whole + (float("0" + frac) if frac.startswith(".") else 0.0)


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


def scripts_of(record) -> list:
    scripts = record.get("scripts")
    return [s for s in scripts if isinstance(s, dict)] if isinstance(scripts, list) else []


def number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def label(value) -> str:
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
