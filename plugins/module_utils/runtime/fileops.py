# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file operations for the installer and the host CLI: nothing half-written, ever.

A file is written to a temporary name in its own directory, flushed to disk, given its mode
and owner, then renamed over the target; the directory is fsynced so the rename survives a
crash. A reader (libvirt, the dispatcher) sees the old file or the new one, never a mix.
"""
import os
import tempfile

TEMP_SUFFIX = ".virthooks-tmp"


def under(root: str, path: str) -> str:
    """``path`` (absolute, as the host sees it) inside the ``root`` prefix ('' = no prefix)."""
    return root.rstrip("/") + path if root else path


def host_path(root: str, path: str) -> str:
    """A path under ``root`` as the host sees it (the prefix taken off)."""
    prefix = root.rstrip("/")
    return path[len(prefix):] if prefix and path.startswith(prefix + "/") else path


def read_bytes(path: str):
    """The file's content, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_fd(fd: int, data: bytes, mode: int, uid: int = -1, gid: int = -1) -> None:
    """Write all of data to a new file's fd, give it its mode and owner (-1 keeps ours), flush it to disk."""
    from .runlog import write_all       # a write only: a deploy that changes nothing (paths, states) needs no log module
    write_all(fd, data)
    os.fchmod(fd, mode)
    if uid != -1 or gid != -1:
        os.fchown(fd, uid, gid)
    os.fsync(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o644, uid: int = -1, gid: int = -1) -> None:
    """Replace path with data atomically, with the given mode and owner (-1 keeps ours)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=TEMP_SUFFIX, dir=directory)
    try:
        write_fd(fd, data, mode, uid, gid)
        os.close(fd)
        fd = -1
        os.rename(tmp, path)
    except BaseException:
        if fd != -1:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def file_state(path: str):
    """(content or None, mode, uid, gid) of a regular file; content None if absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None, None, None
    with open(path, "rb") as f:
        return f.read(), st.st_mode & 0o7777, st.st_uid, st.st_gid


def ensure_dir(path: str, mode: int = 0o755, uid: int = -1, gid: int = -1) -> bool:
    """Create a directory (and parents) if missing; fix its mode/owner. True if anything changed."""
    changed = False
    if not os.path.isdir(path):
        os.makedirs(path, mode)
        changed = True
    st = os.stat(path)
    if st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed = True
    if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
        os.chown(path, uid, gid)
        changed = True
    return changed


def atomic_symlink(path: str, target: str, uid: int = -1, gid: int = -1) -> None:
    """Point the symlink path at target in one rename (a reader sees the old link or the new one)."""
    tmp = path + TEMP_SUFFIX
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    if uid != -1 or gid != -1:
        os.lchown(tmp, uid, gid)
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def diff_text(data) -> str:
    """File content as text for a diff (binary files are summarised)."""
    if data is None:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "<%d bytes of binary data>" % len(data)
