# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The generation one hook call reads: ``hooks/virthooks/current`` resolved once, and locked.

This is all of generations.py a hook call needs, apart so that the dispatcher does not load the
code of deploys, rollbacks and pruning on every guest start (see generations.py for the layout
and why a shared lock on the generation's directory keeps a call on one whole generation).
"""

from . import hostos as os  # os without importing os (0.9 ms at start-up): see hostos
from .layout import CURRENT


def open_current(own: str):
    """(directory, generation id, fd holding a shared lock on it) for one hook call.

    Before the first generation (a host deployed by an older version), the state lives in
    hooks/virthooks/ itself: (own, '', -1).
    """
    import fcntl
    link_path = "%s/%s" % (own, CURRENT)
    for _attempt in range(10):
        try:
            link = os.readlink(link_path)
        except FileNotFoundError:
            # The layout before generations. Lock hooks/virthooks/ itself, then look again: the
            # first deploy switches to a generation and only then, holding this lock exclusively,
            # replaces config.json and removes scripts/, so a call sees one state or the other.
            fd = os.open(own, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_SH)
            if not os.path.lexists(link_path):
                return own, "", fd
            os.close(fd)
            continue
        base = "%s/%s" % (own, link)
        try:
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:   # pruned between the readlink and the open: look again
            continue
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            same = os.stat(base).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if same:
            return base, link.rsplit("/", 1)[-1], fd
        os.close(fd)
    raise OSError("%s kept changing while it was being read" % link_path)
