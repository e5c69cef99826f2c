# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host's deployed hooks are, in a form peers can be compared on (the hooks_state module).

Read-only. Paths that differ between hosts by construction (the hooks directory itself, the log file)
are kept out of what is compared, so that two hosts that would run the same scripts the same way
compare equal.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import subprocess

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.entrypoint import comparable
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.events import DRIVERS, GUEST_DRIVERS
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.layout import (
    CONFIG_FILE, CURRENT, LIB_CURRENT, LIB_DIR, META_FILE, OWN_DIR, RUNTIME_PACKAGE, SCRIPTS_DIR)
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import (
    DROPIN_DIR, DROPIN_SUFFIX, RULE_DEFAULTS, ConfigError, dropin_dir, is_backup_name, load_config, steps_for_event)

DEFAULT_EVENTS = ("prepare begin", "migrate begin")
VIRSH_TIMEOUT = 30
HOOKS_DIR_TOKEN = "<hooks_dir>"
_VERSION_LINE = re.compile(r'^VERSION\s*=\s*["\']([^"\']*)["\']', re.M)


READ_MAX = 16 << 20     # the most of one file the check reads: scripts are at most 1 MiB (install.DEFAULT_MAX_SIZE)


class Unreadable(OSError):
    """A file the drift check will not read: not a regular file, or larger than READ_MAX."""


def read_bounded(path: str, follow: bool = False, limit: int = READ_MAX) -> bytes:
    """A regular file's bytes, never blocking (a FIFO), never reading a device or more than limit bytes.

    follow: whether a symlink is followed (the per-guest tree's, as the dispatcher does); our own
    files are never symlinks. Raises OSError (Unreadable for what is not read).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise Unreadable("%s: a symlink, not a regular file" % path) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Unreadable("%s: not a regular file (%s)" % (path, _kind(st.st_mode)))
        if st.st_size > limit:
            raise Unreadable("%s: too large (%d bytes, over the %d-byte limit of the drift check): not read"
                             % (path, st.st_size, limit))
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise Unreadable("%s: too large (it grew past the %d-byte limit of the drift check while it was "
                             "read): not read" % (path, limit))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "mode %o" % stat.S_IFMT(mode)


def file_digest(path: str, replace: str = "", follow: bool = False, normalize=None) -> str:
    """sha256 of a file's content; for a file that is not read, why instead ('unreadable: <error>',
    'not a regular file (a FIFO)', 'too large (<size> bytes, ...): not read'), so that peers still
    compare on it. `replace` is taken out first, then `normalize` (bytes to bytes) applied."""
    try:
        data = read_bounded(path, follow)
    except Unreadable as exc:
        return str(exc)[len(path) + 2:]
    except OSError as exc:
        return "unreadable: %s" % (exc.strerror or exc)
    if replace:
        data = data.replace(replace.encode("utf-8", "surrogateescape"), HOOKS_DIR_TOKEN.encode())
    if normalize is not None:
        data = normalize(data)
    return hashlib.sha256(data).hexdigest()


def runtime_version(own: str) -> dict:
    """The installed runtime: its version and the digest directory lib/current points to."""
    lib = "%s/%s" % (own, LIB_DIR)
    try:
        digest = os.readlink("%s/%s" % (lib, LIB_CURRENT)).rstrip("/").rsplit("/", 1)[-1]
    except OSError:
        return {"version": None, "lib": None}
    version = None
    try:
        text = read_bounded("%s/%s/%s/__init__.py" % (lib, LIB_CURRENT, RUNTIME_PACKAGE)).decode("utf-8", "replace")
        match = _VERSION_LINE.search(text)
        version = match.group(1) if match else None
    except OSError:
        pass
    return {"version": version, "lib": digest}


def comparable_rules(config: dict) -> list:
    """The normalized rules, by name, with what the dispatcher uses of them."""
    return sorted(config["rules"], key=lambda r: r["name"])


def script_digests(generation: str) -> dict:
    """{script file name: sha256} of the current generation's scripts/."""
    directory = "%s/%s" % (generation, SCRIPTS_DIR)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return {}
    return {name: file_digest("%s/%s" % (directory, name)) for name in names}


def entry_points(hooks_dir: str) -> dict:
    """{driver: sha256 of hooks/<driver>, the hooks directory's path and the bootstrap compiled by the host's
    Python taken out} for each that exists (peers on other Python versions agree on the same entry point)."""
    found = {}
    for driver in DRIVERS:
        path = "%s/%s" % (hooks_dir, driver)
        if os.path.isfile(path):
            found[driver] = file_digest(path, replace=hooks_dir, normalize=comparable)
    return found


def tree_digests(hooks_dir: str) -> dict:
    """{'qemu.d/<guest>/<op>/<sub>/<file>': sha256 (+ ' x' when executable)} of the per-guest trees."""
    found = {}
    for driver in GUEST_DRIVERS + ("network",):
        top = "%s/%s.d" % (hooks_dir, driver)
        if not os.path.isdir(top):
            continue
        for dirpath, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, hooks_dir)
                found[rel] = file_digest(path, follow=True) + (" x" if os.access(path, os.X_OK) else "")
    return found


def dropins(hooks_dir: str) -> dict:
    """{'rules.d/<file>': {'digest', 'drivers', 'rules', 'problem'}} of the host's drop-in rule files
    (hooks/virthooks/rules.d/*.json, as the dispatcher picks them): rules no deploy manages. `drivers` and
    `rules` are what the file declares (the dispatcher skips a file it cannot use: `virthooks validate`
    says why); `problem` is why the file could not be read as JSON, else None."""
    directory = dropin_dir(hooks_dir)
    try:
        names = sorted(os.listdir(directory), key=lambda n: n.encode("utf-8", "surrogateescape"))
    except OSError:
        return {}
    return {"%s/%s" % (DROPIN_DIR, name): dropin_entry("%s/%s" % (directory, name)) for name in names
            if name.endswith(DROPIN_SUFFIX) and not is_backup_name(name)}


def dropin_entry(path: str) -> dict:
    """One drop-in file as dropins() reports it, read once (bounded, a symlink followed as the dispatcher does)."""
    entry = {"digest": None, "drivers": [], "rules": [], "problem": None}
    try:
        data = read_bounded(path, follow=True)
    except Unreadable as exc:
        entry["digest"] = entry["problem"] = str(exc)[len(path) + 2:]
        return entry
    except OSError as exc:
        entry["digest"] = entry["problem"] = "unreadable: %s" % (exc.strerror or exc)
        return entry
    entry["digest"] = hashlib.sha256(data).hexdigest()
    try:
        raw = json.loads(data.decode("utf-8"))
    except ValueError as exc:           # UnicodeDecodeError and JSONDecodeError alike
        entry["problem"] = "not valid JSON: %s" % exc
        return entry
    items = [item for item in (raw if isinstance(raw, list) else [raw]) if isinstance(item, dict)]
    drivers = {str(item.get("driver", RULE_DEFAULTS["driver"])) for item in items}
    entry["drivers"] = sorted(drivers, key=lambda d: (DRIVERS.index(d) if d in DRIVERS else len(DRIVERS), d))
    entry["rules"] = [str(item.get("name")) for item in items]
    return entry


def has_lxml(python: str) -> bool:
    """Whether the dispatcher's Python can import lxml (as xmlcond does: without, then with site)."""
    code = "import sys\ntry:\n import lxml.etree\nexcept ImportError:\n import site; site.main(); import lxml.etree\n"
    try:
        return subprocess.run([python, "-IS", "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def xpath_state(rules: list, lxml: bool) -> dict:
    """Which rules need lxml for their condition, and those this host cannot evaluate."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.xmlcond import ENGINE_SUBSET, ConditionError, check
    needs = []
    for rule in rules:
        if rule.get("xpath"):
            try:
                check(rule["xpath"], rule.get("namespaces") or {}, engine=ENGINE_SUBSET)
            except ConditionError:
                needs.append(rule["name"])
    return {"lxml": lxml, "rules_needing_lxml": needs, "unsatisfied": [] if lxml else needs}


def list_guests(virsh: str, uri: str) -> dict:
    """{guest: XML} of every guest libvirt defines here (virsh list --all, virsh dumpxml)."""
    names = subprocess.run([virsh, "-c", uri, "list", "--all", "--name"], capture_output=True, text=True,
                           errors="replace", timeout=VIRSH_TIMEOUT, check=True).stdout.split("\n")
    guests = {}
    for name in (n.strip() for n in names):
        if name:
            guests[name] = subprocess.run([virsh, "-c", uri, "dumpxml", "--", name], capture_output=True, text=True,
                                          errors="replace", timeout=VIRSH_TIMEOUT, check=True).stdout
    return guests


def read_xml_dir(directory: str) -> dict:
    """{guest: XML} from <directory>/<guest>.xml files; OSError naming a file that cannot be used."""
    guests = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".xml") and not name.startswith("."):
            path = os.path.join(directory, name)
            data = read_bounded(path, follow=True)
            try:
                guests[name[:-4]] = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise OSError("%s is not UTF-8 (byte 0x%02x at offset %d)" % (path, data[exc.start], exc.start)) from None
    return guests


def guest_steps(config: dict, hooks_dir: str, generation: str, guests: dict, events, driver: str = "qemu") -> dict:
    """{guest: {event: [script names that would run, in order]}}; XPath conditions evaluated on its XML."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.xmlcond import ConditionError, Document
    out = {}
    for guest in sorted(guests):
        document = Document(guests[guest].encode("utf-8"))
        per_event = {}
        for event in events:
            operation, _sep, suboperation = event.partition(" ")
            steps, notes = steps_for_event(config, hooks_dir, generation, driver, guest, operation, suboperation or "-", "-")
            names = []
            for step in steps:
                if step.xpath:
                    try:
                        if not document.evaluate(step.xpath, step.namespaces):
                            continue
                    except ConditionError as exc:
                        names.append("%s (condition error: %s)" % (step.name, exc))
                        continue
                names.append(step.name)
            per_event[event] = names + ["note: %s" % n for n in notes]
        out[guest] = per_event
    return out


def host_state(hooks_dir: str, python: str) -> dict:
    """Everything peers are compared on; `generation` is '' on a host without a deploy."""
    own = "%s/%s" % (hooks_dir, OWN_DIR)
    generation = "%s/%s" % (own, CURRENT)
    state = {"hooks_dir": hooks_dir, "runtime": runtime_version(own), "generation": "", "rules": [],
             "scripts": {}, "entry_points": entry_points(hooks_dir), "tree": tree_digests(hooks_dir),
             "dropins": dropins(hooks_dir),
             "xpath": {"lxml": False, "rules_needing_lxml": [], "unsatisfied": []}, "config_error": None}
    try:
        state["generation"] = os.readlink(generation).rstrip("/").rsplit("/", 1)[-1]
    except OSError:
        return state
    try:
        path = "%s/%s" % (generation, CONFIG_FILE)
        config = load_config(path, strict=False, data=read_bounded(path))
    except (OSError, ConfigError) as exc:
        state["config_error"] = str(exc)
        return state
    state["rules"] = comparable_rules(config)
    state["scripts"] = script_digests(generation)
    state["xpath"] = xpath_state(config["rules"], has_lxml(meta_python(generation) or python))
    state["_config"] = config
    return state


def meta_python(generation: str) -> str:
    """The interpreter the deploy chose for the dispatcher (meta.json), or ''."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.minijson import JSONError, loads
    try:
        meta = loads(read_bounded("%s/%s" % (generation, META_FILE)))
    except (OSError, JSONError):
        return ""
    python = meta.get("python") if isinstance(meta, dict) else None
    return python if isinstance(python, str) and os.path.isabs(python) else ""
