"""virthooks.libvirt.hooks_info run for real through Ansible, on sandbox roots and on this machine's libvirt."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.layout import ENTRY_POINT_MARKER
from tests.support.ansible import ansible_env, run_module
from tests.support.host import machine_libvirtd_up

MODULE = "virthooks.libvirt.hooks_info"


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A Fedora-like root with a hooks dir holding one file of each kind."""
    root = tmp_path / "root"
    write(root / "etc" / "os-release", 'ID=fedora\nVERSION_ID=41\n')
    hooks = root / "etc" / "libvirt" / "hooks"
    write(hooks / "qemu", "#!/bin/sh\n%s\nexec true\n" % ENTRY_POINT_MARKER, 0o755)
    write(hooks / "network", "#!/bin/sh\nexit 0\n", 0o755)
    write(hooks / "virthooks" / "config.json", "{}")
    write(hooks / "qemu.d" / "10-legacy.sh", "#!/bin/sh\n", 0o755)
    write(hooks / "qemu.d" / "win10" / "prepare" / "begin" / "hugepages.sh", "#!/bin/sh\n", 0o755)
    write(hooks / "notes.txt", "")
    return root


def test_sandbox_root_is_described_and_its_files_classified(ansible_module, sandbox):
    result = ansible_module(MODULE, {"root": str(sandbox)})
    assert "libvirt" in result, result
    info = result["libvirt"]
    assert result["changed"] is False
    assert (info["installed"], info["version"], info["mode"]) == (False, None, None)
    assert (info["os_family"], info["sysconfdir"], info["sysconfdir_source"]) == ("RedHat", "/etc", "os_family")
    assert info["hooks_dir"] == str(sandbox / "etc" / "libvirt" / "hooks")
    kinds = {f["path"]: f["kind"] for f in info["files"]}
    assert kinds == {
        "qemu": "ours", "network": "foreign", "virthooks/config.json": "ours",
        "qemu.d/10-legacy.sh": "native_d", "qemu.d/win10/prepare/begin/hugepages.sh": "tree",
        "notes.txt": "other",
    }
    assert info["drivers"]["qemu"]["entry_point"] == "ours"
    assert info["drivers"]["network"]["entry_point"] == "foreign"
    assert info["drivers"]["lxc"]["entry_point"] == "absent"


def test_check_mode_gives_the_same_answer_and_changes_nothing(ansible_module, sandbox):
    before = sorted(str(p) for p in sandbox.rglob("*"))
    normal = ansible_module(MODULE, {"root": str(sandbox)})
    checked = ansible_module(MODULE, {"root": str(sandbox)}, check=True)
    assert checked["changed"] is False
    assert checked["libvirt"] == normal["libvirt"]
    assert sorted(str(p) for p in sandbox.rglob("*")) == before


def test_explicit_sysconfdir_wins(ansible_module, sandbox):
    write(sandbox / "opt" / "lv" / "libvirt" / "hooks" / "daemon", "#!/bin/sh\n", 0o755)
    info = ansible_module(MODULE, {"root": str(sandbox), "sysconfdir": "/opt/lv"})["libvirt"]
    assert (info["sysconfdir"], info["sysconfdir_source"]) == ("/opt/lv", "parameter")
    assert [f["path"] for f in info["files"]] == ["daemon"]


def test_missing_sysconfdir_fails_with_a_message_naming_it(ansible_module, sandbox):
    result = ansible_module(MODULE, {"root": str(sandbox), "sysconfdir": "/opt/missing"})
    assert "libvirt" not in result
    assert "sysconfdir '/opt/missing' does not exist" in result["msg"]


def test_relative_root_fails_with_a_message_naming_it(ansible_module):
    result = ansible_module(MODULE, {"root": "images/hv01"})
    assert "libvirt" not in result
    assert "root 'images/hv01' must be an absolute path" in result["msg"]


def test_warnings_reach_the_play(sandbox):
    # The tree callback behind ansible_module drops warnings: read what the play prints instead.
    write(sandbox / "etc" / "libvirt" / "hooks" / "qemu.d" / "10-legacy.sh~", "#!/bin/sh\n", 0o755)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
         "-e", "ansible_python_interpreter=" + sys.executable, "-m", MODULE, "-a", json.dumps({"root": str(sandbox)})],
        capture_output=True, text=True, env=ansible_env(), timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "qemu.d/10-legacy.sh~ looks like a backup copy, but it is executable" in proc.stdout + proc.stderr
    assert '"warnings"' not in proc.stdout


def test_empty_root_without_libvirt_reports_not_installed(ansible_module, tmp_path):
    info = ansible_module(MODULE, {"root": str(tmp_path)})["libvirt"]
    assert (info["installed"], info["daemons"], info["files"], info["hooks_dir_exists"]) == (False, {}, [], False)
    assert (info["sysconfdir"], info["sysconfdir_source"], info["init_system"]) == ("/etc", "default", "unknown")


# ------------------------------------------------------------------ the real libvirt on this machine
# Every expected value below is read from the machine itself, never from the machine these tests were
# written on: the daemon's path and pid from /proc, its version from the running daemon over the API, the
# init system, OS family and SELinux state from what the system exposes.

def running_pids(name: str) -> list:
    """Pids of the processes whose command name is exactly `name`, in this machine's mount namespace (a private
    libvirtd another test runs in namespaces of its own, the soak's, is not this machine's, nor for hooks_info)."""
    ours = os.readlink("/proc/self/ns/mnt")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name and os.readlink(entry / "ns" / "mnt") == ours:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return sorted(pids)


def daemon_version() -> str:
    """The running daemon's version, as it answers over the API (`virsh version --daemon`)."""
    out = subprocess.run(["virsh", "-c", "qemu:///system", "version", "--daemon"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    found = re.search(r"Running against daemon: (\d+\.\d+\.\d+)", out)
    assert found, "virsh version --daemon did not name the daemon's version:\n" + out
    return found.group(1)


def init_system_in_use(service_file: str | None) -> str:
    """The service manager that runs this machine's services, as the system shows it.

    systemd is in charge when /run/systemd/system exists (sd_booted(3)); OpenRC when /run/openrc does;
    otherwise a SysV init script of the daemon means sysvinit (PID 1 may be anything, e.g. in a container).
    """
    if Path("/run/systemd/system").is_dir():
        return "systemd"
    if Path("/run/openrc").is_dir():
        return "openrc"
    if service_file and service_file.startswith("/etc/init.d/"):
        return "sysvinit"
    return "unknown"


def selinux_mode() -> str:
    enforce = Path("/sys/fs/selinux/enforce")
    if not enforce.exists():
        return "disabled"
    return "enforcing" if enforce.read_text().strip() == "1" else "permissive"


@pytest.fixture(scope="session")
def real_libvirtd() -> dict:
    """This machine's running libvirtd (started through its service when it does not answer)."""
    machine_libvirtd_up()
    pids = running_pids("libvirtd")
    if len(pids) != 1:
        pytest.fail("expected one running libvirtd (monolithic), found pids %r" % pids, pytrace=False)
    return {"pid": pids[0], "path": os.readlink("/proc/%d/exe" % pids[0]), "version": daemon_version()}


@pytest.fixture(scope="session")
def os_family() -> str:
    """Ansible's own os_family for this machine (the setup module), which hooks_info must agree with."""
    facts = run_module("ansible.builtin.setup", {"filter": ["ansible_os_family"]})
    assert "ansible_facts" in facts, facts
    return facts["ansible_facts"]["ansible_os_family"]


@pytest.mark.libvirt
@pytest.mark.root  # starts this machine's libvirtd through its service when it does not answer
def test_real_libvirt_on_this_machine(ansible_module, real_libvirtd, os_family):
    result = ansible_module(MODULE, {})
    assert "libvirt" in result, result
    info = result["libvirt"]
    assert (info["installed"], info["version"], info["version_from"]) == \
        (True, real_libvirtd["version"], real_libvirtd["path"])
    # SYSCONFDIR as the daemon reports it: the directory holding the daemon's own libvirtd.conf.
    assert info["sysconfdir_source"] == "daemon"
    assert Path(info["sysconfdir"], "libvirt", "libvirtd.conf").is_file(), info["sysconfdir"]
    assert info["hooks_dir"] == os.path.join(info["sysconfdir"], "libvirt", "hooks")
    assert (info["mode"], info["os_family"]) == ("monolithic", os_family)
    version = tuple(int(x) for x in real_libvirtd["version"].split("."))
    assert info["native_hooks_d"] is (version >= (6, 5, 0))
    daemon = info["daemons"]["libvirtd"]
    assert daemon["service"] == "libvirtd" and daemon["service_file"] and os.path.exists(daemon["service_file"]), daemon
    assert info["init_system"] == init_system_in_use(daemon["service_file"])
    assert daemon["running"] is True and daemon["can_reload"] is True
    assert daemon["pid"] == real_libvirtd["pid"]
    assert info["reload_possible"] is True
    assert info["drivers"]["qemu"]["daemons"] == ["libvirtd"]
    assert info["selinux"]["mode"] == selinux_mode()
