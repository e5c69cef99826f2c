"""The library of ready-made hooks on a real libvirtd with real guests (marker `libvirt`).

This machine's libvirtd and its /etc/libvirt/hooks are shared with other test runs (they deploy their own
config.json there), so this test runs a libvirtd of its own: Debian's libvirtd and virtlogd in a private
mount and network namespace (`unshare -m -n`), with /etc/libvirt, /var/lib|log|cache/libvirt and /run bound
to tmp_path, hugetlbfs mounted for it alone. The role deploys the library into that /etc/libvirt/hooks
(through `nsenter`, before the daemon starts, so no reload is needed); real guests then fire the hooks.
The host's firewall is untouched (the NAT network, libvirt's iptables rules and our nft table live in the
namespace); nr_hugepages and the cgroup v1 cpuset hierarchy are the host's own (kernel-wide), given back.
No passthrough hardware here: vfio_bind is deployed and listed, its logic is tested on a fake sysfs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import REPO
from tests.support.libvirt_objects import (guest_xml, nat_network_xml, nft_table, nr_hugepages, snapshots,
                                           start_webhook, webhook_posts)

pytestmark = [pytest.mark.libvirt, pytest.mark.root]  # a private libvirtd, nr_hugepages, cgroups
CPUSET = Path("/sys/fs/cgroup/cpuset")
NET_XML = nat_network_xml("vhlib-net", "vhlibbr0", "192.168.150.1")

SETUP = r"""
set -e
W=$1
[ -n "$W" ] && [ -d "$W/etc" ] || { echo "no work dir" >&2; exit 1; }
mount --make-rprivate /
# A hugetlbfs the host has (another test's, under /run say) would be hidden by this /run and still be
# listed in the mount table, where libvirtd stops on it: unmount the copies in this namespace only.
awk '$3 == "hugetlbfs" {print $2}' /proc/self/mounts | while read -r m; do umount -l "$m"; done
mount -t tmpfs tmpfs /run
mkdir -p /run/libvirt /run/lock
cp -a /etc/libvirt/. "$W/etc/"
rm -rf "$W/etc/hooks"/* "$W/etc/qemu/networks"/*.xml "$W/etc/qemu/networks/autostart"/* "$W/etc/qemu"/*.xml
printf 'user = "root"\ngroup = "root"\nsecurity_driver = "none"\nhugetlbfs_mount = "%s/hugepages"\n' "$W" >>"$W/etc/qemu.conf"
mount --bind "$W/etc" /etc/libvirt
for d in lib log cache; do mount --bind "$W/var-$d" /var/$d/libvirt; done
mkdir -p /var/lib/libvirt/dnsmasq /var/lib/libvirt/qemu /var/log/libvirt/qemu
mount -t hugetlbfs hugetlbfs "$W/hugepages"
ip link set lo up
echo ready
exec sleep 3600
"""


class PrivateLibvirt:
    def __init__(self, work: Path):
        self.work = work
        for d in ("etc", "var-lib", "var-log", "var-cache", "hugepages", "images"):
            (work / d).mkdir()
        self.holder = subprocess.Popen(["unshare", "-m", "-n", "sh", "-c", SETUP, "sh", str(work)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError("the private namespace could not be set up: %s" % self.holder.stderr.read())
        self.enter = ["nsenter", "-t", str(self.holder.pid), "-m", "-n"]

    def run(self, *cmd, check=True, timeout=180, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.enter + list(cmd), capture_output=True, text=True, timeout=timeout, check=False, **kw)
        if check and proc.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (" ".join(cmd), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def virsh(self, *args, check=True) -> subprocess.CompletedProcess:
        return self.run("virsh", "-q", "-c", "qemu:///system", *args, check=check)

    def define(self, kind: str, xml: str) -> None:
        path = self.work / ("def-%d.xml" % time.monotonic_ns())
        path.write_text(xml)
        self.virsh(kind, str(path))

    def start_daemons(self) -> None:
        self.run("/usr/sbin/virtlogd", "-d")
        self.start_libvirtd()

    def start_libvirtd(self) -> None:
        self.run("/usr/sbin/libvirtd", "-d")
        for _ignored in range(300):
            if self.virsh("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("the private libvirtd does not answer")

    def stop(self, name: str) -> None:
        """SIGTERM to the daemon, back once its process is gone (its guests' QEMU processes keep running)."""
        pid = self.run("cat", "/run/%s.pid" % name, check=False).stdout.strip()
        if pid.isdigit():
            self.run("kill", pid, check=False)
            for _ignored in range(200):
                if not Path("/proc", pid).exists():
                    return
                time.sleep(0.05)
            raise AssertionError("the private %s (pid %s) does not stop" % (name, pid))

    def restart_libvirtd(self) -> None:
        """Stop and start libvirtd: it reconnects to the running guests (qemu's `reconnect begin` hook)."""
        self.stop("libvirtd")
        self.start_libvirtd()

    def close(self) -> None:
        for name in ("libvirtd", "virtlogd"):
            try:
                self.stop(name)
            except AssertionError:
                pass
        self.holder.kill()
        self.holder.wait()


def guest(name: str, image: Path, memory_mib: int = 64, mac: str = "52:54:00:15:00:0a") -> str:
    """A guest for every block: NIC on vhlib-net, qcow2 disk, huge pages, vCPU 0 pinned to host CPU 1."""
    return guest_xml(name, network="vhlib-net", image=str(image), hugepages=True, vcpupin="1", memory_mib=memory_mib, mac=mac)


@pytest.fixture
def private(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("needs root (a private libvirtd, nr_hugepages, cgroups)")
    for tool in ("unshare", "nsenter", "nft", "qemu-img", "dnsmasq", "/usr/sbin/libvirtd", "/usr/sbin/virtlogd"):
        if not shutil.which(tool):
            pytest.fail("%s is missing: run tests/setup/prepare-host.sh (tests/setup/debian-packages.txt)" % tool)
    if not (CPUSET / "cpuset.cpus").exists() or len(os.sched_getaffinity(0)) < 2:
        pytest.fail("needs the cgroup v1 cpuset hierarchy and 2 CPUs (this Debian 12 test machine has both)")
    work = tmp_path / "w"
    work.mkdir()
    # A host cgroup of our own with a process in it stands for "the host's processes": the real cpuset
    # hierarchy is exercised without restricting anything else running on this shared machine.
    host_cg = CPUSET / ("vhlib-host-%d" % os.getpid())
    host_cg.mkdir()
    (host_cg / "cpuset.cpus").write_text((CPUSET / "cpuset.cpus").read_text())
    (host_cg / "cpuset.mems").write_text((CPUSET / "cpuset.mems").read_text())
    sleeper = subprocess.Popen(["sleep", "3600"])
    (host_cg / "cgroup.procs").write_text(str(sleeper.pid))
    lv = None
    try:
        lv = PrivateLibvirt(work)
        yield lv, host_cg
    finally:
        if lv is not None:
            for name in lv.virsh("list", "--all", "--name", check=False).stdout.split():
                lv.virsh("destroy", name, check=False)
                lv.virsh("undefine", name, check=False)
            lv.virsh("net-destroy", "vhlib-net", check=False)
            lv.virsh("net-undefine", "vhlib-net", check=False)
            lv.close()
        sleeper.kill()
        sleeper.wait()
        for _ignored in range(50):
            try:
                host_cg.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def deploy(lv: PrivateLibvirt, library: dict) -> None:
    inventory = {"all": {"hosts": {"vhlib-local": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "libvirt_hooks_restart": "never", "libvirt_hooks_cli_link": "",
        "libvirt_hooks_log": {"file": str(lv.work / "dispatch.jsonl")},
        "libvirt_hooks_library": library}}}}
    (lv.work / "hosts.json").write_text(json.dumps(inventory))
    play = [{"hosts": "all", "gather_facts": False, "roles": ["virthooks.libvirt.libvirt_hooks"]}]
    (lv.work / "play.yml").write_text(json.dumps(play))
    proc = lv.run(str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(lv.work / "hosts.json"),
                  str(lv.work / "play.yml"), check=False, env=ansible_env(), timeout=300, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_library_blocks_on_a_real_libvirtd_with_real_guests(private):
    lv, host_cg = private
    image = lv.work / "images" / "vhlib-all.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    webhook_log = lv.work / "webhook.jsonl"
    server = start_webhook(webhook_log, 18088, prefix=lv.enter)
    try:
        deploy(lv, {
            "port_forward": {"guests": {"vhlib-all": {"ip": "192.168.150.10", "forwards": [
                {"host_port": 18080, "guest_port": 80}, {"host_port": 15353, "guest_port": 53, "proto": "udp"}]}}},
            "hugepages": {"guests": ["vhlib-*"]},
            "disk_snapshot": {"guests": ["vhlib-*"], "keep": 3},
            "cpu_isolation": {"guests": ["vhlib-*"], "mode": "cgroup_v1", "cgroups": [host_cg.name]},
            "vfio_bind": {"guests": ["vhlib-*"]},
            "notify": {"url": "http://hook:s3cret@127.0.0.1:18088/events", "guests": ["vhlib-*"]},
        })
        listed = lv.run("/etc/libvirt/hooks/virthooks/virthooks", "list").stdout
        for name in ("lib-port_forward-add", "lib-port_forward-remove", "lib-port_forward-readd", "lib-hugepages-reserve",
                     "lib-hugepages-release", "lib-disk_snapshot-snapshot", "lib-cpu_isolation-isolate",
                     "lib-cpu_isolation-restore", "lib-vfio_bind-bind", "lib-vfio_bind-unbind", "lib-notify-post"):
            assert name in listed, listed
        lv.start_daemons()
        lv.define("net-define", NET_XML)
        lv.virsh("net-start", "vhlib-net")
        lv.define("define", guest("vhlib-all", image))
        nr_before, cpus_before = nr_hugepages(), (host_cg / "cpuset.cpus").read_text().strip()
        assert nft_table(lv.enter) == ""

        lv.virsh("start", "vhlib-all")
        assert lv.virsh("domstate", "vhlib-all").stdout.strip() == "running"
        table = nft_table(lv.enter)
        assert "tcp dport 18080 dnat ip to 192.168.150.10:80" in table and "udp dport 15353" in table, table
        assert nr_hugepages() == nr_before + 32
        assert (host_cg / "cpuset.cpus").read_text().strip() == "0"
        assert len(snapshots(image)) == 1

        lv.virsh("destroy", "vhlib-all")
        assert nft_table(lv.enter) == ""
        assert nr_hugepages() == nr_before
        assert (host_cg / "cpuset.cpus").read_text().strip() == cpus_before

        for _ignored in range(3):
            lv.virsh("start", "vhlib-all")
            lv.virsh("destroy", "vhlib-all")
        assert len(snapshots(image)) == 3 and all(n.startswith("virthooks-") for n in snapshots(image))
        lv.virsh("start", "vhlib-all")                   # still boots, with the oldest snapshot pruned again
        assert lv.virsh("domstate", "vhlib-all").stdout.strip() == "running"
        lv.virsh("destroy", "vhlib-all")

        events = webhook_posts(webhook_log)
        assert [(e["event"]["object"], e["event"]["operation"]) for e in events] == [
            ("vhlib-all", "started"), ("vhlib-all", "stopped")] * 5
        assert events[0]["auth"] == "Basic aG9vazpzM2NyZXQ="
        assert "s3cret" not in (lv.work / "dispatch.jsonl").read_text()

        # Too large for this host: refused by the prepare hook with its message, nothing reserved.
        big = lv.work / "images" / "vhlib-big.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(big), "16M"], check=True)
        lv.define("define", guest("vhlib-big", big, memory_mib=1024 * 1024, mac="52:54:00:15:00:0b"))
        proc = lv.virsh("start", "vhlib-big", check=False)
        assert proc.returncode != 0
        assert "virthooks hugepages: vhlib-big: needs 1048576 MiB of huge pages" in proc.stderr, proc.stderr
        assert nr_hugepages() == nr_before and (host_cg / "cpuset.cpus").read_text().strip() == cpus_before
    finally:
        server.kill()
        server.wait()


def wait_for(probe, timeout: float = 30):
    """probe() once it returns something true, else its last value after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > end:
            return value
        time.sleep(0.1)


def test_port_forward_comes_back_at_reconnect_after_a_firewall_reload(private):
    """A firewall reload drops the table inet virthooks under a running guest; the next daemon restart's
    `reconnect begin` (lib-port_forward-readd) puts the guest's forwards back, and the guest keeps running."""
    lv, _host_cg = private
    image = lv.work / "images" / "vhlib-pf.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    deploy(lv, {"port_forward": {"guests": {"vhlib-pf": {"ip": "192.168.150.11", "forwards": [
        {"host_port": 18081, "guest_port": 80}, {"host_port": 15354, "guest_port": 53, "proto": "udp"}]}}}})
    lv.start_daemons()
    lv.define("net-define", NET_XML)
    lv.virsh("net-start", "vhlib-net")
    lv.define("define", guest_xml("vhlib-pf", network="vhlib-net", image=str(image)))
    lv.virsh("start", "vhlib-pf")
    added = nft_table(lv.enter)
    assert "tcp dport 18081 dnat ip to 192.168.150.11:80" in added and "udp dport 15354" in added, added
    qemu_pid = lv.run("cat", "/run/libvirt/qemu/vhlib-pf.pid").stdout.strip()

    lv.run("nft", "delete", "table", "inet", "virthooks")      # what `nft -f /etc/nftables.conf` or firewalld do
    assert nft_table(lv.enter) == ""
    lv.restart_libvirtd()
    # libvirt reconnects in a thread of its own: the hook may finish after the daemon answers.
    back = wait_for(lambda: nft_table(lv.enter))
    assert back == added, "the forwards after reconnect differ:\n%s\nbefore:\n%s" % (back, added)
    assert lv.virsh("domstate", "vhlib-pf").stdout.strip() == "running"
    assert lv.run("cat", "/run/libvirt/qemu/vhlib-pf.pid").stdout.strip() == qemu_pid, "the guest's QEMU was restarted"
    readd = [json.loads(line) for line in (lv.work / "dispatch.jsonl").read_text().splitlines() if '"reconnect"' in line]
    assert [(s["name"], s["status"]) for e in readd for s in e["scripts"]] == [("lib-port_forward-readd", "ok")], readd

    lv.virsh("destroy", "vhlib-pf")                            # the re-added rules are removed as the first ones
    assert nft_table(lv.enter) == ""


# A stand-in for the guests' network stacks and for other machines: network namespaces of their own wired to the
# private libvirtd's namespace by veth pairs. "gnet" is plugged into libvirt's bridge with the guests' addresses and
# answers on their ports ("guest:<port>"); "ext" (10.77.0.2 and .3, via hext0 = 10.77.0.1 and .5) and "ext2"
# (10.78.0.2, via hext1) are machines outside. The qemu guests only fire the hooks (they boot nothing).
LISTENER = r"""
import socket, sys, threading
def serve(addr, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((addr, port)); s.listen(8)
    while True:
        c, _ = s.accept(); c.sendall(b"guest:%d\n" % port); c.close()
for spec in sys.argv[1:]:
    addr, port = spec.rsplit(":", 1)
    threading.Thread(target=serve, args=(addr, int(port)), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"""
CONNECT = r"""
import socket, sys
s = socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0))
try:
    s.connect((sys.argv[2], int(sys.argv[3]))); print(s.recv(100).decode().strip() or "empty")
except Exception as exc:
    print(type(exc).__name__)
"""


class Wires:
    """The namespaces around the private libvirtd, and a way to connect from the outside ones."""

    def __init__(self, lv: PrivateLibvirt):
        self.lv, self.procs = lv, {}
        for name in ("gnet", "ext", "ext2"):
            self.procs[name] = subprocess.Popen(["unshare", "-n", "sleep", "600"])
        for proc in self.procs.values():
            while os.readlink("/proc/%d/ns/net" % proc.pid) == os.readlink("/proc/self/ns/net"):
                time.sleep(0.02)
        pid = {n: str(p.pid) for n, p in self.procs.items()}
        lv.run("sh", "-ec", """
            ip link add hgnet type veth peer name eth0 netns {gnet}
            ip link set hgnet master vhlibbr0 up
            ip link add hext0 type veth peer name eth0 netns {ext}
            ip addr add 10.77.0.1/24 dev hext0; ip addr add 10.77.0.5/24 dev hext0; ip link set hext0 up
            ip link add hext1 type veth peer name eth0 netns {ext2}
            ip addr add 10.78.0.1/24 dev hext1; ip link set hext1 up
            """.format(**pid))
        for name, cmds in (("gnet", ["ip addr add 192.168.150.10/24 dev eth0", "ip addr add 192.168.150.11/24 dev eth0",
                                     "ip link set eth0 up", "ip link set lo up", "ip route add default via 192.168.150.1"]),
                           ("ext", ["ip addr add 10.77.0.2/24 dev eth0", "ip addr add 10.77.0.3/24 dev eth0",
                                    "ip link set eth0 up", "ip route add default via 10.77.0.1"]),
                           ("ext2", ["ip addr add 10.78.0.2/24 dev eth0", "ip link set eth0 up",
                                     "ip route add default via 10.78.0.1"])):
            subprocess.run(self.enter(name) + ["sh", "-ec", "; ".join(cmds)], check=True)
        self.listener = subprocess.Popen(self.enter("gnet") + [sys.executable, "-c", LISTENER, "192.168.150.10:80",
                                                               "192.168.150.10:18101", "192.168.150.11:80"],
                                         stdout=subprocess.PIPE, text=True)
        assert self.listener.stdout.readline().strip() == "listening"

    def enter(self, name: str) -> list:
        return ["nsenter", "-t", str(self.procs[name].pid), "-n"]

    def connect(self, where: str, source: str, address: str, port: int) -> str:
        """'guest:<port>' when the guest answered, else the exception (ConnectionRefusedError, timeout)."""
        prefix = self.enter(where) if where != "host" else self.lv.enter
        cmd = prefix + [sys.executable, "-c", CONNECT, source, address, str(port)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout.strip()

    def close(self) -> None:
        for proc in [self.listener] + list(self.procs.values()):
            proc.kill()
            proc.wait()


def test_port_forward_from_other_machines_with_its_matches_and_unreachable_again_after_stop(private):
    """external opens libvirt's own inbound chain (LIBVIRT_FWI here: libvirt 9.0's iptables backend) for the DNAT'd
    traffic, limited by sources, host_address and interface, over a range of ports too; a guest with the
    defaults stays unreachable from other machines (libvirt rejects it) but not from the host; after the guest
    stops, nothing of ours is left and the other machines are refused again."""
    lv, _host_cg = private
    deploy(lv, {"port_forward": {"guests": {
        "vhlib-ext": {"ip": "192.168.150.10", "external": True, "sources": ["10.77.0.2", "10.78.0.0/24"],
                      "host_address": "10.77.0.1", "interface": "hext0",
                      "forwards": [{"host_port": 18080, "guest_port": 80}, {"host_port": "18100-18102"}]},
        "vhlib-def": {"ip": "192.168.150.11", "forwards": [{"host_port": 18090, "guest_port": 80}]}}}})
    lv.start_daemons()
    lv.define("net-define", NET_XML)
    lv.virsh("net-start", "vhlib-net")
    wires = Wires(lv)
    try:
        for name, mac in (("vhlib-ext", "52:54:00:15:00:1a"), ("vhlib-def", "52:54:00:15:00:1b")):
            lv.define("define", guest_xml(name, network="vhlib-net", mac=mac))
        assert wires.connect("ext", "10.77.0.2", "10.77.0.1", 18080) == "ConnectionRefusedError"   # no guest yet
        lv.virsh("start", "vhlib-ext")
        lv.virsh("start", "vhlib-def")
        fwi = lv.run("iptables", "-w", "-S", "LIBVIRT_FWI").stdout
        assert fwi.splitlines()[1].startswith("-A LIBVIRT_FWI -d 192.168.150.10/32 -p tcp -m tcp --dport 80 "), fwi
        assert "--dport 18100:18102" in fwi and "192.168.150.11" not in fwi, fwi

        # The bridge forwards once its ports have been through STP's listening and learning states (libvirt's
        # stp='on' delay='0' is 2 s each at least in the kernel): a connection before that times out.
        assert wait_for(lambda: " UP " in lv.run("ip", "-br", "link", "show", "vhlibbr0").stdout + " ", 30), \
            lv.run("ip", "-br", "link").stdout
        assert wires.connect("ext", "10.77.0.2", "10.77.0.1", 18080) == "guest:80"            # external, allowed source
        assert wires.connect("ext", "10.77.0.2", "10.77.0.1", 18101) == "guest:18101"         # a port of the range
        assert wires.connect("ext", "10.77.0.3", "10.77.0.1", 18080) == "ConnectionRefusedError"  # not in sources
        assert wires.connect("ext", "10.77.0.2", "10.77.0.5", 18080) == "ConnectionRefusedError"  # not host_address
        assert wires.connect("ext2", "10.78.0.2", "10.77.0.1", 18080) == "ConnectionRefusedError"  # not interface
        assert wires.connect("ext", "10.77.0.2", "10.77.0.1", 18090) == "ConnectionRefusedError"  # defaults: closed
        assert wires.connect("host", "10.77.0.1", "10.77.0.1", 18090) == "guest:80"           # ... but the host may

        lv.virsh("destroy", "vhlib-ext")
        assert "virthooks" not in lv.run("iptables", "-w", "-S", "LIBVIRT_FWI").stdout
        assert "18080" not in nft_table(lv.enter) and "18090" in nft_table(lv.enter)
        assert wires.connect("ext", "10.77.0.2", "10.77.0.1", 18080) == "ConnectionRefusedError"
        lv.virsh("destroy", "vhlib-def")
        assert nft_table(lv.enter) == ""
    finally:
        wires.close()
