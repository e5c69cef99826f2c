# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of what virthooks puts on a managed host, in one place.

Everything lives under the libvirt hooks directory (``$SYSCONFDIR/libvirt/hooks``):
AppArmor's libvirtd profile allows ``hooks/** rmix`` and SELinux labels the tree
``virt_hook_t``, so nothing a hook runs or imports lives elsewhere.
"""

OWN_DIR = "virthooks"                  # hooks/virthooks/, ignored by libvirt
GENERATIONS_DIR = "generations"        # hooks/virthooks/generations/<id>/: one deploy's dispatch state
CURRENT = "current"                    # hooks/virthooks/current -> generations/<id>, swapped atomically
CONFIG_FILE = "config.json"            # <generation>/config.json (hooks/virthooks/config.json links to it)
CONFIG_CACHE = "config.marshal"        # <generation>/config.marshal: config.json parsed and validated (configcache)
SCRIPTS_DIR = "scripts"                # <generation>/scripts/<name>
SECRETS_DIR = "secrets"                # <generation>/secrets/<name>/<NAME>: a script's secrets, 0600 root
FILES_DIR = "files"                    # <generation>/files/<name>/<file>: files a script reads, root-only
META_FILE = "meta.json"                # <generation>/meta.json: when, by whom, what (not read by the dispatcher)
LOCK_FILE = ".lock"                    # hooks/virthooks/.lock: one deploy or rollback at a time
LIB_DIR = "lib"                        # hooks/virthooks/lib/<digest>/virthooks_runtime/*.py
LIB_CURRENT = "current"                # hooks/virthooks/lib/current -> <digest>, swapped atomically
RUNTIME_PACKAGE = "virthooks_runtime"  # the package name of the runtime on the host
ADOPTED_SUFFIX = ".virthooks-adopted"  # hooks/<driver>.virthooks-adopted: a foreign hook we took over, kept in
#                                        its own directory (its $0's dirname stays), under a name libvirt never calls
ADOPTED_DIR = "adopted"                # hooks/virthooks/adopted/<driver>: where adopted hooks were copied before
CLI_FILE = "virthooks"                 # hooks/virthooks/virthooks: the operator CLI
# Every entry point we write carries this line (second line of the file).
ENTRY_POINT_MARKER = "# virthooks-entry-point: managed by Ansible (virthooks.libvirt); local changes are overwritten"


# How much of a hook file is read to tell our entry points (the marker near the top) from anything else.
HEAD_BYTES = 4096
HEAD_LINES = 5
# Editor and package-manager leftovers beside hooks and drop-ins, never run or read.
BACKUP_SUFFIXES = (".rpmnew", ".rpmsave", ".orig", ".bak", ".old", ".swp")


def is_ours(text: str) -> bool:
    """Whether a hook file's text is one of our entry points (the marker line near its top)."""
    return any(line.strip() == ENTRY_POINT_MARKER for line in text[:HEAD_BYTES].splitlines()[:HEAD_LINES])


def file_is_ours(path: str) -> bool:
    """Whether the file at path is one of our entry points (False if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return is_ours(f.read(HEAD_BYTES).decode("utf-8", "replace"))
    except OSError:
        return False


def is_backup_name(name: str) -> bool:
    """Editor/package-manager leftovers (and hidden files) that must never run as hooks."""
    return name.startswith(".") or name.endswith("~") or ".dpkg-" in name or name.endswith(BACKUP_SUFFIXES)


def script_file(name: str) -> str:
    """A declared script's path as a rule names it (relative to hooks/virthooks/)."""
    return "%s/%s" % (SCRIPTS_DIR, name)


def adopted_hook(hooks_dir: str, driver: str) -> str:
    """Where a foreign hook of a driver is kept once adopted: beside the entry point, in place."""
    return "%s/%s%s" % (hooks_dir, driver, ADOPTED_SUFFIX)


def old_adopted_hook(hooks_dir: str, driver: str) -> str:
    """Where deploys before in-place adoption kept a copy of it (its dirname was not the hook's own)."""
    return "%s/%s/%s/%s" % (hooks_dir, OWN_DIR, ADOPTED_DIR, driver)


def kept_adopted_hook(hooks_dir: str, driver: str, lexists) -> str:
    """The adopted hook to put back at hooks/<driver> when our entry point goes ('' if none)."""
    for path in (adopted_hook(hooks_dir, driver), old_adopted_hook(hooks_dir, driver)):
        if lexists(path):
            return path
    return ""


def sysconf_hooks_dir(sysconfdir: str) -> str:
    """The hooks directory libvirt uses for a given SYSCONFDIR."""
    return sysconfdir.rstrip("/") + "/libvirt/hooks"
