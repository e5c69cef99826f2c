"""Real Ansible runs: an environment that sees this collection only, and one module run in a playbook."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.paths import COLLECTIONS, EXTRA_COLLECTIONS, REPO


def ansible_env(**extra: str) -> dict:
    """Environment for ansible commands that sees this collection and nothing from the user's config."""
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update(
        PATH=venv_bin + os.pathsep + env.get("PATH", ""),
        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([str(COLLECTIONS), str(EXTRA_COLLECTIONS)]),
        ANSIBLE_CONFIG=str(REPO / "tests" / "ansible.cfg"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_LOCAL_TEMP=str(REPO / "tests" / "output" / "ansible-tmp"),
    )
    env.pop("PYTHONPATH", None)      # ansible-test's, which would shadow the venv's ansible
    env.update(extra)
    return env


def run_module(module: str, args: dict, check: bool = False, diff: bool = False,
               python: str = sys.executable) -> dict:
    """Run one module for real in a one-task playbook; return its full registered result.

    The registered result keeps what ad-hoc callbacks drop (failed, warnings, diff).
    """
    with tempfile.TemporaryDirectory() as work:
        out = Path(work, "result.json")
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "module under test", module: args, "register": "result", "ignore_errors": True},
            {"name": "save the result", "ansible.builtin.copy": {"content": "{{ result | to_json }}",
                                                                 "dest": str(out)},
             "check_mode": False, "diff": False},
        ]}]
        Path(work, "play.yml").write_text(json.dumps(play))
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=" + python,
               str(Path(work, "play.yml"))]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(), timeout=300, check=False)
        if not out.exists():
            raise AssertionError("ansible-playbook saved no result (rc=%d):\n%s\n%s"
                                 % (proc.returncode, proc.stdout, proc.stderr))
        return json.loads(out.read_text())
