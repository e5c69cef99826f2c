"""cpu_isolation: the real cgroup v1 cpuset hierarchy of this machine (a test group of our own), a fake cgroup v2
tree, and systemd through a fake systemctl that keeps the properties and shows them as systemd 257 does
(tests/integration/test_library_systemd.py runs the block against real systemd on a fleet host)."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import domain

V1 = Path("/sys/fs/cgroup/cpuset")


def pinned(name, *cpus):
    pins = "".join("<vcpupin vcpu='%d' cpuset='%s'/>" % (i, c) for i, c in enumerate(cpus))
    return domain(name, "<cputune>%s</cputune>" % pins)


@pytest.fixture
def online(blocks, tmp_path):
    cpu = tmp_path / "sys" / "devices" / "system" / "cpu"
    cpu.mkdir(parents=True)
    (cpu / "online").write_text("0-3\n")
    blocks.paths["sys"] = str(tmp_path / "sys")


@pytest.fixture
def v2(blocks, tmp_path, online):
    root = tmp_path / "cgroup"
    for group in ("system", "user", "machine"):
        (root / group).mkdir(parents=True)
        (root / group / "cpuset.cpus").write_text("\n")
    (root / "cgroup.controllers").write_text("cpuset cpu memory\n")
    blocks.paths.update(cgroup=str(root), systemd=str(tmp_path / "no-systemd"))
    return root


def cpus(root, group):
    return (root / group / "cpuset.cpus").read_text().strip()


def test_v2_two_guests_isolate_and_restore_in_any_order(blocks, v2):
    assert blocks.run("cpu_isolation", "isolate", {}, "a", pinned("a", "2-3")).rc == 0
    assert cpus(v2, "system") == cpus(v2, "user") == "0-1" and cpus(v2, "machine") == ""
    assert blocks.run("cpu_isolation", "isolate", {}, "b", pinned("b", "1")).rc == 0
    assert cpus(v2, "system") == "0"
    assert blocks.run("cpu_isolation", "restore", {}, "a", "", op="release", sub="end").rc == 0
    assert cpus(v2, "system") == "0,2-3"
    assert blocks.run("cpu_isolation", "restore", {}, "b", "", op="release", sub="end").rc == 0
    assert cpus(v2, "system") == cpus(v2, "user") == "" and not (blocks.state / "cpu_isolation" / ".original.json").exists()


def test_isolating_twice_changes_nothing(blocks, v2):
    for _ignored in range(2):
        assert blocks.run("cpu_isolation", "isolate", {}, "a", pinned("a", "3", "2")).rc == 0
    assert cpus(v2, "system") == "0-1"


def test_pinning_every_cpu_is_refused_with_the_host_unchanged(blocks, v2):
    ran = blocks.run("cpu_isolation", "isolate", {}, "a", pinned("a", "0-3"))
    assert ran.rc == 1 and ran.stderr == "virthooks cpu_isolation: a: isolating CPUs 0-3 would leave no CPU for the host\n"
    assert cpus(v2, "system") == ""


def test_offline_cpu_is_refused(blocks, v2):
    ran = blocks.run("cpu_isolation", "isolate", {}, "a", pinned("a", "7"))
    assert ran.rc == 1 and "not online" in ran.stderr


def test_failure_on_the_second_cgroup_puts_the_first_back(blocks, v2):
    """Shrinking goes user, then system; system's file reads "0-1" but refuses writes (a real read-only sysfs file)."""
    (v2 / "system" / "cpuset.cpus").unlink()
    (v2 / "system" / "cpuset.cpus").symlink_to("/sys/devices/system/cpu/online")
    ran = blocks.run("cpu_isolation", "isolate", {}, "a", pinned("a", "1"))
    assert ran.rc == 1 and ran.stderr.startswith("virthooks cpu_isolation: a: cannot set cpuset.cpus of system to '0'")
    assert ran.stderr.endswith("; every cgroup was put back\n")
    assert cpus(v2, "user") == "" and blocks.state_of("cpu_isolation", "a") is None
    assert not (blocks.state / "cpu_isolation" / ".original.json").exists()


def test_guests_without_vcpupin_are_left_alone(blocks, v2):
    assert blocks.run("cpu_isolation", "isolate", {}, "a", domain("a", "<cputune><shares>10</shares></cputune>")).rc == 0
    assert cpus(v2, "system") == ""


# systemctl as far as the block uses it: `set-property --runtime UNIT AllowedCPUs=X` keeps X, `show -p
# AllowedCPUs --value UNIT` prints it with spaces between ranges, as systemd does ('0,2-3' shows '0 2-3').
FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> %(calls)s
case $1 in
  show) cat %(units)s/"$5" 2>/dev/null | tr ',' ' '; echo ;;
  set-property) printf '%%s' "${4#AllowedCPUs=}" > %(units)s/"$3" ;;
esac
"""


class FakeSystemd:
    def __init__(self, tmp_path: Path):
        self.units, self.calls_file = tmp_path / "units", tmp_path / "calls"
        self.units.mkdir()
        self.cgroup = tmp_path / "cgroup2"
        self.cgroup.mkdir()
        self.controllers("cpuset cpu io memory pids")
        self.systemctl = tmp_path / "systemctl"
        self.systemctl.write_text(FAKE_SYSTEMCTL % {"calls": self.calls_file, "units": self.units})
        self.systemctl.chmod(0o755)

    def controllers(self, text):
        """cgroup v2 with these controllers at the cgroup root, or (None) a v1/hybrid layout without it."""
        path = self.cgroup / "cgroup.controllers"
        if text is None:
            path.unlink()
        else:
            path.write_text(text + "\n")

    def allowed(self, unit):
        path = self.units / unit
        return path.read_text() if path.exists() else ""

    def calls(self):
        return self.calls_file.read_text().splitlines() if self.calls_file.exists() else []


@pytest.fixture
def systemd(blocks, tmp_path, online):
    fake = FakeSystemd(tmp_path)
    (tmp_path / "systemd").mkdir()
    blocks.paths.update(systemd=str(tmp_path / "systemd"), systemctl=str(fake.systemctl), cgroup=str(fake.cgroup))
    return fake


UNITS = {"units": ["system.slice", "user.slice"]}


def test_systemd_slices_get_allowed_cpus_and_back(blocks, systemd):
    assert blocks.run("cpu_isolation", "isolate", UNITS, "a", pinned("a", "1-2")).rc == 0
    assert systemd.allowed("system.slice") == systemd.allowed("user.slice") == "0,3"
    assert blocks.run("cpu_isolation", "restore", UNITS, "a", "", op="release", sub="end").rc == 0
    assert systemd.calls() == [
        "show -p AllowedCPUs --value system.slice", "show -p AllowedCPUs --value user.slice",
        "show -p AllowedCPUs --value user.slice", "set-property --runtime user.slice AllowedCPUs=0,3",
        "show -p AllowedCPUs --value system.slice", "set-property --runtime system.slice AllowedCPUs=0,3",
        "set-property --runtime system.slice AllowedCPUs=", "set-property --runtime user.slice AllowedCPUs="]


def test_systemd_ranges_shown_with_spaces_are_narrowed_and_restored_exactly(blocks, systemd):
    """An admin's AllowedCPUs=0,2-3 shows as '0 2-3': it is read, narrowed, and given back as it was shown."""
    (systemd.units / "user.slice").write_text("0,2-3")
    ran = blocks.run("cpu_isolation", "isolate", UNITS, "a", pinned("a", "2"))
    assert ran.rc == 0, ran
    assert systemd.allowed("user.slice") == "0,3" and systemd.allowed("system.slice") == "0-1,3"
    assert blocks.run("cpu_isolation", "restore", UNITS, "a", "", op="release", sub="end").rc == 0
    assert systemd.allowed("user.slice") == "0 2-3" and systemd.allowed("system.slice") == ""


def test_systemd_units_already_right_are_not_set_again(blocks, systemd):
    """A second guest on the same CPU changes nothing: '0,3' is shown as '0 3' and still equal."""
    assert blocks.run("cpu_isolation", "isolate", UNITS, "a", pinned("a", "1-2")).rc == 0
    calls = len(systemd.calls())
    assert blocks.run("cpu_isolation", "isolate", UNITS, "b", pinned("b", "2")).rc == 0
    assert [c for c in systemd.calls()[calls:] if c.startswith("set-property")] == []
    assert blocks.state_of("cpu_isolation", "b") == {"cpus": [2], "mode": "systemd"}


@pytest.mark.parametrize("controllers, why", [
    (None, "%(cgroup)s is not cgroup v2 (v1/hybrid layout)"),
    ("cpu io memory pids", "cgroup v2 at %(cgroup)s has no cpuset controller"),
], ids=["v1-or-hybrid", "v2-without-cpuset"])
def test_auto_refuses_systemd_that_would_not_apply_allowed_cpus(blocks, systemd, controllers, why):
    systemd.controllers(controllers)
    ran = blocks.run("cpu_isolation", "isolate", UNITS, "a", pinned("a", "1"))
    assert ran.rc == 1
    assert ran.stderr == (
        "virthooks cpu_isolation: a: systemd would not apply AllowedCPUs here: %s; boot with "
        "systemd.unified_cgroup_hierarchy=1, or set mode (cgroup_v1 with cgroups of your own, or systemd to set it "
        "anyway)\n" % (why % {"cgroup": systemd.cgroup}))
    assert systemd.calls() == [] and blocks.state_of("cpu_isolation", "a") is None
    assert not (blocks.state / "cpu_isolation" / ".original.json").exists()


def test_mode_systemd_on_a_v1_layout_sets_the_property_and_logs_that_it_is_not_applied(blocks, systemd):
    systemd.controllers(None)
    params = dict(UNITS, mode="systemd")
    ran = blocks.run("cpu_isolation", "isolate", params, "a", pinned("a", "1"))
    assert ran.rc == 0, ran
    assert systemd.allowed("system.slice") == "0,2-3"
    assert ran.stdout.endswith(" cpu_isolation: host processes on 0,2-3, 1 kept for guests "
                               "(systemd, NOT applied: %s is not cgroup v2 (v1/hybrid layout))\n" % systemd.cgroup)
    assert blocks.run("cpu_isolation", "restore", params, "a", "", op="release", sub="end").rc == 0
    assert systemd.allowed("system.slice") == ""


@pytest.fixture
def v1_group():
    """A cpuset v1 group (with a child holding a real process) on this machine's real hierarchy."""
    if not (V1 / "cpuset.cpus").exists():
        pytest.fail("this test needs the cgroup v1 cpuset hierarchy at %s (Debian 12 test machine)" % V1)
    if len(os.sched_getaffinity(0)) < 2:
        pytest.fail("this test needs at least 2 CPUs")
    top = V1 / ("vhlib-test-%d" % os.getpid())
    child = top / "child"
    all_cpus = (V1 / "cpuset.cpus").read_text().strip()
    mems = (V1 / "cpuset.mems").read_text().strip()
    top.mkdir()
    for group in (top, child):
        if group is child:
            child.mkdir()
        (group / "cpuset.cpus").write_text(all_cpus)
        (group / "cpuset.mems").write_text(mems)
    sleeper = subprocess.Popen(["sleep", "600"])
    (child / "cgroup.procs").write_text(str(sleeper.pid))
    try:
        yield top, all_cpus, sleeper
    finally:
        sleeper.kill()
        sleeper.wait()
        for group in (child, top):
            for _ignored in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


@pytest.mark.root
def test_real_cgroup_v1_cpuset_group_and_its_children_shrink_and_grow_back(blocks, v1_group):
    top, all_cpus, sleeper = v1_group
    last = max(int(c) for c in all_cpus.replace("-", ",").split(","))
    params = {"cgroups": [top.name], "mode": "cgroup_v1"}
    ran = blocks.run("cpu_isolation", "isolate", params, "a", pinned("a", str(last)))
    assert ran.rc == 0, ran
    host = (top / "cpuset.cpus").read_text().strip()
    assert str(last) not in host.replace("-", ",").split(",") or host == "0"
    assert (top / "child" / "cpuset.cpus").read_text().strip() == host
    assert last not in os.sched_getaffinity(sleeper.pid)
    ran = blocks.run("cpu_isolation", "restore", params, "a", "", op="release", sub="end")
    assert ran.rc == 0, ran
    assert (top / "cpuset.cpus").read_text().strip() == (top / "child" / "cpuset.cpus").read_text().strip() == all_cpus
