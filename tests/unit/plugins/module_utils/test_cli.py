"""The operator CLI, run as installed (hooks/virthooks/virthooks), as an operator would."""
from __future__ import annotations

import subprocess

from .test_dispatch import DOMAIN, rule


def cli(box, *args, stdin=None):
    proc = subprocess.run([str(box.own / "virthooks"), *args], capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_list_shows_rules_and_what_runs_for_an_event(sandbox, tmp_path):
    sandbox.recorder("gpu")
    sandbox.recorder("all-release")
    sandbox.deploy([rule("gpu", objects=["win*"], operations=["prepare"], xpath="/domain/devices/hostdev"),
                    rule("all-release", operations=["release"], order=90)])
    code, out = cli(sandbox, "list")
    assert code == 0 and "gpu" in out and "all-release" in out and "order=90" in out
    xml = tmp_path / "dom.xml"
    xml.write_bytes(DOMAIN)
    code, out = cli(sandbox, "list", "qemu", "win10", "prepare", "--xml", str(xml))
    assert code == 0
    assert "event: qemu win10 prepare begin - (abortable)" in out
    assert "gpu" in out and "-> True" in out and "all-release" not in out
    code, out = cli(sandbox, "list", "qemu", "web", "stopped")
    assert "nothing would run" in out


def test_simulate_runs_the_event_for_real_through_the_entry_point(sandbox, tmp_path):
    sandbox.script("veto", "echo 'no GPU free' >&2\nexit 3\n")
    sandbox.deploy([rule("veto", operations=["prepare"])])
    xml = tmp_path / "dom.xml"
    xml.write_bytes(DOMAIN)
    code, out = cli(sandbox, "simulate", "qemu", "win10", "prepare", "begin", "--xml", str(xml))
    assert code == 1
    assert "exit status: 1" in out and "script 'veto' failed with exit status 3: no GPU free" in out
    assert "qemu    win10 prepare begin - -> failed (exit 1" in out          # the call's log record
    assert sandbox.records()[-1]["scripts"][0]["exit"] == 3


def test_simulate_dry_run_changes_nothing(sandbox):
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec")])
    code, out = cli(sandbox, "simulate", "--dry-run", "qemu", "g", "start", "begin")
    assert code == 0 and "rec" in out
    assert sandbox.order() == [] and sandbox.records() == []


def test_validate_reports_each_problem(sandbox):
    sandbox.script("ok", "exit 0\n")
    sandbox.script("noshebang", "echo hi\n", shebang="")
    sandbox.script("loose", "exit 0\n", mode=0o777)
    sandbox.deploy([rule("ok"), rule("noshebang"), rule("loose"), rule("missing"),
                    rule("net", driver="network")])
    code, out = cli(sandbox, "validate")
    assert code == 1
    assert "rule 'noshebang'" in out and "no #! line" in out
    assert "rule 'loose'" in out and "writable by group or others" in out
    assert "rule 'missing'" in out
    assert "hooks/network is missing" in out
    assert "FAIL rule 'ok'" not in out


def test_validate_passes_a_good_install(sandbox):
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok")])
    code, out = cli(sandbox, "validate")
    assert code == 0 and "0 problem(s)" in out


def test_log_shows_recent_calls_and_failures(sandbox):
    sandbox.script("ok", "echo fine\n")
    sandbox.script("bad", "echo broken >&2\nexit 9\n")
    sandbox.deploy([rule("ok", operations=["start"]), rule("bad", operations=["prepare"])])
    sandbox.fire("qemu", "a", "start", "begin")
    sandbox.fire("qemu", "b", "prepare", "begin")
    code, out = cli(sandbox, "log")
    assert code == 0
    lines = out.splitlines()
    assert any("qemu    a start begin - -> ok" in line for line in lines)
    assert any("qemu    b prepare begin - -> failed (exit 1" in line for line in lines)
    assert "stderr: broken" in out
    code, out = cli(sandbox, "log", "--failed")
    assert " a start " not in out and " b prepare " in out
    code, out = cli(sandbox, "log", "--json", "-n", "1")
    assert out.count("\n") == 1 and '"object":"b"' in out
