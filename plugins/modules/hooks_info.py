#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hooks_info
short_description: Describe libvirt and its hooks directory on a hypervisor
version_added: 0.1.0
description:
  - Reports what a host needs to know before libvirt hooks are deployed on it, and changes nothing.
  - The libvirt version (C(libvirtd --version) or C(virtqemud --version), else C(virsh --version)),
    the daemon binaries, monolithic (C(libvirtd)) or modular daemons (C(virtqemud), C(virtnetworkd), ...),
    which daemon runs each hook driver, their service names and whether they run.
  - The C(SYSCONFDIR) libvirt was built with and how it was found, and the hooks directory
    C(<SYSCONFDIR>/libvirt/hooks); see O(sysconfdir).
  - The init system, whether a reload (C(SIGHUP)) is possible, whether libvirt runs native
    C(<driver>.d/) hook directories itself (libvirt 6.5.0 and later), and the SELinux and AppArmor state.
  - Every file in the hooks directory, classified as V(ours) (virthooks entry points and the
    C(virthooks/) directory), V(foreign) (another hook file named after a driver), V(native_d)
    (files directly inside C(<driver>.d/)), V(tree) (the per-guest tree
    C(<driver>.d/<guest>/<operation>/<sub-operation>/<file>) of the widely shared qemu hook helper)
    or V(other).
  - Works when libvirt is not installed; RV(libvirt.installed) is then V(false).
  - Warns about hooks libvirt would ignore (not executable) and about backup copies that libvirt's
    native C(<driver>.d/) would run.
author:
  - virthooks maintainers (@virthooks)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - virthooks.libvirt.paths
  - virthooks.libvirt.read_only.attributes
notes:
  - Run it as root (C(become)); libvirt's daemons only print their system paths to root, and
    without root RV(libvirt.sysconfdir) comes from the fallbacks.
  - A socket-activated modular daemon that is not running needs no reload to see new hooks, because
    it reads the hooks directory when it next starts.
seealso:
  - name: libvirt hooks
    description: Hooks for specific system management.
    link: https://libvirt.org/hooks.html
"""

EXAMPLES = r"""
- name: Describe libvirt on the hypervisor
  virthooks.libvirt.hooks_info:
  become: true
  register: hooks_info

- name: Stop where libvirt is missing
  ansible.builtin.assert:
    that: hooks_info.libvirt.installed
    fail_msg: libvirt is not installed on {{ inventory_hostname }}

- name: Show the hook files that are not ours
  ansible.builtin.debug:
    msg: "{{ hooks_info.libvirt.files | selectattr('kind', 'equalto', 'foreign') | map(attribute='path') }}"

- name: Describe a host image being built in a directory
  virthooks.libvirt.hooks_info:
    root: /srv/images/hv01
  register: image_info

- name: Describe a sandbox host (a directory of this machine) without looking at the real libvirt
  virthooks.libvirt.hooks_info:
    sandbox:
      dir: /srv/sandbox/hv01
      version: 10.0.0
      daemons: [virtqemud, virtnetworkd]

- name: A source-built libvirt whose daemon is not on the standard paths
  virthooks.libvirt.hooks_info:
    sysconfdir: /opt/libvirt/etc
"""

RETURN = r"""
libvirt:
  description: Everything found about libvirt on the host.
  returned: always
  type: dict
  contains:
    installed:
      description: Whether a libvirt daemon (C(libvirtd) or a modular C(virt*d) one) is installed.
      returned: always
      type: bool
      sample: true
    version:
      description:
        - The libvirt version, from a daemon's C(--version), else from C(virsh) or C(virt-admin).
        - V(null) when no libvirt binary answered.
      returned: always
      type: str
      sample: 9.0.0
    version_from:
      description: The binary that gave RV(libvirt.version), V(sandbox) when O(sandbox) did, or V(null).
      returned: always
      type: str
      sample: /usr/sbin/libvirtd
    native_hooks_d:
      description:
        - Whether libvirt itself runs the executable files of C(<driver>.d/) (libvirt 6.5.0 and later).
        - V(null) when the version is unknown.
      returned: always
      type: bool
      sample: true
    binaries:
      description: The libvirt daemons and clients found, name to path (under O(root)).
      returned: always
      type: dict
      sample: {"libvirtd": "/usr/sbin/libvirtd", "virsh": "/usr/bin/virsh", "virt-admin": "/usr/bin/virt-admin"}
    mode:
      description:
        - V(monolithic) (C(libvirtd) runs every driver) or V(modular) (one daemon per driver).
        - Chosen by what runs, else what the init system starts at boot, else what is installed
          (V(modular) when both kinds are installed and neither runs nor is enabled).
        - V(null) when no daemon is installed.
      returned: always
      type: str
      choices: [monolithic, modular]
      sample: monolithic
    root:
      description: The O(root) prefix used, normalised (V("") for C(/)).
      returned: always
      type: str
      sample: ""
    os_family:
      description:
        - The OS family from C(/etc/os-release) under O(root), with Ansible's names (V(Debian), V(RedHat),
          V(Suse), V(Archlinux), V(Alpine), V(Gentoo), V(FreeBSD), V(NixOS)); V(null) when unknown.
      returned: always
      type: str
      sample: Debian
    sysconfdir:
      description: libvirt's C(SYSCONFDIR), as the host sees it (without the O(root) prefix).
      returned: always
      type: str
      sample: /etc
    sysconfdir_source:
      description:
        - How RV(libvirt.sysconfdir) was found.
        - V(parameter) the O(sysconfdir) option; V(daemon) the installed daemon's C(--help);
          V(install_prefix) a daemon under C(/usr/local); V(os_family) the OS family's value;
          V(default) nothing else was known, C(/etc); V(sandbox) C(<dir>/etc) of O(sandbox).
      returned: always
      type: str
      choices: [parameter, daemon, install_prefix, os_family, default, sandbox]
      sample: daemon
    hooks_dir:
      description: The hooks directory, C(<sysconfdir>/libvirt/hooks) under O(root).
      returned: always
      type: str
      sample: /etc/libvirt/hooks
    hooks_dir_exists:
      description: Whether RV(libvirt.hooks_dir) exists.
      returned: always
      type: bool
      sample: true
    init_system:
      description:
        - The service manager, from the markers it leaves under O(root) (C(/run/systemd/system),
          C(/run/openrc), C(/etc/rc.subr), scripts in C(/etc/init.d)).
      returned: always
      type: str
      choices: [systemd, sysvinit, openrc, bsdrc, unknown]
      sample: sysvinit
    metrics_job_files:
      description:
        - Which files of the role's periodic C(virthooks metrics) job exist at their default paths
          (C(/etc/cron.d/virthooks-metrics), C(/etc/systemd/system/virthooks-metrics.service) and C(.timer)),
          as the host sees them.
      returned: always
      type: list
      elements: str
      sample: []
    reload_possible:
      description: Whether at least one hook-running daemon runs and can be sent C(SIGHUP).
      returned: always
      type: bool
      sample: true
    daemons:
      description:
        - The daemons of the active RV(libvirt.mode) that are installed, keyed by name
          (V(libvirtd), or V(virtqemud), V(virtnetworkd), ...). Empty when libvirt is not installed.
        - Each value has the keys below.
      returned: always
      type: dict
      sample: {"libvirtd": {"path": "/usr/sbin/libvirtd", "service": "libvirtd",
                            "service_file": "/etc/init.d/libvirtd", "enabled": true, "running": true,
                            "pid": 4242, "pidfile": "/run/libvirtd.pid", "can_reload": true,
                            "drivers": ["daemon", "qemu", "lxc", "libxl", "bhyve", "network"]}}
      contains:
        path:
          description: The daemon binary.
          type: str
          returned: always
          sample: /usr/sbin/libvirtd
        service:
          description: Its service name, for M(ansible.builtin.service) on any init system.
          type: str
          returned: always
          sample: libvirtd
        service_file:
          description: The unit file, init script or rc script of that service, or V(null) if none was found.
          type: str
          returned: always
          sample: /etc/init.d/libvirtd
        enabled:
          description: Whether the init system starts it at boot (or on its socket, for systemd).
          type: bool
          returned: always
          sample: true
        running:
          description:
            - Whether a process of this daemon runs, from its pid file or C(/proc) under O(root).
            - Processes of other mount namespaces (containers sharing the host's process list) do not count.
          type: bool
          returned: always
          sample: true
        pid:
          description: Its main process id, or V(null).
          type: int
          returned: always
          sample: 4242
        pidfile:
          description: The pid file the daemon uses (as its C(--help) says, or where it was found), or V(null).
          type: str
          returned: always
          sample: /run/libvirtd.pid
        can_reload:
          description: Whether it runs and this module's user may send it C(SIGHUP) (which rescans the hooks).
          type: bool
          returned: always
          sample: true
        drivers:
          description: The hook drivers whose hook this daemon runs (every daemon runs V(daemon)).
          type: list
          elements: str
          returned: always
          sample: [daemon, qemu]
    drivers:
      description:
        - One entry per hook driver (V(daemon), V(qemu), V(lxc), V(libxl), V(bhyve), V(network)),
          keyed by driver. Each value has the keys below.
      returned: always
      type: dict
      sample: {"qemu": {"daemons": ["libvirtd"], "entry_point": "ours",
                        "entry_point_path": "/etc/libvirt/hooks/qemu", "entry_point_executable": true,
                        "native_d_files": 1, "native_d_executable": 1, "tree_files": 2}}
      contains:
        daemons:
          description:
            - The installed daemons that run this driver's hook (C(libvirtd) when monolithic; the
              driver's modular daemon, every modular daemon for V(daemon)). Empty when none is installed.
          type: list
          elements: str
          returned: always
          sample: [virtqemud]
        entry_point:
          description:
            - Whose file C(<hooks_dir>/<driver>) is. V(ours) when its first lines carry the virthooks
              entry point marker, V(foreign) when it is someone else's, V(absent) when there is none.
          type: str
          choices: [ours, foreign, absent]
          returned: always
          sample: ours
        entry_point_path:
          description: Where the entry point of this driver is (or would be).
          type: str
          returned: always
          sample: /etc/libvirt/hooks/qemu
        entry_point_executable:
          description: Whether the entry point exists and is executable (libvirt ignores it otherwise).
          type: bool
          returned: always
          sample: true
        native_d_files:
          description: How many files are directly inside C(<driver>.d/).
          type: int
          returned: always
          sample: 1
        native_d_executable:
          description:
            - How many of those are executable regular files, which libvirt itself runs when
              RV(libvirt.native_hooks_d) is V(true).
          type: int
          returned: always
          sample: 1
        tree_files:
          description: How many files the per-guest tree C(<driver>.d/<guest>/<operation>/<sub-operation>) holds.
          type: int
          returned: always
          sample: 2
    selinux:
      description: SELinux state, from C(/sys/fs/selinux) under O(root), else C(getenforce).
      returned: always
      type: dict
      contains:
        enabled:
          description: Whether SELinux is enabled (enforcing or permissive).
          type: bool
          returned: always
          sample: false
        mode:
          description: The current mode.
          type: str
          choices: [enforcing, permissive, disabled]
          returned: always
          sample: disabled
        virt_hooks_unconfined:
          description:
            - The current value of the C(virt_hooks_unconfined) boolean, which Fedora 40 and later and
              RHEL 9.5 and later need on before hooks may do real work. V(null) when the policy has no
              such boolean or SELinux is off.
          type: bool
          returned: always
          sample: null
    apparmor:
      description: AppArmor state.
      returned: always
      type: dict
      contains:
        enabled:
          description: Whether AppArmor is enabled in the kernel.
          type: bool
          returned: always
          sample: true
        libvirtd_profile_loaded:
          description:
            - Whether a C(libvirtd) profile is loaded (hooks then run under it, which allows
              C(/etc/libvirt/hooks/**) but may deny helpers elsewhere). V(null) when the loaded
              profiles cannot be read.
          type: bool
          returned: always
          sample: true
        profiles:
          description: The loaded profiles of libvirt daemons, daemon name to mode.
          type: dict
          returned: always
          sample: {"libvirtd": "enforce"}
    files:
      description: Every file (and symlink) under RV(libvirt.hooks_dir), sorted by path; directories are not listed.
      returned: always
      type: list
      elements: dict
      contains:
        path:
          description: The path relative to RV(libvirt.hooks_dir).
          type: str
          returned: always
          sample: qemu.d/win10/prepare/begin/10-hugepages.sh
        kind:
          description:
            - V(ours) a virthooks entry point or a file under C(virthooks/).
            - V(foreign) a file named after a driver that is not ours (libvirt runs it).
            - V(native_d) a file directly inside C(<driver>.d/) (libvirt 6.5.0 and later runs it when executable).
            - V(tree) a file of the per-guest tree, C(<driver>.d/<object>/<operation>/<sub-operation>) itself
              or a file inside it (libvirt skips these; the hook helper, or virthooks, runs them).
            - V(other) anything else.
          type: str
          choices: [ours, foreign, native_d, tree, other]
          returned: always
          sample: tree
        driver:
          description: The hook driver the file belongs to, or V(null).
          type: str
          returned: always
          sample: qemu
        executable:
          description: Whether it is a regular file (after symlinks) with an execute bit, as libvirt checks.
          type: bool
          returned: always
          sample: true
        symlink:
          description: Whether it is a symbolic link.
          type: bool
          returned: always
          sample: false
        mode:
          description: Its permission bits, in octal.
          type: str
          returned: always
          sample: "0755"
        object:
          description: For V(tree) files, the guest (or network) name; else V(null).
          type: str
          returned: always
          sample: win10
        operation:
          description: For V(tree) files, the operation; else V(null).
          type: str
          returned: always
          sample: prepare
        suboperation:
          description: For V(tree) files, the sub-operation; else V(null).
          type: str
          returned: always
          sample: begin
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virthooks.libvirt.plugins.module_utils.detect import DetectionError, detect, path_argument_spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            **path_argument_spec(),
        ),
        supports_check_mode=True,
    )
    try:
        info = detect(root=module.params["root"], sysconfdir=module.params["sysconfdir"],
                      sandbox=module.params["sandbox"])
    except DetectionError as error:
        module.fail_json(msg=str(error))
    for warning in info.pop("warnings"):
        module.warn(warning)
    module.exit_json(changed=False, libvirt=info)


if __name__ == "__main__":
    main()
