"""libvirt's modular daemons for real: the source-built libvirt 9.0 run as virtqemud + virtnetworkd
(+ virtlogd), no libvirtd, in a fleet container (`fleet.sh up NAME=srcbuild-modular`: the srcbuild image,
no image of its own).

The role is run three times, adding one entry point each time (`daemon`, then `qemu`, then `network`);
each run must reload (SIGHUP by pid: a source build has no service manager) exactly the daemons that host
that driver, keep their pids, and the daemon hook must tell who called it. Then a real guest and a real
network fire their events into the scripts, each from its own daemon.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, ansible_env

FLEET = REPO / "extensions" / "molecule" / "utils" / "fleet"
HOST = "vh-modular"
RECORDS = "/var/tmp/vh-records.jsonl"
VIRSH = "/usr/local/bin/virsh"
GUEST, NET = "vh-mod-guest", "vh-mod-net"

pytestmark = pytest.mark.fleet

# Records argv, stdin and which libvirt daemon called the hook (first ancestor named libvirtd or virt*).
RECORDER = """#!/usr/bin/python3
import json, os, sys
def comm(pid):
    with open("/proc/%%d/comm" %% pid) as f:
        return f.read().strip()
def parent(pid):
    with open("/proc/%%d/stat" %% pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
pid, caller = os.getppid(), None
while pid > 1:
    name = comm(pid)
    if name == "libvirtd" or name.startswith("virt"):
        caller = name
        break
    pid = parent(pid)
rec = {"script": os.environ.get("VIRTHOOKS_SCRIPT"), "argv": sys.argv[1:], "caller": caller,
       "stdin": sys.stdin.read()[:4000]}
with open("%s", "a") as f:
    f.write(json.dumps(rec) + "\\n")
""" % RECORDS

GUEST_XML = ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
             "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><memballoon model='none'/></devices>"
             "</domain>" % GUEST)
NET_XML = "<network><name>%s</name><bridge name='vhmod0'/></network>" % NET


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(FLEET / "podman"), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, "podman %s: %s%s" % (" ".join(args), proc.stdout, proc.stderr)
    return proc


def in_host(cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return podman("exec", HOST, "/bin/sh", "-c", cmd, check=check)


def records() -> list:
    out = in_host("cat %s 2>/dev/null || true" % RECORDS).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def settle(start: int, count: int, timeout: float = 30) -> list:
    """Records after index `start` once at least `count` arrived and nothing more came for 1 s."""
    end = time.monotonic() + timeout
    seen, quiet_since, now = -1, time.monotonic(), []
    while time.monotonic() < end:
        now = records()[start:]
        if len(now) != seen:
            seen, quiet_since = len(now), time.monotonic()
        elif len(now) >= count and time.monotonic() - quiet_since > 1.0:
            break
        time.sleep(0.2)
    return now


def pids() -> dict:
    return {d: int(in_host("cat /var/local/run/%s.pid" % d).stdout.strip()) for d in ("virtqemud", "virtnetworkd")}


def deploy(tmp_path: Path, scripts: list) -> str:
    inventory = {"hypervisors": {"hosts": {HOST: {
        "ansible_connection": "containers.podman.podman", "ansible_podman_executable": str(FLEET / "podman"),
        "ansible_python_interpreter": "/usr/bin/python3", "ansible_become": False,
        "libvirt_hooks_scripts": scripts}}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.json"),
                           str(REPO / "playbooks" / "deploy-hooks.yml")], capture_output=True, text=True,
                          env=ansible_env(), timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc.stdout


def sighup_sent_to(output: str) -> set:
    """The daemons the role sent SIGHUP to (one task header per daemon it reloaded)."""
    head = "TASK [virthooks.libvirt.hooks : Send SIGHUP, no service manager knows this daemon | "
    return {line[len(head):].split("]")[0] for line in output.splitlines() if line.startswith(head)}


def hooks_info(tmp_path: Path) -> dict:
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="minimal")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible"), "all", "-i", HOST + ",",
                           "-c", "containers.podman.podman", "-e", "ansible_podman_executable=%s" % (FLEET / "podman"),
                           "-e", "ansible_python_interpreter=/usr/bin/python3", "-m", "virthooks.libvirt.hooks_info"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout[proc.stdout.index("{"):])["libvirt"]


@pytest.fixture
def host():
    subprocess.run([str(FLEET / "get-podman-collection.sh")], check=True, capture_output=True, timeout=600)
    up = subprocess.run([str(FLEET / "fleet.sh"), "up", HOST + "=srcbuild-modular"], capture_output=True, text=True,
                        timeout=1800, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield HOST
    finally:
        subprocess.run([str(FLEET / "fleet.sh"), "down", HOST], capture_output=True, timeout=300, check=False)


def test_modular_daemons_detected_reloaded_one_by_one_and_firing(host, tmp_path):
    info = hooks_info(tmp_path)
    assert info["mode"] == "modular" and info["sysconfdir"] == "/usr/local/etc", info
    assert "libvirtd" not in info["daemons"]
    for daemon, driver in (("virtqemud", "qemu"), ("virtnetworkd", "network")):
        assert info["daemons"][daemon]["running"] and info["daemons"][daemon]["can_reload"], info["daemons"]
        assert info["daemons"][daemon]["drivers"] == ["daemon", driver]
        assert info["drivers"][driver]["daemons"] == [daemon]
    assert {"virtqemud", "virtnetworkd"} <= set(info["drivers"]["daemon"]["daemons"])
    before = pids()

    recorder = {"content": RECORDER}
    scripts = [dict(recorder, name="daemon-any", driver="daemon"),
               dict(recorder, name="daemon-virtqemud", driver="daemon", daemons=["virtqemud"])]
    # 1. The daemon entry point: every running daemon runs it, so both are reloaded.
    mark = len(records())
    assert sighup_sent_to(deploy(tmp_path, scripts)) == {"virtqemud", "virtnetworkd"}
    first = settle(mark, 0, timeout=3)

    # 2. A qemu entry point: virtqemud only; its reload fires the daemon hook, from virtqemud.
    scripts.append(dict(recorder, name="rec-qemu", driver="qemu"))
    mark = len(records())
    assert sighup_sent_to(deploy(tmp_path, scripts)) == {"virtqemud"}
    seen = [(r["script"], tuple(r["argv"]), r["caller"]) for r in settle(mark, 2)]
    assert sorted(seen) == [("daemon-any", ("-", "reload", "begin", "SIGHUP"), "virtqemud"),
                            ("daemon-virtqemud", ("-", "reload", "begin", "SIGHUP"), "virtqemud")], (seen, first)

    # 3. A network entry point: virtnetworkd only; the rule limited to virtqemud does not run for it.
    scripts.append(dict(recorder, name="rec-network", driver="network"))
    mark = len(records())
    assert sighup_sent_to(deploy(tmp_path, scripts)) == {"virtnetworkd"}
    seen = [(r["script"], tuple(r["argv"]), r["caller"]) for r in settle(mark, 1)]
    assert seen == [("daemon-any", ("-", "reload", "begin", "SIGHUP"), "virtnetworkd")], seen
    assert pids() == before, "a reload must keep the daemons' pids"

    # 4. A real guest on virtqemud, a real network on virtnetworkd.
    in_host("cat >/tmp/g.xml <<'EOF'\n%s\nEOF\ncat >/tmp/n.xml <<'EOF'\n%s\nEOF" % (GUEST_XML, NET_XML))
    mark = len(records())
    in_host("%s -c qemu:///system create /tmp/g.xml && %s -c qemu:///system destroy %s" % (VIRSH, VIRSH, GUEST))
    seen = [(r["script"], tuple(r["argv"]), r["caller"]) for r in settle(mark, 5)]
    assert seen == [("rec-qemu", (GUEST, op, sub, "-"), "virtqemud") for op, sub in
                    (("prepare", "begin"), ("start", "begin"), ("started", "begin"), ("stopped", "end"),
                     ("release", "end"))], seen
    mark = len(records())
    in_host("%s -c network:///system net-create /tmp/n.xml && %s -c network:///system net-destroy %s"
            % (VIRSH, VIRSH, NET))
    got = settle(mark, 3)
    seen = [(r["script"], tuple(r["argv"]), r["caller"]) for r in got]
    assert seen == [("rec-network", (NET, op, sub, "-"), "virtnetworkd") for op, sub in
                    (("start", "begin"), ("started", "begin"), ("stopped", "end"))], seen
    assert all("<hookData>" in r["stdin"] and "<name>%s</name>" % NET in r["stdin"] for r in got), got[0]["stdin"]
    assert pids() == before
