# ---- common.py: shared by every virthooks library block (standard library only, Python >= 3.9) ----
# The role prepends BLOCK, STEP, PARAMS and PATHS (overrides, empty on real hosts) and appends the
# block's own code; main() at the end runs STEPS[STEP]. A script never calls libvirt (virsh would
# deadlock libvirtd): everything it needs is in argv, the XML on stdin and the host's own files.
import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

DEFAULT_PATHS = {
    "state": "/run/virthooks",      # per-guest state files: /run/virthooks/<block>/<guest>.json
    "sys": "/sys",
    "proc": "/proc",
    "cgroup": "/sys/fs/cgroup",
    "systemd": "/run/systemd/system",
    "nft": "/usr/sbin/nft",
    "qemu_img": "/usr/bin/qemu-img",
    "systemctl": "/bin/systemctl",
    "modprobe": "/sbin/modprobe",
    "settle": "5",                  # seconds to wait for the kernel to settle a sysfs change
}
P = dict(DEFAULT_PATHS, **PATHS)  # noqa: F821 (PATHS is defined by the generated header)


class Fail(Exception):
    """A failure libvirt shows: one line, no traceback."""


class Hook:
    """One call: libvirt's arguments, the XML on stdin (parsed on first use), this guest's state file."""

    def __init__(self, argv, stdin):
        args = list(argv[1:5]) + ["-"] * (4 - len(argv[1:5]))
        self.object, self.operation, self.suboperation, self.extra = args
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
    def state_dir(self):
        return os.path.join(P["state"], BLOCK)  # noqa: F821

    def state_path(self, name=None):
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

    def save_state(self, state):
        path = self.state_path()
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(json.dumps(state, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise Fail("cannot write the state file %s: %s" % (path, exc))

    def drop_state(self):
        try:
            os.unlink(self.state_path())
        except FileNotFoundError:
            pass

    def all_states(self):
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

    def lock(self):
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

    def push(self, what, func, *args):
        self.actions.append((what, func, args))

    def rollback(self):
        problems = []
        while self.actions:
            what, func, args = self.actions.pop()
            try:
                func(*args)
            except Exception as exc:  # keep undoing the rest
                problems.append("%s: %s" % (what, exc))
        return problems


def run(cmd, input_text=None, timeout=60):
    """Run a command (absolute path), return stdout; a failure is a Fail naming it and its stderr."""
    try:
        proc = subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise Fail("%s is not installed" % cmd[0])
    except subprocess.TimeoutExpired:
        raise Fail("%s did not finish within %d s" % (" ".join(cmd[:3]), timeout))
    if proc.returncode != 0:
        raise Fail("%s failed (exit status %d): %s" % (" ".join(cmd[:3]), proc.returncode, one_line(proc.stderr or proc.stdout)))
    return proc.stdout


def one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_file(path):
    with open(path) as f:
        return f.read().strip()


def write_file(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def parse_cpuset(text):
    """'0-3,^2,5' -> {0, 1, 3, 5} (libvirt's and the kernel's list syntax)."""
    cpus, excluded = set(), set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        target = excluded if part.startswith("^") else cpus
        part = part.lstrip("^")
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


def format_cpuset(cpus):
    """{0, 1, 2, 5} -> '0-2,5'."""
    out, run_ = [], []
    for cpu in sorted(cpus):
        if run_ and cpu == run_[-1] + 1:
            run_.append(cpu)
            continue
        if run_:
            out.append(str(run_[0]) if len(run_) == 1 else "%d-%d" % (run_[0], run_[-1]))
        run_ = [cpu]
    if run_:
        out.append(str(run_[0]) if len(run_) == 1 else "%d-%d" % (run_[0], run_[-1]))
    return ",".join(out)


def main():
    hook = Hook(sys.argv, sys.stdin)
    try:
        STEPS[STEP](hook)  # noqa: F821 (STEPS comes from the block, STEP from the header)
    except Fail as exc:
        sys.stderr.write("virthooks %s: %s: %s\n" % (BLOCK, hook.object, one_line(exc, 1000)))  # noqa: F821
        sys.exit(1)
    except Exception as exc:  # an unexpected error is still one line for libvirt
        sys.stderr.write("virthooks %s: %s: unexpected %s: %s\n" % (BLOCK, hook.object, type(exc).__name__, one_line(exc)))  # noqa: F821
        sys.exit(1)


def log(msg):
    """A line for the dispatcher's log (scripts' stdout goes there, never to libvirt)."""
    sys.stdout.write("%s %s\n" % (time.strftime("%H:%M:%S"), msg))
