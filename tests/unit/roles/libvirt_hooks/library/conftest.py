"""Run the library's generated scripts for real: rendered by the filter, written to tmp_path, executed with
libvirt's argv, XML on stdin and environment, and their parameters in a secrets directory named by
VIRTHOOKS_SECRETS, as the dispatcher hands them. Host paths (state dir, sysfs, procfs, cgroup root, tools) are
pointed into tmp_path through the PATHS header only tests set; the role always renders it empty."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.filter.library_scripts import params_secret, render
from tests.conftest import REPO

FILES = REPO / "roles" / "libvirt_hooks" / "files" / "library"
PYTHON = shutil.which("python3", path="/usr/bin:/bin")
LIBVIRT_ENV = {"LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class Ran:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr

    def __repr__(self):
        return "Ran(rc=%r, stdout=%r, stderr=%r)" % (self.rc, self.stdout, self.stderr)


class Blocks:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.state = tmp / "run" / "virthooks"
        self.paths = {"state": str(self.state)}

    def script(self, block: str, step: str, params: dict) -> Path:
        path = self.tmp / ("lib-%s-%s" % (block, step))
        path.write_text(render(block, step, str(FILES), PYTHON, self.paths))
        path.chmod(0o755)
        secrets = self.secrets_dir(block, step)
        secrets.mkdir(parents=True, exist_ok=True)
        for name, value in params_secret(json.loads(json.dumps(params))).items():
            (secrets / name).write_text(value)
        return path

    def secrets_dir(self, block: str, step: str) -> Path:
        return self.tmp / "secrets" / ("lib-%s-%s" % (block, step))

    def run(self, block: str, step: str, params: dict, guest: str, xml: str = "", op: str = "prepare",
            sub: str = "begin", wrap: list | None = None, env: dict | None = None) -> Ran:
        cmd = (wrap or []) + [str(self.script(block, step, params)), guest, op, sub, "-"]
        proc = subprocess.run(cmd, input=xml, capture_output=True, text=True, cwd="/", timeout=120,
                              env=dict(LIBVIRT_ENV, VIRTHOOKS_SECRETS=str(self.secrets_dir(block, step)), **(env or {})),
                              check=False)
        return Ran(proc)

    def state_of(self, block: str, guest: str):
        path = self.state / block / (guest + ".json")
        return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture
def blocks(tmp_path):
    return Blocks(tmp_path)


def domain(name: str = "g1", body: str = "", memory_mib: int = 64) -> str:
    return ("<domain type='qemu'><name>%s</name><memory unit='MiB'>%d</memory><vcpu>1</vcpu>%s</domain>"
            % (name, memory_mib, body))
