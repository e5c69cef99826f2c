"""A Generation is read once (id, meta, config, scripts) and shared by the rollback and the installer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.virthooks.libvirt.plugins.module_utils import install
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.generations import Generation

COLLECTIONS = str(Path(__file__).resolve().parents[4] / "tests" / "output" / "collections")
OK = b"#!/bin/sh\ncat >/dev/null\nexit 0\n"


def deploy(box, *names):
    inst = install.RuntimeInstaller(str(box.hooks), box.python, -1, -1)
    rules = [{"name": n, "script": "scripts/" + n, "operations": ["prepare"]} for n in names]
    plan = inst.plan(["qemu"], rules, log={"file": str(box.log)}, purge=True, deployer="tester",
                     scripts=[{"name": n, "state": "present", "data": OK} for n in names])
    inst.apply(plan)
    return plan


def test_a_generation_is_its_id_meta_config_and_scripts(sandbox):
    plan = deploy(sandbox, "a", "b")
    gen = Generation.current(str(sandbox.own))
    assert gen.id == plan.generation and gen.path == str(sandbox.own / "generations" / plan.generation)
    assert gen.meta["deployer"] == "tester" and gen.meta["id"] == plan.generation
    assert gen.config == (sandbox.own / "current" / "config.json").read_bytes()
    assert gen.scripts == {"a": OK, "b": OK}
    assert [r["name"] for r in gen.load_config()["rules"]] == ["a", "b"]
    assert not hasattr(gen, "__dict__")     # a plain __slots__ record: the dispatcher imports this module


def test_a_host_before_generations_is_read_as_a_generation_without_an_id(sandbox):
    (sandbox.own / "scripts").mkdir(parents=True)
    (sandbox.own / "scripts" / "old").write_bytes(OK)
    gen = Generation.current(str(sandbox.own))
    assert (gen.id, gen.path, gen.meta, gen.config, gen.scripts) == ("", str(sandbox.own), {}, None, {"old": OK})


OPENS = """
import sys
sys.path.insert(0, {path!r})
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rollback import plan_rollback
plan = plan_rollback(sys.argv[1])
import json
print(json.dumps([p for p in opened if p.endswith(("/config.json", "/meta.json"))]))
"""


def test_planning_a_rollback_reads_each_generations_meta_and_config_once(sandbox):
    first = deploy(sandbox, "a").generation
    second = deploy(sandbox, "a", "b").generation
    proc = subprocess.run([sys.executable, "-c", OPENS.format(path=COLLECTIONS), str(sandbox.hooks)],
                          capture_output=True, text=True, timeout=60, check=True)
    opened = [os.path.relpath(p, str(sandbox.own)) for p in json.loads(proc.stdout.splitlines()[-1])]
    assert sorted(opened) == sorted(["generations/%s/meta.json" % first, "generations/%s/config.json" % first,
                                     "generations/%s/meta.json" % second, "generations/%s/config.json" % second])
