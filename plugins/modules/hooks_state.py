#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: hooks_state
short_description: Describe a host's deployed hooks so that peers can be compared, and what would run for given guests
version_added: 0.1.0
description:
  - Reads the virthooks runtime deployed on a host and returns what migration peers must agree on,
    the runtime version, the rules of the current generation's C(config.json) (normalized, by name), the
    digest of each script, of each entry point (the hooks directory's own path taken out), of each file
    of the per-guest trees (C(qemu.d/<guest>/...)), and the XPath capability (which rules need lxml, and
    whether the dispatcher's Python has it); and, apart, the host's unmanaged drop-in rule files
    (C(hooks/virthooks/rules.d/*.json)). Changes nothing.
  - With O(list_guests), it also reads every guest libvirt defines on the host (C(virsh list --all),
    C(virsh dumpxml)), run by this module, never from a hook; on a O(sandbox), from the C(<guest>.xml) files
    of C(<sysconfdir>/libvirt/qemu), where libvirt keeps the guests it defines, and no C(virsh) is run. O(xml_dir) reads guests' XML from files instead
    (hosts without libvirt, tests).
  - For the guests of O(evaluate) it returns the scripts that would run, in order, for each of O(events)
    (the rules matched as the dispatcher matches them, XPath conditions evaluated on the guest's XML,
    and the per-guest tree).
  - Used by C(playbooks/drift.yml) (C(virthooks.libvirt.drift)) with the P(virthooks.libvirt.drift_report#filter) filter.
author:
  - virthooks maintainers (@virthooks)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - virthooks.libvirt.paths
  - virthooks.libvirt.read_only
  - virthooks.libvirt.read_only.attributes
options:
  list_guests:
    description:
      - Read the guests libvirt defines here, and their XML, with C(virsh) (O(virsh), O(uri)); on a O(sandbox),
        from C(<sysconfdir>/libvirt/qemu/<guest>.xml) (none when that directory does not exist).
    type: bool
    default: false
  xml_dir:
    description:
      - A directory on the host whose C(<guest>.xml) files stand for the guests defined here
        (added to those of O(list_guests)).
    type: path
  virsh:
    description:
      - The C(virsh) to run for O(list_guests); V("") looks in the usual places.
    type: str
    default: ""
  uri:
    description:
      - The connection URI for O(list_guests).
    type: str
    default: qemu:///system
  evaluate:
    description:
      - Guests to work out O(events) for, as a dict of guest name to its domain XML.
    type: dict
    default: {}
  events:
    description:
      - Events of the C(qemu) driver to work out, as C(operation sub-operation).
    type: list
    elements: str
    default: ["prepare begin", "migrate begin"]
"""

EXAMPLES = r"""
- name: Describe the hooks of this host and list its guests
  virthooks.libvirt.hooks_state:
    list_guests: true
  register: state

- name: What would run on this host for a guest defined elsewhere
  virthooks.libvirt.hooks_state:
    evaluate:
      win10: "{{ lookup('ansible.builtin.file', 'win10.xml') }}"
"""

RETURN = r"""
hooks_dir:
  description: The hooks directory read, O(root) included.
  returned: always
  type: str
generation:
  description: The current generation's id; V("") when nothing is deployed.
  returned: always
  type: str
runtime:
  description: The installed runtime, C(version) and C(lib) (the digest directory C(lib/current) points to);
    both V(null) without a runtime.
  returned: always
  type: dict
rules:
  description: The normalized rules of the current C(config.json), sorted by name.
  returned: always
  type: list
  elements: dict
scripts:
  description: The current generation's scripts, file name to sha256.
  returned: always
  type: dict
entry_points:
  description: Driver to the sha256 of C(hooks/<driver>), the hooks directory's path replaced by
    C(<hooks_dir>) and the bootstrap compiled by the host's Python left out (peers on other Python
    versions compare equal), for each entry point present.
  returned: always
  type: dict
tree:
  description: Each file of the per-guest trees (C(qemu.d/...), relative to the hooks directory) to its
    sha256, followed by C( x) when it is executable.
  returned: always
  type: dict
dropins:
  description:
    - The host's drop-in rule files (C(hooks/virthooks/rules.d/*.json)), which an admin or another tool puts
      there and no deploy manages, each C(rules.d/<file>) to C(digest) (sha256 of the file, or why it was not
      read), C(drivers) (the drivers its rules are for), C(rules) (their names) and C(problem) (why it is not
      valid JSON, or V(null)). The guests' O(evaluate) steps do not include their rules.
  returned: always
  type: dict
  sample: {"rules.d/50-net.json": {"digest": "9f2c...", "drivers": ["network"], "rules": ["net-up"], "problem": null}}
xpath:
  description: C(lxml) (whether the dispatcher's Python imports it), C(rules_needing_lxml) (rules whose
    condition the standard library cannot evaluate), C(unsatisfied) (those of them this host cannot run).
  returned: always
  type: dict
config_error:
  description: Why C(config.json) could not be read, or V(null).
  returned: always
  type: str
guests:
  description: Guest name to its XML, from O(list_guests) and O(xml_dir).
  returned: always
  type: dict
steps:
  description: For each guest of O(evaluate), each event of O(events) to the names of the scripts that would
    run, in order (per-guest tree scripts by their path under the hooks directory).
  returned: always
  type: dict
  sample: {"win10": {"prepare begin": ["isolate-cpus"], "migrate begin": []}}
"""

import os
import shutil
import subprocess
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virthooks.libvirt.plugins.module_utils.detect import DetectionError, path_argument_spec, resolve_hooks_dir
from ansible_collections.virthooks.libvirt.plugins.module_utils.drift import guest_steps, host_state, list_guests, read_xml_dir

VIRSH_PLACES = "/usr/bin:/usr/local/bin:/bin:/usr/sbin:/sbin"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **path_argument_spec(),
            hooks_dir=dict(type="path", default=""),
            list_guests=dict(type="bool", default=False),
            xml_dir=dict(type="path"),
            virsh=dict(type="str", default=""),
            uri=dict(type="str", default="qemu:///system"),
            evaluate=dict(type="dict", default={}),
            events=dict(type="list", elements="str", default=["prepare begin", "migrate begin"]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for event in params["events"]:
        if len(event.split()) != 2:
            module.fail_json(msg="events: %r is not 'operation sub-operation', e.g. 'prepare begin'" % event)
    try:
        hooks_dir = resolve_hooks_dir(params["hooks_dir"], params["root"].rstrip("/"), params["sysconfdir"],
                                      params["sandbox"])
    except DetectionError as exc:
        module.fail_json(msg="no libvirt hooks directory: %s" % exc)
    state = host_state(hooks_dir, sys.executable)
    config = state.pop("_config", None)
    guests = {}
    if params["list_guests"] and params["sandbox"]:
        # A sandbox's guests are its libvirt config files: nothing of the real host is asked.
        defined = os.path.join(os.path.dirname(hooks_dir), "qemu")
        try:
            guests.update(read_xml_dir(defined) if os.path.isdir(defined) else {})
        except OSError as exc:
            module.fail_json(msg="list_guests: %s" % exc)
    elif params["list_guests"]:
        virsh = params["virsh"] or shutil.which("virsh", path=VIRSH_PLACES)
        if not virsh:
            module.fail_json(msg="list_guests: no virsh found in %s; set virsh, or use xml_dir" % VIRSH_PLACES)
        try:
            guests.update(list_guests(virsh, params["uri"]))
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            module.fail_json(msg="list_guests: %s %s" % (exc, detail.strip()))
    if params["xml_dir"]:
        try:
            guests.update(read_xml_dir(params["xml_dir"]))
        except OSError as exc:
            module.fail_json(msg="xml_dir: %s" % exc)
    steps = {}
    if params["evaluate"] and config is not None:
        steps = guest_steps(config, hooks_dir, "%s/virthooks/current" % hooks_dir, params["evaluate"],
                            [" ".join(e.split()) for e in params["events"]])
    module.exit_json(changed=False, guests=guests, steps=steps, **state)


if __name__ == "__main__":
    main()
