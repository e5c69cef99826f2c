"""Deploying hooks to N sandbox hosts: virthooks' role against a naive one-copy-task-per-script role.

For N = 1, 5, 20 local sandbox hosts (each its own SYSCONFDIR, reached with the local connection,
forks = N), and S scripts per host, measures in one run:
  - wall time of a first deployment and of a re-run that changes nothing,
  - module calls that reach each host (controller-only actions such as set_fact excluded),
for playbooks/deploy-hooks.yml and for a naive playbook that copies each script into the native
hooks/qemu.d/ directory with one copy task per script (what users do today without a dispatcher).

Usage: benchmarks/fleet.py [--hosts 1,5,20] [--scripts 10]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
NAIVE = """
- name: Naive hook deployment, one copy task per script
  hosts: hypervisors
  gather_facts: false
  tasks:
    - name: Create the native hooks directory
      ansible.builtin.file:
        path: "{{ libvirt_hooks_sysconfdir }}/libvirt/hooks/qemu.d"
        state: directory
        mode: "0755"
    - name: Copy each hook script
      ansible.builtin.copy:
        content: "{{ item.content }}"
        dest: "{{ libvirt_hooks_sysconfdir }}/libvirt/hooks/qemu.d/{{ item.name }}"
        mode: "0755"
      loop: "{{ libvirt_hooks_scripts }}"
      loop_control:
        label: "{{ item.name }}"
"""


def inventory(base: Path, hosts: int, scripts: int) -> Path:
    script_list = [{"name": "hook-%02d" % i, "operations": ["prepare"], "objects": ["guest-%02d" % i],
                    "content": "#!/bin/sh\n# hook %d\nexit 0\n" % i} for i in range(scripts)]
    names = ["bench-%02d" % i for i in range(hosts)]
    for name in names:
        (base / name / "etc" / "libvirt").mkdir(parents=True, exist_ok=True)
    inv = {"hypervisors": {"hosts": {n: {} for n in names}, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "libvirt_hooks_sysconfdir": str(base) + "/{{ inventory_hostname }}/etc", "libvirt_hooks_restart": "never",
        "libvirt_hooks_cli_link": "", "libvirt_hooks_scripts": script_list,
        "libvirt_hooks_log": {"file": str(base) + "/{{ inventory_hostname }}/log.jsonl"}}}}
    path = base / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def run(playbook: Path, inv: Path, forks: int, count_file: Path) -> tuple:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "tests" / "output" / "collections"),
               ANSIBLE_CONFIG=str(REPO / "tests" / "ansible.cfg"), VIRTHOOKS_COUNT_FILE=str(count_file),
               ANSIBLE_CALLBACK_PLUGINS=str(REPO / "benchmarks" / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="count_calls", PATH=str(VENV_BIN) + os.pathsep + os.environ["PATH"])
    began = time.perf_counter()
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "-f", str(forks), str(playbook)],
                          capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s\n%s" % (playbook, proc.stdout[-3000:], proc.stderr[-2000:]))
    calls = json.loads(count_file.read_text())
    return elapsed, sum(calls.values()) / max(1, len(calls))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,5,20")
    parser.add_argument("--scripts", type=int, default=10)
    args = parser.parse_args()
    link = REPO / "tests" / "output" / "collections" / "ansible_collections" / "virthooks" / "libvirt"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    naive = Path(tempfile.mkdtemp(prefix="vh-naive-")) / "naive.yml"
    naive.write_text(NAIVE)
    today = time.strftime("%Y-%m-%d")
    print("Deploying %d scripts per host, %s, ansible-core from %s" % (args.scripts, today, VENV_BIN))
    header = ("hosts", "playbook", "first run", "re-run", "calls/host 1st", "calls/host re")
    print("%6s  %-26s %12s %12s %14s %14s" % header)
    rows = []
    for hosts in [int(h) for h in args.hosts.split(",")]:
        for label, playbook in (("virthooks deploy-hooks.yml", REPO / "playbooks" / "deploy-hooks.yml"),
                                ("naive copy per script", naive)):
            base = Path(tempfile.mkdtemp(prefix="vh-fleet-"))
            try:
                inv = inventory(base, hosts, args.scripts)
                first, first_calls = run(playbook, inv, hosts, base / "count1.json")
                again, again_calls = run(playbook, inv, hosts, base / "count2.json")
            finally:
                shutil.rmtree(base, ignore_errors=True)
            rows.append((hosts, label, first, again))
            row = (hosts, label, first, again, first_calls, again_calls)
            print("%6d  %-26s %10.1f s %10.1f s %14.1f %14.1f" % row)
    print()
    for i in range(0, len(rows), 2):
        ours, theirs = rows[i], rows[i + 1]
        print("N=%-3d re-run time virthooks/naive = %.2f   first run = %.2f" % (
            ours[0], ours[3] / theirs[3], ours[2] / theirs[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
