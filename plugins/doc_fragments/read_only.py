# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every read-only virthooks module shares: its attributes (ATTRIBUTES, virthooks.libvirt.read_only.attributes)
and the hooks directory it reads (DOCUMENTATION, virthooks.libvirt.read_only; hooks_info, which finds the
directory itself, uses the attributes alone)."""
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
options:
  hooks_dir:
    description:
      - The libvirt hooks directory, O(root) included; V("") finds it like
        M(virthooks.libvirt.hooks_info) does.
    type: path
    default: ""
"""
