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
  - The specs file is read once per process.
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

import os

import yaml
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
        key = (path, os.stat(path).st_mtime_ns)
        if key not in _SPECS:
            with open(path, encoding="utf-8") as handle:
                _SPECS[key] = yaml.load(handle, Loader=SAFE_LOADER)["argument_specs"]
        return _SPECS[key][entry_point].get("options") or {}
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise AnsibleLookupError("%s: no argument specs for the entry point %r (%s)" % (path, entry_point, exc))


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        options = entry_options(terms[0], kwargs.get("entry_point") or "main")
        values = self._templar.template({name: variables[name] for name in options if name in variables})
        errors = ArgumentSpecValidator(options).validate(values, validate_role_argument_spec=True).error_messages
        return ["Validation of arguments failed:\n%s" % "\n".join(errors) if errors else ""]
