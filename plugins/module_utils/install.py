# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Installing the runtime on a host: plan first, then apply, never half-way.

The runtime on a hypervisor is this very code: the files of plugins/module_utils that the
dispatcher needs are copied as they are, so the host runs the collection's own version.

Layout under the hooks directory::

    <driver>                                 entry points (POSIX sh), written last
    virthooks/config.json                    the rules
    virthooks/lib/current -> <digest>        symlink, swapped atomically
    virthooks/lib/<digest>/virthooks_runtime/*.py
    virthooks/adopted/<driver>               foreign hooks taken over (run as a rule)
    virthooks/scripts/<name>                 the users' scripts (see scripts.py)
    virthooks/virthooks                      the operator CLI

Every step leaves a working host: the library version directory is complete before
``current`` points at it, each file is replaced by rename, and entry points (what libvirt
runs) are written after the library and config they use. A run killed at any point leaves
the previous hooks, or the new ones, working.
"""
from __future__ import annotations

import hashlib
import json
import os
import pkgutil
import shutil

from . import runtime
from .runtime.entrypoint import file_is_ours, render_cli, render_entry_point
from .runtime.events import DRIVERS
from .fileops import TEMP_SUFFIX, atomic_write, diff_text, ensure_dir, file_state, fsync_dir, host_path, read_bytes
from .runtime.layout import (ADOPTED_DIR, CLI_FILE, CONFIG_FILE, LIB_CURRENT, LIB_DIR, OWN_DIR, RUNTIME_PACKAGE,
                     SCRIPTS_DIR)
from .runtime.rules import CONFIG_VERSION, ConfigError, normalize_config
from .runtime.xmlcond import rule_problems

VERSION = runtime.VERSION
ADOPT_PREFIX = "adopted-"
ADOPTED_TIMEOUT = 300
REMOVING_SUFFIX = ".virthooks-removing"


def looks_like_tree_helper(data) -> bool:
    """Whether a hook is the widely shared dispatcher of hooks/<driver>.d/<guest>/<op>/<sub-op>/."""
    return bool(data) and b".d/$" in data and (b"HOOKPATH" in data or b"GUEST_NAME" in data)


class InstallError(Exception):
    """Something on the host prevents the install; the message names it. Nothing was changed."""


def runtime_sources() -> dict:
    """{file name: source bytes} of the runtime package, whole: its folder (or, inside a module's
    payload, what Ansible's packer put there, which is the same files: a test checks it)."""
    files = {}
    for info in pkgutil.iter_modules(runtime.__path__):
        name = info.name + (".py" if not info.ispkg else "/__init__.py")
        data = pkgutil.get_data(runtime.__name__, name)
        if data is None:
            raise InstallError("runtime file %s is missing from the collection" % name)
        files[name] = data
    files["__init__.py"] = pkgutil.get_data(runtime.__name__, "__init__.py")
    return files


def runtime_digest(sources: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name] + b"\0")
    return digest.hexdigest()[:16]


def build_config(rules: list, log: dict | None = None, tree: dict | None = None, kill_grace: float = 2) -> tuple:
    """(config.json document, its normalized form) for these rules; ConfigError names what is wrong."""
    raw = {"version": CONFIG_VERSION, "generator": "virthooks.libvirt %s" % VERSION, "rules": list(rules),
           "kill_grace": kill_grace}
    if log is not None:
        raw["log"] = log
    if tree is not None:
        raw["tree"] = tree
    from .runtime.rules import index_rules      # the dispatcher's index: which rules to read for an event
    normalized = normalize_config(raw, strict=True)
    raw["index"] = index_rules(normalized["rules"], raw["rules"])
    return raw, normalized


def config_text(rules: list, log: dict | None = None, tree: dict | None = None, kill_grace: float = 2) -> str:
    return json.dumps(build_config(rules, log, tree, kill_grace)[0], indent=2, sort_keys=True) + "\n"


class Change(object):
    """One planned operation on the host."""

    def __init__(self, kind, path, data=None, mode=None, before=None, target=None, note=""):
        self.kind = kind            # write | symlink | adopt | restore | remove | rmtree
        self.path = path
        self.data = data
        self.mode = mode
        self.before = before
        self.target = target
        self.note = note

    def describe(self) -> str:
        return "%s %s%s" % (self.kind, self.path, (" (%s)" % self.note) if self.note else "")


class RuntimeInstaller(object):
    """Plans and applies the runtime, config and entry points for one hooks directory."""

    def __init__(self, hooks_dir: str, python: str, uid: int = 0, gid: int = 0, root: str = ""):
        """hooks_dir is where files are written; with a root (an image being built), the files'
        content names paths as the host will see them, without the root prefix."""
        self.hooks_dir = hooks_dir.rstrip("/")
        self.own = "%s/%s" % (self.hooks_dir, OWN_DIR)
        if root.rstrip("/") and host_path(root, self.hooks_dir) == self.hooks_dir:
            raise InstallError("hooks dir %s is not under root %s" % (self.hooks_dir, root))
        self.runtime_hooks_dir = host_path(root, self.hooks_dir)
        self.python = python
        self.uid = uid
        self.gid = gid
        self.sources = runtime_sources()
        self.digest = runtime_digest(self.sources)

    # -- inspection ------------------------------------------------------------------------
    def entry_point_state(self, driver: str) -> str:
        """'absent', 'ours', 'foreign', or 'not-a-file' for hooks/<driver>."""
        path = "%s/%s" % (self.hooks_dir, driver)
        if not os.path.lexists(path):
            return "absent"
        if os.path.islink(path) or not os.path.isfile(path):
            return "not-a-file"
        return "ours" if file_is_ours(path) else "foreign"

    def adopted_path(self, driver: str) -> str:
        return "%s/%s/%s" % (self.own, ADOPTED_DIR, driver)

    def installed_entry_points(self) -> list:
        return [d for d in DRIVERS if self.entry_point_state(d) == "ours"]

    # -- planning --------------------------------------------------------------------------
    def plan(self, drivers, rules: list, foreign: str = "fail", log: dict | None = None,
             tree: dict | None = None, kill_grace: float = 2, cli_link: str = "") -> dict:
        """What would change: {'changes': [Change], 'added': [...], 'removed': [...], 'adopted': [...]}."""
        for driver in drivers:
            if driver not in DRIVERS:
                raise InstallError("unknown driver %r (valid: %s)" % (driver, ", ".join(DRIVERS)))
        drivers = sorted(set(drivers), key=DRIVERS.index)
        changes, adopted = [], []
        rules = list(rules)
        for driver in drivers:
            state = self.entry_point_state(driver)
            path = "%s/%s" % (self.hooks_dir, driver)
            if state == "not-a-file":
                raise InstallError("%s is a symlink or not a regular file; move it away or make it a file "
                                   "(nothing was changed)" % path)
            if state == "foreign":
                hook = read_bytes(path)
                if looks_like_tree_helper(hook):
                    raise InstallError(
                        "%s looks like the per-guest tree helper (%s.d/<guest>/<operation>/<sub-operation>/*): "
                        "virthooks runs that tree itself, so adopting it would run every tree script twice; move "
                        "it away and deploy again (nothing was changed)" % (path, driver))
                if foreign != "adopt":
                    raise InstallError(
                        "%s is a hook that virthooks did not install; set foreign_hooks=adopt "
                        "(libvirt_hooks_foreign: adopt) to keep running it as the script %s%s, or move it "
                        "away (nothing was changed)" % (path, ADOPT_PREFIX, driver))
                kept = read_bytes(self.adopted_path(driver))
                if kept is not None and kept != hook:
                    raise InstallError("%s is foreign and %s already holds a different adopted hook; resolve by "
                                       "hand (nothing was changed)" % (path, self.adopted_path(driver)))
                if kept is None:     # else: an adoption interrupted after the copy; finish it
                    changes.append(Change("adopt", path, target=self.adopted_path(driver),
                                          note="foreign hook kept as %s" % self.adopted_path(driver)))
                adopted.append(driver)
            if state == "foreign" or os.path.lexists(self.adopted_path(driver)):
                rules.insert(0, {"name": ADOPT_PREFIX + driver, "driver": driver, "order": -1000,
                                 "script": "%s/%s" % (ADOPTED_DIR, driver), "timeout": ADOPTED_TIMEOUT})
        try:
            config, normalized = build_config(rules, log, tree, kill_grace)
        except ConfigError as exc:
            raise InstallError("invalid rules (nothing was changed): %s" % exc)
        self._check_conditions(normalized["rules"])
        text = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
        lib_version = "%s/%s/%s" % (self.own, LIB_DIR, self.digest)
        for name in sorted(self.sources):
            self._want_file(changes, "%s/%s/%s" % (lib_version, RUNTIME_PACKAGE, name), self.sources[name], 0o644)
        current = "%s/%s/%s" % (self.own, LIB_DIR, LIB_CURRENT)
        if not (os.path.islink(current) and os.readlink(current) == self.digest):
            changes.append(Change("symlink", current, target=self.digest,
                                  before=os.readlink(current) if os.path.islink(current) else None,
                                  note="runtime %s" % self.digest))
        for stale in self._stale_lib_versions():
            changes.append(Change("rmtree", stale, note="previous runtime version"))
        self._want_file(changes, "%s/%s" % (self.own, CONFIG_FILE), text, 0o644)
        self._want_file(changes, "%s/%s" % (self.own, CLI_FILE),
                        render_cli(self.runtime_hooks_dir, self.python).encode(), 0o755)
        added, removed = [], []
        tree_enabled = normalized["tree"]["enabled"]
        for driver in drivers:
            entry = render_entry_point(driver, self.runtime_hooks_dir, self.python, normalized["rules"],
                                       tree_enabled, "(virthooks.libvirt %s)" % VERSION).encode()
            path = "%s/%s" % (self.hooks_dir, driver)
            if self.entry_point_state(driver) != "ours":
                added.append(driver)
            self._want_file(changes, path, entry, 0o755)
        for driver in self.installed_entry_points():
            if driver not in drivers:
                removed.append(driver)
                changes.extend(self._removal(driver))
        if cli_link:
            self._want_link(changes, cli_link, "%s/%s" % (self.runtime_hooks_dir + "/" + OWN_DIR, CLI_FILE))
        return {"changes": changes, "added": added, "removed": removed, "adopted": adopted}

    @staticmethod
    def _check_conditions(rules) -> None:
        """XPath conditions this host can evaluate (lxml, else ElementTree's subset), or a named error."""
        problems = rule_problems(rules)
        if problems:
            raise InstallError("invalid rules (nothing was changed): " + "; ".join(problems))

    def plan_removal(self, cli_link: str = "") -> dict:
        """Everything we installed goes; adopted hooks go back where they were."""
        changes, removed = [], []
        for driver in self.installed_entry_points():
            removed.append(driver)
            changes.extend(self._removal(driver))
        for driver in DRIVERS:
            if driver not in removed and os.path.lexists(self.adopted_path(driver)) \
                    and self.entry_point_state(driver) == "absent":
                changes.append(Change("restore", "%s/%s" % (self.hooks_dir, driver), target=self.adopted_path(driver),
                                      note="foreign hook put back"))
        if cli_link and os.path.islink(cli_link) and \
                os.readlink(cli_link) == "%s/%s/%s" % (self.runtime_hooks_dir, OWN_DIR, CLI_FILE):
            changes.append(Change("remove", cli_link, note="CLI link"))
        if os.path.lexists(self.own):
            changes.append(Change("rmtree", self.own, note="virthooks runtime, config and scripts"))
        return {"changes": changes, "added": [], "removed": removed, "adopted": []}

    def _removal(self, driver):
        path = "%s/%s" % (self.hooks_dir, driver)
        if os.path.lexists(self.adopted_path(driver)):
            return [Change("restore", path, target=self.adopted_path(driver), before=read_bytes(path),
                           note="foreign hook put back")]
        return [Change("remove", path, before=read_bytes(path), note="entry point")]

    def _stale_lib_versions(self):
        lib = "%s/%s" % (self.own, LIB_DIR)
        try:
            names = os.listdir(lib)
        except OSError:
            return []
        return ["%s/%s" % (lib, n) for n in sorted(names) if n not in (LIB_CURRENT, self.digest)
                and not n.startswith(".") and not n.endswith(REMOVING_SUFFIX) and os.path.isdir("%s/%s" % (lib, n))]

    def _want_file(self, changes, path, data, mode):
        before, cur_mode, cur_uid, cur_gid = file_state(path) if not os.path.islink(path) else (None,) * 4
        owner_ok = (self.uid == -1 or cur_uid == self.uid) and (self.gid == -1 or cur_gid == self.gid)
        if before != data or cur_mode != mode or not owner_ok:
            note = "new" if before is None else ("content" if before != data else "mode/owner")
            changes.append(Change("write", path, data=data, mode=mode, before=before, note=note))

    def _want_link(self, changes, link, target):
        if not (os.path.islink(link) and os.readlink(link) == target):
            if os.path.lexists(link) and not os.path.islink(link):
                raise InstallError("%s exists and is not a symlink; not replacing it with the CLI link" % link)
            changes.append(Change("symlink", link, target=target, note="CLI link"))

    # -- applying --------------------------------------------------------------------------
    def apply(self, plan: dict) -> None:
        """Carry out a plan, in its order (library, config, entry points, removals)."""
        self.remove_leftovers()
        creating = [c for c in plan["changes"] if c.kind in ("write", "symlink", "adopt")]
        if creating:
            for directory in (self.hooks_dir, self.own, "%s/%s" % (self.own, SCRIPTS_DIR),
                              "%s/%s" % (self.own, LIB_DIR)):
                ensure_dir(directory, 0o755, self.uid, self.gid)
        for change in plan["changes"]:
            getattr(self, "_do_" + change.kind)(change)
        if any(c.kind == "write" and "/%s/" % LIB_DIR in c.path for c in plan["changes"]):
            compile_runtime("%s/%s/%s/%s" % (self.own, LIB_DIR, self.digest, RUNTIME_PACKAGE))

    def remove_leftovers(self) -> None:
        """Temporary files and half-removed trees of an earlier run that was killed."""
        for directory in (self.hooks_dir, self.own, "%s/%s" % (self.own, LIB_DIR)):
            try:
                names = os.listdir(directory)
            except OSError:
                continue
            for name in names:
                path = "%s/%s" % (directory, name)
                if name.endswith(TEMP_SUFFIX) and (os.path.islink(path) or os.path.isfile(path)):
                    os.unlink(path)
                elif name.endswith(REMOVING_SUFFIX) and os.path.isdir(path):
                    shutil.rmtree(path)
        lib = "%s/%s" % (self.own, LIB_DIR)
        for version in os.listdir(lib) if os.path.isdir(lib) else ():
            package = "%s/%s/%s" % (lib, version, RUNTIME_PACKAGE)
            for name in os.listdir(package) if os.path.isdir(package) else ():
                if name.endswith(TEMP_SUFFIX):
                    os.unlink("%s/%s" % (package, name))

    def _do_write(self, change):
        parent = os.path.dirname(change.path)
        if not os.path.isdir(parent):
            ensure_dir(parent, 0o755, self.uid, self.gid)
        atomic_write(change.path, change.data, change.mode, self.uid, self.gid)

    def _do_symlink(self, change):
        tmp = change.path + TEMP_SUFFIX
        if not os.path.isdir(os.path.dirname(change.path)):
            ensure_dir(os.path.dirname(change.path), 0o755, self.uid, self.gid)
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(change.target, tmp)
        if self.uid != -1 or self.gid != -1:
            os.lchown(tmp, self.uid, self.gid)
        os.rename(tmp, change.path)
        fsync_dir(os.path.dirname(change.path))

    def _do_adopt(self, change):
        ensure_dir(os.path.dirname(change.target), 0o755, self.uid, self.gid)
        # Copy, then the entry point write replaces the original by rename: the foreign hook
        # exists at all times, in one place or the other. The copy is root's and not writable
        # by group/others, or the dispatcher would refuse to run it.
        with open(change.path, "rb") as f:
            data = f.read()
        mode = os.stat(change.path).st_mode & 0o7755
        atomic_write(change.target, data, mode, self.uid, self.gid)

    def _do_restore(self, change):
        os.rename(change.target, change.path)
        fsync_dir(os.path.dirname(change.path))

    def _do_remove(self, change):
        if os.path.lexists(change.path):
            os.unlink(change.path)

    def _do_rmtree(self, change):
        if os.path.isdir(change.path) and not os.path.islink(change.path):
            # Rename first so a half-removed tree never looks like a runtime.
            doomed = change.path + REMOVING_SUFFIX
            os.rename(change.path, doomed)
            shutil.rmtree(doomed)


def compile_runtime(package_dir: str) -> None:
    """Byte-compile the runtime so the first hook call does not pay for it (same Python only)."""
    import py_compile
    for name in sorted(os.listdir(package_dir)):
        if name.endswith(".py"):
            try:
                py_compile.compile("%s/%s" % (package_dir, name), doraise=True)
            except (py_compile.PyCompileError, OSError):
                pass


def diff_of(plan: dict, hooks_dir: str) -> list:
    """Ansible diff entries for a plan: text diffs for config and entry points, a summary for the rest."""
    diffs = []
    lib_prefix = "%s/%s/%s/" % (hooks_dir, OWN_DIR, LIB_DIR)
    lib_changes = [c for c in plan["changes"] if c.path.startswith(lib_prefix)]
    for change in plan["changes"]:
        if change.path.startswith(lib_prefix):
            continue
        if change.kind == "write":
            diffs.append({"before_header": change.path, "after_header": change.path,
                          "before": diff_text(change.before), "after": diff_text(change.data)})
        else:
            diffs.append({"before_header": change.path, "after_header": change.path,
                          "before": "", "after": "", "prepared": change.describe()})
    if lib_changes:
        diffs.append({"prepared": "runtime library: %d file(s) under %s" % (len(lib_changes), lib_prefix)})
    return diffs
