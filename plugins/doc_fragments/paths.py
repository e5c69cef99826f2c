# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by every virthooks module that finds libvirt's hooks directory."""
from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  root:
    description:
      - A directory that stands for C(/) on the managed host, for a sandbox, a chroot or an image
        being built. Every path the module reads or writes is taken under it, and no process of
        the real host is considered running inside it unless O(root) has its own C(proc).
      - The default V("") is the host's real C(/).
      - Must be an absolute path to an existing directory.
    type: str
    default: ""
  sysconfdir:
    description:
      - The C(SYSCONFDIR) that libvirt was built with; the hooks directory is
        C(<sysconfdir>/libvirt/hooks), under O(root).
      - The default V("") detects it, first from the installed daemon itself (C(libvirtd --help)
        or C(virtqemud --help), run as root, names C(<SYSCONFDIR>/libvirt/<daemon>.conf)),
        else C(/usr/local/etc) for a daemon installed under C(/usr/local), else the OS family's
        value (V(/etc) for Debian, Ubuntu, RHEL, Fedora, SUSE, Arch Linux, Alpine and Gentoo,
        V(/usr/local/etc) for FreeBSD, V(/var/lib) for NixOS), else V(/etc).
      - When set, it always wins over detection; it must be an absolute path to a directory
        that exists under O(root), or the module fails naming it.
    type: str
    default: ""
"""
