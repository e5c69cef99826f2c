"""The dispatcher, driven through real entry points, real scripts and real processes."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time

import pytest

from ..conftest import pid_alive

DOMAIN = b"<domain type='kvm'><name>win10</name><devices><hostdev type='pci'/></devices></domain>"


def rule(name, **kw):
    return dict({"name": name, "script": "scripts/" + name}, **kw)


def test_script_gets_libvirt_argv_stdin_env_and_root_cwd(sandbox):
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec")])
    fired = sandbox.fire("qemu", "win10", "prepare", "begin", "-", stdin=DOMAIN)
    assert fired.rc == 0, fired
    assert fired.stdout == b""
    assert sandbox.order() == ["rec win10 prepare begin -"]
    assert (sandbox.seen / "rec.stdin").read_bytes() == DOMAIN
    env = dict(line.split("=", 1) for line in (sandbox.seen / "rec.env").read_text().splitlines() if "=" in line)
    assert env["LIBVIRT_HOOK_DRIVER"] == "qemu"
    assert env["LIBVIRT_HOOK_OBJECT"] == "win10"
    assert env["LIBVIRT_HOOK_OPERATION"] == "prepare"
    assert env["LIBVIRT_HOOK_SUBOPERATION"] == "begin"
    assert env["LIBVIRT_HOOK_EXTRA"] == "-"
    assert env["LC_ALL"] == "C"
    assert (sandbox.seen / "rec.cwd").read_text().strip() == "/"


def test_scripts_run_by_order_then_name(sandbox):
    for name in ("b-late", "a-late", "first", "z-default"):
        sandbox.recorder(name)
    sandbox.deploy([rule("b-late", order=90), rule("a-late", order=90), rule("first", order=-5),
                    rule("z-default")])
    assert sandbox.fire("qemu", "g", "start", "begin", stdin=DOMAIN).rc == 0
    assert [line.split()[0] for line in sandbox.order()] == ["first", "z-default", "a-late", "b-late"]


def test_rules_match_on_object_glob_operation_suboperation_and_extra(sandbox):
    sandbox.recorder("db")
    sandbox.recorder("release-destroyed")
    sandbox.deploy([rule("db", objects=["db-*", "sql?"], operations=["prepare"], suboperations=["begin"]),
                    rule("release-destroyed", operations=["release"], extras=["destroyed", "crashed*"])])
    for obj in ("db-1", "sql1", "sql12", "web"):
        sandbox.fire("qemu", obj, "prepare", "begin")
    sandbox.fire("qemu", "db-1", "start", "begin")
    sandbox.fire("qemu", "x", "release", "end", "destroyed")
    sandbox.fire("qemu", "x", "release", "end", "shutdown")
    sandbox.fire("qemu", "x", "release", "end", "-")
    assert sandbox.order() == ["db db-1 prepare begin -", "db sql1 prepare begin -",
                               "release-destroyed x release end destroyed"]


def test_failure_on_abortable_event_exits_1_with_one_line_and_stops(sandbox):
    sandbox.script("bad", 'echo "first line" >&2\necho "GPU 0000:01:00.0 is busy" >&2\nexit 3\n')
    sandbox.recorder("after")
    sandbox.deploy([rule("bad", order=1), rule("after", order=2)])
    fired = sandbox.fire("qemu", "win10", "prepare", "begin", stdin=DOMAIN)
    assert fired.rc == 1
    lines = fired.stderr.splitlines()
    assert len(lines) == 1
    assert "script 'bad' failed with exit status 3" in lines[0]
    assert "GPU 0000:01:00.0 is busy" in lines[0]
    assert "qemu win10 prepare begin" in lines[0]
    assert sandbox.order() == []
    record = sandbox.records()[-1]
    assert record["result"] == "failed" and record["exit"] == 1
    assert [s["name"] for s in record["scripts"]] == ["bad"]


def test_ignored_failure_is_logged_and_later_scripts_run(sandbox):
    sandbox.script("flaky", "echo nope >&2\nexit 7\n")
    sandbox.recorder("after")
    sandbox.deploy([rule("flaky", order=1, on_failure="ignore"), rule("after", order=2)])
    fired = sandbox.fire("qemu", "g", "start", "begin")
    assert fired.rc == 0 and fired.stderr == ""
    assert sandbox.order() == ["after g start begin -"]
    scripts = sandbox.records()[-1]["scripts"]
    assert scripts[0]["status"] == "failed" and scripts[0]["exit"] == 7 and scripts[0]["stderr"] == "nope\n"


def test_every_script_runs_on_events_libvirt_cannot_abort(sandbox):
    sandbox.script("bad", "exit 2\n")
    sandbox.recorder("cleanup")
    sandbox.deploy([rule("bad", order=1), rule("cleanup", order=2)])
    fired = sandbox.fire("qemu", "g", "release", "end")
    assert fired.rc == 1
    assert "script 'bad' failed with exit status 2" in fired.stderr
    assert sandbox.order() == ["cleanup g release end -"]


def test_stdout_of_scripts_never_reaches_libvirt_outside_xml_events(sandbox):
    sandbox.script("chatty", "echo 'I print things'\n")
    sandbox.deploy([rule("chatty")])
    for op, sub in (("prepare", "begin"), ("started", "begin"), ("stopped", "end"), ("reconnect", "begin")):
        fired = sandbox.fire("qemu", "g", op, sub, stdin=DOMAIN)
        assert (fired.rc, fired.stdout) == (0, b"")
    assert sandbox.records()[-1]["scripts"][0]["stdout"] == "I print things\n"


def test_restore_xml_is_chained_through_scripts_and_only_the_final_xml_is_printed(sandbox):
    sandbox.script("s1", "sed 's/<description>old/<description>one/'\n")
    sandbox.script("s2", "cat > /dev/null\n")           # prints nothing: XML unchanged
    sandbox.script("s3", "sed 's/one/two/'\n")
    sandbox.deploy([rule("s1", order=1), rule("s2", order=2), rule("s3", order=3)])
    xml = b"<domain><name>g</name><description>old</description></domain>\n"
    fired = sandbox.fire("qemu", "g", "restore", "begin", stdin=xml)
    assert fired.rc == 0, fired
    assert fired.stdout == b"<domain><name>g</name><description>two</description></domain>\n"


def test_xml_event_with_no_change_prints_nothing(sandbox):
    sandbox.script("look", "cat > /dev/null\necho 'looked' >&2\n")
    sandbox.deploy([rule("look")])
    fired = sandbox.fire("qemu", "g", "migrate", "begin", stdin=b"<domain/>")
    assert (fired.rc, fired.stdout) == (0, b"")


def test_failed_xml_event_prints_no_xml(sandbox):
    sandbox.script("rewrite", "echo '<domain><name>new</name></domain>'\n")
    sandbox.script("veto", "echo 'not on this host' >&2\nexit 1\n")
    sandbox.deploy([rule("rewrite", order=1), rule("veto", order=2)])
    fired = sandbox.fire("qemu", "g", "migrate", "begin", stdin=b"<domain/>")
    assert fired.rc == 1 and fired.stdout == b""
    assert "not on this host" in fired.stderr


def test_ignored_failure_output_is_not_chained(sandbox):
    sandbox.script("broken", "echo '<garbage>'\nexit 1\n")
    sandbox.deploy([rule("broken", on_failure="ignore")])
    fired = sandbox.fire("qemu", "g", "restore", "begin", stdin=b"<domain/>")
    assert (fired.rc, fired.stdout) == (0, b"")


def test_timeout_kills_grandchild_holding_stdout(sandbox):
    pidfile = sandbox.seen / "grandchild.pid"
    sandbox.script("hang", "sleep 300 &\necho $! > %s\nsleep 300\n" % pidfile)
    sandbox.deploy([rule("hang", timeout=1)], kill_grace=0.5)
    began = time.monotonic()
    fired = sandbox.fire("qemu", "win10", "start", "begin")
    elapsed = time.monotonic() - began
    assert fired.rc == 1
    assert "script 'hang' timed out after 1 s" in fired.stderr
    assert elapsed < 10
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(grandchild)
    assert sandbox.records()[-1]["scripts"][0]["status"] == "timeout"


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(sandbox):
    sandbox.script("stubborn", "trap '' TERM\nwhile :; do sleep 0.1; done\n")
    sandbox.deploy([rule("stubborn", timeout=0.5)], kill_grace=0.5)
    began = time.monotonic()
    fired = sandbox.fire("qemu", "g", "prepare", "begin")
    assert fired.rc == 1 and "timed out" in fired.stderr
    assert time.monotonic() - began < 10


def test_background_child_keeping_output_open_does_not_block_libvirt(sandbox):
    # A script that leaves a daemon behind: libvirt reads the hook's stdout/stderr until EOF,
    # so a plain shell hook would hang the guest start for 30 s here.
    sandbox.script("spawner", "sleep 30 &\necho started\n")
    sandbox.deploy([rule("spawner")])
    began = time.monotonic()
    fired = sandbox.fire("qemu", "g", "started", "begin")
    assert fired.rc == 0
    assert time.monotonic() - began < 10


def test_scripts_run_with_default_sigpipe(sandbox):
    # Python ignores SIGPIPE; a script must not inherit that (``yes | head`` would misbehave).
    sandbox.script("sig", "grep SigIgn /proc/self/status > %s/sigign\n" % sandbox.seen)
    sandbox.deploy([rule("sig")])
    assert sandbox.fire("qemu", "g", "start", "begin").rc == 0
    mask = int((sandbox.seen / "sigign").read_text().split()[1], 16)
    assert not mask & (1 << (13 - 1))


@pytest.mark.root
def test_refuses_script_not_owned_by_root(sandbox):
    sandbox.recorder("theirs")
    sandbox.deploy([rule("theirs")])
    os.chown(sandbox.installed("theirs"), 65534, 65534)
    fired = sandbox.fire("qemu", "g", "prepare", "begin")
    assert fired.rc == 1
    assert "script 'theirs' refused" in fired.stderr and "owned by uid 65534" in fired.stderr
    assert sandbox.order() == []


@pytest.mark.parametrize("mode", [0o775, 0o757])
def test_refuses_group_or_world_writable_script(sandbox, mode):
    sandbox.recorder("loose", )
    sandbox.deploy([rule("loose")])
    sandbox.installed("loose").chmod(mode)
    fired = sandbox.fire("qemu", "g", "prepare", "begin")
    assert fired.rc == 1 and "writable by group or others" in fired.stderr
    assert sandbox.order() == []


def test_refused_script_with_ignore_policy_only_logs(sandbox):
    sandbox.recorder("loose")
    sandbox.deploy([rule("loose", on_failure="ignore")])
    sandbox.installed("loose").chmod(0o777)
    fired = sandbox.fire("qemu", "g", "prepare", "begin")
    assert fired.rc == 0
    assert sandbox.records()[-1]["scripts"][0]["status"] == "refused"


def test_script_without_shebang_fails_with_exec_format_error(sandbox):
    sandbox.script("noshebang", "echo hi\n")
    sandbox.deploy([rule("noshebang")])
    sandbox.installed("noshebang").write_text("echo hi\n")      # edited by hand on the host
    fired = sandbox.fire("qemu", "g", "prepare", "begin")
    assert fired.rc == 1
    assert "Exec format error" in fired.stderr and "#!" in fired.stderr


def test_missing_script_is_a_named_failure(sandbox):
    sandbox.deploy([rule("ghost")])
    fired = sandbox.fire("qemu", "g", "start", "begin")
    assert fired.rc == 1 and "script 'ghost' refused" in fired.stderr and "No such file" in fired.stderr


def test_missing_config_fails_abortable_events_and_is_a_logged_noop_elsewhere(sandbox):
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec")])
    sandbox.config.unlink()
    fired = sandbox.fire("qemu", "g", "prepare", "begin")
    assert fired.rc == 1 and "cannot load" in fired.stderr and "config.json" in fired.stderr
    fired = sandbox.fire("qemu", "g", "release", "end")
    assert (fired.rc, fired.stderr) == (0, "")
    assert sandbox.order() == []


@pytest.mark.parametrize("text", ['{"version": 1, "rules": [', '{"version": 99}', '{"version": 1, "rules": [{}]}',
                                  "\x00\x01"])
def test_corrupt_config_fails_abortable_events_clearly(sandbox, text):
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec")])
    (sandbox.own / "config.json").write_text(text)
    fired = sandbox.fire("qemu", "g", "start", "begin")
    assert fired.rc == 1 and "cannot load" in fired.stderr
    assert len(fired.stderr.splitlines()) == 1
    assert sandbox.fire("qemu", "g", "stopped", "end").rc == 0


def test_unknown_operation_from_newer_libvirt_dispatches_and_counts_as_abortable(sandbox):
    sandbox.script("all", "exit 4\n")
    sandbox.deploy([rule("all")])
    fired = sandbox.fire("qemu", "g", "teleport", "begin", stdin=DOMAIN)
    assert fired.rc == 1 and "script 'all' failed with exit status 4" in fired.stderr


def test_network_port_rules_match_old_plugged_names(sandbox):
    sandbox.recorder("port")
    sandbox.deploy([rule("port", driver="network", operations=["port-created"])], drivers=("network",))
    sandbox.fire("network", "default", "plugged", "begin", stdin=b"<hookData/>")
    sandbox.fire("network", "default", "port-created", "begin", stdin=b"<hookData/>")
    sandbox.fire("network", "default", "port-deleted", "begin", stdin=b"<hookData/>")
    assert sandbox.order() == ["port default plugged begin -", "port default port-created begin -"]


def test_daemon_rules_match_the_calling_daemon(sandbox, tmp_path):
    sandbox.recorder("qemud-only")
    sandbox.recorder("every-daemon")
    sandbox.deploy([rule("qemud-only", driver="daemon", daemons=["virtqemud"]),
                    rule("every-daemon", driver="daemon")], drivers=("daemon",))
    entry = str(sandbox.hooks / "daemon")
    for name in ("virtqemud", "virtnetworkd"):
        fake = tmp_path / name          # a shell whose process name is the daemon's
        fake.symlink_to("/bin/sh")
        # the trailing 'exit' keeps the shell from exec'ing the hook: it stays the parent
        subprocess.run([str(fake), "-c", '"$0" - start - start; exit $?', entry], check=True, timeout=60)
    assert sorted(sandbox.order()) == ["every-daemon - start - start", "every-daemon - start - start",
                                       "qemud-only - start - start"]
    daemons = [r.get("daemon") for r in sandbox.records()]
    assert daemons == ["virtqemud", "virtnetworkd"]


def test_per_guest_tree_runs_in_name_order_beside_rules(sandbox):
    base = sandbox.hooks / "qemu.d" / "win10" / "prepare" / "begin"
    base.mkdir(parents=True)
    for name in ("20-second", "10-first", "30-not-exec", "40-backup~", ".hidden"):
        (base / name).write_text('#!/bin/sh\necho "%s $*" >> %s/order\n' % (name, sandbox.seen))
        (base / name).chmod(0o644 if name == "30-not-exec" else 0o755)
    sandbox.recorder("rule-late")
    sandbox.deploy([rule("rule-late", order=60)])
    assert sandbox.fire("qemu", "win10", "prepare", "begin", stdin=DOMAIN).rc == 0
    assert sandbox.order() == ["10-first win10 prepare begin -", "20-second win10 prepare begin -",
                               "rule-late win10 prepare begin -"]
    assert sandbox.fire("qemu", "other", "prepare", "begin").rc == 0
    assert len(sandbox.order()) == 4    # only rule-late ran for the other guest


def test_per_guest_tree_works_without_any_rule(sandbox):
    base = sandbox.hooks / "qemu.d" / "vm1" / "release" / "end"
    base.mkdir(parents=True)
    (base / "unbind").write_text('#!/bin/sh\necho "unbind $*" >> %s/order\n' % sandbox.seen)
    (base / "unbind").chmod(0o755)
    sandbox.deploy([])
    assert sandbox.fire("qemu", "vm1", "release", "end").rc == 0
    assert sandbox.order() == ["unbind vm1 release end -"]


@pytest.mark.parametrize("name", ["../evil", "..", ".", "a/../../evil", "x\nevil", "n" * 300, "\udcff\udcfe"])
def test_hostile_guest_names_never_leave_the_tree(sandbox, name):
    # Something a path traversal would reach: hooks/evil/prepare/begin/x, through an existing
    # qemu.d/ (and qemu.d/a/) so that the kernel would resolve "..".
    (sandbox.hooks / "qemu.d" / "a").mkdir(parents=True)
    evil = sandbox.hooks / "evil" / "prepare" / "begin"
    evil.mkdir(parents=True)
    (evil / "x").write_text('#!/bin/sh\necho EVIL >> %s/order\n' % sandbox.seen)
    (evil / "x").chmod(0o755)
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec")])
    arg = os.fsencode(name)
    proc = subprocess.run([str(sandbox.hooks / "qemu"), arg, b"prepare", b"begin", b"-"], input=DOMAIN,
                          capture_output=True, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    order = (sandbox.seen / "order").read_bytes()
    assert b"EVIL" not in order
    assert order.startswith(b"rec ")


@pytest.mark.parametrize("count", [1, 2])
def test_50_mb_of_stdin_reaches_every_script_intact(sandbox, count):
    data = (b"<domain>" + os.urandom(25 * 1024 * 1024).hex().encode()[:50 * 1024 * 1024] + b"</domain>")
    for i in range(count):
        sandbox.script("sum%d" % i, "sha256sum > %s/sum%d\n" % (sandbox.seen, i))
    sandbox.deploy([rule("sum%d" % i) for i in range(count)])
    fired = sandbox.fire("qemu", "big", "prepare", "begin", stdin=data, timeout=120)
    assert fired.rc == 0, fired
    digest = hashlib.sha256(data).hexdigest()
    for i in range(count):
        assert (sandbox.seen / ("sum%d" % i)).read_text().split()[0] == digest


def test_50_mb_xml_passes_through_restore_chain_unchanged(sandbox):
    data = b"<domain>" + b"x" * (50 * 1024 * 1024) + b"</domain>"
    sandbox.script("identity", "cat\n")
    sandbox.deploy([rule("identity")])
    fired = sandbox.fire("qemu", "big", "restore", "begin", stdin=data, timeout=120)
    assert fired.rc == 0 and fired.stdout == data


def test_concurrent_calls_do_not_interfere(sandbox):
    sandbox.script("slow", 'cat > %s/"$1".stdin\nsleep 0.5\necho "$1" >> %s/order\n' % (sandbox.seen, sandbox.seen))
    sandbox.deploy([rule("slow")])
    results = {}

    def fire(name):
        results[name] = sandbox.fire("qemu", name, "prepare", "begin", stdin=("<domain><name>%s</name></domain>"
                                                                              % name).encode())
    threads = [threading.Thread(target=fire, args=("guest%d" % i,)) for i in range(6)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.rc == 0 for r in results.values()), results
    assert time.monotonic() - began < 3 * 0.5 * 6          # they ran in parallel
    assert sorted(sandbox.order()) == sorted("guest%d" % i for i in range(6))
    for i in range(6):
        assert (sandbox.seen / ("guest%d.stdin" % i)).read_text() == "<domain><name>guest%d</name></domain>" % i
    records = sandbox.records()
    assert sorted(r["object"] for r in records) == sorted("guest%d" % i for i in range(6))


def test_broken_log_never_breaks_the_hook(sandbox):
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec")], log={"file": "/dev/null/not-a-dir/log.jsonl"})
    fired = sandbox.fire("qemu", "g", "prepare", "begin")
    assert (fired.rc, fired.stderr) == (0, "")
    assert sandbox.order() == ["rec g prepare begin -"]


def test_log_rotates_at_its_size_bound(sandbox):
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok")], log={"max_bytes": 2000, "backups": 2})
    for _call in range(30):
        assert sandbox.fire("qemu", "g", "prepare", "begin").rc == 0
    files = sorted(p.name for p in sandbox.log.parent.iterdir())
    assert files == ["virthooks.jsonl", "virthooks.jsonl.1", "virthooks.jsonl.2"]
    for path in sandbox.log.parent.iterdir():
        assert path.stat().st_size <= 2000
        for line in path.read_text().splitlines():
            assert json.loads(line)["driver"] == "qemu"


def test_log_record_has_event_scripts_exit_codes_and_durations(sandbox):
    sandbox.script("one", "exit 0\n")
    sandbox.script("two", "exit 5\n")
    sandbox.deploy([rule("one", order=1), rule("two", order=2, on_failure="ignore")])
    sandbox.fire("qemu", "vm", "stopped", "end", "-")
    rec = sandbox.records()[-1]
    assert {k: rec[k] for k in ("driver", "object", "operation", "suboperation", "extra", "result", "exit")} == {
        "driver": "qemu", "object": "vm", "operation": "stopped", "suboperation": "end", "extra": "-",
        "result": "ok", "exit": 0}
    assert [(s["name"], s["exit"], s["status"]) for s in rec["scripts"]] == [("one", 0, "ok"), ("two", 5, "failed")]
    assert all(s["duration_ms"] >= 0 for s in rec["scripts"]) and rec["duration_ms"] >= 0
    assert rec["time"].endswith("Z")


@pytest.mark.parametrize("fixture", ["sandbox", "venv_sandbox"])   # stdlib ElementTree, then lxml
def test_xpath_condition_selects_scripts(request, fixture):
    box = request.getfixturevalue(fixture)
    box.recorder("gpu")
    box.recorder("no-gpu")
    box.deploy([rule("gpu", xpath="/domain/devices/hostdev[@type='pci']"),
                rule("no-gpu", xpath="/domain/devices/interface")])
    assert box.fire("qemu", "win10", "prepare", "begin", stdin=DOMAIN).rc == 0
    assert box.order() == ["gpu win10 prepare begin -"]
    assert (box.seen / "gpu.stdin").read_bytes() == DOMAIN
    skipped = [s for s in box.records()[-1]["scripts"] if s["status"] == "skipped"]
    assert [s["name"] for s in skipped] == ["no-gpu"]


def test_xpath_with_functions_works_under_lxml(venv_sandbox):
    venv_sandbox.recorder("two-disks")
    venv_sandbox.deploy([rule("two-disks", xpath="count(/domain/devices/disk) >= 2")])
    one = b"<domain><devices><disk/></devices></domain>"
    two = b"<domain><devices><disk/><disk/></devices></domain>"
    venv_sandbox.fire("qemu", "a", "prepare", "begin", stdin=one)
    venv_sandbox.fire("qemu", "b", "prepare", "begin", stdin=two)
    assert venv_sandbox.order() == ["two-disks b prepare begin -"]


def test_xpath_on_malformed_xml_is_a_named_failure(sandbox):
    sandbox.recorder("cond")
    sandbox.deploy([rule("cond", xpath="/domain/devices")])
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=b"<domain><oops></domain>")
    assert fired.rc == 1 and "script 'cond'" in fired.stderr and "not well-formed" in fired.stderr


def test_disabled_rule_does_not_run(sandbox):
    sandbox.recorder("off")
    sandbox.deploy([rule("off", enabled=False)])
    assert sandbox.fire("qemu", "g", "prepare", "begin").rc == 0
    assert sandbox.order() == []


def _host_pythons():
    """Every Python >= 3.9 on this machine besides the system one (managed hosts run 3.9+)."""
    import glob
    found = sorted(set(glob.glob("/root/.pyenv/versions/3.*/bin/python3.[0-9]") +
                       glob.glob("/root/.pyenv/versions/3.*/bin/python3.[0-9][0-9]") +
                       glob.glob("/usr/bin/python3.[0-9]") + glob.glob("/usr/bin/python3.[0-9][0-9]")))
    return [p for p in found if os.access(p, os.X_OK) and int(p.rsplit(".", 1)[1]) >= 9]


def hook_pythons() -> list:
    """The system Python and every other host Python (3.9+) on this machine, once each."""
    from ..conftest import SYSTEM_PYTHON
    by_binary = {os.path.realpath(p): p for p in [SYSTEM_PYTHON] + _host_pythons()}
    return sorted(by_binary.values())


@pytest.mark.parametrize("python", _host_pythons())
def test_runtime_works_under_every_host_python(tmp_path, python):
    from ..conftest import Sandbox
    box = Sandbox(tmp_path, python)
    box.recorder("rec")
    box.script("xml", "sed 's/old/new/'\n")
    box.recorder("cond")
    box.deploy([rule("rec", operations=["prepare"]), rule("xml", operations=["restore"]),
                rule("cond", operations=["started"], xpath="/domain/devices/hostdev")])
    assert box.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN).rc == 0
    assert box.fire("qemu", "g", "restore", "begin", stdin=b"<domain>old</domain>").stdout == b"<domain>new</domain>"
    assert box.fire("qemu", "g", "started", "begin", stdin=DOMAIN).rc == 0
    assert box.order() == ["rec g prepare begin -", "cond g started begin -"]
