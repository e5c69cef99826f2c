# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the runtime is made of on a host, and how it is written there.

The runtime on a hypervisor is this very code: the files of plugins/module_utils that the
dispatcher needs are copied, as they are, into hooks/virthooks/lib/virthooks_runtime/, so the
host runs the same version as the collection that deployed it.
"""
from __future__ import annotations

import json
import os
import pkgutil

from .entrypoint import render_cli, render_entry_point
from .fileops import atomic_write, ensure_dir, file_state
from .layout import CLI_FILE, CONFIG_FILE, LIB_DIR, OWN_DIR, RUNTIME_PACKAGE, SCRIPTS_DIR
from .rules import CONFIG_VERSION, normalize_config

VERSION = "0.1.0"
RUNTIME_MODULES = ("events.py", "layout.py", "minijson.py", "rules.py", "runlog.py", "xmlcond.py",
                   "dispatch.py", "entrypoint.py", "cli.py")


def runtime_sources() -> dict:
    """{file name: source bytes} of the runtime package, read from this collection."""
    files = {"__init__.py": ('"""virthooks hook runtime, deployed by virthooks.libvirt %s."""\nVERSION = "%s"\n'
                             % (VERSION, VERSION)).encode()}
    for name in RUNTIME_MODULES:
        data = pkgutil.get_data(__package__, name)
        if data is None:
            raise RuntimeError("runtime file %s is missing from the collection" % name)
        files[name] = data
    return files


def config_text(rules: list, log: dict | None = None, tree: dict | None = None, kill_grace: float = 2) -> str:
    """config.json for a list of rules; validated, so a bad rule never reaches a host."""
    raw = {"version": CONFIG_VERSION, "generator": "virthooks.libvirt %s" % VERSION, "rules": rules,
           "kill_grace": kill_grace}
    if log is not None:
        raw["log"] = log
    if tree is not None:
        raw["tree"] = tree
    normalize_config(raw, strict=True)
    return json.dumps(raw, indent=2, sort_keys=True) + "\n"


def desired_files(hooks_dir: str, python: str, config: str, drivers, tree: bool = True) -> dict:
    """{absolute path: (bytes, mode)} of everything the runtime consists of."""
    own = "%s/%s" % (hooks_dir, OWN_DIR)
    lib = "%s/%s/%s" % (own, LIB_DIR, RUNTIME_PACKAGE)
    rules = normalize_config(json.loads(config), strict=False)["rules"]
    files = {"%s/%s" % (lib, name): (data, 0o644) for name, data in runtime_sources().items()}
    files["%s/%s" % (own, CONFIG_FILE)] = (config.encode(), 0o644)
    files["%s/%s" % (own, CLI_FILE)] = (render_cli(hooks_dir, python).encode(), 0o755)
    for driver in drivers:
        text = render_entry_point(driver, hooks_dir, python, rules, tree, "(virthooks.libvirt %s)" % VERSION)
        files["%s/%s" % (hooks_dir, driver)] = (text.encode(), 0o755)
    return files


def runtime_dirs(hooks_dir: str) -> list:
    own = "%s/%s" % (hooks_dir, OWN_DIR)
    return [hooks_dir, own, "%s/%s" % (own, SCRIPTS_DIR), "%s/%s" % (own, LIB_DIR),
            "%s/%s/%s" % (own, LIB_DIR, RUNTIME_PACKAGE)]


def pending_changes(files: dict, uid: int = 0, gid: int = 0) -> list:
    """[(path, before bytes or None, after bytes, mode)] for files that differ from the host."""
    changes = []
    for path in sorted(files):
        data, mode = files[path]
        before, cur_mode, cur_uid, cur_gid = file_state(path)
        if before != data or cur_mode != mode or (uid != -1 and cur_uid != uid) or (gid != -1 and cur_gid != gid):
            changes.append((path, before, data, mode))
    return changes


def apply_changes(changes: list, hooks_dir: str, uid: int = 0, gid: int = 0) -> None:
    """Write changed files: the library and config first, entry points last.

    Entry points are what libvirt runs; writing them last means they never point at a
    runtime or config that is not there yet.
    """
    for directory in runtime_dirs(hooks_dir):
        ensure_dir(directory, 0o755, uid, gid)
    own_prefix = "%s/%s/" % (hooks_dir, OWN_DIR)
    ordered = [c for c in changes if c[0].startswith(own_prefix)] + [c for c in changes if not c[0].startswith(own_prefix)]
    for path, _before, data, mode in ordered:
        atomic_write(path, data, mode, uid, gid)
    compile_runtime(hooks_dir)


def compile_runtime(hooks_dir: str) -> None:
    """Byte-compile the runtime so the first hook call does not pay for it (same Python only)."""
    import py_compile
    lib = "%s/%s/%s/%s" % (hooks_dir, OWN_DIR, LIB_DIR, RUNTIME_PACKAGE)
    for name in os.listdir(lib):
        if name.endswith(".py"):
            try:
                py_compile.compile("%s/%s" % (lib, name), doraise=True)
            except (py_compile.PyCompileError, OSError):
                pass
