"""A real live migration between two real libvirt daemons with hooks deployed on both (marker `libvirt`).

Two private libvirtds on this machine (tests/support/private_libvirt.py): each in its own mount and UTS namespace (its own
/etc/libvirt with its own hooks, /run with its own sockets, /var/lib/libvirt, hostname) and its own `host_uuid`
in libvirtd.conf, both in this machine's network namespace, so QEMU's migration stream goes over tcp on
127.0.0.1. virsh drives the migration from here with qemu+unix URIs to each daemon's socket. The role deploys to
both in one run (Ansible's local connection, each module run inside its host's namespaces); so does
playbooks/drift.yml. What libvirt calls on each side is read from what the hook scripts recorded and from the
dispatcher's log.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import REPO
from tests.support.libvirt_objects import guest_xml
from tests.support.private_libvirt import PrivateHost, inventory

pytestmark = [pytest.mark.libvirt, pytest.mark.slow, pytest.mark.root]  # two private libvirtds in their own namespaces
GUEST = "vhmig-guest"
TAG = "<description>tagged by dst migrate begin</description>"


def recorder(host: PrivateHost, name: str) -> str:
    """One line per script run: host, script, libvirt's arguments. Silent on stdout (migrate/restore read it)."""
    return "#!/bin/sh\necho \"%s %s $1 $2 $3\" >> %s\n" % (host.name, name, host.work / "rec" / "calls")


def scripts_for(host: PrivateHost, destination: bool) -> list:
    common = [{"name": "rec-all", "content": recorder(host, "rec-all"), "operations": ["*"], "on_failure": "ignore"}]
    if not destination:
        return common
    gate = recorder(host, "gate") + ("[ -e %s ] && { echo 'the gate is closed on %s' >&2; exit 1; }\nexit 0\n"
                                     % (host.work / "close-gate", host.name))
    # migrate begin: the XML libvirt reads back from the hook; this script adds a description to it.
    tag = ("#!/bin/sh\n%s\nexec sed 's|</name>|</name>%s|'\n"
           % (recorder(host, "tag-xml").split("\n", 1)[1].strip(), TAG))
    return common + [{"name": "gate", "content": gate, "operations": ["prepare"], "suboperations": ["begin"], "order": 10},
                     {"name": "tag-xml", "content": tag, "operations": ["migrate"], "suboperations": ["begin"]}]


def playbook(work: Path, hosts: list, play: str, *extra: str, **hostvars) -> subprocess.CompletedProcess:
    inv = inventory(hosts, sys.executable)
    for host in hosts:
        inv["hypervisors"]["hosts"][host.name].update(hostvars.get(host.name, {}))
    (work / "inventory.json").write_text(json.dumps(inv))
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(work / "inventory.json"), play,
                           *extra], capture_output=True, text=True, env=ansible_env(), timeout=600, cwd=str(REPO),
                          check=False)


def recorded(host: PrivateHost) -> list:
    path = host.work / "rec" / "calls"
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("")
    return [tuple(line.split(" ", 2)[1:]) for line in lines]


@pytest.fixture
def pair(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("needs root (two private libvirtds)")
    for tool in ("unshare", "nsenter", "qemu-system-x86_64", "/usr/sbin/libvirtd", "/usr/sbin/virtlogd"):
        if not shutil.which(tool):
            pytest.fail("%s is missing: run tests/setup/prepare-host.sh (tests/setup/debian-packages.txt)" % tool)
    hosts = []
    try:
        for name in ("vhmig-src", "vhmig-dst"):
            hosts.append(PrivateHost(tmp_path / name, name, str(uuid.uuid4()), netns=False))
        yield hosts
    finally:
        for host in reversed(hosts):
            host.close()


def virsh(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["virsh", "-q"] + list(args), capture_output=True, text=True, timeout=180, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("virsh %s failed (%d): %s%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


def migrate(src: PrivateHost, dst: PrivateHost, port: int, check=True) -> subprocess.CompletedProcess:
    return virsh("-c", src.uri, "migrate", "--live", GUEST, dst.uri, "--migrateuri", "tcp://127.0.0.1:%d" % port,
                 check=check)


def state(host: PrivateHost) -> str:
    return virsh("-c", host.uri, "domstate", GUEST, check=False).stdout.strip()


def test_live_migration_there_and_back_runs_the_exact_hooks_on_each_side_and_what_drift_named(pair, tmp_path):
    src, dst = pair
    deployed = playbook(tmp_path, [src, dst], str(REPO / "playbooks" / "deploy_hooks.yml"),
                        **{src.name: {"libvirt_hooks_scripts": scripts_for(src, False)},
                           dst.name: {"libvirt_hooks_scripts": scripts_for(dst, True)}})
    assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-2000:]
    for host in pair:
        host.start_daemons()
    src.define(guest_xml(GUEST))
    virsh("-c", src.uri, "start", GUEST)
    assert recorded(src) == [("rec-all", "%s prepare begin" % GUEST), ("rec-all", "%s start begin" % GUEST),
                             ("rec-all", "%s started begin" % GUEST)]

    # The drift check first: the guest is defined on the source only; drift works it out on both peers.
    out = tmp_path / "drift"
    drift = playbook(tmp_path, [src, dst], str(REPO / "playbooks" / "drift.yml"), "-e", "libvirt_hooks_report_dir=%s" % out)
    assert drift.returncode != 0 and "Peers differ in hypervisors" in drift.stdout, drift.stdout[-4000:]
    group = json.loads((out / "drift.json").read_text())["groups"][0]
    named = group["guests"][GUEST]
    assert named["prepare begin"] == {src.name: ["rec-all"], dst.name: ["gate", "rec-all"]}
    assert named["migrate begin"] == {src.name: ["rec-all"], dst.name: ["rec-all", "tag-xml"]}
    assert [d["guest"] for d in group["guest_differences"]] == [GUEST, GUEST]

    # A script on the destination failing prepare begin aborts the migration; the guest runs on at the source.
    qemu = src.qemu_pid(GUEST)
    (dst.work / "close-gate").touch()
    refused = migrate(src, dst, 49152, check=False)
    assert refused.returncode != 0
    assert "virthooks: qemu %s prepare begin: script 'gate' failed with exit status 1: the gate is closed on %s" \
        % (GUEST, dst.name) in refused.stderr, refused.stderr
    assert state(src) == "running" and src.qemu_pid(GUEST) == qemu and Path("/proc", str(qemu)).exists()
    assert virsh("-c", dst.uri, "list", "--all", "--name").stdout.split() == []
    # On the destination: migrate begin ran (both scripts), then the gate (order 10) failed prepare begin, so
    # rec-all did not run there; libvirt then cleaned up the domain it had prepared: stopped and release.
    assert recorded(dst) == [("rec-all", "%s migrate begin" % GUEST), ("tag-xml", "%s migrate begin" % GUEST),
                             ("gate", "%s prepare begin" % GUEST), ("rec-all", "%s stopped end" % GUEST),
                             ("rec-all", "%s release end" % GUEST)]
    assert recorded(src) == []
    (dst.work / "close-gate").unlink()

    # There: the destination runs migrate begin (its XML out is used), prepare, start, started; the source
    # stopped and release. The scripts that ran on the destination are those drift named for it.
    migrate(src, dst, 49153)
    assert state(dst) == "running" and state(src) in ("shut off", "")
    assert TAG in virsh("-c", dst.uri, "dumpxml", GUEST).stdout
    ran = recorded(dst)
    assert ran == [("rec-all", "%s migrate begin" % GUEST), ("tag-xml", "%s migrate begin" % GUEST),
                   ("gate", "%s prepare begin" % GUEST), ("rec-all", "%s prepare begin" % GUEST),
                   ("rec-all", "%s start begin" % GUEST), ("rec-all", "%s started begin" % GUEST)]
    for event in ("prepare begin", "migrate begin"):
        assert [name for name, args in ran if args == "%s %s" % (GUEST, event)] == named[event][dst.name]
    assert recorded(src) == [("rec-all", "%s stopped end" % GUEST), ("rec-all", "%s release end" % GUEST)]

    # And back: the roles swap, the source's own (fewer) scripts run there.
    migrate(dst, src, 49154)
    assert state(src) == "running"
    assert recorded(src) == [("rec-all", "%s migrate begin" % GUEST), ("rec-all", "%s prepare begin" % GUEST),
                             ("rec-all", "%s start begin" % GUEST), ("rec-all", "%s started begin" % GUEST)]
    assert recorded(dst) == [("rec-all", "%s stopped end" % GUEST), ("rec-all", "%s release end" % GUEST)]
    # Each side's dispatcher logged every call it ran, with its generation.
    for host in pair:
        records = [json.loads(line) for line in host.view(host.work / "log" / "virthooks.jsonl").read_text().splitlines()]
        assert records and all(r["result"] in ("ok", "failed") and r.get("generation") for r in records)
