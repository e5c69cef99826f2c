# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything a script started, found and stopped: the timeout and signal paths only.

A script runs in its own process group, but nothing stops it from leaving it: ``setsid``,
``setpgid``, a shell with ``set -m``, a daemon that double-forks. Tracking children as they
are born (a child subreaper, cgroups) would cost every hook call; instead, each script run
gets a unique ``VIRTHOOKS_RUN_ID`` in its environment, which its descendants inherit, and only
when the run must be stopped does this module look for its processes in ``/proc``:

- the script itself, every member of its process group or session,
- every descendant of those (parent links, while the parents live),
- every process whose environment holds the run id (children reparented to init).

What remains possible, and is documented: a process that clears its environment *and* is
no longer a descendant (double fork) escapes. A script that exits normally is never
searched: a helper it leaves running on purpose (started at ``started``, stopped at
``stopped``) keeps running.

Signals go through pidfds after re-reading the process's start time, so a pid that was
reused between the scan and the signal is never hit.
"""

import os
import time

try:
    import _signal
    SIGTERM, SIGKILL, SIGCONT = _signal.SIGTERM, _signal.SIGKILL, _signal.SIGCONT
    _pidfd_send = getattr(_signal, "pidfd_send_signal", None)
except ImportError:  # pragma: no cover
    SIGTERM, SIGKILL, SIGCONT, _pidfd_send = 15, 9, 18, None

RUN_ID_VAR = "VIRTHOOKS_RUN_ID"
KILL_ROUNDS = 200
REAP_TIMEOUT = 5.0


def _stat(pid: int):
    """(state, ppid, pgrp, session, start time) of a live process, or None."""
    try:
        fd = os.open("/proc/%d/stat" % pid, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = data[data.rfind(b")") + 2:].split()
    if len(fields) < 20:
        return None
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3]), fields[19]


def _carries(pid: int, marker: bytes) -> bool:
    try:
        fd = os.open("/proc/%d/environ" % pid, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        chunks = []
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    except OSError:
        return False
    finally:
        os.close(fd)
    return marker in b"\0" + b"".join(chunks)


def members(leader: int, run_id: str) -> dict:
    """{pid: start time} of the live processes that belong to a script run."""
    me = os.getpid()
    marker = ("\0%s=%s\0" % (RUN_ID_VAR, run_id)).encode()
    found = {}
    parents = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        names = []
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me:
            continue
        info = _stat(pid)
        if info is None or info[0] in (b"Z", b"X", b"x"):
            continue
        _state, ppid, pgrp, session, started = info
        parents[pid] = (ppid, started)
        if pid == leader or pgrp == leader or session == leader or (ppid != 2 and _carries(pid, marker)):
            found[pid] = started
    children = {}
    for pid, (ppid, _started) in parents.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(found) + [leader]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found[child] = parents[child][1]
                stack.append(child)
    return found


def _signal_process(pid: int, started: bytes, sig: int) -> None:
    if _pidfd_send is not None:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return
        try:
            info = _stat(pid)
            if info is not None and info[4] == started:
                _pidfd_send(pidfd, sig)
        except OSError:
            pass
        finally:
            os.close(pidfd)
        return
    try:  # pragma: no cover - kernels without pidfds (< 5.3)
        os.kill(pid, sig)
    except OSError:
        pass


def signal_all(procs: dict, sig: int) -> None:
    for pid, started in procs.items():
        _signal_process(pid, started, sig)


def _reap(pid: int, timeout: float):
    """The wait status of our child pid, waiting at most timeout seconds (None if it won't die)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def stop(leader: int, run_id: str, grace: float):
    """Stop a script run: SIGTERM to all its processes, SIGKILL to what is left after grace.

    The leader (our child) is reaped last, so its pid and process group id cannot be reused
    while we search. Every wait is bounded. Returns the leader's wait status, or None if it
    could not be reaped (a process stuck in the kernel).
    """
    procs = members(leader, run_id)
    signal_all(procs, SIGTERM)
    signal_all(procs, SIGCONT)       # a stopped process handles SIGTERM only once continued
    deadline = time.monotonic() + grace
    while procs and time.monotonic() < deadline:
        time.sleep(0.02)
        procs = members(leader, run_id)
    for _ignored in range(KILL_ROUNDS):
        if not procs:
            break
        signal_all(procs, SIGKILL)
        time.sleep(0.002)
        procs = members(leader, run_id)
    return _reap(leader, REAP_TIMEOUT)
