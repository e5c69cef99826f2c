"""A libvirtd that does not come back after the role restarts it, or hangs after its reload: a clear,
named failure in bounded time, and (when the run made a new generation) the host rolled back.

Runs in fleet containers (Debian 12, Debian's libvirt 9.0 and its sysvinit script): one whose
libvirtd.conf is broken on purpose, so the daemon cannot start again once stopped; one whose
libvirtd is stopped with SIGSTOP, so it accepts connections and never answers (as a deadlocked one).
"""
from __future__ import annotations

import time

import pytest

from tests.support import fleet_host as fh
from tests.support.fleet_host import podman

HOST = "vh-restart-fail"
HUNG = "vh-reload-hang"
NOOP = {"name": "noop", "content": "#!/bin/sh\nexit 0\n"}

pytestmark = [pytest.mark.podman, pytest.mark.root]  # the fleet: rootful podman


def fleet_host(name: str):
    fh.fleet_up(name, "bookworm-libvirt")
    try:
        yield name
    finally:
        fh.fleet_down(name)


@pytest.fixture
def host():
    yield from fleet_host(HOST)


@pytest.fixture
def hung_host():
    yield from fleet_host(HUNG)


def test_daemon_that_does_not_come_back_fails_the_run_clearly(host, tmp_path):
    # An invalid value: libvirtd refuses to start with it (it is read at start, not on SIGHUP).
    podman("exec", host, "sh", "-c", "echo 'max_clients = \"many\"' >> /etc/libvirt/libvirtd.conf")
    proc = fh.deploy_run(host, tmp_path, [NOOP], libvirt_hooks_restart="restart", libvirt_hooks_daemon_timeout=5)
    assert proc.returncode != 0
    assert "libvirtd on %s did not come back after its restart" % host in proc.stdout, proc.stdout[-4000:]
    # The hooks themselves were deployed completely before the restart was attempted.
    listing = podman("exec", host, "ls", "/etc/libvirt/hooks", "/etc/libvirt/hooks/virthooks/current/scripts/").stdout
    assert "qemu" in listing and "noop" in listing
    # This run made the host's first generation: there is nothing to go back to, and it says so.
    assert "Not rolled back: this run made no new generation to undo" in proc.stdout, proc.stdout[-4000:]


def current_generation(host: str) -> str:
    return podman("exec", host, "readlink", "/etc/libvirt/hooks/virthooks/current").stdout.strip().rsplit("/", 1)[-1]


def test_a_daemon_that_hangs_after_its_reload_fails_the_run_in_bounded_time_and_is_rolled_back(hung_host, tmp_path):
    first = fh.deploy_run(hung_host, tmp_path, [NOOP], libvirt_hooks_daemon_timeout=8)
    assert first.returncode == 0, first.stdout[-4000:]
    good = current_generation(hung_host)
    pid = podman("exec", hung_host, "cat", "/run/libvirtd.pid").stdout.strip()
    podman("exec", hung_host, "kill", "-STOP", pid)
    try:
        # A network hook adds the network entry point: libvirtd must rescan, so the role reloads it.
        began = time.monotonic()
        second = fh.deploy_run(hung_host, tmp_path, [NOOP, dict(NOOP, name="net", driver="network")],
                               libvirt_hooks_daemon_timeout=8)
        took = time.monotonic() - began
        assert second.returncode != 0
        out = second.stdout
        assert "libvirtd on %s does not answer 8 s after its reload" % hung_host in out, out[-4000:]
        assert "accepts connections but does not answer" in out, out[-4000:]
        assert "Rolled back to generation %s" % good in out, out[-4000:]
        # The rollback removed the entry point again and reloaded once more, which a hung daemon cannot take.
        assert "did not take the rolled-back entry points either" in out, out[-4000:]
        assert current_generation(hung_host) == good
        listing = podman("exec", hung_host, "ls", "/etc/libvirt/hooks").stdout.split()
        assert "qemu" in listing and "network" not in listing
        # Two waits of 8 s (the reload, the rollback's reload), each attempt cut at 5 s: bounded, not hung.
        assert took < 120, took
    finally:
        podman("exec", hung_host, "kill", "-CONT", pid, check=False)
    answer = podman("exec", hung_host, "timeout", "20", "virsh", "-c", "qemu:///system", "uri", check=False)
    assert answer.returncode == 0 and "qemu:///system" in answer.stdout, answer
