"""playbooks/deploy-hooks.yml with libvirt_hooks_canary on three sandbox hosts (own SYSCONFDIR in tmp_path).

The canary batch is deployed and checked first; a canary that fails ends the run before any other host
is touched.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, ansible_env, user_owned_shell
from tests.integration.test_role_sandbox import SH, recap, tree_state

HOSTS = ("host-a", "host-b", "host-c")


class CanaryFleet:
    """Three sandbox hosts in `hypervisors`, deployed in inventory order."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        for host in HOSTS:
            (tmp / host / "etc" / "libvirt").mkdir(parents=True)

    def hooks(self, host: str) -> Path:
        return self.tmp / host / "etc" / "libvirt" / "hooks"

    def generation(self, host: str) -> str:
        return os.readlink(self.hooks(host) / "virthooks" / "current").rsplit("/", 1)[-1]

    def deploy(self, scripts: list, *extra: str) -> subprocess.CompletedProcess:
        base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "ansible_become": False, "libvirt_hooks_restart": "never", "libvirt_hooks_cli_link": "",
                "libvirt_hooks_sysconfdir": str(self.tmp) + "/{{ inventory_hostname }}/etc",
                "libvirt_hooks_log": {"file": str(self.tmp) + "/{{ inventory_hostname }}/log.jsonl"},
                "libvirt_hooks_scripts": scripts}
        inventory = self.tmp / "hosts.yml"
        inventory.write_text(json.dumps({"hypervisors": {"vars": base, "hosts": {h: {} for h in HOSTS}}}))
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
               str(REPO / "playbooks" / "deploy-hooks.yml"), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(), timeout=600, check=False)


@pytest.fixture
def fleet(tmp_path):
    return CanaryFleet(tmp_path)


def good_scripts(tmp: Path) -> list:
    return [{"name": "isolate", "operations": ["prepare"], "suboperations": ["begin"], "content": SH % tmp}]


def defined_guests() -> list:
    if not shutil.which("virsh"):
        return []
    proc = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True,
                          text=True, timeout=60, check=False)
    return [line for line in proc.stdout.split() if line] if proc.returncode == 0 else []


def test_a_canary_that_fails_validation_ends_the_run_and_no_other_host_changes(fleet):
    first = fleet.deploy(good_scripts(fleet.tmp))
    assert first.returncode == 0, first.stdout + first.stderr
    good = {h: fleet.generation(h) for h in HOSTS}
    before = {h: tree_state(fleet.tmp / h / "etc") for h in ("host-b", "host-c")}
    untrusted = {"name": "untrusted", "operations": ["prepare"], "content": "#!%s\nexit 0\n" % user_owned_shell(fleet.tmp)}
    bad = good_scripts(fleet.tmp) + [untrusted]
    proc = fleet.deploy(bad, "-e", "libvirt_hooks_canary=1")
    assert proc.returncode != 0, proc.stdout
    counts = recap(proc)
    assert counts["host-a"]["failed"] == 1, proc.stdout
    assert "Rolled back to generation %s" % good["host-a"] in proc.stdout
    # the other hosts ran no task of the role: nothing on them changed, not even a new generation
    assert counts["host-b"]["changed"] == counts["host-c"]["changed"] == 0, proc.stdout
    assert "PLAY [Deploy libvirt hooks]" not in proc.stdout
    assert {h: fleet.generation(h) for h in HOSTS} == good
    assert {h: tree_state(fleet.tmp / h / "etc") for h in ("host-b", "host-c")} == before


def test_a_canary_percentage_goes_first_is_checked_then_the_rest_follows(fleet):
    proc = fleet.deploy(good_scripts(fleet.tmp), "-e", "libvirt_hooks_canary=33%", "-e", "libvirt_hooks_serial=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    canary_play = proc.stdout.split("PLAY [Deploy libvirt hooks to the canary hosts and check them]")[1].split("PLAY [")[0]
    assert "[host-a]" in canary_play and "[host-b]" not in canary_play and "[host-c]" not in canary_play
    assert "Canary host-a passed" in canary_play and "0 problem(s)" in canary_play
    # the dry run of prepare begin: a guest this machine's libvirtd defines (read with virsh), else a synthetic one
    dry_run = re.search(r"prepare begin of event: qemu (\S+) prepare begin .*?-> (.*)", canary_play)
    assert dry_run and dry_run.group(1) in defined_guests() + ["virthooks-canary"], canary_play
    assert "isolate" in dry_run.group(2) and "nothing would run" not in dry_run.group(2)
    assert proc.stdout.count("PLAY [Deploy libvirt hooks]") == 2               # the rest, one host per batch
    generations = [fleet.generation(h) for h in HOSTS]
    assert generations == sorted(generations)                                 # in that order
    assert all(c["failed"] == 0 for c in recap(proc).values())


def test_no_canary_by_default_deploys_every_host_in_one_batch(fleet):
    proc = fleet.deploy(good_scripts(fleet.tmp))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Canary " not in proc.stdout and proc.stdout.count("PLAY [Deploy libvirt hooks]") == 1
    assert "Could not match supplied host pattern" not in proc.stdout + proc.stderr
    assert all((fleet.hooks(h) / "virthooks" / "current" / "scripts" / "isolate").exists() for h in HOSTS)


CANARY_PLAY = """
- name: The canary checks of the role, on a host whose virsh lists one guest
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run them
      ansible.builtin.include_role:
        name: virthooks.libvirt.hooks
        tasks_from: canary
      vars:
        __libvirt_hooks_dir: {hooks}
        __libvirt_hooks_info: {{libvirt: {{binaries: {{virsh: {virsh}}}, daemons: {{}}}}}}
"""


def virsh_listing(tmp: Path, guest: str) -> Path:
    """A virsh for a host that defines one guest: `list` names it, `dumpxml [--] NAME` prints its XML.
    (The host's own libvirtd is shared by every test here: it gets no guest with a hostile name.)"""
    virsh = tmp / "virsh"
    virsh.write_text("#!/bin/sh\n" + 'echo "$*" >> %s/virsh.argv\n' % tmp + 'case "$3" in\n'
                     "list) printf '%%s\\n\\n' '%s' ;;\n" % guest +
                     'dumpxml) [ "$4" != -- ] || shift\n'   # as virsh: the name, with or without -- before it
                     "  printf \"<domain type='kvm'><name>%s</name><devices/></domain>\" \"$4\" ;;\n"
                     "*) exit 1 ;;\nesac\n")
    virsh.chmod(0o755)
    return virsh


@pytest.mark.parametrize("guest", ["-web", "-h"])
def test_the_canary_dry_run_works_for_a_guest_whose_name_starts_with_a_dash(fleet, guest):
    first = fleet.deploy(good_scripts(fleet.tmp))
    assert first.returncode == 0, first.stdout + first.stderr
    play = fleet.tmp / "canary.yml"
    play.write_text(CANARY_PLAY.format(hooks=json.dumps(str(fleet.hooks("host-a"))),
                                       virsh=json.dumps(str(virsh_listing(fleet.tmp, guest)))))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + sys.executable, str(play)],
                          capture_output=True, text=True, env=ansible_env(), timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"prepare begin of event: qemu %s prepare begin .*?-> .*isolate" % re.escape(guest), proc.stdout), \
        proc.stdout
    assert "usage:" not in proc.stdout
    assert (fleet.tmp / "virsh.argv").read_text().splitlines()[-1] == "-c qemu:///system dumpxml -- %s" % guest
