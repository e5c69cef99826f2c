# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dispatcher's log: one JSON line per hook call, size-bounded rotation, syslog.

A broken log never breaks a hook: every function here swallows its own errors and says so
on the return value only.
"""

import os

from .minijson import dumps

SYSLOG_IDENT = "virthooks"


def iso_time(t: float) -> str:
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def _rotate(path: str, backups: int) -> None:
    for i in range(backups - 1, 0, -1):
        older = "%s.%d" % (path, i)
        if os.path.exists(older):
            os.replace(older, "%s.%d" % (path, i + 1))
    os.replace(path, path + ".1")


def _open_append(path: str) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags, 0o640)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), 0o750, exist_ok=True)
        return os.open(path, flags, 0o640)


def append_line(path: str, record: dict, max_bytes: int, backups: int) -> bool:
    """Append one JSON line; rotate first when it would grow past max_bytes. False on error."""
    try:
        data = (dumps(record) + "\n").encode("ascii")
        fd = _open_append(path)
        try:
            if max_bytes and os.fstat(fd).st_size + len(data) > max_bytes:
                import fcntl
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    # Another call may have rotated while we waited for the lock.
                    current = os.stat(path)
                    mine = os.fstat(fd)
                    if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev) and \
                            current.st_size + len(data) > max_bytes:
                        _rotate(path, backups)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                fd = _open_append(path)
            os.write(fd, data)
        finally:
            os.close(fd)
        return True
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
    """The last `limit` records (oldest first), reading rotated files when needed."""
    from .minijson import JSONError, loads
    records = []
    for candidate in [path] + ["%s.%d" % (path, i) for i in range(1, backups + 1)]:
        try:
            with open(candidate, "rb") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        chunk = []
        for line in lines:
            try:
                chunk.append(loads(line))
            except JSONError:
                chunk.append({"unparsable": line.decode("utf-8", "replace")})
        records = chunk + records
        if len(records) >= limit:
            break
    return records[-limit:] if limit else records
