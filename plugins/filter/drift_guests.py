# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: drift_guests
short_description: The XML of every guest the given hosts reported
version_added: 0.1.0
author:
  - virthooks maintainers (@virthooks)
description:
  - Takes C(hostvars) and a list of hosts, reads each host's registered M(virthooks.libvirt.hooks_state)
    result (run with C(list_guests) or C(xml_dir)), and returns guest name to domain XML for every guest
    defined on any of them (the first host that defines a guest gives its XML). Hosts that were unreachable,
    failed, or did not run the module are left out.
  - C(playbooks/drift.yml) passes it to M(virthooks.libvirt.hooks_state)'s C(evaluate) on every peer.
positional: _input, hosts
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The hosts whose guests to gather.
    type: list
    elements: str
    required: true
  result_var:
    description: Name of the variable each host registered the module result in.
    type: str
    default: __libvirt_hooks_guests
"""

EXAMPLES = r"""
- name: What would run here for every guest of the hypervisors
  virthooks.libvirt.hooks_state:
    evaluate: "{{ hostvars | virthooks.libvirt.drift_guests(groups['hypervisors']) }}"
"""

RETURN = r"""
_value:
  description: Guest name to its domain XML.
  type: dict
"""


def drift_guests(hostvars, hosts: list, result_var: str = "__libvirt_hooks_guests") -> dict:
    """{guest: XML} of every guest the hosts reported (the first host that defines one wins)."""
    guests = {}
    for host in hosts:
        result = hostvars[host].get(result_var) if host in hostvars else None
        if isinstance(result, dict) and not result.get("failed") and not result.get("unreachable"):
            for name, xml in (result.get("guests") or {}).items():
                guests.setdefault(name, xml)
    return guests


class FilterModule(object):
    def filters(self):
        return {"drift_guests": drift_guests}
