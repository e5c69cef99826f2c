# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a hypervisor has: libvirt's version, paths and daemons, the init system, SELinux and
AppArmor, and every file in the hooks directory, classified.

Read-only: it reads files and runs libvirt's own binaries with harmless options
(``--version``, ``--help``). Every path is looked up under ``root`` (``""`` = the real ``/``),
so the same code describes a sandbox or an image. Standard library only, Python >= 3.9.
"""
from __future__ import annotations

import glob
import os
import re
import signal
import stat
import subprocess

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.fileops import host_path, under
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.events import (
    DAEMONS,
    DRIVER_DAEMONS,
    DRIVERS,
)
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.layout import (
    OWN_DIR,
    file_is_ours,
    is_backup_name,
    sysconf_hooks_dir,
)

# Where libvirt's binaries live: distribution dirs first, then source builds, then NixOS.
DEFAULT_SEARCH_PATH = (
    "/usr/sbin", "/usr/bin", "/sbin", "/bin",
    "/usr/local/sbin", "/usr/local/bin",
    "/run/current-system/sw/sbin", "/run/current-system/sw/bin",
)
MONOLITHIC_DAEMON = "libvirtd"
# virtlockd/virtlogd have their own main() and never run a hook.
HELPER_DAEMONS = ("virtlockd", "virtlogd")
MODULAR_DAEMONS = tuple(d for d in DAEMONS if d != MONOLITHIC_DAEMON and d not in HELPER_DAEMONS)
HOOK_DAEMONS = (MONOLITHIC_DAEMON,) + MODULAR_DAEMONS
CLIENTS = ("virsh", "virt-admin")
NATIVE_HOOKS_D_SINCE = (6, 5, 0)
COMMAND_TIMEOUT = 15

HELP_CONFIG_HEADING = "Configuration file (unless overridden by -f):"
HELP_PIDFILE_HEADING = "PID file (unless overridden by -p):"

KIND_OURS = "ours"
KIND_FOREIGN = "foreign"
KIND_NATIVE_D = "native_d"
KIND_TREE = "tree"
KIND_OTHER = "other"

# /etc/os-release ID (or ID_LIKE) -> Ansible's os_family.
OS_FAMILY_BY_ID = {
    "debian": "Debian", "ubuntu": "Debian", "raspbian": "Debian", "linuxmint": "Debian",
    "devuan": "Debian", "pop": "Debian", "kali": "Debian",
    "rhel": "RedHat", "fedora": "RedHat", "centos": "RedHat", "rocky": "RedHat",
    "almalinux": "RedHat", "ol": "RedHat", "amzn": "RedHat", "cloudlinux": "RedHat",
    "sles": "Suse", "sled": "Suse", "suse": "Suse", "opensuse": "Suse",
    "opensuse-leap": "Suse", "opensuse-tumbleweed": "Suse",
    "arch": "Archlinux", "manjaro": "Archlinux", "endeavouros": "Archlinux",
    "alpine": "Alpine",
    "gentoo": "Gentoo",
    "nixos": "NixOS",
    "freebsd": "FreeBSD",
}
# SYSCONFDIR of libvirt as each family packages it.
SYSCONFDIR_BY_FAMILY = {
    "Debian": "/etc", "RedHat": "/etc", "Suse": "/etc", "Archlinux": "/etc",
    "Alpine": "/etc", "Gentoo": "/etc",
    "FreeBSD": "/usr/local/etc",
    "NixOS": "/var/lib",
}
# The usual path of Python 3 per family, for the hooks (the interpreter a module runs with may be a versioned
# or virtual environment path that a package upgrade removes): /usr/bin/python3 on every other family, and for a
# libvirt built from source under /usr/local on any family but FreeBSD (whose ports live there anyway).
PYTHON_BY_FAMILY = {"FreeBSD": "/usr/local/bin/python3", "NixOS": "/run/current-system/sw/bin/python3"}
DEFAULT_PYTHON = "/usr/bin/python3"
SOURCE_BUILD_PREFIX = "/usr/local/"
SOURCE_BUILD_SYSCONFDIR = "/usr/local/etc"
FALLBACK_SYSCONFDIR = "/etc"
# Where pid files are when the daemon does not say (distribution, source build).
PIDFILE_DIRS = ("/run", "/var/run", "/var/local/run", "/usr/local/var/run")
# Names of leftover copies that libvirt's native <driver>.d would still execute.


class DetectionError(Exception):
    """A parameter that cannot be honoured, e.g. an explicit sysconfdir that does not exist."""


# ---------------------------------------------------------------- small helpers

def read_text(path: str, limit: int = 65536) -> str | None:
    """The start of a text file, or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def is_executable_file(path: str) -> bool:
    """What libvirt checks before it runs a hook: a regular file (after symlinks) with an x bit."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def run_binary(path: str, args: list[str], timeout: float = COMMAND_TIMEOUT) -> str | None:
    """Run ``path args`` in the C locale; its stdout and stderr together, or None if it could not run."""
    env = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        proc = subprocess.Popen([path] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, cwd="/", start_new_session=True)
    except OSError:
        return None
    try:
        out, _err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    return out.decode("utf-8", "replace")


def find_binaries(names: tuple, root: str, search_path: tuple) -> dict:
    """name -> path (under root) of the first executable found for each name, in search order."""
    found = {}
    for name in names:
        for directory in search_path:
            candidate = under(root, directory.rstrip("/") + "/" + name)
            if is_executable_file(candidate):
                found[name] = candidate
                break
    return found


# ---------------------------------------------------------------- versions and --help

def parse_version(text: str | None) -> str | None:
    """The first x.y.z in a --version output (``libvirtd (libvirt) 9.0.0``, ``9.0.0``)."""
    match = re.search(r"\b(\d+\.\d+\.\d+)\b", text or "")
    return match.group(1) if match else None


def version_tuple(version: str | None) -> tuple:
    return tuple(int(part) for part in version.split(".")) if version else ()


def help_value(text: str | None, heading: str) -> str | None:
    """The absolute path printed on the line after ``heading`` in a daemon's --help, if any."""
    lines = (text or "").splitlines()
    for index, line in enumerate(lines):
        if line.strip() == heading:
            following = [nxt.strip() for nxt in lines[index + 1:] if nxt.strip()]
            if following and following[0].startswith("/"):
                return following[0]
            return None  # "$XDG_CONFIG_HOME/..." when not run as root
    return None


def sysconfdir_from_help(text: str | None) -> str | None:
    """SYSCONFDIR from ``Configuration file ...: <SYSCONFDIR>/libvirt/<daemon>.conf``."""
    conf = help_value(text, HELP_CONFIG_HEADING)
    match = re.match(r"^(/.*?)?/libvirt/[^/]+\.conf$", conf or "")
    if not match:
        return None
    return match.group(1) or "/"


def probe_daemon(path: str) -> dict:
    """What a daemon binary says about itself: version, SYSCONFDIR and pid file."""
    text = run_binary(path, ["--help"])
    return {
        "version": parse_version(run_binary(path, ["--version"])),
        "sysconfdir": sysconfdir_from_help(text),
        "pidfile": help_value(text, HELP_PIDFILE_HEADING),
    }


def detect_version(probes: dict, binaries: dict) -> tuple:
    """(version, binary it came from): the daemons first, then the clients."""
    for name in HOOK_DAEMONS:
        if probes.get(name, {}).get("version"):
            return probes[name]["version"], binaries[name]
    for name in CLIENTS:
        if name in binaries:
            version = parse_version(run_binary(binaries[name], ["--version"]))
            if version:
                return version, binaries[name]
    return None, None


# ---------------------------------------------------------------- OS family and SYSCONFDIR

def read_os_release(root: str) -> dict:
    """KEY=value pairs of /etc/os-release (or /usr/lib/os-release) under root."""
    for candidate in ("/etc/os-release", "/usr/lib/os-release", "/var/run/os-release"):
        text = read_text(under(root, candidate))
        if text is not None:
            return dict(parse_os_release_line(line) for line in text.splitlines() if "=" in line)
    return {}


def parse_os_release_line(line: str) -> tuple:
    key, _sep, value = line.partition("=")
    return key.strip(), value.strip().strip("\"'")


def detect_os_family(root: str) -> str | None:
    """Ansible's os_family name from os-release (ID, then ID_LIKE), or FreeBSD from its marker."""
    release = read_os_release(root)
    for word in [release.get("ID", "")] + release.get("ID_LIKE", "").split():
        family = OS_FAMILY_BY_ID.get(word.lower())
        if family:
            return family
    if os.path.exists(under(root, "/bin/freebsd-version")):
        return "FreeBSD"
    return None


def sysconfdir_fallback(os_family: str | None, daemon_path: str | None, root: str) -> tuple:
    """(SYSCONFDIR, source) when the daemon did not tell: install prefix, OS family, /etc."""
    if daemon_path and host_path(root, daemon_path).startswith(SOURCE_BUILD_PREFIX):
        return SOURCE_BUILD_SYSCONFDIR, "install_prefix"
    if os_family in SYSCONFDIR_BY_FAMILY:
        return SYSCONFDIR_BY_FAMILY[os_family], "os_family"
    return FALLBACK_SYSCONFDIR, "default"


def check_explicit_sysconfdir(root: str, sysconfdir: str) -> str:
    """The explicit sysconfdir, normalised; DetectionError when it is relative or missing."""
    if not sysconfdir.startswith("/"):
        raise DetectionError("sysconfdir %r must be an absolute path (e.g. /etc)" % sysconfdir)
    normalised = os.path.normpath(sysconfdir)
    if not os.path.isdir(under(root, normalised)):
        where = " (looked for %s)" % under(root, normalised) if root else ""
        raise DetectionError("sysconfdir %r does not exist%s; give the directory that holds "
                             "libvirt/ (e.g. /etc or /usr/local/etc), or leave it empty to detect it"
                             % (sysconfdir, where))
    return normalised


def resolve_sysconfdir(root: str, explicit: str, reported: tuple, os_family: str | None,
                       daemon_path: str | None) -> tuple:
    """(SYSCONFDIR, source, warnings): the parameter, else the daemon's word, else a fallback."""
    daemon_name, daemon_value = reported
    if explicit:
        value = check_explicit_sysconfdir(root, explicit)
        warnings = []
        if daemon_value and daemon_value != value:
            warnings.append("sysconfdir %s was given, but %s reports %s: libvirt will not see hooks "
                            "under %s" % (value, daemon_name, daemon_value, sysconf_hooks_dir(value)))
        return value, "parameter", warnings
    if daemon_value:
        return daemon_value, "daemon", []
    value, source = sysconfdir_fallback(os_family, daemon_path, root)
    return value, source, []


# ---------------------------------------------------------------- daemons and processes

def scan_processes(root: str, names: tuple) -> dict:
    """name -> sorted pids of the processes under root/proc whose command name is one of ``names``."""
    proc = under(root, "/proc")
    try:
        entries = os.listdir(proc)
    except OSError:
        return {}
    running = {}
    for entry in entries:
        if entry.isdigit():
            comm = (read_text(proc + "/" + entry + "/comm", 64) or "").strip()
            if comm in names and in_our_mount_namespace(proc, entry):
                running.setdefault(comm, []).append(int(entry))
    return {name: sorted(pids) for name, pids in running.items()}


def in_our_mount_namespace(proc: str, pid: str) -> bool:
    """False for a process of another mount namespace (a container sharing our pid namespace);
    True when that cannot be told (not root, or a proc tree without namespace links)."""
    try:
        return os.readlink("%s/%s/ns/mnt" % (proc, pid)) == os.readlink("/proc/self/ns/mnt")
    except OSError:
        return True


def is_process_of(root: str, pid: str, name: str) -> bool:
    """Whether ``pid`` under root/proc is a live ``name`` of this host (not a container's)."""
    proc = under(root, "/proc")
    comm = (read_text("%s/%s/comm" % (proc, pid), 64) or "").strip()
    return comm == name and in_our_mount_namespace(proc, pid)


def pid_from_pidfile(root: str, pidfile: str, name: str) -> int | None:
    """The pid in a pid file, if that process is alive and is ``name``."""
    text = (read_text(under(root, pidfile), 64) or "").strip()
    return int(text) if text.isdigit() and is_process_of(root, text, name) else None


def pidfile_candidates(name: str, reported: str | None) -> list:
    if reported:
        return [reported]
    return ["%s/%s.pid" % (directory, name) for directory in PIDFILE_DIRS]


def daemon_pid(root: str, name: str, reported_pidfile: str | None, scanned: dict) -> tuple:
    """(pid, pidfile): the pid file's pid when valid, else the oldest process of that name."""
    for pidfile in pidfile_candidates(name, reported_pidfile):
        pid = pid_from_pidfile(root, pidfile, name)
        if pid is not None:
            return pid, pidfile
    pids = scanned.get(name) or []
    return (pids[0] if pids else None), (reported_pidfile or None)


def choose_mode(installed: list, running: set, enabled: set) -> str | None:
    """monolithic or modular: what runs, else what is enabled, else what is installed."""
    modular = [name for name in installed if name in MODULAR_DAEMONS]
    monolithic = MONOLITHIC_DAEMON in installed
    for active in (running, enabled):
        if any(name in active for name in modular):
            return "modular"
        if MONOLITHIC_DAEMON in active:
            return "monolithic"
    if modular:
        return "modular"
    return "monolithic" if monolithic else None


def hook_drivers_of(daemon: str, mode: str) -> list:
    """The hook drivers a daemon runs: all of them for libvirtd, its own plus ``daemon`` otherwise."""
    if mode == "monolithic":
        return list(DRIVERS)
    return ["daemon"] + [driver for driver, owner in DRIVER_DAEMONS.items() if owner == daemon]


def daemons_of_driver(driver: str, daemons: dict) -> list:
    """The installed daemons (of the active mode) that run ``driver``'s hook."""
    return [name for name, info in daemons.items() if driver in info["drivers"]]


# ---------------------------------------------------------------- init system and services

def detect_init_system(root: str) -> str:
    """systemd, openrc, bsdrc, sysvinit or unknown, from the markers each leaves on the host."""
    if os.path.isdir(under(root, "/run/systemd/system")):
        return "systemd"
    if os.path.isdir(under(root, "/run/openrc")) or os.path.exists(under(root, "/sbin/openrc-run")):
        return "openrc"
    if os.path.exists(under(root, "/etc/rc.subr")):
        return "bsdrc"
    if has_init_scripts(root):
        return "sysvinit"
    if any(os.path.exists(under(root, p)) for p in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")):
        return "systemd"
    return "unknown"


def has_init_scripts(root: str) -> bool:
    try:
        names = os.listdir(under(root, "/etc/init.d"))
    except OSError:
        return False
    return any(name not in ("README", "skeleton", "functions", ".depend.boot") for name in names)


def service_file_candidates(init_system: str, name: str) -> list:
    units = ["%s/%s.service" % (d, name) for d in
             ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")]
    scripts = ["/etc/init.d/" + name]
    bsd = ["/usr/local/etc/rc.d/" + name, "/etc/rc.d/" + name]
    if init_system == "systemd":
        return units
    if init_system in ("sysvinit", "openrc"):
        return scripts
    if init_system == "bsdrc":
        return bsd
    return units + scripts + bsd


def service_file(root: str, init_system: str, name: str) -> str | None:
    for candidate in service_file_candidates(init_system, name):
        if os.path.exists(under(root, candidate)):
            return under(root, candidate)
    return None


def service_enabled(root: str, name: str) -> bool:
    """Whether any init system starts ``name`` at boot (systemd wants, rc?.d, runlevels, rc.conf)."""
    patterns = ["/etc/systemd/system/*.wants/%s.service" % name,
                "/etc/systemd/system/*.wants/%s.socket" % name,
                "/etc/rc[2345].d/S[0-9][0-9]%s" % name,
                "/etc/runlevels/*/%s" % name]
    if any(glob.glob(under(glob.escape(root), pattern)) for pattern in patterns):
        return True
    rc_conf = read_text(under(root, "/etc/rc.conf")) or ""
    return re.search(r'^\s*%s_enable="?(YES|yes|Yes)' % re.escape(name), rc_conf, re.M) is not None


# ---------------------------------------------------------------- SELinux and AppArmor

def detect_selinux(root: str, binaries: dict) -> dict:
    """enabled, mode (enforcing/permissive/disabled) and the virt_hooks_unconfined boolean."""
    fs = under(root, "/sys/fs/selinux")
    enforce = read_text(fs + "/enforce", 16)
    if enforce is not None:
        mode = "enforcing" if enforce.strip() == "1" else "permissive"
    else:
        mode = selinux_mode_from_getenforce(binaries.get("getenforce"))
    boolean = read_text(fs + "/booleans/virt_hooks_unconfined", 16)
    unconfined = None if boolean is None else boolean.split()[:1] == ["1"]
    return {"enabled": mode in ("enforcing", "permissive"), "mode": mode,
            "virt_hooks_unconfined": unconfined}


def selinux_mode_from_getenforce(getenforce: str | None) -> str:
    word = (run_binary(getenforce, []) or "").strip().lower() if getenforce else ""
    return word if word in ("enforcing", "permissive") else "disabled"


def detect_apparmor(root: str) -> dict:
    """enabled, and the profiles of libvirt daemons that are loaded (name -> mode)."""
    enabled = (read_text(under(root, "/sys/module/apparmor/parameters/enabled"), 8) or "").strip() == "Y"
    listing = read_text(under(root, "/sys/kernel/security/apparmor/profiles"), 1 << 20)
    profiles = {}
    for line in (listing or "").splitlines():
        match = re.match(r"^(\S+) \((\w+)\)$", line.strip())
        if match and match.group(1).rsplit("/", 1)[-1] in HOOK_DAEMONS:
            profiles[match.group(1).rsplit("/", 1)[-1]] = match.group(2)
    loaded = (MONOLITHIC_DAEMON in profiles) if listing is not None else None
    return {"enabled": enabled, "libvirtd_profile_loaded": loaded, "profiles": profiles}


# ---------------------------------------------------------------- the hooks directory

def file_entry(hooks_dir: str, relpath: str) -> dict:
    """One file of the hooks dir: its path, mode and what it is (see classify)."""
    full = os.path.join(hooks_dir, relpath)
    st = os.lstat(full)
    entry = {"path": relpath, "kind": KIND_OTHER, "driver": None,
             "executable": is_executable_file(full), "symlink": stat.S_ISLNK(st.st_mode),
             "mode": "%04o" % stat.S_IMODE(st.st_mode),
             "object": None, "operation": None, "suboperation": None}
    entry.update(classify(relpath, full))
    return entry


def classify(relpath: str, full: str) -> dict:
    """kind (ours/foreign/native_d/tree/other), driver and, in the per-guest tree, the event."""
    parts = relpath.split("/")
    if parts[0] == OWN_DIR and len(parts) > 1:
        return {"kind": KIND_OURS}
    if len(parts) == 1 and parts[0] in DRIVERS:
        return {"kind": KIND_OURS if file_is_ours(full) else KIND_FOREIGN, "driver": parts[0]}
    driver = parts[0][:-2] if parts[0].endswith(".d") else None
    if driver not in DRIVERS:
        return {}
    if len(parts) == 2:
        return {"kind": KIND_NATIVE_D, "driver": driver}
    if len(parts) in (4, 5):
        # <driver>.d/<object>/<operation>/<sub-operation>[/<file>]
        return {"kind": KIND_TREE, "driver": driver, "object": parts[1],
                "operation": parts[2], "suboperation": parts[3]}
    return {"driver": driver}


def list_hook_files(hooks_dir: str) -> list:
    """Every non-directory under the hooks dir, relative to it, sorted (symlinks not followed)."""
    found = []
    for top, dirs, files in os.walk(hooks_dir):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            found.append(os.path.relpath(os.path.join(top, name), hooks_dir))
    return sorted(found)


def inventory_hooks(hooks_dir: str) -> list:
    """Every file of the hooks dir, classified; [] when the dir does not exist."""
    files = []
    for relpath in list_hook_files(hooks_dir):
        try:
            files.append(file_entry(hooks_dir, relpath))
        except FileNotFoundError:  # removed while we looked
            continue
    return files


def driver_summary(driver: str, files: list, hooks_dir: str, daemons: dict) -> dict:
    """Whose entry point a driver has, and what else would run for it."""
    entry_point = next((f for f in files if f["path"] == driver), None)
    native = [f for f in files if f["driver"] == driver and f["kind"] == KIND_NATIVE_D]
    return {
        "daemons": daemons_of_driver(driver, daemons),
        "entry_point": entry_point["kind"] if entry_point else "absent",
        "entry_point_path": os.path.join(hooks_dir, driver),
        "entry_point_executable": bool(entry_point and entry_point["executable"]),
        "native_d_files": len(native),
        "native_d_executable": sum(1 for f in native if f["executable"]),
        "tree_files": sum(1 for f in files if f["driver"] == driver and f["kind"] == KIND_TREE),
    }


def hook_warnings(files: list, native_supported: bool | None) -> list:
    """Things libvirt would do that nobody meant: skip a hook, or run a backup copy."""
    warnings = []
    for f in files:
        if f["kind"] in (KIND_OURS, KIND_FOREIGN) and f["driver"] and not f["executable"]:
            warnings.append("hook %s is not an executable file: libvirt ignores it" % f["path"])
        if (f["kind"] == KIND_NATIVE_D and f["executable"] and native_supported is not False
                and is_backup_name(os.path.basename(f["path"]))):
            warnings.append("%s looks like a backup copy, but it is executable: libvirt runs it"
                            % f["path"])
    return warnings


# ---------------------------------------------------------------- everything together

def check_root(root: str) -> str:
    if not root:
        return ""
    if not root.startswith("/"):
        raise DetectionError("root %r must be an absolute path, or empty for /" % root)
    if not os.path.isdir(root):
        raise DetectionError("root %r does not exist or is not a directory" % root)
    return os.path.normpath(root).rstrip("/")


def describe_daemons(root: str, names: list, binaries: dict, probes: dict, mode: str | None,
                     init_system: str, scanned: dict) -> dict:
    """name -> path, service, whether it runs (pid) and which hook drivers it runs."""
    daemons = {}
    for name in names:
        pid, pidfile = daemon_pid(root, name, probes[name]["pidfile"], scanned)
        daemons[name] = {
            "path": binaries[name],
            "service": name,
            "service_file": service_file(root, init_system, name),
            "enabled": service_enabled(root, name),
            "running": pid is not None,
            "pid": pid,
            "pidfile": under(root, pidfile) if pidfile else None,
            "can_reload": pid is not None and (os.geteuid() == 0),
            "drivers": hook_drivers_of(name, mode),
        }
    return daemons


def active_daemons(found: list, mode: str | None) -> list:
    if mode == "monolithic":
        return [MONOLITHIC_DAEMON]
    if mode == "modular":
        return [name for name in found if name in MODULAR_DAEMONS]
    return []


def reported_sysconfdir(probes: dict, order: list) -> tuple:
    """(daemon, SYSCONFDIR) from the first daemon whose --help names it."""
    for name in order:
        if probes[name]["sysconfdir"]:
            return name, probes[name]["sysconfdir"]
    return None, None


def detect(root: str = "", sysconfdir: str = "", search_path: tuple = DEFAULT_SEARCH_PATH,
           sandbox: dict | None = None) -> dict:
    """Describe libvirt on the host under ``root``; DetectionError for unusable parameters.

    ``search_path`` lists the directories (as the host sees them, inside ``root``) where
    libvirt's binaries are looked for. With ``sandbox`` (dir, version, daemons, init_system) the
    host is that sandbox, described from those values alone (see describe_sandbox).
    """
    if sandbox:
        return describe_sandbox(sandbox, root, sysconfdir)
    root = check_root(root)
    binaries = find_binaries(HOOK_DAEMONS + CLIENTS + ("getenforce",), root, tuple(search_path))
    found = [name for name in HOOK_DAEMONS if name in binaries]
    probes = {name: probe_daemon(binaries[name]) for name in found}
    scanned = scan_processes(root, HOOK_DAEMONS)
    init_system = detect_init_system(root)
    mode = choose_mode(found, set(scanned), {n for n in found if service_enabled(root, n)})
    names = active_daemons(found, mode)
    daemons = describe_daemons(root, names, binaries, probes, mode, init_system, scanned)
    version, version_from = detect_version(probes, binaries)
    os_family = detect_os_family(root)
    main_daemon = binaries.get(names[0]) if names else None
    value, source, warnings = resolve_sysconfdir(
        root, sysconfdir, reported_sysconfdir(probes, names + found), os_family, main_daemon)
    hooks_dir = under(root, sysconf_hooks_dir(value))
    files = inventory_hooks(hooks_dir)
    native = version_tuple(version) >= NATIVE_HOOKS_D_SINCE if version else None
    return {
        "installed": bool(found),
        "version": version,
        "version_from": version_from,
        "native_hooks_d": native,
        "binaries": {name: path for name, path in binaries.items() if name != "getenforce"},
        "mode": mode,
        "root": root,
        "os_family": os_family,
        "sysconfdir": value,
        "sysconfdir_source": source,
        "hooks_dir": hooks_dir,
        "hooks_dir_exists": os.path.isdir(hooks_dir),
        "init_system": init_system,
        "reload_possible": any(d["can_reload"] for d in daemons.values()),
        "daemons": daemons,
        "drivers": {d: driver_summary(d, files, hooks_dir, daemons) for d in DRIVERS},
        "selinux": detect_selinux(root, binaries),
        "apparmor": detect_apparmor(root),
        "files": files,
        "metrics_job_files": [p for p in METRICS_JOB_FILES if os.path.lexists(under(root, p))],
        "warnings": warnings + hook_warnings(files, native),
    }


# Where the role's periodic `virthooks metrics` job lives by default (roles/libvirt_hooks/tasks/metrics.yml).
METRICS_JOB_FILES = ("/etc/cron.d/virthooks-metrics", "/etc/systemd/system/virthooks-metrics.service",
                     "/etc/systemd/system/virthooks-metrics.timer")


def resolve_hooks_dir(explicit: str, root: str = "", sysconfdir: str = "", sandbox: dict | None = None) -> str:
    """The hooks directory to manage: the explicit one, else the detected one (DetectionError).
    With a sandbox, an explicit one must lie inside it."""
    if not explicit:
        return detect(root, sysconfdir, sandbox=sandbox)["hooks_dir"]
    hooks_dir = explicit.rstrip("/") or "/"
    directory = sandbox_dir(sandbox)
    if directory and not os.path.normpath(hooks_dir).startswith(directory + "/"):
        raise DetectionError("hooks_dir %s is outside sandbox.dir %s: a sandbox keeps its hooks inside it"
                             % (hooks_dir, directory))
    return hooks_dir


def platform_python(info: dict) -> str:
    """The Python 3 the hooks of a host described by detect() run with: its OS family's usual one."""
    source_build = any(str(path).startswith(SOURCE_BUILD_PREFIX) for path in info["binaries"].values())
    if source_build and info["os_family"] != "FreeBSD":
        return DEFAULT_PYTHON
    return PYTHON_BY_FAMILY.get(info["os_family"], DEFAULT_PYTHON)


def tree_drivers(files: list) -> list:
    """The drivers whose per-guest tree (<driver>.d/<object>/<operation>/<sub-operation>) holds files, from
    inventory_hooks() or detect()'s files, in DRIVERS order."""
    found = {f["driver"] for f in files if f["kind"] == KIND_TREE}
    return [d for d in DRIVERS if d in found]


# ---------------------------------------------------------------- a sandbox host

SANDBOX_INIT_SYSTEMS = ("systemd", "sysvinit", "openrc", "bsdrc", "unknown")
SANDBOX_DEFAULTS = {"version": "10.0.0", "daemons": [MONOLITHIC_DAEMON], "init_system": "unknown"}


def sandbox_dir(sandbox: dict | None) -> str:
    """The sandbox's directory (normalised), or "" when there is no sandbox."""
    return os.path.normpath(sandbox["dir"]).rstrip("/") if sandbox and sandbox.get("dir") else ""


def describe_sandbox(sandbox: dict, root: str, sysconfdir: str) -> dict:
    """What detect() returns for a sandbox host, from its own description: no binary is run, and no
    process, service, SELinux or AppArmor state of the real host is read. Its daemons never run.
    A sandbox that does not exist yet is an empty one (a deploy creates its directories)."""
    if root:
        raise DetectionError("root and sandbox exclude each other: a sandbox is a directory of this machine")
    settings = dict(SANDBOX_DEFAULTS, **{k: v for k, v in sandbox.items() if v is not None})
    directory = sandbox_dir(sandbox)
    if not directory.startswith("/") or (os.path.lexists(directory) and not os.path.isdir(directory)):
        raise DetectionError("sandbox.dir %r must be an absolute path to a directory (created by a deploy when"
                             " missing)" % sandbox.get("dir"))
    version = str(settings["version"])
    if parse_version(version) != version:
        raise DetectionError("sandbox.version %r is not a libvirt version like 10.0.0" % version)
    found = list(dict.fromkeys(settings["daemons"]))
    unknown = [name for name in found if name not in HOOK_DAEMONS]
    if unknown or not found:
        raise DetectionError("sandbox.daemons %s: each must be one of %s" % (unknown or "[]", ", ".join(HOOK_DAEMONS)))
    if settings["init_system"] not in SANDBOX_INIT_SYSTEMS:
        raise DetectionError("sandbox.init_system %r must be one of %s"
                             % (settings["init_system"], ", ".join(SANDBOX_INIT_SYSTEMS)))
    value, source = (os.path.normpath(sysconfdir), "parameter") if sysconfdir else (directory + "/etc", "sandbox")
    if value != directory and not value.startswith(directory + "/"):
        raise DetectionError("sysconfdir %r is outside sandbox.dir %s: a sandbox keeps its hooks inside it"
                             % (sysconfdir, directory))
    mode = choose_mode(found, set(), set())
    daemons = {name: {"path": None, "service": name, "service_file": None, "enabled": False, "running": False,
                      "pid": None, "pidfile": None, "can_reload": False, "drivers": hook_drivers_of(name, mode)}
               for name in active_daemons(found, mode)}
    hooks_dir = sysconf_hooks_dir(value)
    files = inventory_hooks(hooks_dir)
    native = version_tuple(version) >= NATIVE_HOOKS_D_SINCE
    return {
        "installed": True, "version": version, "version_from": "sandbox", "native_hooks_d": native,
        "binaries": {}, "mode": mode, "root": "", "os_family": detect_os_family(directory),
        "sysconfdir": value, "sysconfdir_source": source,
        "hooks_dir": hooks_dir, "hooks_dir_exists": os.path.isdir(hooks_dir),
        "init_system": settings["init_system"], "reload_possible": False, "daemons": daemons,
        "drivers": {d: driver_summary(d, files, hooks_dir, daemons) for d in DRIVERS},
        "selinux": {"enabled": False, "mode": "disabled", "virt_hooks_unconfined": None},
        "apparmor": {"enabled": False, "libvirtd_profile_loaded": None, "profiles": {}},
        "files": files,
        "metrics_job_files": [p for p in METRICS_JOB_FILES if os.path.lexists(under(directory, p))],
        "warnings": hook_warnings(files, native),
    }


def path_argument_spec() -> dict:
    """The argument spec of the options documented by the virthooks.libvirt.paths doc fragment."""
    return dict(root=dict(type="str", default=""), sysconfdir=dict(type="str", default=""),
                sandbox=dict(type="dict", options=dict(
                    dir=dict(type="path", required=True),
                    version=dict(type="str", default=SANDBOX_DEFAULTS["version"]),
                    daemons=dict(type="list", elements="str", default=SANDBOX_DEFAULTS["daemons"],
                                 choices=list(HOOK_DAEMONS)),
                    init_system=dict(type="str", default=SANDBOX_DEFAULTS["init_system"],
                                     choices=list(SANDBOX_INIT_SYSTEMS)))))
