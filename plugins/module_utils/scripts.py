# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The users' hook scripts under hooks/virthooks/scripts/: validation, plan, apply.

A whole host's scripts are handled in one module call. Every script is validated before
anything is written: libvirt (and the dispatcher) execute scripts directly, so a script
without ``#!`` or an ELF header would fail every guest start with "Exec format error".
"""
from __future__ import annotations

import os

from .fileops import atomic_write, diff_text, ensure_dir, file_state, under
from .runtime.layout import OWN_DIR, SCRIPTS_DIR
from .runtime.rules import validate_name
from .runtime.trust import format_problem, interpreter_of

DEFAULT_MAX_SIZE = 1 << 20


class ScriptError(Exception):
    """One or more scripts are invalid; nothing was written. The message names each."""


def script_problems(name, data, max_size: int = DEFAULT_MAX_SIZE, root: str = "") -> list:
    """Why a script cannot be installed (empty list if it can)."""
    problems = []
    problem = validate_name(name)
    if problem:
        problems.append("script name %r %s" % (name, problem))
    if len(data) > max_size:
        problems.append("script %r is %d bytes, more than the limit of %d (max_size)" % (name, len(data), max_size))
    problem = format_problem(data)
    if problem:
        problems.append("script %r %s" % (name, problem))
        return problems
    interpreter = interpreter_of(data)
    if not data.startswith(b"#!"):
        return problems             # an ELF executable
    if not interpreter.startswith("/"):
        problems.append("script %r: the #! line must name an absolute interpreter path (got %r)" % (name, interpreter))
    elif not any(os.access(candidate, os.X_OK) for candidate in (under(root, interpreter), interpreter)):
        problems.append("script %r: its interpreter %s does not exist on this host" % (name, interpreter))
    return problems


def script_warnings(name, data) -> list:
    if interpreter_of(data) == "/usr/bin/env":
        return ["script %r uses #!/usr/bin/env: libvirt runs hooks with a minimal PATH, so the program may not "
                "be found; prefer an absolute interpreter path" % name]
    return []


class ScriptsInstaller(object):
    """Plans and applies the scripts of one hooks directory."""

    def __init__(self, hooks_dir: str, uid: int = 0, gid: int = 0):
        self.dir = "%s/%s/%s" % (hooks_dir.rstrip("/"), OWN_DIR, SCRIPTS_DIR)
        self.uid, self.gid = uid, gid

    def path(self, name: str) -> str:
        return "%s/%s" % (self.dir, name)

    def installed(self) -> list:
        try:
            return sorted(n for n in os.listdir(self.dir) if not n.startswith(".") and os.path.isfile(self.path(n)))
        except OSError:
            return []

    def plan(self, scripts: list, purge: bool = False, max_size: int = DEFAULT_MAX_SIZE, root: str = "") -> dict:
        """{'write': [(name, before, after)], 'remove': [(name, before)], 'unchanged': [...], 'warnings': [...]}.

        scripts: [{'name', 'data' (bytes), 'state' ('present'|'absent')}]. Raises ScriptError.
        """
        problems, warnings, seen = [], [], set()
        for script in scripts:
            name = script.get("name")
            if name in seen:
                problems.append("script name %r is declared more than once" % name)
            seen.add(name)
            if script.get("state", "present") == "present":
                problems.extend(script_problems(name, script["data"], max_size, root))
                warnings.extend(script_warnings(name, script["data"]))
            elif validate_name(name):
                problems.append("script name %r %s" % (name, validate_name(name)))
        if problems:
            raise ScriptError("; ".join(problems) + " (nothing was changed)")
        result = {"write": [], "remove": [], "unchanged": [], "warnings": warnings}
        wanted = set()
        for script in scripts:
            name = script["name"]
            before, mode, uid, gid = file_state(self.path(name))
            if script.get("state", "present") == "absent":
                if before is not None:
                    result["remove"].append((name, before))
                continue
            wanted.add(name)
            owner_ok = (self.uid == -1 or uid == self.uid) and (self.gid == -1 or gid == self.gid)
            if before == script["data"] and mode == 0o755 and owner_ok:
                result["unchanged"].append(name)
            else:
                result["write"].append((name, before, script["data"]))
        if purge:
            declared_absent = {name for name, _before in result["remove"]}
            for name in self.installed():
                if name not in wanted and name not in declared_absent:
                    result["remove"].append((name, file_state(self.path(name))[0]))
        return result

    def apply(self, plan: dict) -> None:
        if plan["write"]:
            ensure_dir(os.path.dirname(self.dir), 0o755, self.uid, self.gid)
            ensure_dir(self.dir, 0o755, self.uid, self.gid)
        for name, _before, data in plan["write"]:
            atomic_write(self.path(name), data, 0o755, self.uid, self.gid)
        for name, _before in plan["remove"]:
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass


def diff_of(plan: dict, directory: str) -> list:
    diffs = []
    for name, before, after in plan["write"]:
        diffs.append({"before_header": "%s/%s" % (directory, name), "after_header": "%s/%s" % (directory, name),
                      "before": diff_text(before), "after": diff_text(after)})
    for name, before in plan["remove"]:
        diffs.append({"before_header": "%s/%s" % (directory, name), "after_header": "%s/%s (absent)" % (directory, name),
                      "before": diff_text(before), "after": ""})
    return diffs
