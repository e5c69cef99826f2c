# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every read-only virthooks module shares: its attributes and the hooks directory it reads
(DOCUMENTATION), or its attributes alone (ATTRIBUTES, for a module that finds the directory itself).
Each is one literal: ansible-test's yamllint check reads doc fragments as plain string assignments."""
from __future__ import annotations


class ModuleDocFragment(object):

    # virthooks.libvirt.read_only.attributes
    ATTRIBUTES = r"""
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same way in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same way in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  hooks_dir:
    description:
      - The libvirt hooks directory, O(root) included; V("") finds it like
        M(virthooks.libvirt.hooks_info) does.
    type: path
    default: ""
"""
