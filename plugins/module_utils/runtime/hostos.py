# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``os`` for the modules on the dispatcher's path, without importing ``os``.

The hooks' Python starts with ``-IS`` (no site), so nothing has imported ``os`` yet, and
``import os`` then costs about 0.9 ms (it pulls in _collections_abc, stat and posixpath):
a tenth of a whole hook call. dispatch, rules, generations, runlog and trust import this
module as ``os`` instead. Every function here *is* os's own (os re-exports the built-in
posix module); the path tests below do what os.path's do for the absolute, str paths the
runtime passes, and ``environ`` is a str copy of the environment taken at import (the
runtime only reads it); S_IS* and S_IF* are stat's. A test checks that every ``os.NAME``
those modules use is here, and that a dispatcher call never imports os.
"""

import sys

import posix
# The names the runtime's modules use, as os.NAME (so unused here).
from posix import (  # noqa: F401  # pylint: disable=unused-import
    F_OK, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_RDWR,
    O_WRONLY, P_PID, POSIX_SPAWN_DUP2, WEXITED, WNOHANG, WNOWAIT, X_OK,
    _exit, access, chdir, chmod, chown, close, dup, dup2, fstat, ftruncate, geteuid, getpid, getppid, listdir, lseek,
    lstat, mkdir, open, posix_spawn, pread, read, readlink, rename, replace, stat, unlink, waitid, waitpid,
    waitstatus_to_exitcode, write,
)

try:  # Linux-only names: the runtime checks for them with hasattr, as it would on os
    from posix import O_TMPFILE  # noqa: F401  # pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass
try:
    from posix import MFD_CLOEXEC, memfd_create  # noqa: F401  # pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass
try:
    from posix import pidfd_open  # noqa: F401  # pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass

SEEK_SET = 0
_FS_ENCODING = sys.getfilesystemencoding()
environ = {k.decode(_FS_ENCODING, "surrogateescape"): v.decode(_FS_ENCODING, "surrogateescape")
           for k, v in posix.environ.items()}

S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000  # stat's


def S_ISDIR(mode: int) -> bool:
    return mode & S_IFMT == S_IFDIR


def S_ISREG(mode: int) -> bool:
    return mode & S_IFMT == S_IFREG


def S_ISLNK(mode: int) -> bool:
    return mode & S_IFMT == S_IFLNK


def _mode(path: str, follow: bool):
    try:
        return (stat(path) if follow else lstat(path)).st_mode
    except (OSError, ValueError):
        return None


def makedirs(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    """os.makedirs for an absolute path."""
    parent = dirname(name)
    if parent and parent != name and _mode(parent, True) is None:
        makedirs(parent, mode, exist_ok=True)
    try:
        mkdir(name, mode)
    except OSError:
        if not exist_ok or not isdir(name):
            raise


def basename(path: str) -> str:
    return path[path.rfind("/") + 1:]


def dirname(path: str) -> str:
    head = path[:path.rfind("/") + 1]
    return head.rstrip("/") or head


def isdir(path: str) -> bool:
    m = _mode(path, True)
    return m is not None and S_ISDIR(m)


def isfile(path: str) -> bool:
    m = _mode(path, True)
    return m is not None and S_ISREG(m)


def islink(path: str) -> bool:
    m = _mode(path, False)
    return m is not None and S_ISLNK(m)


def lexists(path: str) -> bool:
    return _mode(path, False) is not None


class path:  # pylint: disable=invalid-name  # stands for os.path
    """The os.path functions the runtime uses."""
    basename = staticmethod(basename)
    dirname = staticmethod(dirname)
    isdir = staticmethod(isdir)
    isfile = staticmethod(isfile)
    islink = staticmethod(islink)
    lexists = staticmethod(lexists)
