# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dispatcher: what one libvirt hook call becomes on the host.

The entry point ``hooks/<driver>`` execs ``python3 -IS`` with this module's ``main`` for the
events its prefilter lets through. For each call the dispatcher reads config.json, picks the
scripts whose rules match (and those of the per-guest tree), runs them in order with the
argv, stdin and environment libvirt gave plus ``LIBVIRT_HOOK_*`` variables, and applies the
failure policy. It sits on every guest start, so it imports only what the call needs: no
``json``/``re``/``subprocess``/``signal``; lxml only for an XPath condition.

Contract (see README "Runtime"):
- scripts run with cwd ``/``, in their own process group; at their timeout the whole group
  gets SIGTERM, then SIGKILL after ``kill_grace`` seconds;
- their stdout and stderr go to files, never to libvirt's pipes, so a background child that
  keeps them open cannot block libvirt;
- on events where libvirt reads stdout (``migrate``/``restore begin``) scripts are chained:
  each gets the XML the previous one printed (or the original), and only the final XML is
  written out, and only if a script changed it; everywhere else our stdout stays empty;
- a failing ``on_failure: fail`` script makes the call exit 1 with one stderr line naming it;
  on events libvirt can abort, the scripts after it do not run;
- a script that is not owned by root or is writable by group/others is refused.
"""

import os
import sys
import time

from .events import has_stdin_xml, is_abortable, reads_stdout
from .layout import CONFIG_FILE, OWN_DIR
from .rules import LOG_DEFAULTS, ConfigError, load_config, needs_daemon_name, plan
from .runlog import append_line, iso_time, to_syslog

try:
    import _signal
    SIGTERM, SIGKILL = _signal.SIGTERM, _signal.SIGKILL
    _SIGDEF = tuple(getattr(_signal, n) for n in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(_signal, n))
except ImportError:  # pragma: no cover
    SIGTERM, SIGKILL, _SIGDEF = 15, 9, (13,)

CHUNK = 1 << 20
STDERR_TAIL = 300
TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


# --- files ---------------------------------------------------------------------------------

def _tmp_candidates():
    env = os.environ.get("TMPDIR")
    return ((env,) if env else ()) + TMP_DIRS


def tmpfile() -> int:
    """An anonymous read/write file (no name left behind, even if we are killed)."""
    last = None
    for directory in _tmp_candidates():
        try:
            return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except (AttributeError, OSError) as exc:
            last = exc
        try:
            path = "%s/.virthooks-%d-%d" % (directory, os.getpid(), time.monotonic_ns())
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            os.unlink(path)
            return fd
        except OSError as exc:
            last = exc
    raise OSError("no usable temporary directory (%s)" % last)


def copy_fd(src: int, dst: int) -> int:
    """Copy src (from its current offset) to dst until EOF; return the byte count."""
    total = 0
    while True:
        data = os.read(src, CHUNK)
        if not data:
            return total
        view = memoryview(data)
        while view:
            written = os.write(dst, view)
            view = view[written:]
        total += len(data)


def tail(fd: int, limit: int) -> str:
    if limit <= 0:
        return ""
    size = os.fstat(fd).st_size
    start = max(0, size - limit)
    return os.pread(fd, size - start, start).decode("utf-8", "replace")


def has_content(fd: int) -> bool:
    """Whether a file holds anything but whitespace (empty output = XML unchanged)."""
    size = os.fstat(fd).st_size
    offset = 0
    while offset < size:
        if os.pread(fd, CHUNK, offset).strip():
            return True
        offset += CHUNK
    return False


def read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        data = os.read(fd, CHUNK)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def refusal(path: str) -> str:
    """Why a script must not run ('' if it may): missing, not a file, not root's, writable by others."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return "cannot be used: %s" % (exc.strerror or exc)
    if (st.st_mode & 0o170000) != 0o100000:
        return "is not a regular file"
    allowed = (0, os.geteuid())
    if st.st_uid not in allowed:
        return "is owned by uid %d, not root" % st.st_uid
    if st.st_mode & 0o022:
        return "is writable by group or others (mode %04o)" % (st.st_mode & 0o7777)
    if not st.st_mode & 0o111:
        return "is not executable (mode %04o)" % (st.st_mode & 0o7777)
    parent = os.path.dirname(path) or "/"
    try:
        pst = os.stat(parent)
    except OSError as exc:
        return "cannot be used: %s" % (exc.strerror or exc)
    if pst.st_mode & 0o022 and not pst.st_mode & 0o1000:
        return "is in %s, which is writable by group or others (mode %04o)" % (parent, pst.st_mode & 0o7777)
    if pst.st_uid not in allowed:
        return "is in %s, which is owned by uid %d, not root" % (parent, pst.st_uid)
    return ""


# --- processes -----------------------------------------------------------------------------

def wait(pid: int, timeout: float):
    """The wait status of pid, or None if it is still running after timeout seconds."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1
    if pidfd >= 0:
        import select
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        try:
            ready = poller.poll(max(0.0, timeout) * 1000.0)
        finally:
            os.close(pidfd)
        return os.waitpid(pid, 0)[1] if ready else None
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def stop_group(pid: int, grace: float) -> int:
    """SIGTERM the process group, SIGKILL what is left after grace seconds; reap the leader."""
    killpg(pid, SIGTERM)
    status = wait(pid, grace)
    killpg(pid, SIGKILL)     # grandchildren that ignored SIGTERM or outlived the leader
    if status is None:
        status = os.waitpid(pid, 0)[1]
    return status


def exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else (status >> 8)


# --- one call ------------------------------------------------------------------------------

class Call(object):
    """One invocation of a hook by libvirt."""

    def __init__(self, hooks_dir, driver, args, stdin_fd=0, stdout_fd=1, stderr_fd=2, daemon=None):
        args = list(args) + ["-"] * (4 - len(args))
        self.hooks_dir = hooks_dir.rstrip("/") or "/"
        self.own_dir = self.hooks_dir + "/" + OWN_DIR
        self.driver = driver
        self.obj, self.operation, self.suboperation, self.extra = args[:4]
        self.stdin_fd, self.stdout_fd, self.stderr_fd = stdin_fd, stdout_fd, stderr_fd
        self.daemon = daemon
        self.abortable = is_abortable(driver, self.operation)
        self.xml_out = reads_stdout(driver, self.operation)
        self.started = time.time()
        self.clock = time.monotonic()
        self.log = dict(LOG_DEFAULTS)
        self.kill_grace = 2.0
        self.record = {
            "time": iso_time(self.started), "pid": os.getpid(), "driver": driver, "object": self.obj,
            "operation": self.operation, "suboperation": self.suboperation, "extra": self.extra,
        }
        self.env = None

    @property
    def event(self) -> str:
        return "%s %s %s %s" % (self.driver, self.obj, self.operation, self.suboperation)

    def run(self) -> int:
        try:
            config = load_config(self.own_dir + "/" + CONFIG_FILE)
        except (OSError, ConfigError) as exc:
            return self.config_failure(exc)
        self.log = config["log"]
        self.kill_grace = float(config["kill_grace"])
        if self.daemon is None and needs_daemon_name(config, self.driver):
            self.daemon = caller_daemon()
        if self.daemon is not None:
            self.record["daemon"] = self.daemon
        steps, notes = plan(config, self.hooks_dir, self.own_dir, self.driver, self.obj, self.operation,
                            self.suboperation, self.extra, self.daemon)
        if notes:
            self.record["notes"] = notes
        if not steps:
            return self.finish([], None, "no-match")
        return self.run_steps(steps)

    def config_failure(self, exc) -> int:
        message = "virthooks: %s: cannot load %s/%s: %s" % (self.event, self.own_dir, CONFIG_FILE, exc)
        if self.abortable:
            self.say(message)
        # The log file is named by the config we could not read: syslog is the only sure place.
        to_syslog(message)
        return 1 if self.abortable else 0

    def run_steps(self, steps) -> int:
        spool = None
        if has_stdin_xml(self.driver) and (len(steps) > 1 or self.xml_out or any(s.xpath for s in steps)):
            spool = tmpfile()
            copy_fd(self.stdin_fd, spool)
        current = spool          # what the next script reads (chained on XML-out events)
        changed = False
        document = None
        results = []
        failure = None
        for step in steps:
            result = None
            if step.xpath:
                if document is None:
                    from .xmlcond import Document
                    document = Document(read_all(spool))
                result = self.condition(document, step)
            if result is None:
                result, output = self.execute(step, current)
                if output is not None:
                    if result["status"] == "ok" and has_content(output):
                        if current != spool:
                            os.close(current)
                        current, changed = output, True
                        result["xml"] = "replaced"
                    else:
                        os.close(output)
            results.append(result)
            if result["status"] not in ("ok", "skipped"):
                failure = failure or self.judge(step, result)
                if failure and self.abortable:
                    break
        if failure is None and changed:
            os.lseek(current, 0, os.SEEK_SET)
            copy_fd(current, self.stdout_fd)
        return self.finish(results, failure, "failed" if failure else "ok")

    def condition(self, document, step):
        """None if the script should run; else a result (skipped, or an error)."""
        from .xmlcond import ConditionError
        try:
            if document.evaluate(step.xpath, step.namespaces):
                return None
            return {"name": step.name, "source": step.source, "status": "skipped", "reason": "xpath is false"}
        except ConditionError as exc:
            return {"name": step.name, "source": step.source, "status": "error", "exit": None,
                    "policy": step.on_failure, "message": "its condition could not be evaluated: %s" % exc}

    def script_env(self) -> dict:
        if self.env is None:
            env = dict(os.environ)
            env.update(LIBVIRT_HOOK_DRIVER=self.driver, LIBVIRT_HOOK_OBJECT=self.obj,
                       LIBVIRT_HOOK_OPERATION=self.operation, LIBVIRT_HOOK_SUBOPERATION=self.suboperation,
                       LIBVIRT_HOOK_EXTRA=self.extra)
            self.env = env
        return self.env

    def execute(self, step, stdin_spool):
        """Run one script; (result, fd of its stdout when the XML chain needs it, else None)."""
        result = {"name": step.name, "source": step.source, "policy": step.on_failure}
        problem = refusal(step.path)
        if problem:
            result.update(status="refused", exit=None, message="refused: %s %s" % (step.path, problem))
            return result, None
        if stdin_spool is not None:
            os.lseek(stdin_spool, 0, os.SEEK_SET)
            stdin_fd = stdin_spool
        else:
            stdin_fd = self.stdin_fd
        out_fd = tmpfile()
        err_fd = tmpfile()
        began = time.monotonic()
        try:
            env = dict(self.script_env(), VIRTHOOKS_SCRIPT=step.name)
            actions = [(os.POSIX_SPAWN_DUP2, stdin_fd, 0), (os.POSIX_SPAWN_DUP2, out_fd, 1),
                       (os.POSIX_SPAWN_DUP2, err_fd, 2)]
            try:
                pid = os.posix_spawn(step.path, [step.path, self.obj, self.operation, self.suboperation, self.extra],
                                     env, file_actions=actions, setpgroup=0, setsigdef=_SIGDEF)
            except OSError as exc:
                hint = " (a hook must start with #! and an absolute interpreter path)" if exc.errno == 8 else ""
                result.update(status="error", exit=None,
                              message="could not be executed: %s%s" % (exc.strerror or exc, hint))
                os.close(out_fd)
                return result, None
            status = wait(pid, step.timeout)
            if status is None:
                status = stop_group(pid, self.kill_grace)
                result.update(status="timeout", message="timed out after %s s; its process group was killed"
                              % _seconds(step.timeout))
            code = exit_code(status)
            result["exit"] = code
            if "status" not in result:
                if code == 0:
                    result["status"] = "ok"
                else:
                    result["status"] = "failed"
                    result["message"] = ("was killed by signal %d" % -code) if code < 0 \
                        else "failed with exit status %d" % code
            stderr_text = tail(err_fd, self.log["output_bytes"])
            if stderr_text:
                result["stderr"] = stderr_text
            if not self.xml_out:
                stdout_text = tail(out_fd, self.log["output_bytes"])
                if stdout_text:
                    result["stdout"] = stdout_text
        finally:
            result["duration_ms"] = round((time.monotonic() - began) * 1000.0, 1)
            os.close(err_fd)
        if self.xml_out:
            return result, out_fd
        os.close(out_fd)
        return result, None

    def judge(self, step, result):
        """The failure that decides the call's exit status, or None if the script's failure is ignored."""
        line = "virthooks: %s: script '%s' %s" % (self.event, step.name, result.get("message", "failed"))
        stderr_text = " | ".join(s.strip() for s in result.get("stderr", "").strip().splitlines() if s.strip())
        if stderr_text:
            line += ": " + stderr_text[-STDERR_TAIL:]
        if step.on_failure == "ignore":
            to_syslog(line + " (on_failure: ignore, continuing)", error=False)
            return None
        to_syslog(line)
        return line

    def finish(self, results, failure, outcome) -> int:
        code = 1 if failure else 0
        if failure:
            self.say(failure)
        self.record.update(result=outcome, exit=code, scripts=results,
                           duration_ms=round((time.monotonic() - self.clock) * 1000.0, 1))
        if self.log["syslog"] == "all" and not failure:
            to_syslog("%s: %s, %d script(s)" % (self.event, outcome, len(results)), error=False)
        self.write_log()
        return code

    def say(self, line: str) -> None:
        try:
            os.write(self.stderr_fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
        except OSError:
            pass

    def write_log(self) -> None:
        if self.log.get("file"):
            append_line(self.log["file"], self.record, self.log["max_bytes"], self.log["backups"])


def _seconds(value) -> str:
    return ("%g" % value)


def caller_daemon():
    """The name of the daemon that called the hook (our parent: the entry point execs us)."""
    try:
        with open("/proc/%d/comm" % os.getppid(), "rb") as f:
            return f.read().strip().decode("utf-8", "replace") or None
    except OSError:
        return None


def _ensure_std_fds() -> None:
    """Open /dev/null on any of fds 0-2 that is closed, so our own files never land there."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open("/dev/null", os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def main(argv=None) -> None:
    """Entry: argv = [hooks_dir, driver, object, operation, sub-operation, extra]."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        sys.stderr.write("usage: dispatch HOOKS_DIR DRIVER OBJECT OPERATION SUBOPERATION EXTRA\n")
        sys.exit(2)  # pylint: disable=ansible-bad-function  # the hook program itself, not a module
    _ensure_std_fds()
    try:
        os.chdir("/")
    except OSError:
        pass
    code = Call(argv[0], argv[1], argv[2:6]).run()
    sys.exit(code)  # pylint: disable=ansible-bad-function  # the hook program itself, not a module
