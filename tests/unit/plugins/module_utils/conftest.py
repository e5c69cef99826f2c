"""A sandbox hooks directory with the real runtime installed, and a way to fire events at it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils import install

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
# libvirt replaces the environment of a hook with LC_ALL=C and a few of its own variables.
LIBVIRT_ENV = {"LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class Fired:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "Fired(rc=%r, stdout=%r, stderr=%r)" % (self.rc, self.stdout[:200], self.stderr)


class Sandbox:
    """hooks dir under tmp_path; scripts record what they saw into tmp_path/seen."""

    def __init__(self, root: Path, python: str = SYSTEM_PYTHON):
        self.root = root
        self.hooks = root / "etc" / "libvirt" / "hooks"
        self.own = self.hooks / "virthooks"
        self.stage = root / "stage"        # scripts are written here, then deployed into a generation
        self.scripts = self.stage
        self.log = root / "log" / "virthooks.jsonl"
        self.seen = root / "seen"
        self.python = python
        self.scripts.mkdir(parents=True)
        self.hooks.mkdir(parents=True)
        self.seen.mkdir()

    def script(self, name: str, body: str, mode: int = 0o755, shebang: str = "#!/bin/sh") -> Path:
        path = self.scripts / name
        path.write_text((shebang + "\n" if shebang else "") + body)
        path.chmod(mode)
        return path

    def recorder(self, name: str, extra: str = "") -> Path:
        """A script that appends 'name argv' to seen/order and saves its stdin and env."""
        return self.script(name, (
            'echo "%s $*" >> %s/order\n'
            'cat > %s/%s.stdin\n'
            'env > %s/%s.env\n'
            'pwd > %s/%s.cwd\n' % (name, self.seen, self.seen, name, self.seen, name, self.seen, name)) + extra)

    def deploy(self, rules: list, drivers=("qemu",), log: dict | None = None, tree: dict | None = None,
               kill_grace: float = 1, keep: int = 3):
        """Deploy rules and the scripts staged with script()/recorder() as one generation."""
        log = dict({"file": str(self.log)}, **(log or {}))
        installer = install.RuntimeInstaller(str(self.hooks), self.python, -1, -1)
        plan = installer.plan(drivers, rules, log=log, tree=tree, kill_grace=kill_grace, scripts=self.staged(),
                              keep=keep)
        installer.apply(plan)
        return plan

    def staged(self) -> list:
        """The scripts written with script()/recorder(), as the installer takes them."""
        if not self.stage.is_dir():
            return []
        return [{"name": p.name, "state": "present", "data": p.read_bytes()} for p in sorted(self.stage.iterdir())]

    @property
    def current(self) -> Path:
        """The current generation's directory."""
        return self.own / "current"

    @property
    def config(self) -> Path:
        return self.current / "config.json"

    def installed(self, name: str) -> Path:
        """A deployed script, in the current generation (where the dispatcher runs it from)."""
        return self.current / "scripts" / name

    def fire(self, driver: str, obj: str = "-", op: str = "start", sub: str = "begin", extra: str = "-",
             stdin: bytes = b"", timeout: float = 60, env: dict | None = None) -> Fired:
        proc = subprocess.run([str(self.hooks / driver), obj, op, sub, extra], input=stdin, capture_output=True,
                              env=env or LIBVIRT_ENV, cwd=str(self.root), timeout=timeout, check=False)
        return Fired(proc)

    def order(self) -> list:
        path = self.seen / "order"
        return path.read_text().splitlines() if path.exists() else []

    def records(self) -> list:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


@pytest.fixture
def sandbox(tmp_path):
    return Sandbox(tmp_path)


@pytest.fixture
def venv_sandbox(tmp_path):
    """A sandbox whose dispatcher runs under the test venv's Python (which has lxml)."""
    return Sandbox(tmp_path, sys.executable)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
