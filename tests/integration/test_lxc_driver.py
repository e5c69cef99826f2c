"""libvirt's LXC driver on this machine's real libvirtd (Debian's libvirt-daemon-driver-lxc, from prepare-host.sh).

The role deploys two `lxc` scripts to the local host (a recorder of argv, stdin and environment, and a
`prepare` rule that refuses one container); adding the `lxc` entry point makes it reload libvirtd
(SIGHUP, same pid). Then real containers (`/bin/sh` as init, the host's root filesystem, no disk) are
started and destroyed with `virsh -c lxc:///system`, and what the scripts saw is compared with libvirt's
event sequence. Everything named vh-lxc-* and every file of ours is removed again at the end.

This machine has hybrid cgroups (v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified).
libvirt counts cgroup v2 as in use as soon as that mount lists a controller (here `hugetlb`, the only
one left on v2), and libvirt_lxc then fails every start with "Unable to create directory
/sys/fs/cgroup/unified". tests/setup/prepare-host.sh mounts such controllers as v1 hierarchies (what
systemd does on a v1 host), which leaves cgroup2 without controllers and libvirt on v1 only.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import REPO

pytestmark = [pytest.mark.libvirt, pytest.mark.root]  # this machine's libvirtd, /etc/libvirt/hooks

URI = "lxc:///system"
STATE = Path("/var/tmp/virthooks-lxc")
RECORDS = STATE / "records.jsonl"
HOOKS = Path("/etc/libvirt/hooks")
OK, DENY = "vh-lxc-ok", "vh-lxc-deny"
DENY_MESSAGE = "containers named vh-lxc-deny are refused by policy"

RECORDER = """#!/usr/bin/python3
import json, os, sys
rec = {"argv": sys.argv[1:], "stdin": sys.stdin.read(), "env": dict(os.environ)}
with open("%s", "a") as f:
    f.write(json.dumps(rec) + "\\n")
""" % RECORDS


def container_xml(name: str) -> str:
    """A container sharing the host's root filesystem whose init is /bin/sh (waits, then exits)."""
    return ("<domain type='lxc'><name>%s</name><memory unit='MiB'>64</memory>"
            "<os><type>exe</type><init>/bin/sh</init><initarg>-c</initarg><initarg>exec sleep 600</initarg></os>"
            "<devices><console type='pty'/></devices></domain>" % name)


def sh(cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=timeout, check=False)


def virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, "virsh %s: %s%s" % (" ".join(args), proc.stdout, proc.stderr)
    return proc


def records() -> list:
    if not RECORDS.exists():
        return []
    return [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]


def wait_records(start: int, count: int, timeout: float = 30) -> list:
    """The records after index `start`, once `count` arrived and nothing more came for 0.5 s."""
    end = time.monotonic() + timeout
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < end:
        now = records()[start:]
        if len(now) != seen:
            seen, quiet_since = len(now), time.monotonic()
        elif len(now) >= count and time.monotonic() - quiet_since > 0.5:
            return now
        time.sleep(0.1)
    return records()[start:]


def daemon_version() -> tuple:
    """The running daemon's libvirt version, as it answers over the API."""
    out = virsh("version", "--daemon").stdout
    found = re.search(r"Running against daemon: (\d+)\.(\d+)\.(\d+)", out)
    assert found, "virsh version --daemon did not name the daemon's version:\n" + out
    return tuple(int(x) for x in found.groups())


def libvirtd_pid() -> int:
    return int(Path("/run/libvirtd.pid").read_text().strip())


def deploy(tmp_path: Path, scripts: list, purge: bool = False) -> subprocess.CompletedProcess:
    inventory = {"hypervisors": {"hosts": {"vh-local": {
        "ansible_connection": "local", "ansible_host": "localhost", "ansible_become": False,
        "ansible_python_interpreter": sys.executable,
        "libvirt_hooks_scripts": scripts, "libvirt_hooks_purge": purge,
        "libvirt_hooks_log": {"file": str(STATE / "dispatch.jsonl")}}}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.json"),
                           str(REPO / "playbooks" / "deploy_hooks.yml")], capture_output=True, text=True,
                          env=ansible_env(), timeout=600, check=False)


def remove_containers() -> None:
    for name in (OK, DENY):
        virsh("destroy", name, check=False)
        virsh("undefine", name, check=False)


@pytest.fixture
def lxc_libvirtd(tmp_path):
    """The local libvirtd with the LXC driver answering, no hooks of anyone else for lxc, no vh-lxc-*."""
    if os.geteuid() != 0:
        pytest.fail("the LXC driver test needs root (libvirtd, /etc/libvirt/hooks)")
    prep = subprocess.run([str(REPO / "tests" / "setup" / "prepare-host.sh")], capture_output=True, text=True,
                          timeout=1200, check=False)
    assert prep.returncode == 0, prep.stdout + prep.stderr
    start = sh("service virtlogd start >/dev/null; service libvirtd start >/dev/null; i=0;"
               " until virsh -c qemu:///system version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 300 ] || exit 1;"
               " sleep 0.1; done; virsh -c %s version" % URI)
    assert start.returncode == 0 and "LXC" in start.stdout, "no LXC driver in the local libvirtd:\n%s%s" % (
        start.stdout, start.stderr)
    lxc_hook = HOOKS / "lxc"
    assert not lxc_hook.exists() or b"virthooks" in lxc_hook.read_bytes(), "a foreign %s is in the way" % lxc_hook
    remove_containers()
    sh("rm -rf %s && mkdir -p %s" % (STATE, STATE))
    try:
        yield
    finally:
        remove_containers()
        purge = deploy(tmp_path, [], purge=True)
        sh("rm -rf %s" % STATE)
        assert purge.returncode == 0, purge.stdout[-3000:]
        assert not lxc_hook.exists(), "the purge left %s" % lxc_hook


def test_lxc_container_events_reach_the_lxc_scripts(lxc_libvirtd, tmp_path):
    scripts = [
        {"name": "record-lxc", "driver": "lxc", "content": RECORDER},
        {"name": "refuse-lxc", "driver": "lxc", "objects": [DENY], "operations": ["prepare"], "order": 10,
         "content": "#!/bin/sh\necho '%s' >&2\nexit 1\n" % DENY_MESSAGE},
    ]
    pid_before = libvirtd_pid()
    run = deploy(tmp_path, scripts)
    assert run.returncode == 0, run.stdout[-4000:]
    # The new lxc entry point made the role reload libvirtd (SIGHUP through its init script): same process.
    assert "Reload through the service manager so it rescans its hooks | libvirtd" in run.stdout, run.stdout[-4000:]
    assert libvirtd_pid() == pid_before
    assert "virthooks" in (HOOKS / "lxc").read_text()

    for name in (OK, DENY):
        (tmp_path / (name + ".xml")).write_text(container_xml(name))
        virsh("define", str(tmp_path / (name + ".xml")))

    # A container that starts, runs /bin/sh as its init, and is destroyed.
    mark = len(records())
    virsh("start", OK)
    assert virsh("domstate", OK).stdout.strip() == "running"
    # The container's init (/bin/sh, which exec'd sleep) runs, with libvirt's container environment.
    inits = sh("for p in $(pgrep -x sleep); do tr '\\0' '\\n' </proc/$p/environ | grep -qx LIBVIRT_LXC_NAME=%s"
               " && echo $p; done" % OK).stdout.split()
    assert len(inits) == 1, "the init of %s is not running: %r" % (OK, inits)
    virsh("destroy", OK)
    seen = wait_records(mark, 5)
    events = [tuple(r["argv"]) for r in seen]
    # release end gets the shutoff reason since libvirt 10.5.0 ("-" before): this machine's daemon decides.
    release_extra = "destroyed" if daemon_version() >= (10, 5, 0) else "-"
    assert events == [(OK, "prepare", "begin", "-"), (OK, "start", "begin", "-"), (OK, "started", "begin", "-"),
                      (OK, "stopped", "end", "-"), (OK, "release", "end", release_extra)], events
    for rec in seen:
        dom = ET.fromstring(rec["stdin"])
        assert dom.tag == "domain" and dom.get("type") == "lxc" and dom.findtext("name") == OK, rec["stdin"][:300]
        assert dom.findtext("os/init") == "/bin/sh"
        env = rec["env"]
        assert env["LC_ALL"] == "C"
        assert env["LIBVIRT_HOOK_DRIVER"] == "lxc" and env["LIBVIRT_HOOK_OBJECT"] == OK
        assert env["LIBVIRT_HOOK_OPERATION"] == rec["argv"][1]
        assert env["LIBVIRT_HOOK_SUBOPERATION"] == rec["argv"][2] and env["LIBVIRT_HOOK_EXTRA"] == rec["argv"][3]
        assert env["VIRTHOOKS_SCRIPT"] == "record-lxc"
    # libvirt gives a running container's live XML from `started` on (with its id).
    assert ET.fromstring(seen[2]["stdin"]).get("id"), seen[2]["stdin"][:300]

    # A failing prepare aborts the start: virsh shows our message, the container stays off.
    mark = len(records())
    denied = virsh("start", DENY, check=False)
    assert denied.returncode != 0
    assert DENY_MESSAGE in denied.stderr and "script 'refuse-lxc' failed with exit status 1" in denied.stderr, \
        denied.stderr
    assert virsh("domstate", DENY).stdout.strip() == "shut off"
    late = [tuple(r["argv"]) for r in wait_records(mark, 0, timeout=3)]
    # refuse-lxc runs first (order 10) and aborts prepare: the recorder never saw a prepare, start or started.
    assert not [e for e in late if e[1] in ("prepare", "start", "started")], late
