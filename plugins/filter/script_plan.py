# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: script_plan
short_description: Turn declared libvirt hook scripts into what the virthooks modules install
version_added: 0.1.0
author:
  - virthooks maintainers (@virthooks)
description:
  - Takes the script declarations of the role C(virthooks.libvirt.libvirt_hooks) (C(libvirt_hooks_scripts)
    and every C(libvirt_hooks_scripts__*) variable), validates every entry with the same rules the
    dispatcher uses, and returns the scripts for M(virthooks.libvirt.hook), the rules for
    M(virthooks.libvirt.hook_runtime) and the drivers that need an entry point.
  - Fails on the controller, before any host is touched, naming the variable and the entry at
    fault (duplicate name, unknown driver or operation, missing or doubled source, bad value).
positional: _input, contents
options:
  _input:
    description: Variable name -> list of script declarations.
    type: dict
    required: true
  contents:
    description: Script name -> text read from its C(src) or C(template) file (by the role).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Plan the scripts of this host
  ansible.builtin.set_fact:
    plan: "{{ {'libvirt_hooks_scripts': libvirt_hooks_scripts} | virthooks.libvirt.script_plan }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    scripts:
      description: Entries for the O(virthooks.libvirt.hook#module:scripts) option.
      type: list
      elements: dict
    rules:
      description: Entries for the O(virthooks.libvirt.hook_runtime#module:rules) option.
      type: list
      elements: dict
    drivers:
      description: Drivers that have at least one present, enabled script.
      type: list
      elements: str
"""

import os

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.events import DRIVERS
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.layout import script_file
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import RULE_DEFAULTS, normalize_rule, validate_name
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.syntax import syntax_problem, unchecked
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.trust import interpreter_of
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.xmlcond import rule_problems
from ansible_collections.virthooks.libvirt.plugins.module_utils.scripts import (
    FILE_DEFAULT_MODE,
    LAUNCHER_NAME,
    file_mode,
    file_problems,
    secret_problems,
)

SOURCES = ("content", "src", "template", "launcher")
RULE_FIELDS = tuple(k for k in RULE_DEFAULTS)
ALLOWED = ("name", "state", "secrets", "files") + SOURCES + RULE_FIELDS


def _entries(declared):
    """(variable, index, entry) for every declaration, variables in name order."""
    if not isinstance(declared, dict):
        raise AnsibleFilterError("script_plan expects a mapping of variable name to list, got %s"
                                 % type(declared).__name__)
    for var in sorted(declared):
        value = declared[var]
        if value is None:
            continue
        if not isinstance(value, list):
            raise AnsibleFilterError("%s must be a list of scripts, got %s" % (var, type(value).__name__))
        for index, entry in enumerate(value):
            yield var, index, entry


def script_plan(declared, contents=None):
    contents = contents or {}
    errors, scripts, rules, drivers, seen = [], [], [], [], {}
    for var, index, entry in _entries(declared):
        where = "%s[%d]" % (var, index)
        if not isinstance(entry, dict):
            errors.append("%s: must be a mapping with at least 'name', got %r" % (where, entry))
            continue
        name = entry.get("name")
        where = "%s[%d] (%s)" % (var, index, name)
        problem = validate_name(name)
        if problem:
            errors.append("%s: 'name' %s" % (where, problem))
            continue
        if name in seen:
            errors.append("%s: the name %r is already used by %s" % (where, name, seen[name]))
            continue
        seen[name] = where
        unknown = sorted(set(entry) - set(ALLOWED))
        if unknown:
            errors.append("%s: unknown key(s) %s (valid: %s)" % (where, ", ".join(unknown), ", ".join(ALLOWED)))
        state = entry.get("state", "present")
        if state not in ("present", "absent"):
            errors.append("%s: 'state' must be present or absent (got %r)" % (where, state))
            continue
        if state == "absent":
            scripts.append({"name": name, "state": "absent"})
            continue
        text = script_text(entry, contents, where, errors)
        if text is None:
            continue
        source = {"launcher": text} if isinstance(text, dict) else {"content": text}
        rule = {k: entry[k] for k in RULE_FIELDS if k in entry}
        rule.update(name=name, script=script_file(name))
        rule_errors = ["%s: %s" % (where, problem) for problem in secret_problems(entry.get("secrets"))]
        secrets = dict(entry.get("secrets") or {}) if isinstance(entry.get("secrets"), dict) else {}
        if "env" in entry:
            rule["env"] = split_env(entry["env"], secrets, where, rule_errors)
        files = own_files(name, entry.get("files"), contents, where, rule_errors)
        normalized = normalize_rule(rule, index, rule_errors, strict=True, where=where)
        errors.extend(rule_errors)
        if rule_errors:
            continue
        errors.extend("%s: %s" % (where, problem) for problem in rule_problems([normalized]))
        if "content" in source:
            errors.extend("%s: %s" % (where, problem) for problem in controller_syntax(name, text))
        scripts.append(dict({"name": name, "state": "present"}, **source,
                            **({"secrets": secrets} if secrets else {}), **({"files": files} if files else {})))
        rules.append(rule)
        if normalized["enabled"] and normalized["driver"] not in drivers:
            drivers.append(normalized["driver"])
    if errors:
        raise AnsibleFilterError("invalid libvirt hook scripts (no host was changed):\n  " + "\n  ".join(errors))
    return {"scripts": scripts, "rules": rules, "drivers": sorted(drivers, key=DRIVERS.index)}


def script_text(entry: dict, contents: dict, where: str, errors: list):
    """The text of a declared script (its content, or its src/template as read on the controller);
    None, with the reason in errors, when there is not exactly one or it could not be read."""
    given = [k for k in SOURCES if entry.get(k) not in (None, "")]
    if len(given) != 1:
        errors.append("%s: needs exactly one of content, src, template (got %s)" % (where, ", ".join(given) or "none"))
        return None
    if given[0] == "content":
        return entry["content"]
    if given[0] == "launcher":
        return launcher_step(entry["launcher"], where, errors)
    text = contents.get(entry["name"])
    if text in (None, "", []):
        errors.append("%s: %s %r could not be read on the controller (looked up like "
                      "ansible.builtin.%s: relative to the role's and the playbook's files/templates)"
                      % (where, given[0], entry[given[0]], "file" if given[0] == "src" else "template"))
        return None
    return text


def launcher_step(step, where: str, errors: list):
    """A library launcher ({block, step}, written by the host for its Python: library_scripts with no Python);
    None, with the reason in errors, when it is not one."""
    if not isinstance(step, dict) or set(step) != {"block", "step"} or not all(
            isinstance(value, str) and LAUNCHER_NAME.match(value) for value in step.values()):
        errors.append("%s: 'launcher' must be {block: NAME, step: NAME} of the library of ready-made hooks (got %r)"
                      % (where, step))
        return None
    return dict(step)


def split_env(env, secrets: dict, where: str, errors: list):
    """A script's env as its rule holds it: plain values as they are, each {secret: value} moved to the
    script's secrets (a root-only file, never config.json) and left as {secret: true}. A problem
    names the variable, never a value."""
    if not isinstance(env, dict):
        errors.append("%s: 'env' must map NAME to a string or {secret: value}" % where)
        return {}
    out = {}
    for key, value in env.items():
        if isinstance(value, dict):
            if set(value) != {"secret"} or not isinstance(value["secret"], str):
                errors.append("%s: env %s: a secret value is written {secret: \"...\"} (a string)" % (where, key))
                continue
            problems = secret_problems({key: value["secret"]})
            if problems:
                errors.extend("%s: env %s" % (where, p) for p in problems)
                continue
            if key in secrets and secrets[key] != value["secret"]:
                errors.append("%s: env %s is a secret and 'secrets' has a different %s" % (where, key, key))
                continue
            secrets[key] = value["secret"]
            out[key] = {"secret": True}
        else:
            out[key] = value
    return out


def own_files(name, files, contents: dict, where: str, errors: list) -> list:
    """A script's files for the module, [{name, content, mode}], src read on the controller (the role
    gives it in contents as '<script>/<file>')."""
    if files is None:
        return []
    if not isinstance(files, list):
        errors.append("%s: 'files' must be a list of {name, content or src, mode}" % where)
        return []
    out = []
    for index, item in enumerate(files):
        if isinstance(item, dict):
            given = [k for k in ("content", "src") if item.get(k) not in (None, "")]
            unknown = sorted(set(item) - {"name", "content", "src", "mode"})
            if unknown or len(given) != 1:
                errors.append("%s: files[%d] (%s): %s" % (where, index, item.get("name"), (
                    "unknown key(s) %s (valid: name, content, src, mode)" % ", ".join(unknown)) if unknown else
                    "needs exactly one of content, src (got %s)" % (", ".join(given) or "none")))
                continue
            content = item.get("content")
            if given == ["src"]:
                content = contents.get("%s/%s" % (name, item.get("name")))
                if content in (None, ""):
                    errors.append("%s: files[%d] (%s): src %r could not be read on the controller (looked up like "
                                  "ansible.builtin.file)" % (where, index, item.get("name"), item["src"]))
                    continue
            mode = file_mode(item.get("mode", FILE_DEFAULT_MODE))
            out.append({"name": item.get("name"), "content": content,
                        "mode": "%04o" % mode if mode is not None else item.get("mode")})
        else:
            out.append(item)
    errors.extend("%s: %s" % (where, problem) for problem in file_problems(out))
    return out


def controller_syntax(name, text) -> list:
    """The syntax gate on the controller, where the script's interpreter exists here (every host
    checks again with its own before switching); a script that has no check is said so, once."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
    skipped = unchecked(name, data)
    if skipped is not None:
        Display().warning(str(skipped))     # Ansible shows one warning once, however many hosts
        return []
    if not os.access(interpreter_of(data), os.X_OK):
        return []
    passed = passed_marker(data)
    if passed is not None and os.path.isfile(passed):
        return []
    problem = syntax_problem(name, data)
    if not problem and passed is not None:
        try:
            os.close(os.open(passed, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        except OSError:
            pass
    return [problem] if problem else []


def passed_marker(data: bytes):
    """Where this run remembers that a script's text passed its syntax check: an empty file named by the
    text's sha256 in the controller's temporary directory for this run (ansible-core's own, private to the
    user and removed at the end, where it keeps its module cache too), so that a script many hosts share is
    checked once per run, not once per host. None when there is no such directory."""
    import hashlib
    from ansible import constants as C
    base = getattr(C, "DEFAULT_LOCAL_TMP", None)
    if not isinstance(base, str) or not os.path.isdir(base):
        return None
    folder = os.path.join(base, "virthooks-syntax-passed")
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    return os.path.join(folder, hashlib.sha256(data).hexdigest())


class FilterModule(object):
    def filters(self):
        return {"script_plan": script_plan}
