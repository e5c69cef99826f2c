"""The molecule scenarios of extensions/molecule/, run by pytest through pytest-ansible.

- `libvirt`: the real libvirtd of this machine; real guests, networks, reload and restart fire the hooks
  the role deployed, and the library blocks port_forward, hugepages, disk_snapshot and notify do their real
  work on a guest (see extensions/molecule/libvirt/files/verify_libvirt.py for every step).
- `fleet`: four podman hosts (Debian 12 and 13 packages, a source build under /usr/local, no libvirt), two
  host groups, real guests on every libvirt host (extensions/molecule/fleet/verify.yml).
- `default`: what a user runs on a laptop with podman (`molecule test`, no `-s`): the role deployed into one
  container, one real call of the installed entry point and its log record (extensions/molecule/default).
  Here the container is the fleet's Debian 12 libvirt image (no registry is reachable), so prepare finds
  libvirt installed; with a plain Debian 12 image it installs python3 and libvirt first (apt, ~2.5 min here).

pytest-ansible's `molecule_scenario` fixture has one parameter per git-tracked
`extensions/molecule/*/molecule.yml` and runs `python -m molecule test -s NAME` from `extensions/`.
Nothing here skips: a scenario that is not tracked (so would silently not run), a missing tool, or a
machine where a scenario cannot work is a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytest_ansible import plugin as pytest_ansible_plugin

from tests.support.paths import COLLECTIONS, EXTRA_COLLECTIONS, REPO

SCENARIOS_DIR = REPO / "extensions" / "molecule"
FLEET = SCENARIOS_DIR / "utils" / "fleet"
VENV_BIN = Path(sys.executable).parent
TIMINGS = REPO / "tests" / "output" / "molecule-timings.json"


def _scenario_dirs() -> set:
    return {p.parent.name for p in SCENARIOS_DIR.glob("*/molecule.yml")}


def test_every_scenario_is_run_by_pytest_ansible():
    """pytest-ansible only sees git-tracked scenarios; an untracked one would never run, silently."""
    seen = {s.name for s in pytest_ansible_plugin.scenarios if Path(s.parent_directory).resolve() == SCENARIOS_DIR.parent}
    assert {"libvirt", "fleet", "default"} <= _scenario_dirs(), _scenario_dirs()
    missing = _scenario_dirs() - seen
    assert not missing, (
        "molecule scenarios not found by pytest-ansible (it lists them with `git ls-files`; are they committed?): %s"
        % sorted(missing))


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the molecule scenarios need root (libvirtd, podman, /etc/libvirt/hooks)")


def _preflight(name: str) -> None:
    """Fail loudly, before molecule, when the machine cannot run the scenario."""
    _require_root()
    if name == "libvirt":
        # prepare.yml installs Debian's libvirt (tests/setup/prepare-host.sh); it needs apt and service.
        for tool in ("apt-get", "service", "dpkg-query"):
            if not shutil.which(tool):
                pytest.fail("%s is missing: the libvirt scenario installs Debian's libvirt (apt) and drives it with service" % tool)
    elif name in ("fleet", "default"):
        for tool in ("podman", "debootstrap", "unshare", "tini"):
            if not shutil.which(tool):
                pytest.fail("%s is missing: run tests/setup/prepare-host.sh (tests/setup/debian-packages.txt)" % tool)
        proc = subprocess.run([str(FLEET / "get-podman-collection.sh")], capture_output=True, text=True,
                              timeout=600, check=False, env=dict(os.environ, PYTHON=sys.executable))
        if proc.returncode != 0:
            pytest.fail("containers.podman could not be provided:\n%s%s" % (proc.stdout, proc.stderr))
    if name == "default":
        proc = subprocess.run([str(FLEET / "build-images.sh"), "bookworm-libvirt"], capture_output=True, text=True,
                              timeout=1800, check=False)
        if proc.returncode != 0:
            pytest.fail("the fleet's Debian 12 libvirt image could not be built:\n%s%s" % (proc.stdout, proc.stderr))


def _record_timing(name: str, seconds: float, ok: bool) -> None:
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(TIMINGS.read_text())
    except (OSError, ValueError):
        data = {}
    data[name] = {"seconds": round(seconds, 1), "passed": ok, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    TIMINGS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


@pytest.mark.root  # every scenario: _preflight (libvirtd, podman, /etc/libvirt/hooks)
def test_molecule_scenario(molecule_scenario, monkeypatch, record_property):
    """`molecule test -s <scenario>`: every step of the scenario must pass."""
    name = molecule_scenario.name
    _preflight(name)
    # molecule calls ansible-playbook / ansible-config from PATH; the collection and containers.podman
    # come from tests/output/collections and .cache/collections (as for every other test).
    monkeypatch.setenv("PATH", str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", os.pathsep.join([str(COLLECTIONS), str(EXTRA_COLLECTIONS)]))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("ANSIBLE_NOCOLOR", "1")
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)  # molecule writes its own ansible.cfg
    if name == "default":
        # The laptop scenario's podman calls: this machine's podman needs the fleet's containers.conf, and
        # its image is the fleet's Debian 12 with libvirt (docker.io is not reachable here).
        monkeypatch.setenv("CONTAINERS_CONF", str(FLEET / "containers.conf"))
        monkeypatch.setenv("VIRTHOOKS_MOLECULE_IMAGE", "localhost/virthooks-bookworm-libvirt")
    t0 = time.monotonic()
    proc = molecule_scenario.test()
    seconds = time.monotonic() - t0
    _record_timing(name, seconds, proc.returncode == 0)
    record_property("molecule_seconds", round(seconds, 1))
    print("molecule test -s %s: rc=%d in %.1fs" % (name, proc.returncode, seconds))
    assert proc.returncode == 0, "molecule test -s %s failed (rc=%d) after %.0fs; its output is above" % (
        name, proc.returncode, seconds)


def test_molecule_with_no_scenario_named_runs_default_from_the_repository_root():
    """`molecule <command>` from the root with no -s is the `default` scenario (syntax only: no container)."""
    env = dict(os.environ, PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""), NO_COLOR="1",
               ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([str(COLLECTIONS), str(EXTRA_COLLECTIONS)]))
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run([str(VENV_BIN / "molecule"), "syntax"], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "default > syntax: Executed: Successful" in " ".join(out.split()), out[-4000:]
