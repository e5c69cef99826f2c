"""Deploying hooks to a fleet of sandbox hosts from one controller, against Ansible's own floor.

For N = 10, 50, 200 sandbox hosts (libvirt_hooks_sandbox: each a directory of this machine that describes its
own libvirt, reached with the local connection) and forks 10 and 50, with S scripts per host, measures interleaved in one run:
  (floor)  a play that makes one ansible.builtin.ping call per host: the least any role can cost,
  (first)  playbooks/deploy_hooks.yml on fresh hosts,            (re-run)  the same again, changing nothing,
  (naive)  one copy task per script into hooks/qemu.d/, first run, (naive re) and again,
and for each: wall time, CPU time of ansible-playbook and every process it ran (with the local connection
the modules run on this machine too, so this is controller and module CPU together), module calls that
reach each host (controller-only actions such as set_fact excluded), task results per host (ok, changed,
skipped, failed, includes) and peak memory (PSS, sampled every 0.25 s) of the controller, ansible-playbook and
its worker processes (forks of it), and of the whole tree it ran (with the local connection, the modules' processes
and what they run: on a real fleet they run on the hosts).

Cost per host is (time - time of `--list-hosts` of the same playbook, the fixed start-up) / N, in CPU time
(and in wall time, shown as well).

Targets, checked at the largest N (200 in the default run) and every forks value, on CPU time (the
controller's work, which other load on a shared machine hardly changes; --wall checks wall time instead):
  re-run  <= 1.5 x floor, and 1 module call per host
  first   <= 2.5 x floor
  re-run cost per host at the largest N <= 1.2 x that at the smallest N (flat with the fleet's size)
  peak memory of the controller (ansible-playbook and its workers) in any run < 1 GiB
It exits 1 when a target is missed, unless --report-only (or --quick, which only proves the benchmark runs:
10 hosts, forks 10, 3 scripts, no targets; tests/integration/test_fleet_benchmark.py runs it).

The naive play makes a module call per script and host (10 scripts: 4 s a host here); it runs at the
smallest N only unless --naive-hosts names more.

Usage: benchmarks/fleet.py [--hosts 10,50,200] [--forks 10,50] [--scripts 10] [--naive-hosts 10]
                           [--report-only] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PING = """
- name: The floor, one module call per host
  hosts: hypervisors
  gather_facts: false
  tasks:
    - name: Ping each host
      ansible.builtin.ping:
"""
NAIVE = """
- name: Naive hook deployment, one copy task per script
  hosts: hypervisors
  gather_facts: false
  tasks:
    - name: Create the native hooks directory
      ansible.builtin.file:
        path: "{{ libvirt_hooks_sandbox.dir }}/etc/libvirt/hooks/qemu.d"
        state: directory
        mode: "0755"
    - name: Copy each hook script
      ansible.builtin.copy:
        content: "{{ item.content }}"
        dest: "{{ libvirt_hooks_sandbox.dir }}/etc/libvirt/hooks/qemu.d/{{ item.name }}"
        mode: "0755"
      loop: "{{ libvirt_hooks_scripts }}"
      loop_control:
        label: "{{ item.name }}"
"""
GIB = 1 << 30
# The hosts' Python: the system's, which interpreter discovery finds on a real hypervisor (and which the
# entry points run), not the controller's venv; the floor and the role are measured under the same one.
HOST_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def inventory(base: Path, hosts: int, scripts: int) -> Path:
    script_list = [{"name": "hook-%02d" % i, "operations": ["prepare"], "objects": ["guest-%02d" % i],
                    "content": "#!/bin/sh\n# hook %d\nexit 0\n" % i} for i in range(scripts)]
    names = ["bench-%03d" % i for i in range(hosts)]
    for name in names:
        (base / name / "etc" / "libvirt").mkdir(parents=True, exist_ok=True)
    inv = {"hypervisors": {"hosts": {n: {} for n in names}, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": HOST_PYTHON, "ansible_become": False,
        "ansible_remote_tmp": str(base / "tmp"),
        # A sandbox host (examples/inventory/sandbox.yml): its libvirt is this description, nothing of this
        # machine's libvirt, systemd or cron is looked at or run, and everything deployed stays in its dir.
        "libvirt_hooks_sandbox": {"dir": str(base) + "/{{ inventory_hostname }}", "version": "10.0.0",
                                  "daemons": ["libvirtd"]},
        "libvirt_hooks_restart": "never", "libvirt_hooks_scripts": script_list}}}
    path = base / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def _tree_pss(root: int) -> tuple:
    """(bytes of PSS of root and its descendants, of those that are root or forks of it, the controller's: a fork
    keeps root's command line, a process it ran does not); (0, 0) for a process already gone."""
    children: dict = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    command = _cmdline(root)
    total, controller, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                pss = next((int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:")), 0)
        except OSError:
            continue
        total += pss
        if command is not None and _cmdline(pid) == command:
            controller += pss
    return total, controller


def _cmdline(pid: int):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return None


def env_for(count_file: Path) -> dict:
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "tests" / "output" / "collections"),
                ANSIBLE_CONFIG=str(REPO / "tests" / "ansible.cfg"), VIRTHOOKS_COUNT_FILE=str(count_file),
                VIRTHOOKS_RESULTS_FILE=str(count_file.with_suffix(".results.json")),
                ANSIBLE_CALLBACK_PLUGINS=str(REPO / "benchmarks" / "callback_plugins"),
                ANSIBLE_CALLBACKS_ENABLED="count_calls", PATH=str(VENV_BIN) + os.pathsep + os.environ["PATH"])


def run(playbook: Path, inv: Path, forks: int, count_file: Path, extra: tuple = ()) -> dict:
    """One ansible-playbook run: wall, cpu (s), peak memory (bytes), calls and results per host."""
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "-f", str(forks), *extra, str(playbook)]
    out = tempfile.TemporaryFile(mode="w+")
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env_for(count_file))
    peak = [0, 0]
    done = threading.Event()

    def sample():
        while not done.wait(0.25):
            total, controller = _tree_pss(proc.pid)
            peak[0], peak[1] = max(peak[0], controller), max(peak[1], total)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    out.seek(0)
    if proc.returncode != 0:
        raise SystemExit("%s failed (exit %d):\n%s" % (playbook, proc.returncode, out.read()[-4000:]))
    result = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "mem": peak[0], "mem_tree": peak[1],
              "calls": 0.0, "results": 0.0}
    if count_file.exists():
        calls = json.loads(count_file.read_text())
        results = json.loads(count_file.with_suffix(".results.json").read_text())
        hosts = max(1, len(results))
        result["calls"] = sum(calls.values()) / hosts
        result["results"] = sum(results.values()) / hosts
    return result


def measure(hosts: int, forks: int, scripts: int, naive: Path, ping: Path, with_naive: bool) -> dict:
    """The floor, virthooks and the naive play on the same number of fresh hosts, interleaved."""
    deploy = REPO / "playbooks" / "deploy_hooks.yml"
    rows: dict = {}
    ours = Path(tempfile.mkdtemp(prefix="vh-fleet-"))
    theirs = Path(tempfile.mkdtemp(prefix="vh-naive-"))
    try:
        inv, naive_inv = inventory(ours, hosts, scripts), inventory(theirs, hosts, scripts)
        start = run(deploy, inv, forks, ours / "c0.json", ("--list-hosts",))
        floor1 = run(ping, inv, forks, ours / "c1.json")
        rows["first"] = run(deploy, inv, forks, ours / "c2.json")
        if with_naive:
            rows["naive"] = run(naive, naive_inv, forks, theirs / "c3.json")
        floor2 = run(ping, inv, forks, ours / "c4.json")
        rows["re-run"] = run(deploy, inv, forks, ours / "c5.json")
        if with_naive:
            rows["naive re"] = run(naive, naive_inv, forks, theirs / "c6.json")
        floor3 = run(ping, inv, forks, ours / "c7.json")
    finally:
        shutil.rmtree(ours, ignore_errors=True)
        shutil.rmtree(theirs, ignore_errors=True)
    # the median of three, taken before, between and after
    rows["floor"] = {k: sorted(f[k] for f in (floor1, floor2, floor3))[1] for k in floor1}
    for row in rows.values():
        row["per_host"] = max(0.0, row["wall"] - start["wall"]) / hosts
        row["cpu_per_host"] = max(0.0, row["cpu"] - start["cpu"]) / hosts
    rows["start"] = start
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="10,50,200")
    parser.add_argument("--forks", default="10,50")
    parser.add_argument("--scripts", type=int, default=None, help="scripts per host (10; --quick: 3)")
    parser.add_argument("--naive-hosts", default=None,
                        help="the host counts that also run the naive play (default: the smallest; it makes "
                             "a module call per script and host, 15 minutes at 200 hosts)")
    parser.add_argument("--report-only", action="store_true", help="exit 0 even when a target is missed")
    parser.add_argument("--wall", action="store_true", help="check the targets on wall time, not CPU time")
    parser.add_argument("--quick", action="store_true", help="10 hosts, forks 10, no targets: the benchmark runs")
    args = parser.parse_args()
    if args.quick:
        args.hosts, args.forks, args.naive_hosts, args.report_only = "10", "10", "10", True
    if args.scripts is None:
        args.scripts = 3 if args.quick else 10
    link = REPO / "tests" / "output" / "collections" / "ansible_collections" / "virthooks" / "libvirt"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    work = Path(tempfile.mkdtemp(prefix="vh-bench-plays-"))
    naive, ping = work / "naive.yml", work / "ping.yml"
    naive.write_text(NAIVE)
    ping.write_text(PING)
    print("Deploying %d scripts per host, %s, %d CPU(s), load %.1f, ansible-core from %s, hosts' Python %s" % (
        args.scripts, time.strftime("%Y-%m-%d"), os.cpu_count() or 0, os.getloadavg()[0], VENV_BIN, HOST_PYTHON))
    print("cpu = ansible-playbook and every process it ran (local connection: modules included); "
          "per host = (wall - start-up) / hosts")
    print("mem = peak PSS of the controller (ansible-playbook and its workers) / of the whole tree it ran (modules "
          "included: on a real fleet they run on the hosts)")
    print("%5s %5s  %-9s %8s %8s %9s %9s %8s %8s %13s" % (
        "hosts", "forks", "run", "wall s", "cpu s", "wall/host", "cpu/host", "calls/h", "tasks/h", "mem MiB"))
    hosts_list = [int(h) for h in args.hosts.split(",")]
    forks_list = [int(f) for f in args.forks.split(",")]
    naive_hosts = [int(h) for h in args.naive_hosts.split(",")] if args.naive_hosts else [min(hosts_list)]
    table: dict = {}
    try:
        for forks in forks_list:
            for hosts in hosts_list:
                rows = measure(hosts, forks, args.scripts, naive, ping, hosts in naive_hosts)
                table[(hosts, forks)] = rows
                for label in ("floor", "first", "re-run", "naive", "naive re"):
                    if label not in rows:
                        continue
                    r = rows[label]
                    print("%5d %5d  %-9s %8.2f %8.2f %8.3fs %8.3fs %8.1f %8.1f %6.0f / %4.0f" % (
                        hosts, forks, label, r["wall"], r["cpu"], r["per_host"], r["cpu_per_host"], r["calls"],
                        r["results"], r["mem"] / (1 << 20), r["mem_tree"] / (1 << 20)))
                print("%5d %5d  %-9s %8.2f %8.2f   (ansible-playbook --list-hosts of deploy_hooks.yml)" % (
                    hosts, forks, "start-up", rows["start"]["wall"], rows["start"]["cpu"]))
                sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    missed = []
    big, small = max(hosts_list), min(hosts_list)
    key, per = ("wall", "per_host") if args.wall else ("cpu", "cpu_per_host")
    for (hosts, forks), rows in sorted(table.items()):
        fl = rows["floor"]
        line = "N=%-3d forks=%-2d  re-run/floor %.2f (cpu %.2f)  first/floor %.2f (cpu %.2f)" % (
            hosts, forks, rows["re-run"]["wall"] / fl["wall"], rows["re-run"]["cpu"] / fl["cpu"],
            rows["first"]["wall"] / fl["wall"], rows["first"]["cpu"] / fl["cpu"])
        if "naive" in rows:
            line += "  re-run/naive re %.2f  first/naive %.2f" % (
                rows["re-run"]["wall"] / rows["naive re"]["wall"], rows["first"]["wall"] / rows["naive"]["wall"])
        print(line)
        if max(r["mem"] for r in rows.values()) >= GIB:
            missed.append("N=%d forks=%d: the controller's peak memory %.0f MiB >= 1 GiB" % (
                hosts, forks, max(r["mem"] for r in rows.values()) / (1 << 20)))
        if hosts != big:
            continue
        if rows["re-run"][key] > 1.5 * fl[key]:
            missed.append("N=%d forks=%d: re-run %.2fx the floor in %s time (target <= 1.5)" % (
                hosts, forks, rows["re-run"][key] / fl[key], key))
        if rows["re-run"]["calls"] > 1.0:
            missed.append("N=%d forks=%d: re-run makes %.1f module calls per host (target 1)" % (
                hosts, forks, rows["re-run"]["calls"]))
        if rows["first"][key] > 2.5 * fl[key]:
            missed.append("N=%d forks=%d: first deploy %.2fx the floor in %s time (target <= 2.5)" % (
                hosts, forks, rows["first"][key] / fl[key], key))
        if big != small:
            flat = rows["re-run"][per] / max(1e-9, table[(small, forks)]["re-run"][per])
            print("forks=%-2d  re-run %s time per host N=%d / N=%d = %.2f" % (forks, key, big, small, flat))
            if flat > 1.2:
                missed.append("forks=%d: re-run %s time per host at N=%d is %.2fx that at N=%d (target <= 1.2)" % (
                    forks, key, big, flat, small))
    own = resource.getrusage(resource.RUSAGE_SELF)
    print("(this benchmark's own CPU: %.1f s)" % (own.ru_utime + own.ru_stime))
    for miss in missed:
        print("MISSED: " + miss)
    if missed:
        print("%d target(s) missed%s" % (len(missed), " (--report-only: exit 0)" if args.report_only else ""))
        return 0 if args.report_only else 1
    print("all targets met" if not args.quick else "(--quick: no targets checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
