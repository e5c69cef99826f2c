# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: shared_plan
short_description: A play's plan of scripts and rules, worked out once when every host would work out the same
version_added: 0.3.0
author:
  - virthooks maintainers (@virthooks)
description:
  - The role C(virthooks.libvirt.libvirt_hooks) works out each host's plan (its validated scripts and dispatcher
    rules) on the controller. Most fleets declare the same scripts for every host of a play; this lookup, run
    once for the play, tells whether they do, and if so works the plan out once, for all of them.
  - The hosts named in O(hosts) share the plan when the variables it is made from are the same for each, as the
    inventory holds them, untemplated (the variables whose names match O(inputs)), when each host has the same
    set of C(libvirt_hooks_*) variable names (the misspelt-name check reads the names), and when none of those
    values, as this host sees them (the play's vars, role parameters and extra vars over the inventory's),
    holds a Jinja template (a template may give each host its own value), nor declares a script as
    C(template) (rendered with each host's variables).
  - Then the term, the name of the variable that holds the plan's expression, is templated once, for this host.
    Anything else, or a plan that fails (a script that does not validate, a misspelt variable under
    C(libvirt_hooks_strict)), returns an empty mapping, and each host then works its own plan out and reports its
    own error, as without this lookup.
  - The plan checks this host's role variables against the role's argument specs (O(specs)). For each other
    host of O(batch), the lookup checks the C(libvirt_hooks_*) variables that may not pass the same check, those
    whose value, as the inventory holds it, is not this host's, or holds a template, with that host's values
    (ansible-core's validator, and the wording of its check at a role's start, as
    P(virthooks.libvirt.arg_problems#lookup) says it), and returns what it finds; each host fails with its own.
options:
  _terms:
    description: The name of the variable whose value (a template) is the plan.
    required: true
    type: list
    elements: str
  hosts:
    description: The inventory hostnames that must share the plan (the play's).
    type: list
    elements: str
    required: true
  inputs:
    description: A regular expression matching the names of the variables the plan is made from.
    type: str
    required: true
  specs:
    description: The path of the role's C(meta/argument_specs.yml), whose C(main) entry point's options are checked.
    type: str
    required: true
  batch:
    description: The hosts of O(hosts) whose role variables are checked (the play's batch); default O(hosts).
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Work out the plan once when every host of the play has the same one
  ansible.builtin.set_fact:
    shared: >-
      {{ lookup('virthooks.libvirt.shared_plan', '__libvirt_hooks_planned', hosts=ansible_play_hosts_all,
                inputs='^libvirt_hooks_(scripts(__.+)?|library|strict)$', batch=ansible_play_batch,
                specs=role_path ~ '/meta/argument_specs.yml') }}
  run_once: true
  no_log: true
"""

RETURN = r"""
_raw:
  description:
    - An empty mapping when the hosts do not share a plan. Else C(plan), the plan (the value of the variable named
      in the term), and C(problems), the mapping of each host of O(batch) whose role variables do not pass the
      check to what is wrong with them (C(Validation of arguments failed:) and a line each, or the error templating
      them raised).
  type: list
  elements: dict
"""

import re
from collections.abc import Mapping

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible_collections.virthooks.libvirt.plugins.plugin_utils.argspecs import entry_options, problems

PREFIX = "libvirt_hooks_"


def inputs_of(raw, inputs) -> tuple:
    """(the libvirt_hooks_* names, {name: value} of those matching inputs) of a host's variables."""
    names = frozenset(name for name in raw if str(name).startswith(PREFIX))
    return names, {name: raw[name] for name in names if inputs.match(str(name))}


def declares_template(value) -> bool:
    """Whether script declarations (a list of mappings) give a script as template."""
    return isinstance(value, list) and any(isinstance(entry, Mapping) and entry.get("template") for entry in value)


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        inputs = re.compile(kwargs["inputs"])
        hosts = kwargs.get("hosts") or []
        raws = self._raw_if_shared(variables, hosts, inputs)
        if raws is None:
            return [{}]
        try:
            plan = self._templar.template(variables[terms[0]])
        except (AnsibleError, KeyError, TypeError, ValueError):
            return [{}]     # each host works it out, and reports the error, itself
        if not isinstance(plan, Mapping):
            return [{}]
        options = entry_options(kwargs["specs"], "main")
        return [{"plan": plan, "problems": self._problems(variables, raws, options, kwargs.get("batch") or hosts)}]

    def _problems(self, variables: dict, raws: dict, options: dict, batch: list) -> dict:
        """{host: what is wrong with its role variables} for the hosts of the batch but this one (checked with the
        plan), of the variables whose inventory value (raws: {host: its variables untemplated}) is not this host's
        or holds a template."""
        hostvars = variables["hostvars"]
        checked = variables.get("inventory_hostname")

        def raw_of(host):
            return raws[host] if host in raws else hostvars.raw_get(host)

        reference = raw_of(checked) if checked else {}
        found = {}
        for host in batch:
            if host == checked:
                continue
            raw = raw_of(host)
            names = [name for name in raw if name in options and (
                name not in reference or raw[name] != reference[name] or self._templated(raw[name]))]
            if not names:
                continue
            try:
                values = {name: self._templar.template(hostvars[host][name]) for name in names}
                problem = problems({name: options[name] for name in names}, values)
            except AnsibleError as exc:
                problem = "%s: %s" % (host, exc)
            if problem:
                found[host] = problem
        return found

    def _raw_if_shared(self, variables: dict, hosts: list, inputs):
        """{host: its variables untemplated} when the hosts would work out the same plan, else None."""
        hostvars = variables.get("hostvars")
        if hostvars is None or not hosts:
            return None
        first, raws = None, {}
        for host in hosts:
            raw = raws[host] = hostvars.raw_get(host)
            if not isinstance(raw, Mapping):
                return None
            found = inputs_of(raw, inputs)
            if first is None:
                first = found
            elif found != first:
                return None
        # What this host sees: the play's vars, role parameters and extra vars (the same for every host) over
        # the inventory's (the same for every host, checked above); a template among them may differ per host.
        if any(self._templated(value) or declares_template(value) for value in inputs_of(variables, inputs)[1].values()):
            return None
        return raws

    def _templated(self, value) -> bool:
        if isinstance(value, str):
            return bool(self._templar.is_template(value))
        if isinstance(value, Mapping):
            return any(self._templated(key) or self._templated(item) for key, item in value.items())
        if isinstance(value, (list, tuple)):
            return any(self._templated(item) for item in value)
        return False
