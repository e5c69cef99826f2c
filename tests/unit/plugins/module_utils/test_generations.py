"""Generations: deploys switch a host in one step, and any host can roll back, with real processes.

Hook calls go through the real entry point while real deploys (the installer the modules use)
add, remove, rename and change scripts and rules.
"""
from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils import install
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import generations

from .conftest import SYSTEM_PYTHON, Sandbox

OK = b"#!/bin/sh\ncat >/dev/null\nexit 0\n"
FAIL = b"#!/bin/sh\necho 'storage pool /srv/images is not available' >&2\nexit 1\n"
COLLECTIONS = str(Path(__file__).resolve().parents[4] / "tests" / "output" / "collections")


def rule(name, **kw):
    return dict({"name": name, "script": "scripts/" + name}, **kw)


def installer(box, python=None) -> install.RuntimeInstaller:
    return install.RuntimeInstaller(str(box.hooks), python or box.python, -1, -1)


def deploy(box, rules, scripts, drivers=("qemu",), keep=3, purge=True):
    inst = installer(box)
    plan = inst.plan(list(drivers), rules, log={"file": str(box.log)}, scripts=scripts, purge=purge, keep=keep,
                     deployer="tester")
    inst.apply(plan)
    return plan


def present(*names, data=OK):
    return [{"name": n, "state": "present", "data": data} for n in names]


def cli(box, *args):
    proc = subprocess.run([str(box.own / "virthooks"), *args], capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def state_for(step: int):
    """Deploy number step: scripts and rules that add, remove, rename and change each other."""
    names = ["keep"]
    if step % 2:
        names.append("odd-%d" % step)              # renamed every other deploy
    if step % 3 == 0:
        names.append("third")                      # added and removed
    scripts = present(*names, data=OK + b"# deploy %d\n" % step)   # changed every deploy
    rules = [rule(n, operations=["prepare"], objects=["vm*" if step % 4 else "vm"], timeout=10 + step % 5)
             for n in names]
    return scripts, rules, sorted(names)


# --- the no-window guarantee -----------------------------------------------------------------

def deploy_thirty(box, conn) -> None:
    """The 30 deploys, in a process of their own as on a host (the module's): each generation and its script
    names sent to the test, which answers once calls have met it."""
    for step in range(1, 31):
        scripts, rules, names = state_for(step)
        conn.send((deploy(box, rules, scripts, keep=40).generation, names))
        conn.recv()


def test_30_deploys_while_events_fire_no_call_fails_and_each_sees_one_generation(sandbox):
    """The deploys run in their own process, forked before the threads that fire the hook calls: a thread's
    fork copies every descriptor of its process, and a child that copied a script being written (until it
    execs) makes the kernel refuse to run that script anywhere (ETXTBSY), something only a test that deploys
    and fires from one process can cause."""
    import multiprocessing
    expected = {}
    scripts, rules, names = state_for(0)
    expected[deploy(sandbox, rules, scripts, keep=40).generation] = names
    codes, stop = [], threading.Event()
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    deployer = multiprocessing.get_context("fork").Process(target=deploy_thirty, args=(sandbox, theirs))
    deployer.start()

    def fire_forever():
        while not stop.is_set():
            fired = sandbox.fire("qemu", "vm", "prepare", "begin", stdin=b"<domain/>")
            codes.append((fired.rc, fired.stderr))

    firing = [threading.Thread(target=fire_forever) for _ignored in range(3)]
    for thread in firing:
        thread.start()
    try:
        for _step in range(1, 31):
            assert ours.poll(120), "no deploy within 120 s"
            generation, names = ours.recv()
            expected[generation] = names
            calls = len(codes)
            deadline = time.monotonic() + 10
            while len(codes) < calls + 2 and time.monotonic() < deadline:     # let calls meet this one
                time.sleep(0.005)
            ours.send("next")
    finally:
        stop.set()
        for thread in firing:
            thread.join()
        ours.close()                  # a deployer still waiting for "next" gets EOF and ends
        deployer.join(60)
    assert deployer.exitcode == 0
    failures = [c for c in codes if c[0] != 0]
    assert len(codes) >= 60 and failures == [], failures[:3]
    records = [r for r in sandbox.records() if r.get("operation") == "prepare"]
    assert len(records) == len(codes)
    seen = set()
    for record in records:
        generation = record["generation"]
        seen.add(generation)
        assert sorted(s["name"] for s in record["scripts"]) == expected[generation], record
        assert all(s["status"] == "ok" for s in record["scripts"]), record
    assert len(seen) > 5, "the calls saw too few generations to prove anything: %d" % len(seen)


def test_a_run_that_changes_nothing_makes_no_generation(sandbox):
    scripts, rules, _names = state_for(1)
    first = deploy(sandbox, rules, scripts)
    again = deploy(sandbox, rules, scripts)
    assert again.changes == [] and again.generation == first.generation == again.previous
    assert generations.all_ids(str(sandbox.own)) == [first.generation]


def test_a_script_chmod_by_hand_is_repaired_by_a_new_generation(sandbox):
    scripts, rules, _names = state_for(1)
    first = deploy(sandbox, rules, scripts)
    assert sandbox.installed("keep").stat().st_mode & 0o7777 == install.SCRIPT_MODE == 0o700
    for mode in (0o777, 0o755):         # world-writable; or readable, as a generation of 0.1.0 left them
        sandbox.installed("keep").chmod(mode)
        again = deploy(sandbox, rules, scripts)
        assert again.generation != first.generation and again.scripts.updated == ["keep"]
        assert sandbox.installed("keep").stat().st_mode & 0o7777 == 0o700


def test_only_the_newest_generations_are_kept_after_the_switch(sandbox):
    made = []
    for step in range(5):
        scripts, rules, _names = state_for(step)
        made.append(deploy(sandbox, rules, scripts, keep=3).generation)
    assert generations.all_ids(str(sandbox.own)) == made[-3:]
    assert generations.current_id(str(sandbox.own)) == made[-1]


def test_a_generation_in_use_by_a_hook_call_is_not_removed(sandbox):
    made = []
    scripts, rules, _names = state_for(0)
    made.append(deploy(sandbox, rules, scripts, keep=1).generation)
    held = os.open(str(sandbox.own / "generations" / made[0]), os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_SH)               # what a running hook call holds
    try:
        scripts, rules, _names = state_for(1)
        made.append(deploy(sandbox, rules, scripts, keep=1).generation)
        assert generations.all_ids(str(sandbox.own)) == made
    finally:
        os.close(held)
    scripts, rules, _names = state_for(2)
    made.append(deploy(sandbox, rules, scripts, keep=1).generation)
    assert generations.all_ids(str(sandbox.own)) == made[-1:]


def test_generations_lists_time_deployer_digest_and_counts(sandbox):
    first = deploy(sandbox, [rule("keep", operations=["prepare"])], present("keep"))
    second = deploy(sandbox, [rule("keep"), rule("two")], present("keep", "two"))
    code, out = cli(sandbox, "generations")
    assert code == 0, out
    lines = out.splitlines()
    old = next(line for line in lines if first.generation in line)
    new = next(line for line in lines if second.generation in line)
    assert new.startswith("*") and not old.startswith("*")
    assert "tester" in new and " 2 " in new and "qemu" in new
    meta = json.loads((sandbox.own / "generations" / second.generation / "meta.json").read_text())
    assert meta["previous"] == first.generation and meta["rules"] == 2 and meta["scripts"] == 2


# --- rollback ----------------------------------------------------------------------------------

def test_rollback_after_a_deploy_that_adds_a_failing_prepare_script(sandbox):
    good = deploy(sandbox, [rule("keep", operations=["prepare"])], present("keep"))
    bad = deploy(sandbox, [rule("keep", operations=["prepare"]), rule("check-storage", operations=["prepare"])],
                 present("keep") + present("check-storage", data=FAIL))
    fired = sandbox.fire("qemu", "vm", "prepare", "begin", stdin=b"<domain/>")
    assert fired.rc == 1 and "storage pool" in fired.stderr
    code, out = cli(sandbox, "rollback")
    assert code == 0, out
    assert "rule check-storage: removed" in out and "script check-storage: removed" in out
    assert "rolled back from generation %s to %s" % (bad.generation, good.generation) in out
    assert generations.current_id(str(sandbox.own)) == good.generation
    fired = sandbox.fire("qemu", "vm", "prepare", "begin", stdin=b"<domain/>")
    assert fired.rc == 0, fired
    assert sandbox.records()[-1]["generation"] == good.generation
    assert [s["name"] for s in sandbox.records()[-1]["scripts"]] == ["keep"]
    assert installer(sandbox).plan(["qemu"], [rule("keep", operations=["prepare"])], log={"file": str(sandbox.log)},
                                   scripts=present("keep"), purge=True).previous == good.generation


def test_rollback_puts_entry_points_back_and_names_the_daemon_to_reload(sandbox):
    deploy(sandbox, [rule("keep")], present("keep"), drivers=("qemu", "network"))
    deploy(sandbox, [rule("keep")], present("keep"), drivers=("qemu", "lxc"))
    assert not (sandbox.hooks / "network").exists() and (sandbox.hooks / "lxc").exists()
    code, out = cli(sandbox, "rollback", "--dry-run")
    assert code == 0 and "would roll back" in out and (sandbox.hooks / "lxc").exists()
    code, out = cli(sandbox, "rollback")
    assert code == 0, out
    assert "entry point hooks/network: added" in out and "entry point hooks/lxc: removed" in out
    assert (sandbox.hooks / "network").exists() and not (sandbox.hooks / "lxc").exists()
    assert "entry points changed" in out
    code, out = cli(sandbox, "validate")
    assert code == 0, out


def fake_daemon(tmp_path, name):
    """A real process whose name (/proc/PID/comm) is a libvirt daemon's; it records each SIGHUP it gets."""
    script = tmp_path / name
    record = tmp_path / (name + ".hup")
    script.write_text("#!/bin/sh\ntrap 'echo hup >> %s' HUP\necho up >> %s\n"
                      "while :; do sleep 0.05; done\n" % (record, record))
    script.chmod(0o755)
    proc = subprocess.Popen([str(script)], start_new_session=True)
    for _attempt in range(200):
        if record.exists():
            break
        time.sleep(0.01)
    return proc, record


def run_cli_in_process(box, monkeypatch, running, *args):
    """The rollback command in this process, seeing only the daemons in running (never the host's real ones)."""
    import io
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import cli as runtime_cli
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import rollback
    monkeypatch.setattr(rollback, "running_daemons", lambda *_hooks_dir: running)
    out = io.StringIO()
    try:
        runtime_cli.main(str(box.hooks), list(args), out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    raise AssertionError("the command did not exit")


def test_rollback_finds_the_daemons_by_process_name(tmp_path):
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import rollback
    proc, _record = fake_daemon(tmp_path, "virtnetworkd")
    try:
        assert proc.pid in rollback.running_daemons().get("virtnetworkd", [])
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.pid not in rollback.running_daemons().get("virtnetworkd", [])


CHROOTED_DAEMON = """
import os, signal, sys, time
record = open(sys.argv[2], "a", buffering=1)
with open("/proc/self/comm", "w") as comm:
    comm.write(sys.argv[3])
os.chroot(sys.argv[1])
os.chdir("/")
signal.signal(signal.SIGHUP, lambda *_args: record.write("hup\\n"))
record.write("up\\n")
while True:
    time.sleep(0.05)
"""


def chrooted_daemon(root, record, name):
    """A real process named like a libvirt daemon whose root directory is root: a daemon of
    SYSCONFDIR /etc there runs root/etc/libvirt/hooks. It records each SIGHUP it gets."""
    proc = subprocess.Popen(["/usr/bin/python3", "-c", CHROOTED_DAEMON, str(root), str(record), name],
                            start_new_session=True)
    for _attempt in range(500):
        if record.exists() and "up" in record.read_text():
            break
        time.sleep(0.01)
    return proc


@pytest.mark.root
def test_rollback_reload_signals_only_the_daemons_that_run_that_hooks_directory(sandbox, tmp_path):
    for drivers in (("qemu", "network"), ("qemu",)):
        deploy(sandbox, [rule("keep")], present("keep"), drivers=drivers, keep=5)
    host_daemon, host_hups = fake_daemon(tmp_path, "virtnetworkd")     # the host's: /etc/libvirt/hooks
    ours_hups = tmp_path / "chrooted.hup"
    ours = chrooted_daemon(sandbox.root, ours_hups, "virtnetworkd")   # runs the sandbox's hooks
    try:
        code, out = cli(sandbox, "rollback", "--reload")
        assert code == 0, out
        assert "reloaded (SIGHUP) virtnetworkd: pid %d\n" % ours.pid in out, out
        for _attempt in range(200):
            if "hup" in ours_hups.read_text():
                break
            time.sleep(0.01)
        assert ours_hups.read_text().split() == ["up", "hup"]
        assert host_hups.read_text().split() == ["up"], "a daemon of another hooks directory was signalled"
    finally:
        for proc in (host_daemon, ours):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_rollback_reload_signals_the_daemon_that_runs_the_changed_entry_point(sandbox, tmp_path, monkeypatch):
    for drivers in (("qemu", "network"), ("qemu",), ("qemu", "network"), ("qemu",)):
        deploy(sandbox, [rule("keep")], present("keep"), drivers=drivers, keep=5)
    network, network_hups = fake_daemon(tmp_path, "virtnetworkd")
    qemu, qemu_hups = fake_daemon(tmp_path, "virtqemud")
    try:
        running = {"virtnetworkd": [network.pid], "virtqemud": [qemu.pid]}
        code, out = run_cli_in_process(sandbox, monkeypatch, running, "rollback", "--dry-run", "--reload")
        assert code == 0 and "virtnetworkd must reload" in out and "reloaded" not in out, out
        code, out = run_cli_in_process(sandbox, monkeypatch, running, "rollback", "--reload")
        assert code == 0, out
        assert "reloaded (SIGHUP) virtnetworkd: pid %d" % network.pid in out
        for _attempt in range(200):
            if "hup" in network_hups.read_text():
                break
            time.sleep(0.01)
        assert network_hups.read_text().split() == ["up", "hup"]
        assert qemu_hups.read_text().split() == ["up"], "only the daemon whose entry point changed reloads"
        # Monolithic libvirtd runs every driver: it is the one to reload, whatever changed.
        code, out = run_cli_in_process(sandbox, monkeypatch, {"libvirtd": [qemu.pid]}, "rollback")
        assert code == 0 and "entry points changed: libvirtd must reload" in out, out
        code, out = run_cli_in_process(sandbox, monkeypatch, {}, "rollback")
        assert code == 0 and "no libvirt daemon that runs them is running" in out, out
    finally:
        for proc in (network, qemu):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_rollback_with_no_previous_generation_says_so_and_changes_nothing(sandbox):
    only = deploy(sandbox, [rule("keep")], present("keep"))
    before = sorted(os.listdir(sandbox.hooks)), os.readlink(sandbox.own / "current")
    code, out = cli(sandbox, "rollback")
    assert code == 1 and "is the first generation deployed" in out and "nothing was changed" in out
    assert (sorted(os.listdir(sandbox.hooks)), os.readlink(sandbox.own / "current")) == before
    assert generations.current_id(str(sandbox.own)) == only.generation


def test_rollback_to_a_named_generation_and_forward_again(sandbox):
    made = [deploy(sandbox, [rule("s%d" % i)], present("s%d" % i)).generation for i in range(3)]
    code, out = cli(sandbox, "rollback", made[0])
    assert code == 0 and generations.current_id(str(sandbox.own)) == made[0], out
    code, out = cli(sandbox, "rollback", made[2])
    assert code == 0 and generations.current_id(str(sandbox.own)) == made[2], out
    code, out = cli(sandbox, "rollback", "20000101T000000Z-nothere")
    assert code == 1 and "is not kept" in out


# --- killed deploys ----------------------------------------------------------------------------

DEPLOY_LOOP = """
import sys
sys.path.insert(0, {path!r})
from ansible_collections.virthooks.libvirt.plugins.module_utils.install import RuntimeInstaller
step = int(sys.argv[1])
names = ["keep"] + (["odd-%d" % step] if step % 2 else [])
scripts = [dict(name=n, state="present", data=b"#!/bin/sh\\ncat >/dev/null\\n# %d\\n" % step) for n in names]
rules = [dict(name=n, script="scripts/" + n, operations=["prepare"]) for n in names]
i = RuntimeInstaller({hooks!r}, {python!r}, -1, -1)
plan = i.plan(["qemu"] + (["network"] if step % 3 == 0 else []), rules, log=dict(file={log!r}), scripts=scripts,
              purge=True, keep=3)
print("ready", flush=True)
sys.stdin.readline()
i.apply(plan)
"""


def test_deploy_killed_at_random_points_leaves_a_current_generation_that_works(sandbox):
    deploy(sandbox, [rule("keep", operations=["prepare"])], present("keep"))
    code = DEPLOY_LOOP.format(path=COLLECTIONS, hooks=str(sandbox.hooks), python=sandbox.python, log=str(sandbox.log))
    rng = random.Random(7)
    for step in range(1, 26):
        proc = subprocess.Popen([sys.executable, "-c", code, str(step)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        time.sleep(rng.uniform(0, 0.04))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        current = generations.current_id(str(sandbox.own))
        fired = sandbox.fire("qemu", "vm", "prepare", "begin", stdin=b"<domain/>")
        assert fired.rc == 0 and fired.stderr == "", (step, fired)
        record = sandbox.records()[-1]
        assert record["generation"] == current
        config = json.loads((sandbox.own / "generations" / current / "config.json").read_text())
        scripts = sorted(os.listdir(sandbox.own / "generations" / current / "scripts"))
        assert sorted(r["name"] for r in config["rules"]) == scripts == sorted(s["name"] for s in record["scripts"])
    deploy(sandbox, [rule("keep", operations=["prepare"])], present("keep"))      # a rerun converges
    leftovers = [n for n in os.listdir(sandbox.own / "generations") if n.startswith(".")]
    assert leftovers == [] and len(generations.all_ids(str(sandbox.own))) <= 3


# --- hosts deployed before generations ---------------------------------------------------------

def make_old_layout(box) -> None:
    """Turn a deployed host into the layout of the previous release: config.json and scripts/ in
    hooks/virthooks/ itself, no generations (the runtime library is the new one: a deploy switches
    the library first, and the new dispatcher reads the old layout)."""
    current = box.own / "current"
    gen_dir = box.own / os.readlink(current)
    (box.own / "config.json").unlink()
    os.rename(gen_dir / "config.json", box.own / "config.json")
    os.rename(gen_dir / "scripts", box.own / "scripts")
    current.unlink()
    subprocess.run(["rm", "-rf", str(box.own / "generations")], check=True)


def test_a_host_of_the_old_layout_is_converted_in_place_without_a_window(tmp_path):
    box = Sandbox(tmp_path, SYSTEM_PYTHON)
    deploy(box, [rule("keep", operations=["prepare"]), rule("other", operations=["prepare"])], present("keep", "other"))
    make_old_layout(box)
    assert box.fire("qemu", "vm", "prepare", "begin", stdin=b"<domain/>").rc == 0
    assert "generation" not in box.records()[-1]
    codes, stop = [], threading.Event()

    def fire_forever():
        while not stop.is_set():
            codes.append(box.fire("qemu", "vm", "prepare", "begin", stdin=b"<domain/>").rc)

    firing = threading.Thread(target=fire_forever)
    firing.start()
    try:
        time.sleep(0.3)
        plan = deploy(box, [rule("keep", operations=["prepare"])], present("keep"))   # 'other' goes
        time.sleep(0.3)
    finally:
        stop.set()
        firing.join()
    assert codes and all(c == 0 for c in codes), codes
    assert plan.previous == "" and plan.scripts.removed == ["other"]
    assert not (box.own / "scripts").exists()
    assert os.readlink(box.own / "config.json") == "current/config.json"
    assert json.loads((box.own / "config.json").read_text())["rules"][0]["name"] == "keep"
    assert box.records()[-1]["generation"] == plan.generation


# --- generation ids ----------------------------------------------------------------------------

NEW_ID = """
import sys
sys.path.insert(0, {path!r})
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.generations import new_id
print(new_id(sys.argv[1], "0123456789abcdef", float(sys.argv[2])))
"""


def new_id_within(own, now: float, seconds: float = 10) -> str:
    """generations.new_id in a child process that must finish within seconds (it used to spin forever)."""
    proc = subprocess.run([sys.executable, "-c", NEW_ID.format(path=COLLECTIONS), str(own), repr(now)],
                          capture_output=True, text=True, timeout=seconds, check=True)
    return proc.stdout.strip()


def test_a_stray_directory_in_generations_is_ignored_by_new_id_and_the_deploy(sandbox):
    first = deploy(sandbox, [rule("keep")], present("keep"))
    (sandbox.own / "generations" / "backup-x").mkdir()
    (sandbox.own / "generations" / "zzz").mkdir()
    made = new_id_within(sandbox.own, time.time())
    assert made > first.generation and made.endswith("-0123456789abcdef")
    assert generations.all_ids(str(sandbox.own)) == [first.generation]
    second = deploy(sandbox, [rule("keep"), rule("two")], present("keep", "two"))
    assert generations.all_ids(str(sandbox.own)) == [first.generation, second.generation]
    assert (sandbox.own / "generations" / "backup-x").is_dir()


def test_a_newest_generation_dated_in_the_future_gives_the_next_id_at_once(sandbox):
    first = deploy(sandbox, [rule("keep")], present("keep"))
    future = "20991231T235959.999999Z-" + first.generation.rsplit("-", 1)[1]
    os.rename(sandbox.own / "generations" / first.generation, sandbox.own / "generations" / future)
    os.unlink(sandbox.own / "current")
    os.symlink("generations/" + future, sandbox.own / "current")
    made = new_id_within(sandbox.own, time.time())
    assert made == "21000101T000000.000000Z-0123456789abcdef"
    second = deploy(sandbox, [rule("keep"), rule("two")], present("keep", "two"))
    assert second.generation > future and generations.current_id(str(sandbox.own)) == second.generation


def test_no_id_can_sort_after_a_generation_dated_at_the_end_of_year_9999(sandbox):
    (sandbox.own / "generations" / "99991231T235959.999999Z-00").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-c", NEW_ID.format(path=COLLECTIONS), str(sandbox.own), "0"],
                          capture_output=True, text=True, timeout=10, check=False)
    assert proc.returncode == 1 and "no generation id sorts after 99991231T235959.999999Z-00" in proc.stderr


# --- rolling back to a generation that cannot run -----------------------------------------------

def two_generations(box, first_rules=None):
    good = deploy(box, first_rules or [rule("keep", operations=["prepare"])], present("keep"), keep=5)
    bad = deploy(box, [rule("keep", operations=["prepare"]), rule("other", operations=["prepare"])],
                 present("keep", "other"), keep=5)
    return box.own / "generations" / good.generation, bad.generation


def assert_refused_unchanged(box, current, code, out, *needles):
    assert code == 1, out
    assert "Traceback" not in out and "nothing was changed" in out, out
    for needle in needles:
        assert needle in out, out
    assert generations.current_id(str(box.own)) == current


def test_rollback_to_a_generation_whose_script_is_missing_is_refused_naming_it(sandbox):
    good, current = two_generations(sandbox)
    (good / "scripts" / "keep").unlink()
    code, out = cli(sandbox, "rollback")
    assert_refused_unchanged(sandbox, current, code, out, "rule 'keep': %s" % (good / "scripts" / "keep"),
                             "No such file")


def test_rollback_to_a_generation_whose_script_others_can_write_is_refused_naming_it(sandbox):
    good, current = two_generations(sandbox)
    (good / "scripts" / "keep").chmod(0o777)
    code, out = cli(sandbox, "rollback", "--dry-run")
    assert_refused_unchanged(sandbox, current, code, out, "%s is writable by group or others" % (good / "scripts" / "keep"))


def test_rollback_takes_the_entry_points_from_the_target_rules_not_from_meta_json(sandbox):
    good, _current = two_generations(sandbox, [rule("keep", driver="network", operations=["start"])])
    meta = json.loads((good / "meta.json").read_text())
    meta["drivers"] = []                                    # what a damaged meta.json could say
    (good / "meta.json").write_text(json.dumps(meta))
    assert not (sandbox.hooks / "network").exists()
    code, out = cli(sandbox, "rollback")
    assert code == 0, out
    assert "entry point hooks/network: added" in out and (sandbox.hooks / "network").is_file()


def test_a_malformed_meta_json_is_one_line_naming_it_in_generations_and_rollback(sandbox):
    good, current = two_generations(sandbox)
    for text in ('{"drivers": 5, "python": "/usr/bin/python3"}', '{"python": '):
        (good / "meta.json").write_text(text)
        code, out = cli(sandbox, "generations")
        assert code == 1 and "Traceback" not in out, out
        assert [line for line in out.splitlines() if "meta.json" in line] == [
            line for line in out.splitlines() if line.startswith("virthooks: %s is malformed" % (good / "meta.json"))], out
        assert current in out and good.name in out
        code, out = cli(sandbox, "rollback")
        assert_refused_unchanged(sandbox, current, code, out, "%s is malformed" % (good / "meta.json"))


@pytest.mark.root
def test_generations_left_by_killed_deploys_do_not_push_out_the_one_a_rollback_goes_back_to(sandbox):
    """Found by the chaos soak (tests/soak): two deploys killed after writing their generation, before the
    switch, then a deploy that the role had to roll back: the generation current before it had been pruned
    as the oldest ("generation ... is not kept"), so the host could not go back to what it was running."""
    good = deploy(sandbox, [rule("a")], present("a")).generation
    inst = installer(sandbox)
    for n in range(2):      # killed after their generation was written, before the switch
        plan = inst.plan(["qemu"], [rule("killed-%d" % n)], log={"file": str(sandbox.log)},
                         scripts=present("killed-%d" % n), purge=True, keep=3, deployer="tester")
        next(c for c in plan.changes if c.kind == "generation").apply(inst)
        assert generations.current_id(str(sandbox.own)) == good
    new = deploy(sandbox, [rule("b")], present("b"), keep=3)
    assert new.previous == good
    kept = generations.all_ids(str(sandbox.own))
    assert good in kept and new.generation in kept, kept
    code, out = cli(sandbox, "rollback", new.previous)
    assert code == 0, out
    assert generations.current_id(str(sandbox.own)) == good


def write_abandoned(box, name: str) -> str:
    """The generation of a deploy killed after writing it, before its switch: written whole, never current."""
    inst = installer(box)
    plan = inst.plan(["qemu"], [rule(name)], log={"file": str(box.log)}, scripts=present(name), purge=True, keep=3,
                     deployer="tester")
    next(c for c in plan.changes if c.kind == "generation").apply(inst)
    return plan.generation


@pytest.mark.root
def test_rollback_goes_to_the_generation_current_before_never_to_one_a_killed_deploy_left(sandbox):
    """Found by the chaos soak (issue 25): `virthooks rollback` took the newest generation older than the current
    one, which was the generation of a deploy killed before its switch (never current): the host went to rules
    nobody had run. It goes to the one the current generation replaced (meta.json's previous)."""
    good = deploy(sandbox, [rule("a")], present("a")).generation
    older = write_abandoned(sandbox, "killed-before")
    new = deploy(sandbox, [rule("b")], present("b"))
    newer = write_abandoned(sandbox, "killed-after")
    assert good < older < new.generation < newer and new.previous == good
    assert sorted(generations.all_ids(str(sandbox.own))) == [good, older, new.generation, newer]
    code, out = cli(sandbox, "rollback", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["target"] == good, out
    code, out = cli(sandbox, "rollback")
    assert code == 0 and "rolled back from generation %s to %s" % (new.generation, good) in out, out
    assert generations.current_id(str(sandbox.own)) == good
    # good was the first generation: from there nothing was current before, whatever older ones are kept.
    code, out = cli(sandbox, "rollback")
    assert code == 1 and "%s is the first generation deployed" % good in out and "nothing was changed" in out, out
    assert generations.current_id(str(sandbox.own)) == good


@pytest.mark.root
def test_rollback_says_when_the_generation_current_before_is_no_longer_kept(sandbox):
    first = deploy(sandbox, [rule("a")], present("a"), keep=1).generation
    abandoned = write_abandoned(sandbox, "killed")
    second = deploy(sandbox, [rule("b")], present("b"), keep=1)
    assert second.previous == first and first not in generations.all_ids(str(sandbox.own))
    assert abandoned not in generations.all_ids(str(sandbox.own))
    write_abandoned(sandbox, "killed-again")
    code, out = cli(sandbox, "rollback")
    assert code == 1, out
    assert "%s, the generation current before %s, is no longer kept" % (first, second.generation) in out, out
    assert generations.current_id(str(sandbox.own)) == second.generation


# --- validate while deploys run ------------------------------------------------------------------

@pytest.mark.root
def test_validate_while_deploys_switch_and_prune_reports_no_problem_of_theirs(sandbox):
    """Found by the chaos soak (issue 25): a deploy whose ansible-playbook was killed goes on in Ansible's
    worker (its own session), and `virthooks validate` run meanwhile found the current generation three times
    over (config.json, the scripts' directory, meta.json): with a switch in between it checked one
    generation's rules against another's scripts and reported problems the host did not have."""
    scripts, rules, _names = state_for(0)
    deploy(sandbox, rules, scripts, keep=2)
    results, stop = [], threading.Event()

    def validate_forever():
        while not stop.is_set():
            results.append(cli(sandbox, "validate"))

    checking = [threading.Thread(target=validate_forever) for _ignored in range(2)]
    for thread in checking:
        thread.start()
    try:
        for step in range(1, 31):
            scripts, rules, _names = state_for(step)
            deploy(sandbox, rules, scripts, keep=2)
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in checking:
            thread.join()
    failed = [out for code, out in results if code != 0]
    assert len(results) >= 10 and failed == [], "%d of %d failed, e.g.\n%s" % (len(failed), len(results), failed[:1])
