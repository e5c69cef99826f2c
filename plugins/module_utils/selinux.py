# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SELinux labels for what we write (restorecon semantics).

SELinux labels the hooks directory ``virt_hook_t``; a file written through a temporary name
can carry another label. After writing, each path gets its policy default context: through
the libselinux Python binding when present, else the ``restorecon`` command.
"""
from __future__ import annotations

import os

SELINUX_FS = "/sys/fs/selinux"


def selinux_enabled(root: str = "") -> bool:
    """SELinux is on for the real host (never for a sandbox root: its files are not labelled by policy)."""
    return not root and os.path.exists(SELINUX_FS + "/enforce")


def restore_contexts(module, paths, root: str = "") -> list:
    """Give each existing path its default context; returns the paths relabelled."""
    if not selinux_enabled(root):
        return []
    existing = [p for p in paths if os.path.lexists(p)]
    if not existing:
        return []
    try:
        import selinux
        for path in existing:
            selinux.restorecon(path)
        return existing
    except ImportError:
        pass
    restorecon = module.get_bin_path("restorecon")
    if not restorecon:
        module.warn("SELinux is enabled but neither the libselinux Python binding nor restorecon is available; "
                    "run restorecon -R on the libvirt hooks directory")
        return []
    rc, _out, err = module.run_command([restorecon, "-F", "--"] + existing)
    if rc != 0:
        module.fail_json(msg="restorecon failed on the virthooks files: %s" % err.strip())
    return existing
