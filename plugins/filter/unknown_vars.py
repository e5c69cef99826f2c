# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: unknown_vars
short_description: The libvirt_hooks_* variables that the collection does not know, with the nearest known name
version_added: 0.2.0
author:
  - virthooks maintainers (@virthooks)
description:
  - Takes the names of a host's C(libvirt_hooks_*) variables and the names the collection knows (the role's
    argument specs and defaults, the playbooks' variables) and returns one message per unknown name, saying
    the nearest known name (C(difflib)). C(libvirt_hooks_scripts__<anything>) is always known.
  - A misspelt variable is otherwise ignored without a word, and its default applies (C(libvirt_hooks_restrat=never)
    leaves C(libvirt_hooks_restart) at V(auto), which reloads daemons).
positional: _input, known
options:
  _input:
    description: Variable names found (for example C(query('ansible.builtin.varnames', '^libvirt_hooks_'))).
    type: list
    elements: str
    required: true
  known:
    description: The valid names.
    type: list
    elements: str
    required: true
  warn:
    description: Also show each message as a warning (once per run, however many hosts have it).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Say which variables are misspelt
  ansible.builtin.debug:
    msg: "{{ query('ansible.builtin.varnames', '^libvirt_hooks_') | virthooks.libvirt.unknown_vars(['libvirt_hooks_restart']) }}"
"""

RETURN = r"""
_value:
  description: One message per unknown name, in name order.
  type: list
  elements: str
"""

import difflib
import re

from ansible.utils.display import Display

PATTERN = re.compile(r"^libvirt_hooks_scripts__.+$")


def unknown_vars(names, known, warn=False) -> list:
    known = sorted(set(known))
    messages = []
    for name in sorted(set(names)):
        if name in known or PATTERN.match(name):
            continue
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if not nearest and name.startswith("libvirt_hooks_script"):
            nearest = ["libvirt_hooks_scripts__<anything>"]
        messages.append("%s is not a variable of virthooks.libvirt (it has no effect)%s"
                        % (name, "; did you mean %s?" % nearest[0] if nearest else ""))
    for message in messages if warn else ():
        Display().warning(message)
    return messages


class FilterModule(object):
    def filters(self):
        return {"unknown_vars": unknown_vars}
