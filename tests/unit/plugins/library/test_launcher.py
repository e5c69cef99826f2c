"""A block's launcher as a deploy leaves it: the runtime installed by the real installer (library/ included),
the launcher and its PARAMS secret in a generation, fired through the entry point and the real dispatcher."""
from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.virthooks.libvirt.plugins.filter.library_scripts import library_scripts
from ansible_collections.virthooks.libvirt.plugins.module_utils.install import RuntimeInstaller
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import launcher
from tests.support.probe import at_end
from tests.unit.plugins.module_utils.conftest import LIBVIRT_ENV, Sandbox

from .conftest import domain


def deploy_library(box, library: dict, python: str):
    """The library's scripts and rules as the role hands them to the installer (the launchers keep their
    state files in tmp_path: the only change to what the role renders)."""
    entries = library_scripts(library, python)
    for e in entries:
        block, step = e["name"].split("-")[1:]
        assert e["content"] == launcher.render(block, step, python)
        e["content"] = launcher.render(block, step, python, {"state": str(box.root / "state")})
    scripts = [{"name": e["name"], "state": "present", "data": e["content"].encode(),
                "secrets": {k: v.encode() for k, v in e["secrets"].items()}} for e in entries]
    rules = [{"name": e["name"], "script": "scripts/" + e["name"], "objects": e["objects"],
              "operations": e["operations"], "suboperations": e["suboperations"], "order": e["order"],
              **({"xpath": e["xpath"]} if "xpath" in e else {})} for e in entries]
    installer = RuntimeInstaller(str(box.hooks), box.python, -1, -1)
    installer.apply(installer.plan(["qemu"], rules, log={"file": str(box.log)}, scripts=scripts))
    return entries


def qcow2(tmp_path):
    image = tmp_path / "vm.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"], check=True)
    xml = domain("vm", "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                       "<source file='%s'/></disk></devices>" % image)
    return image, xml


def snapshots(image) -> list:
    out = subprocess.run(["qemu-img", "snapshot", "-l", str(image)], capture_output=True, text=True, check=True).stdout
    return [line.split()[1] for line in out.splitlines() if line.split() and line.split()[0].isdigit()]


def test_a_deployed_launcher_runs_its_block_from_the_installed_runtime(sandbox, tmp_path):
    image, xml = qcow2(tmp_path)
    deploy_library(sandbox, {"disk_snapshot": {"guests": ["vm"], "keep": 2}}, sandbox.python)
    text = sandbox.installed("lib-disk_snapshot-snapshot").read_text()
    assert len(text.splitlines()) < 15 and "keep" not in text
    assert (sandbox.own / "lib" / "current" / "virthooks_runtime" / "library" / "disk_snapshot.py").is_file()
    fired = sandbox.fire("qemu", "vm", "prepare", "begin", stdin=xml.encode())
    assert fired.rc == 0, fired
    assert len(snapshots(image)) == 1 and snapshots(image)[0].startswith("virthooks-")
    (record,) = sandbox.records()
    assert [(s["name"], s["status"]) for s in record["scripts"]] == [("lib-disk_snapshot-snapshot", "ok")]


def test_the_dispatcher_never_imports_the_library(sandbox, tmp_path):
    """The dispatcher's own process loads no library module: the block runs in the launcher's process."""
    _image, xml = qcow2(tmp_path)
    deploy_library(sandbox, {"disk_snapshot": {"guests": ["vm"]}}, sandbox.python)
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import entrypoint
    argv = entrypoint.dispatcher_argv(str(sandbox.hooks), sandbox.python, "qemu")
    argv[3] = at_end("MODULES", "' '.join(sorted(sys.modules))") + argv[3]
    proc = subprocess.run(argv + ["vm", "prepare", "begin", "-"], input=xml.encode(), capture_output=True,
                          env=LIBVIRT_ENV, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    modules = proc.stderr.decode().split("MODULES ", 1)[1].split()
    assert "virthooks_runtime.dispatch" in modules
    assert not [m for m in modules if m.startswith(("virthooks_runtime.library", "virthooks_runtime.launcher"))]
    assert [s["status"] for s in sandbox.records()[0]["scripts"]] == ["ok"]


def test_a_library_file_others_may_write_is_refused_by_the_launcher_with_one_line(sandbox, tmp_path):
    image, xml = qcow2(tmp_path)
    deploy_library(sandbox, {"disk_snapshot": {"guests": ["vm"]}}, sandbox.python)
    block = (sandbox.own / "lib" / "current" / "virthooks_runtime" / "library" / "disk_snapshot.py").resolve()
    block.chmod(0o666)
    fired = sandbox.fire("qemu", "vm", "prepare", "begin", stdin=xml.encode())
    assert fired.rc == 1
    assert fired.stderr.count("\n") == 1 and "%s is writable by group or others" % block in fired.stderr, fired
    (script,) = sandbox.records()[0]["scripts"]
    assert script["stderr"].startswith("virthooks disk_snapshot: vm: refusing to run: the library in "), script
    assert script["stderr"].count("\n") == 1 and snapshots(image) == []


@pytest.mark.parametrize("mode", [0o775, 0o757])
def test_a_library_folder_others_may_write_makes_the_entry_point_refuse_the_runtime(sandbox, tmp_path, mode):
    _image, xml = qcow2(tmp_path)
    deploy_library(sandbox, {"disk_snapshot": {"guests": ["vm"]}}, sandbox.python)
    library = (sandbox.own / "lib" / "current" / "virthooks_runtime" / "library").resolve()
    library.chmod(mode)
    fired = sandbox.fire("qemu", "vm", "prepare", "begin", stdin=xml.encode())
    assert fired.rc == 1 and fired.stderr.count("\n") == 1
    assert "cannot be trusted: directory %s is writable by group or others" % library in fired.stderr, fired


def test_a_launcher_outside_a_generation_says_so_in_one_line(tmp_path):
    path = tmp_path / "lib-hugepages-reserve"
    path.write_text(launcher.render("hugepages", "reserve", "/usr/bin/python3"))
    path.chmod(0o700)
    proc = subprocess.run([str(path), "vm", "prepare", "begin", "-"], capture_output=True, text=True, check=False,
                          env=LIBVIRT_ENV)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("virthooks hugepages: cannot load the runtime from ")
    assert "is not a script of a generation" in proc.stderr


def test_validate_accepts_the_installed_library_and_names_a_bad_file_in_it(sandbox):
    deploy_library(sandbox, {"hugepages": {}}, sandbox.python)
    cli = [str(sandbox.own / "virthooks"), "validate"]
    ok = subprocess.run(cli, capture_output=True, text=True, env=LIBVIRT_ENV, check=False)
    assert "library" not in ok.stdout + ok.stderr, ok
    block = (sandbox.own / "lib" / "current" / "virthooks_runtime" / "library" / "hugepages.py").resolve()
    os.chmod(block, 0o664)
    bad = subprocess.run(cli, capture_output=True, text=True, env=LIBVIRT_ENV, check=False)
    assert bad.returncode != 0 and "%s is writable by group or others" % block in bad.stdout + bad.stderr, bad


def _host_pythons() -> list:
    from tests.unit.plugins.module_utils.runtime.test_dispatch import hook_pythons
    return hook_pythons()


@pytest.mark.parametrize("python", _host_pythons())
def test_every_block_runs_under_every_host_python(tmp_path, python):
    """The hosts' Pythons are 3.9 and later: a deployed launcher of each block imports it and runs a step that
    has nothing to do (a guest it does not manage), under each Python found on this machine."""
    box = Sandbox(tmp_path, python)
    deploy_library(box, {"port_forward": {"guests": {"other": {"ip": "10.0.0.9", "forwards": [
        {"host_port": 5, "guest_port": 5}]}}}, "hugepages": {}, "disk_snapshot": {}, "cpu_isolation": {},
        "vfio_bind": {}}, python)
    for name in ("lib-port_forward-add", "lib-hugepages-reserve", "lib-disk_snapshot-snapshot",
                 "lib-cpu_isolation-isolate", "lib-vfio_bind-bind"):
        proc = subprocess.run([str(box.installed(name)), "vm", "prepare", "begin", "-"], input="<domain/>",
                              capture_output=True, text=True, cwd="/", check=False, timeout=60,
                              env=dict(LIBVIRT_ENV, VIRTHOOKS_SECRETS=str(box.current / "secrets" / name)))
        assert (proc.returncode, proc.stderr) == (0, ""), (name, python, proc)
