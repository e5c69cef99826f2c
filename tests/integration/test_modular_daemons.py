"""libvirt's modular daemons for real: the source-built libvirt 9.0 run as virtqemud + virtnetworkd
(+ virtlogd), no libvirtd, in a fleet container (`fleet.sh up NAME=srcbuild-modular`: the srcbuild image,
no image of its own).

The role is run three times, adding one entry point each time (`daemon`, then `qemu`, then `network`);
each run must reload (SIGHUP by pid: a source build has no service manager) exactly the daemons that host
that driver, keep their pids, and the daemon hook must tell who called it. Then a real guest and a real
network fire their events into the scripts, each from its own daemon.
"""
from __future__ import annotations

from functools import partial

import pytest

from tests.support import fleet_host as fh

HOST = "vh-modular"
VIRSH = "/usr/local/bin/virsh"
GUEST, NET = "vh-mod-guest", "vh-mod-net"

pytestmark = [pytest.mark.podman, pytest.mark.root]  # the fleet: rootful podman

GUEST_XML = ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
             "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><memballoon model='none'/></devices>"
             "</domain>" % GUEST)
NET_XML = "<network><name>%s</name><bridge name='vhmod0'/></network>" % NET

in_host = partial(fh.in_host, HOST)
records = partial(fh.records, HOST)


def settle(start: int, count: int, timeout: float = 30) -> list:
    return fh.events(fh.settle(HOST, start, count, timeout))


def pids() -> dict:
    return {d: int(in_host("cat /var/local/run/%s.pid" % d).stdout.strip()) for d in ("virtqemud", "virtnetworkd")}


def deploy(tmp_path, scripts: list) -> set:
    """Run the role; the daemons it sent SIGHUP to (a source build has no service manager)."""
    out = fh.deploy(HOST, tmp_path, scripts)
    return {d for d in ("virtqemud", "virtnetworkd", "virtproxyd", "virtnwfilterd")
            if fh.task_results(out, "Send SIGHUP, no service manager knows this daemon | " + d) == ["changed: [%s]" % HOST]}


@pytest.fixture
def host():
    fh.fleet_up(HOST, "srcbuild-modular")
    try:
        yield HOST
    finally:
        fh.fleet_down(HOST)


def test_modular_daemons_detected_reloaded_one_by_one_and_firing(host, tmp_path):
    info = fh.hooks_info(HOST)
    assert info["mode"] == "modular" and info["sysconfdir"] == "/usr/local/etc", info
    assert "libvirtd" not in info["daemons"]
    for daemon, driver in (("virtqemud", "qemu"), ("virtnetworkd", "network")):
        assert info["daemons"][daemon]["running"] and info["daemons"][daemon]["can_reload"], info["daemons"]
        assert info["daemons"][daemon]["drivers"] == ["daemon", driver]
        assert info["drivers"][driver]["daemons"] == [daemon]
    assert {"virtqemud", "virtnetworkd"} <= set(info["drivers"]["daemon"]["daemons"])
    before = pids()

    recorder = {"content": fh.RECORDER}
    scripts = [dict(recorder, name="daemon-any", driver="daemon"),
               dict(recorder, name="daemon-virtqemud", driver="daemon", daemons=["virtqemud"])]
    # 1. The daemon entry point: every running daemon runs it, so both are reloaded, and the SIGHUP that
    # makes each rescan already runs the new hook, from each daemon; the virtqemud-only rule only in virtqemud.
    reload = ("-", "reload", "begin", "SIGHUP")
    mark = len(records())
    assert deploy(tmp_path, scripts) == {"virtqemud", "virtnetworkd"}
    seen = settle(mark, 3)
    assert sorted(seen) == [("daemon-any", reload, "virtnetworkd"), ("daemon-any", reload, "virtqemud"),
                            ("daemon-virtqemud", reload, "virtqemud")], seen

    # 2. A qemu entry point: virtqemud only; its reload fires the daemon hook, from virtqemud.
    scripts.append(dict(recorder, name="rec-qemu", driver="qemu"))
    mark = len(records())
    assert deploy(tmp_path, scripts) == {"virtqemud"}
    seen = settle(mark, 2)
    assert sorted(seen) == [("daemon-any", reload, "virtqemud"), ("daemon-virtqemud", reload, "virtqemud")], seen

    # 3. A network entry point: virtnetworkd only; the rule limited to virtqemud does not run for it.
    scripts.append(dict(recorder, name="rec-network", driver="network"))
    mark = len(records())
    assert deploy(tmp_path, scripts) == {"virtnetworkd"}
    seen = settle(mark, 1)
    assert seen == [("daemon-any", reload, "virtnetworkd")], seen
    assert pids() == before, "a reload must keep the daemons' pids"

    # 4. A real guest on virtqemud, a real network on virtnetworkd.
    in_host("cat >/tmp/g.xml <<'EOF'\n%s\nEOF\ncat >/tmp/n.xml <<'EOF'\n%s\nEOF" % (GUEST_XML, NET_XML))
    mark = len(records())
    in_host("%s -c qemu:///system create /tmp/g.xml && %s -c qemu:///system destroy %s" % (VIRSH, VIRSH, GUEST))
    seen = settle(mark, 5)
    assert seen == [("rec-qemu", (GUEST, op, sub, "-"), "virtqemud") for op, sub in
                    (("prepare", "begin"), ("start", "begin"), ("started", "begin"), ("stopped", "end"),
                     ("release", "end"))], seen
    mark = len(records())
    in_host("%s -c network:///system net-create /tmp/n.xml && %s -c network:///system net-destroy %s"
            % (VIRSH, VIRSH, NET))
    got = fh.settle(HOST, mark, 3)
    seen = fh.events(got)
    assert seen == [("rec-network", (NET, op, sub, "-"), "virtnetworkd") for op, sub in
                    (("start", "begin"), ("started", "begin"), ("stopped", "end"))], seen
    assert all("<hookData>" in r["stdin"] and "<name>%s</name>" % NET in r["stdin"] for r in got), got[0]["stdin"]
    assert pids() == before
