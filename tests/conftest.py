"""Shared test plumbing: the collection on an importable path, and real Ansible runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / "tests" / "output" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "virthooks" / "libvirt"


def _link_collection() -> None:
    """Expose the repository as ansible_collections.virthooks.libvirt (a symlink, nothing copied)."""
    LINK.parent.mkdir(parents=True, exist_ok=True)
    if not LINK.is_symlink():
        tmp = LINK.with_name("libvirt.tmp%d" % os.getpid())
        tmp.symlink_to(REPO)
        os.replace(tmp, LINK)


_link_collection()
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
# pytest-ansible (--ansible-unit-inject-only in pyproject.toml) installs Ansible's collection
# finder for exactly these paths in its pytest_configure, which runs after this import.
# .cache/collections holds third-party collections installed offline by the test setup.
EXTRA_COLLECTIONS = REPO / ".cache" / "collections"
# Under ansible-test units the collection already sits in its own ansible_collections tree, and
# ansible-test's pytest plugin owns the collection path.
UNDER_ANSIBLE_TEST = "ANSIBLE_CONTROLLER_MIN_PYTHON_VERSION" in os.environ or REPO.parent.parent.name == "ansible_collections"
if not UNDER_ANSIBLE_TEST:
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([str(COLLECTIONS), str(EXTRA_COLLECTIONS)])


def _install_collection_finder() -> None:
    """Import ansible_collections.* through Ansible's own loader, as ansible-test units does.

    Conftests below this one import the collection before pytest_configure; without the
    finder in place first, those imports would bypass it and later relative imports fail.
    """
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    _AnsibleCollectionFinder(paths=[str(COLLECTIONS), str(EXTRA_COLLECTIONS)])._install()


if not UNDER_ANSIBLE_TEST:
    _install_collection_finder()


ANSIBLE_TEST_COLLECTIONS_PATH = os.environ.get("ANSIBLE_COLLECTIONS_PATH")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Markers, registered here too: ansible-test units runs pytest with its own ini file.

    Under ansible-test, pytest-ansible (there for the molecule scenarios) misses our
    --ansible-unit-inject-only and points ANSIBLE_COLLECTIONS_PATH elsewhere in its own
    pytest_configure; xdist workers would inherit that and fail ansible-test's own check.
    Running last, this puts ansible-test's path back.
    """
    if UNDER_ANSIBLE_TEST and ANSIBLE_TEST_COLLECTIONS_PATH is not None:
        os.environ["ANSIBLE_COLLECTIONS_PATH"] = ANSIBLE_TEST_COLLECTIONS_PATH
    for marker in ("libvirt: needs a real libvirtd on this machine (started by the test setup)",
                   "fleet: needs the container fleet (podman)", "quality: collection quality gates"):
        config.addinivalue_line("markers", marker)


NOBODY = 65534
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def user_owned_shell(directory: Path) -> Path:
    """A copy of /bin/sh in directory/user-bin, a directory owned by nobody: a user could replace the
    interpreter, so the installer takes it (it exists) and the host's trust check must refuse it."""
    user_bin = directory / "user-bin"
    user_bin.mkdir()
    shell = user_bin / "sh"
    shell.write_bytes(Path("/bin/sh").resolve().read_bytes())
    shell.chmod(0o755)
    os.chown(user_bin, NOBODY, NOBODY)
    return shell


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


@pytest.fixture
def ansible_module():
    """Call a module for real: ansible_module('virthooks.libvirt.hooks_info', {...})."""
    return run_module


def machine_libvirtd_up(timeout: float = 30.0) -> None:
    """This machine's libvirtd answering on qemu:///system: a test that needs it running makes it so itself
    (through its service, as the init scripts and systemd units both leave a running daemon alone)."""
    import shutil
    import time

    def answers() -> bool:
        return subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=30,
                              check=False).returncode == 0

    if answers():
        return
    if shutil.which("libvirtd", path=SYSTEM_PATH) is None or shutil.which("service", path=SYSTEM_PATH) is None:
        pytest.fail("libvirt (libvirtd) or the service command is not installed: run tests/setup/prepare-host.sh first",
                    pytrace=False)
    for service in ("virtlogd", "libvirtd"):
        subprocess.run(["service", service, "start"], check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + timeout
    while not answers():
        if time.monotonic() > deadline:
            pytest.fail("libvirtd did not answer within %d s after `service libvirtd start`" % timeout, pytrace=False)
        time.sleep(0.5)
