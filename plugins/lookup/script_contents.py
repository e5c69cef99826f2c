# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: script_contents
short_description: The text of the files a host's declared scripts name, read on the controller
version_added: 0.3.0
author:
  - virthooks maintainers (@virthooks)
description:
  - For a host's declared scripts (what C(virthooks.libvirt.script_vars) returns, with the library's), the text
    of each script given as C(src) (read as M(ansible.builtin.file) reads it) or C(template) (rendered as
    M(ansible.builtin.template) renders it, with the host's variables), and of each file a script reads given
    as C(src) (read as it is), for C(virthooks.libvirt.script_plan).
  - A C(src) already read once for the play (C(sources), what C(virthooks.libvirt.play_sources) returns) is
    taken from there. A file that cannot be read is C(None), and the plan then names the script and the path.
  - The role C(virthooks.libvirt.libvirt_hooks) uses it once per host; it does in Python what a Jinja loop
    did, which each host's worker process had to compile anew (about a tenth of a second a host).
options:
  _terms:
    description: Not used.
    required: false
  declared:
    description: Variable name to its declared scripts, each a list of mappings.
    type: dict
    required: true
  sources:
    description: The play's files read once, C(scripts) and C(files), each path to its text.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Read what this host's scripts name
  ansible.builtin.set_fact:
    contents: "{{ lookup('virthooks.libvirt.script_contents', declared=declared, sources=sources) }}"
"""

RETURN = r"""
_raw:
  description:
    - One mapping, the script's name to its text (C(src) or C(template)), and C(<script>/<file>) to the text of
      a file it reads (C(src)); C(None) for what could not be read.
  type: list
  elements: dict
"""

from ansible.plugins.lookup import LookupBase
from ansible_collections.virthooks.libvirt.plugins.lookup.play_sources import read_with


def flat(values) -> list:
    """Every item of nested lists, in order (Jinja's flatten)."""
    out = []
    for value in values:
        if isinstance(value, list):
            out.extend(flat(value))
        else:
            out.append(value)
    return out


def named_entries(declared: dict) -> list:
    """The declared scripts that are mappings with a name and are not to be removed."""
    return [entry for entry in flat(list(declared.values()))
            if isinstance(entry, dict) and "name" in entry and entry.get("state", "present") != "absent"]


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        declared = kwargs.get("declared") or {}
        sources = kwargs.get("sources") or {}
        read_scripts, read_files = sources.get("scripts") or {}, sources.get("files") or {}
        contents, entries = {}, named_entries(declared)
        for entry in entries:
            src, template = entry.get("src"), entry.get("template")
            if src:
                contents[entry["name"]] = (read_scripts[src] if src in read_scripts
                                           else read_with(self, "ansible.builtin.file", src, variables))
            elif template:
                contents[entry["name"]] = read_with(self, "ansible.builtin.template", template, variables)
        for entry in entries:
            files = entry.get("files")
            for item in files if isinstance(files, list) else []:
                if isinstance(item, dict) and item.get("src"):
                    contents["%s/%s" % (entry["name"], item.get("name"))] = (
                        read_files[item["src"]] if item["src"] in read_files
                        else read_with(self, "ansible.builtin.file", item["src"], variables, rstrip=False))
        return [contents]
