#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: hook
short_description: Install or remove libvirt hook scripts for the virthooks dispatcher
version_added: 0.1.0
description:
  - Installs, updates or removes user hook scripts, mode 0700 (they may hold credentials), owned by root, where the virthooks
    dispatcher runs them (see M(virthooks.libvirt.hook_runtime) for the rules that decide when).
  - Scripts live in generations (C(hooks/virthooks/generations/<id>/scripts/)). A change makes a
    new generation holding the current rules and the new scripts, and switches to it in one step,
    so a hook call never sees half of a change. M(virthooks.libvirt.hook_runtime) can deploy
    scripts and rules together in one step (its O(virthooks.libvirt.hook_runtime#module:scripts)
    option), which is what the role does; this module is for scripts managed on their own.
  - Handles a whole host's scripts in one call (O(scripts)), so a run that changes nothing costs
    one module call, however many scripts there are.
  - Every script is validated before anything is written; one bad script fails the task, names
    the script and changes nothing. A script must start with C(#!) and an absolute interpreter
    path that exists on the host, or be an ELF executable; libvirt and the dispatcher run hooks
    directly and would fail with "Exec format error" otherwise.
  - Scripts never go into the native C(hooks/<driver>.d/) directory, where libvirt would run them
    a second time, for every event.
  - SELinux contexts are restored where SELinux is enabled.
author:
  - virthooks maintainers (@virthooks)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - virthooks.libvirt.paths
  - virthooks.libvirt.paths.writes
  - virthooks.libvirt.scripts
attributes:
  diff_mode:
    support: full
    details: Shows each added, changed or removed script in full.
options:
  purge:
    description:
      - Also remove every script of the current generation that O(scripts) does not list (all of them when
        O(scripts) is not given).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Install two scripts, remove an old one
  virthooks.libvirt.hook:
    scripts:
      - name: pin-cpus
        content: |
          #!/bin/sh
          exec /usr/local/sbin/pin-cpus "$1"
      - name: isolate-gpu
        content: "{{ lookup('ansible.builtin.file', 'files/isolate-gpu.sh') }}"
      - name: legacy
        state: absent

- name: Keep exactly these scripts on the host
  virthooks.libvirt.hook:
    scripts: "{{ my_scripts }}"
    purge: true
"""

RETURN = r"""
hooks_dir:
  description: The hooks directory used.
  returned: always
  type: str
  sample: /etc/libvirt/hooks
added:
  description: Scripts created.
  returned: always
  type: list
  elements: str
  sample: [pin-cpus]
updated:
  description: Scripts whose content, mode or owner changed.
  returned: always
  type: list
  elements: str
  sample: []
removed:
  description: Scripts removed (declared absent, or purged).
  returned: always
  type: list
  elements: str
  sample: [legacy]
unchanged:
  description: Scripts already as declared.
  returned: always
  type: list
  elements: str
  sample: [isolate-gpu]
generation:
  description: The generation current after the run.
  returned: always
  type: str
  sample: 20261129T212300Z-3f2a9c0d11e4b7a5
"""

import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virthooks.libvirt.plugins.module_utils.detect import DetectionError, path_argument_spec, resolve_hooks_dir
from ansible_collections.virthooks.libvirt.plugins.module_utils.install import InstallError, RuntimeInstaller
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.generations import GenerationError
from ansible_collections.virthooks.libvirt.plugins.module_utils.scripts import SCRIPTS_ARGUMENT_SPEC, declared_scripts
from ansible_collections.virthooks.libvirt.plugins.module_utils.selinux import restore_contexts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **path_argument_spec(),
            **SCRIPTS_ARGUMENT_SPEC,
            hooks_dir=dict(type="path", default=""),
            purge=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        hooks_dir = resolve_hooks_dir(module.params["hooks_dir"], module.params["root"], module.params["sysconfdir"],
                                      module.params["sandbox"])
        scripts = declared_scripts(module.params["scripts"] or [], sys.executable)
    except (DetectionError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    try:
        installer = RuntimeInstaller(hooks_dir, sys.executable, root=module.params["root"])
        plan = installer.plan_scripts(scripts, module.params["purge"], module.params["generations_keep"],
                                      max_size=module.params["max_size"])
        # The diff before the apply: the generation it replaces may be pruned by it.
        diff = plan.diff(hooks_dir) if module._diff and plan.changes else None
        if plan.changes and not module.check_mode:
            installer.apply(plan)
            restore_contexts(module, [c.path for c in plan.changes], module.params["root"])
    except (InstallError, GenerationError, OSError) as exc:
        module.fail_json(msg="%s: %s" % (hooks_dir, exc), hooks_dir=hooks_dir)
    for warning in plan.warnings:
        module.warn(warning)
    result = dict(changed=bool(plan.changes), hooks_dir=hooks_dir, generation=plan.generation,
                  **plan.scripts._asdict())
    if diff is not None:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
