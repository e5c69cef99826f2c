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
  - Installs, updates or removes user hook scripts in C(<sysconfdir>/libvirt/hooks/virthooks/scripts/),
    mode 0755, owned by root, where the virthooks dispatcher runs them (see
    M(virthooks.libvirt.hook_runtime) for the rules that decide when).
  - Handles a whole host's scripts in one call (O(scripts)), so a run that changes nothing costs
    one module call, however many scripts there are.
  - Every script is validated before anything is written; one bad script fails the task, names
    the script and changes nothing. A script must start with C(#!) and an absolute interpreter
    path that exists on the host, or be an ELF executable; libvirt and the dispatcher run hooks
    directly and would fail with "Exec format error" otherwise.
  - Scripts never go into the native C(hooks/<driver>.d/) directory, where libvirt would run them
    a second time, for every event.
  - Each file is replaced atomically (temporary file, fsync, rename); SELinux contexts are restored
    where SELinux is enabled.
author:
  - virthooks maintainers (@virthooks)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - virthooks.libvirt.paths
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows each added, changed or removed script in full.
  platform:
    platforms: posix
options:
  hooks_dir:
    description:
      - The libvirt hooks directory, as the host sees it (O(root) is not added).
      - The default V("") finds it like M(virthooks.libvirt.hooks_info) does.
    type: path
    default: ""
  scripts:
    description:
      - The scripts to manage.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - File name under C(scripts/); 1 to 128 characters of letters, digits, C(_), C(.) and C(-),
            not starting with C(.).
        type: str
        required: true
      content:
        description:
          - The script's text. Exactly one of O(scripts[].content) and O(scripts[].content_base64) is needed for
            O(scripts[].state=present).
        type: str
      content_base64:
        description:
          - The script's bytes, base64-encoded (for binary executables).
        type: str
      state:
        description:
          - Whether the script should exist.
        type: str
        choices: [present, absent]
        default: present
  purge:
    description:
      - Also remove every script under C(scripts/) that O(scripts) does not list.
    type: bool
    default: false
  max_size:
    description:
      - Largest script accepted, in bytes.
    type: int
    default: 1048576
seealso:
  - module: virthooks.libvirt.hook_runtime
  - module: virthooks.libvirt.hooks_info
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
"""

import base64
import binascii

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virthooks.libvirt.plugins.module_utils.detect import DetectionError, path_argument_spec, resolve_hooks_dir
from ansible_collections.virthooks.libvirt.plugins.module_utils.scripts import ScriptError, ScriptsInstaller, diff_of
from ansible_collections.virthooks.libvirt.plugins.module_utils.selinux import restore_contexts


def script_bytes(module: AnsibleModule, script: dict):
    """The bytes of a present script, from content or content_base64 (fails naming the script)."""
    if script["state"] == "absent":
        return b""
    given = [k for k in ("content", "content_base64") if script.get(k) is not None]
    if len(given) != 1:
        module.fail_json(msg="script %r needs exactly one of content or content_base64 (got %s)"
                         % (script["name"], ", ".join(given) or "neither"))
    if given[0] == "content":
        return script["content"].encode("utf-8")
    try:
        return base64.b64decode(script["content_base64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        module.fail_json(msg="script %r: content_base64 is not valid base64: %s" % (script["name"], exc))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **path_argument_spec(),
            hooks_dir=dict(type="path", default=""),
            scripts=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                content=dict(type="str"),
                content_base64=dict(type="str"),
                state=dict(type="str", choices=["present", "absent"], default="present"),
            )),
            purge=dict(type="bool", default=False),
            max_size=dict(type="int", default=1048576),
        ),
        supports_check_mode=True,
    )
    try:
        hooks_dir = resolve_hooks_dir(module.params["hooks_dir"], module.params["root"], module.params["sysconfdir"])
    except DetectionError as exc:
        module.fail_json(msg=str(exc))
    scripts = [{"name": s["name"], "state": s["state"], "data": script_bytes(module, s)}
               for s in module.params["scripts"]]
    installer = ScriptsInstaller(hooks_dir)
    try:
        plan = installer.plan(scripts, module.params["purge"], module.params["max_size"], module.params["root"])
        changed = bool(plan["write"] or plan["remove"])
        if changed and not module.check_mode:
            installer.apply(plan)
            restore_contexts(module, [installer.path(name) for name, _b, _a in plan["write"]], module.params["root"])
    except ScriptError as exc:
        module.fail_json(msg=str(exc), hooks_dir=hooks_dir)
    except OSError as exc:
        module.fail_json(msg="%s: %s (nothing further was changed)" % (installer.dir, exc), hooks_dir=hooks_dir)
    for warning in plan["warnings"]:
        module.warn(warning)
    result = dict(changed=changed, hooks_dir=hooks_dir,
                  added=[n for n, before, _a in plan["write"] if before is None],
                  updated=[n for n, before, _a in plan["write"] if before is not None],
                  removed=[n for n, _b in plan["remove"]], unchanged=plan["unchanged"])
    if module._diff and changed:
        result["diff"] = diff_of(plan, installer.dir)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
