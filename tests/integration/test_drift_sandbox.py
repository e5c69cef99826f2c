"""playbooks/drift.yml on three sandbox peers (own SYSCONFDIR in tmp_path), deployed once by the role.

Each test changes one thing by hand on one host (as drift happens), runs the drift check, and puts the
host back. Guests come from XML files (xml_dir): sandbox hosts have no libvirt of their own.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import REPO

pytestmark = pytest.mark.root  # deploys through the modules, which chown what they install to root

HOSTS = ("host-a", "host-b", "host-c")
SH = "#!/bin/sh\nexit 0\n"
GPU_XML = "<domain type='kvm'><name>gpu-vm</name><devices><hostdev mode='subsystem' type='pci'/></devices></domain>"
PLAIN_XML = "<domain type='kvm'><name>plain</name><devices><disk type='file'/></devices></domain>"


class Peers:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.inventory = tmp / "hosts.yml"
        for host in HOSTS:
            (tmp / host / "etc" / "libvirt").mkdir(parents=True)
            (tmp / host / "xml").mkdir()
        (tmp / "host-a" / "xml" / "gpu-vm.xml").write_text(GPU_XML)
        (tmp / "host-b" / "xml" / "plain.xml").write_text(PLAIN_XML)
        base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "ansible_become": False, "libvirt_hooks_restart": "never", "libvirt_hooks_cli_link": "",
                "libvirt_hooks_sysconfdir": str(tmp) + "/{{ inventory_hostname }}/etc",
                "libvirt_hooks_log": {"file": str(tmp) + "/{{ inventory_hostname }}/log.jsonl"},
                "libvirt_hooks_drift_list_guests": False,
                "libvirt_hooks_drift_xml_dir": str(tmp) + "/{{ inventory_hostname }}/xml",
                "libvirt_hooks_scripts": [
                    {"name": "isolate", "operations": ["prepare"], "suboperations": ["begin"], "content": SH},
                    {"name": "audit", "operations": ["migrate", "prepare"], "content": SH}]}
        self.inventory.write_text(json.dumps({"hypervisors": {"vars": base, "hosts": {h: {} for h in HOSTS}}}))

    def hooks(self, host: str) -> Path:
        return self.tmp / host / "etc" / "libvirt" / "hooks"

    def current(self, host: str) -> Path:
        return (self.hooks(host) / "virthooks" / "current").resolve()

    def playbook(self, playbook: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.inventory), playbook, *extra]
        return subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(), timeout=600, check=False,
                              cwd=self.tmp)

    def drift(self, *extra: str) -> tuple:
        out = self.tmp / "report"
        proc = self.playbook("virthooks.libvirt.drift", "-e", "libvirt_hooks_report_dir=%s" % out, *extra)
        report = json.loads((out / "drift.json").read_text()) if (out / "drift.json").exists() else None
        return proc, report


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    fleet = Peers(tmp_path_factory.mktemp("drift"))
    proc = fleet.playbook(str(REPO / "playbooks" / "deploy_hooks.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return fleet


def only_group(report: dict) -> dict:
    assert [g["group"] for g in report["groups"]] == ["hypervisors"]
    return report["groups"][0]


def test_identical_peers_pass_and_every_guest_is_worked_out_on_every_peer(peers):
    proc, report = peers.drift()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    group = only_group(report)
    assert not report["drift"] and group["differences"] == [] and group["guest_differences"] == []
    assert group["compared"] == list(HOSTS)
    # the guest defined on host-a only is worked out on every peer, its XPath-free rules matched
    assert group["guests"]["gpu-vm"]["prepare begin"] == {h: ["audit", "isolate"] for h in HOSTS}
    assert group["guests"]["plain"]["migrate begin"] == {h: ["audit"] for h in HOSTS}
    assert "hypervisors" in proc.stdout and "same" in proc.stdout


def test_one_changed_script_is_named_with_the_hosts_of_each_variant(peers):
    script = peers.current("host-c") / "scripts" / "isolate"
    original = script.read_bytes()
    try:
        script.write_bytes(original + b"# changed by hand\n")
        proc, report = peers.drift()
    finally:
        script.write_bytes(original)
    assert proc.returncode != 0 and "Peers differ in hypervisors" in proc.stdout, proc.stdout
    group = only_group(report)
    assert [d["aspect"] for d in group["differences"]] == ["scripts"]
    scripts = group["differences"][0]
    assert [v["hosts"] for v in scripts["variants"]] == [["host-a", "host-b"], ["host-c"]]   # majority first
    assert list(scripts["items"]) == ["isolate"]
    assert group["guest_differences"] == []          # same scripts would run, one of them differs
    assert "scripts (host-a,host-b | host-c)" in proc.stdout


def test_one_extra_rule_with_a_condition_changes_only_the_guests_it_matches(peers):
    generation = peers.current("host-b")
    config_path = generation / "config.json"
    original = config_path.read_bytes()
    config = json.loads(original)
    config["rules"].append({"name": "gpu-only", "script": "scripts/gpu-only", "driver": "qemu",
                            "operations": ["prepare"], "suboperations": ["begin"],
                            "xpath": "/domain/devices/hostdev[@type='pci']"})
    extra = generation / "scripts" / "gpu-only"
    try:
        extra.write_text(SH)
        extra.chmod(0o755)
        config_path.write_text(json.dumps(config))
        proc, report = peers.drift()
    finally:
        config_path.write_bytes(original)
        extra.unlink()
    assert proc.returncode != 0, proc.stdout
    group = only_group(report)
    assert [d["aspect"] for d in group["differences"]] == ["rules", "scripts"]
    rules = group["differences"][0]
    assert [v["hosts"] for v in rules["variants"]] == [["host-a", "host-c"], ["host-b"]]
    assert rules["items"]["gpu-only"]["hosts"]["host-a"] is None and rules["items"]["gpu-only"]["hosts"]["host-b"]
    # XPath evaluated on each guest's XML: only the guest with a PCI hostdev is affected
    assert group["guest_differences"] == [{"guest": "gpu-vm", "event": "prepare begin", "variants": [
        {"hosts": ["host-a", "host-c"], "scripts": ["audit", "isolate"]},
        {"hosts": ["host-b"], "scripts": ["audit", "gpu-only", "isolate"]}]}]
    assert "guest gpu-vm prepare begin" in proc.stdout


def test_a_missing_entry_point_is_named(peers):
    entry = peers.hooks("host-a") / "qemu"
    original = entry.read_bytes()
    try:
        entry.unlink()
        proc, report = peers.drift()
    finally:
        entry.write_bytes(original)
        entry.chmod(0o755)
    assert proc.returncode != 0, proc.stdout
    group = only_group(report)
    assert [d["aspect"] for d in group["differences"]] == ["entry_points"]
    points = group["differences"][0]
    assert [v["hosts"] for v in points["variants"]] == [["host-b", "host-c"], ["host-a"]]
    assert points["variants"][1]["value"] == {}
    assert set(points["items"]["qemu"]) == set(HOSTS) and points["items"]["qemu"]["host-a"] is None


def test_a_per_guest_tree_file_on_one_peer_changes_that_guests_scripts_there(peers):
    directory = peers.hooks("host-b") / "qemu.d" / "gpu-vm" / "prepare" / "begin"
    directory.mkdir(parents=True)
    (directory / "10-bind").write_text(SH)
    (directory / "10-bind").chmod(0o755)
    try:
        proc, report = peers.drift()
    finally:
        (directory / "10-bind").unlink()
        for path in (directory, directory.parent, directory.parent.parent, directory.parent.parent.parent):
            path.rmdir()
    assert proc.returncode != 0, proc.stdout
    group = only_group(report)
    assert [d["aspect"] for d in group["differences"]] == ["tree"]
    assert list(group["differences"][0]["items"]) == ["qemu.d/gpu-vm/prepare/begin/10-bind"]
    assert group["guest_differences"] == [{"guest": "gpu-vm", "event": "prepare begin", "variants": [
        {"hosts": ["host-a", "host-c"], "scripts": ["audit", "isolate"]},
        {"hosts": ["host-b"], "scripts": ["audit", "isolate", "qemu.d/gpu-vm/prepare/begin/10-bind"]}]}]


def python_without_lxml(where: Path) -> str:
    """An interpreter that cannot import lxml whatever the machine has (python3-lxml is common on
    hypervisors): a venv of the system Python, without pip and without the system's site-packages."""
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = str(where / "bin" / "python3")
    code = "import site; site.main(); import lxml"
    assert subprocess.run([python, "-IS", "-c", code], capture_output=True, check=False).returncode != 0
    return python


def test_a_rule_that_needs_lxml_is_named_on_the_peers_whose_python_lacks_it(peers, tmp_path):
    """host-a and host-b's dispatchers are pointed at a Python made without lxml, host-c's at one with it."""
    without = python_without_lxml(tmp_path / "no-lxml")
    pythons = {"host-a": without, "host-b": without, "host-c": sys.executable}
    saved = {}
    try:
        for host in HOSTS:
            path = peers.current(host) / "config.json"
            saved[path] = path.read_bytes()
            config = json.loads(saved[path])
            config["rules"][0]["xpath"] = "count(/domain/devices/hostdev) > 0"
            path.write_text(json.dumps(config))
            meta = peers.current(host) / "meta.json"
            saved[meta] = meta.read_bytes()
            meta.write_text(json.dumps(dict(json.loads(saved[meta]), python=pythons[host])))
        proc, report = peers.drift()
    finally:
        for path, data in saved.items():
            path.write_bytes(data)
    assert proc.returncode != 0, proc.stdout
    group = only_group(report)
    assert [d["aspect"] for d in group["differences"]] == ["xpath"]
    xpath = group["differences"][0]
    name = json.loads(saved[peers.current("host-a") / "config.json"])["rules"][0]["name"]
    assert xpath["variants"] == [{"hosts": ["host-a", "host-b"], "value": [name]}, {"hosts": ["host-c"], "value": []}]


def test_a_host_whose_first_read_fails_is_unreadable_and_the_run_fails(peers):
    broken = peers.tmp / "host-b" / "xml" / "latin.xml"
    broken.write_bytes(b"<domain type='kvm'><name>caf\xe9</name></domain>")
    try:
        proc, report = peers.drift()
    finally:
        broken.unlink()
    assert proc.returncode != 0 and "Peers differ in hypervisors" in proc.stdout, proc.stdout
    group = only_group(report)
    assert group["compared"] == ["host-a", "host-c"] and report["drift"]
    assert [u["host"] for u in group["unreadable"]] == ["host-b"]
    assert "%s is not UTF-8" % broken in group["unreadable"][0]["reason"]


def test_an_unmanaged_drop_in_is_listed_and_fails_the_check_only_when_asked(peers):
    directory = peers.hooks("host-c") / "virthooks" / "rules.d"
    directory.mkdir()
    (directory / "50-net.json").write_text(json.dumps({"name": "net-up", "driver": "network", "script": "net.sh",
                                                       "operations": ["started"]}))
    (directory / "net.sh").write_text(SH)
    (directory / "net.sh").chmod(0o755)
    try:
        proc, report = peers.drift()
        asked, strict = peers.drift("-e", "libvirt_hooks_drift_dropins_fail=true")
    finally:
        for path in (directory / "50-net.json", directory / "net.sh"):
            path.unlink()
        directory.rmdir()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    group = only_group(report)
    assert not report["drift"] and group["differences"] == [] and group["guest_differences"] == []
    entry = group["unmanaged_dropins"]["host-c"]["rules.d/50-net.json"]
    assert list(group["unmanaged_dropins"]) == ["host-c"]
    assert entry["drivers"] == ["network"] and entry["rules"] == ["net-up"] and entry["problem"] is None
    assert "unmanaged drop-in host-c: rules.d/50-net.json (network; %s)" % entry["digest"][:12] in proc.stdout
    assert asked.returncode != 0 and "unmanaged drop-ins" in asked.stdout, asked.stdout
    assert strict["drift"] and only_group(strict)["differences"] == []
