"""The role and playbooks/deploy_hooks.yml against sandbox hosts (own SYSCONFDIR in tmp_path).

No daemon owns a sandbox, so these runs use libvirt_hooks_restart: never; reloads and restarts of
a real libvirtd are covered by the molecule scenarios.
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
from tests.support.peers import saschpe_hook

pytestmark = pytest.mark.root  # deploys through the modules, which chown what they install to root

SH = "#!/bin/sh\necho \"$0 $*\" >> %s/ran\n"


def tree_state(root: Path) -> dict:
    state = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            state[str(path)] = (path.read_bytes() if not path.is_symlink() else os.readlink(path),
                                path.lstat().st_mode & 0o7777)
    return state


class Fleet:
    """Sandbox hosts host-a (group gpu) and host-b (group storage) with their own SYSCONFDIR."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.inventory = tmp / "inventory"
        (self.inventory / "group_vars").mkdir(parents=True)
        for host in ("host-a", "host-b"):
            (self.etc(host) / "libvirt").mkdir(parents=True)

    def etc(self, host: str) -> Path:
        return self.tmp / host / "etc"

    def hooks(self, host: str) -> Path:
        return self.etc(host) / "libvirt" / "hooks"

    def write(self, common: dict | None = None, gpu: dict | None = None, storage: dict | None = None,
              host_a: dict | None = None) -> None:
        base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "ansible_become": False, "libvirt_hooks_restart": "never", "libvirt_hooks_cli_link": "",
                "libvirt_hooks_sysconfdir": str(self.tmp) + "/{{ inventory_hostname }}/etc",
                "libvirt_hooks_log": {"file": str(self.tmp) + "/{{ inventory_hostname }}/log.jsonl"}}
        base.update(common or {})
        inventory = {"hypervisors": {"vars": base, "children": {
            "gpu": {"hosts": {"host-a": host_a or {}}}, "storage": {"hosts": {"host-b": {}}}}}}
        (self.inventory / "hosts.yml").write_text(json.dumps(inventory))
        (self.inventory / "group_vars" / "gpu.yml").write_text(json.dumps(gpu or {}))
        (self.inventory / "group_vars" / "storage.yml").write_text(json.dumps(storage or {}))

    def deploy(self, *extra: str) -> subprocess.CompletedProcess:
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.inventory / "hosts.yml"),
               str(REPO / "playbooks" / "deploy_hooks.yml"), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(), timeout=600, check=False)

    def fire(self, host: str, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.hooks(host) / "qemu"), *argv], input=b"<domain/>", capture_output=True,
                              timeout=60, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, check=False)


def recap(proc) -> dict:
    """{host: {'ok': n, 'changed': n, 'failed': n, ...}} from the PLAY RECAP."""
    out = {}
    for line in proc.stdout.splitlines():
        if " : ok=" in line:
            host, _sep, counts = line.partition(" : ")
            out[host.strip()] = {k: int(v) for k, v in (part.split("=") for part in counts.split())}
    return out


@pytest.fixture
def fleet(tmp_path):
    return Fleet(tmp_path)


def gpu_scripts(tmp):
    return {"libvirt_hooks_scripts__gpu": [
        {"name": "isolate", "operations": ["prepare"], "content": SH % tmp},
        {"name": "release", "operations": ["release"], "content": SH % tmp}]}


def test_each_group_gets_its_scripts_and_a_rerun_changes_nothing(fleet):
    fleet.write(common={"libvirt_hooks_scripts": [{"name": "audit", "operations": ["started"], "content": SH % fleet.tmp}]},
                gpu=gpu_scripts(fleet.tmp),
                storage={"libvirt_hooks_scripts__storage": [{"name": "mounts", "operations": ["prepare"],
                                                             "content": SH % fleet.tmp}]})
    first = fleet.deploy()
    assert first.returncode == 0, first.stdout + first.stderr
    a = sorted(os.listdir(fleet.hooks("host-a") / "virthooks" / "current" / "scripts"))
    b = sorted(os.listdir(fleet.hooks("host-b") / "virthooks" / "current" / "scripts"))
    assert a == ["audit", "isolate", "release"] and b == ["audit", "mounts"]
    for host in ("host-a", "host-b"):
        for path in (fleet.hooks(host) / "virthooks" / "current" / "scripts").iterdir():
            assert path.stat().st_mode & 0o7777 == 0o700 and path.stat().st_uid == 0
    second = fleet.deploy()
    assert second.returncode == 0
    assert {h: c["changed"] for h, c in recap(second).items()} == {"host-a": 0, "host-b": 0}
    assert fleet.fire("host-a", "vm", "prepare", "begin", "-").returncode == 0
    assert (fleet.tmp / "ran").read_text().split()[1:] == ["vm", "prepare", "begin", "-"]


def test_check_diff_shows_the_change_and_changes_nothing(fleet):
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    assert fleet.deploy().returncode == 0
    before = tree_state(fleet.tmp / "host-a")
    changed = gpu_scripts(fleet.tmp)
    changed["libvirt_hooks_scripts__gpu"][0]["content"] = "#!/bin/sh\necho new version\n"
    changed["libvirt_hooks_scripts__gpu"][0]["timeout"] = 9
    fleet.write(gpu=changed)
    proc = fleet.deploy("--check", "--diff")
    assert proc.returncode == 0, proc.stdout
    assert "+echo new version" in proc.stdout and '+  "timeout": 9' in proc.stdout
    assert recap(proc)["host-a"]["changed"] >= 1
    assert tree_state(fleet.tmp / "host-a") == before


@pytest.mark.parametrize("bad,needle", [
    ({"name": "x", "driver": "xen", "content": SH}, "unknown driver 'xen'"),
    ({"name": "x", "operations": ["boot"], "content": SH}, "unknown operation 'boot'"),
    ({"name": "isolate", "content": SH}, "the name 'isolate' is already used"),
    ({"name": "x", "src": "/nonexistent/script.sh"}, "src '/nonexistent/script.sh' could not be read"),
    ({"name": "../x", "content": SH}, "'name' may only contain"),
    ({"name": "x", "content": "echo no shebang\n"}, "'x' does not start with '#!'"),
])
def test_bad_input_fails_clearly_and_hosts_keep_their_working_hooks(fleet, bad, needle):
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    assert fleet.deploy().returncode == 0
    before = {h: tree_state(fleet.tmp / h) for h in ("host-a", "host-b")}
    broken = gpu_scripts(fleet.tmp)
    broken["libvirt_hooks_scripts__gpu"].append(bad)
    fleet.write(gpu=broken)
    proc = fleet.deploy()
    assert proc.returncode != 0
    assert needle in proc.stdout, proc.stdout[-3000:]
    assert {h: tree_state(fleet.tmp / h) for h in ("host-a", "host-b")} == before
    assert fleet.fire("host-a", "vm", "prepare", "begin", "-").returncode == 0


def test_src_files_are_read_once_for_the_play_and_templates_rendered_per_host(fleet):
    """A script's src and a script's file's src are the same text on every host (read once for the play); a
    template is rendered with each host's own variables; a src only one host declares reaches that host."""
    (fleet.tmp / "shared.sh").write_text(SH % fleet.tmp)
    (fleet.tmp / "only-b.sh").write_text("#!/bin/sh\nexit 0\n")
    (fleet.tmp / "conf.json").write_text('{"a": 1}\n\n')
    (fleet.tmp / "who.sh.j2").write_text("#!/bin/sh\n# {{ inventory_hostname }}\nexit 0\n")
    fleet.write(common={"libvirt_hooks_scripts": [
        {"name": "shared", "operations": ["prepare"], "src": str(fleet.tmp / "shared.sh"),
         "files": [{"name": "conf.json", "src": str(fleet.tmp / "conf.json")}]},
        {"name": "who", "operations": ["prepare"], "template": str(fleet.tmp / "who.sh.j2")}]},
        storage={"libvirt_hooks_scripts__storage": [{"name": "only-b", "operations": ["release"],
                                                     "src": str(fleet.tmp / "only-b.sh")}]})
    proc = fleet.deploy()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in ("host-a", "host-b"):
        current = fleet.hooks(host) / "virthooks" / "current"
        assert (current / "scripts" / "shared").read_text() == (SH % fleet.tmp).rstrip("\n")
        assert (current / "files" / "shared" / "conf.json").read_text() == '{"a": 1}\n\n'
        assert (current / "scripts" / "who").read_text().splitlines()[1] == "# " + host
    assert sorted(os.listdir(fleet.hooks("host-b") / "virthooks" / "current" / "scripts")) == ["only-b", "shared", "who"]
    assert "only-b" not in os.listdir(fleet.hooks("host-a") / "virthooks" / "current" / "scripts")
    assert "conf.json" not in proc.stdout and "only-b.sh" not in proc.stdout


def task_hosts(proc, task: str) -> list:
    """The hosts a task of the run reported on (ok, changed, fatal, skipping), in order."""
    hosts, inside = [], False
    for line in proc.stdout.splitlines():
        if line.startswith("TASK ["):
            inside = task in line
        elif inside:
            found = re.match(r"^(ok|changed|fatal|skipping): \[([^\]]+)\]", line)
            if found:
                hosts.append(found.group(2))
    return hosts


PLAN_TASK = "Look for misspelt libvirt_hooks_* variables"


def test_hosts_that_declare_the_same_scripts_share_one_plan_a_template_does_not(fleet):
    """docs/scale.md: when every host of the play declares the same scripts, the plan (validation, rules) is
    worked out once for the batch, one task for all hosts; a declaration with a template in it may differ per
    host, so then each host works its own out, and each gets its own text."""
    fleet.write(common={"libvirt_hooks_scripts": [{"name": "audit", "operations": ["started"], "content": SH % fleet.tmp}]})
    proc = fleet.deploy()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert task_hosts(proc, PLAN_TASK) == ["host-a"], proc.stdout
    for host in ("host-a", "host-b"):
        assert (fleet.hooks(host) / "virthooks" / "current" / "scripts" / "audit").read_text() == SH % fleet.tmp

    who = {"name": "who", "operations": ["prepare"], "content": "#!/bin/sh\n# {{ inventory_hostname }}\nexit 0\n"}
    fleet.write(common={"libvirt_hooks_scripts": [who]})
    proc = fleet.deploy()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(task_hosts(proc, PLAN_TASK)) == ["host-a", "host-b"], proc.stdout
    for host in ("host-a", "host-b"):
        assert (fleet.hooks(host) / "virthooks" / "current" / "scripts" / "who").read_text().splitlines()[1] == "# " + host


def test_a_shared_plan_that_fails_is_reported_by_every_host(fleet):
    """A plan worked out once for the batch that fails (here a script with an unknown operation, declared for every
    host) does not fail the batch through its first host alone: every host works its plan out and reports the
    error itself, none is left out of the recap, and nothing is changed."""
    fleet.write(common={"libvirt_hooks_scripts": [{"name": "audit", "operations": ["started"], "content": SH % fleet.tmp}]})
    assert fleet.deploy().returncode == 0
    before = {h: tree_state(fleet.tmp / h) for h in ("host-a", "host-b")}
    fleet.write(common={"libvirt_hooks_scripts": [{"name": "audit", "operations": ["boot"], "content": SH % fleet.tmp}]})
    proc = fleet.deploy()
    assert proc.returncode != 0
    assert {h: c["failed"] for h, c in recap(proc).items()} == {"host-a": 1, "host-b": 1}, proc.stdout
    for host in ("host-a", "host-b"):
        assert re.search(r"fatal: \[%s\].*unknown operation 'boot'" % host, proc.stdout), proc.stdout[-3000:]
    assert {h: tree_state(fleet.tmp / h) for h in ("host-a", "host-b")} == before


def test_a_bad_role_variable_on_one_host_of_a_shared_plan_fails_that_host_only(fleet):
    """The argument specs check every host, not only the one that worked out a shared plan: a host whose
    libvirt_hooks_restart is not a choice (not one of the plan's inputs, so the hosts still share the plan) fails
    naming it, before anything is changed there; the other host deploys."""
    fleet.write(common={"libvirt_hooks_scripts": [{"name": "audit", "operations": ["started"], "content": SH % fleet.tmp}]},
                storage={"libvirt_hooks_restart": "sometimes"})
    proc = fleet.deploy()
    assert proc.returncode != 0
    assert task_hosts(proc, PLAN_TASK) == ["host-a"], proc.stdout
    assert {h: c["failed"] for h, c in recap(proc).items()} == {"host-a": 0, "host-b": 1}, proc.stdout
    assert re.search(r"fatal: \[host-b\].*Validation of arguments failed.*libvirt_hooks_restart must be one of", proc.stdout)
    assert (fleet.hooks("host-a") / "virthooks" / "current" / "scripts" / "audit").exists()
    assert not fleet.hooks("host-b").exists()


def test_missing_sysconfdir_is_named(fleet):
    fleet.write(host_a={"libvirt_hooks_sysconfdir": "/nonexistent/etc"})
    proc = fleet.deploy()
    assert proc.returncode != 0 and "/nonexistent/etc" in proc.stdout
    assert recap(proc)["host-b"]["failed"] == 0


def test_foreign_hook_is_refused_by_default_and_adopted_on_request(fleet):
    hooks = fleet.hooks("host-a")
    hooks.mkdir(parents=True)
    (hooks / "qemu").write_text("#!/bin/sh\necho legacy >> %s/legacy\n" % fleet.tmp)
    (hooks / "qemu").chmod(0o755)
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    proc = fleet.deploy()
    assert proc.returncode != 0 and str(hooks / "qemu") in proc.stdout and "libvirt_hooks_foreign: adopt" in proc.stdout
    assert (hooks / "qemu").read_text().startswith("#!/bin/sh\necho legacy")
    fleet.write(gpu=gpu_scripts(fleet.tmp), common={"libvirt_hooks_foreign": "adopt"})
    assert fleet.deploy().returncode == 0
    assert fleet.fire("host-a", "vm", "start", "begin", "-").returncode == 0
    assert (fleet.tmp / "legacy").read_text() == "legacy\n"


def test_adopting_a_symlinked_peer_hook_keeps_it_working_and_purge_puts_it_back(fleet):
    """saschpe/libvirt-hook-qemu installed by its Makefile on host-b, which has no script of its own."""
    hooks = fleet.hooks("host-b")
    hooks.mkdir(parents=True)
    seen = fleet.tmp / "saschpe"
    saschpe_hook(hooks, seen, "symlink")
    untouched = tree_state(hooks)
    fleet.write(gpu=gpu_scripts(fleet.tmp), common={"libvirt_hooks_foreign": "adopt"})
    proc = fleet.deploy()
    assert proc.returncode == 0, proc.stdout
    said = " ".join((proc.stdout + proc.stderr).split())     # Ansible wraps its warnings
    assert "%s is not adopted" % (hooks / "qemu") in said and "libvirt_hooks_drivers" in said
    assert tree_state(hooks)[str(hooks / "qemu")] == untouched[str(hooks / "qemu")]
    fleet.write(gpu=gpu_scripts(fleet.tmp), common={"libvirt_hooks_foreign": "adopt"},
                storage={"libvirt_hooks_drivers": ["qemu"]})
    assert fleet.deploy().returncode == 0
    assert os.readlink(hooks / "qemu.virthooks-adopted") == str(hooks / "hooks")
    for op in ("prepare", "restore", "reconnect"):
        assert fleet.fire("host-b", "vm1", op, "begin", "-").returncode == 0
    assert seen.read_text().splitlines()[:3] == ["saschpe vm1 prepare forward", "saschpe vm1 restore forward",
                                                 "saschpe vm1 reconnect forward"]
    fleet.write(common={"libvirt_hooks_purge": True})
    assert fleet.deploy().returncode == 0
    assert tree_state(hooks) == untouched


def test_purge_removes_undeclared_scripts_then_everything(fleet):
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    assert fleet.deploy().returncode == 0
    fewer = gpu_scripts(fleet.tmp)
    fewer["libvirt_hooks_scripts__gpu"].pop()
    fleet.write(gpu=fewer, common={"libvirt_hooks_purge": True})
    assert fleet.deploy().returncode == 0
    assert sorted(os.listdir(fleet.hooks("host-a") / "virthooks" / "current" / "scripts")) == ["isolate"]
    fleet.write(common={"libvirt_hooks_purge": True})
    assert fleet.deploy().returncode == 0
    assert os.listdir(fleet.hooks("host-a")) == []


def test_image_root_deploys_under_the_root_with_host_paths(fleet, tmp_path):
    image = tmp_path / "image"
    (image / "etc" / "libvirt").mkdir(parents=True)
    fleet.write(gpu=gpu_scripts(fleet.tmp), host_a={"libvirt_hooks_root": str(image), "libvirt_hooks_sysconfdir": "/etc"})
    proc = fleet.deploy()
    assert proc.returncode == 0, proc.stdout
    entry = (image / "etc" / "libvirt" / "hooks" / "qemu").read_text()
    assert "'/etc/libvirt/hooks'" in entry and str(tmp_path) not in entry
    assert (image / "etc" / "libvirt" / "hooks" / "virthooks" / "current" / "scripts" / "isolate").exists()


def current_generation(fleet, host: str) -> str:
    return os.readlink(fleet.hooks(host) / "virthooks" / "current").rsplit("/", 1)[-1]


def counted_deploy(fleet, tmp_path, tag: str) -> tuple:
    """A deploy with the benchmark's count_calls callback: (the run, {host: module calls}, {host: task results})."""
    counts, results = tmp_path / ("calls-%s.json" % tag), tmp_path / ("results-%s.json" % tag)
    env = dict(ansible_env(), ANSIBLE_CALLBACK_PLUGINS=str(REPO / "benchmarks" / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="count_calls", VIRTHOOKS_COUNT_FILE=str(counts),
               VIRTHOOKS_RESULTS_FILE=str(results))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(fleet.inventory / "hosts.yml"),
           str(REPO / "playbooks" / "deploy_hooks.yml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(counts.read_text()), json.loads(results.read_text())


def test_a_deploy_and_a_no_change_run_cost_one_module_call_and_one_task_per_host(fleet, tmp_path):
    """What the README's quick start and docs/scale.md say: hook_runtime, which finds libvirt itself and checks the
    new generation with the CLI it installed, nothing else (hooks_info, hook_runtime and `virthooks validate`
    before, 3 calls); and one task result per host (each costs the controller a worker process per host, a skipped
    one too): no argument specs task (checked in the role's tasks), the plan worked out once for hosts that share
    it; the meta tasks that end the role and the canary meta tasks need no worker. A re-run makes no generation."""
    fleet.write(common={"libvirt_hooks_scripts": [{"name": "audit", "operations": ["started"], "content": SH % fleet.tmp}]})
    first, calls, per_host = counted_deploy(fleet, tmp_path, "first")
    assert {h: c["changed"] for h, c in recap(first).items()} == {"host-a": 1, "host-b": 1}, first.stdout
    # (the rescan stage follows: an entry point was added, which a running libvirtd must be told of)
    assert calls == {"host-a": 1, "host-b": 1}, calls
    before = {h: current_generation(fleet, h) for h in ("host-a", "host-b")}
    again, calls, per_host = counted_deploy(fleet, tmp_path, "again")
    assert all(r["changed"] == 0 for r in recap(again).values()), again.stdout
    assert {h: current_generation(fleet, h) for h in ("host-a", "host-b")} == before
    # hook_runtime and the playbook's meta task that ends a host that is not a canary (the other meta tasks end the
    # role or a play, and report nothing); plus the first host's once-per-play tasks (the names, the shared plan,
    # the plan)
    assert calls == {"host-a": 1, "host-b": 1} and per_host == {"host-a": 5, "host-b": 2}, (calls, per_host)
    # hosts whose scripts differ work out their own plan: one task more each, still one module call
    fleet.write(common={"libvirt_hooks_scripts": [{"name": "audit", "operations": ["started"], "content": SH % fleet.tmp}]},
                gpu=gpu_scripts(fleet.tmp))
    _proc, calls, per_host = counted_deploy(fleet, tmp_path, "differ")
    assert calls == {"host-a": 1, "host-b": 1} and per_host == {"host-a": 5, "host-b": 3}, (calls, per_host)


def with_an_untrusted_script(fleet, tmp_path) -> dict:
    """gpu's scripts plus one whose interpreter is in a directory a user owns: the installer takes
    it (the interpreter exists), the host's trust check refuses it, so `virthooks validate` fails."""
    shell = user_owned_shell(tmp_path)
    scripts = gpu_scripts(fleet.tmp)
    scripts["libvirt_hooks_scripts__gpu"].append(
        {"name": "untrusted", "operations": ["prepare"], "content": "#!%s\nexit 0\n" % shell})
    return scripts


def test_a_deploy_that_does_not_validate_on_a_host_is_rolled_back_there(fleet, tmp_path):
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    assert fleet.deploy().returncode == 0
    good = current_generation(fleet, "host-a")
    fleet.write(gpu=with_an_untrusted_script(fleet, tmp_path))
    bad = fleet.deploy()
    assert bad.returncode != 0
    assert recap(bad)["host-a"]["failed"] == 1, bad.stdout
    assert "Rolled back to generation %s" % good in bad.stdout, bad.stdout
    assert current_generation(fleet, "host-a") == good
    fired = fleet.fire("host-a", "win10", "prepare", "begin", "-")
    assert fired.returncode == 0, fired.stderr
    assert recap(bad)["host-b"]["failed"] == 0


def test_no_rollback_when_it_is_turned_off(fleet, tmp_path):
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    assert fleet.deploy().returncode == 0
    good = current_generation(fleet, "host-a")
    fleet.write(gpu=with_an_untrusted_script(fleet, tmp_path), common={"libvirt_hooks_rollback_on_failure": False})
    bad = fleet.deploy()
    assert bad.returncode != 0 and "Not rolled back: libvirt_hooks_rollback_on_failure is false" in bad.stdout
    assert current_generation(fleet, "host-a") != good


def test_on_failure_abortable_and_a_drop_ins_driver_in_libvirt_hooks_drivers_deploy_and_run(fleet):
    """A script's on_failure: abortable passes the role's argument specs and spares a running guest; a host
    drop-in for the network driver, which no script uses, runs once libvirt_hooks_drivers lists network."""
    rules_d = fleet.hooks("host-a") / "virthooks" / "rules.d"
    rules_d.mkdir(parents=True)
    (rules_d / "net.sh").write_text(SH % fleet.tmp)
    (rules_d / "net.sh").chmod(0o755)
    (rules_d / "50-net.json").write_text(json.dumps({"name": "net-up", "driver": "network", "script": "net.sh",
                                                     "operations": ["started"]}))
    # (in libvirt_hooks_scripts itself: the role's argument specs check that variable, not libvirt_hooks_scripts__*)
    fleet.write(gpu={"libvirt_hooks_drivers": ["network"], "libvirt_hooks_scripts": [
        {"name": "spare", "on_failure": "abortable", "content": SH % fleet.tmp + "exit 3\n"}]})
    proc = fleet.deploy()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "drop-in" not in proc.stdout + proc.stderr
    assert fleet.fire("host-a", "vm", "prepare", "begin", "-").returncode != 0
    assert fleet.fire("host-a", "vm", "reconnect", "begin", "-").returncode == 0
    network = subprocess.run([str(fleet.hooks("host-a") / "network"), "default", "started", "begin", "-"],
                             input=b"<hookData/>", capture_output=True, timeout=60,
                             env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, check=False)
    assert network.returncode == 0, network.stderr
    assert (fleet.tmp / "ran").read_text().splitlines()[-1].endswith("net.sh default started begin -")


def test_keeping_one_generation_is_refused_while_a_failed_run_rolls_back_naming_the_variable(fleet, tmp_path):
    """Issue 25: with libvirt_hooks_generations_keep 1 the deploy removed the generation the host had before the
    run as soon as it switched in the new one, so the role's rollback after a failed reload or validation had
    nothing to go back to. Refused up front, naming the variable, before any host is touched."""
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    assert fleet.deploy().returncode == 0
    good = current_generation(fleet, "host-a")
    before = tree_state(fleet.tmp / "host-a")
    fleet.write(gpu=with_an_untrusted_script(fleet, tmp_path), common={"libvirt_hooks_generations_keep": 1})
    refused = fleet.deploy()
    assert refused.returncode != 0
    failed = [line for line in refused.stdout.splitlines() if line.startswith("fatal: [host-a]")][-1]
    assert "libvirt_hooks_generations_keep is 1, but libvirt_hooks_rollback_on_failure is true" in failed, failed
    assert "Set libvirt_hooks_generations_keep to 2 or more" in failed and "(nothing was changed)" in failed
    assert current_generation(fleet, "host-a") == good and tree_state(fleet.tmp / "host-a") == before
    # Without the role's rollback, keeping one generation is the operator's choice: it deploys, one stays.
    fleet.write(gpu=gpu_scripts(fleet.tmp) | {"libvirt_hooks_scripts__more": [
        {"name": "more", "operations": ["prepare"], "content": "#!/bin/sh\nexit 0\n"}]},
        common={"libvirt_hooks_generations_keep": 1, "libvirt_hooks_rollback_on_failure": False})
    assert fleet.deploy().returncode == 0
    assert os.listdir(fleet.hooks("host-a") / "virthooks" / "generations") == [current_generation(fleet, "host-a")]


def test_stages_run_without_the_deploy_describe_the_host_themselves(tmp_path):
    """The role knows the host from hook_runtime's result (detect); a run without the deploy asks hooks_info:
    --tags virthooks_metrics (the tagged describe task) and --skip-tags virthooks_deploy (metrics.yml's own)."""
    box = tmp_path / "box"
    (box / "var" / "lib" / "node-exporter").mkdir(parents=True)
    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps({"hypervisors": {"hosts": {"box": {}}, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "libvirt_hooks_sandbox": {"dir": str(box), "version": "10.0.0", "daemons": ["libvirtd"]},
        "libvirt_hooks_restart": "never", "libvirt_hooks_metrics": {"textfile_dir": "/var/lib/node-exporter"},
        "libvirt_hooks_scripts": [{"name": "audit", "operations": ["started"], "content": SH % tmp_path}]}}}))
    cron = box / "etc" / "cron.d" / "virthooks-metrics"

    def run(*extra: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
                               str(REPO / "playbooks" / "deploy_hooks.yml"), *extra],
                              capture_output=True, text=True, env=ansible_env(), timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc

    first = run()
    described = (r"TASK \[[^\]]*Describe libvirt on this host[^\]]*\] \**\s+"
                 r"(included: [^\n]*describe.yml for box\s+TASK \[[^\]]*\] \**\s+)?ok: \[box\]")
    assert not re.search(described, first.stdout) and cron.exists(), first.stdout
    cron.unlink()
    for extra in (("--tags", "virthooks_metrics"), ("--skip-tags", "virthooks_deploy")):
        proc = run(*extra)
        assert re.search(described, proc.stdout), proc.stdout
        assert "Install the dispatcher" not in proc.stdout and cron.exists(), extra
        cron.unlink()
