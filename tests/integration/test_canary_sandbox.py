"""playbooks/deploy_hooks.yml with libvirt_hooks_canary on three sandbox hosts (own SYSCONFDIR in tmp_path).

The canary hosts (one per distinct plan, one per group of libvirt_hooks_canary_groups, at least
libvirt_hooks_canary) are the first batch of the deploy play and are checked first; a canary that fails ends
the run before any other host is touched. Without a canary guest the canary says it only validated. The
plays list their real hosts and tasks (--list-hosts, --list-tasks) and the role's stages have tags.
The canary guest's real start and stop is tested on a private libvirtd: test_canary_libvirt.py.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ansible import ansible_env
from tests.support.host import user_owned_shell
from tests.support.paths import REPO
from tests.integration.test_role_sandbox import SH, recap, tree_state

pytestmark = pytest.mark.root  # deploys through the modules, which chown what they install to root

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

    def deploy(self, scripts: list, *extra: str, host_vars: dict | None = None,
               groups: dict | None = None) -> subprocess.CompletedProcess:
        base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "ansible_become": False, "libvirt_hooks_restart": "never", "libvirt_hooks_cli_link": "",
                "libvirt_hooks_sysconfdir": str(self.tmp) + "/{{ inventory_hostname }}/etc",
                "libvirt_hooks_log": {"file": str(self.tmp) + "/{{ inventory_hostname }}/log.jsonl"},
                "libvirt_hooks_scripts": scripts}
        inventory = self.tmp / "hosts.yml"
        host_vars = host_vars or {}
        children = {name: {"hosts": {h: {} for h in members}} for name, members in (groups or {}).items()}
        inventory.write_text(json.dumps({"hypervisors": {"vars": base, "hosts": {h: host_vars.get(h, {}) for h in HOSTS},
                                                         "children": children}}))
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
               str(REPO / "playbooks" / "deploy_hooks.yml"), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(), timeout=600, check=False)


@pytest.fixture
def fleet(tmp_path):
    return CanaryFleet(tmp_path)


def good_scripts(tmp: Path) -> list:
    return [{"name": "isolate", "operations": ["prepare"], "suboperations": ["begin"], "content": SH % tmp}]


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
    assert proc.stdout.count("PLAY [Deploy libvirt hooks") == 1          # the canary batch, no other
    assert {h: fleet.generation(h) for h in HOSTS} == good
    assert {h: tree_state(fleet.tmp / h / "etc") for h in ("host-b", "host-c")} == before


def deploy_batches(proc) -> list:
    """The hosts of each batch of the deploy play, in order."""
    return [sorted(set(re.findall(r"^(?:ok|changed|skipping|fatal|included): \[([^\]]+)\]", batch, re.M)))
            for batch in proc.stdout.split("PLAY [Deploy libvirt hooks")[1:]]


def test_a_canary_percentage_goes_first_says_it_only_validated_then_the_rest_follows(fleet):
    proc = fleet.deploy(good_scripts(fleet.tmp), "-e", "libvirt_hooks_canary=33%", "-e", "libvirt_hooks_serial=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert deploy_batches(proc) == [["host-a"], ["host-b"], ["host-c"]], proc.stdout
    canary_play = proc.stdout.split("PLAY [Deploy libvirt hooks")[1]
    # no canary guest declared: said plainly, nothing of the machine's libvirt used
    assert ("Canary host-a only validated" in canary_play and "0 problem(s)" in canary_play
            and "did not run any hook script: no canary guest is declared" in canary_play), canary_play
    assert "Canary host-a passed" not in canary_play
    generations = [fleet.generation(h) for h in HOSTS]
    assert generations == sorted(generations)                                 # in that order
    assert all(c["failed"] == 0 for c in recap(proc).values())


def test_every_distinct_plan_gets_a_canary_host(fleet):
    """host-c's scripts differ (a group of its own, say storage): with libvirt_hooks_canary=1 it is a canary too,
    in the first batch with host-a; host-b, whose plan is host-a's, waits."""
    storage = {"libvirt_hooks_scripts__storage": [{"name": "storage", "operations": ["started"],
                                                   "content": "#!/bin/sh\nexit 0\n"}]}
    proc = fleet.deploy(good_scripts(fleet.tmp), "-e", "libvirt_hooks_canary=1", host_vars={"host-c": storage})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Canary hosts: host-a, host-c (2 distinct plan(s) among 3 host(s))" in proc.stdout, proc.stdout
    assert deploy_batches(proc) == [["host-a", "host-c"], ["host-b"]], proc.stdout
    assert (fleet.hooks("host-c") / "virthooks" / "current" / "scripts" / "storage").exists()


def test_a_canary_per_named_group_and_an_unknown_group_is_refused(fleet):
    groups = {"storage": ["host-b"], "gpu": ["host-c"]}
    proc = fleet.deploy(good_scripts(fleet.tmp), "-e", '{"libvirt_hooks_canary_groups": ["storage"]}', groups=groups)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert deploy_batches(proc) == [["host-a", "host-b"], ["host-c"]], proc.stdout

    again = fleet.deploy(good_scripts(fleet.tmp), "-e", '{"libvirt_hooks_canary_groups": ["storgae"]}', groups=groups)
    assert again.returncode != 0
    assert "libvirt_hooks_canary_groups names storgae: no such inventory group with a host in this play" in again.stdout
    assert "PLAY [Deploy libvirt hooks" not in again.stdout


def test_the_plays_list_their_real_hosts_and_tasks_and_the_stages_have_tags(fleet):
    proc = fleet.deploy(good_scripts(fleet.tmp), "-e", "libvirt_hooks_canary=1", "--list-hosts", "--list-tasks")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("hosts (3):") == 2 and "hosts (0)" not in proc.stdout, proc.stdout
    deploy_play = proc.stdout.split("play #2")[1]
    assert all("      %s\n" % h in deploy_play for h in HOSTS), deploy_play
    # (the install is imported, not included: its one task is the stage, listed under its own name)
    for task, tags in (("Install the dispatcher, the scripts and rules (one generation) and the entry points",
                        "virthooks_deploy"),
                       ("Make libvirt rescan its hooks where entry points changed", "virthooks_deploy, virthooks_reload"),
                       ("Validate what was deployed", "virthooks_deploy, virthooks_validate"),
                       ("Install or remove the periodic metrics job", "virthooks_metrics"),
                       ("Run the change on the canary host", "virthooks_canary")):
        assert re.search(r"%s.*TAGS: \[%s\]" % (re.escape(task), tags), deploy_play), deploy_play

    # A stage left out: --skip-tags virthooks_deploy makes no new generation anywhere, and says so nowhere else.
    first = fleet.deploy(good_scripts(fleet.tmp))
    assert first.returncode == 0, first.stdout + first.stderr
    before = {h: fleet.generation(h) for h in HOSTS}
    changed = [{"name": "isolate", "operations": ["prepare"], "content": "#!/bin/sh\nexit 0\n"}]
    skipped = fleet.deploy(changed, "--skip-tags", "virthooks_deploy")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert {h: fleet.generation(h) for h in HOSTS} == before
    assert "Install the dispatcher" not in skipped.stdout
    only_validate = fleet.deploy(changed, "--tags", "virthooks_validate")
    assert only_validate.returncode == 0, only_validate.stdout + only_validate.stderr
    assert {h: fleet.generation(h) for h in HOSTS} == before
    assert re.search(r"TASK \[.*Check the new generation on the host", only_validate.stdout), only_validate.stdout


def test_no_canary_by_default_deploys_every_host_in_one_batch(fleet):
    proc = fleet.deploy(good_scripts(fleet.tmp))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Canary " not in proc.stdout and proc.stdout.count("PLAY [Deploy libvirt hooks") == 1
    assert "Could not match supplied host pattern" not in proc.stdout + proc.stderr
    assert all((fleet.hooks(h) / "virthooks" / "current" / "scripts" / "isolate").exists() for h in HOSTS)


def test_a_canary_on_an_image_root_only_validates_and_says_why(fleet):
    """libvirt_hooks_root: no libvirt to start the declared canary guest with; the run says so and goes on."""
    image = fleet.tmp / "image"
    (image / "etc" / "libvirt").mkdir(parents=True)
    host_a = {"libvirt_hooks_root": str(image), "libvirt_hooks_sysconfdir": "/etc", "libvirt_hooks_canary_guest": "prod-vm"}
    proc = fleet.deploy(good_scripts(fleet.tmp), "-e", "libvirt_hooks_canary=1", host_vars={"host-a": host_a})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    flat = " ".join(proc.stdout.split())
    assert ("Canary host-a only validated (image root: nothing runs here) and did not run any hook script: "
            "libvirt_hooks_root is set") in flat, flat
    assert not re.search(r"TASK \[.*(Start the canary guest|Read the canary guest's XML)[^\]]*\] \**\s+(ok|changed|fatal)",
                         proc.stdout)
    assert deploy_batches(proc) == [["host-a"], ["host-b", "host-c"]], proc.stdout
    assert (image / "etc" / "libvirt" / "hooks" / "virthooks" / "current" / "scripts" / "isolate").exists()
