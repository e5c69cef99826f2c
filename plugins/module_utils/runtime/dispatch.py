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

The call is a ``Call`` of one ``Event`` (libvirt's driver, object, operation, sub-operation,
extra; the calling daemon when a rule asks). Each script's turn is a ``ScriptRun``, which owns
its stdin and output files and ends once, in one of the named outcomes (OK, FAILED, TIMED_OUT,
OVERFLOWED, REFUSED, UNRUNNABLE, SKIPPED, BAD_CONDITION, KILLED), as an immutable
``ScriptResult`` whose ``to_record()`` is its entry in the log record.
"""

import sys
import time

from . import hostos as os  # os without importing os (0.9 ms at start-up): see hostos
from .events import USER_FAILURE_EXIT, has_stdin_xml, is_abortable, kills_running_guest, reads_stdout
from .current import open_current
from .layout import CONFIG_CACHE, CONFIG_FILE, OWN_DIR, SCRIPTS_DIR, SECRETS_DIR
from .rules import (LOG_DEFAULTS, ConfigError, load_config, merge_dropins, needs_daemon_name, step_environment,
                    steps_for_event)
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


# --- the event, and what became of each script ---------------------------------------------

class Event(object):
    """One libvirt hook event, as libvirt passed it: built once, passed as one value.

    ``daemon`` (the daemon that called the hook) is read from /proc only when first asked for,
    and only daemon-driver rules that name daemons ask (an explicit one is taken as given).
    """

    __slots__ = ("driver", "obj", "operation", "suboperation", "extra", "_daemon", "abortable", "spare_guest",
                 "xml_out")

    def __init__(self, driver, args, daemon=None):
        args = list(args) + ["-"] * (4 - len(args))
        self.driver = driver
        self.obj, self.operation, self.suboperation, self.extra = args[:4]
        self._daemon = daemon
        self.abortable = is_abortable(driver, self.operation)       # libvirt aborts what it does on failure
        self.spare_guest = kills_running_guest(driver, self.operation)  # ... by killing the running guest
        self.xml_out = reads_stdout(driver, self.operation)           # libvirt reads our stdout as XML

    @property
    def daemon(self):
        if self._daemon is None:
            self._daemon = caller_daemon() or ""
        return self._daemon or None

    @property
    def daemon_known(self) -> bool:
        """Whether the daemon was given (or already read)."""
        return self._daemon is not None

    @property
    def label(self) -> str:
        """How messages name the event: 'qemu win10 prepare begin'."""
        return "%s %s %s %s" % (self.driver, self.obj, self.operation, self.suboperation)

    def args(self) -> list:
        """libvirt's four arguments, as each script gets them."""
        return [self.obj, self.operation, self.suboperation, self.extra]

    def hook_env(self) -> dict:
        """The LIBVIRT_HOOK_* variables every script gets."""
        return {"LIBVIRT_HOOK_DRIVER": self.driver, "LIBVIRT_HOOK_OBJECT": self.obj,
                "LIBVIRT_HOOK_OPERATION": self.operation, "LIBVIRT_HOOK_SUBOPERATION": self.suboperation,
                "LIBVIRT_HOOK_EXTRA": self.extra}


# The keys of a script's log record, in the order each kind of ending has always written them.
_RAN = ("name", "source", "policy", "exit", "status", "message", "stderr", "stdout", "duration_ms", "xml")
_STOPPED = ("name", "source", "policy", "status", "message", "exit", "stderr", "stdout", "duration_ms", "xml")
_NOT_RUN = ("name", "source", "policy", "status", "exit", "message", "duration_ms")


class Outcome(object):
    """How a script's turn ended: the status the log shows, and the keys its record has."""

    __slots__ = ("status", "keys")

    def __init__(self, status, keys):
        self.status = status
        self.keys = keys


OK = Outcome("ok", _RAN)                    # exited with status 0
FAILED = Outcome("failed", _RAN)            # exited with another status, or was killed by a signal
TIMED_OUT = Outcome("timeout", _STOPPED)    # stopped at its timeout
OVERFLOWED = Outcome("failed", _STOPPED)    # stopped: printed more XML than libvirt may be handed
REFUSED = Outcome("refused", _NOT_RUN)      # the trust check said no
UNRUNNABLE = Outcome("error", _NOT_RUN)     # not a file the kernel can execute, or posix_spawn failed
SKIPPED = Outcome("skipped", ("name", "source", "status", "reason"))               # its XPath is false
BAD_CONDITION = Outcome("error", ("name", "source", "status", "exit", "policy", "message"))
KILLED = Outcome("killed", ("name", "source", "policy", "duration_ms", "status", "exit", "message"))  # by a signal to us


class ScriptResult(object):
    """What became of one script: immutable; ``to_record()`` is its entry in the log record."""

    __slots__ = ("name", "source", "policy", "outcome", "exit", "message", "stderr", "stdout", "duration_ms",
                 "new_xml")

    def __init__(self, step, outcome, code=None, message="", stderr="", stdout="", duration_ms=None,
                 new_xml=None):
        set_ = object.__setattr__
        for key, value in (("name", step.name), ("source", step.source), ("policy", step.on_failure),
                           ("outcome", outcome), ("exit", code), ("message", message), ("stderr", stderr),
                           ("stdout", stdout), ("duration_ms", duration_ms), ("new_xml", new_xml)):
            set_(self, key, value)

    def __setattr__(self, name, value):
        raise AttributeError("a ScriptResult cannot be changed")

    @property
    def status(self) -> str:
        return self.outcome.status

    @property
    def failed(self) -> bool:
        """Whether the failure policy has a say (anything but ok and skipped)."""
        return self.outcome not in (OK, SKIPPED)

    def to_record(self) -> dict:
        """The script's entry in the call's log record (the format runlog and logstats read)."""
        values = {"name": self.name, "source": self.source, "policy": self.policy, "status": self.outcome.status,
                  "message": self.message or None, "stderr": self.stderr or None, "stdout": self.stdout or None,
                  "duration_ms": self.duration_ms, "xml": "replaced" if self.new_xml is not None else None,
                  "reason": self.message or None}
        record = {}
        for key in self.outcome.keys:
            if key == "exit":
                record[key] = self.exit
            elif values[key] is not None:
                record[key] = values[key]
        return record


def not_run(step, outcome, message) -> ScriptResult:
    """The result of a script that was never started."""
    return ScriptResult(step, outcome, message=message)


class ScriptRun(object):
    """One script's run: it owns its stdin (when it has one of its own) and its output files and
    closes them when the run ends, which it does once, in one of the outcomes, through end()."""

    __slots__ = ("step", "stdin", "own_stdin", "out", "err", "xml_out", "pid", "run_id", "status", "began",
                 "result")

    def __init__(self, step, stdin_fd, spool, xml, keep, xml_out):
        self.step = step
        self.out = self.err = None
        self.own_stdin = spool >= 0
        self.stdin = reopen(spool, xml) if self.own_stdin else stdin_fd   # its own offset: see docs
        self.xml_out = xml_out
        self.pid = 0
        self.run_id = ""
        self.status = None          # its wait status, once reaped
        self.began = time.monotonic()
        self.result = None
        try:
            self.out = Output(keep, XML_OUT_MAX if xml_out else 0)
            self.err = Output(keep)
        except BaseException:
            self.close()
            raise

    def start(self, argv, env, run_id):
        """posix_spawn the script with the stop signals blocked until its pid is noted, so a
        SIGTERM always finds the run started or not, never an unnamed child. None once started,
        else the result (UNRUNNABLE)."""
        actions = [(os.POSIX_SPAWN_DUP2, self.stdin, 0), (os.POSIX_SPAWN_DUP2, self.out.fd, 1),
                   (os.POSIX_SPAWN_DUP2, self.err.fd, 2)]
        old = _signal.pthread_sigmask(_signal.SIG_BLOCK, STOP_SIGNALS) if _signal is not None else None
        try:
            self.pid = os.posix_spawn(self.step.path, argv, env, file_actions=actions, setpgroup=0,
                                      setsigdef=_SIGDEF, setsigmask=())
            self.run_id = run_id
        except OSError as exc:
            hint = " (a hook must start with #! and an absolute interpreter path)" if exc.errno == 8 else ""
            return self.end(UNRUNNABLE, message="could not be executed: %s%s" % (exc.strerror or exc, hint))
        finally:
            if old is not None:
                _signal.pthread_sigmask(_signal.SIG_SETMASK, old)
            self._release_stdin()
        return None

    def wait(self, grace: float) -> ScriptResult:
        """Wait for the script to exit, or stop it at its timeout or when it prints too much XML."""
        try:
            exited = wait_script(self.pid, self.step.timeout, (self.out, self.err))
            if exited:
                self.out.watch()
        except OutputOverflow:
            return self.stop(OVERFLOWED, grace, "printed more than %d MiB on stdout, which libvirt reads as XML"
                             % (XML_OUT_MAX >> 20))
        if not exited:
            return self.stop(TIMED_OUT, grace, "timed out after %s s; it and every process it started were killed"
                             % _seconds(self.step.timeout))
        self.status = os.waitpid(self.pid, 0)[1]
        code = exit_code(self.status)
        if code == 0:
            return self.end(OK, code)
        return self.end(FAILED, code, ("was killed by signal %d" % -code) if code < 0
                        else "failed with exit status %s" % code)

    def stop(self, outcome, grace: float, message: str) -> ScriptResult:
        """End the run by stopping every process it started (timeout, XML overflow, a signal to us)."""
        if self.pid and self.status is None:
            self.status = _stop_run(self.pid, self.run_id, grace)
        return self.end(outcome, exit_code(self.status) if self.status is not None else None, message)

    def end(self, outcome, code=None, message="") -> ScriptResult:
        """The run's result, once; its files are closed. What it printed is read here (for XML, a
        snapshot: what a background child writes later is not XML)."""
        if self.result is not None:
            return self.result
        stderr = stdout = ""
        new_xml = None
        if self.pid and outcome is not KILLED:
            stderr = self.err.text()
            if not self.xml_out:
                stdout = self.out.text()
            elif outcome is OK:
                new_xml = self.out.data() or None
                if new_xml is not None and not new_xml.strip():
                    new_xml = None
        duration = round((time.monotonic() - self.began) * 1000.0, 1)
        self.result = ScriptResult(self.step, outcome, code, message, stderr, stdout, duration, new_xml)
        self.close()
        return self.result

    def _release_stdin(self) -> None:
        """Close the script's own stdin (the child has its copy); libvirt's stays open."""
        if self.own_stdin:
            self.own_stdin = False
            os.close(self.stdin)

    def close(self) -> None:
        self._release_stdin()
        for output in (self.out, self.err):
            if output is not None:
                output.close()
        self.out = self.err = None


# --- one call ------------------------------------------------------------------------------

class Call(object):
    """One invocation of a hook by libvirt."""

    def __init__(self, hooks_dir, event, stdin_fd=0, stdout_fd=1, stderr_fd=2):
        self.hooks_dir = hooks_dir.rstrip("/") or "/"
        self.own_dir = self.hooks_dir + "/" + OWN_DIR
        self.base = self.own_dir    # the current generation's directory, once resolved
        self.event = event
        self.stdin_fd, self.stdout_fd, self.stderr_fd = stdin_fd, stdout_fd, stderr_fd
        self.started = time.time()
        self.clock = time.monotonic()
        self.log = dict(LOG_DEFAULTS)
        self.kill_grace = 2.0
        self.generation = ""
        self.daemon = None          # the calling daemon, when the rules asked for it
        self.notes = []
        self.dropins_skipped = []   # host drop-ins (rules.d/*.json) that could not be used
        self.env = None
        self.results = []           # ScriptResult of each script, in run order
        self.running = None         # the ScriptRun being waited for
        self.trust = TrustCheck()

    def run(self) -> int:
        """Dispatch the call; the exit status for libvirt. Never raises."""
        try:
            return self._run()
        except Interrupted as exc:
            return self.interrupted(exc.signum)
        except Exception as exc:  # a fault of ours must never become a traceback or a killed guest
            return self.internal_error(exc)

    def _run(self) -> int:
        event = self.event
        try:
            # One generation for the whole call: its rules and its scripts, locked against pruning.
            self.base, self.generation, _lock = open_current(self.own_dir)
            path = self.base + "/" + CONFIG_FILE
            # It picks the scripts root runs and the file root appends to: root's alone, as a script;
            # so does its cache (config.marshal, used while it belongs to config.json: configcache).
            config = load_config(path, event=(event.driver, event.obj, event.operation),
                                 data=self.trust.read_data(path),
                                 cache=self.trust.read_data(self.base + "/" + CONFIG_CACHE, missing_ok=True))
        except Untrusted as exc:
            return self.own_failure("virthooks: %s: cannot load the configuration: %s" % (event.label, exc), "error")
        except (OSError, ConfigError) as exc:
            return self.config_failure(exc)
        self.log = config["log"]
        self.kill_grace = float(config["kill_grace"])
        self.merge_dropins(config)
        if event.daemon_known or needs_daemon_name(config, event.driver):
            self.daemon = event.daemon
        steps, self.notes = steps_for_event(config, self.hooks_dir, self.base, event.driver, event.obj,
                                            event.operation, event.suboperation, event.extra, self.daemon)
        if not steps:
            return self.finish(None, "no-match")
        return self.run_steps(steps)

    def merge_dropins(self, config) -> None:
        """The host's drop-in rules (hooks/virthooks/rules.d/*.json) after the deployed ones; one that
        cannot be used is skipped, said in syslog and in the call's record, and never fails the call."""
        self.dropins_skipped = merge_dropins(config, self.hooks_dir, self.trust)
        for problem in self.dropins_skipped:
            to_syslog("virthooks: %s: host drop-in %s" % (printable(self.event.label), printable(problem)))

    # -- failures of our own ------------------------------------------------------------------
    def own_failure_code(self) -> int:
        """Exit status after an error of the dispatcher itself: 0 where libvirt would kill a
        running guest (or cannot abort anyway), 1 where it aborts what it was doing."""
        return 1 if self.event.abortable and not self.event.spare_guest else 0

    def own_failure(self, message: str, outcome: str) -> int:
        code = self.own_failure_code()
        if code:
            self.say(message)
        elif self.event.spare_guest:
            message += " (exit 0 anyway: a failed %s makes libvirt kill the running guest)" % self.event.operation
        to_syslog(message)
        self.write_log(self.call_record(outcome, code, message))
        return code

    def config_failure(self, exc) -> int:
        if isinstance(exc, ConfigError):            # its message starts with the path
            problem = str(exc)
        else:
            problem = "%s/%s: %s" % (self.base, CONFIG_FILE, exc.strerror or exc)
        return self.own_failure("virthooks: %s: cannot load the configuration: %s" % (self.event.label, problem),
                                "error")

    def internal_error(self, exc) -> int:
        where = ""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = " at %s:%d" % (os.path.basename(tb.tb_frame.f_code.co_filename), tb.tb_lineno)
        self.stop_running()
        return self.own_failure("virthooks: %s: internal error%s: %s: %s"
                                % (self.event.label, where, type(exc).__name__, exc), "error")

    def interrupted(self, signum: int) -> int:
        killed = self.stop_running()
        message = "virthooks: %s: interrupted by signal %d" % (self.event.label, signum)
        if killed:
            message += "; script '%s' was stopped" % killed
        return self.own_failure(message, "interrupted")

    def stop_running(self) -> str:
        """End the run being waited for, if any, by stopping it (KILLED); its name, or ''."""
        run, self.running = self.running, None
        if run is None:
            return ""
        if not run.pid:             # never started: only its files to close
            run.close()
            return ""
        self.results.append(run.stop(KILLED, self.kill_grace, "was stopped with the dispatcher"))
        return run.step.name

    # -- the scripts ------------------------------------------------------------------------
    def run_steps(self, steps) -> int:
        event = self.event
        xml = None                  # the XML the next script reads, when stdin is spooled
        spool = -1
        if has_stdin_xml(event.driver) and (len(steps) > 1 or event.xml_out or any(s.xpath for s in steps)):
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
                    result = self.execute(step, spool, xml)
                    if result.new_xml is not None:
                        os.close(spool)
                        xml, changed, document = result.new_xml, True, None
                        spool = anon_file(xml)
                self.results.append(result)
                if result.failed:
                    failure = failure or self.judge(step, result)
                    if failure and event.abortable:
                        break
        finally:
            if spool >= 0:
                os.close(spool)
        if failure is None and changed:
            try:
                write_all(self.stdout_fd, xml)
            except OSError as exc:
                failure = "virthooks: %s: could not hand the XML to libvirt: %s" % (event.label, exc.strerror or exc)
        return self.finish(failure, "failed" if failure else "ok")

    def condition(self, document, step):
        """None if the script should run; else its result (skipped, or an error)."""
        from .xmlcond import ConditionError
        try:
            if document.evaluate(step.xpath, step.namespaces):
                return None
            return not_run(step, SKIPPED, "xpath is false")
        except ConditionError as exc:
            return not_run(step, BAD_CONDITION, "its condition could not be evaluated: %s" % exc)

    def script_env(self, step, run_id: str) -> dict:
        """The environment of one script: libvirt's, the event's LIBVIRT_HOOK_* variables, the
        script's name and run id, and its secrets directory if it has one (never one inherited)."""
        if self.env is None:
            self.env = dict(os.environ, **self.event.hook_env())
        env = dict(self.env, VIRTHOOKS_SCRIPT=step.name)
        env[RUN_ID_VAR] = run_id
        env.pop(SECRETS_VAR, None)
        secrets = self.secrets_dir(step)
        if secrets:
            env[SECRETS_VAR] = secrets
        return env

    def secrets_dir(self, step) -> str:
        """The secrets directory of a script of this generation ('' if it has none)."""
        scripts = "%s/%s/" % (self.base, SCRIPTS_DIR)
        if step.source == "rule" and step.path.startswith(scripts):
            directory = "%s/%s/%s" % (self.base, SECRETS_DIR, step.path[len(scripts):])
            if os.isdir(directory):
                return directory
        return ""

    def execute(self, step, spool: int, xml) -> ScriptResult:
        """Run one script (checked first), with its own stdin when the XML is spooled. An exception
        (a signal to us) leaves the run as self.running, for stop_running to end it."""
        try:
            head = self.trust.check_file(step.path)
        except Untrusted as exc:
            return not_run(step, REFUSED, "refused: %s %s" % (step.path, exc))
        problem = format_problem(head)
        if problem:
            return not_run(step, UNRUNNABLE, "could not be executed: %s" % problem)
        run_id = "%d.%d.%d" % (os.getpid(), time.time_ns(), len(self.results))
        env = self.script_env(step, run_id)
        problem = step_environment(env, step, self.base, self.trust)    # VIRTHOOKS_FILES, the rule's env
        if problem:
            return not_run(step, UNRUNNABLE, "could not be started: %s" % problem)
        run = self.running = ScriptRun(step, self.stdin_fd, spool, xml, self.log["output_bytes"], self.event.xml_out)
        result = run.start([step.path] + self.event.args(), env, run_id) or run.wait(self.kill_grace)
        self.running = None
        return result

    def judge(self, step, result):
        """The failure that decides the call's exit status, or None if the script's failure is ignored."""
        event = self.event
        line = "virthooks: %s: script '%s' %s" % (event.label, step.name, result.message or "failed")
        stderr_text = " | ".join(s.strip() for s in result.stderr.strip().splitlines() if s.strip())
        if stderr_text:
            line += ": " + stderr_text[-STDERR_TAIL:]
        if step.on_failure == "ignore":
            to_syslog(printable(line) + " (on_failure: ignore, continuing)", error=False)
            return None
        if step.on_failure == "abortable" and not (event.abortable and not event.spare_guest):
            why = "a failed %s makes libvirt kill the running guest" % event.operation if event.spare_guest \
                else "libvirt does not abort %s" % event.operation
            to_syslog(printable(line) + " (on_failure: abortable, continuing: %s)" % why, error=False)
            return None
        to_syslog(printable(line))
        return line

    def elapsed_ms(self) -> float:
        return round((time.monotonic() - self.clock) * 1000.0, 1)

    def finish(self, failure, outcome) -> int:
        code = 1 if failure else 0
        if failure and self.event.spare_guest:
            code = USER_FAILURE_EXIT    # the entry point fails reconnect for this status only
        if failure:
            self.say(failure)
        if self.log["syslog"] == "all" and not failure:
            to_syslog("%s: %s, %d script(s)" % (printable(self.event.label), outcome, len(self.results)),
                      error=False)
        self.write_log(self.call_record(outcome, code))
        return code

    def call_record(self, outcome: str, code: int, error: str = "") -> dict:
        """The call's log record (one JSON line; the format runlog and logstats read)."""
        event = self.event
        record = {"time": iso_time(self.started), "pid": os.getpid(), "driver": event.driver, "object": event.obj,
                  "operation": event.operation, "suboperation": event.suboperation, "extra": event.extra}
        if self.generation:
            record["generation"] = self.generation
        if self.daemon is not None:
            record["daemon"] = self.daemon
        if self.notes:
            record["notes"] = self.notes
        if self.dropins_skipped:
            record["dropins_skipped"] = self.dropins_skipped
        record.update(result=outcome, exit=code)
        if error:
            record["error"] = error
        record.update(scripts=[r.to_record() for r in self.results], duration_ms=self.elapsed_ms())
        return record

    def say(self, line: str) -> None:
        try:
            write_all(self.stderr_fd, (printable(line) + "\n").encode("utf-8", "surrogateescape"))
        except OSError:
            pass

    def write_log(self, record: dict) -> None:
        path = self.log.get("file")
        if path and not append_line(path, record, self.log["max_bytes"], self.log["backups"]):
            to_syslog("virthooks: %s: %s, exit %s; could not write the log record to %s"
                      % (printable(self.event.label), record.get("result"), record.get("exit"), path))


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
    code = Call(argv[0], Event(argv[1], argv[2:6])).run()
    end(code)


def end(code: int) -> None:
    """Exit without the interpreter's teardown. Everything the call writes went straight to its file
    descriptors (the log, libvirt's stdout and stderr), no atexit handler is registered, and the kernel
    closes the files and releases the locks: Python's finalization (freeing every object and module one by
    one, about a fifth of a hook call's instructions) would only delay libvirt. sys.stdout and sys.stderr
    are flushed first in case anything was buffered there."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)  # pylint: disable=protected-access
