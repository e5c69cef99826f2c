# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's argument specs, read once per run, and the check of variables against them (the lookups arg_problems
and shared_plan): ansible-core's validator, with the wording of its check at a role's start."""
from __future__ import annotations

import hashlib
import json
import os

import yaml
from ansible import constants as C
from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

try:
    SAFE_LOADER = yaml.CSafeLoader
except AttributeError:   # PyYAML without libyaml
    SAFE_LOADER = yaml.SafeLoader

_SPECS: dict = {}


def entry_options(path: str, entry_point: str) -> dict:
    """The options of an entry point of an argument_specs.yml, read once per process (and again if it changed)."""
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        if key not in _SPECS:
            _SPECS[key] = _read_specs(path, key)
        return _SPECS[key][entry_point].get("options") or {}
    except (OSError, KeyError, TypeError, AttributeError, ValueError, yaml.YAMLError) as exc:
        raise AnsibleLookupError("%s: no argument specs for the entry point %r (%s)" % (path, entry_point, exc))


def _read_specs(path: str, key: tuple) -> dict:
    """The file's argument_specs, from the run's cache (JSON, written by the first worker that read the YAML)."""
    cache = os.path.join(C.DEFAULT_LOCAL_TMP, "virthooks-argspecs-%s.json"
                         % hashlib.sha256(repr(key).encode("utf-8", "surrogateescape")).hexdigest()[:32])
    try:
        with open(cache, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        pass
    with open(path, encoding="utf-8") as handle:
        specs = yaml.load(handle, Loader=SAFE_LOADER)["argument_specs"]
    try:
        text = json.dumps(specs)
        if json.loads(text) == specs:       # nothing YAML has that JSON has not (a date): else no cache
            temporary = "%s.%d" % (cache, os.getpid())
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.rename(temporary, cache)
    except (OSError, TypeError, ValueError):
        pass
    return specs


def problems(options: dict, values: dict) -> str:
    """What is wrong with values ({option: templated value}) by these options, as ansible-core's check at a role's
    start says it, or ''."""
    errors = ArgumentSpecValidator(options).validate(values, validate_role_argument_spec=True).error_messages
    return "Validation of arguments failed:\n%s" % "\n".join(errors) if errors else ""
