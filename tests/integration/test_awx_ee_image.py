"""The execution environment built for real and jobs run inside it the way AWX runs them (issue 24 point 3).

`extensions/molecule/utils/ee/build-ee.sh` builds `examples/execution-environment.yml` with `ansible-builder
build` and podman, on a base made on this machine (the fleet's debootstrapped Debian 12), with ansible-core and
ansible-runner from the hashed lock; the image is tagged by a content hash and reused (the build runs once).
Two fleet hosts (Debian 12, libvirt 9.0, plus sshd) are reached from inside the EE over ssh with the key passed
as AWX passes a Machine credential (the private data dir's `env/ssh_key`, loaded into an ssh-agent in the job's
container). `ansible-runner run --process-isolation --container-image <EE>` runs the deploy, then a no-change
re-run, then the report playbook; the job events in the artifacts and the hosts themselves (their generations,
a hook call dispatched by the deployed runtime) are checked. Needs root and podman: fails, never skips.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.fleet_host import FLEET, fleet_down, in_host, podman

pytestmark = [pytest.mark.podman, pytest.mark.slow, pytest.mark.root]  # rootful podman

EE = REPO / "extensions" / "molecule" / "utils" / "ee"
BIN = Path(sys.executable).parent
HOSTS = ["vhee-a-%d" % os.getpid(), "vhee-b-%d" % os.getpid()]
CLI = "/etc/libvirt/hooks/virthooks/virthooks"
# A hook script that says what it saw (its arguments and the guest's name from the XML on stdin).
RECORDER = """#!/bin/sh
name=$(sed -n 's:.*<name>\\(.*\\)</name>.*:\\1:p' | head -n 1)
echo "$0 $* $name" >>/var/tmp/vhee-ran.log
"""


def build(*args: str) -> str:
    proc = subprocess.run([str(EE / "build-ee.sh"), *args], capture_output=True, text=True, timeout=1800,
                          check=False, env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def ee_image() -> str:
    if os.geteuid() != 0:
        pytest.fail("the EE build and the fleet need root (rootful podman)")
    return build()


@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory):
    """Two fleet hosts running sshd that accept one key for root: {name: ip}, and the private key's text."""
    image = build("ssh-host")
    keydir = tmp_path_factory.mktemp("ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "awx-machine-credential",
                    "-f", str(keydir / "id")], check=True, timeout=60)
    public = (keydir / "id.pub").read_text().strip()
    up = subprocess.run([str(FLEET / "fleet.sh"), "up", "--no-build", *("%s=%s" % (h, image) for h in HOSTS)],
                        capture_output=True, text=True, timeout=600, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        ips = {}
        for host in HOSTS:
            in_host(host, "ssh-keygen -A >/dev/null && install -d -m 0700 /root/.ssh && echo '%s' >/root/.ssh/authorized_keys"
                    " && chmod 0600 /root/.ssh/authorized_keys && /usr/sbin/sshd -E /var/tmp/sshd.log" % public)
            ips[host] = podman("inspect", "-f", "{{.NetworkSettings.IPAddress}}", host).stdout.strip()
            assert ips[host], "no address for %s" % host
        gateway = podman("inspect", "-f", "{{.NetworkSettings.Gateway}}", HOSTS[0]).stdout.strip()
        yield ips, gateway, (keydir / "id").read_text()
    finally:
        for host in HOSTS:
            fleet_down(host)


def job_dir(tmp_path: Path, ips: dict, key: str) -> Path:
    """A private data dir laid out as AWX lays out a job: project, inventory, credential, extra vars, env."""
    data = tmp_path / "job"
    for sub in ("project", "inventory", "env"):
        (data / sub).mkdir(parents=True)
    (data / "project" / "deploy.yml").write_text(
        "---\n- name: Deploy libvirt hooks\n  ansible.builtin.import_playbook: virthooks.libvirt.deploy_hooks\n")
    (data / "project" / "report.yml").write_text(
        "---\n- name: Fleet report\n  ansible.builtin.import_playbook: virthooks.libvirt.report\n")
    inventory = {"hypervisors": {
        "hosts": {h: {"ansible_host": ip} for h, ip in ips.items()},
        "vars": {"ansible_user": "root", "ansible_become": False, "ansible_python_interpreter": "/usr/bin/python3",
                 "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                 "libvirt_hooks_scripts": [{"name": "rec", "operations": ["prepare"], "content": RECORDER}]}}}
    (data / "inventory" / "hosts.json").write_text(json.dumps(inventory))
    # The Machine credential: AWX writes the private key here, ansible-runner loads it into an ssh-agent.
    (data / "env" / "ssh_key").write_text(key)
    (data / "env" / "envvars").write_text(json.dumps({"USER": "awx-job", "ANSIBLE_NOCOLOR": "1"}))
    return data


def runner(data: Path, playbook: str, ident: str, image: str, extravars: dict | None = None) -> list:
    """ansible-runner with process isolation in the EE, as AWX's execution node runs a job; its events."""
    (data / "env" / "extravars").write_text(json.dumps(extravars or {}))
    env = {"PATH": str(BIN) + os.pathsep + os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
           "CONTAINERS_CONF": str(FLEET / "containers.conf"), "LANG": "C.UTF-8"}
    proc = subprocess.run([str(BIN / "ansible-runner"), "run", str(data), "-p", playbook, "--ident", ident,
                           "--process-isolation", "--process-isolation-executable", "podman",
                           "--container-image", image,
                           # rootful podman: the image's uid 1000 cannot write the root-owned artifacts dir
                           "--container-option=--user=0"],
                          capture_output=True, text=True, env=env, timeout=900, check=False)
    artifacts = data / "artifacts" / ident
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert (artifacts / "status").read_text() == "successful"
    command = json.loads((artifacts / "command").read_text())["command"]
    assert command[:2] == ["podman", "run"] and image in command, command
    return sorted((json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")),
                  key=lambda e: e["counter"])


def stats(events: list) -> dict:
    return next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]


def generations(host: str) -> list:
    """(current?, deployer) of each generation, from the host's own CLI."""
    lines = in_host(host, CLI + " generations").stdout.splitlines()[1:]
    return [(line.startswith("*"), line[1:].split()[2]) for line in lines if line.strip()]


def test_the_ee_is_cached_by_content_hash(ee_image):
    t0 = time.monotonic()
    assert build() == ee_image
    assert time.monotonic() - t0 < 60, "a second build-ee.sh with nothing changed must reuse the image"
    tag = ee_image.rsplit(":", 1)[1]
    assert (Path(os.environ.get("VIRTHOOKS_CACHE", "/var/cache/virthooks")) / "images" / ("virthooks-ee-%s.tar" % tag)).is_file()
    inside = podman("run", "--rm", ee_image, "sh", "-c",
                    "ansible-galaxy collection list virthooks.libvirt 2>/dev/null | tail -n 1;"
                    " python3 -m pip list 2>/dev/null | grep -E '^(ansible-core|ansible-runner|Jinja2) ';"
                    " command -v ssh; command -v ssh-agent; . /etc/os-release; echo $PRETTY_NAME").stdout
    version = REPO.joinpath("galaxy.yml").read_text().split("\nversion:")[1].split()[0].strip("'\"")
    assert "virthooks.libvirt %s" % version in " ".join(inside.split()), inside
    for line in ("ansible-core 2.19.14", "ansible-runner 2.4.3", "Jinja2 3.1.6", "/usr/bin/ssh", "/usr/bin/ssh-agent",
                 "Debian GNU/Linux 12 (bookworm)"):
        assert line in [" ".join(x.split()) for x in inside.splitlines()], (line, inside)


def test_deploy_and_report_run_in_the_ee_against_fleet_hosts_over_ssh(ee_image, ssh_hosts, tmp_path):
    ips, gateway, key = ssh_hosts
    data = job_dir(tmp_path, ips, key)

    events = runner(data, "deploy.yml", "deploy", ee_image)
    names = [e["event"] for e in events if e["event"] != "verbose"]
    assert names[0] == "playbook_on_start" and names[-1] == "playbook_on_stats", names
    done = stats(events)
    assert not done["failures"] and not done["dark"] and set(done["changed"]) == set(HOSTS), done
    assert {e["event_data"]["host"] for e in events if e["event"] == "runner_on_ok"} == set(HOSTS)
    # Every host was reached over ssh with the credential's key, from the job's own container (an address
    # on the podman network that is neither a fleet host nor this machine's side of the bridge).
    for host in HOSTS:
        sshd = in_host(host, "cat /var/tmp/sshd.log").stdout
        peers = set(re.findall(r"Accepted publickey for root from (\S+) port \d+ ssh2: ED25519", sshd))
        assert peers and not peers & (set(ips.values()) | {gateway}), sshd
    for host in HOSTS:
        assert generations(host) == [(True, "awx-job")]

    again = runner(data, "deploy.yml", "deploy-again", ee_image)
    done = stats(again)
    assert not done["failures"] and not done["changed"], done
    for host in HOSTS:
        assert generations(host) == [(True, "awx-job")], "a no-change run made a generation"

    # One real dispatch per host through the deployed entry point, then the report job reads it back.
    for host in HOSTS:
        in_host(host, "printf '<domain><name>vhee-guest</name></domain>' >/tmp/g.xml &&"
                " %s simulate qemu vhee-guest prepare begin - --xml /tmp/g.xml >/dev/null" % CLI)
        ran = in_host(host, "cat /var/tmp/vhee-ran.log").stdout
        assert ran.split()[1:] == ["vhee-guest", "prepare", "begin", "-", "vhee-guest"], ran
    report_events = runner(data, "report.yml", "report", ee_image,
                           {"libvirt_hooks_report_dir": "/runner/project/report", "libvirt_hooks_report_since": "1h"})
    assert not stats(report_events)["failures"]
    report = json.loads((data / "project" / "report" / "report.json").read_text())
    rows = {h["host"]: (h["status"], h["calls"], h["failures"]) for h in report["hosts"]}
    assert rows == {h: ("ok", 1, 0) for h in HOSTS}, rows
