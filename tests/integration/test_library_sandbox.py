"""libvirt_hooks_library through the role on sandbox hosts: expansion, idempotence, controller-side refusal."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.integration.test_role_sandbox import SH, Fleet, recap, tree_state

pytestmark = pytest.mark.root  # deploys through the modules, which chown what they install to root

LIBRARY = {"hugepages": {"guests": ["vm-*"]},
           "notify": {"url": "http://ops:secret@127.0.0.1:9/hook", "operations": ["started"]}}


def test_library_blocks_are_installed_as_scripts_and_rules_and_a_rerun_changes_nothing(tmp_path):
    fleet = Fleet(tmp_path)
    fleet.write(gpu={"libvirt_hooks_library": LIBRARY,
                     "libvirt_hooks_scripts__gpu": [{"name": "mine", "operations": ["prepare"], "content": SH % tmp_path}]})
    first = fleet.deploy()
    assert first.returncode == 0, first.stdout + first.stderr
    scripts = fleet.hooks("host-a") / "virthooks" / "current" / "scripts"
    assert sorted(os.listdir(scripts)) == ["lib-hugepages-release", "lib-hugepages-reserve", "lib-notify-post", "mine"]
    assert (scripts / "lib-hugepages-reserve").read_text().startswith("#!/usr/bin/python3 -IS\n")
    assert not (fleet.hooks("host-b") / "virthooks" / "current" / "scripts" / "lib-notify-post").exists()
    # The webhook's password is not in the notify script but in its root-only PARAMS secret.
    assert "ops:secret@" not in (scripts / "lib-notify-post").read_text()
    params = scripts.parent / "secrets" / "lib-notify-post" / "PARAMS"
    assert "ops:secret@" in params.read_text()
    assert params.stat().st_mode & 0o7777 == 0o600 and params.stat().st_uid == 0
    for path in scripts.iterdir():
        assert path.stat().st_mode & 0o7777 == 0o700 and path.stat().st_uid == 0, path
    rules = {r["name"]: r for r in json.loads((fleet.hooks("host-a") / "virthooks" / "config.json").read_text())["rules"]}
    assert rules["lib-hugepages-reserve"]["xpath"] == "/domain/memoryBacking/hugepages"
    assert rules["lib-notify-post"]["on_failure"] == "ignore" and rules["lib-notify-post"]["operations"] == ["started"]
    listed = subprocess.run([str(fleet.hooks("host-a") / "virthooks" / "virthooks"), "list"], capture_output=True,
                            text=True, check=False, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    assert "lib-notify-post" in listed.stdout, listed
    second = fleet.deploy()
    assert second.returncode == 0 and recap(second)["host-a"]["changed"] == 0


def test_a_bad_library_parameter_fails_on_the_controller_and_hosts_keep_their_hooks(tmp_path):
    fleet = Fleet(tmp_path)
    fleet.write(gpu={"libvirt_hooks_library": LIBRARY})
    assert fleet.deploy().returncode == 0
    before = tree_state(tmp_path / "host-a")
    fleet.write(gpu={"libvirt_hooks_library": {"disk_snapshot": {"keep": 0}}})
    proc = fleet.deploy()
    assert proc.returncode != 0
    assert "libvirt_hooks_library.disk_snapshot.keep: must be an integer from 1 to 1000" in proc.stdout
    assert tree_state(tmp_path / "host-a") == before


def test_the_role_validates_each_blocks_parameters_by_its_argument_specs_before_any_host_is_touched(tmp_path):
    """meta/argument_specs.yml declares every block's options: an unknown one or a wrong type stops the role at its
    start, naming the block, and the secret values are not shown."""
    fleet = Fleet(tmp_path)
    fleet.write(gpu={"libvirt_hooks_library": LIBRARY})
    assert fleet.deploy().returncode == 0
    before = tree_state(tmp_path / "host-a")
    fleet.write(gpu={"libvirt_hooks_library": {"hugepages": {"size": 2},
                                               "notify": {"url": "http://ops:secret@127.0.0.1:9/hook", "retries": "many"}}})
    proc = fleet.deploy()
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Validation of arguments failed" in out, out[-3000:]
    assert "libvirt_hooks_library.hugepages.size. Supported parameters include: guests, state." in out, out[-3000:]
    assert "argument 'retries' is of type str found in 'libvirt_hooks_library -> notify'" in out
    assert "ops:secret" not in out
    assert tree_state(tmp_path / "host-a") == before
