# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by every virthooks module that finds libvirt's hooks directory (DOCUMENTATION), and
what the modules that write to it share (WRITES: their attributes and O(hooks_dir))."""
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
  sandbox:
    version_added: 0.2.0
    description:
      - Describe a sandbox host instead of probing the real one; a sandbox is a directory of this machine
        that stands for a hypervisor, with the libvirt given here (C(make demo) uses three).
      - Nothing of the real host is run or read for it, no libvirt binary (C(libvirtd --help), C(virsh)),
        process, service, SELinux or AppArmor state; its daemons never run, so nothing is reloaded.
      - O(sysconfdir) defaults to C(<dir>/etc) and must lie under O(sandbox.dir); O(root) must be empty.
        Paths outside libvirt's own (the CLI link of M(virthooks.libvirt.hook_runtime)) are taken under
        O(sandbox.dir). The guests defined there are the C(<sysconfdir>/libvirt/qemu/<guest>.xml) files,
        as libvirt keeps them.
      - Omitted (the default), the host is the real one.
    type: dict
    suboptions:
      dir:
        description: The sandbox directory, absolute; a missing one is an empty sandbox (a deploy creates it).
        type: path
        required: true
      version:
        description: The libvirt version of the sandbox (it decides RV(virthooks.libvirt.hooks_info#module:libvirt.native_hooks_d)).
        type: str
        default: 10.0.0
      daemons:
        description: Its daemons, V(libvirtd) (monolithic) or modular ones (V(virtqemud), V(virtnetworkd), ...).
        type: list
        elements: str
        default: [libvirtd]
        choices: [libvirtd, virtqemud, virtlxcd, virtxend, virtbhyved, virtnetworkd, virtstoraged, virtnodedevd,
                  virtnwfilterd, virtsecretd, virtinterfaced, virtproxyd, virtchd, virtvboxd, virtvzd]
      init_system:
        description: Its service manager.
        type: str
        default: unknown
        choices: [systemd, sysvinit, openrc, bsdrc, unknown]
"""

    # virthooks.libvirt.paths.writes: the modules that change the hooks directory.
    WRITES = r"""
attributes:
  check_mode:
    support: full
  platform:
    platforms: posix
options:
  hooks_dir:
    description:
      - The libvirt hooks directory to write to, O(root) included (as
        RV(virthooks.libvirt.hooks_info#module:libvirt.hooks_dir) reports it).
      - The default V("") finds it like M(virthooks.libvirt.hooks_info) does, from O(root) and O(sysconfdir).
    type: path
    default: ""
"""
