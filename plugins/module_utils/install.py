# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Installing virthooks on a host: plan first, then apply, never half-way.

The runtime on a hypervisor is this very code: the runtime package (runtime/) is copied as it
is, so the host runs the collection's own version.

Layout under the hooks directory::

    <driver>                                   entry points (POSIX sh)
    virthooks/lib/<digest>/virthooks_runtime/  the runtime package, content-addressed
    virthooks/lib/current -> <digest>          swapped atomically
    virthooks/generations/<id>/                one deploy: config.json, scripts/<name>, meta.json,
                                               secrets/<name>/<NAME> (0600: never in a diff or result)
    virthooks/current -> generations/<id>      swapped atomically: what hook calls use
    virthooks/config.json -> current/config.json   for readers of the old path
    <driver>.virthooks-adopted                 a foreign hook taken over, kept in place (run as a rule)
    virthooks/virthooks                        the operator CLI
    virthooks/.stamp.json                      what the last run asked and found, for a re-run to skip planning (stamp.py)

A deploy, in order: adopted hooks linked to their new name, the library (``lib/current`` swapped), the new
generation (written whole, renamed into place), the entry points the new state needs (before
the switch, so they exist when its rules do), the switch of ``current``, the entry points it no
longer needs (after the switch), the CLI, then generations beyond ``keep`` and old libraries.
A run killed at any point leaves the old state or the new one, never a mix; a run that
changes nothing makes no generation.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import shutil
import time
from typing import NamedTuple, Optional

from . import runtime
from .runtime import configcache
from .runtime.entrypoint import readable, render_cli, render_entry_point
from .runtime.events import DRIVERS
from .runtime.fileops import (TEMP_SUFFIX, atomic_symlink, atomic_write, diff_text, ensure_dir, file_state, fsync_dir,
                              host_path, read_bytes, under)
from .runtime.trust import TrustCheck, interpreter_of
from .runtime.generations import (DeployLock, Generation, all_ids, content_digest, current_id, generation_path,
                                  new_id, prune, remove_leftovers, retire_old_layout, switch, write_generation)
from .runtime.layout import (ADOPTED_SUFFIX, CLI_FILE, CONFIG_CACHE, CONFIG_FILE, FILES_DIR, CURRENT, GENERATIONS_DIR,
                             LIB_CURRENT, LIB_DIR, META_FILE, OWN_DIR, RUNTIME_PACKAGE, SCRIPTS_DIR, SECRETS_DIR, adopted_hook,
                             file_is_ours, kept_adopted_hook, old_adopted_hook)
from .runtime.rules import CONFIG_VERSION, DROPIN_DIR, ConfigError, normalize_config, validate_name
from .scripts import script_problems, script_warnings

VERSION = runtime.VERSION
ADOPT_PREFIX = "adopted-"
ADOPTED_TIMEOUT = 300
# An adopted hook fails a call only where libvirt aborts what it is doing and no running guest
# is killed for it (prepare/start/... begin); on reconnect/attach and the events libvirt cannot
# abort its failure is logged. "fail" is libvirt's own behaviour (any failure counts).
ADOPTED_ON_FAILURE = ("abortable", "fail")
REMOVING_SUFFIX = ".virthooks-removing"
DEFAULT_KEEP = 3
DEFAULT_MAX_SIZE = 1 << 20
# A generation's scripts: root (libvirtd) runs them and nobody else needs to read them, so they are
# not world-readable (credentials are not in them but in secrets/, whatever a user's script holds).
SCRIPT_MODE = 0o700
# A script's secrets (the library blocks' parameters, the users' secrets): root alone reads them.
SECRET_MODE = 0o600
REDACTED = "<redacted>"


def looks_like_tree_helper(data) -> bool:
    """Whether a hook is the widely shared dispatcher of hooks/<driver>.d/<guest>/<op>/<sub-op>/."""
    return bool(data) and b".d/$" in data and (b"HOOKPATH" in data or b"GUEST_NAME" in data)


def _read_generation_dir(directory: str, kind: str, value) -> dict:
    """{script name: {name: value(path, bytes)}} of a generation's per-script directory (secrets/ or files/):
    regular files only, no symlink followed, names starting with '.' and empty scripts left out."""
    found = {}
    base = "%s/%s" % (directory, kind)
    for script in sorted(os.listdir(base)) if os.path.isdir(base) else ():
        folder = "%s/%s" % (base, script)
        if script.startswith(".") or os.path.islink(folder) or not os.path.isdir(folder):
            continue
        values = {}
        for name in sorted(os.listdir(folder)):
            path = "%s/%s" % (folder, name)
            if not name.startswith(".") and not os.path.islink(path) and os.path.isfile(path):
                with open(path, "rb") as f:
                    values[name] = value(path, f.read())
        if values:
            found[script] = values
    return found


def read_secrets(directory: str) -> dict:
    """{script name: {NAME: bytes}} of a generation's secrets/."""
    return _read_generation_dir(directory, SECRETS_DIR, lambda _path, data: data)


def read_files(directory: str) -> dict:
    """{script name: {file name: (bytes, mode)}} of a generation's files/ (the files scripts read)."""
    return _read_generation_dir(directory, FILES_DIR, lambda path, data: (data, os.lstat(path).st_mode & 0o7777))


def script_file_paths(files: dict) -> dict:
    """{relative path in the generation: (bytes, mode)} of {script: {file name: (bytes, mode)}}."""
    return {"%s/%s/%s" % (FILES_DIR, script, name): value
            for script, values in files.items() for name, value in values.items()}


def secret_paths(secrets: dict) -> dict:
    """{relative path in the generation: bytes} of {script: {NAME: bytes}}."""
    return {"%s/%s/%s" % (SECRETS_DIR, script, name): value
            for script, values in secrets.items() for name, value in values.items()}


class InstallError(Exception):
    """Something on the host prevents the install; the message names it. Nothing was changed."""


def runtime_sources() -> dict:
    """{file name: source bytes} of the runtime package, whole: its folder and its sub-packages (the
    library's blocks, as ``library/<block>.py``, the CLI's subcommands, as ``commands/<name>.py``), or, inside a module's payload, what Ansible's packer
    put there, which is the same files: a test checks it."""
    return _package_sources(runtime, "")


def _package_sources(package, prefix: str) -> dict:
    files = {prefix + "__init__.py": pkgutil.get_data(package.__name__, "__init__.py")}
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            files.update(_package_sources(importlib.import_module("%s.%s" % (package.__name__, info.name)),
                                          "%s%s/" % (prefix, info.name)))
            continue
        name = info.name + ".py"
        data = pkgutil.get_data(package.__name__, name)
        if data is None:
            raise InstallError("runtime file %s%s is missing from the collection" % (prefix, name))
        files[prefix + name] = data
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
    """One planned operation on the host: what it is (describe), how it is done (apply), how a
    person reviews it (diff). Applied in plan order by RuntimeInstaller.apply."""

    kind = ""
    __slots__ = ("path", "note")

    def __init__(self, path: str, note: str = ""):
        self.path = path
        self.note = note

    def describe(self) -> str:
        return "%s %s%s" % (self.kind, self.path, (" (%s)" % self.note) if self.note else "")

    def apply(self, installer: "RuntimeInstaller") -> None:
        raise NotImplementedError

    def diff(self, plan: "Plan", own: str) -> list:
        """Ansible diff entries: a summary line (the text diffs are the writes' and the generation's)."""
        return [{"before_header": self.path, "after_header": self.path, "before": "", "after": "",
                 "prepared": self.describe()}]

    def __repr__(self):
        return "<%s>" % self.describe()


class WriteFile(Change):
    """A file replaced atomically with this content, mode and owner."""

    kind = "write"
    __slots__ = ("data", "mode", "before")

    def __init__(self, path: str, data: bytes, mode: int, before: Optional[bytes] = None, note: str = ""):
        Change.__init__(self, path, note)
        self.data = data
        self.mode = mode
        self.before = before

    def apply(self, installer):
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            ensure_dir(parent, 0o755, installer.uid, installer.gid)
        atomic_write(self.path, self.data, self.mode, installer.uid, installer.gid)

    def diff(self, plan, own):
        return [{"before_header": self.path, "after_header": self.path,
                 "before": readable(diff_text(self.before)), "after": readable(diff_text(self.data))}]


class Symlink(Change):
    """A symlink pointed at target in one rename (lib/current, the CLI link)."""

    kind = "symlink"
    __slots__ = ("target",)

    def __init__(self, path: str, target: str, note: str = ""):
        Change.__init__(self, path, note)
        self.target = target

    def apply(self, installer):
        if not os.path.isdir(os.path.dirname(self.path)):
            ensure_dir(os.path.dirname(self.path), 0o755, installer.uid, installer.gid)
        atomic_symlink(self.path, self.target, installer.uid, installer.gid)


class NewGeneration(Change):
    """A generation written whole under a temporary name, then renamed into place."""

    kind = "generation"
    __slots__ = ("files",)

    def __init__(self, path: str, files: dict, note: str = ""):
        """files: {relative path: (bytes, mode)}."""
        Change.__init__(self, path, note)
        self.files = files

    def apply(self, installer):
        write_generation(installer.own, os.path.basename(self.path), self.files, installer.uid, installer.gid)

    def diff(self, plan, own):
        return _generation_diff(own, plan, self)


class SwitchGeneration(Change):
    """``current`` pointed at a generation (one rename of a symlink)."""

    kind = "switch"
    __slots__ = ("generation",)

    def __init__(self, own: str, generation: str):
        Change.__init__(self, "%s/%s" % (own, CURRENT), "generation %s" % generation)
        self.generation = generation

    def apply(self, installer):
        switch(installer.own, self.generation, installer.uid, installer.gid)


class RetireOldLayout(Change):
    """hooks/virthooks/config.json linked to the current one, and/or the scripts/ of the layout
    before generations removed (once no hook call of that layout runs)."""

    kind = "retire"
    __slots__ = ("relink_config", "remove_scripts")

    def __init__(self, own: str, relink_config: bool, remove_scripts: bool):
        Change.__init__(self, own, "config.json linked to the current generation%s"
                        % (", scripts/ of the layout before generations removed" if remove_scripts else ""))
        self.relink_config = relink_config
        self.remove_scripts = remove_scripts

    def apply(self, installer):
        retire_old_layout(installer.own, self.relink_config, self.remove_scripts, installer.uid, installer.gid)


class PruneGenerations(Change):
    """The generations beyond the newest ``keep`` removed (never one a hook call is using)."""

    kind = "prune"
    __slots__ = ("keep",)

    def __init__(self, own: str, keep: int):
        Change.__init__(self, "%s/%s" % (own, GENERATIONS_DIR), "keep the newest %d generation(s)" % keep)
        self.keep = keep

    def apply(self, installer):
        prune(installer.own, self.keep)


class AdoptHook(Change):
    """A second name (target) for a foreign hook (path), the same inode; the entry point written
    next replaces path by rename."""

    kind = "adopt"
    __slots__ = ("target",)

    def __init__(self, path: str, target: str, note: str = ""):
        Change.__init__(self, path, note)
        self.target = target

    def apply(self, installer):
        """The hook exists at all times, and what it is (content, mode, owner, symlink and target)
        never changes."""
        if not os.path.lexists(self.target):
            try:
                os.link(self.path, self.target, follow_symlinks=False)
            except OSError:     # a file system without hard links: an exact copy instead
                _copy_exactly(self.path, self.target)
        fsync_dir(os.path.dirname(self.target))


class RestoreAdopted(Change):
    """An adopted hook (source) renamed back over the entry point (path)."""

    kind = "restore"
    __slots__ = ("source", "before")

    def __init__(self, path: str, source: str, before: Optional[bytes] = None):
        Change.__init__(self, path, "foreign hook put back")
        self.source = source
        self.before = before

    def apply(self, installer):
        os.rename(self.source, self.path)
        fsync_dir(os.path.dirname(self.path))


class RemoveFile(Change):
    """A file or symlink unlinked (an entry point, the CLI link)."""

    kind = "remove"
    __slots__ = ("before",)

    def __init__(self, path: str, before: Optional[bytes] = None, note: str = ""):
        Change.__init__(self, path, note)
        self.before = before

    def apply(self, installer):
        if os.path.lexists(self.path):
            os.unlink(self.path)


class RemoveTree(Change):
    """A directory removed, renamed first so a half-removed tree never looks like a runtime."""

    kind = "rmtree"
    __slots__ = ()

    def apply(self, installer):
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            doomed = self.path + REMOVING_SUFFIX
            os.rename(self.path, doomed)
            installer.keep_dropins(doomed)
            shutil.rmtree(doomed)


class ScriptReport(NamedTuple):
    """What a deploy does to the scripts, by name."""

    added: list
    updated: list
    removed: list
    unchanged: list


class Plan(NamedTuple):
    """A deploy, planned: the changes in order, and what they mean."""

    changes: list
    added: list                     # drivers whose entry point is added
    removed: list                   # drivers whose entry point is removed
    adopted: list                   # drivers whose foreign hook is adopted
    generation: str                 # the generation current after the deploy
    previous: str                   # the generation current before it ('' if none)
    scripts: ScriptReport
    warnings: list
    config_before: Optional[bytes] = None
    config_after: Optional[bytes] = None
    before: Optional[Generation] = None    # the generation current when the plan was made, as it was read

    def describe(self) -> list:
        """One line per change, in order (the module's RV(changes))."""
        return [change.describe() for change in self.changes]

    def diff(self, hooks_dir: str) -> list:
        """Ansible diff entries (see diff_of)."""
        return diff_of(self, hooks_dir)


class DeploySpec(NamedTuple):
    """What a deploy asks for, by name (RuntimeInstaller.plan_deploy).

    scripts=None keeps the current scripts as they are; otherwise [{'name', 'data' (bytes), 'state',
    'secrets'}], and purge drops the undeclared ones."""

    drivers: list = ()
    rules: list = ()
    foreign: str = "fail"               # what to do with a hook virthooks did not write: fail, adopt
    log: Optional[dict] = None
    tree: Optional[dict] = None
    kill_grace: float = 2
    cli_link: str = ""                  # where the CLI is linked, as this machine sees it ('' = nowhere)
    scripts: Optional[list] = None
    purge: bool = False
    keep: int = DEFAULT_KEEP
    deployer: str = ""
    max_size: int = DEFAULT_MAX_SIZE
    adopted_on_failure: str = "abortable"

    @classmethod
    def from_params(cls, params: dict, scripts: Optional[list] = None, cli_link: str = "") -> "DeploySpec":
        """The spec of hook_runtime's options, each taken by its name (scripts decoded and cli_link
        placed under root or the sandbox by the module)."""
        return cls(drivers=list(params["drivers"]), rules=list(params["rules"]), foreign=params["foreign_hooks"],
                   log=params["log"] or None, tree=params["tree"] or None, kill_grace=params["kill_grace"],
                   cli_link=cli_link, scripts=scripts, purge=params["purge"], keep=params["generations_keep"],
                   deployer=params["deployer"], max_size=params["max_size"],
                   adopted_on_failure=params["foreign_on_failure"])

    def problem(self) -> str:
        """Why the spec cannot be deployed ('' if it can), whatever the host holds."""
        if self.keep < 1:
            return "keep must be at least 1 (got %d)" % self.keep
        if self.adopted_on_failure not in ADOPTED_ON_FAILURE:
            return "adopted hooks' on_failure must be one of %s (got %r)" % (
                ", ".join(ADOPTED_ON_FAILURE), self.adopted_on_failure)
        return ""


NO_SCRIPTS = ScriptReport([], [], [], [])


class RuntimeInstaller(object):
    """Plans and applies the runtime, a generation of rules and scripts, and the entry points."""

    def __init__(self, hooks_dir: str, python: str, uid: int = 0, gid: int = 0, root: str = ""):
        """hooks_dir is where files are written; with a root (an image being built), the files'
        content names paths as the host will see them, without the root prefix."""
        self.hooks_dir = hooks_dir.rstrip("/")
        self.own = "%s/%s" % (self.hooks_dir, OWN_DIR)
        if root.rstrip("/") and host_path(root, self.hooks_dir) == self.hooks_dir:
            raise InstallError("hooks dir %s is not under root %s" % (self.hooks_dir, root))
        self.runtime_hooks_dir = host_path(root, self.hooks_dir)
        self.root = root
        self.python = python
        self.uid = uid
        self.gid = gid
        self.sources = runtime_sources()
        self.digest = runtime_digest(self.sources)

    # -- inspection ------------------------------------------------------------------------
    def entry_point_state(self, driver: str) -> str:
        """'absent', 'ours', 'foreign' (a file, or a symlink to one), or 'not-a-file' for hooks/<driver>."""
        path = "%s/%s" % (self.hooks_dir, driver)
        if not os.path.lexists(path):
            return "absent"
        if not os.path.isfile(path):
            return "not-a-file"
        if os.path.islink(path):
            return "foreign"
        return "ours" if file_is_ours(path) else "foreign"

    def adopted_path(self, driver: str) -> str:
        """hooks/<driver>.virthooks-adopted: the adopted hook, in its own directory."""
        return adopted_hook(self.hooks_dir, driver)

    def kept_adopted(self, driver: str) -> str:
        """The adopted hook of a driver, in place or in the layout before it ('' if none)."""
        return kept_adopted_hook(self.hooks_dir, driver, os.path.lexists)

    def installed_entry_points(self) -> list:
        return [d for d in DRIVERS if self.entry_point_state(d) == "ours"]

    # -- planning a deploy -----------------------------------------------------------------
    def plan(self, drivers, rules: list, **options) -> Plan:
        """What a deploy of these drivers and rules would change; options are DeploySpec's fields."""
        return self.plan_deploy(DeploySpec(drivers=list(drivers), rules=list(rules), **options))

    def plan_deploy(self, spec: DeploySpec) -> Plan:
        """What a deploy would change (nothing is written); InstallError names what prevents it."""
        if spec.problem():
            raise InstallError(spec.problem())
        drivers = self._checked_drivers(spec.drivers)
        changes = []
        rules = list(spec.rules)
        adopted = self._plan_foreign_hooks(changes, drivers, spec.foreign, rules, spec.adopted_on_failure)
        config_bytes, normalized = self._config(rules, spec.log, spec.tree, spec.kill_grace)
        self._plan_library(changes)
        current = Generation.current(self.own)
        wanted_scripts, report, warnings, secrets, files = self._plan_scripts(current, spec.scripts, spec.purge,
                                                                              spec.max_size)
        warnings = self._adoption_warnings(drivers, spec.foreign) + self._dropin_warnings(drivers) + warnings
        previous = current.id
        generation = self._plan_generation(current, changes, config_bytes, normalized, wanted_scripts, drivers,
                                           spec.deployer, secrets, files)
        if generation != previous:
            warnings = warnings + syntax_gate(wanted_scripts, self.root)
        added = self._plan_entry_points(changes, drivers, normalized)
        if generation != previous:
            changes.append(SwitchGeneration(self.own, generation))
        self._plan_old_layout(changes)
        removed = self._plan_entry_point_removals(changes, drivers)
        self._plan_cli(changes, spec.cli_link)
        self._plan_pruning(changes, spec.keep, generation)
        return Plan(changes, added, removed, adopted, generation, previous, report, warnings,
                    current.config, config_bytes if generation != previous else current.config, current)

    def plan_scripts(self, scripts: list, purge: bool = False, keep: int = DEFAULT_KEEP, deployer: str = "",
                     max_size: int = DEFAULT_MAX_SIZE) -> Plan:
        """A deploy of scripts only (the hook module): the current rules, entry points and library stay."""
        current = Generation.current(self.own)
        config_bytes = current.config if current.config is not None else config_text([]).encode()
        meta = current.meta
        self.python = meta.get("python") or self.python
        try:
            normalized = normalize_config(json.loads(config_bytes.decode("utf-8")), strict=False)
        except (ValueError, ConfigError) as exc:
            raise InstallError("the current %s/%s cannot be read (nothing was changed): %s"
                               % (current.path, CONFIG_FILE, exc))
        changes = []
        wanted_scripts, report, warnings, secrets, files = self._plan_scripts(current, scripts, purge, max_size)
        previous = current.id
        drivers = meta.get("drivers", self.installed_entry_points())
        generation = self._plan_generation(current, changes, config_bytes, normalized, wanted_scripts, drivers,
                                           deployer, secrets, files)
        if generation != previous:
            warnings = warnings + syntax_gate(wanted_scripts, self.root)
            changes.append(SwitchGeneration(self.own, generation))
            self._plan_old_layout(changes)
            self._plan_pruning(changes, keep, generation)
        return Plan(changes, [], [], [], generation, previous, report, warnings, config_bytes, config_bytes, current)

    def _checked_drivers(self, drivers) -> list:
        for driver in drivers:
            if driver not in DRIVERS:
                raise InstallError("unknown driver %r (valid: %s)" % (driver, ", ".join(DRIVERS)))
        return sorted(set(drivers), key=DRIVERS.index)

    def _plan_foreign_hooks(self, changes, drivers, foreign, rules, on_failure) -> list:
        """Refuse or adopt hook files we did not write; adopted hooks run first, as rules, in
        place: hooks/<driver>.virthooks-adopted, so $0's directory is the hook's own."""
        adopted = []
        for driver in drivers:
            state = self.entry_point_state(driver)
            path = "%s/%s" % (self.hooks_dir, driver)
            if state == "not-a-file":
                raise InstallError("%s is not a regular file or a symlink to one; move it away "
                                   "(nothing was changed)" % path)
            if state == "foreign":
                self._adopt(changes, driver, path, foreign)
                adopted.append(driver)
            elif self.kept_adopted(driver) == old_adopted_hook(self.hooks_dir, driver):
                # Adopted by a deploy before in-place adoption: linked beside the entry point now
                # (the old copy stays for the generations that name it, until the runtime goes).
                changes.append(AdoptHook(old_adopted_hook(self.hooks_dir, driver), self.adopted_path(driver),
                                         note="adopted hook moved beside the entry point"))
            if state == "foreign" or self.kept_adopted(driver):
                rules.insert(0, {"name": ADOPT_PREFIX + driver, "driver": driver, "order": -1000,
                                 "script": adopted_hook(self.runtime_hooks_dir, driver),
                                 "timeout": ADOPTED_TIMEOUT, "on_failure": on_failure})
        return adopted

    def _adopt(self, changes, driver, path, foreign) -> None:
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
        if not self.root:       # the dispatcher runs only what root alone controls: say so now
            refusal = TrustCheck().refusal(path)
            if refusal:
                raise InstallError("%s cannot be adopted: the dispatcher would refuse to run it: %s "
                                   "(nothing was changed)" % (path, refusal))
        kept = self.adopted_path(driver)
        if os.path.lexists(kept):
            if _same_hook(kept, path):
                return          # an adoption interrupted after the link (or copy): the entry point finishes it
            raise InstallError("%s is foreign and %s already holds a different adopted hook; resolve by "
                               "hand (nothing was changed)" % (path, kept))
        changes.append(AdoptHook(path, kept, note="foreign hook kept in place as %s%s" % (driver, ADOPTED_SUFFIX)))

    def _adoption_warnings(self, drivers, foreign) -> list:
        """foreign_hooks=adopt that adopts nothing says why."""
        if foreign != "adopt":
            return []
        left = ["%s/%s" % (self.hooks_dir, d) for d in DRIVERS
                if d not in drivers and self.entry_point_state(d) == "foreign"]
        if left:
            return ["foreign_hooks=adopt: %s %s not adopted: no script or rule is declared for %s and it is not "
                    "listed in drivers (libvirt_hooks_drivers); the hook stays as it is"
                    % (", ".join(left), "is" if len(left) == 1 else "are",
                       "that driver" if len(left) == 1 else "those drivers")]
        if not any(self.entry_point_state(d) == "foreign" or self.kept_adopted(d) for d in drivers):
            return ["foreign_hooks=adopt: there is no hook virthooks did not install at %s/<driver> for %s: "
                    "nothing to adopt" % (self.hooks_dir, ", ".join(drivers) or "any driver (none is deployed)")]
        return []

    def _dropin_warnings(self, drivers) -> list:
        """Host drop-ins (rules.d/*.json, never deployed by us) with rules for a driver that gets no entry
        point: libvirt never calls the dispatcher for it, so they never run until drivers lists it."""
        from .runtime.rules import dropin_rules_by_driver, merge_dropins, unreached_dropin
        found = {"rules": []}
        merge_dropins(found, self.hooks_dir)        # what the dispatcher would run (bad ones are validate's)
        return ["host drop-in %s" % unreached_dropin(origin, driver, names, "this deploy gives it none")
                for (origin, driver), names in dropin_rules_by_driver(found["rules"]).items() if driver not in drivers]

    @staticmethod
    def _config(rules, log, tree, kill_grace) -> tuple:
        """(config.json bytes, normalized config), validated, XPath conditions included."""
        try:
            config, normalized = build_config(rules, log, tree, kill_grace)
        except ConfigError as exc:
            raise InstallError("invalid rules (nothing was changed): %s" % exc)
        if any(rule.get("xpath") for rule in normalized["rules"]):     # no XPath engine for rules without one
            from .runtime.xmlcond import rule_problems
            problems = rule_problems(normalized["rules"])
            if problems:
                raise InstallError("invalid rules (nothing was changed): " + "; ".join(problems))
        return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(), normalized

    def _plan_library(self, changes) -> None:
        """The runtime package under lib/<digest>/, then lib/current switched to it."""
        lib_version = "%s/%s/%s" % (self.own, LIB_DIR, self.digest)
        for name in sorted(self.sources):
            self._want_file(changes, "%s/%s/%s" % (lib_version, RUNTIME_PACKAGE, name), self.sources[name], 0o644)
        current = "%s/%s/%s" % (self.own, LIB_DIR, LIB_CURRENT)
        if not (os.path.islink(current) and os.readlink(current) == self.digest):
            changes.append(Symlink(current, self.digest, note="runtime %s" % self.digest))

    def _plan_scripts(self, current: Generation, scripts, purge, max_size) -> tuple:
        """({name: bytes} the new generation holds, ScriptReport, warnings, {name: {NAME: bytes}} their
        secrets, {name: {file: (bytes, mode)}} their files); InstallError names bad scripts."""
        have = current.scripts
        have_secrets = read_secrets(current.path)
        have_files = read_files(current.path)
        if scripts is None:
            return (have, ScriptReport([], [], [], sorted(have)), [], {n: v for n, v in have_secrets.items() if n in have},
                    {n: v for n, v in have_files.items() if n in have})
        problems, warnings, seen = [], [], set()
        for script in scripts:
            name = script.get("name")
            if name in seen:
                problems.append("script name %r is declared more than once" % name)
            seen.add(name)
            if script.get("state", "present") == "present":
                problems.extend(script_problems(name, script["data"], max_size, self.root))
                warnings.extend(script_warnings(name, script["data"]))
            elif validate_name(name):
                problems.append("script name %r %s" % (name, validate_name(name)))
        if problems:
            raise InstallError("; ".join(problems) + " (nothing was changed)")
        wanted = {} if purge else dict(have)
        secrets = {} if purge else {n: v for n, v in have_secrets.items() if n in have}
        files = {} if purge else {n: v for n, v in have_files.items() if n in have}
        for script in scripts:
            secrets.pop(script["name"], None)
            files.pop(script["name"], None)
            if script.get("state", "present") == "present":
                wanted[script["name"]] = script["data"]
                if script.get("secrets"):
                    secrets[script["name"]] = dict(script["secrets"])
                if script.get("files"):
                    files[script["name"]] = dict(script["files"])
            else:
                wanted.pop(script["name"], None)
        intact = {n for n in wanted if n in have and have[n] == wanted[n]
                  and self._file_ok("%s/%s/%s" % (current.path, SCRIPTS_DIR, n), SCRIPT_MODE)
                  and self._secrets_intact(current.path, n, have_secrets.get(n, {}), secrets.get(n, {}))
                  and have_files.get(n, {}) == files.get(n, {})}
        report = ScriptReport(added=sorted(n for n in wanted if n not in have),
                              updated=sorted(n for n in wanted if n in have and n not in intact),
                              removed=sorted(n for n in have if n not in wanted),
                              unchanged=sorted(intact))
        return wanted, report, warnings, secrets, files

    def _secrets_intact(self, directory, script, have, want) -> bool:
        """Whether a script's secret files in a generation are these values, each 0600 root."""
        return have == want and all(self._file_ok("%s/%s/%s/%s" % (directory, SECRETS_DIR, script, name), SECRET_MODE)
                                    for name in want)

    def _plan_generation(self, current: Generation, changes, config_bytes, normalized, scripts, drivers, deployer,
                         secrets=None, files=None) -> str:
        """The generation the deploy makes current: the current one if it already holds this
        state (files, modes and owner as they should be), else a new one."""
        extra = json.dumps({"drivers": drivers, "python": self.python}, sort_keys=True)
        secret_files = secret_paths(secrets or {})
        own_files = script_file_paths(files or {})
        # Secrets and files count in the digest under their paths, which no script name can take (names have
        # no '/'), a file's mode with it.
        digest = content_digest(config_bytes, dict(scripts, **secret_files, **{
            "%s %o" % (rel, mode): data for rel, (data, mode) in own_files.items()}), extra)
        previous = current.id
        if previous and digest == current.meta.get("digest") and self._intact(current, scripts) \
                and self._extras_intact(current, secrets or {}, secret_files, files or {}, own_files):
            return previous
        from .runtime.syntax import script_digests     # a new generation only: a re-run that changes nothing needs none
        gen_id = new_id(self.own, digest)
        meta = {"id": gen_id, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "deployer": deployer,
                "digest": digest, "rules": len(normalized["rules"]), "scripts": len(scripts), "drivers": drivers,
                "python": self.python, "tree": normalized["tree"]["enabled"], "runtime": self.digest,
                "previous": previous, "version": VERSION, "script_digests": script_digests(scripts)}
        written = {CONFIG_FILE: (config_bytes, 0o644), CONFIG_CACHE: (configcache.build(config_bytes), 0o644),
                   META_FILE: ((json.dumps(meta, indent=2, sort_keys=True) + "\n").encode(), 0o644)}
        for name, data in scripts.items():
            written["%s/%s" % (SCRIPTS_DIR, name)] = (data, SCRIPT_MODE)
        for rel, data in secret_files.items():
            written[rel] = (data, SECRET_MODE)
        written.update(own_files)
        changes.append(NewGeneration(generation_path(self.own, gen_id), written,
                                     note="%d rule(s), %d script(s)" % (len(normalized["rules"]), len(scripts))))
        return gen_id

    def _extras_intact(self, current: Generation, secrets, secret_files, files, own_files) -> bool:
        """Whether the generation's secrets and files are these, each with its mode, root's."""
        return read_secrets(current.path) == secrets \
            and all(self._file_ok("%s/%s" % (current.path, rel), SECRET_MODE) for rel in secret_files) \
            and read_files(current.path) == files \
            and all(self._file_ok("%s/%s" % (current.path, rel), mode) for rel, (_data, mode) in own_files.items())

    def _intact(self, generation: Generation, scripts) -> bool:
        """Whether the generation's files still are what the deploy made (nobody chmod'ed or edited them)."""
        if generation.config is None or generation.scripts != scripts or not self._cache_ok(generation):
            return False
        return self._file_ok("%s/%s" % (generation.path, CONFIG_FILE), 0o644) and all(
            self._file_ok("%s/%s/%s" % (generation.path, SCRIPTS_DIR, name), SCRIPT_MODE) for name in scripts)

    def _cache_ok(self, generation: Generation) -> bool:
        """Whether the generation has the config.marshal of its config.json (one made before there was a
        cache, or by another version, is made again with a new generation: calls would parse JSON)."""
        path = "%s/%s" % (generation.path, CONFIG_CACHE)
        try:   # never through a symlink, never blocking on a FIFO; then the file opened is the one checked
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as f:
            if not self._stat_ok(os.fstat(f.fileno()), 0o644):
                return False
            try:
                cache = f.read()
            except OSError:
                return False
        return configcache.belongs(cache, generation.config)

    def _file_ok(self, path, mode) -> bool:
        """Whether a regular file has the mode and owner a deploy gives it."""
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return self._stat_ok(st, mode)

    def _stat_ok(self, st, mode) -> bool:
        """Whether a stat result is of a regular file with the mode and owner a deploy gives it."""
        return (st.st_mode & 0o170000) == 0o100000 and st.st_mode & 0o7777 == mode and self._owner_ok(st.st_uid, st.st_gid)

    def _owner_ok(self, uid, gid) -> bool:
        return (self.uid == -1 or uid == self.uid) and (self.gid == -1 or gid == self.gid)

    def _plan_entry_points(self, changes, drivers, normalized) -> list:
        """Entry points of the new state (written before the switch); the drivers that get one anew."""
        added = []
        for driver in drivers:
            entry = render_entry_point(driver, self.runtime_hooks_dir, self.python, normalized["rules"],
                                       normalized["tree"]["enabled"]).encode()
            if self.entry_point_state(driver) != "ours":
                added.append(driver)
            self._want_file(changes, "%s/%s" % (self.hooks_dir, driver), entry, 0o755)
        return added

    def _plan_old_layout(self, changes) -> None:
        """hooks/virthooks/config.json becomes a link to the current one; the scripts/ of a host
        deployed before generations go (after the switch, once no call of that layout runs)."""
        config = "%s/%s" % (self.own, CONFIG_FILE)
        relink = not (os.path.islink(config) and os.readlink(config) == "%s/%s" % (CURRENT, CONFIG_FILE))
        old_scripts = "%s/%s" % (self.own, SCRIPTS_DIR)
        remove = os.path.isdir(old_scripts) and not os.path.islink(old_scripts)
        if relink or remove:
            changes.append(RetireOldLayout(self.own, relink, remove))

    def _plan_entry_point_removals(self, changes, drivers) -> list:
        removed = []
        for driver in self.installed_entry_points():
            if driver not in drivers:
                removed.append(driver)
                changes.append(self._removal(driver))
        return removed

    def _plan_cli(self, changes, cli_link) -> None:
        self._want_file(changes, "%s/%s" % (self.own, CLI_FILE),
                        render_cli(self.runtime_hooks_dir, self.python).encode(), 0o755)
        if not cli_link:
            return
        target = "%s/%s/%s" % (self.runtime_hooks_dir, OWN_DIR, CLI_FILE)
        if not (os.path.islink(cli_link) and os.readlink(cli_link) == target):
            if os.path.lexists(cli_link) and not os.path.islink(cli_link):
                raise InstallError("%s exists and is not a symlink; not replacing it with the CLI link" % cli_link)
            changes.append(Symlink(cli_link, target, note="CLI link"))

    def _plan_pruning(self, changes, keep, generation) -> None:
        """Generations beyond keep (counting the new one), and libraries no longer current."""
        ids = sorted(set(all_ids(self.own)) | {generation})
        if [g for g in ids[:-keep] if g != generation]:
            changes.append(PruneGenerations(self.own, keep))
        for stale in self._stale_lib_versions():
            changes.append(RemoveTree(stale, note="previous runtime version"))

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
        if before != data or cur_mode != mode or not self._owner_ok(cur_uid, cur_gid):
            note = "new" if before is None else ("content" if before != data else "mode/owner")
            changes.append(WriteFile(path, data, mode, before=before, note=note))

    # -- planning a removal ----------------------------------------------------------------
    def plan_removal(self, cli_link: str = "", foreign: str = "fail") -> Plan:
        """Everything we installed goes; adopted hooks go back where they were (and foreign_hooks=adopt,
        with nothing declared to adopt a hook for, says so)."""
        changes, removed = [], []
        for driver in self.installed_entry_points():
            removed.append(driver)
            changes.append(self._removal(driver))
        for driver in DRIVERS:
            if driver not in removed and self.kept_adopted(driver) and self.entry_point_state(driver) == "absent":
                changes.append(RestoreAdopted("%s/%s" % (self.hooks_dir, driver), self.kept_adopted(driver)))
        if cli_link and os.path.islink(cli_link) and \
                os.readlink(cli_link) == "%s/%s/%s" % (self.runtime_hooks_dir, OWN_DIR, CLI_FILE):
            changes.append(RemoveFile(cli_link, note="CLI link"))
        if os.path.lexists(self.own) and (not os.path.isdir(self.own) or os.path.islink(self.own)
                                          or set(os.listdir(self.own)) - {DROPIN_DIR}):
            changes.append(RemoveTree(self.own, note="virthooks runtime, generations and scripts%s"
                                      % (" (the host's drop-in rules, %s/, kept)" % DROPIN_DIR
                                         if os.path.isdir("%s/%s" % (self.own, DROPIN_DIR)) else "")))
        previous = current_id(self.own)
        return Plan(changes, [], removed, [], "", previous, NO_SCRIPTS, self._adoption_warnings([], foreign))

    def _removal(self, driver) -> Change:
        path = "%s/%s" % (self.hooks_dir, driver)
        if self.kept_adopted(driver):
            return RestoreAdopted(path, self.kept_adopted(driver), before=read_bytes(path))
        return RemoveFile(path, before=read_bytes(path), note="entry point")

    # -- applying --------------------------------------------------------------------------
    def apply(self, plan: Plan) -> None:
        """Carry out a plan, in its order, one deploy at a time per host."""
        if not plan.changes:
            return
        creating = any(not (isinstance(c, RemoveTree) and c.path == self.own) for c in plan.changes)
        if creating:
            for directory in (self.hooks_dir, self.own, "%s/%s" % (self.own, LIB_DIR)):
                ensure_dir(directory, 0o755, self.uid, self.gid)
        with DeployLock(self.own) if creating else _NoLock():
            self.remove_leftovers()
            for change in plan.changes:
                change.apply(self)
        if any(isinstance(c, WriteFile) and "/%s/" % LIB_DIR in c.path for c in plan.changes):
            compile_runtime("%s/%s/%s/%s" % (self.own, LIB_DIR, self.digest, RUNTIME_PACKAGE))

    def remove_leftovers(self) -> None:
        """Temporary files, half-written generations and half-removed trees of a run that was killed."""
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
                    self.keep_dropins(path)
                    shutil.rmtree(path)
        remove_leftovers(self.own)
        lib = "%s/%s" % (self.own, LIB_DIR)
        for version in os.listdir(lib) if os.path.isdir(lib) else ():
            package = "%s/%s/%s" % (lib, version, RUNTIME_PACKAGE)
            for folder in (package, package + "/library", package + "/commands"):
                for name in os.listdir(folder) if os.path.isdir(folder) else ():
                    if name.endswith(TEMP_SUFFIX):
                        os.unlink("%s/%s" % (folder, name))

    def keep_dropins(self, doomed: str) -> None:
        """hooks/virthooks/rules.d/ (the host admin's drop-in rules) is never removed with our tree."""
        if doomed == self.own + REMOVING_SUFFIX and os.path.isdir("%s/%s" % (doomed, DROPIN_DIR)):
            ensure_dir(self.own, 0o755, self.uid, self.gid)
            os.rename("%s/%s" % (doomed, DROPIN_DIR), "%s/%s" % (self.own, DROPIN_DIR))
            fsync_dir(self.own)


def _same_hook(a: str, b: str) -> bool:
    """Whether two names hold the same hook: the same file or symlink (a hard link), or an exact copy
    (a symlink with the same target, a file with the same content), not following links."""
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
        return True
    if os.path.islink(a) or os.path.islink(b):
        return os.path.islink(a) and os.path.islink(b) and os.readlink(a) == os.readlink(b)
    return read_bytes(a) == read_bytes(b)


def _copy_exactly(source: str, target: str) -> None:
    """target as source is: a symlink with the same target, or a file with its content, mode and owner."""
    st = os.lstat(source)
    temp = target + TEMP_SUFFIX
    if os.path.islink(source):
        os.symlink(os.readlink(source), temp)
    else:
        shutil.copyfile(source, temp)
        os.chmod(temp, st.st_mode & 0o7777)
    os.lchown(temp, st.st_uid, st.st_gid)
    os.rename(temp, target)


def syntax_gate(scripts: dict, root: str = "") -> list:
    """Every script of a new generation through its interpreter's syntax check, before the switch.

    Returns one warning per script that has no check; InstallError names each script and line at fault."""
    from .runtime.syntax import syntax_problem, unchecked     # a new generation only, as this gate
    problems, warnings = [], []
    for name in sorted(scripts):
        data = scripts[name]
        skipped = unchecked(name, data)
        if skipped is not None:
            warnings.append(str(skipped))
            continue
        program = interpreter_of(data)
        # Building an image: its interpreter where this machine has none of its own.
        interpreter = under(root, program) if root and not os.access(program, os.X_OK) else ""
        problem = syntax_problem(name, data, interpreter)
        if problem:
            problems.append(problem)
    if problems:
        raise InstallError("; ".join(problems) + " (nothing was changed: the host stays on its current generation)")
    return warnings


class _NoLock(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def compile_runtime(package_dir: str) -> None:
    """Byte-compile the runtime (and its sub-packages) so the first hook call does not pay for it (same Python only)."""
    import py_compile
    for name in sorted(os.listdir(package_dir)):
        path = "%s/%s" % (package_dir, name)
        if name.endswith(".py"):
            try:
                py_compile.compile(path, doraise=True)
            except (py_compile.PyCompileError, OSError):
                pass
        elif name != "__pycache__" and not os.path.islink(path) and os.path.isfile(path + "/__init__.py"):
            compile_runtime(path)


def diff_of(plan: Plan, hooks_dir: str) -> list:
    """Ansible diff entries for a plan: text diffs for config, scripts and entry points, a summary for the rest."""
    diffs = []
    lib_prefix = "%s/%s/%s/" % (hooks_dir, OWN_DIR, LIB_DIR)
    lib_changes = [c for c in plan.changes if c.path.startswith(lib_prefix)]
    own = "%s/%s" % (hooks_dir, OWN_DIR)
    for change in plan.changes:
        if not change.path.startswith(lib_prefix):
            diffs.extend(change.diff(plan, own))
    if lib_changes:
        diffs.append({"prepared": "runtime library: %d file(s) under %s" % (len(lib_changes), lib_prefix)})
    return diffs


def _generation_diff(own: str, plan: Plan, change: NewGeneration) -> list:
    """The change of a generation as people read it: one summary line per rule or script, then the
    text of each changed rule, of the other settings, and of each changed script (config.json's
    index, checksums and offsets are bookkeeping, left out)."""
    from .runtime.rollback import differences       # a diff only (--diff with changes)
    current = plan.before or Generation.read(own, plan.previous)
    before = current.scripts
    config_path = "%s/%s" % (own, CONFIG_FILE)
    rules_before, settings_before = _config_parts(plan.config_before)
    rules_after, settings_after = _config_parts(plan.config_after)
    summary = differences("rule", rules_before, rules_after)
    summary += ["script %s: %s" % (name, kind) for kind, names in
                (("added", plan.scripts.added), ("changed", plan.scripts.updated), ("removed", plan.scripts.removed))
                for name in names]
    lines = "\n".join(summary) or "no rule or script differs"
    diffs = [{"prepared": "generation %s (before: %s)\n%s\n" % (plan.generation, plan.previous or "none", lines)}]
    for name in sorted(set(rules_before) | set(rules_after)):
        if rules_before.get(name) != rules_after.get(name):
            header = "%s: rule %s" % (config_path, name)
            diffs.append({"before_header": header, "after_header": header,
                          "before": _json_text(rules_before.get(name)), "after": _json_text(rules_after.get(name))})
    if settings_before != settings_after:
        header = "%s: settings" % config_path
        diffs.append({"before_header": header, "after_header": header,
                      "before": _json_text(settings_before), "after": _json_text(settings_after)})
    before_secrets = read_secrets(current.path)
    before_files = read_files(current.path)
    for name in sorted(set(plan.scripts.added + plan.scripts.updated + plan.scripts.removed)):
        after = change.files.get("%s/%s" % (SCRIPTS_DIR, name), (None, 0))[0]
        path = "%s/%s/%s" % (own, SCRIPTS_DIR, name)
        diffs.append({"before_header": path, "after_header": path + ("" if after is not None else " (absent)"),
                      "before": diff_text(before.get(name)), "after": diff_text(after)})
        secrets_diff = _secrets_diff(own, name, before_secrets.get(name, {}), change.files)
        if secrets_diff:
            diffs.append(secrets_diff)
        diffs.extend(_files_diff(own, name, before_files.get(name, {}), change.files))
    return diffs


def _files_diff(own: str, script: str, before: dict, files: dict) -> list:
    """Diff entries for the files a script reads (not secret: shown as text, with their mode)."""
    prefix = "%s/%s/" % (FILES_DIR, script)
    after = {rel[len(prefix):]: value for rel, value in files.items() if rel.startswith(prefix)}
    diffs = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            path = "%s/%s/%s/%s" % (own, FILES_DIR, script, name)
            diffs.append({"before_header": path + (" (mode %04o)" % old[1] if old else " (absent)"),
                          "after_header": path + (" (mode %04o)" % new[1] if new else " (absent)"),
                          "before": diff_text(old[0] if old else None), "after": diff_text(new[0] if new else None)})
    return diffs


def _secrets_diff(own: str, script: str, before: dict, files: dict):
    """A diff entry for a script's secrets: their names, each value shown as <redacted> (marked
    'changed' when it is), never a value or a digest of one; None when nothing differs."""
    prefix = "%s/%s/" % (SECRETS_DIR, script)
    after = {rel[len(prefix):]: data for rel, (data, _mode) in files.items() if rel.startswith(prefix)}
    if not before and not after:
        return None
    path = "%s/%s/%s" % (own, SECRETS_DIR, script)
    old = "".join("%s=%s\n" % (name, REDACTED) for name in sorted(before))
    new = "".join("%s=%s%s\n" % (name, REDACTED, " (changed)" if name in before and before[name] != after[name] else "")
                  for name in sorted(after))
    if old == new:
        return None
    return {"before_header": path, "after_header": path, "before": old, "after": new}


def _config_parts(config: Optional[bytes]) -> tuple:
    """({rule name: rule}, the other settings) of a config.json, without its index and generator."""
    try:
        document = json.loads(config.decode("utf-8")) if config else {}
    except ValueError:
        return {}, {"unreadable config.json": diff_text(config)}
    document = document if isinstance(document, dict) else {}
    rules = {r.get("name"): r for r in document.get("rules", []) if isinstance(r, dict)}
    settings = {k: v for k, v in document.items() if k not in ("rules", "index", "generator")}
    return rules, settings


def _json_text(value) -> str:
    return "" if value is None else json.dumps(value, indent=2, sort_keys=True) + "\n"
