"""Per-call cost of the virthooks dispatcher, against the alternatives, measured side by side.

Every variant is a real hook file that libvirt could run, called the way libvirt calls it
(4 arguments, domain XML on stdin, LC_ALL=C environment), in interleaved rounds so that
machine noise hits all of them alike. Prints medians and ratios; the targets are:

  (c)  <= 1.1 x (p)    one matching rule costs little more than Python's own start-up
  (d)  <= 1.15 x (p3)  50 rules, 3 of them match, against a floor that runs the same 3 scripts
  (e)  <= 0.6 x (a)    an event no rule matches costs less than the smallest sh hook
  (f)  <= 1.3 x (p)    one rule with an XPath condition, without lxml (the hooks' Python)
  (fl) <= 1.3 x (q)    the same with lxml installed (q: the floor under that Python)
  (g)  <= 1.15 x (p)   500 rules (one per guest), one of them matches
  (gg) <= 1.15 x (p)   500 glob rules (vm-<n>-*, three operations each), one of them matches

(p0) is the same floor without `import os` (0.9 ms of a -IS start; the dispatcher's path does not
import it either, see runtime/hostos.py): (c)/(p0) is what virthooks adds to the least a Python
hook can cost, shown beside the targets, which are against (p) as the issue set them.

It exits 1 when a target is missed, unless --report-only (for a noisy machine): the ratios are
measured interleaved, so load hits every variant alike, but a busy machine still spreads them.

Usage: benchmarks/dispatch.py [--rounds N] [--python /usr/bin/python3] [--lxml-python PY] [--report-only]
                             [--instructions N]  (also count instructions with valgrind: load does not move them)
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOMAIN_XML = (b"<domain type='kvm'><name>win10</name><memory unit='KiB'>65536</memory>"
              b"<metadata><vh:gpu xmlns:vh='urn:virthooks'>passthrough</vh:gpu></metadata>"
              b"<devices><hostdev type='pci' mode='subsystem'/>" + b"<disk type='file'/>" * 20 +
              b"</devices></domain>")
TARGET = "#!/bin/sh\nexit 0\n"
ENV = {"LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

# The widely shared per-guest tree helper (bash, dirname + find): what users run today. The installer's
# tests use the same file (it must never be adopted as a foreign hook).
TREE_HELPER = (Path(__file__).resolve().parent / "peers" / "tree-helper.sh").read_text()


def import_collection():
    link_root = Path(tempfile.mkdtemp(prefix="vh-bench-import-"))
    (link_root / "ansible_collections" / "virthooks").mkdir(parents=True)
    (link_root / "ansible_collections" / "virthooks" / "libvirt").symlink_to(REPO)
    sys.path.insert(0, str(link_root))
    from ansible_collections.virthooks.libvirt.plugins.module_utils import install
    return install


def write(path: Path, text: str, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def our_hooks(install, base: Path, python: str, rules: list, name: str) -> Path:
    """A hooks dir with the real runtime installed by the real installer; returns hooks/qemu."""
    hooks = base / name / "etc" / "libvirt" / "hooks"
    for rule in rules:
        write(hooks / "virthooks" / "scripts" / rule["name"], TARGET)
    installer = install.RuntimeInstaller(str(hooks), python, -1, -1)
    installer.apply(installer.plan(["qemu"], rules, log={"file": str(base / name / "virthooks.jsonl")}))
    return hooks / "qemu"


def floor_hook(path: Path, python: str, target: Path, runs: int, module: str = "os") -> Path:
    """A bare python3 -IS hook that fork-execs the target `runs` times, one after the other
    (through os, as anyone writes it; or through the built-in posix module, for (p0))."""
    return write(path, (
        "#!%s -IS\nimport sys\nimport %s as os\nfor _ in range(%d):\n    pid = os.fork()\n    if pid == 0:\n"
        "        os.execv(%r, [%r] + sys.argv[1:])\n    os.waitpid(pid, 0)\n")
        % (python, module, runs, str(target), str(target)))


def build_variants(base: Path, python: str, lxml_python: str | None) -> dict:
    install = import_collection()
    target = write(base / "target", TARGET)
    variants = {}
    variants["a"] = ("minimal sh hook that execs the target",
                     write(base / "a" / "qemu", '#!/bin/sh\nexec %s "$@"\n' % target), "win10")
    # The widely shared per-guest tree helper (bash, dirname + find), with one target in the tree.
    tree_hook = write(base / "b" / "qemu", TREE_HELPER)
    write(base / "b" / "qemu.d" / "win10" / "prepare" / "begin" / "target", TARGET)
    variants["b"] = ("per-guest tree bash helper (dirname + find)", tree_hook, "win10")
    variants["p"] = ("floor: bare python3 -IS that fork-execs the target",
                     floor_hook(base / "p" / "qemu", python, target, 1), "win10")
    variants["p0"] = ("floor without importing os (posix only)",
                      floor_hook(base / "p0" / "qemu", python, target, 1, "posix"), "win10")
    variants["p3"] = ("floor that fork-execs the target 3 times",
                      floor_hook(base / "p3" / "qemu", python, target, 3), "win10")
    one = [{"name": "pin", "objects": ["win10"], "operations": ["prepare"], "script": "scripts/pin"}]
    variants["c"] = ("virthooks, one matching rule", our_hooks(install, base, python, one, "c"), "win10")
    fifty = [{"name": "r%02d" % i, "objects": ["guest-%02d" % i], "operations": ["prepare", "start"],
              "script": "scripts/r%02d" % i} for i in range(47)]
    fifty += [{"name": "m%d" % i, "objects": ["win*"], "operations": ["prepare"], "script": "scripts/m%d" % i}
              for i in range(3)]
    variants["d"] = ("virthooks, 50 rules of which 3 match", our_hooks(install, base, python, fifty, "d"), "win10")
    variants["e"] = ("virthooks, an event no rule matches", our_hooks(install, base, python, fifty, "e"), "web01")
    xpath = [{"name": "gpu", "objects": ["win10"], "operations": ["prepare"], "script": "scripts/gpu",
              "xpath": "/domain/devices/hostdev[@type='pci']"}]
    variants["f"] = ("virthooks, one rule with an XPath condition", our_hooks(install, base, python, xpath, "f"),
                     "win10")
    many = [{"name": "g%03d" % i, "objects": ["guest-%03d" % i], "operations": ["prepare", "start"],
             "script": "scripts/g%03d" % i} for i in range(499)]
    many.append({"name": "win10", "objects": ["win10"], "operations": ["prepare"], "script": "scripts/win10"})
    variants["g"] = ("virthooks, 500 rules (one per guest), one matches", our_hooks(install, base, python, many, "g"),
                     "win10")
    globs = [{"name": "vm%03d" % i, "objects": ["vm-%d-*" % i], "operations": ["prepare", "start", "started"],
              "script": "scripts/vm%03d" % i} for i in range(500)]
    variants["gg"] = ("virthooks, 500 glob rules (vm-<n>-*), one matches", our_hooks(install, base, python, globs, "gg"),
                      "vm-42-web")
    if lxml_python:
        variants["q"] = ("floor under the Python that has lxml", floor_hook(base / "q" / "qemu", lxml_python, target, 1),
                         "win10")
        variants["fl"] = ("virthooks, the XPath rule, with lxml installed",
                          our_hooks(install, base, lxml_python, xpath, "fl"), "win10")
    return variants


def call(hook: Path, guest: str, stdin_path: str):
    """Run the hook once like libvirt does; (seconds, exit status)."""
    fd = os.open(stdin_path, os.O_RDONLY)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        began = time.perf_counter()
        pid = os.posix_spawn(str(hook), [str(hook), guest, "prepare", "begin", "-"], ENV,
                             file_actions=[(os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, null, 1)])
        _pid, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter() - began
    finally:
        os.close(fd)
        os.close(null)
    return elapsed, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--python", default=shutil.which("python3", path="/usr/bin:/bin") or sys.executable,
                        help="interpreter the hooks use (default: the system python3)")
    parser.add_argument("--lxml-python", default=None,
                        help="a Python that has lxml, for (q) and (fl) (default: this one, if it has lxml)")
    parser.add_argument("--report-only", action="store_true", help="exit 0 even when a target is missed")
    parser.add_argument("--instructions", type=int, default=0, metavar="N",
                        help="also count each variant's instructions N times with valgrind (callgrind), which load "
                             "does not change: a report beside the times, no targets")
    args = parser.parse_args()
    if args.lxml_python is None:
        args.lxml_python = sys.executable if has_lxml(sys.executable) else ""
    base = Path(tempfile.mkdtemp(prefix="vh-bench-"))
    try:
        stdin_path = str(base / "domain.xml")
        Path(stdin_path).write_bytes(DOMAIN_XML)
        variants = build_variants(base, args.python, args.lxml_python)
        times = {k: [] for k in variants}
        for key, (label, hook, guest) in variants.items():       # warm-up, and a correctness check
            _elapsed, code = call(hook, guest, stdin_path)
            if code != 0:
                raise SystemExit("variant (%s) %s exited %d" % (key, label, code))
        for _round in range(args.rounds):
            for key, (_label, hook, guest) in variants.items():
                elapsed, _code = call(hook, guest, stdin_path)
                times[key].append(elapsed)
        med = {k: statistics.median(v) * 1000.0 for k, v in times.items()}
        print("virthooks dispatch benchmark: %d interleaved rounds, hooks run by %s, %s"
              % (args.rounds, args.python, time.strftime("%Y-%m-%d")))
        print("%-5s %-52s %9s %9s" % ("", "variant", "median", "p90"))
        for key, (label, _hook, _guest) in variants.items():
            p90 = sorted(times[key])[int(len(times[key]) * 0.9) - 1] * 1000.0
            print("(%s)%s %-52s %6.2f ms %6.2f ms" % (key, " " * (3 - len(key)), label, med[key], p90))
        print()
        checks = [("c", "p", 1.1), ("d", "p3", 1.15), ("d", "p", None), ("e", "a", 0.6), ("f", "p", 1.3),
                  ("fl", "q", 1.3), ("g", "p", 1.15), ("gg", "p", 1.15), ("g", "c", None), ("c", "p0", None),
                  ("p", "p0", None), ("b", "a", None), ("c", "a", None)]
        failed = 0
        for num, den, target in checks:
            if num not in med or den not in med:
                continue
            ratio = med[num] / med[den]
            verdict = ""
            if target is not None:
                ok = ratio <= target
                failed += not ok
                verdict = "target <= %g  %s" % (target, "ok" if ok else "MISSED")
            print("%-12s = %.2f   %s" % ("(%s)/(%s)" % (num, den), ratio, verdict))
        for key in ("f", "fl"):
            if key in variants:
                hook = variants[key][1]
                print("(%s) XPath evaluated by the dispatcher with lxml imported: %s"
                      % (key, lxml_imported(hook, hook_python(hook), stdin_path)))
        print()
        for label, micros in safety_costs(variants["c"][1]):
            print("%-58s %8.1f us  (%.2f %% of (c))" % (label, micros, micros / (med["c"] * 10.0)))
        if args.instructions:
            print_instructions(variants, stdin_path, base, args.instructions, checks)
        if failed:
            print("%d target(s) missed%s" % (failed, " (--report-only: exit 0)" if args.report_only else ""))
        return 1 if failed and not args.report_only else 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def instructions(hook: Path, guest: str, stdin_path: str, work: Path) -> int:
    """User-space instructions executed by one call, every process of it (callgrind's Ir). The kernel's work
    (fork, exec, page faults) is not counted, so ratios of these are larger than ratios of times; they do not
    move with the machine's load."""
    import glob
    import subprocess
    prefix = str(work / "callgrind")
    for old in glob.glob(prefix + ".*"):
        os.unlink(old)
    with open(stdin_path, "rb") as stdin:
        subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=yes", "--callgrind-out-file=%s.%%p" % prefix,
                        str(hook), guest, "prepare", "begin", "-"], stdin=stdin, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=ENV, check=False)
    total = 0
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            total += sum(int(line.split()[1]) for line in f if line.startswith("summary:"))
    return total


def print_instructions(variants: dict, stdin_path: str, work: Path, runs: int, checks: list) -> None:
    if not shutil.which("valgrind"):
        print("\n--instructions: valgrind is not installed (apt-get install valgrind)")
        return
    counts = {key: statistics.median(instructions(hook, guest, stdin_path, work) for _run in range(runs))
              for key, (_label, hook, guest) in variants.items()}
    print("\ninstructions per call (callgrind, every process, median of %d; kernel work not counted):" % runs)
    for key, (label, _hook, _guest) in variants.items():
        print("(%s)%s %-52s %8.2f M" % (key, " " * (3 - len(key)), label, counts[key] / 1e6))
    for num, den, _target in checks:
        if num in counts and den in counts and counts[den]:
            print("%-12s = %.2f   (instructions)" % ("(%s)/(%s)" % (num, den), counts[num] / counts[den]))


def safety_costs(hook: Path) -> list:
    """In-process cost of the safety checks, each on its own (the hook calls above include them).

    - the trust check of one script: every directory and symlink from / down, the file, its
      interpreter (runs once per script per call);
    - the descendant tracking on the normal path: a run id in the script's environment and
      the stop signals blocked around posix_spawn (runs once per script per call);
    - the /proc scan that finds a script's processes: the timeout and signal paths only.
    """
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import proctree, trust
    import _signal
    script = str(hook.parent / "virthooks" / "current" / "scripts" / "pin")
    env = dict(ENV, LIBVIRT_HOOK_DRIVER="qemu")

    def per_call(fn, n):
        began = time.perf_counter()
        for _call in range(n):
            fn()
        return (time.perf_counter() - began) / n * 1e6

    def tracking():
        run_env = dict(env, VIRTHOOKS_SCRIPT="pin")
        run_env["VIRTHOOKS_RUN_ID"] = "%d.%d.%d" % (os.getpid(), time.time_ns(), 0)
        old = _signal.pthread_sigmask(_signal.SIG_BLOCK, (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP))
        _signal.pthread_sigmask(_signal.SIG_SETMASK, old)

    processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
    return [("(t) trust check of one script (fresh, per call)", per_call(lambda: trust.TrustCheck().refusal(script), 2000)),
            ("(r) descendant tracking, normal path (per script)", per_call(tracking, 20000)),
            ("(k) process scan, timeout path only (%d processes)" % processes,
             per_call(lambda: proctree.members(os.getpid(), "none"), 20))]


def has_lxml(python: str) -> bool:
    import subprocess
    probe = subprocess.run([python, "-IS", "-c", "import site; site.main(); import lxml.etree"],
                           capture_output=True, check=False)
    return probe.returncode == 0


def hook_python(hook: Path) -> str:
    """The interpreter an installed entry point execs."""
    for line in hook.read_text().splitlines():
        if line.startswith("[ -x "):
            return line.split()[2].strip("'")
    raise SystemExit("%s: no interpreter line" % hook)


def lxml_imported(hook: Path, python: str, stdin_path: str) -> str:
    """Whether the installed dispatcher really imports lxml for this call: its exact command line
    (interpreter, flags, bootstrap, hooks dir) run once more with -X importtime. 'yes', 'no', or
    why it could not tell."""
    import subprocess
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.entrypoint import dispatcher_argv
    argv = dispatcher_argv(str(hook.parent), python, "qemu")
    argv[1:1] = ["-X", "importtime"]
    with open(stdin_path, "rb") as stdin:
        proc = subprocess.run(argv + ["win10", "prepare", "begin", "-"], stdin=stdin, capture_output=True,
                              env=ENV, check=False)
    imported = [line.split("|")[-1].strip() for line in proc.stderr.decode("utf-8", "replace").splitlines()
                if line.startswith("import time:")]
    # (the bootstrap loads the dispatcher's own modules from their .pyc itself: importtime shows the package)
    if proc.returncode != 0 or "virthooks_runtime" not in imported:
        return "unknown (the probe exited %d)" % proc.returncode
    return "yes" if "lxml.etree" in imported else "no"    # a bare 'lxml' may be an empty namespace package


if __name__ == "__main__":
    sys.exit(main())
