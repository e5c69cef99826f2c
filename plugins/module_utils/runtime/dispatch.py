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

Contract (see docs/runtime.md):
- only files root alone controls are run or read: the whole path to each script and to
  config.json is checked (trust.py), and the runtime's own files before they are imported (the
  entry point's bootstrap, entrypoint.LIB_CHECK);
- a script of the generation that has secrets gets their directory (``secrets/<script>/``, one
  0600 root file per value) as ``VIRTHOOKS_SECRETS``: secrets are never in script text or argv;
- scripts run with cwd ``/``, in their own process group, with a ``VIRTHOOKS_RUN_ID`` that
  their descendants inherit; at their timeout every process of the run gets SIGTERM, then
  SIGKILL after ``kill_grace`` seconds, even those that left the group (proctree.py);
- each script gets its own open file for stdin (a background reader cannot drain the next
  script's input) and writes stdout/stderr to anonymous files, never to libvirt's pipes, so
  a background child that keeps them open cannot block libvirt; output is kept as a head
  and a tail, so a script printing without end fills neither memory nor disk;
- on events where libvirt reads stdout (``migrate``/``restore begin``) scripts are chained:
  each gets the XML the previous one printed (or the original), XPath conditions are
  evaluated on that same XML, and only the final XML is written out, and only if a script
  changed it (at most ``XML_OUT_MAX`` bytes); everywhere else our stdout stays empty;
- a failing ``on_failure: fail`` script makes the call exit 1 with one stderr line naming it;
  on events libvirt can abort, the scripts after it do not run;
- an error of the dispatcher itself (unreadable config, no memory, a bug) never fails
  ``reconnect``/``attach``, where libvirt would kill the running guest: it exits 0 there and
  says so loudly in syslog and the log;
- SIGTERM, SIGINT or SIGHUP stop the running script's processes, write the log record and exit.
"""

import sys
import time

from . import hostos as os  # os without importing os (0.9 ms at start-up): see hostos
from .events import USER_FAILURE_EXIT, has_stdin_xml, is_abortable, kills_running_guest, reads_stdout
from .generations import open_current
from .layout import CONFIG_FILE, OWN_DIR, SCRIPTS_DIR, SECRETS_DIR
from .rules import LOG_DEFAULTS, ConfigError, load_config, needs_daemon_name, steps_for_event
from .runlog import STDERR_TAIL, append_line, iso_time, printable, to_syslog, write_all
from .trust import TrustCheck, Untrusted, format_problem

try:
    import _signal
    SIGTERM, SIGKILL = _signal.SIGTERM, _signal.SIGKILL
    STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
    _SIGDEF = tuple(getattr(_signal, n) for n in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(_signal, n)) \
        + STOP_SIGNALS
except ImportError:  # pragma: no cover
    _signal = None
    SIGTERM, SIGKILL, STOP_SIGNALS, _SIGDEF = 15, 9, (15, 2, 1), (13, 15, 2, 1)

CHUNK = 1 << 20
XML_OUT_MAX = 64 << 20          # the most XML a script may print where libvirt reads it
TRIM_AT = 1 << 20               # an output file past this (or 4 x output_bytes) is trimmed
TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
RUN_ID_VAR = "VIRTHOOKS_RUN_ID"  # proctree.RUN_ID_VAR (not imported: that module is for the slow path)
SECRETS_VAR = "VIRTHOOKS_SECRETS"


class Interrupted(BaseException):
    """The dispatcher got SIGTERM, SIGINT or SIGHUP."""

    def __init__(self, signum):
        BaseException.__init__(self, signum)
        self.signum = signum


class OutputOverflow(Exception):
    """A script printed more XML than libvirt may be handed."""


# --- anonymous files -----------------------------------------------------------------------

def _file_candidates():
    if hasattr(os, "memfd_create"):
        yield lambda: os.memfd_create("virthooks", os.MFD_CLOEXEC)
    env = os.environ.get("TMPDIR")
    for directory in ((env,) if env else ()) + TMP_DIRS:
        yield lambda d=directory: os.open(d, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)


def anon_file(data: bytes = b"") -> int:
    """An anonymous read/write file holding data, offset 0: in memory (memfd), else in a
    temporary directory, trying the next place when one is full or unusable."""
    last = None
    for create in _file_candidates():
        try:
            fd = create()
        except (AttributeError, OSError) as exc:
            last = exc
            continue
        try:
            write_all(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
            return fd
        except OSError as exc:
            os.close(fd)
            last = exc
    raise OSError("no memory or temporary directory could hold %d bytes (%s)" % (len(data), last))


def read_fd(fd: int) -> bytes:
    chunks = []
    while True:
        data = os.read(fd, CHUNK)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def pread_all(fd: int, start: int, end: int) -> bytes:
    chunks = []
    while start < end:
        data = os.pread(fd, min(CHUNK, end - start), start)
        if not data:
            break
        chunks.append(data)
        start += len(data)
    return b"".join(chunks)


def reopen(fd: int, data: bytes) -> int:
    """A new open file description of an anonymous file (its own offset), else a copy."""
    try:
        return os.open("/proc/self/fd/%d" % fd, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return anon_file(data)


class Output(object):
    """What a script writes to stdout or stderr: an anonymous file, kept bounded.

    The script writes at its own offset. When the file grows past the trim size, its first
    and last ``keep`` bytes are saved and the file is truncated to nothing: later writes land
    past a hole that takes no space, so the file only ever holds the newest output. ``limit``
    (stdout that libvirt reads as XML) instead fails the script when it is passed.
    """

    def __init__(self, keep: int, limit: int = 0):
        self.fd = anon_file()
        self.keep = keep
        self.limit = limit
        self.trim_at = max(TRIM_AT, 4 * keep)
        self.head = None            # the first keep bytes, once the file was trimmed
        self.tail = b""             # the last keep bytes before the latest trim
        self.base = 0               # where the output still in the file starts, after a trim

    def _kept(self, size: int) -> bytes:
        """The output still in the file (an O_APPEND writer may have started again at 0)."""
        start = self.base if size >= self.base else 0
        return pread_all(self.fd, max(start, size - self.keep), size).lstrip(b"\0") if self.keep else b""

    def watch(self) -> bool:
        """Trim the file when it is too large; whether it was. Raises OutputOverflow past the limit."""
        size = os.fstat(self.fd).st_size
        if self.limit:
            if size > self.limit:
                raise OutputOverflow()
            return False
        if size - (self.base if size >= self.base else 0) <= self.trim_at:
            return False
        if self.head is None:
            self.head = os.pread(self.fd, self.keep, 0) if self.keep else b""
        self.tail = self._kept(size)
        os.ftruncate(self.fd, 0)
        self.base = size
        return True

    def data(self) -> bytes:
        """The whole output (stdout that libvirt reads as XML)."""
        return pread_all(self.fd, 0, os.fstat(self.fd).st_size)

    def text(self) -> str:
        """Head and tail of the output for the log, the middle left out."""
        if self.keep <= 0:
            return ""
        size = os.fstat(self.fd).st_size
        if self.head is None:
            if size <= 2 * self.keep:
                return pread_all(self.fd, 0, size).decode("utf-8", "replace")
            head, tail, written = os.pread(self.fd, self.keep, 0), self._kept(size), size
        else:
            head, tail = self.head, (self.tail + self._kept(size))[-self.keep:]
            written = max(size, self.base)
        left_out = max(0, written - len(head) - len(tail))
        return (head.decode("utf-8", "replace") + "\n[... %d bytes left out ...]\n" % left_out
                + tail.decode("utf-8", "replace"))

    def close(self) -> None:
        os.close(self.fd)


# --- processes -----------------------------------------------------------------------------

def _poll_fd(fd: int, timeout: float) -> bool:
    import select
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000.0))


def wait_script(pid: int, timeout: float, outputs) -> bool:
    """Wait until pid exits (True, not yet reaped) or timeout seconds pass (False).

    Scripts that run longer than a few milliseconds have their output files watched on the way.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1
    deadline = time.monotonic() + timeout
    interval = 0.01
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if pidfd >= 0:
                if _poll_fd(pidfd, min(left, interval)):
                    return True
            else:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
                time.sleep(min(left, interval, 0.002))
            grew = False
            for output in outputs:
                grew = output.watch() or grew
            interval = 0.001 if grew else min(interval * 2, 0.05)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else (status >> 8)


def _stop_run(pid: int, run_id: str, grace: float):
    from .proctree import stop
    return stop(pid, run_id, grace)


# --- one call ------------------------------------------------------------------------------

class Call(object):
    """One invocation of a hook by libvirt."""

    def __init__(self, hooks_dir, driver, args, stdin_fd=0, stdout_fd=1, stderr_fd=2, daemon=None):
        args = list(args) + ["-"] * (4 - len(args))
        self.hooks_dir = hooks_dir.rstrip("/") or "/"
        self.own_dir = self.hooks_dir + "/" + OWN_DIR
        self.base = self.own_dir    # the current generation's directory, once resolved
        self.driver = driver
        self.obj, self.operation, self.suboperation, self.extra = args[:4]
        self.stdin_fd, self.stdout_fd, self.stderr_fd = stdin_fd, stdout_fd, stderr_fd
        self.daemon = daemon
        self.abortable = is_abortable(driver, self.operation)
        self.spare_guest = kills_running_guest(driver, self.operation)
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
        self.results = []
        self.running = None         # (pid, run id, step, result) of the script being waited for
        self.trust = TrustCheck()

    @property
    def event(self) -> str:
        return "%s %s %s %s" % (self.driver, self.obj, self.operation, self.suboperation)

    def run(self) -> int:
        """Dispatch the call; the exit status for libvirt. Never raises."""
        try:
            return self._run()
        except Interrupted as exc:
            return self.interrupted(exc.signum)
        except Exception as exc:  # a fault of ours must never become a traceback or a killed guest
            return self.internal_error(exc)

    def _run(self) -> int:
        try:
            # One generation for the whole call: its rules and its scripts, locked against pruning.
            self.base, generation, _lock = open_current(self.own_dir)
            if generation:
                self.record["generation"] = generation
            path = self.base + "/" + CONFIG_FILE
            # It picks the scripts root runs and the file root appends to: root's alone, as a script.
            config = load_config(path, event=(self.driver, self.obj, self.operation), data=self.trust.read_data(path))
        except Untrusted as exc:
            return self.own_failure("virthooks: %s: cannot load the configuration: %s" % (self.event, exc), "error")
        except (OSError, ConfigError) as exc:
            return self.config_failure(exc)
        self.log = config["log"]
        self.kill_grace = float(config["kill_grace"])
        if self.daemon is None and needs_daemon_name(config, self.driver):
            self.daemon = caller_daemon()
        if self.daemon is not None:
            self.record["daemon"] = self.daemon
        steps, notes = steps_for_event(config, self.hooks_dir, self.base, self.driver, self.obj,
                                       self.operation, self.suboperation, self.extra, self.daemon)
        if notes:
            self.record["notes"] = notes
        if not steps:
            return self.finish(None, "no-match")
        return self.run_steps(steps)

    # -- failures of our own ------------------------------------------------------------------
    def own_failure_code(self) -> int:
        """Exit status after an error of the dispatcher itself: 0 where libvirt would kill a
        running guest (or cannot abort anyway), 1 where it aborts what it was doing."""
        return 1 if self.abortable and not self.spare_guest else 0

    def own_failure(self, message: str, outcome: str) -> int:
        code = self.own_failure_code()
        if code:
            self.say(message)
        elif self.spare_guest:
            message += " (exit 0 anyway: a failed %s makes libvirt kill the running guest)" % self.operation
        to_syslog(message)
        self.record.update(result=outcome, exit=code, error=message, scripts=self.results,
                           duration_ms=self.elapsed_ms())
        self.write_log()
        return code

    def config_failure(self, exc) -> int:
        if isinstance(exc, ConfigError):            # its message starts with the path
            problem = str(exc)
        else:
            problem = "%s/%s: %s" % (self.base, CONFIG_FILE, exc.strerror or exc)
        return self.own_failure("virthooks: %s: cannot load the configuration: %s" % (self.event, problem), "error")

    def internal_error(self, exc) -> int:
        where = ""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = " at %s:%d" % (os.path.basename(tb.tb_frame.f_code.co_filename), tb.tb_lineno)
        self.stop_running()
        return self.own_failure("virthooks: %s: internal error%s: %s: %s"
                                % (self.event, where, type(exc).__name__, exc), "error")

    def interrupted(self, signum: int) -> int:
        killed = self.stop_running()
        message = "virthooks: %s: interrupted by signal %d" % (self.event, signum)
        if killed:
            message += "; script '%s' was stopped" % killed
        return self.own_failure(message, "interrupted")

    def stop_running(self) -> str:
        """Stop the script being waited for, if any, and record it; its name, or ''."""
        if self.running is None:
            return ""
        pid, run_id, step, result = self.running
        self.running = None
        status = _stop_run(pid, run_id, self.kill_grace)
        result.update(status="killed", exit=exit_code(status) if status is not None else None,
                      message="was stopped with the dispatcher")
        self.results.append(result)
        return step.name

    # -- the scripts ------------------------------------------------------------------------
    def run_steps(self, steps) -> int:
        xml = None                  # the XML the next script reads, when stdin is spooled
        spool = -1
        if has_stdin_xml(self.driver) and (len(steps) > 1 or self.xml_out or any(s.xpath for s in steps)):
            xml = read_fd(self.stdin_fd)
            spool = anon_file(xml)
        changed = False
        document = None
        failure = None
        try:
            for step in steps:
                result = None
                if step.xpath:
                    if document is None:
                        from .xmlcond import Document
                        document = Document(xml)
                    result = self.condition(document, step)
                if result is None:
                    result, new_xml = self.execute(step, spool, xml)
                    if new_xml is not None:
                        os.close(spool)
                        xml, changed, document = new_xml, True, None
                        spool = anon_file(xml)
                        result["xml"] = "replaced"
                self.results.append(result)
                if result["status"] not in ("ok", "skipped"):
                    failure = failure or self.judge(step, result)
                    if failure and self.abortable:
                        break
        finally:
            if spool >= 0:
                os.close(spool)
        if failure is None and changed:
            try:
                write_all(self.stdout_fd, xml)
            except OSError as exc:
                failure = "virthooks: %s: could not hand the XML to libvirt: %s" % (self.event, exc.strerror or exc)
        return self.finish(failure, "failed" if failure else "ok")

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

    def add_secrets(self, env: dict, step) -> None:
        """VIRTHOOKS_SECRETS: the secrets directory of a script of this generation, if it has one."""
        env.pop(SECRETS_VAR, None)      # never one inherited from whoever ran the dispatcher
        scripts = "%s/%s/" % (self.base, SCRIPTS_DIR)
        if step.source == "rule" and step.path.startswith(scripts):
            directory = "%s/%s/%s" % (self.base, SECRETS_DIR, step.path[len(scripts):])
            if os.isdir(directory):
                env[SECRETS_VAR] = directory

    def spawn(self, step, env, stdin_fd, out, err, run_id, result) -> int:
        """posix_spawn the script and note it as running, with the stop signals blocked in
        between: a SIGTERM always finds self.running set, never an unnamed child."""
        actions = [(os.POSIX_SPAWN_DUP2, stdin_fd, 0), (os.POSIX_SPAWN_DUP2, out.fd, 1),
                   (os.POSIX_SPAWN_DUP2, err.fd, 2)]
        argv = [step.path, self.obj, self.operation, self.suboperation, self.extra]
        old = _signal.pthread_sigmask(_signal.SIG_BLOCK, STOP_SIGNALS) if _signal is not None else None
        try:
            pid = os.posix_spawn(step.path, argv, env, file_actions=actions, setpgroup=0, setsigdef=_SIGDEF,
                                 setsigmask=())
            self.running = (pid, run_id, step, result)
        finally:
            if old is not None:
                _signal.pthread_sigmask(_signal.SIG_SETMASK, old)
        return pid

    def execute(self, step, spool: int, xml):
        """Run one script; (result, the XML it printed when the XML chain takes it, else None)."""
        result = {"name": step.name, "source": step.source, "policy": step.on_failure}
        try:
            head = self.trust.check_file(step.path)
        except Untrusted as exc:
            result.update(status="refused", exit=None, message="refused: %s %s" % (step.path, exc))
            return result, None
        problem = format_problem(head)
        if problem:
            result.update(status="error", exit=None, message="could not be executed: %s" % problem)
            return result, None
        stdin_fd = reopen(spool, xml) if spool >= 0 else self.stdin_fd
        keep = self.log["output_bytes"]
        out = err = None
        began = time.monotonic()
        try:
            out = Output(keep, XML_OUT_MAX if self.xml_out else 0)
            err = Output(keep)
            run_id = "%d.%d.%d" % (os.getpid(), time.time_ns(), len(self.results))
            env = dict(self.script_env(), VIRTHOOKS_SCRIPT=step.name)
            env[RUN_ID_VAR] = run_id
            self.add_secrets(env, step)
            try:
                pid = self.spawn(step, env, stdin_fd, out, err, run_id, result)
            except OSError as exc:
                hint = " (a hook must start with #! and an absolute interpreter path)" if exc.errno == 8 else ""
                result.update(status="error", exit=None,
                              message="could not be executed: %s%s" % (exc.strerror or exc, hint))
                return result, None
            finally:
                if stdin_fd != self.stdin_fd:
                    os.close(stdin_fd)
                    stdin_fd = self.stdin_fd
            try:
                exited = wait_script(pid, step.timeout, (out, err))
                if exited:
                    out.watch()
            except OutputOverflow:
                exited = None
            if exited:
                status = os.waitpid(pid, 0)[1]
            else:
                status = _stop_run(pid, run_id, self.kill_grace)
                if exited is False:
                    result.update(status="timeout", message="timed out after %s s; it and every process it "
                                  "started were killed" % _seconds(step.timeout))
            if exited is None:
                result.update(status="failed", message="printed more than %d MiB on stdout, which libvirt "
                              "reads as XML" % (XML_OUT_MAX >> 20))
            self.running = None
            code = exit_code(status) if status is not None else None
            result["exit"] = code
            if "status" not in result:
                if code == 0:
                    result["status"] = "ok"
                else:
                    result["status"] = "failed"
                    result["message"] = ("was killed by signal %d" % -code) if code is not None and code < 0 \
                        else "failed with exit status %s" % code
            stderr_text = err.text()
            if stderr_text:
                result["stderr"] = stderr_text
            if not self.xml_out:
                stdout_text = out.text()
                if stdout_text:
                    result["stdout"] = stdout_text
                return result, None
            if result["status"] != "ok":
                return result, None
            printed = out.data()    # a snapshot: what a background child writes later is not XML
            return result, (printed if printed.strip() else None)
        finally:
            result["duration_ms"] = round((time.monotonic() - began) * 1000.0, 1)
            if stdin_fd != self.stdin_fd:
                os.close(stdin_fd)
            for output in (out, err):
                if output is not None:
                    output.close()

    def judge(self, step, result):
        """The failure that decides the call's exit status, or None if the script's failure is ignored."""
        line = "virthooks: %s: script '%s' %s" % (self.event, step.name, result.get("message", "failed"))
        stderr_text = " | ".join(s.strip() for s in result.get("stderr", "").strip().splitlines() if s.strip())
        if stderr_text:
            line += ": " + stderr_text[-STDERR_TAIL:]
        if step.on_failure == "ignore":
            to_syslog(printable(line) + " (on_failure: ignore, continuing)", error=False)
            return None
        if step.on_failure == "abortable" and not (self.abortable and not self.spare_guest):
            why = "a failed %s makes libvirt kill the running guest" % self.operation if self.spare_guest \
                else "libvirt does not abort %s" % self.operation
            to_syslog(printable(line) + " (on_failure: abortable, continuing: %s)" % why, error=False)
            return None
        to_syslog(printable(line))
        return line

    def elapsed_ms(self) -> float:
        return round((time.monotonic() - self.clock) * 1000.0, 1)

    def finish(self, failure, outcome) -> int:
        code = 1 if failure else 0
        if failure and self.spare_guest:
            code = USER_FAILURE_EXIT    # the entry point fails reconnect for this status only
        if failure:
            self.say(failure)
        self.record.update(result=outcome, exit=code, scripts=self.results, duration_ms=self.elapsed_ms())
        if self.log["syslog"] == "all" and not failure:
            to_syslog("%s: %s, %d script(s)" % (printable(self.event), outcome, len(self.results)), error=False)
        self.write_log()
        return code

    def say(self, line: str) -> None:
        try:
            write_all(self.stderr_fd, (printable(line) + "\n").encode("utf-8", "surrogateescape"))
        except OSError:
            pass

    def write_log(self) -> None:
        path = self.log.get("file")
        if path and not append_line(path, self.record, self.log["max_bytes"], self.log["backups"]):
            to_syslog("virthooks: %s: %s, exit %s; could not write the log record to %s"
                      % (printable(self.event), self.record.get("result"), self.record.get("exit"), path))


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


def _on_stop_signal(signum, frame):
    for sig in STOP_SIGNALS:       # a second signal must not interrupt the cleanup
        _signal.signal(sig, _signal.SIG_IGN)
    raise Interrupted(signum)


def main(argv=None) -> None:
    """Entry: argv = [hooks_dir, driver, object, operation, sub-operation, extra]."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        sys.stderr.write("usage: dispatch HOOKS_DIR DRIVER OBJECT OPERATION SUBOPERATION EXTRA\n")
        sys.exit(2)  # pylint: disable=ansible-bad-function  # the hook program itself, not a module
    if _signal is not None:
        for sig in STOP_SIGNALS:
            _signal.signal(sig, _on_stop_signal)
    _ensure_std_fds()
    try:
        os.chdir("/")
    except OSError:
        pass
    code = Call(argv[0], argv[1], argv[2:6]).run()
    sys.exit(code)  # pylint: disable=ansible-bad-function  # the hook program itself, not a module
