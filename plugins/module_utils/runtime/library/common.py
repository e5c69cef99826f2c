# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every block of the library shares: one hook call, its state files, failures, undo, commands.

A step runs as its own process (the launcher a generation holds, started by the dispatcher), never
inside the dispatcher. It never calls libvirt (virsh would deadlock libvirtd): everything it needs
is in argv, the XML on stdin, its parameters and the host's own files. Its parameters (credentials
among them) are the root-only file ``$VIRTHOOKS_SECRETS/PARAMS`` of the generation, never script text.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

from ..fileops import atomic_write

PARAMS_FILE = "PARAMS"             # $VIRTHOOKS_SECRETS/PARAMS: the block's parameters as JSON
DEFAULT_PATHS = {
    "state": "/run/virthooks",      # per-guest state files: /run/virthooks/<block>/<guest>.json
    "sys": "/sys",
    "proc": "/proc",
    "cgroup": "/sys/fs/cgroup",
    "systemd": "/run/systemd/system",
    "nft": "/usr/sbin/nft",
    "iptables": "/usr/sbin/iptables",
    "ip6tables": "/usr/sbin/ip6tables",
    "qemu_img": "/usr/bin/qemu-img",
    "systemctl": "/bin/systemctl",
    "modprobe": "/sbin/modprobe",
    "settle": "5",                  # seconds to wait for the kernel to settle a sysfs change
}


class Fail(Exception):
    """A failure libvirt shows: one line, no traceback."""


class Hook:
    """One call of a block's step: libvirt's arguments, the XML on stdin (parsed on first use), the
    block's parameters, the host paths it works on, and this guest's state file."""

    def __init__(self, block: str, argv: list, stdin, params: dict = None, paths: dict = None):
        args = list(argv[1:5]) + ["-"] * (4 - len(argv[1:5]))
        self.object, self.operation, self.suboperation, self.extra = args
        self.block = block
        self.params = params or {}
        self.paths = dict(DEFAULT_PATHS, **(paths or {}))
        self._stdin = stdin
        self._xml = None

    @property
    def xml(self):
        if self._xml is None:
            data = self._stdin.read()
            try:
                self._xml = ET.fromstring(data) if data.strip() else ET.Element("domain")
            except ET.ParseError as exc:
                raise Fail("the XML on stdin is not well-formed (%s)" % exc)
        return self._xml

    # -- state ---------------------------------------------------------------------------------
    def state_dir(self) -> str:
        return os.path.join(self.paths["state"], self.block)

    def state_path(self, name: str = None) -> str:
        # Guest names never build a path outside the state dir: everything but [A-Za-z0-9_-] is %-quoted.
        name = self.object if name is None else name
        safe = urllib.parse.quote(name, safe="").replace(".", "%2E").replace("~", "%7E")
        return os.path.join(self.state_dir(), safe + ".json")

    def load_state(self):
        try:
            with open(self.state_path()) as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise Fail("cannot read the state file %s: %s" % (self.state_path(), exc))

    def save_state(self, state: dict) -> None:
        path = self.state_path()
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            atomic_write(path, (json.dumps(state, sort_keys=True) + "\n").encode(), 0o600)
        except OSError as exc:
            raise Fail("cannot write the state file %s: %s" % (path, exc))

    def drop_state(self) -> None:
        try:
            os.unlink(self.state_path())
        except FileNotFoundError:
            pass

    def all_states(self) -> dict:
        """Every guest's state of this block (for blocks whose effect is shared by guests)."""
        out = {}
        try:
            names = os.listdir(self.state_dir())
        except FileNotFoundError:
            return out
        for name in sorted(names):
            if name.endswith(".json") and not name.startswith("."):
                try:
                    with open(os.path.join(self.state_dir(), name)) as f:
                        out[urllib.parse.unquote(name[:-5])] = json.loads(f.read())
                except (OSError, ValueError):
                    continue
        return out

    def lock(self) -> int:
        """One lock per block on this host: guests start in parallel and share pools and cgroups."""
        try:
            os.makedirs(self.state_dir(), mode=0o700, exist_ok=True)
            fd = os.open(os.path.join(self.state_dir(), ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise Fail("cannot create the lock in %s: %s" % (self.state_dir(), exc))
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd


class Undo:
    """What a step did so far, undone in reverse order when a later part fails."""

    def __init__(self):
        self.actions = []

    def push(self, what: str, func, *args) -> None:
        self.actions.append((what, func, args))

    def rollback(self) -> list:
        problems = []
        while self.actions:
            what, func, args = self.actions.pop()
            try:
                func(*args)
            except Exception as exc:  # keep undoing the rest
                problems.append("%s: %s" % (what, exc))
        return problems


def undo_message(exc: Exception, undo: Undo, done: str) -> Fail:
    """The failure of a step after its undo: what failed, then what the rollback did."""
    problems = undo.rollback()
    return Fail("%s; %s" % (exc, done if not problems else "rollback FAILED: " + "; ".join(problems)))


def run(cmd: list, input_text: str = None, timeout: float = 60) -> str:
    """Run a command (absolute path), return stdout; a failure is a Fail naming it and its stderr."""
    try:
        proc = subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise Fail("%s is not installed" % cmd[0])
    except subprocess.TimeoutExpired:
        raise Fail("%s did not finish within %d s" % (" ".join(cmd[:3]), timeout))
    if proc.returncode != 0:
        raise Fail("%s failed (exit status %d): %s" % (" ".join(cmd[:3]), proc.returncode,
                                                       one_line(proc.stderr or proc.stdout)))
    return proc.stdout


def one_line(text, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_file(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write_file(path: str, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def parse_cpuset(text: str) -> set:
    """'0-3,^2,5' -> {0, 1, 3, 5}: libvirt's and the kernel's list syntax, and systemd's, whose
    `systemctl show` separates ranges with spaces ('0 2-3')."""
    cpus, excluded = set(), set()
    for item in text.replace(",", " ").split():
        target = excluded if item.startswith("^") else cpus
        part = item.lstrip("^")
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                target.update(range(lo, hi + 1))
            else:
                target.add(int(part))
        except ValueError:
            raise Fail("bad CPU list %r" % text)
    return cpus - excluded


def format_cpuset(cpus) -> str:
    """{0, 1, 2, 5} -> '0-2,5'."""
    out, span = [], []
    for cpu in sorted(cpus):
        if span and cpu == span[-1] + 1:
            span.append(cpu)
            continue
        if span:
            out.append(_span(span))
        span = [cpu]
    if span:
        out.append(_span(span))
    return ",".join(out)


def _span(span: list) -> str:
    return str(span[0]) if len(span) == 1 else "%d-%d" % (span[0], span[-1])


def load_params() -> dict:
    """The block's parameters, from the root-only file $VIRTHOOKS_SECRETS/PARAMS of the generation."""
    directory = os.environ.get("VIRTHOOKS_SECRETS")
    if not directory:
        raise Fail("no parameters: VIRTHOOKS_SECRETS is not set (library scripts run through the virthooks dispatcher)")
    try:
        with open(os.path.join(directory, PARAMS_FILE)) as f:
            params = json.loads(f.read())
    except (OSError, ValueError) as exc:
        raise Fail("cannot read the parameters in %s: %s" % (directory, type(exc).__name__))
    if not isinstance(params, dict):
        raise Fail("the parameters in %s are not a JSON object" % directory)
    return params


def log(msg: str) -> None:
    """A line for the dispatcher's log (scripts' stdout goes there, never to libvirt)."""
    sys.stdout.write("%s %s\n" % (time.strftime("%H:%M:%S"), msg))


def main(block: str, steps: dict, step: str, paths: dict = None) -> None:
    """Run one step of a block for this process's hook call; a failure is one stderr line and exit 1."""
    hook = Hook(block, sys.argv, sys.stdin, paths=paths)
    try:
        hook.params = load_params()
        steps[step](hook)
    except Fail as exc:
        fail(block, hook.object, one_line(exc, 1000))
    except Exception as exc:  # an unexpected error is still one line for libvirt
        fail(block, hook.object, "unexpected %s: %s" % (type(exc).__name__, one_line(exc)))


def fail(block: str, guest: str, message: str) -> None:
    sys.stderr.write("virthooks %s: %s: %s\n" % (block, guest, message))
    sys.exit(1)  # pylint: disable=ansible-bad-function  # a step of a hook on the host, not a module
