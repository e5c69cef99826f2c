# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generations: a host's whole dispatch state, switched in one step, and kept for rollback.

A deploy writes ``hooks/virthooks/generations/<id>/`` whole (``config.json``, ``scripts/<name>``,
``meta.json``) under a temporary name, renames it into place, then points
``hooks/virthooks/current`` at it with one rename of a symlink. A hook call resolves ``current``
once and reads and runs everything from that directory while holding a shared lock on it: it
sees one deploy or the other, never the rules of one with the scripts of another, and a
generation is never removed under a running call (pruning takes the lock exclusively, without
waiting, and skips a generation in use).

``<id>`` is ``<UTC time>-<content digest>``, so names sort by age. ``meta.json`` says when, by
whom, what (rule and script counts, the drivers given an entry point, the interpreter): what
``virthooks generations`` lists and what ``virthooks rollback`` needs to put the entry points
back as they were.

The per-guest tree (``hooks/<driver>.d/``) is the user's and is not part of a generation.
"""

import time

from . import hostos as os  # os without importing os (0.9 ms at start-up): see hostos
from .layout import CONFIG_FILE, CURRENT, GENERATIONS_DIR, LOCK_FILE, META_FILE, SCRIPTS_DIR

# A hook call never imports this module: it opens the current generation through current.py.
# What the deploys and the CLI need here (hashlib, shutil, fileops with tempfile) is imported
# where it is used.

NEW_PREFIX = ".new-"
REMOVING_PREFIX = ".removing-"
LOCK_TIMEOUT = 120.0


class GenerationError(Exception):
    """A generation cannot be used; the message says which and why."""


def generations_dir(own: str) -> str:
    return "%s/%s" % (own, GENERATIONS_DIR)


def generation_path(own: str, gen_id: str) -> str:
    return "%s/%s/%s" % (own, GENERATIONS_DIR, gen_id)


def current_id(own: str) -> str:
    """The current generation's id ('' before the first generation was made)."""
    try:
        link = os.readlink("%s/%s" % (own, CURRENT))
    except OSError:
        return ""
    return link.rsplit("/", 1)[-1]


STAMP_FORMAT = "%Y%m%dT%H%M%S"
STAMP_LEN = len("YYYYmmddTHHMMSS.ffffffZ")
_HEX = frozenset("0123456789abcdef")


def is_generation_id(name: str) -> bool:
    """Whether name is a generation id (<YYYYmmddTHHMMSS.ffffffZ>-<hex digest>), not a stray entry
    such as ``backup-x`` that an operator left in generations/."""
    stamp, digits = name[:STAMP_LEN], name[:8] + name[9:15] + name[16:22]
    return (len(name) > STAMP_LEN + 1 and name[STAMP_LEN] == "-" and stamp[8] == "T" and stamp[15] == "."
            and stamp[22] == "Z" and digits.isascii() and digits.isdigit() and set(name[STAMP_LEN + 1:]) <= _HEX)


def all_ids(own: str) -> list:
    """Every complete generation, oldest first (entries that are not generations are ignored)."""
    try:
        names = os.listdir(generations_dir(own))
    except OSError:
        return []
    return sorted(n for n in names if is_generation_id(n) and os.path.isdir(generation_path(own, n)))


# What meta.json may hold, by field (the installer writes them all; older ones may lack some).
META_FIELDS = {"id": (str,), "time": (str,), "deployer": (str, type(None)), "digest": (str,), "rules": (int,),
               "scripts": (int,), "drivers": (list,), "python": (str,), "tree": (bool,), "runtime": (str,),
               "previous": (str,), "version": (str,)}


def meta_problem(meta) -> str:
    """Why a parsed meta.json is not one the installer wrote ('' if it is)."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    for key, types in sorted(META_FIELDS.items()):
        if key not in meta:
            continue
        value = meta[key]
        fits = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if fits and key == "drivers":
            fits = all(isinstance(d, str) for d in value)
        if fits:
            continue
        return "%r is not a %s" % (key, " or ".join("null" if t is type(None) else t.__name__ for t in types)
                                   + (" of strings" if key == "drivers" else ""))
    return ""


def read_meta(own: str, gen_id: str, strict: bool = False) -> dict:
    """A generation's meta.json ({} when it has none). A malformed one is {} too, or, when strict,
    a GenerationError naming the file and what is wrong with it."""
    from .minijson import JSONError, loads
    path = "%s/%s" % (generation_path(own, gen_id), META_FILE)
    try:
        with open(path, "rb") as f:
            meta = loads(f.read())
        problem = meta_problem(meta)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        problem = exc.strerror or str(exc)
    except JSONError as exc:
        problem = str(exc)
    if not problem:
        return meta
    if strict:
        raise GenerationError("%s is malformed: %s" % (path, problem))
    return {}


def content_digest(config: bytes, scripts: dict, extra: str = "") -> str:
    """The digest of a dispatch state: config.json, every script (name and bytes), and extra
    (what else decides the entry points: drivers, interpreter)."""
    import hashlib
    digest = hashlib.sha256()
    digest.update(b"config\0" + config + b"\0" + extra.encode("utf-8") + b"\0")
    for name in sorted(scripts):
        digest.update(b"script\0" + name.encode("utf-8") + b"\0" + scripts[name] + b"\0")
    return digest.hexdigest()[:16]


def _stamp(micros: int) -> str:
    seconds, fraction = divmod(micros, 1000000)
    return "%s.%06dZ" % (time.strftime(STAMP_FORMAT, time.gmtime(seconds)), fraction)


def _stamp_micros(gen_id: str) -> int:
    import calendar
    return calendar.timegm(time.strptime(gen_id[:15], STAMP_FORMAT)) * 1000000 + int(gen_id[16:22])


def new_id(own: str, digest: str, now: float = None) -> str:
    """A generation id that sorts after every existing one: <UTC time, microseconds>-<digest>.

    Never waits for the clock: when the newest generation is dated at or after now (a clock set
    back, a generation copied from another host), the id is the newest one's time plus 1 us.
    """
    now = time.time() if now is None else now
    micros = int(now * 1000000)
    newest = max(all_ids(own), default="")
    try:
        if newest and _stamp(micros) <= newest[:STAMP_LEN]:
            micros = _stamp_micros(newest) + 1
        stamp = _stamp(micros)
    except (ValueError, OverflowError, OSError):
        stamp = ""
    if len(stamp) != STAMP_LEN or (newest and stamp <= newest[:STAMP_LEN]):
        raise GenerationError("no generation id sorts after %s in %s: remove that generation"
                              % (newest, generations_dir(own)))
    return "%s-%s" % (stamp, digest)


# --- writing, switching, pruning (deploys and rollbacks) ----------------------------------------

class DeployLock(object):
    """One deploy or rollback at a time on a hooks directory (flock on hooks/virthooks/.lock).

    shared: a reader that must see no deploy or rollback half-way (``virthooks validate``) takes it shared,
    beside other readers; where the lock file cannot be opened (a read-only hooks directory, not root) it
    goes on without it."""

    def __init__(self, own: str, timeout: float = LOCK_TIMEOUT, shared: bool = False):
        self.path = "%s/%s" % (own, LOCK_FILE)
        self.timeout = timeout
        self.shared = shared
        self.fd = -1

    def __enter__(self):
        import fcntl
        flags = (os.O_RDONLY if self.shared else os.O_RDWR) | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            self.fd = os.open(self.path, flags, 0o600)
        except OSError:
            if not self.shared:
                raise
            return self
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    self.fd = -1
                    raise GenerationError("another deploy or rollback holds %s (waited %d s)"
                                          % (self.path, self.timeout))
                time.sleep(0.05)

    def __exit__(self, *exc):
        if self.fd != -1:
            os.close(self.fd)
        return False


def write_generation(own: str, gen_id: str, files: dict, uid: int = -1, gid: int = -1) -> str:
    """Write a generation whole under a temporary name, then rename it into place.

    files: {relative path: (bytes, mode)}. Returns its directory.
    """
    import shutil
    from .fileops import ensure_dir, fsync_dir, write_fd
    parent = generations_dir(own)
    ensure_dir(parent, 0o755, uid, gid)
    final = generation_path(own, gen_id)
    if os.path.isdir(final):
        return final
    tmp = "%s/%s%s" % (parent, NEW_PREFIX, gen_id)
    if os.path.lexists(tmp):
        shutil.rmtree(tmp)
    os.mkdir(tmp, 0o755)
    directories = {tmp}
    for rel in sorted(files):
        data, mode = files[rel]
        path = "%s/%s" % (tmp, rel)
        directory = os.path.dirname(path)
        if directory not in directories:
            ensure_dir(directory, 0o755, uid, gid)
            directories.add(directory)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            write_fd(fd, data, mode, uid, gid)
        finally:
            os.close(fd)
    for directory in sorted(directories, reverse=True):
        os.chmod(directory, 0o755)
        if uid != -1 or gid != -1:
            os.chown(directory, uid, gid)
        fsync_dir(directory)
    os.rename(tmp, final)
    fsync_dir(parent)
    return final


def switch(own: str, gen_id: str, uid: int = -1, gid: int = -1) -> None:
    """Make gen_id current: one rename of the ``current`` symlink."""
    from .fileops import atomic_symlink
    if not os.path.isdir(generation_path(own, gen_id)):
        raise GenerationError("generation %s does not exist in %s" % (gen_id, generations_dir(own)))
    atomic_symlink("%s/%s" % (own, CURRENT), "%s/%s" % (GENERATIONS_DIR, gen_id), uid, gid)


def _remove_tree(path: str) -> None:
    import shutil
    doomed = "%s/%s%s" % (os.path.dirname(path), REMOVING_PREFIX, os.path.basename(path))
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def prunable(own: str, keep: int) -> list:
    """Generations beyond the newest ``keep``, oldest first; never the current one, nor (keep > 1) the one it
    replaced (its meta.json's ``previous``: where the role's rollback of this deploy goes), which generations
    left by killed deploys, never current, would otherwise push out."""
    ids = all_ids(own)
    current = current_id(own)
    spare = {current, read_meta(own, current).get("previous") or ""} if current and keep > 1 else {current}
    return [g for g in ids[:-keep] if g not in spare] if keep > 0 else [g for g in ids if g not in spare]


def prune(own: str, keep: int) -> list:
    """Remove the generations beyond the newest ``keep``, skipping any a hook call is using."""
    import fcntl
    removed = []
    for gen_id in prunable(own, keep):
        path = generation_path(own, gen_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue            # a hook call is using it: the next deploy removes it
        try:
            _remove_tree(path)
            removed.append(gen_id)
        finally:
            os.close(fd)
    return removed


def retire_old_layout(own: str, changes_config: bool, removes_scripts: bool, uid: int = -1, gid: int = -1,
                      timeout: float = LOCK_TIMEOUT) -> bool:
    """After the first switch: make hooks/virthooks/config.json a link to the current one and remove
    the scripts/ of the layout before generations, once no hook call of that layout is running
    (they hold hooks/virthooks/ shared). False if calls kept it busy past timeout (the next deploy
    retires it)."""
    import fcntl
    import shutil
    from .fileops import atomic_symlink
    fd = os.open(own, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
        if changes_config:
            atomic_symlink("%s/%s" % (own, CONFIG_FILE), "%s/%s" % (CURRENT, CONFIG_FILE), uid, gid)
        scripts = "%s/%s" % (own, SCRIPTS_DIR)
        if removes_scripts and os.path.isdir(scripts) and not os.path.islink(scripts):
            doomed = "%s/%s%s" % (own, REMOVING_PREFIX, SCRIPTS_DIR)
            os.rename(scripts, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def remove_leftovers(own: str) -> None:
    """Half-written or half-removed generations of a run that was killed, and stale temp links."""
    import shutil
    from .fileops import TEMP_SUFFIX
    parent = generations_dir(own)
    try:
        names = os.listdir(parent)
    except OSError:
        names = []
    for name in names:
        if name.startswith(NEW_PREFIX) or name.startswith(REMOVING_PREFIX):
            shutil.rmtree("%s/%s" % (parent, name), ignore_errors=True)
    for name in (CURRENT, CONFIG_FILE):
        tmp = "%s/%s%s" % (own, name, TEMP_SUFFIX)
        if os.path.islink(tmp):
            os.unlink(tmp)
    doomed = "%s/%s%s" % (own, REMOVING_PREFIX, SCRIPTS_DIR)
    if os.path.isdir(doomed):
        shutil.rmtree(doomed, ignore_errors=True)


def read_state(directory: str) -> tuple:
    """(config.json bytes or None, {script name: bytes}) of a generation (or the old layout)."""
    try:
        with open("%s/%s" % (directory, CONFIG_FILE), "rb") as f:
            config = f.read()
    except OSError:
        config = None
    return config, read_scripts(directory)


def read_scripts(directory: str) -> dict:
    """{script name: bytes} of a generation's scripts/ (hidden names, symlinks and non-files left out)."""
    scripts = {}
    scripts_dir = "%s/%s" % (directory, SCRIPTS_DIR)
    try:
        names = sorted(os.listdir(scripts_dir))
    except OSError:
        names = []
    for name in names:
        path = "%s/%s" % (scripts_dir, name)
        if name.startswith(".") or os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            scripts[name] = f.read()
    return scripts


class Generation(object):
    """One generation as it is on disk, read once: its id, directory, meta.json, config.json and
    scripts. The rollback, the CLI and the installer read a generation through this, each file once.

    id '' stands for the layout before generations (the state in hooks/virthooks/ itself, no meta)."""

    __slots__ = ("id", "path", "meta", "config", "scripts", "_config_error")

    def __init__(self, gen_id: str, path: str, meta: dict, config, scripts: dict, config_error=None):
        self.id = gen_id
        self.path = path
        self.meta = meta                # {} when it has none (or, not strict, a malformed one)
        self.config = config            # config.json's bytes, None when it cannot be read
        self.scripts = scripts          # {name: bytes}
        self._config_error = config_error

    @classmethod
    def read(cls, own: str, gen_id: str, strict: bool = False) -> "Generation":
        """Read a generation; strict: a malformed meta.json is a GenerationError naming it."""
        path = generation_path(own, gen_id) if gen_id else own
        meta = read_meta(own, gen_id, strict) if gen_id else {}
        try:
            with open("%s/%s" % (path, CONFIG_FILE), "rb") as f:
                config, error = f.read(), None
        except OSError as exc:
            config, error = None, exc
        return cls(gen_id, path, meta, config, read_scripts(path), error)

    @classmethod
    def current(cls, own: str, strict: bool = False) -> "Generation":
        """The generation current now (the layout before generations on a host that has none)."""
        return cls.read(own, current_id(own), strict)

    def load_config(self, strict: bool = False) -> dict:
        """config.json validated as the dispatcher reads it; ConfigError or OSError names the file."""
        from .rules import load_config
        if self.config is None:
            raise self._config_error or FileNotFoundError("%s/%s: no such file" % (self.path, CONFIG_FILE))
        return load_config("%s/%s" % (self.path, CONFIG_FILE), strict=strict, data=self.config)

    def __repr__(self):
        return "Generation(%r, %d script(s))" % (self.id or self.path, len(self.scripts))
