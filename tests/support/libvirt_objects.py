"""Guests, networks and probes shared by the tests that drive a real libvirtd.

Used by tests/integration/test_library_libvirt.py (a private libvirtd in its own namespaces) and by the
molecule scenario "libvirt" (extensions/molecule/libvirt/files/verify_libvirt.py, this machine's libvirtd),
which imports it from the repository: standard library only, no pytest.

Commands take a `prefix` (e.g. `nsenter -t PID -m -n`) to run inside another namespace; empty = here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def guest_xml(name: str, network: str = "", image: str = "", hugepages: bool = False, vcpupin: str = "",
              memory_mib: int = 64, mac: str = "", description: str = "") -> str:
    """A TCG guest without OS (it ignores ACPI shutdown): enough for every qemu hook event.

    network: a NIC (e1000) on that libvirt network; image: a qcow2 disk; hugepages: <memoryBacking><hugepages/>;
    vcpupin: the host CPUs of vCPU 0.
    """
    desc = "<description>%s</description>" % description if description else ""
    backing = "<memoryBacking><hugepages/></memoryBacking>" if hugepages else ""
    cputune = "<cputune><vcpupin vcpu='0' cpuset='%s'/></cputune>" % vcpupin if vcpupin else ""
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/>"
            "<target dev='vda' bus='virtio'/></disk>" % image) if image else ""
    nic = ("<interface type='network'><source network='%s'/>%s<model type='e1000'/></interface>"
           % (network, "<mac address='%s'/>" % mac if mac else "")) if network else ""
    return ("<domain type='qemu'><name>%s</name>%s<memory unit='MiB'>%d</memory><vcpu>1</vcpu>%s%s"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
            "<devices><memballoon model='none'/>%s%s</devices></domain>"
            % (name, desc, memory_mib, backing, cputune, disk, nic))


def nat_network_xml(name: str, bridge: str, address: str) -> str:
    """A NAT network whose bridge has `address`/24 (libvirt adds its own firewall rules for it)."""
    return ("<network><name>%s</name><forward mode='nat'/><bridge name='%s'/>"
            "<ip address='%s' netmask='255.255.255.0'/></network>" % (name, bridge, address))


def snapshots(image: Path) -> list:
    """Names of the internal snapshots of a qcow2 image, oldest first (-U: the guest may be running)."""
    out = subprocess.run(["qemu-img", "snapshot", "-U", "-l", str(image)], capture_output=True, text=True, check=True).stdout
    return [line.split()[1] for line in out.splitlines() if line.split() and line.split()[0].isdigit()]


def nft_table(prefix: tuple = ()) -> str:
    """`nft list table inet virthooks` (port_forward's table), or "" when there is none."""
    proc = subprocess.run(list(prefix) + ["nft", "list", "table", "inet", "virthooks"], capture_output=True, text=True,
                          check=False)
    return proc.stdout if proc.returncode == 0 else ""


def nr_hugepages() -> int:
    return int(Path("/proc/sys/vm/nr_hugepages").read_text())


def hugepage_kib() -> int:
    """The host's default huge page size (what the hugepages block reserves without <page size=...>)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Hugepagesize:"):
            return int(line.split()[1])
    raise RuntimeError("no Hugepagesize in /proc/meminfo")


# A webhook receiver for the notify block: one JSON line per POST (its Authorization header and body) in argv[1].
WEBHOOK_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
out, port = sys.argv[1], int(sys.argv[2])
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "a") as f:
            f.write(json.dumps({"auth": self.headers.get("Authorization"), "path": self.path,
                                "event": json.loads(body)}) + "\n")
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
server = HTTPServer(("127.0.0.1", port), H)
print("ready", flush=True)
server.serve_forever()
"""


def start_webhook(out: Path, port: int, prefix: tuple = ()) -> subprocess.Popen:
    """The webhook receiver on 127.0.0.1:port, returned once it listens (kill it when done)."""
    proc = subprocess.Popen(list(prefix) + [sys.executable, "-c", WEBHOOK_SERVER, str(out), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("the webhook receiver did not start on 127.0.0.1:%d: %s" % (port, proc.stderr.read()[-2000:]))
    return proc


def webhook_posts(out: Path) -> list:
    """What the receiver got: [{"auth": ..., "path": ..., "event": {...}}] in order."""
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
