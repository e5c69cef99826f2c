"""The chaos soak: guests keep starting and stopping on a real libvirtd while the hooks change under them.

    .venv/bin/python -m tests.soak.engine [--minutes 30] [--calls 5000] [--guests 4] [--seed N] [--work DIR]
    (make soak: the long run; tests/soak/test_soak.py: the 2-minute run in the suite)

A private libvirtd (tests/support/private_libvirt.py: its own namespaces, /etc/libvirt, /run, a small tmpfs for the
dispatcher's log and one for TMPDIR, /dev/log read by us) runs N tiny TCG guests, each cycled by its own thread
(start, destroy, shutdown, save/restore, managedsave). Every qemu event runs the scripts of the current
generation; each script appends `D<deploy> <script> <VIRTHOOKS_RUN_ID> <argv>` to a file of ours. In parallel,
at seeded random moments:
- control: deploys of the role that add, remove, rename and edit scripts, rules and a library block (notify);
  the same deploys killed with SIGKILL at a random point (ansible-playbook's process group; half the time
  its workers too, which run in sessions of their own, so the module stops where it is);
  `virthooks rollback --reload`; the role's own rollback (the daemon stopped with SIGSTOP while a deploy adds
  an entry point, so its reload check fails); SIGHUP; a daemon restart with the guests running (reconnect);
- disks: TMPDIR full, the log directory full, the log directory read-only, for seconds;
- readers: `virthooks metrics` every 2 s, `playbooks/report.yml` every 30 s, and our own tail of the log.
At the end it checks what the issue asks (see Soak.verdict) and prints the figures; the exit status is 0 only
if no failure is ours.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.support.ansible import ansible_env
from tests.support.paths import REPO
from tests.support.libvirt_objects import guest_xml, start_webhook
from tests.support.private_libvirt import PrivateHost, inventory

CLI = "/etc/libvirt/hooks/virthooks/virthooks"
POOL = ("alpha", "bravo", "charlie", "delta", "echo")
OPS = ("prepare", "start", "started", "stopped", "release", "restore", "reconnect")
OBJECTS = (["*"], ["soak-[01]"], ["soak-2", "soak-3"], ["soak-?"])
NOTIFY_OPS = (["started", "stopped"], ["started"], ["prepare", "release"])
WEBHOOK_PORT = 18099
# What virsh says when the daemon is away (restarting, stopped with SIGSTOP): expected under our faults.
DAEMON_AWAY = re.compile(r"Failed to connect|End of file while reading|Cannot recv data|Cannot write data|"
                         r"client socket is closed|Connection reset|Broken pipe|no connection driver|"
                         r"failed to connect to the hypervisor|monitor socket did not show up|"
                         r"Timed out during operation|cannot acquire state change lock|keepalive timeout")
RACE = re.compile(r"domain is not running|already running|Requested operation is not valid|"
                  r"domain is already active|has a managed save image|Domain not found")


def descendants(pid: int) -> list:
    """Every process below pid, found through /proc (children of children included)."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_playbook(pid: int, workers_too: bool) -> list:
    """SIGKILL ansible-playbook's process group; with workers_too, first stopped so that it forks no more
    workers, also the process group of each worker (and so the module it runs). Returns the processes left
    running (the workers, in sessions of their own, without workers_too)."""
    groups = {pid}
    left = [] if workers_too else list(descendants(pid))
    if workers_too:
        try:
            os.killpg(pid, signal.SIGSTOP)
        except OSError:
            pass                    # it has just ended: its workers are looked for all the same
        for child in descendants(pid):
            try:
                groups.add(os.getpgid(child))
            except OSError:
                pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    return left


def wait_gone(pids: list, timeout: float = 120) -> None:
    """Until these processes have ended (a zombie counts as ended), or timeout seconds."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except (OSError, IndexError):
                break
            time.sleep(0.1)


class Plan(object):
    """What one deploy declares: its scripts (with rules) and whether the notify block is on."""

    def __init__(self, n: int, scripts: list, notify):
        self.n, self.scripts, self.notify = n, scripts, notify

    def mine(self, obj: str, op: str) -> set:
        """The names of our own scripts this deploy runs for an event (the notify block's apart)."""
        out = set()
        for s in self.scripts:
            if s.get("driver", "qemu") != "qemu" or not s.get("enabled", True):
                continue
            if "*" not in s["operations"] and op not in s["operations"]:
                continue
            if any(fnmatch.fnmatchcase(obj, g) for g in s.get("objects", ["*"])):
                out.add(s["name"])
        return out

    def runs_notify(self, obj: str, op: str) -> bool:
        return bool(self.notify) and op in self.notify["operations"] and fnmatch.fnmatchcase(obj, "soak-*")


def script_text(n: int, name: str, rec: Path, fail: bool = False) -> str:
    # Silent on stdout for migrate/restore begin: libvirt reads it back as the domain XML there.
    return ("#!/bin/sh\ncase $2 in migrate|restore) ;; *) echo \"D%d\";; esac\n"
            "echo \"D%d %s $VIRTHOOKS_RUN_ID $1 $2 $3\" >> %s\n%s" % (n, n, name, rec, "exit 3\n" if fail else ""))


def make_plan(rng: random.Random, n: int, rec: Path) -> Plan:
    # rec-all runs on every qemu event, so every call reaches the dispatcher and is seen in `rec`.
    scripts = [{"name": "rec-all", "content": script_text(n, "rec-all", rec), "order": rng.randint(1, 99)},
               # a script's own failure, on an event libvirt cannot abort: counted apart
               {"name": "flaky", "content": script_text(n, "flaky", rec, fail=True), "operations": ["stopped"],
                "on_failure": "ignore"}]
    for base in rng.sample(POOL, rng.randint(1, len(POOL))):
        name = base + rng.choice(("", "-renamed"))
        ops = ["*"] if rng.random() < 0.3 else sorted(rng.sample(OPS, rng.randint(1, 3)))
        script = {"name": name, "content": script_text(n, name, rec), "operations": ops,
                  "objects": list(rng.choice(OBJECTS)), "order": rng.randint(1, 99)}
        if rng.random() < 0.15:
            script["enabled"] = False
        scripts.append(script)
    for s in scripts:
        s.setdefault("operations", ["*"])
    notify = None
    if rng.random() < 0.5:
        notify = {"url": "http://soak:s3cret-%d@127.0.0.1:%d/events" % (n, WEBHOOK_PORT), "guests": ["soak-*"],
                  "operations": list(rng.choice(NOTIFY_OPS)), "timeout": 2, "retries": 0}
    return Plan(n, scripts, notify)


class Soak(object):
    def __init__(self, work: Path, seed: int, seconds: float, max_calls: int = 0, guests: int = 4,
                 say=print):
        self.work, self.seed, self.seconds, self.max_calls, self.n_guests = work, seed, seconds, max_calls, guests
        self.say = say
        self.rng = random.Random(seed)
        self.rec = work / "rec" / "calls"
        self.lock = threading.Lock()
        self.stopping = threading.Event()      # the end: every thread winds down
        self.calm = threading.Event()           # control and disk faults stop
        self.tail_done = threading.Event()      # the last pass over the log
        self.round_done = threading.Event()     # every control fault was started once
        self.disk_round_done = threading.Event()
        self.go = threading.Event()             # guests may act (cleared during a restart)
        self.go.set()
        self.busy = 0
        self.plans = {}
        self.deploys = 0
        self.faults = {}
        self.failures = {}                       # cause -> count (ours)
        self.expected = {}                       # cause -> count (expected under the faults, not ours)
        self.own_script_failures = 0
        self.examples = {}
        self.cycles = 0
        self.disk_faults = []                    # (kind, start, end)
        self.daemon_stopped = []                 # [start, end] of each SIGSTOP of libvirtd (end None while on)
        self.records = {}                        # our tail of the dispatcher's log: line -> record
        self.bad_lines = []
        self.metrics_runs = self.metrics_failed = 0
        self.reports = self.reports_failed = 0
        self.expected_generation = None
        self.been_current = set()               # every generation seen current after a deploy or rollback
        self.last_plan = None
        self.host = None
        self.webhook = None
        self.deploy_seconds = 10.0
        self.outputs = []                        # what the deploys printed (for the secret check)

    # -- bookkeeping --------------------------------------------------------------------------
    def count(self, table: dict, cause: str, example: str = "") -> None:
        with self.lock:
            table[cause] = table.get(cause, 0) + 1
            if example and cause not in self.examples:
                self.examples[cause] = example[-600:]

    def fault(self, kind: str) -> None:
        self.count(self.faults, kind)

    def log_path(self) -> Path:
        return self.host.view(self.host.work / "log" / "virthooks.jsonl")

    # -- the host -----------------------------------------------------------------------------
    def setup(self) -> None:
        self.host = PrivateHost(self.work / "host", "vhsoak", str(uuid.uuid4()), netns=True, log_kb=2048, tmp_kb=8192)
        self.rec = self.host.work / "rec" / "calls"
        (self.work / "metrics").mkdir(exist_ok=True)
        self.webhook = start_webhook(self.host.work / "webhook.jsonl", WEBHOOK_PORT, prefix=self.host.enter)
        first = self.next_plan()
        proc = self.deploy(first)
        if proc.returncode != 0:
            raise AssertionError("the first deploy failed: %s" % proc.stdout[-3000:])
        self.host.start_daemons()
        for i in range(self.n_guests):
            self.host.define(guest_xml("soak-%d" % i))
        self.expected_generation = self.current()
        self.been_current.add(self.expected_generation)

    def next_plan(self) -> Plan:
        with self.lock:
            self.deploys += 1
            plan = make_plan(self.rng, self.deploys, self.rec)
            self.plans[plan.n] = plan
            return plan

    def current(self) -> str:
        return os.readlink(str(self.host.view("/etc/libvirt/hooks/virthooks/current"))).rsplit("/", 1)[-1]

    def deploy_cmd(self, plan: Plan, network: bool = False, **extra) -> list:
        scripts = list(plan.scripts)
        if network:
            scripts.append({"name": "net-watch", "driver": "network", "content": "#!/bin/sh\nexit 0\n"})
        host = {"libvirt_hooks_scripts": scripts, "libvirt_hooks_restart": "auto",
                "libvirt_hooks_log": {"file": str(self.host.work / "log" / "virthooks.jsonl"), "max_bytes": 262144,
                                      "backups": 3}}
        if plan.notify:
            host["libvirt_hooks_library"] = {"notify": plan.notify}
        host.update(extra)
        inv = inventory([self.host], sys.executable)
        inv["hypervisors"]["hosts"][self.host.name].update(host)
        path = self.work / ("deploy-%d.json" % plan.n)
        path.write_text(json.dumps(inv))
        return [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(path),
                str(REPO / "playbooks" / "deploy_hooks.yml")]

    def ansible_env(self) -> dict:
        return ansible_env(TMPDIR=str(self.host.work / "tmp"))

    def deploy(self, plan: Plan, **kw) -> subprocess.CompletedProcess:
        began = time.monotonic()
        proc = subprocess.run(self.deploy_cmd(plan, **kw), capture_output=True, text=True, env=self.ansible_env(),
                              cwd=str(REPO), timeout=900, check=False)
        if proc.returncode == 0 and not kw:
            self.deploy_seconds = time.monotonic() - began
        with self.lock:
            self.outputs.append(proc.stdout + proc.stderr)
        return proc

    def validate(self, after: str) -> None:
        with self.lock:
            self.been_current.add(self.current())
        proc = self.host.run(CLI, "validate", check=False, timeout=120)
        if proc.returncode != 0:
            # The problems, not the warnings every run has; the whole output is kept in the work directory.
            with open(self.work / "validate-failures.txt", "a") as f:
                f.write("after %s:\n%s%s\n" % (after, proc.stdout, proc.stderr))
            problems = [line for line in (proc.stdout + proc.stderr).splitlines() if not line.startswith("WARN")]
            self.count(self.failures, "host does not validate after " + after, "\n".join(problems)[:600])

    def stopped_during(self, start: float, end: float) -> bool:
        """Whether libvirtd was stopped (SIGSTOP) at some moment between start and end."""
        with self.lock:
            return any(s < end and (e is None or e > start) for s, e in self.daemon_stopped)

    def disk_fault_during(self, start: float, end: float, prefix: str = "") -> bool:
        """Whether a disk fault (of a kind starting with prefix) was on at some moment between start and end."""
        with self.lock:
            return any(s < end and (e is None or e > start) and k.startswith(prefix) for k, s, e in self.disk_faults)

    # -- control: deploys, kills, rollbacks, reloads, restarts ----------------------------------
    def control(self) -> None:
        actions = (("deploy", 3), ("deploy-killed", 3), ("virthooks-rollback", 1), ("role-rollback", 0.5),
                   ("sighup", 1.5), ("restart", 1))
        names = [a for a, _w in actions]
        weights = [w for _a, w in actions]
        first = self.rng.sample(names, len(names))    # every kind once early on (the 2-minute run too)
        while not self.calm.wait(self.rng.uniform(0.5, 3)):
            action = first.pop(0) if first else self.rng.choices(names, weights)[0]
            if not first:
                self.round_done.set()
            try:
                getattr(self, "do_" + action.replace("-", "_"))()
            except Exception as exc:  # the soak goes on; the cause is counted as ours
                self.count(self.failures, "soak control raised during " + action, repr(exc))

    def do_deploy(self) -> None:
        plan = self.next_plan()
        began = time.monotonic()
        proc = self.deploy(plan)
        self.fault("deploy")
        if proc.returncode == 0:
            with self.lock:
                self.last_plan = plan
            self.expected_generation = self.current()
        elif self.disk_fault_during(began, time.monotonic()):
            self.count(self.expected, "deploy failed under a disk fault", proc.stdout[-1500:])
        else:
            self.count(self.failures, "deploy failed", proc.stdout[-3000:])
        self.validate("a deploy")

    def do_deploy_killed(self) -> None:
        for _attempt in range(3):     # a deploy faster than the last one may end before its kill: again
            plan = self.next_plan()
            proc = subprocess.Popen(self.deploy_cmd(plan), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=self.ansible_env(), cwd=str(REPO), start_new_session=True)
            # Kill it anywhere between its start and its end (as long as the last whole deploy took).
            try:
                proc.wait(timeout=self.rng.uniform(0.05, 1.0) * self.deploy_seconds)
            except subprocess.TimeoutExpired:
                break
            self.fault("deploy finished before its kill")
            if proc.returncode == 0:
                with self.lock:
                    self.last_plan = plan
                self.expected_generation = self.current()
            self.validate("a deploy")
        else:
            return
        # Ansible's workers run in sessions of their own (WorkerProcess calls setsid): killing the playbook's
        # process group leaves the module a worker runs going on to its end, as when an operator kills
        # ansible-playbook. Half the time the workers and their modules are killed too, as when the controller
        # dies: the deploy then stops wherever it is.
        workers_too = self.rng.random() < 0.5
        left = kill_playbook(proc.pid, workers_too)
        proc.wait()
        # A worker left running finishes its module, and may switch to its generation after any moment we look:
        # wait for it, so that the generation is seen current (been_current) before a later deploy replaces it.
        wait_gone(left)
        self.fault("ansible-playbook SIGKILL, its workers too" if workers_too
                   else "ansible-playbook SIGKILL, its worker runs on")
        time.sleep(0.5)
        self.validate("a killed deploy")   # waits for a deploy that runs on (validate holds the deploy lock shared)
        self.expected_generation = None    # the old one or the new one: the next deploy or rollback decides

    def do_virthooks_rollback(self) -> None:
        before = self.current()
        proc = self.host.run(CLI, "rollback", "--reload", check=False, timeout=120)
        self.fault("virthooks rollback")
        if proc.returncode == 0:
            self.expected_generation = self.current()
            with self.lock:
                self.last_plan = None      # the rolled-back-to generation is named by the records' tokens
            if self.expected_generation == before:
                self.count(self.failures, "virthooks rollback changed nothing", proc.stdout + proc.stderr)
            elif self.expected_generation not in self.been_current:
                # A generation a killed deploy wrote and never switched to (issue 25).
                self.count(self.failures, "virthooks rollback went to a generation that was never current",
                           "%s -> %s" % (before, self.expected_generation))
        elif "nothing to roll back to" in proc.stdout + proc.stderr:
            self.count(self.expected, "virthooks rollback: no previous generation")
        elif self.disk_fault_during(time.monotonic() - 120, time.monotonic()):
            self.count(self.expected, "virthooks rollback failed under a disk fault", proc.stdout + proc.stderr)
        else:
            self.count(self.failures, "virthooks rollback failed", proc.stdout + proc.stderr)
        self.validate("virthooks rollback")

    def do_role_rollback(self) -> None:
        if self.host.view("/etc/libvirt/hooks/network").exists():
            # A role rollback stopped by a disk fault left the network entry point: this deploy would not add
            # it, so nothing would reload and fail. A plain deploy removes it first.
            self.do_deploy()
            if self.host.view("/etc/libvirt/hooks/network").exists():     # that deploy met a disk fault
                self.count(self.expected, "role rollback not injected: a network entry point was left")
                return
        before = self.current()
        pid = self.host.daemon_pid()
        plan = self.next_plan()
        began = time.monotonic()
        stopped = [began, None]
        with self.lock:
            self.daemon_stopped.append(stopped)
        os.kill(pid, signal.SIGSTOP)
        try:
            proc = self.deploy(plan, network=True, libvirt_hooks_daemon_timeout=4)
        finally:
            os.kill(pid, signal.SIGCONT)
            stopped[1] = time.monotonic() + 2      # what it queued meanwhile runs on its return
        self.fault("role rollback (daemon hung at the reload)")
        if proc.returncode == 0 or "Rolled back to generation %s" % before not in proc.stdout:
            if proc.returncode != 0 and self.disk_fault_during(began, time.monotonic()):
                # A full TMPDIR stops Ansible itself (AnsiballZ cannot unpack a module): nothing can run,
                # the rollback included; the generation check below still holds.
                self.count(self.expected, "role rollback failed under a disk fault", proc.stdout[-1500:])
                self.expected_generation = None
                self.validate("the role's rollback")
                return
            self.count(self.failures, "the role did not roll back", proc.stdout[-3000:])
        elif self.current() != before:
            self.count(self.failures, "the role's rollback left another generation current", before)
        self.validate("the role's rollback")

    def do_sighup(self) -> None:
        pid = self.host.daemon_pid()
        if pid:
            os.kill(pid, signal.SIGHUP)
            self.fault("SIGHUP")
            time.sleep(0.5)
            if self.host.daemon_pid() != pid:
                self.count(self.failures, "libvirtd did not survive its SIGHUP", str(pid))

    def do_restart(self) -> None:
        self.go.clear()
        try:
            deadline = time.monotonic() + 300
            while self.busy and time.monotonic() < deadline:
                time.sleep(0.05)
            running = {}
            if not any(self.host.virsh("domstate", "soak-%d" % i, check=False, timeout=60).stdout.strip() == "running"
                       for i in range(self.n_guests)):
                # A restart is about the running guests: have one (its worker stops it again later).
                self.virsh_op("soak-0", "start", "soak-0")
            for i in range(self.n_guests):
                name = "soak-%d" % i
                if self.host.virsh("domstate", name, check=False, timeout=60).stdout.strip() == "running":
                    running[name] = self.host.qemu_pid(name)
            self.host.restart_libvirtd()
            self.fault("daemon restart with %d guest(s) running" % len(running) if running else
                       "daemon restart, no guest running")
            for name, qemu in running.items():
                alive = qemu and Path("/proc", str(qemu)).exists()
                state = self.host.virsh("domstate", name, check=False, timeout=60).stdout.strip()
                if not alive or state != "running" or self.host.qemu_pid(name) != qemu:
                    self.count(self.failures, "a running guest did not survive a daemon restart",
                               "%s: qemu %s alive=%s state=%s" % (name, qemu, alive, state))
        finally:
            self.go.set()

    # -- disks ----------------------------------------------------------------------------------
    def disks(self) -> None:
        kinds = ("TMPDIR full", "log directory full", "log directory read-only")
        first = self.rng.sample(kinds, len(kinds))
        while not self.calm.wait(self.rng.uniform(2, 8)):
            kind = first.pop(0) if first else self.rng.choice(kinds)
            if not first:
                self.disk_round_done.set()
            seconds = self.rng.uniform(1, 4)
            target = self.host.work / ("tmp" if kind.startswith("TMPDIR") else "log")
            entry = [kind, time.monotonic(), None]
            with self.lock:
                self.disk_faults.append(entry)
            if kind.endswith("read-only"):
                for _attempt in range(50):   # EBUSY while a writer has a file open
                    if self.host.run("mount", "-o", "remount,ro", str(target), check=False).returncode == 0:
                        break
                    time.sleep(0.02)
                else:
                    self.count(self.expected, "log directory busy, not remounted read-only")
                time.sleep(seconds)
                for _attempt in range(50):
                    if self.host.run("mount", "-o", "remount,rw", str(target), check=False).returncode == 0:
                        break
                    time.sleep(0.1)
            else:
                self.host.run("sh", "-c", "dd if=/dev/zero of=%s/fill bs=1k 2>/dev/null; true" % target, check=False)
                time.sleep(seconds)
                self.host.run("rm", "-f", "%s/fill" % target, check=False)
            entry[2] = time.monotonic()
            self.fault(kind)

    # -- readers -------------------------------------------------------------------------------
    def tail(self) -> None:
        """Every record the dispatcher wrote, read as it is written (the log rotates at 256 KiB, 3 backups)."""
        offsets = {}
        while True:
            last_pass = self.tail_done.is_set()
            base = self.log_path()
            for path in [Path(str(base) + ".%d" % i) for i in (3, 2, 1)] + [base]:
                try:
                    with open(path, "rb") as f:
                        key = os.fstat(f.fileno()).st_ino
                        f.seek(offsets.get(key, 0))
                        data = f.read()
                except OSError:
                    continue
                end = data.rfind(b"\n") + 1
                offsets[key] = offsets.get(key, 0) + end
                for line in data[:end].splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        with self.lock:
                            self.bad_lines.append(line)
                        continue
                    with self.lock:
                        self.records[line] = record
            if last_pass:
                return
            time.sleep(0.3)

    def metrics(self) -> None:
        while not self.stopping.wait(2):
            self.run_metrics()

    def run_metrics(self) -> subprocess.CompletedProcess:
        """The metrics job must keep exporting under every disk fault: with the log directory full or read-only
        it cannot save its state there, says so in one warning line and still writes virthooks.prom (exit 0).
        Any failure is ours, and so is a warning while the log directory was fine."""
        began = time.monotonic()
        proc = self.host.run(CLI, "metrics", "--textfile-dir", str(self.work / "metrics"), check=False, timeout=120)
        with self.lock:
            self.metrics_runs += 1
        if proc.returncode != 0:
            with self.lock:
                self.metrics_failed += 1
            self.count(self.failures, "metrics job failed", proc.stdout + proc.stderr)
        elif "could not save the metrics state" in proc.stderr:
            if self.disk_fault_during(began - 1, time.monotonic(), "log directory"):
                self.count(self.expected, "metrics state not saved (log directory full or read-only), metrics written")
            else:
                self.count(self.failures, "metrics state not saved without a log-directory fault", proc.stderr)
        return proc

    def report(self) -> None:
        while not self.stopping.wait(30):
            inv = inventory([self.host], sys.executable)
            path = self.work / "report-inventory.json"
            path.write_text(json.dumps(inv))
            proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(path),
                                   str(REPO / "playbooks" / "report.yml"), "-e",
                                   "libvirt_hooks_report_dir=%s" % (self.work / "report")],
                                  capture_output=True, text=True, env=self.ansible_env(), cwd=str(REPO), timeout=600,
                                  check=False)
            with self.lock:
                self.reports += 1
            report = self.work / "report" / "report.json"
            if proc.returncode != 0 or not report.exists():
                with self.lock:
                    self.reports_failed += 1
                self.count(self.failures, "fleet report failed", proc.stdout[-2000:])

    # -- guests ----------------------------------------------------------------------------------
    def guest(self, name: str, rng: random.Random) -> None:
        saved = self.work / ("%s.save" % name)
        expect_running = False
        while not self.stopping.is_set():
            self.go.wait()
            with self.lock:
                self.busy += 1
            try:
                state = self.virsh_op(name, "domstate", name)
                if state is None:
                    time.sleep(0.5)
                    continue
                if state == "running":
                    action = rng.choice(("destroy", "shutdown", "save", "managedsave"))
                    if action == "shutdown":
                        # The guest has no OS: it ignores the ACPI request, so it is destroyed after a second.
                        if self.virsh_op(name, "shutdown", name) is not None:
                            time.sleep(1)
                            self.virsh_op(name, "destroy", name)
                    elif action == "save":
                        self.virsh_op(name, "save", name, str(saved))
                    else:
                        self.virsh_op(name, action, name)
                    expect_running = False
                elif state.startswith("shut off"):
                    if expect_running:
                        reason = self.host.virsh("domstate", "--reason", name, check=False).stdout.strip()
                        self.count(self.failures, "a running guest was stopped by no one of us", "%s: %s" % (name, reason))
                    if saved.exists():
                        ok = self.virsh_op(name, "restore", str(saved))
                        if ok is not None:
                            saved.unlink()
                    else:
                        ok = self.virsh_op(name, "start", name)   # from its managed save image if it has one
                    expect_running = ok is not None
                with self.lock:
                    self.cycles += 1
            finally:
                with self.lock:
                    self.busy -= 1
            time.sleep(rng.uniform(0, 0.5))

    def virsh_op(self, name: str, *args):
        """Run one virsh command on the private daemon: its stdout, or None if it failed (the cause counted)."""
        began = time.monotonic()
        try:
            proc = self.host.virsh(*args, check=False, timeout=240)
        except subprocess.TimeoutExpired:
            self.count(self.failures, "virsh %s hung for 240 s" % args[0], name)
            return None
        if proc.returncode == 0:
            return proc.stdout.strip()
        err = proc.stderr.strip()
        if "Hook script execution failed" in err or "virthooks" in err:
            self.count(self.failures, "a hook failed virsh %s" % args[0], err)
        elif DAEMON_AWAY.search(err):
            self.count(self.expected, "virsh %s: daemon away (restart, SIGSTOP)" % args[0])
        elif RACE.search(err):
            self.count(self.expected, "virsh %s: state changed meanwhile" % args[0], err)
        elif self.stopped_during(began, time.monotonic()) and all(
                line.startswith("error: Failed to") for line in err.splitlines()):
            # virsh gave up on a daemon stopped for longer than its keepalive (30 s) and names no reason
            # ("error: Failed to save domain 'soak-1' state", nothing more) when the daemon comes back.
            self.count(self.expected, "virsh %s: no reason given, the daemon was stopped (SIGSTOP)" % args[0], err)
        else:
            # virsh's own message first: the example keeps 600 characters, the daemon's errors only what is left.
            self.count(self.failures, "virsh %s failed" % args[0],
                       err[:320] + "\nlibvirtd: " + self.host.daemon_errors()[-270:])
        return None

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> dict:
        self.say("soak: seed %d, %d guests, %s s%s, work %s" % (
            self.seed, self.n_guests, self.seconds, " or %d calls" % self.max_calls if self.max_calls else "", self.work))
        began = time.monotonic()
        self.setup()
        threads = [threading.Thread(target=self.tail, daemon=True)]
        for i in range(self.n_guests):
            threads.append(threading.Thread(target=self.guest, args=("soak-%d" % i, random.Random(self.seed * 100 + i)),
                                            daemon=True))
        side = [threading.Thread(target=t, daemon=True) for t in (self.control, self.disks)]
        readers = [threading.Thread(target=t, daemon=True) for t in (self.metrics, self.report)]
        for t in threads + side + readers:
            t.start()
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            if self.max_calls and self.calls_seen() >= self.max_calls:
                break
            time.sleep(1)
        # A short run on a busy machine: on until every kind of fault was injected once (bounded).
        for event in (self.round_done, self.disk_round_done):
            event.wait(max(0.0, deadline + 600 - time.monotonic()))
        # The end: faults stop, one last deploy that must succeed, the guests run a little under it, stop.
        self.calm.set()
        for t in side:
            t.join(900)
        final = self.next_plan()
        proc = self.deploy(final)
        if proc.returncode != 0:
            self.count(self.failures, "the final deploy failed", proc.stdout[-3000:])
        else:
            self.last_plan = final
            self.expected_generation = self.current()
        time.sleep(5)
        self.stopping.set()
        for t in threads[1:] + readers:
            t.join(900)
        for i in range(self.n_guests):
            self.host.virsh("destroy", "soak-%d" % i, check=False)
        time.sleep(1)
        self.tail_done.set()
        threads[0].join(60)
        self.run_metrics()
        # What the verdict reads, kept for a look afterwards (the namespace and its tmpfs go with close()).
        (self.work / "records.jsonl").write_bytes(b"\n".join(sorted(self.records)) + b"\n")
        (self.work / "bad-lines.txt").write_bytes(b"\n".join(self.bad_lines) + b"\n")
        (self.work / "syslog.txt").write_text("\n".join(self.host.syslog.ours()) + "\n")
        (self.work / "syslog-all.txt").write_text("\n".join(self.host.syslog.lines) + "\n")
        result = self.verdict()
        result["seconds"] = round(time.monotonic() - began)
        return result

    def calls_seen(self) -> int:
        try:
            with open(self.rec, "rb") as f:
                return sum(1 for line in f if b" rec-all " in line)
        except OSError:
            return 0

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.kill()
            self.webhook.wait()
        if self.host is not None:
            self.host.close()

    # -- the verdict -----------------------------------------------------------------------------
    def calls(self) -> list:
        """The calls as our scripts recorded them: [(pid, event, {script: deploy})], one per dispatcher call."""
        calls, open_by_pid = [], {}
        for line in self.rec.read_text().splitlines():
            token, script, run_id, rest = line.split(" ", 3)
            pid, stamp, index = run_id.split(".")
            stamp, index = int(stamp), int(index)
            current = open_by_pid.get(pid)
            if current is None or index <= current["index"] or stamp - current["stamp"] > 30e9 \
                    or current["event"] != rest:
                current = open_by_pid[pid] = {"pid": pid, "event": rest, "scripts": {}, "index": index, "stamp": stamp}
                calls.append(current)
            current["index"], current["stamp"] = index, stamp
            current["scripts"][script] = int(token[1:])
        return calls

    def verdict(self) -> dict:
        calls = self.calls()
        # Every call ran the scripts of one deploy, all of them.
        for call in calls:
            deploys = set(call["scripts"].values())
            obj, op = call["event"].split(" ")[:2]
            if len(deploys) != 1:
                self.count(self.failures, "a call mixed the scripts of two deploys", repr(call))
                continue
            plan = self.plans[deploys.pop()]
            if set(call["scripts"]) != plan.mine(obj, op):
                self.count(self.failures, "a call ran part of a generation",
                           "%r expected %r" % (call, sorted(plan.mine(obj, op))))
        records = list(self.records.values())
        by_generation = {}
        for rec in records:
            result = rec.get("result")
            if result not in ("ok",):
                self.count(self.failures, "dispatcher result %s" % result, json.dumps(rec)[:600])
            tokens = set()
            for s in rec.get("scripts", []):
                if s.get("status") != "ok":
                    if s.get("name") in ("flaky",) or (s.get("name") == "lib-notify-post"):
                        with self.lock:
                            self.own_script_failures += 1
                    else:
                        self.count(self.failures, "script %s %s" % (s.get("name"), s.get("status")), json.dumps(rec)[:600])
                tokens.update(re.findall(r"^D(\d+)$", s.get("stdout", ""), re.M))
            if len(tokens) > 1:
                self.count(self.failures, "a log record names two deploys", json.dumps(rec)[:600])
            elif tokens:
                n = int(tokens.pop())
                by_generation.setdefault(rec.get("generation"), set()).add(n)
                plan = self.plans[n]
                names = {s["name"] for s in rec.get("scripts", [])}
                want = plan.mine(rec["object"], rec["operation"])
                if plan.runs_notify(rec["object"], rec["operation"]):
                    want.add("lib-notify-post")
                if names != want:
                    self.count(self.failures, "a log record ran part of a generation",
                               "%s expected %s" % (sorted(names), sorted(want)))
        for generation, deploys in by_generation.items():
            if len(deploys) > 1:
                self.count(self.failures, "one generation ran two deploys' scripts", "%s: %s" % (generation, deploys))
        for line in self.bad_lines:
            self.count(self.failures, "an unreadable line in the log", repr(line[:300]) + " ... " + repr(line[-300:]))
        # Every call left a log record, or a syslog line when the record could not be written.
        unwritten = [m for m in self.host.syslog.ours() if "could not write the log record" in m]
        if len(calls) != len(records) + len(unwritten):
            self.count(self.failures, "calls without a log record or a syslog line",
                       "%d calls, %d records, %d syslog lines" % (len(calls), len(records), len(unwritten)))
        # The host equals the last deploy that succeeded (the final one) and validates.
        self.validate("the run")
        if self.expected_generation is None or self.current() != self.expected_generation:
            self.count(self.failures, "the current generation is not the last deploy's",
                       "%s != %s" % (self.current(), self.expected_generation))
        config = json.loads(self.host.view("/etc/libvirt/hooks/virthooks/current/config.json").read_text())
        if self.last_plan is not None:
            want = {s["name"] for s in self.last_plan.scripts} | ({"lib-notify-post"} if self.last_plan.notify else set())
            have = {r["name"] for r in config.get("rules", [])}
            if have != want:
                self.count(self.failures, "the current rules are not the last deploy's", "%s != %s" % (have, want))
        # The notify block's credentials (its URL's password) are in no log, syslog line, report or output.
        seen = [("syslog", "\n".join(self.host.syslog.lines)), ("the log", "\n".join(map(json.dumps, records))),
                ("deploy output", "\n".join(self.outputs))]
        report = self.work / "report" / "report.json"
        if report.exists():
            seen.append(("report.json", report.read_text()))
        for where, text in seen:
            if "s3cret-" in text:
                self.count(self.failures, "a secret in " + where, text[max(0, text.index("s3cret-") - 300):][:600])
        # The metrics job counted every record.
        prom = (self.work / "metrics" / "virthooks.prom").read_text() if (self.work / "metrics" / "virthooks.prom").exists() else ""
        counted = sum(int(float(v)) for v in re.findall(r"^virthooks_calls_total\{[^}]*\} (\S+)$", prom, re.M))
        if counted != len(records):
            self.count(self.failures, "metrics counted another number of calls", "%d counted, %d records" % (counted, len(records)))
        reconnects = sum(1 for r in records if r.get("operation") == "reconnect")
        return {"seed": self.seed, "cycles": self.cycles, "calls": len(calls), "records": len(records),
                "syslog_lines": len(unwritten), "reconnects": reconnects, "deploys": self.deploys,
                "faults": dict(sorted(self.faults.items())), "script_failures_own": self.own_script_failures,
                "expected": dict(sorted(self.expected.items())), "failures_ours": dict(sorted(self.failures.items())),
                "examples": dict(sorted(self.examples.items())),
                "metrics_runs": self.metrics_runs, "reports": self.reports, "metrics_counted": counted}


def summary(result: dict) -> str:
    lines = ["soak: seed %(seed)d, %(seconds)d s: %(cycles)d guest cycles, %(calls)d hook calls (%(records)d log records, "
             "%(syslog_lines)d syslog lines), %(reconnects)d reconnects, %(deploys)d deploys" % result,
             "faults injected:"]
    lines += ["  %6d  %s" % (n, k) for k, n in result["faults"].items()]
    lines.append("expected under the faults (not ours):")
    lines += ["  %6d  %s" % (n, k) for k, n in result["expected"].items()]
    lines.append("scripts' own failures (counted apart): %d" % result["script_failures_own"])
    lines.append("metrics job runs: %d (last counted %d calls); fleet reports: %d"
                 % (result["metrics_runs"], result["metrics_counted"], result["reports"]))
    lines.append("failures of ours: %d" % sum(result["failures_ours"].values()))
    lines += ["  %6d  %s" % (n, k) for k, n in result["failures_ours"].items()]
    for k, v in result["examples"].items():
        if k in result["failures_ours"]:
            lines.append("  e.g. %s: %s" % (k, v.replace("\n", " | ")))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--calls", type=int, default=0, help="stop earlier once this many hook calls ran")
    parser.add_argument("--guests", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--work", default="")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2 ** 31)
    work = Path(args.work or REPO / "tests" / "output" / ("soak-%d" % seed)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    soak = Soak(work, seed, args.minutes * 60, args.calls, args.guests)
    try:
        result = soak.run()
    finally:
        soak.close()
    print(summary(result))
    (work / "result.json").write_text(json.dumps(result, indent=1))
    return 1 if result["failures_ours"] else 0


if __name__ == "__main__":
    sys.exit(main())
