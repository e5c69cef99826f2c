# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether root may run a file: the whole path to it, not only the file.

A hook runs as root. A file that is root's and not writable by others proves nothing if a
directory on the way to it (or a symlink on the way) belongs to someone else: that user can
swap the directory, or point a symlink at any root-owned program (``qemu.d/<guest>/prepare/
begin -> /usr/sbin`` would make root run ``reboot``). So the check resolves the path one
component at a time, from ``/``, and requires of everything it passes through:

- directories: owned by root, not writable by group or others (a sticky directory such as
  ``/tmp`` is accepted: others cannot rename or remove root's entries in it);
- symlinks: owned by root (their targets are resolved and checked the same way);
- the file: a regular file, owned by root, not writable by group or others, executable;
- for a ``#!`` script, its interpreter, checked the same way (a script root trusts run by an
  interpreter a user can replace would be the user's code).

The file is then opened (``O_NOFOLLOW``) and its open file is checked again with ``fstat``:
it must be the very inode the walk found. Executing by path after that is race-free for
anyone but root: nothing on the path can be changed by another user between the check and
the ``execve``, which is why the dispatcher can keep the path as ``$0`` (scripts that find
their helpers with ``dirname "$0"`` keep working) instead of executing ``/dev/fd/N``.

Everything here costs a few ``lstat`` calls per script, with directories remembered for
the rest of the hook call.
"""

from . import hostos as os  # os without importing os (0.9 ms at start-up): see hostos
from .hostos import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG

_STICKY = 0o1000
_GROUP_OTHER_WRITE = 0o022
MAX_SYMLINKS = 40
HEAD_BYTES = 256
ELF_MAGIC = b"\x7fELF"
# The runtime package's sub-folders root imports from: its bytecode cache, the library's blocks, the CLI's
# subcommands, and their caches.
PACKAGE_SUBDIRS = ("__pycache__", "library", "library/__pycache__", "commands", "commands/__pycache__")
NO_SHEBANG = ("does not start with '#!' (or an ELF header): libvirt runs hooks directly and would fail "
              "with 'Exec format error'")


class Untrusted(Exception):
    """The path cannot be run as root; the message says what is wrong with which part."""


def _mode(st) -> str:
    return "%04o" % (st.st_mode & 0o7777)


def interpreter_of(head: bytes) -> str:
    """The interpreter named on a #! line ('' if none)."""
    if not head.startswith(b"#!"):
        return ""
    line = head[2:].split(b"\n", 1)[0].strip()
    return line.split()[0].decode("utf-8", "surrogateescape") if line else ""


def format_problem(head: bytes) -> str:
    """Why the kernel could not execute a file starting with these bytes ('' if it can)."""
    if head.startswith(ELF_MAGIC) or head.startswith(b"#!"):
        return ""
    return NO_SHEBANG


class TrustCheck(object):
    """Checks paths for one hook call, remembering the directories already found safe."""

    def __init__(self):
        self.owners = (0, os.geteuid())
        self._dirs = {}              # checked directory -> None (safe) or its problem

    def _directory(self, path: str, st) -> str:
        known = self._dirs.get(path, False)
        if known is not False:
            return known or ""
        problem = ""
        if st.st_uid not in self.owners:
            problem = "directory %s is owned by uid %d, not root" % (path, st.st_uid)
        elif st.st_mode & _GROUP_OTHER_WRITE and not st.st_mode & _STICKY:
            problem = "directory %s is writable by group or others (mode %s)" % (path, _mode(st))
        self._dirs[path] = problem or None
        return problem

    def resolve(self, path: str, missing_ok: bool = False):
        """(real path, lstat of the file) after checking every directory and symlink on the way;
        (None, None) when missing_ok and the file itself does not exist.

        Raises Untrusted naming the first part that is not root's alone.
        """
        if not path.startswith("/"):
            raise Untrusted("%s is not an absolute path" % path)
        if "/" not in self._dirs:
            try:
                self._directory("/", os.lstat("/"))
            except OSError as exc:
                raise Untrusted("/ cannot be checked: %s" % (exc.strerror or exc))
        if self._dirs["/"]:
            raise Untrusted(self._dirs["/"])
        todo = [p for p in reversed(path.split("/")) if p]
        current = "/"
        links = 0
        while todo:
            name = todo.pop()
            if name == ".":
                continue
            if name == "..":
                current = os.path.dirname(current) or "/"
                continue
            candidate = (current if current != "/" else "") + "/" + name
            if todo and self._dirs.get(candidate, False) is None:
                current = candidate     # a directory found safe in this call: no one else can swap it
                continue
            try:
                st = os.lstat(candidate)
            except OSError as exc:
                if missing_ok and not todo and isinstance(exc, FileNotFoundError):
                    return None, None
                raise Untrusted("cannot be used: %s: %s" % (candidate, exc.strerror or exc))
            kind = st.st_mode & S_IFMT
            if kind == S_IFLNK:
                if st.st_uid not in self.owners:
                    raise Untrusted("symlink %s is owned by uid %d, not root" % (candidate, st.st_uid))
                links += 1
                if links > MAX_SYMLINKS:
                    raise Untrusted("%s: too many levels of symbolic links" % path)
                try:
                    target = os.readlink(candidate)
                except OSError as exc:
                    raise Untrusted("cannot read symlink %s: %s" % (candidate, exc.strerror or exc))
                if target.startswith("/"):
                    current = "/"
                todo.extend(p for p in reversed(target.split("/")) if p)
                continue
            if todo:
                if kind != S_IFDIR:
                    raise Untrusted("%s is not a directory" % candidate)
                problem = self._directory(candidate, st)
                if problem:
                    raise Untrusted(problem)
                current = candidate
                continue
            return candidate, st
        raise Untrusted("%s names a directory, not a file" % path)

    @classmethod
    def _file_problem(cls, real: str, st) -> str:
        """What a file root runs must be: what it reads must be (_data_problem), and executable."""
        problem = cls._data_problem(real, st)
        if problem:
            return problem
        if not st.st_mode & 0o111:
            return "%s is not executable (mode %s)" % (real, _mode(st))
        return ""

    def _open_checked(self, path: str, problem_of, missing_ok: bool = False):
        """(fd, its fstat) of path after checking the whole path to it and the file itself with
        problem_of(real, st) -> reason or ""; opened without blocking (a FIFO) or following a last
        symlink swapped in, and checked again as the very inode opened. Raises Untrusted; (None,
        None) when missing_ok and the file does not exist."""
        real, st = self.resolve(path, missing_ok)
        if real is None:
            return None, None
        problem = problem_of(real, st)
        if problem:
            raise Untrusted(problem)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise Untrusted("cannot be opened: %s: %s" % (real, exc.strerror or exc))
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                raise Untrusted("%s changed while it was being checked" % real)
            problem = problem_of(real, opened)
            if problem:
                raise Untrusted(problem)
        except BaseException:
            os.close(fd)
            raise
        return fd, opened

    def check_file(self, path: str, interpreter: bool = True) -> bytes:
        """The first bytes of path, after checking it may be run as root; raises Untrusted."""
        fd, _opened = self._open_checked(path, self._file_problem)
        try:
            head = os.pread(fd, HEAD_BYTES, 0)
        finally:
            os.close(fd)
        if interpreter and head.startswith(b"#!"):
            program = interpreter_of(head)
            if not program.startswith("/"):
                raise Untrusted("its #! line must name an absolute interpreter path (got %r)" % program)
            try:
                self.check_file(program, interpreter=False)
            except Untrusted as exc:
                raise Untrusted("its interpreter %s cannot be trusted: %s" % (program, exc))
        return head

    @staticmethod
    def _data_problem(real: str, st) -> str:
        if (st.st_mode & S_IFMT) != S_IFREG:
            return "%s is not a regular file" % real
        if st.st_uid not in (0, os.geteuid()):
            return "%s is owned by uid %d, not root" % (real, st.st_uid)
        if st.st_mode & _GROUP_OTHER_WRITE:
            return "%s is writable by group or others (mode %s)" % (real, _mode(st))
        return ""

    def read_data(self, path: str, missing_ok: bool = False) -> bytes:
        """The bytes of a file root acts on (config.json), after checking the whole path to it as
        for a script (it need not be executable); raises Untrusted. Read from the very inode
        checked, never blocking (a FIFO) and never following a last symlink swapped in. None when
        missing_ok and the file does not exist."""
        fd, opened = self._open_checked(path, self._data_problem, missing_ok)
        if fd is None:
            return None
        try:
            chunks = []
            while True:
                chunk = os.read(fd, max(opened.st_size + 1, 65536))
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        finally:
            os.close(fd)

    def tree_problems(self, directory: str, subdirs: tuple = PACKAGE_SUBDIRS) -> list:
        """Why root must not import from a package directory ([] if it may): the whole path to it,
        the package and its subdirs closed to others (sticky or not), and each entry of them a
        regular file root's alone, the subdirs directories root's alone (the entry point's bootstrap,
        entrypoint.LIB_CHECK, checks the same of the files a dispatcher call can import, before it
        imports them; the library's launcher checks library/ before it imports a block, the CLI
        commands/ before it imports a subcommand)."""
        try:
            real = os.path.dirname(self.resolve(directory + "/__init__.py")[0])
        except Untrusted as exc:
            return [str(exc)]
        wheres = [real] + ["%s/%s" % (real, sub) for sub in subdirs]
        problems = [problem for problem in map(self._sticky_open, wheres) if problem]
        for where in wheres:
            try:
                names = sorted(os.listdir(where))
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append("cannot list %s: %s" % (where, exc.strerror or exc))
                continue
            for name in names:
                path = where + "/" + name
                try:
                    st = os.lstat(path)
                except OSError as exc:
                    problems.append("cannot be checked: %s: %s" % (path, exc.strerror or exc))
                    continue
                problem = self._directory(path, st) if path[len(real) + 1:] in subdirs and \
                    (st.st_mode & S_IFMT) == S_IFDIR else self._data_problem(path, st)
                if problem:
                    problems.append(problem)
        return problems

    @staticmethod
    def _sticky_open(path: str) -> str:
        """A directory root imports from must not be writable by group or others even when sticky
        (a new module could appear there after the check): the case _directory accepts."""
        try:
            st = os.lstat(path)
        except OSError:
            return ""               # missing or unreadable: reported by the walk or the listing
        if (st.st_mode & S_IFMT) == S_IFDIR and st.st_mode & _STICKY and st.st_mode & _GROUP_OTHER_WRITE:
            return "directory %s is writable by group or others (mode %s)" % (path, _mode(st))
        return ""

    def refusal(self, path: str) -> str:
        """Why root must not run path ('' if it may): the whole path, the file, its interpreter."""
        try:
            self.check_file(path)
        except Untrusted as exc:
            return str(exc)
        return ""
