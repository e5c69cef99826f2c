#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: hooks_import
short_description: Read a peer's libvirt hook setup on a host as the role's variables
version_added: 0.2.0
description:
  - What C(virthooks import) does on one host, for a fleet (C(playbooks/import.yml)), without the
    virthooks runtime installed there. Changes nothing.
  - Reads a VFIO-Tools per-guest tree (C(hooks/<driver>.d/<guest>/<operation>/<sub-operation>)), an
    mrjk/libvirt-hook-controller C(conf/rules.conf) with C(conf/rules.d/*.conf), and a
    saschpe/libvirt-hook-qemu C(hooks.json), and returns the C(libvirt_hooks_scripts),
    C(libvirt_hooks_library) and C(libvirt_hooks_tree) variables that do the same, as data and as YAML,
    with a note for everything it could not convert or converts with a difference
    (see C(docs/importing.md)).
author:
  - virthooks maintainers (@virthooks)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - virthooks.libvirt.paths
  - virthooks.libvirt.read_only
  - virthooks.libvirt.read_only.attributes
options:
  sources:
    description: What to import; by default every source found.
    type: list
    elements: str
    choices: [tree, mrjk, saschpe]
    default: [tree, mrjk, saschpe]
"""

EXAMPLES = r"""
- name: Read the peers' hook setup of this host
  virthooks.libvirt.hooks_import:
  register: imported

- name: Keep it on the controller, to paste into host_vars
  ansible.builtin.copy:
    content: "{{ imported.yaml }}"
    dest: "imported/{{ inventory_hostname }}.yml"
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
hooks_dir:
  description: The hooks directory read.
  returned: always
  type: str
found:
  description: The sources found on the host (C(tree), C(mrjk), C(saschpe)).
  returned: always
  type: list
  elements: str
variables:
  description: The role variables, as data.
  returned: always
  type: dict
notes:
  description: What could not be converted, or is converted with a difference, one line each.
  returned: always
  type: list
  elements: str
yaml:
  description: The variables as YAML, the notes as comments at the top (what C(virthooks import) prints).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virthooks.libvirt.plugins.module_utils.detect import DetectionError, path_argument_spec, resolve_hooks_dir
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.importers import ImportFailed, import_host, to_yaml


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **path_argument_spec(),
            hooks_dir=dict(type="path", default=""),
            sources=dict(type="list", elements="str", choices=["tree", "mrjk", "saschpe"],
                         default=["tree", "mrjk", "saschpe"]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        hooks_dir = resolve_hooks_dir(params["hooks_dir"], params["root"].rstrip("/"), params["sysconfdir"])
    except DetectionError as exc:
        module.fail_json(msg="no libvirt hooks directory: %s" % exc)
    try:
        variables, notes, found = import_host(hooks_dir, tuple(params["sources"]))
    except (ImportFailed, OSError) as exc:
        module.fail_json(msg="virthooks import: %s" % exc)
    comments = ["virthooks import from %s (%s): paste into host_vars/group_vars"
                % (hooks_dir, ", ".join(found) or "nothing found")]
    if notes:
        comments.append("NOT converted, or converted with a difference (read each):")
        comments.extend("- " + n for n in notes)
    module.exit_json(changed=False, hooks_dir=hooks_dir, found=found, variables=variables, notes=notes,
                     yaml=to_yaml(variables, comments))


if __name__ == "__main__":
    main()
