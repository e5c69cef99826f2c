# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checking the users' hook scripts before a deploy puts them into a generation.

Every script is validated before anything is written: libvirt (and the dispatcher) execute
scripts directly, so a script without ``#!`` or an ELF header would fail every guest start
with "Exec format error".
"""
from __future__ import annotations

import base64
import binascii
import os
import re

from .runtime.fileops import under

# The checks import the rules' and the trust check's modules when they run: hook_runtime reads only the
# argument spec below on a re-run that changes nothing (its payload compiles every module it imports).

DEFAULT_MAX_SIZE = 1 << 20
# A script's secrets: <generation>/secrets/<script>/<NAME>, one root-only file per value, handed to the
# script as $VIRTHOOKS_SECRETS (as systemd hands credentials in $CREDENTIALS_DIRECTORY).
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
SECRET_MAX_SIZE = 1 << 16


def secret_problems(secrets) -> list:
    """Why a script's secrets ({NAME: value}) cannot be installed; names NAME, never a value."""
    if secrets is None:
        return []
    if not isinstance(secrets, dict):
        return ["'secrets' must be a mapping of NAME to a string value"]
    problems = []
    for name, value in secrets.items():
        if not isinstance(name, str) or not SECRET_NAME.match(name):
            problems.append("secret name %r must be 1-64 letters, digits or _ and not start with a digit" % (name,))
        elif not isinstance(value, str):
            problems.append("secret %s must be a string (quote numbers)" % name)
        elif len(value.encode("utf-8")) > SECRET_MAX_SIZE or "\0" in value:
            problems.append("secret %s must be a string of at most %d bytes without NUL" % (name, SECRET_MAX_SIZE))
    return problems


# Files a script reads (files/<script>/<name> in the generation, $VIRTHOOKS_FILES): root alone reads them.
FILE_MODES = {"0400": 0o400, "0500": 0o500, "0600": 0o600, "0700": 0o700}
FILE_DEFAULT_MODE = "0600"
FILE_MAX_SIZE = 1 << 20


def file_mode(value):
    """The mode of a script's file (a string such as '0600', or the number YAML makes of 0600), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value in FILE_MODES.values() else None
    if isinstance(value, str):
        return FILE_MODES.get(value if len(value) == 4 else "0" + value)
    return None


def file_problems(files) -> list:
    """Why a script's files ([{name, content, mode}], content already read) cannot be installed."""
    if files is None:
        return []
    if not isinstance(files, list):
        return ["'files' must be a list of {name, content or src, mode}"]
    from .runtime.rules import validate_name
    problems, seen = [], set()
    for index, item in enumerate(files):
        where = "files[%d]" % index
        if not isinstance(item, dict):
            problems.append("%s must be a mapping with name and content or src" % where)
            continue
        name = item.get("name")
        problem = validate_name(name)
        if problem:
            problems.append("%s: 'name' %s" % (where, problem))
        elif name in seen:
            problems.append("%s: the file name %r is used twice" % (where, name))
        seen.add(name)
        if file_mode(item.get("mode", FILE_DEFAULT_MODE)) is None:
            problems.append("%s (%s): 'mode' must be one of %s (root alone reads a script's files; got %r)"
                            % (where, name, ", ".join(FILE_MODES), item.get("mode")))
        content = item.get("content")
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        if not isinstance(content, bytes):
            problems.append("%s (%s): needs its content (content, or src read on the controller)" % (where, name))
        elif len(content) > FILE_MAX_SIZE:
            problems.append("%s (%s): is %d bytes, more than %d" % (where, name, len(content), FILE_MAX_SIZE))
    return problems


def script_problems(name, data, max_size: int = DEFAULT_MAX_SIZE, root: str = "") -> list:
    """Why a script cannot be installed (empty list if it can)."""
    from .runtime.rules import validate_name
    from .runtime.trust import format_problem, interpreter_of
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
    elif not interpreter_found(interpreter, root):
        problems.append("script %r: its interpreter %s does not exist on this host" % (name, interpreter))
    return problems


def interpreter_found(interpreter: str, root: str = "") -> bool:
    """Whether a script's #! interpreter can be run: under the image root being built, or on this host (what a
    deploy checks, and the stamp records: module_utils/stamp.py)."""
    return any(os.access(candidate, os.X_OK) for candidate in (under(root, interpreter), interpreter))


def script_warnings(name, data) -> list:
    from .runtime.trust import interpreter_of
    if interpreter_of(data) == "/usr/bin/env":
        return ["script %r uses #!/usr/bin/env: libvirt runs hooks with a minimal PATH, so the program may not "
                "be found; prefer an absolute interpreter path" % name]
    return []


# The argument spec of one script, for the modules that take scripts (hook, hook_runtime).
SCRIPT_OPTIONS = dict(
    name=dict(type="str", required=True),
    content=dict(type="str"),
    content_base64=dict(type="str"),
    launcher=dict(type="dict", options=dict(block=dict(type="str", required=True), step=dict(type="str", required=True))),
    secrets=dict(type="dict", no_log=True),
    files=dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True),
        content=dict(type="str"),
        content_base64=dict(type="str"),
        mode=dict(type="str", choices=list(FILE_MODES), default=FILE_DEFAULT_MODE),
    )),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)
# The options the virthooks.libvirt.scripts doc fragment documents.
SCRIPTS_ARGUMENT_SPEC = dict(
    scripts=dict(type="list", elements="dict", options=SCRIPT_OPTIONS),
    generations_keep=dict(type="int", default=3),
    max_size=dict(type="int", default=DEFAULT_MAX_SIZE),
)


# A library block's or step's name (the launcher imports the block's module and calls the step).
LAUNCHER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")


def script_bytes(script: dict, python: str = "/usr/bin/python3") -> bytes:
    """The bytes of a declared script (content, content_base64, or the launcher of a library block's step run
    by python); ValueError names the script."""
    if script["state"] == "absent":
        return b""
    given = [k for k in ("content", "content_base64", "launcher") if script.get(k) is not None]
    if len(given) != 1:
        raise ValueError("script %r needs exactly one of content, content_base64 or launcher (got %s)"
                         % (script["name"], ", ".join(given) or "none"))
    if given[0] == "content":
        return script["content"].encode("utf-8")
    if given[0] == "launcher":
        return launcher_bytes(script["name"], script["launcher"], python)
    try:
        return base64.b64decode(script["content_base64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("script %r: content_base64 is not valid base64: %s" % (script["name"], exc))


def launcher_bytes(name: str, step: dict, python: str) -> bytes:
    """The launcher of a library block's step ({block, step}), run by python; ValueError names the script."""
    bad = [key for key in ("block", "step") if not LAUNCHER_NAME.match(str(step.get(key) or ""))]
    if bad:
        raise ValueError("script %r: launcher %s must be a library block's name (lower-case letters, digits and _), "
                         "got %s" % (name, " and ".join(bad), ", ".join(repr(step.get(key)) for key in bad)))
    from .runtime import launcher       # library blocks' scripts only
    return launcher.render(step["block"], step["step"], python).encode("utf-8")


def secret_files(script: dict) -> dict:
    """{NAME: bytes} of a declared script's secrets; ValueError names the script and the secret."""
    problems = secret_problems(script.get("secrets"))
    if problems:
        raise ValueError("script %r: %s" % (script["name"], "; ".join(problems)))
    return {name: value.encode("utf-8") for name, value in (script.get("secrets") or {}).items()}


def own_files(script: dict) -> dict:
    """{file name: (bytes, mode)} of a declared script's files; ValueError names the script and the file."""
    files = []
    for given in script.get("files") or []:
        item = dict(given)
        if item.get("content_base64") is not None and item.get("content") is not None:
            raise ValueError("script %r: file %r: give content or content_base64, not both"
                             % (script["name"], item.get("name")))
        if item.get("content_base64") is not None:
            try:
                item["content"] = base64.b64decode(item.pop("content_base64"), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("script %r: file %r: content_base64 is not valid base64: %s"
                                 % (script["name"], item.get("name"), exc))
        files.append(item)
    problems = file_problems(files)
    if problems:
        raise ValueError("script %r: %s" % (script["name"], "; ".join(problems)))
    return {f["name"]: (f["content"].encode("utf-8") if isinstance(f["content"], str) else f["content"],
                        file_mode(f.get("mode") or FILE_DEFAULT_MODE)) for f in files}


def declared_scripts(scripts: list, python: str = "/usr/bin/python3") -> list:
    """[{'name', 'state', 'data', 'secrets', 'files'}] for the installer, from a module's O(scripts) (library
    launchers run by python); ValueError names a bad one."""
    return [{"name": s["name"], "state": s["state"], "data": script_bytes(s, python), "secrets": secret_files(s),
             "files": own_files(s)} for s in scripts]
