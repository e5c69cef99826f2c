# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: script_vars
short_description: The script declarations of a host, each one templated on its own
version_added: 0.2.0
author:
  - virthooks maintainers (@virthooks)
description:
  - Returns one mapping of variable name to value for the variables named in the terms (the role
    C(virthooks.libvirt.libvirt_hooks) passes C(libvirt_hooks_scripts) and every C(libvirt_hooks_scripts__*)),
    templated like C(ansible.builtin.vars), but field by field, so that text Jinja cannot read fails
    naming the variable, the script and the field.
  - Script text often holds what Jinja reads as its own syntax (C(${#args[@]}) opens a comment,
    C({{) an expression); the error then says the way out, C(!unsafe) or C(src).
options:
  _terms:
    description: Variable names.
    required: true
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: The declared scripts of this host
  ansible.builtin.set_fact:
    declared: "{{ lookup('virthooks.libvirt.script_vars', *query('ansible.builtin.varnames', '^libvirt_hooks_scripts(__.+)?$')) }}"
"""

RETURN = r"""
_raw:
  description: One mapping, variable name to its templated value.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

WAY_OUT = ("bash's ${#var}, {{ and {% start Jinja syntax: mark the text !unsafe in YAML "
           "(content: !unsafe |), or put the script in a file and give it as src: (read as it is, not templated)")


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "message", "") or exc).strip().split("\n", maxsplit=1)[0]


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        return [{name: self._value(name, variables.get(name)) for name in terms}]

    def _template(self, value, where: str, field: str):
        try:
            return self._templar.template(value)
        except Exception as exc:   # any templating error: the point is to name where it happened
            raise AnsibleLookupError("%s: %s cannot be read by Jinja (%s); %s" % (where, field, _reason(exc), WAY_OUT))

    def _value(self, name: str, raw):
        if not isinstance(raw, list):
            raw = self._template(raw, name, "the value")
        if not isinstance(raw, list):
            return raw
        entries = []
        for index, entry in enumerate(raw):
            where = "%s[%d]" % (name, index)
            if not isinstance(entry, dict):
                entries.append(self._template(entry, where, "the entry"))
                continue
            label = entry.get("name") if isinstance(entry.get("name"), str) else None
            if label:
                where = "%s (script %s)" % (where, self._template(label, where, "name"))
            entries.append({key: self._template(value, where, key) for key, value in entry.items()})
        return entries
