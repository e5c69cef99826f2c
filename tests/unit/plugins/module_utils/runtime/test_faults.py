"""Fault injection: what the runtime does when scripts, the host or the operator misbehave.

Every test drives the real entry point with real processes, real files and real mounts, and
names the point of issue 9 it proves. Root is needed (chown, mount); the suite runs as root.
"""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import dispatch

from tests.support.host import NOBODY, user_owned_shell
from tests.support.probe import at_end

from ..conftest import LIBVIRT_ENV, pid_alive

DOMAIN = b"<domain type='kvm'><name>g</name><devices><disk type='file'/></devices></domain>"
PY = "/usr/bin/python3"


def rule(name, **kw):
    return dict({"name": name, "script": "scripts/" + name}, **kw)


def wait_for(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError("%s was never written" % path)


def pids_in(path: Path) -> list:
    return [int(p) for p in path.read_text().split()]


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- 1. an error of ours never kills a running guest ----------------------------------------

@pytest.mark.parametrize("operation", ["reconnect", "attach"])
def test_missing_config_never_fails_reconnect_or_attach(sandbox, operation):
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok")])
    sandbox.config.unlink()
    fired = sandbox.fire("qemu", "g", operation, "begin", stdin=DOMAIN)
    assert fired.rc == 0, fired


@pytest.mark.parametrize("text", ['{"version": 1,', "{ this is not json", "\x00\xff" * 10])
def test_corrupt_config_never_fails_reconnect(sandbox, text):
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok")])
    (sandbox.own / "config.json").write_text(text, errors="surrogateescape")
    fired = sandbox.fire("qemu", "g", "reconnect", "begin", stdin=DOMAIN)
    assert fired.rc == 0, fired
    assert "Traceback" not in fired.stderr


def fire_with_unreadable_stdin(sandbox, operation):
    """An internal fault for real: stdin that cannot be read (open write-only) when it must be spooled."""
    fd = os.open(str(sandbox.root / "write-only"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        proc = subprocess.run([str(sandbox.hooks / "qemu"), "g", operation, "begin", "-"], stdin=fd,
                              capture_output=True, env=LIBVIRT_ENV, timeout=60, check=False)
    finally:
        os.close(fd)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def test_internal_error_exits_0_on_reconnect_and_is_logged(sandbox):
    sandbox.script("a", "exit 0\n")
    sandbox.script("b", "exit 0\n")
    sandbox.deploy([rule("a"), rule("b")])
    rc, stderr = fire_with_unreadable_stdin(sandbox, "reconnect")
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    record = sandbox.records()[-1]
    assert record["result"] == "error" and record["exit"] == 0
    assert "internal error" in record["error"] and "kill the running guest" in record["error"]


def test_internal_error_fails_prepare_with_one_clear_line(sandbox):
    sandbox.script("a", "exit 0\n")
    sandbox.script("b", "exit 0\n")
    sandbox.deploy([rule("a"), rule("b")])
    rc, stderr = fire_with_unreadable_stdin(sandbox, "prepare")
    assert rc == 1
    assert len(stderr.splitlines()) == 1 and "internal error" in stderr, stderr
    assert "Traceback" not in stderr


def test_user_script_failing_reconnect_still_fails_it(sandbox):
    sandbox.script("strict", "exit 4\n")
    sandbox.deploy([rule("strict", operations=["reconnect"])])
    fired = sandbox.fire("qemu", "g", "reconnect", "begin", stdin=DOMAIN)
    assert fired.rc == 1 and "script 'strict' failed with exit status 4" in fired.stderr


def test_validate_warns_about_rules_that_can_fail_reconnect(sandbox):
    from .test_cli import cli
    for name in ("strict", "relaxed", "starts-only"):
        sandbox.script(name, "exit 0\n")
    sandbox.deploy([rule("strict"), rule("relaxed", on_failure="ignore"),
                    rule("starts-only", operations=["prepare", "start"])])
    code, out = cli(sandbox, "validate")
    assert code == 0, out
    warnings = [line for line in out.splitlines() if line.startswith("WARN")]
    assert len(warnings) == 1 and "'strict'" in warnings[0] and "kills the running guest" in warnings[0]


# --- 2. every wait is bounded, every process of a timed-out script dies --------------------

def test_timeout_kills_a_script_that_joined_another_process_group(sandbox):
    sandbox.script("escape", "import os, time\nopen(%r, 'w').write(str(os.getpid()))\n"
                   "os.setpgid(0, os.getpgid(os.getppid()))\ntime.sleep(600)\n" % str(sandbox.seen / "pid"),
                   shebang="#!" + PY)
    sandbox.deploy([rule("escape", timeout=0.5)], kill_grace=0.5)
    began = time.monotonic()
    try:
        fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN, timeout=30)
    finally:
        pid = int(wait_for(sandbox.seen / "pid"))
        alive = pid_alive(pid)
        kill_all([pid])
    assert time.monotonic() - began < 15
    assert fired.rc == 1 and "timed out" in fired.stderr
    assert not alive


@pytest.mark.parametrize("how", [
    "setsid sleep 600 &\necho $! >> {pids}\n",
    "set -m\nsleep 600 &\necho $! >> {pids}\n",
    "(setsid sh -c 'sleep 600 & echo $! >> {pids}; wait' &)\n",
    "setsid sh -c 'trap \"\" TERM; sleep 600 & echo $! >> {pids}; wait' &\necho $! >> {pids}\n",
], ids=["setsid", "set-m", "double-fork", "setsid-ignores-term"])
def test_timeout_kills_every_descendant_even_outside_the_group(sandbox, how):
    pids = sandbox.seen / "pids"
    # bash: dash turns job control off without a terminal, bash puts each job in its own group.
    sandbox.script("spawner", "echo $$ >> %s\n%ssleep 600\n" % (pids, how.format(pids=pids)), shebang="#!/bin/bash")
    sandbox.deploy([rule("spawner", timeout=1)], kill_grace=0.5)
    try:
        fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN, timeout=30)
        found = pids_in(pids)
        time.sleep(0.2)
        alive = [p for p in found if pid_alive(p)]
    finally:
        kill_all(pids_in(pids) if pids.exists() else [])
    assert fired.rc == 1 and "timed out" in fired.stderr
    assert len(found) >= 2 and alive == [], (found, alive)


def test_detached_helper_of_a_script_that_exits_keeps_running(sandbox):
    pids = sandbox.seen / "pids"
    sandbox.script("starter", "setsid sleep 30 </dev/null >/dev/null 2>&1 &\necho $! > %s\nexit 0\n" % pids)
    sandbox.deploy([rule("starter")])
    try:
        fired = sandbox.fire("qemu", "g", "started", "begin", stdin=DOMAIN)
        helper = pids_in(pids)[0]
        assert fired.rc == 0, fired
        time.sleep(0.3)
        assert pid_alive(helper)
    finally:
        kill_all(pids_in(pids) if pids.exists() else [])


# --- 3. root runs only what root alone controls --------------------------------------------

def make_foreign_bin(tmp_path: Path, sandbox) -> Path:
    """A root-owned directory of root-owned executables (a stand-in for /usr/sbin)."""
    bin_dir = tmp_path / "rootbin"
    bin_dir.mkdir()
    target = bin_dir / "poweroff"
    target.write_text("#!/bin/sh\necho ran > %s/poweroff-ran\n" % sandbox.seen)
    target.chmod(0o755)
    return bin_dir


@pytest.mark.root
def test_user_owned_directory_in_the_guest_tree_cannot_point_root_at_other_programs(sandbox, tmp_path):
    sandbox.deploy([], tree={"enabled": True})
    bin_dir = make_foreign_bin(tmp_path, sandbox)
    guest = sandbox.hooks / "qemu.d" / "g"
    (guest / "prepare").mkdir(parents=True)
    os.chown(guest, NOBODY, NOBODY)
    os.chown(guest / "prepare", NOBODY, NOBODY)
    # What the owner of qemu.d/g can do without root: point begin/ at any root-owned directory.
    (guest / "prepare" / "begin").symlink_to(bin_dir)
    os.lchown(guest / "prepare" / "begin", NOBODY, NOBODY)
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert not (sandbox.seen / "poweroff-ran").exists()
    assert fired.rc == 1 and "refused" in fired.stderr and "uid %d" % NOBODY in fired.stderr, fired


@pytest.mark.root
def test_directory_owned_by_a_user_higher_up_the_path_is_refused(sandbox, tmp_path):
    sandbox.deploy([], tree={"enabled": True})
    begin = sandbox.hooks / "qemu.d" / "g" / "prepare" / "begin"
    begin.mkdir(parents=True)
    script = begin / "10-run"
    script.write_text("#!/bin/sh\necho ran > %s/ran\n" % sandbox.seen)
    script.chmod(0o755)
    os.chown(sandbox.hooks / "qemu.d" / "g", NOBODY, NOBODY)   # the user can rename prepare/ away
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert not (sandbox.seen / "ran").exists()
    assert fired.rc == 1 and "qemu.d/g is owned by uid %d" % NOBODY in fired.stderr, fired


@pytest.mark.root
def test_script_reached_through_a_symlink_is_checked_where_it_really_is(sandbox, tmp_path):
    elsewhere = tmp_path / "user-dir"
    elsewhere.mkdir()
    real = elsewhere / "payload"
    real.write_text("#!/bin/sh\necho ran > %s/ran\n" % sandbox.seen)
    real.chmod(0o755)
    os.chown(elsewhere, NOBODY, NOBODY)
    links = tmp_path / "links"           # root's, like the hooks dir: only the target is not
    links.mkdir()
    (links / "linked").symlink_to(real)
    sandbox.deploy([rule("linked", script=str(links / "linked"))])
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert not (sandbox.seen / "ran").exists()
    assert fired.rc == 1 and "user-dir is owned by uid %d" % NOBODY in fired.stderr, fired


@pytest.mark.root
def test_symlink_owned_by_a_user_is_refused(sandbox, tmp_path):
    real = sandbox.scripts / "real"
    real.write_text("#!/bin/sh\necho ran > %s/ran\n" % sandbox.seen)
    real.chmod(0o755)
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    link = sticky / "hook"
    link.symlink_to(real)
    os.lchown(link, NOBODY, NOBODY)
    sandbox.deploy([rule("via-link", script=str(link))])
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert not (sandbox.seen / "ran").exists()
    assert fired.rc == 1 and "symlink" in fired.stderr and "uid %d" % NOBODY in fired.stderr, fired


@pytest.mark.root
def test_interpreter_a_user_can_replace_is_refused(sandbox, tmp_path):
    shell = user_owned_shell(tmp_path)
    sandbox.script("s", "echo ran > %s/ran\n" % sandbox.seen, shebang="#!%s" % shell)
    sandbox.deploy([rule("s")])
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert not (sandbox.seen / "ran").exists()
    assert fired.rc == 1 and "interpreter" in fired.stderr and "uid %d" % NOBODY in fired.stderr, fired


def test_trusted_symlinked_script_still_runs_with_its_path_as_argv0(sandbox, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = bin_dir / "real-impl"
    real.write_text('#!/bin/sh\necho "$0" > %s/argv0\n' % sandbox.seen)
    real.chmod(0o755)
    (bin_dir / "alias").symlink_to("real-impl")
    sandbox.deploy([rule("alias", script=str(bin_dir / "alias"))])
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert fired.rc == 0, fired
    assert (sandbox.seen / "argv0").read_text().strip() == str(bin_dir / "alias")


# --- 5. a full temporary directory ---------------------------------------------------------

FILL_TMP = """
set -e
mount --bind "$VH_ROOT" "$VH_KEEP"
for d in /tmp /var/tmp /dev/shm; do
  mount -t tmpfs -o size=64k tmpfs "$d"
  [ "$d" != /tmp ] || { mkdir -p "$VH_ROOT"; mount --bind "$VH_KEEP" "$VH_ROOT"; }
  head -c 1048576 /dev/zero > "$d/fill" 2>/dev/null || true
done
TMPDIR=/tmp exec "$0" "$@"
"""


def fire_in_full_tmp(sandbox, obj, op, sub, stdin: bytes):
    """Fire an event in a private mount namespace whose /tmp, /var/tmp and /dev/shm are full
    tmpfs mounts (the sandbox, which lives under /tmp, is bound back in first)."""
    keep = Path(tempfile.mkdtemp(prefix="vh-faults-", dir="/run"))
    try:
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", FILL_TMP,
                               str(sandbox.hooks / "qemu"), obj, op, sub, "-"],
                              input=stdin, capture_output=True, timeout=60, check=False,
                              env=dict(LIBVIRT_ENV, VH_ROOT=str(sandbox.root), VH_KEEP=str(keep)))
    finally:
        keep.rmdir()
    return proc


@pytest.mark.root
def test_full_temp_dirs_do_not_stop_scripts_or_xml(sandbox):
    sandbox.recorder("one")
    sandbox.script("two", "cat > %s/two.stdin\n" % sandbox.seen)
    sandbox.script("edit", "sed 's/disk/cdrom/'\n")
    sandbox.deploy([rule("one", operations=["prepare"]), rule("two", operations=["prepare"]),
                    rule("edit", operations=["restore"])])
    proc = fire_in_full_tmp(sandbox, "g", "prepare", "begin", DOMAIN)
    assert proc.returncode == 0, proc.stderr
    assert (sandbox.seen / "one.stdin").read_bytes() == DOMAIN
    assert (sandbox.seen / "two.stdin").read_bytes() == DOMAIN
    proc = fire_in_full_tmp(sandbox, "g", "restore", "begin", DOMAIN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == DOMAIN.replace(b"disk", b"cdrom")
    assert [r["result"] for r in sandbox.records()] == ["ok", "ok"]


@pytest.mark.root
def test_spool_falls_back_to_the_next_directory_when_one_is_full(tmp_path, monkeypatch):
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(full)], check=True)
    try:
        subprocess.run("head -c 65536 /dev/zero > %s/fill" % full, shell=True, check=False)
        spare = tmp_path / "spare"
        spare.mkdir()
        monkeypatch.delattr(dispatch.os, "memfd_create")     # dispatch's os is runtime.hostos
        monkeypatch.setitem(dispatch.os.environ, "TMPDIR", str(full))
        monkeypatch.setattr(dispatch, "TMP_DIRS", (str(spare),))
        fd = dispatch.anon_file(b"x" * 100000)
        try:
            assert dispatch.read_fd(fd) == b"x" * 100000
            assert os.readlink("/proc/self/fd/%d" % fd).startswith(str(spare))
        finally:
            os.close(fd)
        monkeypatch.setattr(dispatch, "TMP_DIRS", ())
        with pytest.raises(OSError, match="no memory or temporary directory"):
            dispatch.anon_file(b"x" * 100000)
    finally:
        subprocess.run(["umount", str(full)], check=True)


# --- 6. children do not share file offsets with the dispatcher -----------------------------

def test_background_child_printing_later_does_not_corrupt_the_xml(sandbox):
    sandbox.script("rewrite", "cat >/dev/null\n(sleep 0.3; echo CORRUPT) &\necho '<domain>new</domain>'\n")
    sandbox.script("slow", "cat >/dev/null\nsleep 0.8\n")
    sandbox.deploy([rule("rewrite", order=1), rule("slow", order=2)])
    fired = sandbox.fire("qemu", "g", "migrate", "begin", stdin=DOMAIN)
    assert fired.rc == 0, fired
    assert fired.stdout == b"<domain>new</domain>\n"


def test_background_reader_of_one_script_does_not_drain_the_next_scripts_stdin(sandbox):
    # sh gives an asynchronous list /dev/null as stdin unless it is redirected explicitly.
    sandbox.script("drainer", "exec 3<&0\n(sleep 0.2; cat <&3 >/dev/null) &\nexit 0\n")
    sandbox.script("reader", "sleep 0.6\ncat > %s/reader.stdin\n" % sandbox.seen)
    sandbox.deploy([rule("drainer", order=1), rule("reader", order=2)])
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert fired.rc == 0, fired
    assert (sandbox.seen / "reader.stdin").read_bytes() == DOMAIN


# --- 7. XPath on chained events sees the XML the script will get ---------------------------

def test_xpath_on_a_chained_event_sees_the_previous_scripts_xml(sandbox):
    sandbox.script("add", "sed 's|</devices>|<watchdog/></devices>|'\n")
    sandbox.script("drop", "sed 's|<disk[^>]*/>||'\n")
    sandbox.recorder("if-watchdog")
    sandbox.recorder("if-disk")
    sandbox.deploy([rule("add", order=1), rule("drop", order=2),
                    rule("if-watchdog", order=3, xpath="/domain/devices/watchdog"),
                    rule("if-disk", order=4, xpath="/domain/devices/disk")])
    fired = sandbox.fire("qemu", "g", "restore", "begin", stdin=DOMAIN)
    assert fired.rc == 0, fired
    assert [line.split()[0] for line in sandbox.order()] == ["if-watchdog"]
    statuses = {s["name"]: s["status"] for s in sandbox.records()[-1]["scripts"]}
    assert statuses["if-disk"] == "skipped"


# --- 8. signals to the dispatcher ----------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_the_dispatcher_stops_the_script_and_its_descendants_and_logs(sandbox, sig):
    pids = sandbox.seen / "pids"
    sandbox.script("long", "echo $$ >> %s\nsetsid sleep 600 &\necho $! >> %s\nsleep 600\n" % (pids, pids))
    sandbox.deploy([rule("long", timeout=300)], kill_grace=0.5)
    proc = subprocess.Popen([str(sandbox.hooks / "qemu"), "g", "prepare", "begin", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=LIBVIRT_ENV)
    try:
        proc.stdin.write(DOMAIN)
        proc.stdin.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (pids.exists() and len(pids.read_text().split()) == 2):
            time.sleep(0.02)
        proc.send_signal(sig)
        proc.wait(timeout=20)
        stderr = proc.stderr.read().decode()
        found = pids_in(pids)
        time.sleep(0.2)
        alive = [p for p in found if pid_alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(pids_in(pids) if pids.exists() else [])
    assert alive == [], found
    assert proc.returncode == 1 and "interrupted by signal %d" % sig in stderr, stderr
    record = sandbox.records()[-1]
    assert record["result"] == "interrupted"
    assert record["scripts"][0]["name"] == "long" and record["scripts"][0]["status"] == "killed"


def test_signal_during_reconnect_exits_0(sandbox):
    marker = sandbox.seen / "started"
    sandbox.script("long", "echo $$ > %s\nsleep 600\n" % marker)
    sandbox.deploy([rule("long", operations=["reconnect"], timeout=300, on_failure="ignore")], kill_grace=0.5)
    proc = subprocess.Popen([str(sandbox.hooks / "qemu"), "g", "reconnect", "begin", "-"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=LIBVIRT_ENV)
    try:
        script = int(wait_for(marker))
        proc.terminate()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert not pid_alive(script)


# --- 9. output is bounded ------------------------------------------------------------------

def test_300_mb_of_stdout_takes_neither_300_mb_nor_the_log(sandbox):
    pidfile = sandbox.seen / "pid"
    sandbox.script("chatty", "echo $$ > %s\necho START\nhead -c 300000000 /dev/zero | tr '\\0' x\necho\necho END\n"
                   % pidfile)
    sandbox.deploy([rule("chatty", timeout=120)], log={"output_bytes": 1000})
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                pid = int(pidfile.read_text())
                st = os.stat("/proc/%d/fd/1" % pid)
                peak[0] = max(peak[0], st.st_blocks * 512)
            except (OSError, ValueError):
                pass
            time.sleep(0.002)

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN, timeout=120)
    finally:
        done.set()
        watcher.join()
    assert fired.rc == 0, fired
    assert peak[0] < 100 * 1024 * 1024, "stdout took %d bytes of memory or disk" % peak[0]
    stdout = sandbox.records()[-1]["scripts"][0]["stdout"]
    assert stdout.startswith("START\nxxx") and stdout.rstrip().endswith("xxx\nEND")
    assert "bytes left out" in stdout and len(stdout) < 3000


def test_xml_output_past_the_limit_fails_the_script_clearly(sandbox):
    sandbox.script("huge", "cat >/dev/null\nhead -c %d /dev/zero | tr '\\0' x\n" % (dispatch.XML_OUT_MAX + 4096))
    sandbox.deploy([rule("huge", timeout=120)])
    fired = sandbox.fire("qemu", "g", "restore", "begin", stdin=DOMAIN, timeout=120)
    assert fired.rc == 1 and fired.stdout == b""
    assert "more than 64 MiB on stdout" in fired.stderr


# --- 12. the line libvirt shows carries no raw control characters --------------------------

def test_error_line_escapes_control_characters_from_names_and_output(sandbox):
    sandbox.script("bad", "printf 'boom\\033[2J\\rgone\\n' >&2\nexit 1\n")
    sandbox.deploy([rule("bad")])
    fired = sandbox.fire("qemu", "vm\x1b]0;owned\x07", "prepare", "begin", stdin=DOMAIN)
    assert fired.rc == 1
    raw = fired.stderr.encode()
    assert raw.count(b"\n") == 1 and raw.endswith(b"\n")
    assert not any(b < 0x20 and b != 0x0a or b == 0x7f for b in raw), raw
    assert "\\x1b" in fired.stderr and "boom" in fired.stderr


# --- 1, continued: Python or the runtime broken before our code runs -----------------------

def break_runtime(sandbox) -> None:
    current = sandbox.own / "lib" / "current"
    current.unlink()
    current.symlink_to("does-not-exist")


def test_runtime_that_cannot_be_imported_never_fails_reconnect(sandbox):
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok")])
    break_runtime(sandbox)
    assert sandbox.fire("qemu", "g", "reconnect", "begin", stdin=DOMAIN).rc == 0
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert fired.rc == 1
    assert fired.stderr.startswith("virthooks: cannot load the runtime from") and fired.stderr.count("\n") == 1, fired


def test_missing_python_never_fails_reconnect_and_names_itself_elsewhere(sandbox, tmp_path):
    python = tmp_path / "python3"
    python.symlink_to(dispatch_python(sandbox))
    sandbox.python = str(python)
    sandbox.script("ok", "exit 0\n")
    sandbox.deploy([rule("ok")])
    python.unlink()
    assert sandbox.fire("qemu", "g", "reconnect", "begin", stdin=DOMAIN).rc == 0
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert fired.rc == 1 and "%s is missing" % python in fired.stderr, fired


def dispatch_python(sandbox) -> str:
    return os.path.realpath(sandbox.python)


def test_reconnect_hook_stopped_by_a_signal_stops_its_scripts(sandbox):
    marker = sandbox.seen / "started"
    sandbox.script("long", "echo $$ > %s\nsleep 600\n" % marker)
    sandbox.deploy([rule("long", operations=["reconnect"], timeout=300)], kill_grace=0.5)
    proc = subprocess.Popen([str(sandbox.hooks / "qemu"), "g", "reconnect", "begin", "-"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=LIBVIRT_ENV)
    try:
        script = int(wait_for(marker))
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert not pid_alive(script)
    assert sandbox.records()[-1]["result"] == "interrupted"


# --- what root reads and imports on every call: config.json and the runtime (issue 19, item 7) ----

def validate(box):
    proc = subprocess.run([str(box.own / "virthooks"), "validate"], capture_output=True, text=True, timeout=60,
                          check=False)
    return proc.returncode, proc.stdout + proc.stderr


def assert_refused_everywhere(box, needle: str) -> None:
    """prepare fails with one line naming the fault; reconnect and stopped exit 0 and say nothing on
    stderr; no script ran; validate reports it."""
    fired = box.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert fired.rc == 1 and fired.stderr.count("\n") == 1 and needle in fired.stderr, fired
    for operation, sub in (("reconnect", "begin"), ("stopped", "end")):
        fired = box.fire("qemu", "g", operation, sub, stdin=DOMAIN)
        assert (fired.rc, fired.stderr) == (0, ""), (operation, fired)
    assert box.order() == []
    code, out = validate(box)
    assert code == 1 and needle in out and "Traceback" not in out, out


@pytest.fixture
def deployed(sandbox):
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec", operations=["prepare", "reconnect", "stopped"])])
    code, out = validate(sandbox)
    assert code == 0, out
    return sandbox


def test_a_config_json_others_can_write_is_refused(deployed):
    config = deployed.current.resolve() / "config.json"
    config.chmod(0o666)
    assert_refused_everywhere(deployed, "%s is writable by group or others (mode 0666)" % config)


def test_a_generation_directory_others_can_write_is_refused(deployed):
    generation = deployed.current.resolve()
    generation.chmod(0o777)
    assert_refused_everywhere(deployed, "directory %s is writable by group or others (mode 0777)" % generation)


@pytest.mark.root
def test_a_config_json_owned_by_a_user_is_refused(deployed):
    config = deployed.current.resolve() / "config.json"
    os.chown(config, NOBODY, NOBODY)
    assert_refused_everywhere(deployed, "%s is owned by uid %d, not root" % (config, NOBODY))


def package(box) -> Path:
    return (box.own / "lib" / "current" / "virthooks_runtime").resolve()


def test_a_runtime_module_others_can_write_is_never_imported(deployed, tmp_path):
    module = package(deployed) / "dispatch.py"
    with module.open("a") as f:       # what a user who can write it would add: code root runs
        f.write("\nopen(%r, 'w').close()\n" % str(tmp_path / "imported"))
    module.chmod(0o666)
    for stale in (package(deployed) / "__pycache__").glob("dispatch.*"):
        stale.unlink()
    assert_refused_everywhere(deployed, "%s is writable by group or others (mode 0666)" % module)
    assert not (tmp_path / "imported").exists()


def test_a_runtime_directory_others_can_write_is_refused(deployed):
    lib = package(deployed).parent
    lib.chmod(0o777)
    assert_refused_everywhere(deployed, "directory %s is writable by group or others (mode 0777)" % lib)


@pytest.mark.root
def test_a_stray_module_a_user_owns_in_the_runtime_cache_is_refused(deployed):
    cache = package(deployed) / "__pycache__"
    cache.mkdir(exist_ok=True)
    stray = cache / "proctree.cpython-311.pyc"     # imported on a timeout: the bytecode root would run
    stray.write_bytes(b"")
    os.chown(stray, NOBODY, NOBODY)
    assert_refused_everywhere(deployed, "%s is owned by uid %d, not root" % (stray, NOBODY))


# The entry point checks only the files a dispatcher call can import (entrypoint.DISPATCH_MODULES),
# from a list it carries, compiling its failure path only on failure (issue 19: the dispatch benchmark).
# Each case below is refused by the hook and reported by validate.

@pytest.mark.root
def test_a_runtime_module_a_user_owns_is_refused(deployed):
    module = package(deployed) / "rules.py"
    os.chown(module, NOBODY, NOBODY)
    assert_refused_everywhere(deployed, "%s is owned by uid %d, not root" % (module, NOBODY))


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775])
def test_the_runtime_package_directory_open_to_others_is_refused_even_sticky(deployed, mode):
    """Sticky is enough on the way (/tmp), never where modules are found: a new one could appear."""
    pkg = package(deployed)
    pkg.chmod(mode)
    assert_refused_everywhere(deployed, "directory %s is writable by group or others (mode %04o)" % (pkg, mode))


@pytest.mark.parametrize("mode", [0o777, 0o1777])
def test_the_runtime_cache_directory_open_to_others_is_refused_even_sticky(deployed, mode):
    cache = package(deployed) / "__pycache__"
    cache.mkdir(exist_ok=True)
    cache.chmod(mode)
    assert_refused_everywhere(deployed, "directory %s is writable by group or others (mode %04o)" % (cache, mode))


@pytest.mark.root
def test_a_stray_extension_module_a_user_owns_beside_a_dispatcher_module_is_refused(deployed):
    stray = package(deployed) / "events.abi3.so"       # Python would import it before events.py
    stray.write_bytes(b"")
    os.chown(stray, NOBODY, NOBODY)
    assert_refused_everywhere(deployed, "%s is owned by uid %d, not root" % (stray, NOBODY))


def test_a_directory_in_place_of_a_dispatcher_module_is_refused(deployed):
    shadow = package(deployed) / "minijson"            # a package named like a module is imported first
    shadow.mkdir()
    assert_refused_everywhere(deployed, "%s is not a regular file" % shadow)


def test_the_runtime_reached_through_a_directory_others_can_write_is_refused(deployed):
    lib = deployed.own / "lib"                        # on the way to lib/current -> <digest>
    lib.chmod(0o757)
    assert_refused_everywhere(deployed, "directory %s is writable by group or others (mode 0757)" % lib)


@pytest.mark.root
def test_a_module_no_hook_call_imports_still_stops_the_cli(deployed, tmp_path):
    """The CLI's own modules are not on a hook call's path: a hook still runs. The CLI (root runs it)
    checks what it imports as the entry points do, and refuses with one line naming the file, in the
    directory it was started in; it used to import whatever it found."""
    stray = package(deployed) / "importers.abi3.so"   # Python would import it before importers.py
    stray.write_bytes(b"")
    os.chown(stray, NOBODY, NOBODY)
    fired = deployed.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert (fired.rc, fired.stderr) == (0, ""), fired
    assert deployed.order() == ["rec g prepare begin -"]
    code, out = validate(deployed)
    assert code == 1 and out.count("\n") == 1 and "Traceback" not in out, out
    assert out.startswith("virthooks: refusing to run: the runtime in %s/lib/current cannot be trusted: "
                          "%s is owned by uid %d, not root" % (deployed.own, stray, NOBODY)), out
    stray.unlink()
    (tmp_path / "dom.xml").write_bytes(DOMAIN)
    proc = subprocess.run([str(deployed.own / "virthooks"), "list", "qemu", "g", "prepare", "--xml", "dom.xml"],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path), check=False)
    assert proc.returncode == 0 and "rec" in proc.stdout, proc        # dom.xml read relative to where it ran


def runtime_imports(*starts: str) -> set:
    """The runtime modules the given modules (paths under runtime/ without .py: ``commands/util``) import,
    directly or not, lazy imports included."""
    import ast
    runtime = Path(dispatch.__file__).parent
    seen, todo = set(), list(starts)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        package = name.split("/")[:-1]
        for node in ast.walk(ast.parse((runtime / (name + ".py")).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - node.level + 1]
                names = [node.module] if node.module else [a.name for a in node.names]
                found = ["/".join(base + n.split(".")) for n in names]
                todo.extend(n for n in found if (runtime / (n + ".py")).exists())
    return seen


def top_level(modules: set) -> set:
    """What the launcher's check names: the top-level modules, the package's __init__ and __pycache__."""
    return {m for m in modules if "/" not in m} | {"__init__", "__pycache__"}


def test_the_launchers_check_every_runtime_module_they_can_import():
    """DISPATCH_MODULES is the closure of dispatch.py's imports; CLI_MODULES that of cli.py's and of its
    subcommands' (commands/, imported by name once cli.main checked that folder)."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import cli, entrypoint
    assert set(entrypoint.DISPATCH_MODULES) == top_level(runtime_imports("dispatch"))
    assert not [m for m in runtime_imports("dispatch") if "/" in m]
    commands = ["commands/" + module for _name, module in cli.COMMANDS]
    assert set(entrypoint.CLI_MODULES) == top_level(runtime_imports("cli", *commands))


def module_level_imports(name: str) -> set:
    """The runtime modules a module imports when it is imported (not those its functions import)."""
    import ast
    tree = ast.parse((Path(dispatch.__file__).parent / (name + ".py")).read_text())
    found = set()
    for node in tree.body:
        for sub in ast.walk(node) if isinstance(node, (ast.Try, ast.If)) else [node]:
            if isinstance(sub, ast.ImportFrom) and sub.level == 1:
                found.update([sub.module] if sub.module else [a.name for a in sub.names])
    return found


def test_the_preloaded_modules_come_each_after_what_it_imports_and_are_what_every_call_imports():
    """The bootstrap executes PRELOADED in order, as modules of the package: a module must come after those it
    imports at module level, and the list is what a call imports (dispatch's module-level closure, and the
    config cache that load_config reads on every call); all of it checked by the entry point first."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import entrypoint
    done = set()
    for name in entrypoint.PRELOADED:
        assert module_level_imports(name) <= done, (name, module_level_imports(name) - done)
        done.add(name)
    closure, todo = set(), ["dispatch"]
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo.extend(module_level_imports(name))
    assert set(entrypoint.PRELOADED) == closure | {"configcache"}
    assert set(entrypoint.PRELOADED) <= set(entrypoint.DISPATCH_MODULES)


PROBE = at_end("LOADED", "' '.join('%s=%s'%(n[18:],'pre' if m.__spec__.loader is None else 'import') "
               "for n,m in sorted(sys.modules.items()) if n.startswith('virthooks_runtime.'))")


def loaded_by(box) -> dict:
    """How each runtime module of a real call was loaded: 'pre' (the bootstrap, from its .pyc) or 'import'."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import entrypoint
    argv = entrypoint.dispatcher_argv(str(box.hooks), box.python, "qemu")
    argv[3] = PROBE + argv[3]
    proc = subprocess.run(argv + ["g", "prepare", "begin", "-"], input=DOMAIN, capture_output=True,
                          env=LIBVIRT_ENV, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(pair.split("=") for pair in proc.stderr.decode().split("LOADED ", 1)[1].split())


def test_a_call_loads_the_runtime_from_its_pyc_files_and_imports_the_rest_after_a_stale_one(sandbox):
    """The preload validates each .pyc as importlib does (magic, the .py's mtime and size): a .py changed since
    (a hand edit, a restore that kept old .pyc files) ends it there, the rest is imported as usual and its new
    code runs; importlib rewrites the .pyc and the next call preloads all again."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import entrypoint
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec", operations=["prepare"])])
    assert sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN).rc == 0
    assert all(loaded_by(sandbox)[name] == "pre" for name in entrypoint.PRELOADED)
    rules_py = package(sandbox) / "rules.py"
    rules_py.write_text(rules_py.read_text() + "\nEDITED = True\n")
    st = rules_py.stat()
    os.utime(rules_py, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10 ** 9))
    loaded = loaded_by(sandbox)
    at = entrypoint.PRELOADED.index("rules")
    assert [loaded[n] for n in entrypoint.PRELOADED] == ["pre"] * at + ["import"] * (len(entrypoint.PRELOADED) - at)
    assert sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN).rc == 0
    assert set(sandbox.order()) == {"rec g prepare begin -"}            # every call ran the script
    assert all(loaded_by(sandbox)[name] == "pre" for name in entrypoint.PRELOADED)
    for pyc in (package(sandbox) / "__pycache__").glob("dispatch.*.pyc"):
        pyc.unlink()                                        # missing: imported, and written again
    assert loaded_by(sandbox)["dispatch"] == "import" and loaded_by(sandbox)["dispatch"] == "pre"


# The CLI's subcommands live in commands/, a folder the installed CLI's own check (CLI_MODULES: the
# package's top-level entries) does not look into: cli.main checks it before importing any of it, as the
# library's launcher checks library/ (issue 23). validate reports the same.

def assert_the_cli_refuses(box, needle: str) -> None:
    for args in (["list"], ["--version"], ["validate"]):
        proc = subprocess.run([str(box.own / "virthooks"), *args], capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.count("\n") == 1, (args, proc)
        assert proc.stderr.startswith("virthooks: refusing to run: the runtime in %s/commands cannot be trusted: "
                                      % package(box)) and needle in proc.stderr, (args, proc)
    fired = box.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)     # no hook call imports commands/
    assert (fired.rc, fired.stderr) == (0, ""), fired


def test_a_subcommand_module_others_can_write_stops_the_cli_before_it_is_imported(deployed, tmp_path):
    module = package(deployed) / "commands" / "util.py"
    with module.open("a") as f:       # what a user who can write it would add: code root runs
        f.write("\nopen(%r, 'w').close()\n" % str(tmp_path / "imported"))
    module.chmod(0o666)
    for stale in (package(deployed) / "commands" / "__pycache__").glob("util.*"):
        stale.unlink()
    assert_the_cli_refuses(deployed, "%s is writable by group or others (mode 0666)" % module)
    assert not (tmp_path / "imported").exists()


@pytest.mark.root
def test_a_subcommand_module_a_user_owns_stops_the_cli(deployed):
    module = package(deployed) / "commands" / "list_rules.py"
    os.chown(module, NOBODY, NOBODY)
    assert_the_cli_refuses(deployed, "%s is owned by uid %d, not root" % (module, NOBODY))


@pytest.mark.root
def test_a_stray_file_a_user_owns_in_the_commands_cache_stops_the_cli(deployed):
    cache = package(deployed) / "commands" / "__pycache__"
    cache.mkdir(exist_ok=True)
    stray = cache / "simulate.cpython-311.pyc"
    stray.write_bytes(b"")
    os.chown(stray, NOBODY, NOBODY)
    assert_the_cli_refuses(deployed, "%s is owned by uid %d, not root" % (stray, NOBODY))


@pytest.mark.parametrize("sub", ["commands", "commands/__pycache__"])
def test_a_commands_directory_others_can_write_stops_the_cli_even_sticky(deployed, sub):
    folder = package(deployed) / sub
    folder.mkdir(exist_ok=True)
    folder.chmod(0o1777)
    assert_the_cli_refuses(deployed, "directory %s is writable by group or others (mode 1777)" % folder)


# The entry point carries its bootstrap compiled by the hook's Python, and its source, on its last
# lines; the short program on its command line (entrypoint.LOADER) reads them. Another Python (an
# upgrade since the deploy) cannot be installed here, so it is faked by rendering the entry point
# with another magic number, or a corrupt blob; the fallback source is replaced by a poison to prove
# which path ran.

FALLBACK = "exec(c or bytes.fromhex(s.decode()).decode())"
POISON = "exec(c or 'raise SystemExit(7)')"


def deploy_with(box, monkeypatch, loader=None, code=None):
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import entrypoint
    if loader is not None:
        assert entrypoint.LOADER.endswith(FALLBACK)
        monkeypatch.setattr(entrypoint, "LOADER", entrypoint.LOADER.replace(FALLBACK, loader))
    if code is not None:
        real = entrypoint.compiled
        monkeypatch.setattr(entrypoint, "compiled", lambda source, python: code(real(source, python)))
    box.recorder("rec")
    box.deploy([rule("rec", operations=["prepare", "reconnect"])])
    assert "marshal.loads(" in (box.hooks / "qemu").read_text()


def test_a_call_runs_the_compiled_bootstrap_not_the_source(sandbox, monkeypatch):
    deploy_with(sandbox, monkeypatch, loader=POISON)
    for operation in ("prepare", "reconnect"):
        fired = sandbox.fire("qemu", "g", operation, "begin", stdin=DOMAIN)
        assert (fired.rc, fired.stderr) == (0, ""), fired
    assert sandbox.order() == ["rec g prepare begin -", "rec g reconnect begin -"]


def test_under_a_python_with_another_magic_the_source_is_run(sandbox, monkeypatch):
    deploy_with(sandbox, monkeypatch, loader=POISON, code=lambda real: (b"\0\0\0\0", real[1]))
    assert sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN).rc == 7      # the fallback ran


@pytest.mark.parametrize("damage", [lambda real: (b"\0\0\0\0", real[1]), lambda real: (real[0], real[1][:40]),
                                    lambda real: (real[0], b"\xff" * 40)], ids=["magic", "truncated", "garbage"])
def test_the_source_does_what_the_compiled_bootstrap_does(sandbox, monkeypatch, damage):
    deploy_with(sandbox, monkeypatch, code=damage)
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert (fired.rc, fired.stderr) == (0, ""), fired
    assert sandbox.order() == ["rec g prepare begin -"]
    package(sandbox).chmod(0o777)                     # and it refuses what the compiled one refuses
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert fired.rc == 1 and "directory %s is writable by group or others" % package(sandbox) in fired.stderr


def test_the_compiled_bootstrap_is_the_same_on_every_render(tmp_path):
    """Each render compiles in a new process (its own hash seed): the same text, so a re-deploy
    changes nothing. A 'python' that is not Python gives the source alone."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import entrypoint
    texts = set()
    for _attempt in range(3):
        entrypoint._COMPILED.clear()
        texts.add(entrypoint.bootstrap("qemu", PY))
    assert len(texts) == 1 and texts.pop()[1] is not None
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho VHxxxx\n")
    fake.chmod(0o755)
    source = entrypoint.bootstrap_source("qemu")
    assert entrypoint.bootstrap("qemu", str(fake)) == entrypoint.bootstrap("qemu") == \
        entrypoint.bootstrap("qemu", str(tmp_path / "missing")) == (source, None)


def test_an_entry_point_whose_bootstrap_lines_are_gone_fails_with_one_line(sandbox):
    """LOADER reads the bootstrap from the entry point's last lines: cut off (an editor, a full disk at
    a hand copy), the call fails with one line naming the file, no traceback; on reconnect it does not
    fail the hook (libvirt would kill the running guest)."""
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec", operations=["prepare", "reconnect"])])
    entry = sandbox.hooks / "qemu"
    text = entry.read_text()
    entry.write_text(text[:text.rindex("\n#:")] + "\n")
    fired = sandbox.fire("qemu", "g", "prepare", "begin", stdin=DOMAIN)
    assert fired.rc == 1 and fired.stderr.strip().startswith(
        "virthooks: cannot read the bootstrap from %s/qemu" % sandbox.hooks), fired
    assert len(fired.stderr.strip().splitlines()) == 1 and sandbox.order() == []
    assert sandbox.fire("qemu", "g", "reconnect", "begin", stdin=DOMAIN).rc == 0
