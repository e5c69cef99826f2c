# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dispatcher's log: one JSON line per hook call, size-bounded rotation, syslog.

A broken log never breaks a hook: every function here swallows its own errors and says so
on the return value only.
"""

from . import hostos as os  # os without importing os (0.9 ms at start-up): see hostos
from .minijson import dumps

SYSLOG_IDENT = "virthooks"
STDERR_TAIL = 300               # how much of a failed script's stderr its log record keeps (the end)


def iso_time(t: float) -> str:
    """The log's time format: UTC to the millisecond, fixed width, so strings sort as times."""
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def write_all(fd: int, data) -> None:
    """write(2) until all of data is written (a pipe, a full disk's last block: write may take part)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _rotate(path: str, backups: int) -> None:
    for i in range(backups - 1, 0, -1):
        older = "%s.%d" % (path, i)
        if os.path.lexists(older):
            os.replace(older, "%s.%d" % (path, i + 1))
    os.replace(path, path + ".1")


class NotRegularFile(OSError):
    """Something other than a regular file (FIFO, socket, device, symlink) sits at the log path."""


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader, forever.
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK | _NOFOLLOW
READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | _NOFOLLOW


def open_regular(path: str, flags: int) -> int:
    """open(2) that never blocks, never follows a symlink and keeps only a regular file."""
    fd = os.open(path, flags, 0o640)
    try:
        if not os.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile("%s is not a regular file" % path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_append(path: str) -> int:
    try:
        return open_regular(path, _APPEND_FLAGS)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), 0o750, exist_ok=True)
        return open_regular(path, _APPEND_FLAGS)


def _current_size(path: str, fd: int):
    """fd's size if it is still the file at path, None once a rotation renamed it away."""
    try:
        current = os.lstat(path)
    except FileNotFoundError:  # mid-rotation: renamed, not yet re-created
        return None
    mine = os.fstat(fd)
    return mine.st_size if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev) else None


# Each failed attempt means another writer rotated in between: it made progress, we retry.
APPEND_ATTEMPTS = 100
SEEK_CUR = 1


def _write_whole(fd: int, data: bytes, locked: bool) -> bool:
    """Append data as one piece, or leave the file as it was and return False.

    A full disk can take part of a record (a short write): left there, it is a line without its end, with
    the next writer's record glued to it, both lost to every reader and no syslog line for either. So the
    part written is taken back, if no other writer appended after it (checked holding the lock exclusively).
    """
    written = os.write(fd, data)
    if written == len(data):
        return True
    if written:
        import fcntl
        if locked:
            fcntl.flock(fd, fcntl.LOCK_EX)
        end = os.lseek(fd, 0, SEEK_CUR)     # O_APPEND: just past our bytes
        if os.fstat(fd).st_size == end:
            os.ftruncate(fd, end - written)
    return False


def append_line(path: str, record: dict, max_bytes: int, backups: int) -> bool:
    """Append one JSON line; rotate first when it would grow past max_bytes. False on error.

    With rotation on, writers hold a shared flock on the file while they check that it is
    still the one at path and write to it; the writer that rotates holds it exclusively. So
    no record lands in a file that is being renamed away, and a writer that finds its file
    rotated (or the path briefly missing mid-rotation) simply opens the new one and retries.
    """
    try:
        data = (dumps(record) + "\n").encode("ascii")
        if not max_bytes:
            fd = _open_append(path)
            try:
                return _write_whole(fd, data, locked=False)
            finally:
                os.close(fd)
        import fcntl
        for _attempt in range(APPEND_ATTEMPTS):
            fd = _open_append(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                size = _current_size(path, fd)
                if size is None:
                    continue
                # An empty file is never rotated: a record bigger than max_bytes gets a file of its own.
                if size and size + len(data) > max_bytes:
                    # Not atomic: the shared lock is dropped first, so look again once exclusive.
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    size = _current_size(path, fd)
                    if size and size + len(data) > max_bytes:
                        _rotate(path, backups)
                    continue
                return _write_whole(fd, data, locked=True)
            finally:
                os.close(fd)  # releases the lock
        return False
    except Exception:
        return False


def to_syslog(message: str, error: bool = True) -> bool:
    try:
        import syslog
        syslog.openlog(SYSLOG_IDENT, syslog.LOG_PID, syslog.LOG_DAEMON)
        syslog.syslog(syslog.LOG_ERR if error else syslog.LOG_INFO, message)
        syslog.closelog()
        return True
    except Exception:
        return False


def read_records(path: str, limit: int = 20, backups: int = 3) -> list:
    """The last `limit` records (oldest first), reading rotated files when needed.

    Each record is a dict; a line that is not a JSON object comes back as {"unparsable": line}.
    Bytes that are not UTF-8 come back as surrogateescape surrogates (see printable).
    """
    from .minijson import JSONError, loads
    records = []
    for candidate in [path] + ["%s.%d" % (path, i) for i in range(1, backups + 1)]:
        try:
            fd = open_regular(candidate, READ_FLAGS)
        except OSError:
            continue
        with open(fd, "rb") as f:
            lines = [line for line in f.read().split(b"\n") if line]
        chunk = []
        for line in lines:
            text = line.decode("utf-8", "surrogateescape")
            try:
                record = loads(text)
            except JSONError:
                record = None
            chunk.append(record if isinstance(record, dict) else {"unparsable": text})
        records = chunk + records
        if len(records) >= limit:
            break
    return records[-limit:] if limit else records


_ESCAPES = {}


def printable(text: str) -> str:
    """text with every C0/C1 control character and DEL shown as a backslash escape.

    For a terminal or a one-line message: ``\\n``, ``\\t``, ``\\r``, ``\\x1b``, ``\\x7f``,
    ``\\u0085``; a byte that was not UTF-8 (a surrogateescape surrogate) shows as ``\\xNN``,
    any other lone surrogate as ``\\udNNN``. Everything else, backslashes included, is kept.
    """
    if text.isprintable():  # the common case; false for every character escaped below
        return text
    if not _ESCAPES:
        table = {c: "\\x%02x" % c for c in range(0x20)}
        table.update({0x09: "\\t", 0x0a: "\\n", 0x0d: "\\r", 0x7f: "\\x7f"})
        table.update((c, "\\u%04x" % c) for c in range(0x80, 0xa0))
        table.update((c, "\\u%04x" % c) for c in range(0xd800, 0xe000))
        table.update((c, "\\x%02x" % (c - 0xdc00)) for c in range(0xdc80, 0xdd00))
        _ESCAPES.update(table)
    return text.translate(_ESCAPES)
