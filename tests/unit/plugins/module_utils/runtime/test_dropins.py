"""Host drop-in rules (hooks/virthooks/rules.d/*.json): an admin's rules added on the host without
Ansible, run through real entry points, the real dispatcher, the installed CLI and the installer."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ansible_collections.virthooks.libvirt.plugins.module_utils import install
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.entrypoint import render_entry_point

from .test_cli import cli, cli3
from .test_dispatch import rule


def dropin(box, file: str, data, script_name: str = "", body: str = "") -> Path:
    """rules.d/<file> holding data (JSON, or text as it is), and a recorder script beside it."""
    directory = box.own / "rules.d"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    path.chmod(0o644)
    if script_name:
        script = directory / script_name
        script.write_text("#!/bin/sh\n" + (body or 'echo "%s $*" >> %s/order\n' % (script_name.split(".")[0], box.seen)))
        script.chmod(0o755)
    return path


def test_a_dropin_rule_runs_after_the_deployed_ones_on_an_event_no_deployed_rule_matches(sandbox):
    sandbox.recorder("deployed")
    sandbox.deploy([rule("deployed", operations=["prepare"])])
    dropin(sandbox, "50-local.json", {"name": "local", "script": "local.sh", "operations": ["started"]}, "local.sh")
    assert sandbox.fire("qemu", "vm1", "started", "begin").rc == 0
    assert sandbox.fire("qemu", "vm1", "prepare", "begin").rc == 0
    assert sandbox.order() == ["local vm1 started begin -", "deployed vm1 prepare begin -"]
    started = sandbox.records()[0]
    assert [(s["name"], s["source"]) for s in started["scripts"]] == [("local", "rules.d")]


def test_a_dropin_file_may_hold_a_list_and_runs_in_order_among_deployed_rules(sandbox):
    sandbox.recorder("deployed")
    sandbox.deploy([rule("deployed", order=50)])
    dropin(sandbox, "a.json", [{"name": "early", "script": "early.sh", "order": 10},
                               {"name": "late", "script": "late.sh", "order": 90}], "early.sh")
    dropin(sandbox, "b.json", [], "late.sh")
    assert sandbox.fire("qemu", "g", "start", "begin").rc == 0
    assert [line.split()[0] for line in sandbox.order()] == ["early", "deployed", "late"]


def test_a_bad_dropin_is_skipped_logged_and_never_fails_a_guest_start(sandbox):
    sandbox.recorder("deployed")
    sandbox.deploy([rule("deployed")])
    broken = dropin(sandbox, "10-broken.json", "{not json")
    typo = dropin(sandbox, "20-typo.json", {"name": "typo", "script": "x.sh", "opertions": ["start"]})
    writable = dropin(sandbox, "30-writable.json", {"name": "w", "script": "w.sh"}, "w.sh")
    writable.chmod(0o666)
    escape = dropin(sandbox, "40-escape.json", {"name": "e", "script": "../../qemu"})
    good = dropin(sandbox, "50-good.json", {"name": "good", "script": "good.sh"}, "good.sh")
    fired = sandbox.fire("qemu", "g", "prepare", "begin")
    assert fired.rc == 0 and fired.stderr == "", fired
    assert sandbox.order() == ["deployed g prepare begin -", "good g prepare begin -"]
    skipped = sandbox.records()[-1]["dropins_skipped"]
    assert len(skipped) == 4
    for path, why in ((broken, "is not valid JSON"), (typo, "unknown field 'opertions'"),
                      (writable, "is writable by group or others"), (escape, "'..' parts")):
        assert any(s.startswith(str(path)) and why in s for s in skipped), (path, skipped)
    code, out = cli(sandbox, "validate")
    assert code == 1
    for path in (broken, typo, writable, escape):
        assert "FAIL %s" % path in out, out
    assert str(good) not in out


def test_validate_checks_a_dropins_script_its_driver_and_its_name(sandbox):
    sandbox.recorder("deployed")
    sandbox.deploy([rule("deployed")])
    dropin(sandbox, "ok.json", {"name": "ok", "script": "ok.sh"}, "ok.sh")
    assert cli(sandbox, "validate")[0] == 0
    dropin(sandbox, "syntax.json", {"name": "syn", "script": "syn.sh"}, "syn.sh", body="if true; then\n")
    dropin(sandbox, "clash.json", {"name": "deployed", "script": "ok.sh"})
    dropin(sandbox, "lxc.json", {"name": "ct", "driver": "lxc", "script": "ok.sh"})
    dropin(sandbox, "outside.json", {"name": "out", "script": "/usr/bin/true"})
    code, out = cli(sandbox, "validate")
    assert code == 1
    assert "FAIL rules.d/syntax.json: script 'syn'" in out
    assert "FAIL rules.d/clash.json: rule 'deployed': a deployed rule has this name" in out
    assert ("WARN rules.d/lxc.json: rule 'ct' for the lxc driver, which has no entry point (hooks/lxc is missing), "
            "so it never runs; list lxc in libvirt_hooks_drivers") in out
    assert "outside.json: rule 'out': 'script' /usr/bin/true must be in a subdirectory of" in out


def test_list_marks_dropin_rules_and_shows_them_for_an_event(sandbox):
    sandbox.recorder("deployed")
    sandbox.deploy([rule("deployed")])
    dropin(sandbox, "local.json", {"name": "local", "script": "local.sh"}, "local.sh")
    dropin(sandbox, "bad.json", "[")
    code, out = cli(sandbox, "list")
    assert code == 0
    line = [x for x in out.splitlines() if x.startswith("local ")]
    assert line and line[0].endswith("(from rules.d/local.json)"), out
    assert "note: host drop-in skipped: %s/rules.d/bad.json is not valid JSON" % sandbox.own in out
    code, out = cli(sandbox, "list", "qemu", "g", "start")
    assert code == 0 and "%s/rules.d/local.sh" % sandbox.own in out


def test_without_dropins_an_unmatched_event_never_starts_python_and_with_one_it_does(tmp_path):
    """The prefilter in a real sh: a python that does not exist shows whether the dispatcher was started."""
    hooks = tmp_path / "hooks"
    (hooks / "virthooks").mkdir(parents=True)
    entry = hooks / "qemu"
    entry.write_text(render_entry_point("qemu", str(hooks), "/nonexistent/python3", [rule("x", driver="qemu", operations=["prepare"])]))
    entry.chmod(0o755)

    def fire(op):
        return subprocess.run([str(entry), "g", op, "begin", "-"], capture_output=True, text=True, check=False)

    assert fire("started").returncode == 0
    assert "missing or not executable" in fire("prepare").stderr
    (hooks / "virthooks" / "rules.d").mkdir()
    (hooks / "virthooks" / "rules.d" / "README").write_text("only *.json counts\n")
    assert fire("started").returncode == 0
    (hooks / "virthooks" / "rules.d" / "local.json").write_text("{}")
    assert "missing or not executable" in fire("started").stderr


def test_a_deploy_never_removes_dropins_and_they_still_run_after_it(sandbox):
    sandbox.recorder("deployed")
    sandbox.deploy([rule("deployed", operations=["prepare"])])
    path = dropin(sandbox, "local.json", {"name": "local", "script": "local.sh", "operations": ["started"]},
                  "local.sh")
    sandbox.recorder("second")
    sandbox.deploy([rule("deployed", operations=["prepare"]), rule("second", operations=["release"])])
    assert path.exists() and (sandbox.own / "rules.d" / "local.sh").exists()
    assert sandbox.fire("qemu", "g", "started", "begin").rc == 0
    assert sandbox.order() == ["local g started begin -"]


def test_removing_everything_of_ours_keeps_the_dropins_and_is_idempotent(sandbox):
    sandbox.recorder("deployed")
    sandbox.deploy([rule("deployed")])
    path = dropin(sandbox, "local.json", {"name": "local", "script": "local.sh"}, "local.sh")
    installer = install.RuntimeInstaller(str(sandbox.hooks), sandbox.python, -1, -1)
    plan = installer.plan_removal()
    assert any("drop-in rules, rules.d/, kept" in c.note for c in plan.changes)
    installer.apply(plan)
    assert not (sandbox.hooks / "qemu").exists() and not (sandbox.own / "generations").exists()
    assert sorted(p.name for p in sandbox.own.iterdir()) == ["rules.d"]
    assert path.read_text() == json.dumps({"name": "local", "script": "local.sh"})
    assert install.RuntimeInstaller(str(sandbox.hooks), sandbox.python, -1, -1).plan_removal().changes == []
    sandbox.deploy([rule("deployed")])
    assert sandbox.fire("qemu", "g", "start", "begin").rc == 0
    assert sandbox.order() == ["deployed g start begin -", "local g start begin -"]


NETWORK_DROPIN = [{"name": "net-up", "driver": "network", "script": "net.sh", "operations": ["started"]},
                  {"name": "net-down", "driver": "network", "script": "net.sh", "operations": ["stopped"]}]


def test_a_dropin_for_a_driver_without_entry_point_is_named_by_validate_list_and_the_deploy(sandbox):
    sandbox.recorder("deployed")
    plan = sandbox.deploy([rule("deployed")])
    assert not [w for w in plan.warnings if "drop-in" in w]
    dropin(sandbox, "50-net.json", NETWORK_DROPIN, "net.sh")
    dropin(sandbox, "60-qemu.json", {"name": "local", "script": "local.sh"}, "local.sh")
    said = ("rules.d/50-net.json: rules 'net-up', 'net-down' for the network driver, which has no entry point "
            "(hooks/network is missing), so they never run; list network in libvirt_hooks_drivers "
            "(hook_runtime's drivers) and deploy again")
    # A warning, not a failure: the drop-in is the host's, and the role's check after a deploy must not roll
    # the deploy back for it.
    code, out = cli(sandbox, "validate")
    assert code == 0 and "FAIL " not in out and "WARN " + said in out, out
    code, out = cli(sandbox, "list")
    assert code == 0, out
    assert [line for line in out.splitlines() if line.startswith("note:")] == ["note: host drop-in never runs: " + said]
    code, out, err = cli3(sandbox, "list", "--json")
    runs = {r["name"]: r["entry_point"] for r in json.loads(out)["rules"]}
    assert runs == {"deployed": True, "local": True, "net-up": False, "net-down": False}
    assert said in err
    code, out = cli(sandbox, "list", "network", "default", "started")
    assert "note: hooks/network is missing: libvirt calls no virthooks entry point for network" in out
    warned = sandbox.deploy([rule("deployed")]).warnings
    assert warned == ["host drop-in rules.d/50-net.json: rules 'net-up', 'net-down' for the network driver, which "
                      "has no entry point (this deploy gives it none), so they never run; list network in "
                      "libvirt_hooks_drivers (hook_runtime's drivers) and deploy again"]


def test_a_dropin_runs_once_its_driver_is_listed_in_the_deploys_drivers(sandbox):
    sandbox.recorder("deployed")
    sandbox.deploy([rule("deployed")])
    dropin(sandbox, "50-net.json", NETWORK_DROPIN, "net.sh")
    plan = sandbox.deploy([rule("deployed")], drivers=("qemu", "network"))
    assert plan.added == ["network"] and not [w for w in plan.warnings if "drop-in" in w]
    assert cli(sandbox, "validate")[0] == 0
    assert "never runs" not in cli(sandbox, "list")[1]
    assert sandbox.fire("network", "default", "started", "begin").rc == 0
    assert sandbox.order() == ["net default started begin -"]


def test_a_disabled_dropin_rule_or_one_for_a_deployed_driver_is_not_reported(sandbox):
    sandbox.recorder("deployed")
    sandbox.deploy([rule("deployed")])
    dropin(sandbox, "off.json", {"name": "off", "driver": "lxc", "script": "x.sh", "enabled": False}, "x.sh")
    dropin(sandbox, "qemu.json", {"name": "more", "script": "x.sh"})
    code, out = cli(sandbox, "validate")
    assert code == 0 and "never" not in out, out
    assert "never" not in cli(sandbox, "list")[1]
