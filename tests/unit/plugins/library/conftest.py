"""Run the library's blocks as the host runs them: each step's launcher (rendered as the role renders it) in
a generation's scripts/ folder of a hooks directory in tmp_path whose lib/current/virthooks_runtime is this
checkout's runtime package, executed with libvirt's argv, XML on stdin and environment, and its parameters in
a secrets directory named by VIRTHOOKS_SECRETS, as the dispatcher hands them. Host paths (state dir, sysfs,
procfs, cgroup root, tools) are pointed into tmp_path through the launcher's paths argument, which only tests
set; the role never does."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.filter.library_scripts import params_secret
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import launcher
from tests.support.paths import REPO
# The module_utils tests' sandbox fixture, for the launcher tests.
from tests.unit.plugins.module_utils.conftest import sandbox  # noqa: F401 # pylint: disable=unused-import

RUNTIME = REPO / "plugins" / "module_utils" / "runtime"
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
        self.own = tmp / "hooks" / "virthooks"
        self.generation = self.own / "generations" / "g1"
        lib = self.own / "lib" / "current"
        lib.mkdir(parents=True)
        (lib / "virthooks_runtime").symlink_to(RUNTIME)
        self.state = tmp / "run" / "virthooks"
        self.paths = {"state": str(self.state)}

    def script(self, block: str, step: str, params: dict) -> Path:
        path = self.generation / "scripts" / ("lib-%s-%s" % (block, step))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(launcher.render(block, step, PYTHON, self.paths))
        path.chmod(0o700)
        secrets = self.secrets_dir(block, step)
        secrets.mkdir(parents=True, exist_ok=True)
        for name, value in params_secret(json.loads(json.dumps(params))).items():
            (secrets / name).write_text(value)
            (secrets / name).chmod(0o600)
        return path

    def secrets_dir(self, block: str, step: str) -> Path:
        return self.generation / "secrets" / ("lib-%s-%s" % (block, step))

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
