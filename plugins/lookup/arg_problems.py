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

from ansible.plugins.lookup import LookupBase
from ansible_collections.virthooks.libvirt.plugins.plugin_utils.argspecs import entry_options, problems


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        options = entry_options(terms[0], kwargs.get("entry_point") or "main")
        return [problems(options, self._templar.template({name: variables[name] for name in options if name in variables}))]
