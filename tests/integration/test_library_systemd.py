"""The library block cpu_isolation against real systemd: systemd 257 as PID 1 of the fleet's `trixie-systemd`
host (Debian 13, libvirt 11.3), the role deployed through deploy_hooks.yml, real guests started with `virsh`.

What runs for real: `systemctl set-property --runtime` on system.slice, user.slice and init.scope and
`systemctl show -p AllowedCPUs` reading them back (systemd's own format, '0 2-3'); the values restored
exactly when the guest goes; the dispatcher's records; the state under /run/virthooks; refusals shown by
`virsh` with the block's one line and nothing changed.

What is NOT enforced here, and why (the `layout` fixture asserts each fact): this machine's kernel runs the
hybrid cgroup layout, with the cpuset controller bound to its v1 hierarchy. In the container, systemd finds
/sys/fs/cgroup as a tmpfs of v1 hierarchies plus a controller-less cgroup2 at /sys/fs/cgroup/unified (it
taints itself `cgroupsv1`). systemd manages cpusets only on cgroup v2, so AllowedCPUs is stored (drop-ins
under /run/systemd) and shown, but no cpuset group exists for the slices (none in the v1 cpuset hierarchy, no
cpuset.cpus.effective in the unified one), EffectiveCPUs stays empty and every host process keeps all CPUs.
The test checks exactly that, and that mode `auto` refuses a guest there instead of pretending. Where
/sys/fs/cgroup is cgroup v2 with cpuset (not on this machine), the same test checks the slices'
cpuset.cpus.effective and the host processes' affinity instead, and `auto` isolating.
"""
from __future__ import annotations

import json
import time
from functools import partial

import pytest

from tests.support import fleet_host as fh

pytestmark = [pytest.mark.podman, pytest.mark.root]  # the fleet: rootful podman

HOST = "vhci-systemd"
UNITS = ("system.slice", "user.slice", "init.scope")
STATE = "/run/virthooks/cpu_isolation"
DISPATCH_LOG = "/var/log/libvirt/virthooks.jsonl"
# An admin's own AllowedCPUs with two ranges (systemd keeps it as given, CPUs 2-3 need not exist): systemd shows
# it as '0 2-3', which the block has to read, narrow and give back exactly.
ADMIN_USER_SLICE = "0,2-3"

in_host = partial(fh.in_host, HOST)


def cpus(text: str) -> set:
    """'0-1', '0 2-3', '0,2-3' -> a set of CPUs."""
    out = set()
    for part in text.replace(",", " ").split():
        lo, _sep, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def guest_xml(name: str, cpu: int) -> str:
    return ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<cputune><vcpupin vcpu='0' cpuset='%d'/></cputune>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><memballoon model='none'/></devices>"
            "</domain>" % (name, cpu))


def virsh(*args: str, check: bool = True):
    return in_host("virsh -q -c qemu:///system %s" % " ".join(args), check=check)


def create(name: str, cpu: int, check: bool = True):
    in_host("cat >/tmp/%s.xml <<'EOF'\n%s\nEOF" % (name, guest_xml(name, cpu)))
    return virsh("create", "/tmp/%s.xml" % name, check=check)


def allowed() -> dict:
    """AllowedCPUs of each unit, as `systemctl show` prints it."""
    return {unit: in_host("systemctl show -p AllowedCPUs --value %s" % unit).stdout.strip() for unit in UNITS}


def affinity(pid: int) -> set:
    status = in_host("cat /proc/%d/status" % pid).stdout
    return cpus(next(line.split(":", 1)[1] for line in status.splitlines() if line.startswith("Cpus_allowed_list:")))


def libvirtd_pid() -> int:
    return int(in_host("systemctl show -p MainPID --value libvirtd.service").stdout.strip())


def state_files() -> dict:
    """name -> parsed JSON of every file in the block's state dir but its lock."""
    out = in_host("cd %s 2>/dev/null && for f in *.json .original.json; do [ -f \"$f\" ] && "
                  "printf '%%s\\t%%s\\n' \"$f\" \"$(cat \"$f\")\"; done; true" % STATE).stdout
    return {name: json.loads(body) for name, body in (line.split("\t", 1) for line in out.splitlines())}


def dispatched(guest: str, operation: str, timeout: float = 10) -> list:
    """The dispatcher's records of this guest's `operation` (waits for the first one to arrive)."""
    end = time.monotonic() + timeout
    while True:
        out = in_host("grep -F '\"object\":\"%s\"' %s || true" % (guest, DISPATCH_LOG)).stdout
        found = [rec for rec in map(json.loads, out.splitlines()) if rec["operation"] == operation]
        if found or time.monotonic() > end:
            return found
        time.sleep(0.2)


def slice_effective(unit: str, layout: dict) -> str | None:
    """cpuset.cpus.effective of the unit's cgroup in the unified hierarchy (where systemd keeps the unit's
    processes: the group must exist), None when the group has no such file."""
    group = in_host("systemctl show -p ControlGroup --value %s" % unit).stdout.strip()
    path = layout["unified"] + group
    assert in_host("test -d '%s'" % path, check=False).returncode == 0, "no cgroup %s for %s" % (path, unit)
    proc = in_host("cat '%s/cpuset.cpus.effective'" % path, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.fixture(scope="module")
def host():
    try:
        fh.fleet_up(HOST, "trixie-systemd")
        yield HOST
    finally:
        fh.fleet_down(HOST)


@pytest.fixture(scope="module")
def layout(host):
    """What systemd sees in the container; `applies`: whether systemd can turn AllowedCPUs into cpusets."""
    v2_root = in_host("cat /sys/fs/cgroup/cgroup.controllers", check=False)
    found = {
        "pid1": in_host("cat /proc/1/comm").stdout.strip(),
        "systemd": in_host("systemctl --version").stdout.split("\n")[0],
        "fstype": in_host("stat -fc %T /sys/fs/cgroup").stdout.strip(),
        "pid1_cgroup": in_host("cat /proc/1/cgroup").stdout,
        "tainted": in_host("systemctl show -p Tainted --value").stdout.strip(),
        "online": cpus(in_host("cat /sys/devices/system/cpu/online").stdout),
        "v2_controllers": v2_root.stdout.split() if v2_root.returncode == 0 else None,
    }
    found["unified"] = "/sys/fs/cgroup" if found["v2_controllers"] is not None else "/sys/fs/cgroup/unified"
    found["unified_controllers"] = in_host("cat %s/cgroup.controllers" % found["unified"]).stdout.split()
    found["applies"] = "cpuset" in (found["v2_controllers"] or [])
    assert found["pid1"] == "systemd" and found["systemd"].startswith("systemd 257 "), found
    assert len(found["online"]) >= 2, "needs 2 online CPUs in the container: %s" % found
    if not found["applies"]:
        # This machine: hybrid layout, systemd on v1 (name=systemd) with a controller-less cgroup2 beside it,
        # cpuset on its own v1 hierarchy where systemd creates no group.
        assert found["fstype"] == "tmpfs" and found["v2_controllers"] is None, found
        assert "cgroupsv1" in found["tainted"].split(":"), found
        assert "cpuset" not in found["unified_controllers"], found
        assert ":name=systemd:" in found["pid1_cgroup"] and ":cpuset:" in found["pid1_cgroup"], found
    print("cgroup layout seen by systemd in %s: %s" % (HOST, found))
    return found


@pytest.fixture(scope="module")
def deployed(host, tmp_path_factory):
    """deploy(library params): the role through deploy_hooks.yml, run again only when the params change."""
    work, last = tmp_path_factory.mktemp("deploy"), []

    def deploy(params: dict) -> None:
        if last != [params]:
            fh.deploy(HOST, work, [], libvirt_hooks_library={"cpu_isolation": dict(params, guests=["vhci-*"])})
            last[:] = [params]
    return deploy


@pytest.fixture
def guests(host):
    """Names of the guests this test starts; destroyed afterwards whatever happened."""
    names = []
    yield names
    for name in names:
        virsh("destroy", name, check=False)


def test_auto_mode_refuses_where_systemd_would_not_apply_allowed_cpus(layout, deployed, guests):
    deployed({})
    cpu, before = max(layout["online"]), allowed()
    guests.append("vhci-auto")
    proc = create("vhci-auto", cpu, check=False)
    if layout["applies"]:
        assert proc.returncode == 0, proc.stderr
        assert all(cpu not in cpus(value) for value in allowed().values()), allowed()
        return
    assert proc.returncode != 0
    line = ("virthooks cpu_isolation: vhci-auto: systemd would not apply AllowedCPUs here: /sys/fs/cgroup is not "
            "cgroup v2 (v1/hybrid layout); boot with systemd.unified_cgroup_hierarchy=1, or set mode (cgroup_v1 with "
            "cgroups of your own, or systemd to set it anyway)")
    assert "script 'lib-cpu_isolation-isolate' failed with exit status 1: %s" % line in proc.stderr, proc.stderr
    assert "vhci-auto" not in virsh("list", "--all", "--name").stdout.split()
    assert allowed() == before and state_files() == {}
    [rec] = dispatched("vhci-auto", "prepare")
    assert rec["result"] == "failed" and rec["scripts"][0]["stderr"] == line + "\n", rec


def test_systemd_allowed_cpus_set_for_the_guest_and_restored_exactly(layout, deployed, guests):
    deployed({"mode": "systemd"})
    in_host("systemctl set-property --runtime user.slice AllowedCPUs=%s" % ADMIN_USER_SLICE)
    before = allowed()
    assert before == {"system.slice": "", "user.slice": "0 2-3", "init.scope": ""}, before
    cpu = max(layout["online"])
    host_cpus = layout["online"] - {cpu}
    pid1_before, libvirtd_before = affinity(1), affinity(libvirtd_pid())

    guests.append("vhci-pin")
    create("vhci-pin", cpu)
    assert virsh("domstate", "vhci-pin").stdout.strip() == "running"
    during = allowed()
    assert {unit: cpus(value) for unit, value in during.items()} == {
        "system.slice": host_cpus, "user.slice": host_cpus & cpus(ADMIN_USER_SLICE), "init.scope": host_cpus}, during
    assert state_files() == {
        "vhci-pin.json": {"cpus": [cpu], "mode": "systemd"},
        ".original.json": {"mode": "systemd", "targets": before}}
    [rec] = dispatched("vhci-pin", "prepare")
    how = "systemd" if layout["applies"] else "systemd, NOT applied: /sys/fs/cgroup is not cgroup v2 (v1/hybrid layout)"
    assert rec["result"] == "ok" and [s["name"] for s in rec["scripts"]] == ["lib-cpu_isolation-isolate"], rec
    assert rec["scripts"][0]["stdout"].endswith(" cpu_isolation: host processes on %s, %s kept for guests (%s)\n" % (
        ",".join(map(str, sorted(host_cpus))), cpu, how)), rec

    # What takes effect. libvirt pins the vCPU thread itself (not the block's doing):
    qemu = int(in_host("cat /run/libvirt/qemu/vhci-pin.pid").stdout)
    vcpu_tasks = in_host("grep -l '^CPU 0/' /proc/%d/task/*/comm" % qemu).stdout.split()
    assert [affinity(int(t.split("/")[4])) for t in vcpu_tasks] == [{cpu}]
    effective = {unit: slice_effective(unit, layout) for unit in UNITS}
    shown = {unit: in_host("systemctl show -p EffectiveCPUs --value %s" % unit).stdout.strip() for unit in UNITS}
    if layout["applies"]:
        assert {unit: cpus(value or "") for unit, value in effective.items()} == dict.fromkeys(UNITS, host_cpus)
        assert affinity(1) == affinity(libvirtd_pid()) == host_cpus
    else:
        # Stored and shown, applied nowhere: no cpuset file for the slices in the unified hierarchy, no group for
        # them in the v1 cpuset hierarchy (host processes sit in the container's root cpuset), no EffectiveCPUs,
        # and PID 1 (init.scope) and libvirtd (system.slice) keep every CPU.
        assert effective == dict.fromkeys(UNITS), effective
        assert shown == dict.fromkeys(UNITS, ""), shown
        assert not set(UNITS) & set(in_host("ls /sys/fs/cgroup/cpuset").stdout.split())
        cpuset_of = {pid: next(line for line in in_host("cat /proc/%d/cgroup" % pid).stdout.splitlines()
                               if ":cpuset:" in line) for pid in (1, libvirtd_pid())}
        assert len(set(cpuset_of.values())) == 1, cpuset_of
        assert cpus(in_host("cat /sys/fs/cgroup/cpuset/cpuset.effective_cpus").stdout) == layout["online"]
        assert affinity(1) == pid1_before == layout["online"]
        assert affinity(libvirtd_pid()) == libvirtd_before == layout["online"]
        dropin = in_host("cat /run/systemd/system.control/system.slice.d/50-AllowedCPUs.conf").stdout
        assert dropin.rstrip().endswith("AllowedCPUs=%s" % ",".join(map(str, sorted(host_cpus)))), dropin

    virsh("destroy", "vhci-pin")
    assert allowed() == before
    assert state_files() == {}
    [rec] = dispatched("vhci-pin", "release")
    assert rec["extra"] == "destroyed" and rec["result"] == "ok", rec
    assert rec["scripts"][0]["stdout"].endswith(" cpu_isolation: CPUs %d given back to the host\n" % cpu), rec
    if layout["applies"]:
        assert affinity(1) == layout["online"]
    in_host("systemctl set-property --runtime user.slice AllowedCPUs=")


def test_systemd_guest_pinned_to_an_offline_cpu_is_refused_and_nothing_changes(layout, deployed, guests):
    deployed({"mode": "systemd"})
    offline = max(layout["online"]) + 1
    before = allowed()
    guests.append("vhci-offline")
    proc = create("vhci-offline", offline, check=False)
    assert proc.returncode != 0
    online = in_host("cat /sys/devices/system/cpu/online").stdout.strip()
    line = "virthooks cpu_isolation: vhci-offline: vCPUs are pinned to CPUs %d that are not online (online: %s)" % (
        offline, online)
    assert "script 'lib-cpu_isolation-isolate' failed with exit status 1: %s" % line in proc.stderr, proc.stderr
    assert "vhci-offline" not in virsh("list", "--all", "--name").stdout.split()
    assert allowed() == before and state_files() == {}
    [rec] = dispatched("vhci-offline", "prepare")
    assert rec["result"] == "failed" and rec["scripts"][0]["stderr"] == line + "\n", rec
    # libvirt still calls release for the failed start: nothing recorded, nothing undone.
    [rec] = dispatched("vhci-offline", "release")
    assert rec["extra"] == "failed" and rec["result"] == "ok" and rec["scripts"][0].get("stdout", "") == "", rec
