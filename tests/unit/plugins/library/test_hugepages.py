"""hugepages against a fake sysfs/procfs tree in tmp_path (the real kernel pools are exercised by the libvirt test)."""
from __future__ import annotations

import os

import pytest

from .conftest import domain

HP = "<memoryBacking><hugepages/></memoryBacking>"


@pytest.fixture
def host(blocks, tmp_path):
    """Pools of 2 MiB and 1 GiB pages, globally and on NUMA nodes 0 and 1; 4 GiB available."""
    sys_, proc = tmp_path / "sys", tmp_path / "proc"
    pools = {}
    for base in ("kernel/mm/hugepages", "devices/system/node/node0/hugepages", "devices/system/node/node1/hugepages"):
        for size in (2048, 1048576):
            path = sys_ / base / ("hugepages-%dkB" % size) / "nr_hugepages"
            path.parent.mkdir(parents=True)
            path.write_text("0\n")
            pools[(base.split("/")[-2] if "node/" in base else "global", size)] = path
    (proc / "sys" / "vm").mkdir(parents=True)
    (proc / "sys" / "vm" / "compact_memory").write_text("")
    (proc / "meminfo").write_text("MemTotal: 8000000 kB\nMemAvailable: 4194304 kB\nHugepagesize: 2048 kB\n")
    blocks.paths.update(sys=str(sys_), proc=str(proc))
    return pools


def pages(pools):
    return {k: int(v.read_text()) for k, v in pools.items() if v.is_file() and v.read_text().strip()}


def test_reserves_the_guests_pages_and_gives_back_exactly_those(blocks, host, tmp_path):
    host[("global", 2048)].write_text("10\n")          # pages someone else reserved stay theirs
    ran = blocks.run("hugepages", "reserve", {}, "g1", domain("g1", HP, 64))
    assert ran.rc == 0, ran
    assert pages(host)[("global", 2048)] == 42
    assert (tmp_path / "proc/sys/vm/compact_memory").read_text() == "1"
    assert blocks.state_of("hugepages", "g1") == {"pools": [{"size_kib": 2048, "node": None, "pages": 32}]}
    ran = blocks.run("hugepages", "release", {}, "g1", domain("g1", HP, 64), op="release", sub="end")
    assert ran.rc == 0, ran
    assert pages(host)[("global", 2048)] == 10 and blocks.state_of("hugepages", "g1") is None


def test_reserving_twice_changes_nothing(blocks, host):
    for _ignored in range(2):
        assert blocks.run("hugepages", "reserve", {}, "g1", domain("g1", HP, 64)).rc == 0
    assert pages(host)[("global", 2048)] == 32


def test_page_size_from_the_xml(blocks, host):
    xml = domain("g1", "<memoryBacking><hugepages><page size='1' unit='GiB'/></hugepages></memoryBacking>", 2048)
    assert blocks.run("hugepages", "reserve", {}, "g1", xml).rc == 0
    assert pages(host)[("global", 1048576)] == 2 and pages(host)[("global", 2048)] == 0


def test_memory_that_is_not_a_whole_number_of_pages_rounds_up(blocks, host):
    xml = "<domain><name>g1</name><memory unit='KiB'>5000</memory>%s</domain>" % HP
    assert blocks.run("hugepages", "reserve", {}, "g1", xml).rc == 0
    assert pages(host)[("global", 2048)] == 3


NUMA = ("<memoryBacking><hugepages><page size='2048' unit='KiB' nodeset='0'/><page size='1048576' nodeset='1'/>"
        "</hugepages></memoryBacking>"
        "<cpu><numa><cell id='0' cpus='0' memory='64' unit='MiB'/><cell id='1' cpus='1' memory='1' unit='GiB'/></numa></cpu>"
        "<numatune><memnode cellid='0' mode='strict' nodeset='0'/><memnode cellid='1' mode='strict' nodeset='1'/></numatune>")


def test_per_numa_node_pools_where_the_guest_cells_are_bound(blocks, host):
    assert blocks.run("hugepages", "reserve", {}, "g1", domain("g1", NUMA, 1088)).rc == 0
    got = pages(host)
    assert got[("node0", 2048)] == 32 and got[("node1", 1048576)] == 1 and got[("global", 2048)] == 0
    assert blocks.run("hugepages", "release", {}, "g1", "", op="release", sub="end").rc == 0
    assert set(pages(host).values()) == {0}


def test_whole_guest_bound_to_one_node(blocks, host):
    xml = domain("g1", HP + "<numatune><memory mode='strict' nodeset='1'/></numatune>", 64)
    assert blocks.run("hugepages", "reserve", {}, "g1", xml).rc == 0
    assert pages(host)[("node1", 2048)] == 32


def test_failure_on_the_second_node_gives_back_the_first(blocks, host):
    node1 = host[("node1", 1048576)]
    node1.unlink()
    node1.mkdir()                                      # writing the count fails (EISDIR), as a refusing kernel would
    ran = blocks.run("hugepages", "reserve", {}, "g1", domain("g1", NUMA, 1088))
    assert ran.rc == 1
    assert ran.stderr.startswith("virthooks hugepages: g1: cannot reserve 1 x 1048576 kB pages on host NUMA node 1")
    assert ran.stderr.endswith("; rolled back what was reserved\n") and ran.stderr.count("\n") == 1
    assert pages(host)[("node0", 2048)] == 0 and blocks.state_of("hugepages", "g1") is None


def test_a_kernel_that_provides_nothing_is_refused_and_rolled_back(blocks, host):
    """node1's count reads back empty (a symlink to /dev/null): the reservation did not happen."""
    node1 = host[("node1", 1048576)]
    node1.unlink()
    os.symlink("/dev/null", node1)
    ran = blocks.run("hugepages", "reserve", {}, "g1", domain("g1", NUMA, 1088))
    assert ran.rc == 1 and "rolled back what was reserved" in ran.stderr
    assert pages(host)[("node0", 2048)] == 0


def test_a_guest_larger_than_the_available_memory_is_refused_with_the_host_unchanged(blocks, host, tmp_path):
    ran = blocks.run("hugepages", "reserve", {}, "big", domain("big", HP, 8192))
    assert ran.rc == 1
    assert ran.stderr == ("virthooks hugepages: big: needs 8192 MiB of huge pages (4096 x 2048 kB pages) but the host "
                          "has only 4096 MiB available; nothing was reserved\n")
    assert set(pages(host).values()) == {0} and (tmp_path / "proc/sys/vm/compact_memory").read_text() == ""


def test_a_page_size_the_host_has_no_pool_for_is_named(blocks, host):
    xml = domain("g1", "<memoryBacking><hugepages><page size='16' unit='MiB'/></hugepages></memoryBacking>", 64)
    ran = blocks.run("hugepages", "reserve", {}, "g1", xml)
    assert ran.rc == 1 and "the host has no pool of 16384 kB pages" in ran.stderr


@pytest.mark.parametrize("xml", [domain("g1", "", 64), domain("g1", "<memoryBacking><nosharepages/></memoryBacking>"), ""])
def test_guests_without_hugepage_backing_are_left_alone(blocks, host, xml):
    assert blocks.run("hugepages", "reserve", {}, "g1", xml).rc == 0
    assert set(pages(host).values()) == {0} and not (blocks.state / "hugepages" / "g1.json").exists()


def test_release_of_a_guest_that_reserved_nothing_does_nothing(blocks, host):
    host[("global", 2048)].write_text("7\n")
    assert blocks.run("hugepages", "release", {}, "g1", "", op="release", sub="end").rc == 0
    assert pages(host)[("global", 2048)] == 7


def test_bad_xml_is_one_line(blocks, host):
    ran = blocks.run("hugepages", "reserve", {}, "g1", "<domain><memory>")
    assert ran.rc == 1 and ran.stderr.startswith("virthooks hugepages: g1: the XML on stdin is not well-formed")
