# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of the modules that deploy scripts into a generation (their argument spec is
scripts.SCRIPTS_ARGUMENT_SPEC in module_utils): the scripts, their secrets, size and generations kept."""
from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  scripts:
    description:
      - The hook scripts of the new generation, each O(scripts[].name) (a rule names it C(scripts/<name>)),
        its O(scripts[].content), O(scripts[].content_base64) or O(scripts[].launcher), its O(scripts[].secrets), O(scripts[].files) and O(scripts[].state).
      - Scripts are validated before anything is written (C(#!) with an absolute interpreter that
        exists on the host, or an ELF executable; at most O(max_size) bytes).
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Script name (a rule names it C(scripts/<name>)); 1 to 128 characters of letters, digits,
            C(_), C(.) and C(-), not starting with C(.).
        type: str
        required: true
      content:
        description:
          - The script's text. Exactly one of O(scripts[].content), O(scripts[].content_base64) and
            O(scripts[].launcher) is needed for O(scripts[].state=present).
        type: str
      content_base64:
        description:
          - The script's bytes, base64-encoded (for binary executables).
        type: str
      launcher:
        version_added: 0.3.0
        description:
          - The launcher of a step of the library of ready-made hooks, written on the host for the Python the
            hooks run with there (the C(python) option of M(virthooks.libvirt.hook_runtime); the Python this
            module runs with for M(virthooks.libvirt.hook)). The filter C(virthooks.libvirt.library_scripts)
            gives it when it is not given a Python.
        type: dict
        suboptions:
          block:
            description: The building block, for example V(hugepages).
            type: str
            required: true
          step:
            description: The block's step, for example V(reserve).
            type: str
            required: true
      secrets:
        version_added: 0.2.0
        description:
          - Values the script needs that must stay secret, C(NAME) (letters, digits, C(_), at most 64) to string.
          - Each is written to C(generations/<id>/secrets/<name>/<NAME>) (mode 0600, owner root) and the
            dispatcher hands the script that directory as C($VIRTHOOKS_SECRETS); never in the script text,
            the diff (which shows C(NAME=<redacted>)) or the module's result.
        type: dict
      files:
        version_added: 0.3.0
        description:
          - Files the script reads (a config file such as saschpe/libvirt-hook-qemu's C(hooks.json)), written
            to C(generations/<id>/files/<name>/<file>) beside the scripts, owner root, and handed to the script
            as the directory C($VIRTHOOKS_FILES). They are not secret (a diff shows them); secrets go in
            O(scripts[].secrets).
        type: list
        elements: dict
        suboptions:
          name:
            description: The file name, 1 to 128 characters of letters, digits, C(_), C(.) and C(-), not starting with C(.).
            type: str
            required: true
          content:
            description: The file's text. Exactly one of O(scripts[].files[].content) and O(scripts[].files[].content_base64).
            type: str
          content_base64:
            description: The file's bytes, base64-encoded.
            type: str
          mode:
            description: Root alone may read it.
            type: str
            choices: ["0400", "0500", "0600", "0700"]
            default: "0600"
      state:
        description:
          - V(absent) leaves the script out of the new generation.
        type: str
        choices: [present, absent]
        default: present
  generations_keep:
    description:
      - How many generations stay on the host (the newest ones, and always the current one).
        Older ones are removed after the switch, except one a running hook call still uses.
    type: int
    default: 3
  max_size:
    description:
      - The largest script accepted, in bytes.
    type: int
    default: 1048576
"""
