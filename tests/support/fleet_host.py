"""Helpers for tests that drive one fleet container (extensions/molecule/utils/fleet) as a real host:
commands in it, the role run against it, hooks_info on it, and a recorder script for hook calls."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.support.ansible import ansible_env
from tests.support.paths import REPO

FLEET = REPO / "extensions" / "molecule" / "utils" / "fleet"
RECORDS = "/var/tmp/vh-records.jsonl"

# A hook script that records argv, stdin and which libvirt daemon called the hook (the first ancestor
# named libvirtd or virt*) as one JSON line in RECORDS.
RECORDER = """#!/usr/bin/python3
import json, os, sys
def comm(pid):
    with open("/proc/%%d/comm" %% pid) as f:
        return f.read().strip()
def parent(pid):
    with open("/proc/%%d/stat" %% pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
pid, caller = os.getppid(), None
while pid > 1:
    name = comm(pid)
    if name == "libvirtd" or name.startswith("virt"):
        caller = name
        break
    pid = parent(pid)
rec = {"script": os.environ.get("VIRTHOOKS_SCRIPT"), "argv": sys.argv[1:], "caller": caller,
       "stdin": sys.stdin.read()[:4000]}
with open("%s", "a") as f:
    f.write(json.dumps(rec) + "\\n")
""" % RECORDS


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(FLEET / "podman"), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, "podman %s: %s%s" % (" ".join(args), proc.stdout, proc.stderr)
    return proc


def in_host(host: str, cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return podman("exec", host, "/bin/sh", "-c", cmd, check=check)


def fleet_up(host: str, image: str) -> None:
    subprocess.run([str(FLEET / "get-podman-collection.sh")], check=True, capture_output=True, timeout=600)
    up = subprocess.run([str(FLEET / "fleet.sh"), "up", "%s=%s" % (host, image)], capture_output=True, text=True,
                        timeout=1800, check=False)
    assert up.returncode == 0, up.stdout + up.stderr


def fleet_down(host: str) -> None:
    subprocess.run([str(FLEET / "fleet.sh"), "down", host], capture_output=True, timeout=300, check=False)


def records(host: str) -> list:
    out = in_host(host, "cat %s 2>/dev/null || true" % RECORDS).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def settle(host: str, start: int, count: int, timeout: float = 30) -> list:
    """Records after index `start` once at least `count` arrived and nothing more came for 1 s."""
    end = time.monotonic() + timeout
    seen, quiet_since, now = -1, time.monotonic(), []
    while time.monotonic() < end:
        now = records(host)[start:]
        if len(now) != seen:
            seen, quiet_since = len(now), time.monotonic()
        elif len(now) >= count and time.monotonic() - quiet_since > 1.0:
            break
        time.sleep(0.2)
    return now


def events(recs: list) -> list:
    """(script, argv tuple, calling daemon) of each record."""
    return [(r["script"], tuple(r["argv"]), r["caller"]) for r in recs]


def deploy_run(host: str, tmp_path: Path, scripts: list, **hostvars) -> subprocess.CompletedProcess:
    """playbooks/deploy_hooks.yml against the host, whatever its outcome."""
    inventory = {"hypervisors": {"hosts": {host: dict({
        "ansible_connection": "containers.podman.podman", "ansible_podman_executable": str(FLEET / "podman"),
        "ansible_python_interpreter": "/usr/bin/python3", "ansible_become": False,
        "libvirt_hooks_scripts": scripts}, **hostvars)}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.json"),
                           str(REPO / "playbooks" / "deploy_hooks.yml")], capture_output=True, text=True,
                          env=ansible_env(), timeout=900, check=False)


def deploy(host: str, tmp_path: Path, scripts: list, **hostvars) -> str:
    """playbooks/deploy_hooks.yml against the host; its output (the run must succeed)."""
    proc = deploy_run(host, tmp_path, scripts, **hostvars)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc.stdout


def task_results(output: str, title: str) -> list:
    """The result lines ("changed: [host]", "skipping: [host]"...) of every task (or handler task) whose
    name ends with `title` in an ansible-playbook output (default callback)."""
    lines = output.splitlines()
    found = []
    for index, line in enumerate(lines):
        # the role's reloads run as its handler ("RUNNING HANDLER [...]"), or in place in a rollback
        if line.startswith(("TASK [", "RUNNING HANDLER [")) and line.rstrip(" *").endswith(title + "]"):
            following = [nxt for nxt in lines[index + 1:] if nxt.strip()]
            found.append(following[0].strip() if following else "")
    return found


def hooks_info(host: str) -> dict:
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="minimal")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible"), "all", "-i", host + ",",
                           "-c", "containers.podman.podman", "-e", "ansible_podman_executable=%s" % (FLEET / "podman"),
                           "-e", "ansible_python_interpreter=/usr/bin/python3", "-m", "virthooks.libvirt.hooks_info"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout[proc.stdout.index("{"):])["libvirt"]
