"""What hooks cost on a real libvirtd: `virsh start` + `virsh destroy` cycles of a small guest.

Three setups, interleaved round by round so that machine load hits them alike:
  (1) no hooks: /etc/libvirt/hooks/qemu absent
  (2) 10 trivial scripts for the guest run by the per-guest tree bash helper (what users run
      today): hooks/qemu.d/<guest>/<op>/<sub>/ for the 5 events of a cycle (prepare begin,
      start begin, started begin, stopped end, release end), 10 scripts each
  (3) the same 10 scripts as virthooks rules (objects: [vhbench-*]), installed by the real
      installer, with the dispatcher's own time per cycle taken from its log

Each cycle is checked: (1) runs no script, (2) and (3) run 50. Target: (3) within 2 % of (2).
After each switch of setup one cycle runs untimed: switching (1) <-> (2) reloads libvirtd, and
the cycle after a reload is slower (it made (1) and (2) look 15 % slower than (3)).
Needs root and a running libvirtd (qemu:///system) that other users may share: it never
restarts it, reloads it (SIGHUP) only when the hook entry point appears or disappears, acts
only on its own guest (vhbench-<pid>). In /etc/libvirt/hooks it adds only ``qemu`` (it stops
if one is there) and ``qemu.d/<its guest>/``, and removes them at the end, also when
interrupted; virthooks itself is installed into a private directory. It undefines its guest.

Usage: benchmarks/libvirt_cycles.py [--rounds N] [--report-only] [--hooks-dir /etc/libvirt/hooks]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dispatch import TREE_HELPER  # benchmarks/ is this script's directory, first on sys.path

REPO = Path(__file__).resolve().parent.parent
PIDFILES = ("/run/libvirtd.pid", "/var/run/libvirtd.pid")
EVENTS = [("prepare", "begin"), ("start", "begin"), ("started", "begin"), ("stopped", "end"), ("release", "end")]
SCRIPTS = 10
TARGET = 1.02


def virsh(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["virsh", "-q", "-c", "qemu:///system"] + list(args), capture_output=True, text=True,
                          check=False)
    if check and proc.returncode != 0:
        raise SystemExit("libvirt_cycles: virsh %s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc


def libvirtd_pid() -> int:
    for path in PIDFILES:
        try:
            pid = int(Path(path).read_text().split()[0])
            os.kill(pid, 0)
            if Path("/proc/%d/comm" % pid).read_text().strip() == "libvirtd":
                return pid
        except (OSError, ValueError, IndexError):
            continue
    raise SystemExit("libvirt_cycles: no running libvirtd (start it: service virtlogd start; service libvirtd start)")


def reload_libvirtd(pid: int) -> None:
    """SIGHUP makes libvirtd look for hook entry points again; wait until it answers."""
    os.kill(pid, signal.SIGHUP)
    time.sleep(0.5)
    virsh("version")


def import_collection():
    link_root = Path(tempfile.mkdtemp(prefix="vhbench-import-"))
    (link_root / "ansible_collections" / "virthooks").mkdir(parents=True)
    (link_root / "ansible_collections" / "virthooks" / "libvirt").symlink_to(REPO)
    sys.path.insert(0, str(link_root))
    from ansible_collections.virthooks.libvirt.plugins.module_utils import install
    return install


class Bench(object):
    """In /etc/libvirt/hooks it only ever touches ``qemu`` (absent at the start, else it stops) and
    ``qemu.d/<its guest>/``: virthooks itself (runtime, config, scripts) is installed into a private
    hooks directory that the copied entry point names, so another virthooks installation in the
    shared directory (other test runs use it too) is neither read nor changed."""

    def __init__(self, hooks: Path, work: Path, guest: str, python: str):
        self.hooks = hooks
        self.work = work
        self.guest = guest
        self.python = python
        self.count_file = work / "ran"
        self.log_file = work / "virthooks.jsonl"
        self.private = work / "hooks"
        self.pid = libvirtd_pid()
        self.entry = hooks / "qemu"
        self.tree = hooks / "qemu.d" / guest
        self.made_tree_root = False

    def script_text(self) -> str:
        return "#!/bin/sh\necho \"$1 $2 $3\" >> %s\n" % self.count_file

    def prepare(self, install) -> None:
        """virthooks installed into the private hooks directory, the tree helper beside it, and
        the guest's directories in the shared qemu.d/."""
        if os.path.lexists(self.entry):
            raise SystemExit("libvirt_cycles: %s exists (someone else's qemu hook): not touching it" % self.entry)
        rules = []
        for i in range(SCRIPTS):
            path = self.private / "virthooks" / "scripts" / ("s%02d" % i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.script_text())
            path.chmod(0o755)
            rules.append({"name": "s%02d" % i, "objects": [self.guest.rsplit("-", 1)[0] + "-*"],
                          "operations": sorted({op for op, _sub in EVENTS}), "script": "scripts/s%02d" % i})
        installer = install.RuntimeInstaller(str(self.private), self.python, 0, 0)
        installer.apply(installer.plan(["qemu"], rules, log={"file": str(self.log_file)},
                                       tree={"enabled": False}))
        (self.work / "qemu.tree").write_text(TREE_HELPER)
        self.made_tree_root = not self.tree.parent.exists()
        for op, sub in EVENTS:
            directory = self.tree / op / sub
            directory.mkdir(parents=True)
            for i in range(SCRIPTS):
                (directory / ("s%02d" % i)).write_text(self.script_text())
                (directory / ("s%02d" % i)).chmod(0o755)

    def use(self, setup: str) -> None:
        had_entry = os.path.lexists(self.entry)
        if setup == "1":
            if had_entry:
                os.unlink(self.entry)
        else:
            source = self.work / "qemu.tree" if setup == "2" else self.private / "qemu"
            tmp = self.hooks / (".qemu.vhbench-%d" % os.getpid())
            shutil.copyfile(source, tmp)
            tmp.chmod(0o755)
            os.rename(tmp, self.entry)
        if had_entry != os.path.lexists(self.entry):
            reload_libvirtd(self.pid)

    def clean_hooks(self) -> None:
        """Take back what it put into the shared hooks directory, nothing else."""
        had_entry = os.path.lexists(self.entry)
        if had_entry:
            os.unlink(self.entry)
        shutil.rmtree(self.tree, ignore_errors=True)
        if self.made_tree_root:
            try:
                self.tree.parent.rmdir()        # only if empty: someone may have added a guest since
            except OSError:
                pass
        if had_entry:
            reload_libvirtd(self.pid)

    # -- the guest --------------------------------------------------------------------------
    def define(self) -> None:
        xml = ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
               "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
               "<devices><memballoon model='none'/></devices></domain>" % self.guest)
        path = self.work / "guest.xml"
        path.write_text(xml)
        virsh("define", str(path))

    def undefine(self) -> None:
        virsh("destroy", self.guest, check=False)
        virsh("undefine", self.guest, check=False)

    def cycle(self) -> tuple:
        """One start + destroy; (seconds, scripts run, dispatcher ms logged)."""
        self.count_file.write_text("")
        log_size = self.log_file.stat().st_size if self.log_file.exists() else 0
        began = time.perf_counter()
        virsh("start", self.guest)
        virsh("destroy", self.guest)
        elapsed = time.perf_counter() - began
        ran = len(self.count_file.read_text().splitlines())
        dispatcher_ms = 0.0
        if self.log_file.exists():
            with open(self.log_file, "rb") as f:
                f.seek(log_size)
                for line in f.read().splitlines():
                    record = json.loads(line)
                    if record.get("object") == self.guest:
                        dispatcher_ms += record.get("duration_ms", 0.0)
        return elapsed, ran, dispatcher_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--hooks-dir", default="/etc/libvirt/hooks")
    parser.add_argument("--python", default=shutil.which("python3", path="/usr/bin:/bin") or sys.executable)
    parser.add_argument("--report-only", action="store_true", help="exit 0 even when the target is missed")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("virsh"):
        print("libvirt_cycles: skipped (needs root and virsh)")
        return 0
    install = import_collection()
    work = Path(tempfile.mkdtemp(prefix="vhbench-"))
    work.chmod(0o755)
    bench = Bench(Path(args.hooks_dir), work, "vhbench-%d" % os.getpid(), args.python)
    previous = {sig: signal.signal(sig, lambda s, f: sys.exit(128 + s)) for sig in (signal.SIGTERM, signal.SIGHUP)}
    times = {"1": [], "2": [], "3": []}
    dispatcher = []
    try:
        bench.define()
        bench.prepare(install)
        expected = {"1": 0, "2": SCRIPTS * len(EVENTS), "3": SCRIPTS * len(EVENTS)}
        for setup in ("2", "3", "1"):               # warm-up, and a check of each setup
            bench.use(setup)
            _elapsed, ran, _ms = bench.cycle()
            if ran != expected[setup]:
                raise SystemExit("libvirt_cycles: setup (%s) ran %d scripts, expected %d" % (setup, ran, expected[setup]))
        for _round in range(args.rounds):
            for setup in ("1", "2", "3"):
                bench.use(setup)
                bench.cycle()           # untimed: a cycle right after a reload (SIGHUP) is slower
                elapsed, ran, ms = bench.cycle()
                if ran != expected[setup]:
                    raise SystemExit("libvirt_cycles: setup (%s) ran %d scripts, expected %d" % (setup, ran, expected[setup]))
                times[setup].append(elapsed)
                if setup == "3":
                    dispatcher.append(ms)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bench.undefine()
        bench.clean_hooks()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("virthooks on a real libvirtd: %d interleaved rounds of virsh start + destroy, guest %s, %s"
          % (args.rounds, bench.guest, time.strftime("%Y-%m-%d")))
    labels = {"1": "no hooks", "2": "per-guest tree helper, 10 scripts x 5 events",
              "3": "virthooks, the same 10 scripts as rules"}
    for key in ("1", "2", "3"):
        print("(%s) %-48s median %6.3f s  min %6.3f s  max %6.3f s"
              % (key, labels[key], med[key], min(times[key]), max(times[key])))
    print("(3) dispatcher's own logged time per cycle (5 calls): median %.1f ms" % statistics.median(dispatcher))
    ratio = med["3"] / med["2"]
    ok = ratio <= TARGET
    print("(3)/(2) = %.3f   target <= %.2f  %s" % (ratio, TARGET, "ok" if ok else "MISSED"))
    print("(3)/(1) = %.3f" % (med["3"] / med["1"]))
    print("(2)/(1) = %.3f" % (med["2"] / med["1"]))
    return 0 if ok or args.report_only else 1


if __name__ == "__main__":
    sys.exit(main())
