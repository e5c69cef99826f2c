"""The operator CLI, run as installed (hooks/virthooks/virthooks), as an operator would."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from ..conftest import LIBVIRT_ENV
from .test_dispatch import DOMAIN, rule


def cli(box, *args):
    code, out, err = cli3(box, *args)
    return code, out + err


def cli3(box, *args, stdin=b""):
    """Run the installed CLI as an operator would; stdin is a pipe holding stdin (empty by default)."""
    proc = subprocess.run([str(box.own / "virthooks"), *args], input=stdin, capture_output=True, timeout=60,
                          check=False)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


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
    code, out = cli(sandbox, "validate", "--skip-syntax")
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
                          stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60, check=False)
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


# --- issue 21 point 7: a CLI for people and scripts ------------------------------------------------

GUEST40 = "win10-gpu-passthrough-workstation-01-lab"     # 40 characters, as a real fleet names them


def test_version_prints_the_runtime_version(sandbox):
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import VERSION
    sandbox.deploy([])
    code, out, err = cli3(sandbox, "--version")
    assert (code, out.strip(), err) == (0, "virthooks %s" % VERSION, "")


def test_list_json_gives_the_rules_and_an_events_steps(sandbox, tmp_path):
    sandbox.recorder("gpu")
    sandbox.recorder("late")
    sandbox.deploy([rule("gpu", objects=["win*"], operations=["prepare"], xpath="/domain/devices/hostdev"),
                    rule("late", order=90, on_failure="ignore")])
    code, out, err = cli3(sandbox, "list", "--json")
    assert (code, err) == (0, "")
    rules = json.loads(out)["rules"]
    assert [r["name"] for r in rules] == ["gpu", "late"]
    assert rules[0]["objects"] == ["win*"] and rules[0]["operations"] == ["prepare"] and rules[0]["enabled"] is True
    assert rules[1]["order"] == 90 and rules[1]["on_failure"] == "ignore" and rules[1]["source"] == "config.json"
    xml = tmp_path / "dom.xml"
    xml.write_bytes(DOMAIN)
    code, out, err = cli3(sandbox, "list", "qemu", "win10", "prepare", "--xml", str(xml), "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["event"] == {"driver": "qemu", "object": "win10", "operation": "prepare", "suboperation": "begin",
                            "extra": "-", "daemon": None, "abortable": True, "reads_stdout": False}
    assert [(s["name"], s["xpath_result"]) for s in doc["steps"]] == [("gpu", True), ("late", None)]
    assert doc["steps"][0]["path"].endswith("/scripts/gpu") and doc["steps"][0]["on_failure"] == "fail"


def test_validate_json_lists_problems_and_warnings(sandbox):
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok", operations=["reconnect"]), rule("missing")])
    code, out, err = cli3(sandbox, "validate", "--json")
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["ok"] is False and doc["rules"] == 2 and doc["config"].endswith("/config.json")
    assert len(doc["problems"]) == 1 and "rule 'missing'" in doc["problems"][0]
    assert any("rule 'ok'" in w and "reconnect" in w for w in doc["warnings"])
    sandbox.deploy([rule("ok")])
    code, out, err = cli3(sandbox, "validate", "--json")
    assert (code, err) == (0, "") and json.loads(out)["ok"] is True and json.loads(out)["problems"] == []


def test_generations_json_marks_the_current_one(sandbox):
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok")])
    sandbox.deploy([rule("ok", order=10)], drivers=("qemu", "network"))
    code, out, err = cli3(sandbox, "generations", "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    ids = sorted(p.name for p in (sandbox.own / "generations").iterdir())
    assert [g["id"] for g in doc["generations"]] == ids and doc["current"] == ids[-1]
    assert [g["current"] for g in doc["generations"]] == [False, True]
    assert sorted(doc["generations"][-1]["drivers"]) == ["network", "qemu"] and doc["generations"][-1]["rules"] == 1
    assert all(g["problem"] is None and len(g["digest"]) == 16 for g in doc["generations"])


def test_simulate_json_gives_the_hooks_exit_output_and_log_record(sandbox, tmp_path):
    sandbox.script("veto", "echo 'no GPU free' >&2\nexit 3\n")
    sandbox.deploy([rule("veto", operations=["prepare"])])
    xml = tmp_path / "dom.xml"
    xml.write_bytes(DOMAIN)
    code, out, err = cli3(sandbox, "simulate", "qemu", "win10", "prepare", "begin", "--xml", str(xml), "--json")
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["command"] == [str(sandbox.hooks / "qemu"), "win10", "prepare", "begin", "-"]
    assert doc["exit"] == 1 and doc["stdin"] == "file" and doc["stdout"] == ""
    assert "script 'veto' failed with exit status 3: no GPU free" in doc["stderr"]
    assert doc["record"]["result"] == "failed" and doc["record"]["scripts"][0]["exit"] == 3
    code, out, err = cli3(sandbox, "simulate", "--dry-run", "--json", "qemu", "win10", "prepare", "begin")
    assert code == 0 and [s["name"] for s in json.loads(out)["steps"]] == ["veto"]


def test_rollback_dry_run_json_says_what_would_change_and_changes_nothing(sandbox):
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok")])
    sandbox.deploy([rule("ok", order=10)], drivers=("qemu", "network"))
    first, second = sorted(p.name for p in (sandbox.own / "generations").iterdir())
    code, out, err = cli3(sandbox, "rollback", "--dry-run", "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert (doc["dry_run"], doc["current"], doc["target"]) == (True, second, first)
    assert doc["removed"] == ["network"] and doc["added"] == [] and doc["reloaded"] == []
    assert any("ok" in change for change in doc["changes"])
    assert os.readlink(str(sandbox.own / "current")).endswith(second) and (sandbox.hooks / "network").exists()


def test_a_missing_or_unreadable_file_is_one_line_never_a_traceback(sandbox, tmp_path):
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok", xpath="/domain/devices/hostdev")])
    not_xml = tmp_path / "notes.txt"
    not_xml.write_text("not XML at all\n")
    for args, named in ((["list", "qemu", "g", "prepare", "--xml", "missing.xml"], "missing.xml"),
                        (["simulate", "qemu", "g", "prepare", "begin", "--xml", "/nope.xml"], "/nope.xml"),
                        (["list", "qemu", "g", "prepare", "--xml", str(tmp_path)], str(tmp_path)),
                        (["list", "qemu", "g", "prepare", "--xml", str(not_xml), "--json"], "not well-formed"),
                        (["simulate", "qemu", "g", "prepare", "begin", "--xml", str(tmp_path), "--json"], str(tmp_path)),
                        (["metrics", "--textfile-dir", str(tmp_path), "--state", str(sandbox.config) + "/state"],
                         "config.json")):
        code, out, err = cli3(sandbox, *args)
        assert code != 0 and out == "", (args, out)
        assert err.count("\n") == 1 and named in err and "Traceback" not in err, (args, err)
    assert sandbox.order() == [] and sandbox.records() == [], "the hook never ran"
    config = sandbox.config.resolve()
    config.write_bytes(b"\xff\xfe not a config")
    for args in (["list"], ["list", "--json"], ["log"], ["simulate", "--dry-run", "qemu", "g", "start", "begin"]):
        code, out, err = cli3(sandbox, *args)
        assert code != 0 and out == "" and err.count("\n") == 1 and str(config) in err, (args, err)
    code, out, err = cli3(sandbox, "validate", "--json")
    assert code == 1 and err == "" and "not UTF-8" in json.loads(out)["problems"][0]


def test_unknown_operations_are_refused_with_the_valid_ones_named_as_the_role_does(sandbox):
    from ansible_collections.virthooks.libvirt.plugins.module_utils.install import build_config
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import ConfigError
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec")])
    with pytest.raises(ConfigError) as role:
        build_config([rule("rec", operations=["prep"])])
    role_valid = re.search(r"\(valid: ([^)]*?)(, or '\*')?\)", str(role.value)).group(1)
    for args in (["list", "qemu", "win10", "prep"], ["simulate", "qemu", "win10", "prep", "begin"],
                 ["simulate", "--dry-run", "qemu", "win10", "prep", "begin"]):
        code, out, err = cli3(sandbox, *args)
        assert code == 2 and out == "" and err.count("\n") == 1, (args, out, err)
        assert "unknown operation 'prep' for driver 'qemu' (valid: %s)" % role_valid in err
    code, out, err = cli3(sandbox, "list", "qemu", "win10", "prepare", "middle")
    assert code == 2 and "unknown sub-operation 'middle' (valid: begin, end, -)" in err
    code, out, err = cli3(sandbox, "list", "network", "default", "plugged")     # an old spelling libvirt used
    assert code == 0, err
    assert sandbox.order() == [], "nothing ran"


def test_simulate_without_xml_gives_a_minimal_domain_of_that_name_and_says_so(sandbox):
    sandbox.recorder("rec")
    sandbox.recorder("net")
    sandbox.deploy([rule("rec", operations=["prepare"], xpath="/domain/name"),
                    rule("net", driver="network")], drivers=("qemu", "network"))
    code, out, err = cli3(sandbox, "simulate", "qemu", "win10", "prepare", "begin")
    assert code == 0, out + err
    assert "minimal document" in err and err.count("\n") == 1
    stdin = (sandbox.seen / "rec.stdin").read_bytes()
    assert stdin == b"<domain type='kvm'><name>win10</name></domain>\n"
    code, out, err = cli3(sandbox, "simulate", "network", "a<b", "start", "begin")
    assert code == 0 and "minimal document" in err
    assert (sandbox.seen / "net.stdin").read_bytes() == b"<hookData><network><name>a&lt;b</name></network></hookData>\n"
    # stdin an open pipe nothing is written to (inherited from ssh, cron, a CI runner): not waited for
    idle = subprocess.Popen([str(sandbox.own / "virthooks"), "simulate", "qemu", "idle", "prepare", "begin"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        code = idle.wait(timeout=30)        # stdin stays open and empty all along (the output fits the pipes)
        err = idle.stderr.read()
    finally:
        idle.kill()
        idle.communicate()
    assert code == 0 and b"minimal document" in err
    assert (sandbox.seen / "rec.stdin").read_bytes() == b"<domain type='kvm'><name>idle</name></domain>\n"
    given = b"<domain type='kvm'><name>other</name></domain>"
    code, out, err = cli3(sandbox, "simulate", "qemu", "win10", "prepare", "begin", stdin=given)
    assert code == 0 and err == "" and (sandbox.seen / "rec.stdin").read_bytes() == given


def test_list_columns_line_up_at_any_name_length(sandbox):
    for name in ("a", GUEST40):
        sandbox.script(name, "exit 0\n")
    sandbox.deploy([rule("a", objects=[GUEST40], operations=["prepare"]),
                    rule(GUEST40, operations=["prepare"], order=60)])
    code, out, err = cli3(sandbox, "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2, out
    for field in ("qemu", "ops=", "subops=", "order="):
        assert len({line.index(field) for line in lines}) == 1, (field, out)
    code, out, err = cli3(sandbox, "list", "qemu", GUEST40, "prepare")
    steps = [line for line in out.splitlines() if "/scripts/" in line]
    assert code == 0 and len(steps) == 2, out
    for field in ("/", "timeout="):
        assert len({line.index(field) for line in steps}) == 1, (field, out)


def test_generations_columns_line_up_at_any_name_length(sandbox):
    from ansible_collections.virthooks.libvirt.plugins.module_utils import install
    sandbox.script("ok", "exit 0\n")
    for deployer in ("me", "ops@" + GUEST40):
        installer = install.RuntimeInstaller(str(sandbox.hooks), sandbox.python, -1, -1)
        installer.apply(installer.plan(("qemu",), [rule("ok", order=len(deployer))], log={"file": str(sandbox.log)},
                                       scripts=sandbox.staged(), deployer=deployer))
    code, out, err = cli3(sandbox, "generations")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3, out
    header = lines[0]
    for title in ("time", "deployer", "digest", "rules", "entry points"):
        column = header.index(title)
        assert all(line[column - 1] == " " and line[column] != " " for line in lines[1:]), (title, out)
