"""Per-rule environment and the files a script reads: deployed by the real installer into a generation,
handed over by the real dispatcher to real scripts."""
from __future__ import annotations

import json

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils import install
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import ConfigError, normalize_config
from tests.support.peers import SASCHPE_HOOK

from ..conftest import LIBVIRT_ENV
from .test_dispatch import rule

SECRET = "tok-env-S3cr3t"


def deploy(box, rules, scripts, purge=True):
    installer = install.RuntimeInstaller(str(box.hooks), box.python, -1, -1)
    plan = installer.plan(("qemu",), rules, log={"file": str(box.log)}, scripts=scripts, purge=purge)
    installer.apply(plan)
    return plan


def env_script(box):
    return {"name": "show", "state": "present", "secrets": {"TOKEN": SECRET.encode()},
            "files": {"hooks.json": (b'{"vm1": {}}\n', 0o600), "helper": (b"#!/bin/sh\n", 0o700)},
            "data": ("#!/bin/sh\nenv > %s/env\ncat \"$CONFIG_FILENAME\" > %s/config\n" % (box.seen, box.seen)).encode()}


def seen_env(box) -> dict:
    return dict(line.split("=", 1) for line in (box.seen / "env").read_text().splitlines() if "=" in line)


@pytest.mark.root
def test_a_script_gets_its_rules_env_its_files_directory_and_a_secret_value_from_its_file(sandbox):
    deploy(sandbox, [rule("show", env={"CONFIG_FILENAME": "${VIRTHOOKS_FILES}/hooks.json", "MODE": "fast",
                                       "TOKEN": {"secret": True}})], [env_script(sandbox)])
    fired = sandbox.fire("qemu", "vm1", "start", "begin")
    assert fired.rc == 0, fired
    env = seen_env(sandbox)
    files = (sandbox.current / "files" / "show").resolve()
    assert env["VIRTHOOKS_FILES"] == str(files)
    assert env["CONFIG_FILENAME"] == "%s/hooks.json" % files and env["MODE"] == "fast"
    assert env["TOKEN"] == SECRET
    assert (sandbox.seen / "config").read_text() == '{"vm1": {}}\n'
    assert {p.name: p.stat().st_mode & 0o7777 for p in files.iterdir()} == {"hooks.json": 0o600, "helper": 0o700}
    assert all(p.stat().st_uid == 0 for p in files.iterdir())
    assert SECRET not in sandbox.config.read_text() and SECRET not in sandbox.log.read_text()
    assert json.loads(sandbox.config.read_text())["rules"][0]["env"]["TOKEN"] == {"secret": True}


def test_a_script_without_files_gets_no_files_directory_even_one_inherited(sandbox):
    deploy(sandbox, [rule("show")], [dict(env_script(sandbox), files={}, secrets={},
                                          data=("#!/bin/sh\nenv > %s/env\n" % sandbox.seen).encode())])
    env = dict(LIBVIRT_ENV, VIRTHOOKS_FILES="/tmp/evil")
    assert sandbox.fire("qemu", "vm1", "start", "begin", env=env).rc == 0
    assert "VIRTHOOKS_FILES" not in seen_env(sandbox)


def test_a_missing_secret_fails_the_script_naming_the_variable_not_running_it(sandbox):
    deploy(sandbox, [rule("show", env={"TOKEN": {"secret": True}})], [dict(env_script(sandbox), secrets={})])
    fired = sandbox.fire("qemu", "vm1", "prepare", "begin")
    assert fired.rc == 1 and "script 'show' could not be started: env TOKEN: its secret cannot be read" in fired.stderr
    assert not (sandbox.seen / "env").exists()


def test_changing_a_file_makes_a_new_generation_and_the_same_deploy_again_none(sandbox):
    rules = [rule("show", env={"CONFIG_FILENAME": "${VIRTHOOKS_FILES}/hooks.json"})]
    first = deploy(sandbox, rules, [env_script(sandbox)])
    assert deploy(sandbox, rules, [env_script(sandbox)]).changes == []
    changed = dict(env_script(sandbox), files={"hooks.json": (b'{"vm2": {}}\n', 0o600)})
    plan = deploy(sandbox, rules, [changed])
    assert plan.generation != first.generation and plan.scripts.updated == ["show"]
    diff = install.diff_of(plan, str(sandbox.hooks))
    assert any(d.get("after") == '{"vm2": {}}\n' and "files/show/hooks.json" in d["after_header"] for d in diff)
    assert not (sandbox.current / "files" / "show" / "helper").exists()
    assert sandbox.fire("qemu", "vm1", "start", "begin").rc == 0
    assert (sandbox.seen / "config").read_text() == '{"vm2": {}}\n'


def test_undeclared_scripts_keep_their_files_without_purge(sandbox):
    deploy(sandbox, [rule("show", env={"CONFIG_FILENAME": "${VIRTHOOKS_FILES}/hooks.json"})], [env_script(sandbox)])
    other = {"name": "other", "state": "present", "data": b"#!/bin/sh\n"}
    deploy(sandbox, [rule("show", env={"CONFIG_FILENAME": "${VIRTHOOKS_FILES}/hooks.json"}), rule("other")],
           [other], purge=False)
    assert (sandbox.current / "files" / "show" / "hooks.json").read_bytes() == b'{"vm1": {}}\n'


@pytest.mark.parametrize("name", ["PATH", "LD_PRELOAD", "VIRTHOOKS_SECRETS", "LIBVIRT_HOOK_OBJECT", "BASH_ENV",
                                  "PYTHONPATH", "lower", "1ABC", "A-B"])
def test_env_names_that_are_reserved_or_malformed_are_refused_naming_them(name):
    with pytest.raises(ConfigError, match="env name '?%s'? " % name.replace("-", "\\-")):
        normalize_config({"version": 1, "rules": [{"name": "r", "script": "s", "env": {name: "v"}}]})


def test_env_values_must_be_strings_or_a_secret_marker():
    with pytest.raises(ConfigError, match="env PORT must be a string"):
        normalize_config({"version": 1, "rules": [{"name": "r", "script": "s", "env": {"PORT": 80}}]})
    with pytest.raises(ConfigError, match="env X must be a string"):
        normalize_config({"version": 1, "rules": [{"name": "r", "script": "s", "env": {"X": {"secret": "v"}}}]})


def test_saschpe_hook_runs_as_a_deployed_script_with_its_hooks_json_and_no_wrapper(sandbox):
    """The peer's own hook, unchanged, finds hooks.json through its CONFIG_FILENAME variable (the real
    hook reads it the same way) and forwards for vm1 on start, as under its own entry point."""
    log = sandbox.seen / "saschpe"
    hook = (SASCHPE_HOOK % (str(log), str(log), str(log))).replace("#!/usr/bin/env python3", "#!/usr/bin/python3")
    deploy(sandbox, [rule("saschpe", operations=["start", "stopped", "reconnect"],
                          env={"CONFIG_FILENAME": "${VIRTHOOKS_FILES}/hooks.json"})],
           [{"name": "saschpe", "state": "present", "data": hook.encode(),
             "files": {"hooks.json": (b'{"vm1": {"private_ip": "192.168.122.10", "port_map": {"tcp": [80]}}}', 0o600)}}])
    for op, sub in (("start", "begin"), ("reconnect", "begin"), ("stopped", "end")):
        fired = sandbox.fire("qemu", "vm1", op, sub)
        assert fired.rc == 0, fired
    assert sandbox.fire("qemu", "other", "start", "begin").rc == 0
    assert log.read_text().splitlines() == [
        "saschpe vm1 start forward", "saschpe vm1 start_forwarding 192.168.122.10",
        "saschpe vm1 reconnect forward", "saschpe vm1 stop_forwarding 192.168.122.10",
        "saschpe vm1 start_forwarding 192.168.122.10",
        "saschpe vm1 stopped forward", "saschpe vm1 stop_forwarding 192.168.122.10",
        "saschpe other start no-config"]
