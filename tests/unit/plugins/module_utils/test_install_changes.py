"""The installer's plan: one class per kind of change (describe, apply, diff), a DeploySpec taken
from the module's options by name, and hook_runtime's states dispatched through a table."""
from __future__ import annotations

import os
import subprocess

from ansible_collections.virthooks.libvirt.plugins.module_utils import install
from ansible_collections.virthooks.libvirt.plugins.modules import hook_runtime
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.entrypoint import readable

RULE = {"name": "rec", "script": "scripts/rec", "operations": ["prepare"]}
KINDS = {install.AdoptHook: "adopt", install.WriteFile: "write", install.Symlink: "symlink",
         install.NewGeneration: "generation", install.SwitchGeneration: "switch", install.RetireOldLayout: "retire",
         install.RestoreAdopted: "restore", install.RemoveFile: "remove", install.RemoveTree: "rmtree",
         install.PruneGenerations: "prune"}


def installer(box):
    return install.RuntimeInstaller(str(box.hooks), box.python, -1, -1)


def deploy(box, drivers=("qemu",), **options):
    inst = installer(box)
    plan = inst.plan(list(drivers), [RULE], log={"file": str(box.log)}, scripts=box.staged(), **options)
    inst.apply(plan)
    return plan


def test_each_kind_of_change_is_its_own_class_that_describes_applies_and_diffs_itself():
    for cls, kind in KINDS.items():
        assert issubclass(cls, install.Change) and cls.kind == kind
        assert cls.apply is not install.Change.apply, cls
        assert "__slots__" in vars(cls), cls
    assert len(set(KINDS.values())) == len(KINDS)


def test_a_first_deploy_is_planned_as_typed_changes_whose_diffs_are_the_modules(sandbox):
    sandbox.recorder("rec")
    plan = installer(sandbox).plan(["qemu"], [RULE], log={"file": str(sandbox.log)}, scripts=sandbox.staged())
    kinds = {type(c) for c in plan.changes}
    assert {install.WriteFile, install.Symlink, install.NewGeneration, install.SwitchGeneration} <= kinds
    assert kinds <= set(KINDS)
    generation = next(c for c in plan.changes if isinstance(c, install.NewGeneration))
    assert generation.files["scripts/rec"][1] == install.SCRIPT_MODE
    switch = next(c for c in plan.changes if isinstance(c, install.SwitchGeneration))
    assert switch.generation == plan.generation and switch.describe() == "switch %s/current (generation %s)" % (
        sandbox.own, plan.generation)
    entry = next(c for c in plan.changes if isinstance(c, install.WriteFile) and c.path == str(sandbox.hooks / "qemu"))
    # (an entry point's compiled bootstrap is shown as its size and digest: entrypoint.readable)
    expected = {"before_header": entry.path, "after_header": entry.path, "before": "",
                "after": readable(entry.data.decode())}
    assert entry.diff(plan, str(sandbox.own)) == [expected]
    assert plan.describe() == [c.describe() for c in plan.changes]


def test_pruning_names_how_many_generations_it_keeps(sandbox):
    for n in range(3):
        sandbox.recorder("rec", "echo %d\n" % n)
        plan = deploy(sandbox, keep=2)
    prune = [c for c in plan.changes if isinstance(c, install.PruneGenerations)]
    assert len(prune) == 1 and prune[0].keep == 2 and not hasattr(prune[0], "mode")
    assert len(os.listdir(sandbox.own / "generations")) == 2


def test_retiring_the_layout_before_generations_says_which_of_its_two_steps_it_takes(sandbox):
    sandbox.recorder("rec")
    deploy(sandbox)
    gen_dir = sandbox.own / os.readlink(sandbox.own / "current")
    (sandbox.own / "config.json").unlink()
    os.rename(gen_dir / "config.json", sandbox.own / "config.json")
    os.rename(gen_dir / "scripts", sandbox.own / "scripts")
    (sandbox.own / "current").unlink()
    subprocess.run(["rm", "-rf", str(sandbox.own / "generations")], check=True)
    plan = deploy(sandbox)
    retire = [c for c in plan.changes if isinstance(c, install.RetireOldLayout)]
    assert len(retire) == 1 and (retire[0].relink_config, retire[0].remove_scripts) == (True, True)
    assert not hasattr(retire[0], "data")
    assert os.readlink(sandbox.own / "config.json") == "current/config.json"
    assert not (sandbox.own / "scripts").exists()


def test_a_deploy_spec_takes_every_option_of_hook_runtime_by_its_name():
    params = {"drivers": ["qemu", "network"], "rules": [RULE], "foreign_hooks": "adopt",
              "log": {"file": "/var/log/x.jsonl"}, "tree": {"enabled": True}, "kill_grace": 4.5, "purge": True,
              "generations_keep": 7, "deployer": "ops", "max_size": 4096, "foreign_on_failure": "fail"}
    spec = install.DeploySpec.from_params(params, scripts=[], cli_link="/root/usr/local/bin/virthooks")
    assert spec == install.DeploySpec(
        drivers=["qemu", "network"], rules=[RULE], foreign="adopt", log={"file": "/var/log/x.jsonl"},
        tree={"enabled": True}, kill_grace=4.5, cli_link="/root/usr/local/bin/virthooks", scripts=[], purge=True,
        keep=7, deployer="ops", max_size=4096, adopted_on_failure="fail")
    defaults = {k: v["default"] for k, v in hook_runtime.ARGUMENT_SPEC.items() if "default" in v}
    assert install.DeploySpec.from_params(defaults).log is None      # {} is "no log section"
    assert set(params) <= set(hook_runtime.ARGUMENT_SPEC)


def test_a_deploy_spec_that_cannot_be_deployed_names_why(sandbox):
    assert install.DeploySpec(keep=0).problem() == "keep must be at least 1 (got 0)"
    assert "on_failure must be one of abortable, fail (got 'sometimes')" in install.DeploySpec(
        adopted_on_failure="sometimes").problem()
    assert install.DeploySpec().problem() == ""


def test_hook_runtime_dispatches_every_state_through_its_table():
    states = hook_runtime.ARGUMENT_SPEC["state"]["choices"]
    assert sorted(hook_runtime.STATES) == sorted(states)
    assert all(callable(f) for f in hook_runtime.STATES.values())
