"""Runs from AWX / Automation Platform: the execution environment's build context, and the deploy
playbook through ansible-runner (the engine AWX uses) against sandbox hosts, without containers.

What the image build does with the collection (install it, then introspect its dependencies) is run here on
the built artifact, with the introspection script ansible-builder put into the build context. The image itself
is built and jobs run inside it against fleet hosts in test_awx_ee_image.py.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.ansible import ansible_env
from tests.support.paths import COLLECTIONS, REPO
from tests.integration.test_role_sandbox import SH

BIN = Path(sys.executable).parent
EE = REPO / "extensions" / "molecule" / "utils" / "ee"
# The lock's packages that go into the EE (extensions/molecule/utils/ee/build-ee.sh, docs/awx.md).
EE_ROOTS = ("ansible-core", "ansible-runner", "bindep", "pyyaml", "packaging")


def run(cmd: list, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=ansible_env(**extra),
                          timeout=600, check=False)
    assert proc.returncode == 0, "%s\n%s\n%s" % (cmd, proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


def collection_version() -> str:
    return yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]


def test_ansible_builder_create_makes_a_context_that_carries_the_collection_and_its_dependencies(tmp_path):
    definition = yaml.safe_load((REPO / "examples" / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    tarball = "virthooks-libvirt-%s.tar.gz" % collection_version()
    assert definition["additional_build_files"][0]["src"] == tarball, "examples/execution-environment.yml names another version"
    run([BIN / "ansible-galaxy", "collection", "build", REPO, "--output-path", tmp_path])
    shutil.copy(REPO / "examples" / "execution-environment.yml", tmp_path)
    shutil.copy(EE / "pkgmgr", tmp_path)
    lock = run([sys.executable, EE / "lock_subset.py", REPO / "requirements" / "test.txt", *EE_ROOTS])
    (tmp_path / "ee-requirements.txt").write_text(lock.stdout)
    run([BIN / "ansible-builder", "create", "-f", "execution-environment.yml", "-c", "context"], cwd=tmp_path)
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    assert (context / "_build" / "collections" / tarball).is_file()
    assert yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"] == [
        {"name": "/build/collections/" + tarball, "type": "file"}]
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    # ansible-core and ansible-runner from the lock with its hashes, nothing unpinned in their place.
    assert "--require-hashes" in containerfile and "ansible-core" not in containerfile
    pins = [line.split(" ")[0] for line in (context / "_build" / "virthooks" / "ee-requirements.txt").read_text().splitlines()
            if "==" in line]
    assert {"ansible-core==2.19.14", "ansible-runner==2.4.3", "jinja2==3.1.6"} <= set(pins), pins
    # ansible-builder's own tools: what its builder stage pip-installs unpinned is already there from the lock
    # (with what bindep needs), and dumb-init is Debian's, pinned, instead of its unhashed pip install.
    assert "RUN $PYCMD -m pip install --no-cache-dir bindep pyyaml packaging" in containerfile
    assert {"bindep==2.14.0", "pyyaml==6.0.4", "packaging==26.4", "parsley==1.3", "pbr==7.1.3", "distro==1.9.0"} <= set(pins), pins
    assert "dumb-init=1.2.5-2" in containerfile and "pip install --no-cache-dir 'dumb-init" not in containerfile
    assert 'ENTRYPOINT ["/opt/builder/bin/entrypoint", "dumb-init"]' in containerfile
    # What the image build does next: install the collection from the context, then introspect it.
    installed = tmp_path / "installed"
    run([BIN / "ansible-galaxy", "collection", "install", context / "_build" / "collections" / tarball, "-p", installed, "--force"])
    proc = run([sys.executable, context / "_build" / "scripts" / "introspect.py", "introspect",
                installed, "--write-pip", tmp_path / "pip.txt", "--write-bindep", tmp_path / "bindep.txt"])
    assert (tmp_path / "pip.txt").exists(), proc.stdout + proc.stderr + str(sorted(p.name for p in installed.rglob("*")))[:3000]
    pip = (tmp_path / "pip.txt").read_text()
    bindep = (tmp_path / "bindep.txt").read_text()
    assert "jinja2>=3.1" in pip and "virthooks.libvirt" in pip, proc.stdout
    assert "openssh-client [platform:dpkg]" in bindep and "openssh-clients [platform:rpm]" in bindep, proc.stdout


@pytest.mark.root  # the deploy chowns what it installs to root
def test_the_deploy_playbook_runs_through_ansible_runner_against_sandbox_hosts(tmp_path):
    """A private data dir laid out as AWX lays out a job: project, inventory, extra vars, env."""
    data = tmp_path / "job"
    (data / "project").mkdir(parents=True)
    (data / "inventory").mkdir()
    (data / "env").mkdir()
    # The project holds a playbook that runs the installed collection's playbook by its FQCN.
    (data / "project" / "deploy.yml").write_text(
        "---\n- name: Deploy libvirt hooks\n  ansible.builtin.import_playbook: virthooks.libvirt.deploy_hooks\n")
    hosts = {}
    for host in ("host-a", "host-b"):
        (tmp_path / host / "etc" / "libvirt").mkdir(parents=True)
        hosts[host] = {}
    inventory = {"hypervisors": {"hosts": hosts, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "libvirt_hooks_restart": "never", "libvirt_hooks_cli_link": "",
        "libvirt_hooks_sysconfdir": str(tmp_path) + "/{{ inventory_hostname }}/etc",
        "libvirt_hooks_log": {"file": str(tmp_path) + "/{{ inventory_hostname }}/log.jsonl"},
        "libvirt_hooks_scripts": [{"name": "audit", "operations": ["started"], "content": SH % tmp_path}]}}}
    (data / "inventory" / "hosts.json").write_text(json.dumps(inventory))
    (data / "env" / "extravars").write_text(json.dumps({"libvirt_hooks_canary": 1}))
    (data / "env" / "envvars").write_text(json.dumps({"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS)}))
    proc = subprocess.run([str(BIN / "ansible-runner"), "run", str(data), "-p", "deploy.yml", "--ident", "job1"],
                          capture_output=True, text=True, env=ansible_env(), timeout=600, check=False)
    artifacts = data / "artifacts" / "job1"
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert (artifacts / "rc").read_text() == "0" and (artifacts / "status").read_text() == "successful"
    # In the order the job emitted them (the file names, <counter>-<uuid>.json, do not sort as numbers).
    events = sorted((json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")), key=lambda e: e["counter"])
    # A line on stderr (a dependency's warning at import) becomes a `verbose` event before the play's own:
    # the job's first playbook event is what counts.
    names = [e["event"] for e in events if e["event"] != "verbose"]
    assert names and names[0] == "playbook_on_start" and "playbook_on_stats" in names, names
    ok_hosts = {e["event_data"]["host"] for e in events if e["event"] == "runner_on_ok"}
    assert ok_hosts == {"host-a", "host-b"}
    stats = next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]
    assert not stats["failures"] and set(stats["changed"]) == {"host-a", "host-b"}
    assert any(e["event"] == "runner_on_ok" and "Canary host-a only validated" in json.dumps(e) for e in events)
    for host in ("host-a", "host-b"):
        assert (tmp_path / host / "etc" / "libvirt" / "hooks" / "virthooks" / "current" / "scripts" / "audit").is_file()
