# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: arg_problems
short_description: What is wrong with a role's variables, by its argument specs, checked in the task that reads them
version_added: 0.3.0
author:
  - virthooks maintainers (@virthooks)
description:
  - Checks the variables of this host named in an entry point of a role's C(meta/argument_specs.yml) as
    M(ansible.builtin.validate_argument_spec) does when a role starts (the same validator, the values templated
    first), and returns the problems, C(Validation of arguments failed:) and one line each, or an empty string.
  - Ansible runs that check as a task of its own for every host, which costs the controller a worker process per
    host. C(playbooks/deploy_hooks.yml) imports the role without it (C(rolespec_validate=false)) and the role runs
    this check in the tasks that read the variables, before anything is planned or changed.
  - The specs file is read once per run of C(ansible-playbook); its workers share it through the run's local
    temporary directory.
options:
  _terms:
    description: The path of the role's C(meta/argument_specs.yml).
    required: true
    type: list
    elements: str
  entry_point:
    description: The entry point whose options are checked.
    type: str
    default: main
  only:
    description:
      - Check only these options (the others are known good, for example because they are the same as those of a
        host already checked; the options of a role's entry point are checked each on its own). Unset checks every
        option.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Stop on a misspelt option
  ansible.builtin.fail:
    msg: "{{ problems }}"
  when: problems | length > 0
  vars:
    problems: "{{ lookup('virthooks.libvirt.arg_problems', role_path ~ '/meta/argument_specs.yml') }}"
"""

RETURN = r"""
_raw:
  description: The problems found, as M(ansible.builtin.validate_argument_spec) words them, or an empty string.
  type: list
  elements: str
"""

import hashlib
import json
import os

import yaml
from ansible import constants as C
from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.lookup import LookupBase

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


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        only = kwargs.get("only")
        if only is not None and not only:
            return [""]
        options = entry_options(terms[0], kwargs.get("entry_point") or "main")
        if only is not None:
            options = {name: spec for name, spec in options.items() if name in only}
        values = self._templar.template({name: variables[name] for name in options if name in variables})
        errors = ArgumentSpecValidator(options).validate(values, validate_role_argument_spec=True).error_messages
        return ["Validation of arguments failed:\n%s" % "\n".join(errors) if errors else ""]
