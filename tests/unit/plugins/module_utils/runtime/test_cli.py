"""The operator CLI, run as installed (hooks/virthooks/virthooks), as an operator would."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from ..conftest import LIBVIRT_ENV
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
    sandbox.script("noshebang", "echo hi\n")
    sandbox.script("loose", "exit 0\n")
    sandbox.deploy([rule("ok"), rule("noshebang"), rule("loose"), rule("missing"),
                    rule("net", driver="network")])
    sandbox.installed("noshebang").write_text("echo hi\n")     # edited and chmod'ed by hand on the host
    sandbox.installed("loose").chmod(0o777)
    code, out = cli(sandbox, "validate")
    assert code == 1
    assert "rule 'noshebang'" in out and "does not start with '#!'" in out
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


# --- whatever the log holds and whatever the locale, the output is safe to show on a terminal --

@pytest.fixture(scope="module")
def latin1_locale(tmp_path_factory):
    """A latin-1 locale built into a private LOCPATH (hosts rarely have one generated)."""
    locpath = tmp_path_factory.mktemp("locale")
    try:
        subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(locpath / "en_US.ISO-8859-1")],
                       capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail("localedef cannot build a latin-1 locale (Debian package 'locales', installed by "
                    "tests/setup/prepare-host.sh): %s" % exc)
    return {"LC_ALL": "en_US.ISO-8859-1", "LOCPATH": str(locpath)}


def locales(latin1):
    """(name, environment, output encoding) for each locale the CLI must survive; stdout is a pipe."""
    path = {"PATH": LIBVIRT_ENV["PATH"]}
    return [("C", dict(path, LC_ALL="C"), "utf-8"),                   # Python coerces C/POSIX to UTF-8
            ("POSIX", dict(path, LANG="POSIX"), "utf-8"),
            ("latin-1", dict(path, **latin1), "latin-1"),
            ("C.UTF-8", dict(path, LC_ALL="C.UTF-8"), "utf-8")]


def cli_raw(box, *args, env):
    """Run the CLI; args may be bytes (not UTF-8). Returns (exit status, stdout bytes, stderr text)."""
    proc = subprocess.run([str(box.own / "virthooks").encode(), *[a if isinstance(a, bytes) else a.encode()
                                                                  for a in args]],
                          capture_output=True, env=env, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


def raw_controls(out: bytes, encoding: str) -> list:
    """Lines of out holding a raw C0 control, DEL or C1 control (0x80-0x9f), or bytes not in encoding.

    For latin-1 this is a check of the bytes themselves; for UTF-8 it is the same check on the
    characters (a UTF-8 sequence of a printable character may hold bytes 0x80-0x9f).
    """
    try:
        text = out.decode(encoding)
    except UnicodeDecodeError as exc:
        return [("not %s" % encoding, out[max(exc.start - 40, 0):exc.end + 40])]
    return [(i, line[:80]) for i, line in enumerate(text.split("\n"))
            if any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in line)]


HOSTILE_LOG = b"\n".join([
    json.dumps({"time": "2024-01-01T00:00:00.000Z", "driver": "qemu", "object": "\x1b[31mevil\x1b[0m\rX",
                "operation": "prepare", "suboperation": "begin", "extra": "-", "result": "failed", "exit": 1,
                "error": "boom\x1b[K", "notes": ["note \x1b[2J\x07"], "duration_ms": 1.5,
                "scripts": [{"status": "failed", "name": "bad", "exit": 3, "duration_ms": 1,
                             "message": "m\x9bX\x85Y\x7f\tZ", "stderr": "e1\r\n\x1b]0;pwned\x07\n",
                             "stdout": "out\x00\u2028done"}]}).encode(),
    b'{"time": "t", "driver": "qemu", "object": "caf\xc3\xa9 \xff\x9b\xfe", "operation": "start", '
    b'"suboperation": "begin", "extra": "-", "result": "failed", "exit": 1}',
    b"not json at all \x1b[2J\r\x9b\xff\x00 end",
    b"[1, 2, 3]",
    b'{"object": "\\udcff\\udc9b", "result": "ok", "scripts": ["weird", {"stdout": 5}], "notes": "x\\u001by"}',
]) + b"\n"


def test_log_escapes_control_characters_and_bad_bytes_under_any_locale(sandbox, latin1_locale):
    sandbox.deploy([rule("ok")])
    sandbox.log.parent.mkdir(parents=True, exist_ok=True)
    sandbox.log.write_bytes(HOSTILE_LOG)
    for name, env, encoding in locales(latin1_locale):
        for args in (["log"], ["log", "--failed"], ["log", "-n", "2"], ["log", "--json"]):
            code, out, err = cli_raw(sandbox, *args, env=env)
            assert (code, err) == (0, ""), (name, args, err)
            assert raw_controls(out, encoding) == [], (name, args, out)
        code, out, err = cli_raw(sandbox, "log", env=env)
        text = out.decode(encoding)
        assert "qemu    \\x1b[31mevil\\x1b[0m\\rX prepare begin - -> failed" in text, name
        assert "error: boom\\x1b[K" in text and "note: note \\x1b[2J\\x07" in text
        assert "exit=3 1 ms m\\u009bX\\u0085Y\\x7f\\tZ" in text
        assert "stderr: e1\\r | \\x1b]0;pwned\\x07" in text
        # U+2028 is no control character: shown as it is, or escaped where the locale lacks it
        assert "stdout: out\\x00%sdone" % ("\u2028" if encoding == "utf-8" else "\\u2028") in text
        assert "qemu    caf\u00e9 \\xff\\x9b\\xfe start begin - -> failed" in text
        assert "unparsable log line: not json at all \\x1b[2J\\r\\x9b\\xff\\x00 end" in text
        assert "unparsable log line: [1, 2, 3]" in text
        assert " \\xff\\x9b " in text and "note: x\\x1by" in text and "stdout: 5" in text


def test_list_and_simulate_escape_guest_names_rule_fields_and_script_output(sandbox, latin1_locale):
    sandbox.script("noisy", "printf 'out\\033[2J\\r\\233\\n' ; printf 'err\\033]0;t\\007\\377\\n' >&2; exit 4\n")
    sandbox.deploy([rule("noisy", operations=["prepare"], objects=["\x1b[31m*", "*"], extras=["\x9b*", "*"])])
    guest = b"g\x1b[2J\x9b\xff\r"
    for name, env, encoding in locales(latin1_locale):
        for args in (["list"], ["list", "qemu", guest, "prepare"],
                     ["simulate", "--dry-run", "qemu", guest, "prepare", "begin"],
                     ["simulate", "qemu", guest, "prepare", "begin"], ["log"]):
            code, out, err = cli_raw(sandbox, *args, env=env)
            assert code == (1 if args[:2] == ["simulate", "qemu"] else 0), (name, args, out, err)
            assert "Traceback" not in err, (name, args, err)
            assert raw_controls(out, encoding) == [], (name, args, out)
        # argv is decoded by the locale: in latin-1 the bytes 0x9b 0xff are the characters U+009B U+00FF
        shown = "g\\x1b[2J\\x9b\\xff\\r" if encoding == "utf-8" else "g\\x1b[2J\\u009b\u00ff\\r"
        text = cli_raw(sandbox, "list", "qemu", guest, "prepare", env=env)[1].decode(encoding)
        assert "event: qemu %s prepare begin - (abortable)" % shown in text, name
        text = cli_raw(sandbox, "list", env=env)[1].decode(encoding)
        assert "objects=\\x1b[31m*,*" in text and "extras=\\u009b*,*" in text
        text = cli_raw(sandbox, "simulate", "qemu", guest, "prepare", "begin", env=env)[1].decode(encoding)
        assert "$ %s/qemu %s prepare begin -" % (sandbox.hooks, shown) in text
        assert "stderr: err\\x1b]0;t\\x07" in text and "stdout: out\\x1b[2J\\r" in text
        assert "qemu    g\\x1b[2J\\x9b\\xff\\r prepare begin - -> failed (exit 1" in text


def test_log_never_hangs_on_a_fifo_nor_follows_a_symlink_at_the_log_path(sandbox, tmp_path):
    sandbox.deploy([rule("ok")])
    sandbox.log.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(str(sandbox.log))
    code, out = cli(sandbox, "log")
    assert code == 0 and "no calls logged" in out
    os.unlink(str(sandbox.log))
    secret = tmp_path / "secret"
    secret.write_text('{"object": "secret-guest"}\nroot:x:0:0\n')
    os.symlink(str(secret), str(sandbox.log))
    code, out = cli(sandbox, "log")
    assert code == 0 and "no calls logged" in out and "secret" not in out.replace(str(sandbox.log), "")


def test_simulate_without_an_entry_point_runs_the_installed_dispatcher(sandbox):
    sandbox.recorder("net")
    sandbox.deploy([rule("net", driver="network")], drivers=())
    assert not (sandbox.hooks / "network").exists()
    code, out = cli(sandbox, "simulate", "network", "default", "start", "begin")
    assert code == 0, out
    assert "no entry point" in out
    assert sandbox.order() == ["net default start begin -"]
