"""The dispatcher's named records: Event, ScriptRun and its outcomes, ScriptResult.to_record().

ScriptRun is driven with real scripts in tmp_path and real processes. The log entry each outcome
gives is compared key by key, in order, with what the dispatcher has always written (runlog and
logstats read it; tests/unit/.../test_runlog.py and test_logstats.py read real records).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import dispatch
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import Step


def step(name="s", path="/bin/true", timeout=10, on_failure="fail", source="rule"):
    return Step(name, path, timeout, on_failure, 50, source=source)


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def open_fds() -> set:
    return set(os.listdir("/proc/self/fd"))


def run(tmp_path, body, timeout=10, xml_out=False, spool=None, keep=2048, grace=0.5):
    """One ScriptRun of a real script: (result, fds left open by it)."""
    before = open_fds()
    path = script(tmp_path, "s", body)
    spool_fd = dispatch.anon_file(spool) if spool is not None else -1
    try:
        scripted = dispatch.ScriptRun(step(path=path, timeout=timeout), 0, spool_fd, spool, keep, xml_out)
        result = scripted.start([path, "g", "prepare", "begin", "-"], {"PATH": "/usr/bin:/bin"}, "test.1") \
            or scripted.wait(grace)
    finally:
        if spool_fd >= 0:
            os.close(spool_fd)
    return result, open_fds() - before


# --- ScriptResult.to_record: the log entry of each outcome, keys in today's order ------------------

@pytest.mark.parametrize("outcome, kwargs, expected", [
    (dispatch.OK, dict(code=0, stderr="err\n", stdout="out\n", duration_ms=1.5),
     [("name", "s"), ("source", "rule"), ("policy", "fail"), ("exit", 0), ("status", "ok"), ("stderr", "err\n"),
      ("stdout", "out\n"), ("duration_ms", 1.5)]),
    (dispatch.OK, dict(code=0, duration_ms=2.0, new_xml=b"<domain/>"),
     [("name", "s"), ("source", "rule"), ("policy", "fail"), ("exit", 0), ("status", "ok"), ("duration_ms", 2.0),
      ("xml", "replaced")]),
    (dispatch.FAILED, dict(code=3, message="failed with exit status 3", stderr="bad\n", duration_ms=1.0),
     [("name", "s"), ("source", "rule"), ("policy", "fail"), ("exit", 3), ("status", "failed"),
      ("message", "failed with exit status 3"), ("stderr", "bad\n"), ("duration_ms", 1.0)]),
    (dispatch.TIMED_OUT, dict(code=-15, message="timed out after 1 s", duration_ms=1000.0),
     [("name", "s"), ("source", "rule"), ("policy", "fail"), ("status", "timeout"), ("message", "timed out after 1 s"),
      ("exit", -15), ("duration_ms", 1000.0)]),
    (dispatch.OVERFLOWED, dict(code=-15, message="printed more", duration_ms=3.0),
     [("name", "s"), ("source", "rule"), ("policy", "fail"), ("status", "failed"), ("message", "printed more"),
      ("exit", -15), ("duration_ms", 3.0)]),
    (dispatch.REFUSED, dict(message="refused: /x is writable"),
     [("name", "s"), ("source", "rule"), ("policy", "fail"), ("status", "refused"), ("exit", None),
      ("message", "refused: /x is writable")]),
    (dispatch.UNRUNNABLE, dict(message="could not be executed: Exec format error", duration_ms=0.4),
     [("name", "s"), ("source", "rule"), ("policy", "fail"), ("status", "error"), ("exit", None),
      ("message", "could not be executed: Exec format error"), ("duration_ms", 0.4)]),
    (dispatch.SKIPPED, dict(message="xpath is false"),
     [("name", "s"), ("source", "rule"), ("status", "skipped"), ("reason", "xpath is false")]),
    (dispatch.BAD_CONDITION, dict(message="its condition could not be evaluated: x"),
     [("name", "s"), ("source", "rule"), ("status", "error"), ("exit", None), ("policy", "fail"),
      ("message", "its condition could not be evaluated: x")]),
    (dispatch.KILLED, dict(code=-15, message="was stopped with the dispatcher", duration_ms=5.0),
     [("name", "s"), ("source", "rule"), ("policy", "fail"), ("duration_ms", 5.0), ("status", "killed"),
      ("exit", -15), ("message", "was stopped with the dispatcher")]),
], ids=lambda v: v.status if isinstance(v, dispatch.Outcome) else "")
def test_to_record_gives_the_log_entry_each_outcome_has_always_had(outcome, kwargs, expected):
    assert list(dispatch.ScriptResult(step(), outcome, **kwargs).to_record().items()) == expected


def test_a_script_result_cannot_be_changed():
    result = dispatch.ScriptResult(step(), dispatch.OK, 0)
    with pytest.raises(AttributeError):
        result.exit = 1
    with pytest.raises(AttributeError):
        result.anything = 1
    assert (result.status, result.failed) == ("ok", False)
    assert dispatch.ScriptResult(step(), dispatch.SKIPPED).failed is False
    assert all(dispatch.ScriptResult(step(), o).failed for o in (dispatch.FAILED, dispatch.TIMED_OUT,
               dispatch.OVERFLOWED, dispatch.REFUSED, dispatch.UNRUNNABLE, dispatch.BAD_CONDITION, dispatch.KILLED))


def test_a_tree_script_is_named_by_its_source():
    record = dispatch.ScriptResult(step("g/prepare/begin/x", source="tree"), dispatch.OK, 0).to_record()
    assert (record["name"], record["source"]) == ("g/prepare/begin/x", "tree")


# --- ScriptRun: real scripts, each outcome, files closed ------------------------------------

def test_a_run_that_exits_0_is_ok_with_its_output_and_closes_its_files(tmp_path):
    result, left = run(tmp_path, "echo out; echo err >&2\n", spool=b"<domain/>")
    assert (result.outcome, result.exit, result.stdout, result.stderr) == (dispatch.OK, 0, "out\n", "err\n")
    assert result.duration_ms is not None and result.new_xml is None
    assert left == set()


def test_a_run_that_exits_non_zero_or_is_killed_failed(tmp_path):
    result, left = run(tmp_path, "echo no >&2\nexit 3\n")
    assert (result.outcome, result.exit, result.message) == (dispatch.FAILED, 3, "failed with exit status 3")
    result, left2 = run(tmp_path, "kill -9 $$\n")
    assert (result.outcome, result.exit, result.message) == (dispatch.FAILED, -9, "was killed by signal 9")
    assert left == left2 == set()


def test_a_run_past_its_timeout_is_stopped(tmp_path):
    began = time.monotonic()
    result, left = run(tmp_path, "sleep 30\n", timeout=0.3)
    assert time.monotonic() - began < 10
    assert (result.outcome, result.exit) == (dispatch.TIMED_OUT, -15)
    assert result.message.startswith("timed out after 0.3 s")
    assert left == set()


def test_xml_printed_where_libvirt_reads_it_is_the_new_xml_only_when_ok(tmp_path):
    result, _left = run(tmp_path, "cat >/dev/null; echo '<domain/>'\n", xml_out=True, spool=b"<domain><a/></domain>")
    assert (result.outcome, result.new_xml, result.stdout) == (dispatch.OK, b"<domain/>\n", "")
    assert result.to_record()["xml"] == "replaced"
    result, _left = run(tmp_path, "echo '<domain/>'; exit 1\n", xml_out=True)
    assert (result.outcome, result.new_xml) == (dispatch.FAILED, None)
    result, _left = run(tmp_path, "echo '   '\n", xml_out=True)
    assert (result.outcome, result.new_xml) == (dispatch.OK, None)


def test_a_run_that_cannot_be_spawned_is_unrunnable_with_its_stdin_closed(tmp_path):
    path = tmp_path / "elf"
    path.write_bytes(b"\x7fELF" + b"\0" * 60)
    path.chmod(0o755)
    before = open_fds()
    spool = dispatch.anon_file(b"<domain/>")
    scripted = dispatch.ScriptRun(step(path=str(path)), 0, spool, b"<domain/>", 2048, False)
    result = scripted.start([str(path)], {}, "test.2")
    os.close(spool)
    assert result.outcome is dispatch.UNRUNNABLE and result.exit is None
    assert result.message.startswith("could not be executed: Exec format error")
    assert open_fds() == before


def test_a_run_stopped_from_outside_is_killed_once_through_the_same_end(tmp_path):
    """The signal path: the run is stopped where it is and ends as KILLED; ending again changes nothing."""
    path = script(tmp_path, "s", "sleep 30\n")
    before = open_fds()
    scripted = dispatch.ScriptRun(step(path=path), 0, -1, None, 2048, False)
    assert scripted.start([path], {"PATH": "/usr/bin:/bin"}, "test.3") is None
    result = scripted.stop(dispatch.KILLED, 0.5, "was stopped with the dispatcher")
    assert (result.outcome, result.exit) == (dispatch.KILLED, -15)
    assert scripted.end(dispatch.OK, 0) is result
    assert scripted.stop(dispatch.KILLED, 0.5, "again") is result
    assert open_fds() == before
    with pytest.raises(ChildProcessError):
        os.waitpid(scripted.pid, os.WNOHANG)        # reaped: no stray child


# --- Event -----------------------------------------------------------------------------------

def test_an_event_is_libvirt_s_arguments_and_what_follows_from_them():
    event = dispatch.Event("qemu", ["win10", "reconnect", "begin"])
    assert (event.obj, event.operation, event.suboperation, event.extra) == ("win10", "reconnect", "begin", "-")
    assert event.label == "qemu win10 reconnect begin"
    assert event.args() == ["win10", "reconnect", "begin", "-"]
    assert event.hook_env() == {"LIBVIRT_HOOK_DRIVER": "qemu", "LIBVIRT_HOOK_OBJECT": "win10",
                                "LIBVIRT_HOOK_OPERATION": "reconnect", "LIBVIRT_HOOK_SUBOPERATION": "begin",
                                "LIBVIRT_HOOK_EXTRA": "-"}
    assert (event.abortable, event.spare_guest, event.xml_out) == (True, True, False)
    migrate = dispatch.Event("qemu", ["win10", "migrate", "begin", "-"])
    assert (migrate.abortable, migrate.spare_guest, migrate.xml_out) == (True, False, True)


def test_an_event_reads_the_calling_daemon_only_when_asked():
    event = dispatch.Event("daemon", ["-", "start", "-", "shutdown"])
    assert not event.daemon_known
    with open("/proc/%d/comm" % os.getppid()) as f:
        assert event.daemon == f.read().strip()
    assert event.daemon_known
    assert dispatch.Event("daemon", ["-", "start"], daemon="virtqemud").daemon == "virtqemud"


def test_records_and_the_event_are_plain_slots_classes():
    for cls in (dispatch.Event, dispatch.Outcome, dispatch.ScriptResult, dispatch.ScriptRun):
        assert "__slots__" in vars(cls), cls
    assert not hasattr(dispatch.Event("qemu", []), "__dict__")
    assert not hasattr(dispatch.ScriptResult(step(), dispatch.OK), "__dict__")
