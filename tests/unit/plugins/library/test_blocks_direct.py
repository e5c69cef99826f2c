"""The blocks' pure logic, imported directly (no process, no host state): what each computes from the XML and
its parameters. Their effects on real hosts are tested by running them (the other tests of this folder)."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.library import (
    BLOCKS, common, cpu_isolation, disk_snapshot, hugepages, notify, port_forward, vfio_bind)


def hook(params=None, xml="", guest="vm", paths=None):
    return common.Hook("test", ["launcher", guest, "prepare", "begin", "-"], io.StringIO(xml), params, paths)


def test_every_block_has_steps_and_the_package_lists_them():
    modules = {"port_forward": port_forward, "hugepages": hugepages, "disk_snapshot": disk_snapshot,
               "cpu_isolation": cpu_isolation, "vfio_bind": vfio_bind, "notify": notify}
    assert set(BLOCKS) == set(modules)
    for module in modules.values():
        assert module.STEPS and all(callable(f) for f in module.STEPS.values())


@pytest.mark.parametrize("text, cpus", [("0-3,^2,5", {0, 1, 3, 5}), ("0 2-3", {0, 2, 3}), ("", set())])
def test_cpu_lists_parse_and_format_back(text, cpus):
    assert common.parse_cpuset(text) == cpus
    assert common.parse_cpuset(common.format_cpuset(cpus)) == cpus


def test_a_bad_cpu_list_is_a_fail():
    with pytest.raises(common.Fail, match="bad CPU list '3-1'"):
        common.parse_cpuset("3-1")


def test_state_paths_never_leave_the_state_dir(tmp_path):
    path = hook(guest="../../etc/x", paths={"state": str(tmp_path)}).state_path()
    assert path.startswith(str(tmp_path / "test") + "/") and "/.." not in path


def test_port_forward_rules_for_a_single_port_and_a_range():
    fwd = port_forward.Forwards("web", {"ip": "192.168.122.10", "forwards": [
        {"host_port": 8080, "guest_port": 80, "proto": "tcp"}, {"host_port": "6000-6010", "proto": "udp"}]})
    rules = fwd.rules()
    assert 'add rule inet virthooks prerouting fib daddr type local tcp dport 8080 dnat ip to 192.168.122.10:80 ' \
           'comment "%s"' % fwd.tag in rules
    assert any("udp dport 6000-6010 dnat ip to 192.168.122.10 comment" in r for r in rules)
    assert fwd.ipt_accepts()[1][:6] == ["-d", "192.168.122.10", "-p", "udp", "--dport", "6000:6010"]


def test_port_forward_matches_sources_interface_and_host_address_on_traffic_from_elsewhere():
    fwd = port_forward.Forwards("web", {"ip": "fd00::5", "forwards": [{"host_port": 80, "guest_port": 80}],
                                        "sources": ["fd01::/64"], "interface": "eth1", "host_address": "fd02::1"})
    pre, out, _fwd = fwd.rules()
    assert 'prerouting iifname "eth1" ip6 saddr { fd01::/64 } ip6 daddr fd02::1 tcp dport 80 dnat ip6 to [fd00::5]:80' in pre
    assert "output ip6 daddr fd02::1 tcp dport 80" in out and "saddr" not in out and "iifname" not in out


def test_hugepages_needs_per_node_and_rounded_up():
    xml = ET.fromstring("<domain><memory unit='KiB'>5000</memory><memoryBacking><hugepages/></memoryBacking>"
                        "<numatune><memory nodeset='1'/></numatune></domain>")
    assert hugepages.needs_of(hook({"default_page_kib": 2048}), xml) == {(2048, 1): 3}


def test_vfio_devices_are_the_unmanaged_pci_hostdevs():
    xml = ET.fromstring("<domain><devices><hostdev type='pci' managed='no'><source><address domain='0x0' bus='0x1' "
                        "slot='0x0' function='0x1'/></source></hostdev><hostdev type='pci' managed='yes'><source>"
                        "<address bus='0x2'/></source></hostdev></devices></domain>")
    assert vfio_bind.devices_of(xml) == ["0000:01:00.1"]


def test_disk_snapshot_takes_writable_qcow2_disks_only():
    disk = "<disk device='%s'><driver type='%s'/><source file='%s'/>%s</disk>"
    xml = ET.fromstring("<domain><devices>%s%s%s</devices></domain>" % (
        disk % ("disk", "qcow2", "/a", ""), disk % ("disk", "raw", "/b", ""), disk % ("disk", "qcow2", "/c", "<readonly/>")))
    assert disk_snapshot.disks(xml) == ["/a"]


def test_notify_never_shows_credentials_or_query():
    assert notify.redacted("https://u:pw@h.example:8443/x/y?token=t") == "https://h.example:8443/x/y"
    assert notify.origin("https://U:pw@H.example/x") == ("https", "h.example", 443)
