"""A host booting systemd as PID 1 (Debian 13, libvirt 11.3 as Debian's systemd units), for real.

`fleet.sh up NAME=trixie-systemd` runs the trixie-libvirt image with podman's systemd mode and
/lib/systemd/systemd as PID 1 (no image of its own). hooks_info must see systemd and libvirtd's unit; the
role's reload (`systemctl reload libvirtd`: SIGHUP through the unit's ExecReload) and its restart
(`systemctl stop`, wait for the old pid, `systemctl start`) must go through systemd (its journal says so),
leave the daemon answering and a running guest running, and the hooks the run added must fire afterwards.
"""
from __future__ import annotations

import re

from functools import partial

import pytest

from tests.support import fleet_host as fh

HOST = "vh-systemd"
KEEP, NEW = "vh-sd-keep", "vh-sd-new"

pytestmark = [pytest.mark.podman, pytest.mark.root]  # the fleet: rootful podman

in_host = partial(fh.in_host, HOST)
records = partial(fh.records, HOST)


def guest_xml(name: str) -> str:
    return ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><memballoon model='none'/></devices>"
            "</domain>" % name)


def settle(start: int, count: int, timeout: float = 30) -> list:
    return fh.events(fh.settle(HOST, start, count, timeout))


def main_pid() -> int:
    return int(in_host("systemctl show -p MainPID --value libvirtd.service").stdout.strip())


def guest_pid(name: str) -> int:
    return int(in_host("cat /run/libvirt/qemu/%s.pid" % name).stdout.strip())


def journal() -> str:
    return in_host("journalctl -u libvirtd.service --no-pager -o cat").stdout


def ok_total(prom: str, name: str) -> int:
    """The sum of a counter's samples labelled result="ok" in a textfile."""
    return sum(int(line.rsplit(" ", 1)[1]) for line in prom.splitlines()
               if line.startswith(name + "{") and 'result="ok"' in line)


@pytest.fixture
def host():
    fh.fleet_up(HOST, "trixie-systemd")
    try:
        yield HOST
    finally:
        fh.fleet_down(HOST)


def test_systemd_host_reload_and_restart_through_systemd(host, tmp_path):
    assert in_host("cat /proc/1/comm").stdout.strip() == "systemd"
    info = fh.hooks_info(HOST)
    libvirtd = info["daemons"]["libvirtd"]
    assert info["init_system"] == "systemd" and info["mode"] == "monolithic" and info["version"] == "11.3.0", info
    assert libvirtd["service"] == "libvirtd" and libvirtd["service_file"] == "/usr/lib/systemd/system/libvirtd.service"
    assert libvirtd["enabled"] and libvirtd["running"] and libvirtd["pid"] == main_pid(), libvirtd

    # A guest that runs through everything below (it also keeps the socket-activated libvirtd from
    # exiting when idle, libvirtd --timeout 120).
    in_host("cat >/tmp/keep.xml <<'EOF'\n%s\nEOF\ncat >/tmp/new.xml <<'EOF'\n%s\nEOF\n"
            "virsh -c qemu:///system create /tmp/keep.xml" % (guest_xml(KEEP), guest_xml(NEW)))
    keep_pid, pid0 = guest_pid(KEEP), main_pid()

    # 1. New qemu and daemon entry points, restart auto: a reload through systemd, same daemon process.
    scripts = [{"name": "rec-qemu", "driver": "qemu", "content": fh.RECORDER},
               {"name": "rec-daemon", "driver": "daemon", "content": fh.RECORDER}]
    out = fh.deploy(HOST, tmp_path, scripts)
    assert fh.task_results(out, "Reload through the service manager so it rescans its hooks | libvirtd") == [
        "changed: [%s]" % HOST], out[-4000:]
    assert fh.task_results(out, "Send SIGHUP, no service manager knows this daemon | libvirtd") == [
        "skipping: [%s]" % HOST]
    assert "Reloaded libvirtd.service" in journal(), journal()[-2000:]
    assert main_pid() == pid0
    assert in_host("virsh -c qemu:///system domstate %s" % KEEP).stdout.strip() == "running"
    assert guest_pid(KEEP) == keep_pid

    # The hooks added by the run fire: a new guest started and destroyed (11.3 gives release its reason).
    mark = len(records())
    in_host("virsh -c qemu:///system create /tmp/new.xml && virsh -c qemu:///system destroy %s" % NEW)
    seen = settle(mark, 5)
    assert seen == [("rec-qemu", (NEW, op, sub, extra), "libvirtd") for op, sub, extra in
                    (("prepare", "begin", "-"), ("start", "begin", "-"), ("started", "begin", "-"),
                     ("stopped", "end", "-"), ("release", "end", "destroyed"))], seen

    # 2. A new network entry point with libvirt_hooks_restart: restart: stop and start through systemd.
    scripts.append({"name": "rec-network", "driver": "network", "content": fh.RECORDER})
    mark = len(records())
    out = fh.deploy(HOST, tmp_path, scripts, libvirt_hooks_restart="restart")
    for task in ("Stop the daemon | libvirtd", "Wait until the old process is gone | libvirtd"):
        assert fh.task_results(out, task) == ["ok: [%s]" % HOST] or fh.task_results(out, task) == [
            "changed: [%s]" % HOST], (task, out[-4000:])
    pid1 = main_pid()
    assert pid1 not in (0, pid0)
    log = journal()
    assert "Stopped libvirtd.service" in log and log.count("Started libvirtd.service") >= 2, log[-2000:]
    # The running guest survived (KillMode=process) and the new daemon took it back: reconnect hook.
    assert in_host("virsh -c qemu:///system domstate %s" % KEEP).stdout.strip() == "running"
    assert guest_pid(KEEP) == keep_pid
    seen = settle(mark, 3)
    log = journal()
    # libvirt (>= 9) gives up a graceful shutdown that takes too long ("Make forcefull daemon
    # shutdown") and exits without its cleanup, the daemon shutdown hook included: only then may the
    # shutdown record be missing. Either way, the journal and the dispatcher's log say what happened.
    dispatched = in_host("tail -n 8 /var/log/libvirt/virthooks.jsonl 2>/dev/null || true").stdout
    forced = re.search(r"[Ff]orcef+ul", log) is not None
    assert forced or ("rec-daemon", ("-", "shutdown", "-", "shutdown"), "libvirtd") in seen, \
        (seen, log[-3000:], dispatched)
    assert ("rec-daemon", ("-", "start", "-", "start"), "libvirtd") in seen, seen
    assert ("rec-qemu", (KEEP, "reconnect", "begin", "-"), "libvirtd") in seen, seen
    in_host("virsh -c qemu:///system destroy %s" % KEEP)

    # 3. The metrics job under real systemd: the role writes the service and timer, systemd runs them,
    #    and the textfile holds what the dispatcher logged above; turned off, the timer is gone.
    prom = "/var/lib/vh-textfile/virthooks.prom"
    metrics = {"textfile_dir": "/var/lib/vh-textfile", "interval": 2}
    # No node_exporter here: its directory is missing, and the role says so instead of installing a job
    # that would fail every 2 s where nobody looks.
    missing = fh.deploy_run(HOST, tmp_path, scripts, libvirt_hooks_metrics=metrics)
    assert missing.returncode != 0, missing.stdout[-3000:]
    assert "textfile_dir /var/lib/vh-textfile is not a directory on %s" % HOST in missing.stdout, missing.stdout[-3000:]
    assert in_host("ls /etc/systemd/system/ | grep -c virthooks-metrics || true").stdout.strip() == "0"
    in_host("mkdir -p /var/lib/vh-textfile")
    out = fh.deploy(HOST, tmp_path, scripts, libvirt_hooks_metrics=metrics)
    assert fh.task_results(out, "Start the metrics timer") == ["changed: [%s]" % HOST], out[-4000:]
    assert in_host("systemctl is-active virthooks-metrics.timer").stdout.strip() == "active"
    assert in_host("systemctl is-enabled virthooks-metrics.timer").stdout.strip() == "enabled"
    first = in_host("for i in $(seq 100); do [ -s %s ] && break; sleep 0.1; done; stat -c %%Y.%%s %s; cat %s"
                    % (prom, prom, prom)).stdout
    stamp, text = first.split("\n", 1)
    # Every script run the recorders saw was logged by the dispatcher, and counted.
    assert ok_total(text, "virthooks_script_runs_total") == len(records()) > 0, (len(records()), text[:3000])
    assert ok_total(text, "virthooks_calls_total") > 0
    # The timer fires again (every 2 s): systemd, not the role, keeps the file fresh.
    again = in_host("for i in $(seq 100); do [ \"$(stat -c %%Y.%%s %s)\" != %s ] && break; sleep 0.1; done; "
                    "stat -c %%Y.%%s %s" % (prom, stamp, prom)).stdout.strip()
    assert again != stamp, "the timer did not run the job again"
    units = in_host("journalctl -u virthooks-metrics.service --no-pager -o cat").stdout
    assert units.count("Finished virthooks-metrics.service") >= 2 or units.count("Deactivated successfully") >= 2, \
        units[-2000:]
    out = fh.deploy(HOST, tmp_path, scripts)
    assert in_host("systemctl is-active virthooks-metrics.timer", check=False).stdout.strip() in ("inactive", "")
    assert in_host("ls /etc/systemd/system/virthooks-metrics.timer /etc/systemd/system/virthooks-metrics.service "
                   "2>/dev/null || true").stdout.strip() == ""
