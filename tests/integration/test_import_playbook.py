"""playbooks/import.yml (the fleet form of `virthooks import`) run for real on two local hosts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import importers
from tests.support.ansible import ansible_env
from tests.support.paths import REPO
from tests.support.peers import HOOKS_JSON


def recorder(path: Path, label: str, log: Path, status: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\necho "%s $*" >> %s\nexit %d\n' % (label, log, status))
    path.chmod(0o755)
    return path


def test_fleet_playbook_writes_one_file_per_host(tmp_path):
    """playbooks/import.yml on two hosts (local connections, each with its own hooks directory): one YAML file
    per host on the controller, the same variables as `virthooks import` on that host."""
    inventory = {"hypervisors": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                          "ansible_become": False},
                                 "hosts": {}}}
    for host in ("host-a", "host-b"):
        hooks = tmp_path / host / "hooks"
        hooks.mkdir(parents=True)
        inventory["hypervisors"]["hosts"][host] = {"libvirt_hooks_import_hooks_dir": str(hooks)}
    recorder(tmp_path / "host-a" / "hooks" / "qemu.d" / "vm1" / "prepare" / "begin", "a", tmp_path / "log")
    (tmp_path / "host-b" / "hooks" / "hooks.json").write_text(HOOKS_JSON)
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    env = ansible_env(ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_HOME=str(tmp_path / "ansible-home"))
    out = tmp_path / "imported"
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(REPO / "playbooks" / "import.yml"), "-e", "libvirt_hooks_import_dir=%s" % out],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in ("host-a", "host-b"):
        expected, _notes, _found = importers.import_host(str(tmp_path / host / "hooks"))
        assert yaml.safe_load((out / ("%s.yml" % host)).read_text()) == expected
    assert "port_forward" in (out / "host-b.yml").read_text() and "# - saschpe:" in (out / "host-b.yml").read_text()
