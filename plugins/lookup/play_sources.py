# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: play_sources
short_description: The text of the files a play's hosts declare as src, each file read once
version_added: 0.3.0
author:
  - virthooks maintainers (@virthooks)
description:
  - For the hosts named in the terms (the role C(virthooks.libvirt.libvirt_hooks) passes the play's hosts, once
    for the play), reads every file given as C(src) by their script declarations, C(libvirt_hooks_scripts) and
    C(libvirt_hooks_scripts__*), that is a script's C(src) and the C(src) of the files a script reads. A file's
    text is the same for every host, so each is read once instead of once per host.
  - Only a C(src) written as a plain path is taken, from the declarations as the inventory holds them, not
    templated. A path with Jinja in it, or a declaration that is itself a template, may differ between hosts
    and is left to each host's own read, as is a file that cannot be read (whose error each host then reports).
  - Paths are found as M(ansible.builtin.file) finds them (the role's and the playbook's C(files/)).
options:
  _terms:
    description: Inventory host names.
    required: true
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Read every src of the play once
  ansible.builtin.set_fact:
    sources: "{{ lookup('virthooks.libvirt.play_sources', *ansible_play_hosts_all) }}"
  run_once: true
"""

RETURN = r"""
_raw:
  description:
    - One mapping, C(scripts) (a script's src, read as M(ansible.builtin.file) reads it, trailing newlines
      stripped) and C(files) (a script's file's src, read as it is), each path to its text.
  type: list
  elements: dict
"""

import re

from ansible.errors import AnsibleError
from ansible.plugins.loader import lookup_loader
from ansible.plugins.lookup import LookupBase

DECLARATIONS = re.compile(r"^libvirt_hooks_scripts(__.+)?$")
JINJA = ("{{", "{%", "{#")


def plain_path(value) -> bool:
    """Whether value is a path as written, the same for every host (no Jinja)."""
    return isinstance(value, str) and bool(value) and not any(mark in value for mark in JINJA)


def declared_sources(raw_vars: dict) -> tuple:
    """(scripts' src, files' src) written as plain paths in a host's untemplated declarations."""
    scripts, files = set(), set()
    for name, value in raw_vars.items():
        if not DECLARATIONS.match(str(name)) or not isinstance(value, list):
            continue
        for entry in value:
            if not isinstance(entry, dict) or entry.get("state", "present") == "absent":
                continue
            if plain_path(entry.get("src")):
                scripts.add(entry["src"])
            for item in entry.get("files") if isinstance(entry.get("files"), list) else []:
                if isinstance(item, dict) and plain_path(item.get("src")):
                    files.add(item["src"])
    return scripts, files


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        hostvars = variables.get("hostvars")
        scripts, files = set(), set()
        for host in terms:
            raw = hostvars.raw_get(host) if hostvars is not None else {}
            if isinstance(raw, dict):
                found = declared_sources(raw)
                scripts |= found[0]
                files |= found[1]
        return [{"scripts": self._read(sorted(scripts), variables, True),
                 "files": self._read(sorted(files), variables, False)}]

    def _read(self, paths: list, variables: dict, rstrip: bool) -> dict:
        """{path: text} of the paths ansible.builtin.file can read; the others are left out."""
        texts = {}
        for path in paths:
            text = read_with(self, "ansible.builtin.file", path, variables, rstrip=rstrip)
            if text is not None:
                texts[path] = text
        return texts


def read_with(lookup: LookupBase, plugin: str, path, variables: dict, **options):
    """The text another lookup (ansible.builtin.file or .template) returns for one path, run with the calling
    lookup's loader and templar, or None when it cannot read it (whoever asked reports it)."""
    try:
        return lookup_loader.get(plugin, loader=lookup._loader, templar=lookup._templar).run(  # pylint: disable=protected-access
            [path], variables, **options)[0]
    except (AnsibleError, IndexError):
        return None
