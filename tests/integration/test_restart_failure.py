"""A libvirtd that does not come back after the role restarts it: a clear, named failure.

Runs in a fleet container (Debian 12, Debian's libvirt 9.0 and its sysvinit script) whose
libvirtd.conf is broken on purpose, so the daemon cannot start again once stopped.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, ansible_env

FLEET = REPO / "extensions" / "molecule" / "utils" / "fleet"
HOST = "vh-restart-fail"

pytestmark = pytest.mark.fleet


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(FLEET / "podman"), *args], capture_output=True, text=True, timeout=300, check=check)


@pytest.fixture
def host():
    subprocess.run([str(FLEET / "get-podman-collection.sh")], check=True, capture_output=True, timeout=600)
    up = subprocess.run([str(FLEET / "fleet.sh"), "up", HOST + "=bookworm-libvirt"], capture_output=True, text=True,
                        timeout=1800, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield HOST
    finally:
        subprocess.run([str(FLEET / "fleet.sh"), "down", HOST], capture_output=True, timeout=300, check=False)


def test_daemon_that_does_not_come_back_fails_the_run_clearly(host, tmp_path):
    inventory = {"hypervisors": {"hosts": {host: {
        "ansible_connection": "containers.podman.podman", "ansible_podman_executable": str(FLEET / "podman"),
        "ansible_python_interpreter": "/usr/bin/python3", "ansible_become": False,
        "libvirt_hooks_restart": "restart", "libvirt_hooks_daemon_timeout": 5,
        "libvirt_hooks_scripts": [{"name": "noop", "content": "#!/bin/sh\nexit 0\n"}]}}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    # An invalid value: libvirtd refuses to start with it (it is read at start, not on SIGHUP).
    podman("exec", host, "sh", "-c", "echo 'max_clients = \"many\"' >> /etc/libvirt/libvirtd.conf")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.json"),
                           str(REPO / "playbooks" / "deploy-hooks.yml")], capture_output=True, text=True,
                          env=ansible_env(), timeout=900, check=False)
    assert proc.returncode != 0
    assert "libvirtd on %s did not come back after its restart" % host in proc.stdout, proc.stdout[-4000:]
    # The hooks themselves were deployed completely before the restart was attempted.
    listing = podman("exec", host, "ls", "/etc/libvirt/hooks", "/etc/libvirt/hooks/virthooks/current/scripts/").stdout
    assert "qemu" in listing and "noop" in listing
