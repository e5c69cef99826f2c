# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A deploy's stamp: how hook_runtime tells, without planning, that a re-run changes nothing.

Most runs of the role on a hypervisor change nothing. Planning one reads and compares every file of the
runtime, the current generation and the entry points, and the module's payload compiles the installer's code
to do it (Ansible's payload is a zip: nothing it imports is ever cached as bytecode).

After a run that leaves the host as its request wants it, hook_runtime writes ``hooks/virthooks/.stamp.json``
(0600, root's), which holds:

- the request's digest: the module's options (the deployer's name aside, which only a new generation records),
  the hooks directory, the entry points' Python, and the collection's code the payload carries;
- the host's digest: ``lstat`` of every entry under ``hooks/virthooks/`` (the stamp and the deploy lock aside),
  of ``hooks/<driver>`` and of its adopted hook for every driver, and of the CLI link; whether each script's
  interpreter can be run;
- the run's result and warnings.

The stamp is written only when a plan made against that very host state changes nothing (the host's digest is
taken before and after planning, and must be the same). So a stamp is always true, however old: a run whose
two digests are the stamp's gets its result again, and imports neither the installer nor the rules. Anything
else plans as before: another request or version of the collection, a file edited, chmod'ed, chown'ed,
replaced or renamed (a file's ctime changes with any of those, and no user can set it), a file added or
removed, an interpreter gone.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import stat

from .runtime.events import DRIVERS
from .runtime.fileops import atomic_write
from .runtime.layout import ADOPTED_SUFFIX, LOCK_FILE, OWN_DIR
from .scripts import interpreter_found

STAMP_FILE = ".stamp.json"
FORMAT = 1
MAX_SIZE = 1 << 20
# Options that do not change what a deploy plans (the deployer is written into a new generation only).
NOT_PLANNED = ("deployer",)
# Where the collection's code sits in a module's payload.
PACKAGE = "ansible_collections/virthooks/libvirt/"


def stamp_path(hooks_dir: str) -> str:
    return "%s/%s/%s" % (hooks_dir.rstrip("/"), OWN_DIR, STAMP_FILE)


@functools.lru_cache(maxsize=None)
def code_identity() -> str:
    """A digest of the collection's code this module runs: the payload's entries (name, CRC, size) when it runs
    from Ansible's zip, else the files themselves (a test, or an unpacked payload)."""
    digest = hashlib.sha256()
    archive = getattr(globals().get("__loader__"), "archive", "")
    if archive:
        import zipfile
        with zipfile.ZipFile(archive) as payload:
            for info in sorted(payload.infolist(), key=lambda i: i.filename):
                if info.filename.startswith(PACKAGE):
                    digest.update(("%s %08x %d\0" % (info.filename, info.CRC, info.file_size)).encode())
        return digest.hexdigest()
    plugins = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for top in ("module_utils", "modules"):
        for directory, dirs, files in sorted(os.walk(os.path.join(plugins, top))):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    with open(path, "rb") as f:
                        digest.update(os.path.relpath(path, plugins).encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()


def request_digest(params: dict, hooks_dir: str, python: str) -> str:
    """The digest of what a deploy is asked to do, and with what code."""
    request = {"code": code_identity(), "hooks_dir": hooks_dir, "python": python,
               "params": {k: v for k, v in params.items() if k not in NOT_PLANNED}}
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=repr).encode()).hexdigest()


def _signature(st, path: str) -> list:
    """What changes when the entry at path changes: content, mode, owner, or the entry itself."""
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        return ["d", st.st_mode, st.st_uid, st.st_gid, st.st_ino]
    if kind == stat.S_IFLNK:
        return ["l", os.readlink(path), st.st_uid, st.st_gid, st.st_ino, st.st_ctime_ns]
    return ["f", st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _walk(directory: str, rel: str, found: list) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        name = rel + entry.name
        if name in (STAMP_FILE, LOCK_FILE):
            continue
        st = entry.stat(follow_symlinks=False)
        found.append([name] + _signature(st, entry.path))
        if stat.S_ISDIR(st.st_mode):
            _walk(entry.path, name + "/", found)


def host_digest(hooks_dir: str, cli_link: str, interpreters: list, root: str = "") -> str:
    """The digest of the host's state a deploy's plan reads (see the module's doc); interpreters are the
    scripts' #! paths as they name them."""
    hooks_dir = hooks_dir.rstrip("/")
    found = []
    paths = ["%s/%s%s" % (hooks_dir, driver, suffix) for driver in DRIVERS for suffix in ("", ADOPTED_SUFFIX)]
    for path in paths + ([cli_link] if cli_link else []):
        try:
            found.append([path] + _signature(os.lstat(path), path))
        except FileNotFoundError:
            found.append([path])
    _walk("%s/%s" % (hooks_dir, OWN_DIR), "", found)
    found.append([[path, interpreter_found(path, root)] for path in interpreters])
    return hashlib.sha256(json.dumps(found, default=repr).encode("utf-8", "surrogateescape")).hexdigest()


def read_stamp(hooks_dir: str):
    """The stamp's content, or None when there is none that root alone could have written."""
    try:
        fd = os.open(stamp_path(hooks_dir), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077 or st.st_size > MAX_SIZE:
            return None
        try:
            stamp = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError):
            return None
    return stamp if isinstance(stamp, dict) and stamp.get("format") == FORMAT else None


def recall(params: dict, hooks_dir: str, python: str, cli_link: str):
    """The stamp ({'result', 'warnings'}) when this request on this host state is the one it records, else
    None: then the run plans."""
    stamp = read_stamp(hooks_dir)
    try:
        if (stamp is None or stamp.get("request") != request_digest(params, hooks_dir, python)
                or stamp.get("host") != host_digest(hooks_dir, cli_link, list(stamp.get("interpreters") or []),
                                                    params["root"])):
            return None
    except (OSError, ValueError, TypeError):
        return None
    return stamp


def write_stamp(params: dict, hooks_dir: str, python: str, host: str, interpreters: list, result: dict,
                warnings: list) -> None:
    """Record that this request on the host state of digest host plans no change, with its result."""
    stamp = {"format": FORMAT, "request": request_digest(params, hooks_dir, python), "host": host,
             "interpreters": interpreters, "result": result, "warnings": warnings}
    atomic_write(stamp_path(hooks_dir), (json.dumps(stamp, sort_keys=True) + "\n").encode(), 0o600)


def interpreters_of(scripts) -> list:
    """The #! paths of declared scripts (the installer's form: {'name', 'state', 'data'}), which a deploy
    checks can be run."""
    from .runtime.trust import interpreter_of
    return sorted({interpreter_of(s["data"]) for s in scripts or () if s.get("state", "present") == "present"} - {""})
