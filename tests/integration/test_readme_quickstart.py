"""The README's quick start works from a clone, as printed.

The fenced block after the README's `<!-- quickstart` marker is run literally (bash -e, one command after
the other) in a fresh `git clone` of this checkout's HEAD (commit first: the clone is what a user gets),
in a clean shell (`env -i`, PATH = the venv's bin and the system's, HOME a temporary directory), with no
ANSIBLE_* variable: only the clone's own ansible.cfg tells Ansible where the collection is. It runs in
the hermetic namespace of tests/support/hermetic.py: everything but the temporary directory is
read-only, and the host's libvirt tools, virsh, systemctl, service and crontab are recorders that must
record nothing.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.hermetic import Hermetic

pytestmark = pytest.mark.root  # a private mount namespace, and the quick start deploys as root

MARKER = "<!-- quickstart"


def quickstart_block(readme: str) -> str:
    """The fenced block right after the marker line, as printed."""
    lines = readme.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(MARKER)]
    assert len(starts) == 1, "the README needs exactly one %s ... --> line before its quick start" % MARKER
    rest = lines[starts[0] + 1:]
    assert rest and re.match(r"^```(sh|bash|console)?$", rest[0]), "a ```sh block must follow the quick start marker"
    end = rest.index("```", 1)
    return "\n".join(rest[1:end]) + "\n"


def test_the_quickstart_block_is_found_and_runs_commands():
    block = quickstart_block((REPO / "README.md").read_text())
    commands = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert any(line.startswith("ansible-playbook -i examples/inventory/sandbox.yml playbooks/deploy_hooks.yml")
               for line in commands), block


def test_readme_quickstart_runs_as_printed_in_a_fresh_clone(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for a private mount namespace (and the quick start says: as root)")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    clone = tmp_path / "virthooks.libvirt"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", head], check=True)
    block = quickstart_block((clone / "README.md").read_text())
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "quickstart.sh"
    script.write_text("set -e\n" + block)
    ns = Hermetic(tmp_path)
    proc = ns.run(["env", "-i", "PATH=%s:/usr/bin:/bin" % Path(sys.executable).parent, "HOME=%s" % home,
                   "bash", "-x", str(script)], cwd=clone)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, "the README's quick start failed in a clone (rc=%d):\n%s" % (proc.returncode, output[-8000:])
    assert ns.recorded() == [], "the quick start ran the host's tools:\n" + "\n".join(ns.recorded())
    assert "isolate-cpus" in output, output[-4000:]           # the demo's hooks ran; the CLI shows them
    # Nothing left outside the clone but Ansible's (empty) scratch directory in HOME.
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if not p.is_dir())
    assert left == [], left
