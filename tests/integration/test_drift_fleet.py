"""playbooks/drift.yml on two real hosts of one peer group: Debian 12 (libvirt 9.0) and Debian 13 (11.3),
podman fleet containers with Debian's libvirtd. Guests are defined for real and their XML is read with
`virsh dumpxml` by the module on each host.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import REPO
from tests.support import fleet_host as fh

pytestmark = [pytest.mark.podman, pytest.mark.root]  # the fleet: rootful podman

HOSTS = {"vh-drift-12": "bookworm-libvirt", "vh-drift-13": "trixie-libvirt"}
SH = "#!/bin/sh\nexit 0\n"
GUEST = ("<domain type='qemu'><name>%s</name>%s<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
         "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><memballoon model='none'/></devices></domain>")


@pytest.fixture
def peers():
    subprocess.run([str(fh.FLEET / "get-podman-collection.sh")], check=True, capture_output=True, timeout=600)
    up = subprocess.run([str(fh.FLEET / "fleet.sh"), "up", *("%s=%s" % item for item in HOSTS.items())],
                        capture_output=True, text=True, timeout=1800, check=False)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield list(HOSTS)
    finally:
        subprocess.run([str(fh.FLEET / "fleet.sh"), "down", *HOSTS], capture_output=True, timeout=300, check=False)


def playbook(tmp_path: Path, playbook: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.json"),
                           playbook, *extra], capture_output=True, text=True, env=ansible_env(), timeout=900,
                          check=False, cwd=tmp_path)


def test_debian_12_and_13_peers_agree_then_a_changed_script_is_named(peers, tmp_path):
    hostvars = {"ansible_connection": "containers.podman.podman", "ansible_podman_executable": str(fh.FLEET / "podman"),
                "ansible_python_interpreter": "/usr/bin/python3", "ansible_become": False,
                "libvirt_hooks_scripts": [
                    {"name": "audit", "operations": ["prepare", "migrate"], "content": SH},
                    {"name": "tagged", "operations": ["prepare"], "suboperations": ["begin"],
                     "xpath": "/domain/description", "content": SH}]}
    (tmp_path / "hosts.json").write_text(json.dumps({"hypervisors": {"vars": hostvars, "hosts": {h: {} for h in peers}}}))
    deploy = playbook(tmp_path, str(REPO / "playbooks" / "deploy_hooks.yml"))
    assert deploy.returncode == 0, deploy.stdout[-5000:]
    # one guest defined on each host; only the Debian 12 one matches the XPath condition
    fh.in_host("vh-drift-12", "cat > /tmp/g.xml <<'EOF'\n%s\nEOF\nvirsh define /tmp/g.xml"
               % GUEST % ("drift-tagged", "<description>tagged</description>"))
    fh.in_host("vh-drift-13", "cat > /tmp/g.xml <<'EOF'\n%s\nEOF\nvirsh define /tmp/g.xml" % GUEST % ("drift-plain", ""))

    same = playbook(tmp_path, "virthooks.libvirt.drift", "-e", "libvirt_hooks_report_dir=same")
    assert same.returncode == 0, same.stdout[-5000:]
    group = json.loads((tmp_path / "same" / "drift.json").read_text())["groups"][0]
    assert group["compared"] == peers and group["differences"] == []
    assert group["guests"]["drift-tagged"]["prepare begin"] == {h: ["audit", "tagged"] for h in peers}
    assert group["guests"]["drift-plain"]["prepare begin"] == {h: ["audit"] for h in peers}
    assert group["guests"]["drift-plain"]["migrate begin"] == {h: ["audit"] for h in peers}

    fh.in_host("vh-drift-13", "echo '# edited by hand' >> /etc/libvirt/hooks/virthooks/current/scripts/tagged")
    changed = playbook(tmp_path, "virthooks.libvirt.drift", "-e", "libvirt_hooks_report_dir=changed")
    assert changed.returncode != 0, changed.stdout[-5000:]
    group = json.loads((tmp_path / "changed" / "drift.json").read_text())["groups"][0]
    assert [d["aspect"] for d in group["differences"]] == ["scripts"]
    assert list(group["differences"][0]["items"]) == ["tagged"]
    assert "scripts (vh-drift-12 | vh-drift-13)" in changed.stdout
