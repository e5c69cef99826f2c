"""Installing the runtime: idempotence, upgrades, foreign hooks, removal, interruption."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.install import InstallError, RuntimeInstaller

from tests.support.peers import saschpe_hook

from .conftest import SYSTEM_PYTHON, Sandbox

COLLECTIONS = str(Path(__file__).resolve().parents[4] / "tests" / "output" / "collections")
RULE = {"name": "rec", "script": "scripts/rec", "operations": ["prepare"]}


def snapshot(root):
    """Every path under root with its content (or link target) and mode."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.islink(path):
                state[path] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    state[path] = (f.read(), st.st_mode & 0o7777)
            else:
                state[path] = ("dir", st.st_mode & 0o7777)
    return state


def installer(box):
    return RuntimeInstaller(str(box.hooks), box.python, -1, -1)


def test_second_run_changes_nothing(sandbox):
    sandbox.recorder("rec")
    inst = installer(sandbox)
    inst.apply(inst.plan(["qemu", "network"], [RULE]))
    again = installer(sandbox).plan(["qemu", "network"], [RULE])
    assert again.changes == [] and again.added == [] and again.removed == []


def test_plan_reports_added_and_removed_entry_points(sandbox):
    inst = installer(sandbox)
    first = inst.plan(["qemu"], [RULE])
    assert first.added == ["qemu"]
    inst.apply(first)
    second = inst.plan(["network"], [])
    assert (second.added, second.removed) == (["network"], ["qemu"])
    inst.apply(second)
    assert not (sandbox.hooks / "qemu").exists() and (sandbox.hooks / "network").exists()


def test_planning_touches_nothing(sandbox):
    sandbox.recorder("rec")
    before = snapshot(sandbox.root)
    plan = installer(sandbox).plan(["qemu"], [RULE])
    assert plan.changes and snapshot(sandbox.root) == before


def test_files_get_their_modes(sandbox):
    inst = installer(sandbox)
    inst.apply(inst.plan(["qemu"], [RULE]))
    assert (sandbox.hooks / "qemu").stat().st_mode & 0o7777 == 0o755
    assert (sandbox.own / "config.json").stat().st_mode & 0o7777 == 0o644
    lib = sandbox.own / "lib" / "current" / "virthooks_runtime"
    assert all((lib / n).stat().st_mode & 0o7777 == 0o644 for n in os.listdir(lib) if n.endswith(".py"))
    assert (sandbox.own / "virthooks").stat().st_mode & 0o7777 == 0o755


def test_upgrade_switches_library_and_removes_the_old_version(sandbox):
    inst = installer(sandbox)
    inst.apply(inst.plan(["qemu"], [RULE]))
    lib = sandbox.own / "lib"
    old = lib / "0123456789abcdef"
    (lib / inst.digest).rename(old)                     # pretend the installed runtime is an older one
    (lib / "current").unlink()
    (lib / "current").symlink_to("0123456789abcdef")
    plan = installer(sandbox).plan(["qemu"], [RULE])
    kinds = [c.kind for c in plan.changes]
    assert "symlink" in kinds and "rmtree" in kinds
    installer(sandbox).apply(plan)
    assert os.readlink(lib / "current") == inst.digest and not old.exists()


def test_invalid_rules_fail_before_anything_is_written(sandbox):
    before = snapshot(sandbox.root)
    with pytest.raises(InstallError, match="nothing was changed.*unknown operation 'boot'"):
        installer(sandbox).plan(["qemu"], [dict(RULE, operations=["boot"])])
    with pytest.raises(InstallError, match="unknown driver 'xen'"):
        installer(sandbox).plan(["xen"], [])
    assert snapshot(sandbox.root) == before


def foreign_hook(box, driver="qemu"):
    path = box.hooks / driver
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\necho "legacy $*" >> %s/order\n' % box.seen)
    path.chmod(0o750)
    return path


def test_foreign_hook_fails_the_install_by_default_and_is_left_alone(sandbox):
    path = foreign_hook(sandbox)
    original = path.read_bytes()
    with pytest.raises(InstallError, match="did not install; set foreign_hooks=adopt"):
        installer(sandbox).plan(["qemu"], [RULE])
    assert path.read_bytes() == original and path.stat().st_mode & 0o777 == 0o750


def test_adopted_foreign_hook_runs_first_and_comes_back_on_removal(sandbox):
    path = foreign_hook(sandbox)
    original = path.read_bytes()
    sandbox.recorder("rec")
    inst = installer(sandbox)
    plan = inst.plan(["qemu"], [RULE], foreign="adopt", log={"file": str(sandbox.log)}, scripts=sandbox.staged())
    assert plan.adopted == ["qemu"]
    inst.apply(plan)
    assert (sandbox.hooks / "qemu.virthooks-adopted").read_bytes() == original
    assert sandbox.fire("qemu", "g", "prepare", "begin").rc == 0
    assert sandbox.order() == ["legacy g prepare begin -", "rec g prepare begin -"]
    sandbox.fire("qemu", "g", "stopped", "end")       # the adopted hook still sees every event
    assert sandbox.order()[-1] == "legacy g stopped end -"
    assert installer(sandbox).plan(["qemu"], [RULE], foreign="adopt",
                                   log={"file": str(sandbox.log)}).changes == []   # idempotent
    removal = installer(sandbox).plan_removal()
    installer(sandbox).apply(removal)
    assert path.read_bytes() == original
    assert not sandbox.own.exists()


def test_removal_removes_only_what_we_installed(sandbox):
    other = sandbox.hooks / "network"
    sandbox.hooks.mkdir(parents=True, exist_ok=True)
    other.write_text("#!/bin/sh\nexit 0\n")
    native = sandbox.hooks / "qemu.d"
    native.mkdir()
    (native / "10-native").write_text("#!/bin/sh\nexit 0\n")
    inst = installer(sandbox)
    inst.apply(inst.plan(["qemu"], [RULE]))
    installer(sandbox).apply(installer(sandbox).plan_removal())
    assert not (sandbox.hooks / "qemu").exists() and not sandbox.own.exists()
    assert other.read_text() == "#!/bin/sh\nexit 0\n" and (native / "10-native").exists()


def test_entry_point_that_is_a_symlink_is_a_foreign_hook(sandbox):
    (sandbox.hooks / "qemu").symlink_to("/bin/true")
    with pytest.raises(InstallError, match="qemu is a hook that virthooks did not install"):
        installer(sandbox).plan(["qemu"], [])
    assert installer(sandbox).plan(["qemu"], [], foreign="adopt").adopted == ["qemu"]


@pytest.mark.parametrize("target", ["/usr", "/nonexistent"])
def test_entry_point_that_is_no_file_is_refused(sandbox, target):
    (sandbox.hooks / "qemu").symlink_to(target)
    with pytest.raises(InstallError, match="qemu is not a regular file or a symlink to one"):
        installer(sandbox).plan(["qemu"], [], foreign="adopt")


@pytest.mark.root
def test_no_write_permission_is_a_clear_error():
    """Run the installer as an unprivileged user against a root-owned 0755 hooks dir.

    Everything else is readable by that user (its own copy of the code in a 0755 directory), so
    the only thing refused is writing.
    """
    work = Path(tempfile.mkdtemp(prefix="vh-noperm-"))
    try:
        work.chmod(0o755)
        code_dir = work / "ansible_collections" / "virthooks" / "libvirt" / "plugins" / "module_utils"
        shutil.copytree(Path(__file__).resolve().parents[4] / "plugins" / "module_utils", code_dir)
        for path in [work, *work.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        hooks = work / "hooks"
        hooks.mkdir(mode=0o755)
        code = ("import sys; sys.path.insert(0, %r)\n"
                "from ansible_collections.virthooks.libvirt.plugins.module_utils.install import RuntimeInstaller\n"
                "i = RuntimeInstaller(%r, '/usr/bin/python3', -1, -1)\n"
                "try:\n    i.apply(i.plan(['qemu'], []))\nexcept OSError as e:\n    print('ERR', e); sys.exit(3)\n"
                % (str(work), str(hooks)))
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                               "-I", "-c", code], capture_output=True, text=True, timeout=60, cwd="/", check=False)
        assert proc.returncode == 3, proc.stderr
        assert "Permission denied" in proc.stdout and str(hooks) in proc.stdout
        assert os.listdir(hooks) == []
    finally:
        shutil.rmtree(work, ignore_errors=True)


INSTALL_LOOP = """
import sys
sys.path.insert(0, {path!r})
from ansible_collections.virthooks.libvirt.plugins.module_utils.install import RuntimeInstaller
rules = [dict(name='rec', script='scripts/rec', operations=[sys.argv[1]])]
i = RuntimeInstaller({hooks!r}, {python!r}, -1, -1)
print('ready', flush=True)
sys.stdin.readline()
i.apply(i.plan(['qemu'], rules, log=dict(file={log!r})))
"""


def test_install_killed_at_any_moment_leaves_working_hooks(tmp_path):
    """SIGKILL the installer at random points of an upgrade; hooks keep working, a rerun converges."""
    box = Sandbox(tmp_path, SYSTEM_PYTHON)
    box.recorder("rec")
    box.deploy([dict(RULE)])
    code = INSTALL_LOOP.format(path=COLLECTIONS, hooks=str(box.hooks), python=SYSTEM_PYTHON, log=str(box.log))
    rng = random.Random(42)
    lib = box.own / "lib"
    for attempt in range(25):
        # Make every attempt a real upgrade: a fake old runtime version is current.
        digest = os.readlink(lib / "current")
        old = "old%013d" % attempt
        os.rename(lib / digest, lib / old)
        os.unlink(lib / "current")
        os.symlink(old, lib / "current")
        op = "started" if attempt % 2 else "prepare"
        proc = subprocess.Popen([sys.executable, "-c", code, op], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        time.sleep(rng.uniform(0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Whatever state the kill left, both the old and the new rule's event must dispatch cleanly.
        for event in ("prepare", "started"):
            fired = box.fire("qemu", "g", event, "begin")
            assert fired.rc == 0 and fired.stderr == "", (attempt, event, fired)
        box.deploy([dict(RULE, operations=[op])])      # rerun converges
        assert installer(box).plan(["qemu"], [dict(RULE, operations=[op])], log={"file": str(box.log)}, kill_grace=1).changes == []
        temp = [p for d, _dirs, files in os.walk(box.hooks) for p in files if "virthooks-tmp" in p]
        assert temp == [] and sorted(os.listdir(lib)) == sorted(["current", installer(box).digest])


def test_image_root_writes_under_root_but_names_host_paths(tmp_path):
    """Building an image: files land under root, their content names the booted host's paths."""
    root = tmp_path / "image"
    hooks = root / "etc" / "libvirt" / "hooks"
    inst = RuntimeInstaller(str(hooks), "/usr/bin/python3", -1, -1, root=str(root))
    inst.apply(inst.plan(["qemu"], [RULE], cli_link=str(root / "usr/local/bin/virthooks")))
    entry = (hooks / "qemu").read_text()
    assert "'/etc/libvirt/hooks'" in entry and str(tmp_path) not in entry
    assert str(tmp_path) not in (hooks / "virthooks" / "virthooks").read_text()
    assert os.readlink(root / "usr/local/bin/virthooks") == "/etc/libvirt/hooks/virthooks/virthooks"
    with pytest.raises(InstallError, match="not under root"):
        RuntimeInstaller("/etc/libvirt/hooks", "/usr/bin/python3", -1, -1, root=str(root))


def test_xpath_the_host_cannot_evaluate_is_refused_at_install(sandbox, monkeypatch):
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import xmlcond
    with pytest.raises(InstallError, match="rule 'rec'.*not valid XPath"):
        installer(sandbox).plan(["qemu"], [dict(RULE, xpath="/domain/[[")])
    monkeypatch.setattr(xmlcond, "_lxml", lambda: None)          # a host without lxml
    with pytest.raises(InstallError, match="needs lxml"):
        installer(sandbox).plan(["qemu"], [dict(RULE, xpath="count(/domain/devices/disk) > 1")])
    assert installer(sandbox).plan(["qemu"], [dict(RULE, xpath="/domain/devices/disk[@device='cdrom']")]).changes


SASCHPE_EVENTS = [("vm1", "prepare", "begin"), ("vm1", "start", "begin"), ("vm1", "restore", "begin"),
                  ("vm1", "reconnect", "begin"), ("other", "prepare", "begin"), ("vm1", "stopped", "end")]
DOMAIN_XML = b"<domain type='kvm'><name>vm1</name></domain>"


def install_saschpe(box, form):
    saschpe_hook(box.hooks, box.seen / "order", form)


def replay(box, events):
    """(exit status, what ran) for each event, through hooks/qemu as libvirt calls it."""
    results = []
    for obj, op, sub in events:
        before = len(box.order())
        fired = box.fire("qemu", obj, op, sub, stdin=DOMAIN_XML)
        results.append((obj, op, sub, fired.rc, box.order()[before:], fired.stdout))
    return results


@pytest.mark.parametrize("form", ["symlink", "file"])
def test_adopted_peer_hook_runs_in_place_exactly_as_before_and_comes_back(sandbox, form):
    install_saschpe(sandbox, form)
    untouched = snapshot(sandbox.hooks)
    before = replay(sandbox, SASCHPE_EVENTS)
    assert [r[3] for r in before] == [0] * len(SASCHPE_EVENTS)      # the peer exits 0 for all of these
    inst = installer(sandbox)
    plan = inst.plan(["qemu"], [], foreign="adopt", log={"file": str(sandbox.log)})
    assert plan.adopted == ["qemu"] and plan.warnings == []
    inst.apply(plan)
    kept = sandbox.hooks / "qemu.virthooks-adopted"
    if form == "symlink":
        assert kept.is_symlink() and os.readlink(kept) == str(sandbox.hooks / "hooks")
    else:
        assert not kept.is_symlink() and (kept.read_bytes(), kept.stat().st_mode) == \
            (untouched[str(sandbox.hooks / "qemu")][0], os.stat(sandbox.hooks / "hooks").st_mode)
    assert all(snapshot(sandbox.hooks)[p] == untouched[p] for p in untouched if not p.endswith("/qemu"))
    (sandbox.seen / "order").unlink()
    assert replay(sandbox, SASCHPE_EVENTS) == before
    assert installer(sandbox).plan(["qemu"], [], foreign="adopt", log={"file": str(sandbox.log)}).changes == []
    installer(sandbox).apply(installer(sandbox).plan_removal())
    assert snapshot(sandbox.hooks) == untouched


def test_adopted_hook_failure_never_fails_reconnect_unless_asked(sandbox):
    hook = foreign_hook(sandbox)
    hook.write_text('#!/bin/sh\necho "legacy $*" >> %s/order\nexit 1\n' % sandbox.seen)
    inst = installer(sandbox)
    inst.apply(inst.plan(["qemu"], [], foreign="adopt", log={"file": str(sandbox.log)}))
    assert sandbox.fire("qemu", "g", "prepare", "begin").rc == 1          # aborts the start, as before
    assert sandbox.fire("qemu", "g", "restore", "begin").rc == 1
    reconnect = sandbox.fire("qemu", "g", "reconnect", "begin")
    assert reconnect.rc == 0 and reconnect.stderr == ""                   # the running guest is not killed
    assert sandbox.fire("qemu", "g", "stopped", "end").rc == 0
    assert sandbox.order() == ["legacy g prepare begin -", "legacy g restore begin -",
                               "legacy g reconnect begin -", "legacy g stopped end -"]
    logged = sandbox.records()[2]
    assert logged["operation"] == "reconnect" and logged["scripts"][0]["status"] == "failed"
    strict = installer(sandbox)
    strict.apply(strict.plan(["qemu"], [], foreign="adopt", log={"file": str(sandbox.log)},
                             adopted_on_failure="fail"))
    assert sandbox.fire("qemu", "g", "reconnect", "begin").rc != 0


def test_adopt_that_adopts_nothing_says_so(sandbox):
    inst = installer(sandbox)
    nothing = inst.plan(["qemu"], [], foreign="adopt")
    assert nothing.adopted == [] and any("nothing to adopt" in w for w in nothing.warnings)
    path = foreign_hook(sandbox, "lxc")
    undeclared = inst.plan([], [], foreign="adopt")
    assert undeclared.adopted == []
    assert [w for w in undeclared.warnings if str(path) in w and "not adopted" in w and "libvirt_hooks_drivers" in w]
    assert inst.plan([], [], foreign="fail").warnings == []


def test_a_foreign_hook_the_dispatcher_would_refuse_is_not_adopted(sandbox):
    path = foreign_hook(sandbox)
    path.chmod(0o775)                               # group-writable: root must not run it
    before = snapshot(sandbox.root)
    with pytest.raises(InstallError, match="%s cannot be adopted.*writable by group or others" % path):
        installer(sandbox).plan(["qemu"], [], foreign="adopt")
    assert snapshot(sandbox.root) == before


def test_an_adoption_interrupted_after_the_link_is_finished_and_a_different_one_refused(sandbox):
    path = foreign_hook(sandbox)
    kept = sandbox.hooks / "qemu.virthooks-adopted"
    os.link(path, kept)                             # killed after the link, before the entry point write
    plan = installer(sandbox).plan(["qemu"], [], foreign="adopt", log={"file": str(sandbox.log)})
    assert plan.adopted == ["qemu"] and "adopt" not in [c.kind for c in plan.changes]
    installer(sandbox).apply(plan)
    assert sandbox.fire("qemu", "g", "prepare", "begin").rc == 0 and sandbox.order() == ["legacy g prepare begin -"]
    installer(sandbox).apply(installer(sandbox).plan_removal())
    other = foreign_hook(sandbox)
    kept.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(InstallError, match="already holds a different adopted hook"):
        installer(sandbox).plan(["qemu"], [], foreign="adopt")
    assert other.read_text().startswith("#!/bin/sh\necho")


def test_a_hook_adopted_by_an_older_deploy_moves_beside_the_entry_point(sandbox):
    path = foreign_hook(sandbox)
    original = path.read_bytes()
    inst = installer(sandbox)
    inst.apply(inst.plan(["qemu"], [], foreign="adopt", log={"file": str(sandbox.log)}))
    old = sandbox.own / "adopted" / "qemu"          # where deploys before in-place adoption kept it
    old.parent.mkdir()
    (sandbox.hooks / "qemu.virthooks-adopted").rename(old)
    plan = installer(sandbox).plan(["qemu"], [], foreign="adopt", log={"file": str(sandbox.log)})
    assert [c.kind for c in plan.changes] == ["adopt"]
    installer(sandbox).apply(plan)
    assert sandbox.fire("qemu", "g", "prepare", "begin").rc == 0 and sandbox.order() == ["legacy g prepare begin -"]
    installer(sandbox).apply(installer(sandbox).plan_removal())
    assert path.read_bytes() == original and not (sandbox.hooks / "qemu.virthooks-adopted").exists()


# The per-guest tree helper users run today (benchmarks/dispatch.py races it against the dispatcher).
TREE_HELPER = (Path(__file__).resolve().parents[4] / "benchmarks" / "peers" / "tree-helper.sh").read_text()


@pytest.mark.parametrize("foreign", ["fail", "adopt"])
def test_the_tree_helper_is_never_adopted_and_is_named(sandbox, foreign):
    (sandbox.hooks / "qemu").write_text(TREE_HELPER)
    with pytest.raises(InstallError, match="looks like the per-guest tree helper.*run every tree script twice"):
        installer(sandbox).plan(["qemu"], [RULE], foreign=foreign)
    assert (sandbox.hooks / "qemu").read_text() == TREE_HELPER
