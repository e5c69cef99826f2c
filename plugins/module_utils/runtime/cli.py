# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks``: the operator's command line on a hypervisor.

  virthooks list [DRIVER OBJECT OPERATION [SUBOP [EXTRA]]] [--xml FILE] [--daemon NAME]
  virthooks simulate DRIVER OBJECT OPERATION SUBOP [EXTRA] [--xml FILE] [--dry-run]
  virthooks validate
  virthooks log [-n N] [--failed] [--json]
  virthooks generations
  virthooks rollback [GENERATION] [--reload] [--dry-run]
  virthooks metrics --textfile-dir DIR
  virthooks import [--source tree|mrjk|saschpe] [--format yaml|json]
"""

import os
import sys

from .events import DRIVERS, EVENTS, is_abortable, reads_stdout
from .generations import current_id, generation_path
from .layout import CONFIG_FILE, OWN_DIR
from .rules import ConfigError, load_config, merge_dropins, script_path, steps_for_event
from .runlog import printable, read_records


def _parser(hooks_dir):
    import argparse
    p = argparse.ArgumentParser(prog="virthooks", description="Inspect and exercise the virthooks dispatch "
                                "of libvirt hooks in %s." % hooks_dir)
    p.add_argument("--hooks-dir", default=hooks_dir, help="libvirt hooks directory (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="the rules, or what would run for one event")
    ls.add_argument("event", nargs="*", metavar="DRIVER OBJECT OPERATION [SUBOP [EXTRA]]")
    ls.add_argument("--xml", help="XML file to evaluate XPath conditions against")
    ls.add_argument("--daemon", help="calling daemon, for daemon-driver rules (e.g. virtqemud)")
    sim = sub.add_parser("simulate", help="fire an event through the installed entry point, for real")
    sim.add_argument("driver", choices=DRIVERS)
    sim.add_argument("object")
    sim.add_argument("operation")
    sim.add_argument("suboperation")
    sim.add_argument("extra", nargs="?", default="-")
    sim.add_argument("--xml", help="file given to the hook on stdin, as libvirt would")
    sim.add_argument("--dry-run", action="store_true", help="only show what would run")
    sub.add_parser("validate", help="check config.json, the scripts and the entry points")
    lg = sub.add_parser("log", help="recent hook calls")
    lg.add_argument("-n", type=int, default=20, help="how many calls (default 20)")
    lg.add_argument("--failed", action="store_true", help="only calls that failed")
    lg.add_argument("--json", action="store_true", help="raw JSON lines")
    sub.add_parser("generations", help="the deployed generations, newest last, the current one marked")
    rb = sub.add_parser("rollback", help="make the previous generation (or GENERATION) current again")
    rb.add_argument("generation", nargs="?", default="", help="the generation to make current (default: the previous)")
    rb.add_argument("--reload", action="store_true",
                    help="send SIGHUP to the daemons whose entry points were added or removed")
    rb.add_argument("--dry-run", action="store_true", help="only show what would change")
    from .logstats import add_metrics_parser
    add_metrics_parser(sub)
    from .importers import add_import_parser
    add_import_parser(sub)
    return p


def _emit(out, line):
    """Write one line, every control character or undecodable byte in it escaped."""
    out.write(printable(line) + "\n")


def _event_args(words):
    if len(words) < 3 or len(words) > 5:
        raise SystemExit("virthooks: an event is DRIVER OBJECT OPERATION [SUBOP [EXTRA]]")
    driver, obj, op = words[:3]
    if driver not in DRIVERS:
        raise SystemExit(printable("virthooks: unknown driver %r (valid: %s)" % (driver, ", ".join(DRIVERS))))
    default_sub = EVENTS.get(driver, {}).get(op, ("-",))[0]
    sub = words[3] if len(words) > 3 else default_sub
    extra = words[4] if len(words) > 4 else "-"
    return driver, obj, op, sub, extra


def _current(hooks_dir) -> str:
    """The directory of the current generation (hooks/virthooks/ before the first one)."""
    own = "%s/%s" % (hooks_dir, OWN_DIR)
    gen = current_id(own)
    return generation_path(own, gen) if gen else own


def _load(hooks_dir, strict=False):
    path = "%s/%s" % (_current(hooks_dir), CONFIG_FILE)
    try:
        return load_config(path, strict=strict)
    except (OSError, ConfigError) as exc:
        raise SystemExit(printable("virthooks: cannot load %s: %s" % (path, exc)))


def _describe_rule(rule):
    parts = ["%-20s %-7s objects=%s ops=%s subops=%s" % (
        rule["name"], rule["driver"], ",".join(rule["objects"]), ",".join(rule["operations"]),
        ",".join(rule["suboperations"]))]
    if rule["extras"] != ["*"]:
        parts.append("extras=%s" % ",".join(rule["extras"]))
    if rule["daemons"] != ["*"]:
        parts.append("daemons=%s" % ",".join(rule["daemons"]))
    if rule["xpath"]:
        parts.append("xpath=%s" % rule["xpath"])
    parts.append("order=%d timeout=%gs on_failure=%s%s" % (rule["order"], rule["timeout"], rule["on_failure"],
                                                           "" if rule["enabled"] else " DISABLED"))
    if rule.get("origin"):
        parts.append("(from %s)" % rule["origin"])
    return " ".join(parts)


def cmd_list(args, out):
    config = _load(args.hooks_dir)
    for problem in merge_dropins(config, args.hooks_dir):       # hooks/virthooks/rules.d/*.json
        _emit(out, "note: host drop-in skipped: %s" % problem)
    if not args.event:
        for rule in sorted(config["rules"], key=lambda r: (r["order"], r["name"])):
            _emit(out, _describe_rule(rule))
        if not config["rules"]:
            _emit(out, "no rules")
        return 0
    driver, obj, op, sub, extra = _event_args(args.event)
    steps, notes = steps_for_event(config, args.hooks_dir, _current(args.hooks_dir), driver, obj, op, sub, extra,
                                   args.daemon)
    document = None
    if args.xml:
        from .xmlcond import Document
        with open(args.xml, "rb") as f:
            document = Document(f.read())
    _emit(out, "event: %s %s %s %s %s (%s%s)" % (driver, obj, op, sub, extra,
          "abortable" if is_abortable(driver, op) else "failures only logged",
          ", stdout read as XML" if reads_stdout(driver, op) else ""))
    for note in notes:
        _emit(out, "note: %s" % note)
    if not steps:
        _emit(out, "nothing would run")
    for step in steps:
        cond = ""
        if step.xpath:
            if document is None:
                cond = "  if xpath %s (not evaluated: no --xml)" % step.xpath
            else:
                cond = "  xpath %s -> %s" % (step.xpath, document.evaluate(step.xpath, step.namespaces))
        _emit(out, "%4d %-30s %s  timeout=%gs on_failure=%s%s" % (
            step.order, step.name, step.path, step.timeout, step.on_failure, cond))
    return 0


def cmd_simulate(args, out):
    if args.dry_run:
        args.event = [args.driver, args.object, args.operation, args.suboperation, args.extra]
        args.daemon = None
        return cmd_list(args, out)
    import subprocess
    entry = "%s/%s" % (args.hooks_dir, args.driver)
    argv = [args.object, args.operation, args.suboperation, args.extra]
    if os.path.isfile(entry):
        command = [entry] + argv
    else:
        _emit(out, "note: no entry point %s; running the dispatcher directly" % entry)
        from .entrypoint import dispatcher_argv
        command = dispatcher_argv(args.hooks_dir, sys.executable, args.driver) + argv
    env = {"LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    stdin = open(args.xml, "rb") if args.xml else subprocess.DEVNULL
    try:
        proc = subprocess.run(command, stdin=stdin, capture_output=True, env=env, cwd="/", check=False)
    finally:
        if args.xml:
            stdin.close()
    _emit(out, "$ %s" % " ".join(command[:1] + argv))
    _emit(out, "exit status: %d" % proc.returncode)
    for title, data in (("stdout (libvirt would read this as XML)", proc.stdout), ("stderr", proc.stderr)):
        if data:
            _emit(out, title + ":")
            for line in data.decode("utf-8", "surrogateescape").rstrip("\n").split("\n"):
                _emit(out, line)
    config = _load(args.hooks_dir)
    records = read_records(config["log"]["file"], 5, config["log"]["backups"]) if config["log"]["file"] else []
    # The hook decoded its argv as UTF-8 (LC_ALL=C); ours went by the locale: compare the bytes.
    mine = [r for r in records if r.get("driver") == args.driver and _as_argv(r.get("object")) == os.fsencode(args.object)
            and r.get("operation") == args.operation]
    if mine:
        _print_record(mine[-1], out)
    return proc.returncode


def _as_argv(value):
    """A logged argv string back as the bytes the hook was given."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except (AttributeError, UnicodeEncodeError):
        return None


def cmd_validate(args, out):
    from .entrypoint import file_is_ours
    from .events import GUEST_KILLING_OPERATIONS, kills_running_guest
    from .trust import TrustCheck, Untrusted, format_problem
    base = _current(args.hooks_dir)
    path = "%s/%s" % (base, CONFIG_FILE)
    problems = []
    warnings = []
    try:
        config = load_config(path, strict=True)
    except (OSError, ConfigError) as exc:
        _emit(out, "FAIL %s" % exc)
        return 1
    trust = TrustCheck()
    problems.extend(_trust_problems(trust, args.hooks_dir, path))
    problems.extend(merge_dropins(config, args.hooks_dir, trust, strict=True))     # rules.d/*.json
    for rule in config["rules"]:
        script = script_path(base, rule["script"])
        if not os.path.lexists(script):
            problems.append("rule %r: its script %s is missing" % (rule["name"], script))
            continue
        try:
            problem = format_problem(trust.check_file(script))
        except Untrusted as exc:
            problem = str(exc)
        if problem:
            problems.append("rule %r: %s %s" % (rule["name"], script, problem))
        if rule["enabled"] and rule["on_failure"] == "fail" and any(
                kills_running_guest(rule["driver"], op) for op in
                (GUEST_KILLING_OPERATIONS if rule["operations"] == ["*"] else rule["operations"])):
            warnings.append("rule %r: on_failure is 'fail' and it runs on 'reconnect': if it fails when the "
                            "daemon restarts, libvirt kills the running guest (set operations without "
                            "reconnect, or on_failure: ignore)" % rule["name"])
    if any(rule["xpath"] for rule in config["rules"]):
        from .xmlcond import rule_problems
        problems.extend(rule_problems(config["rules"]))
    _generation_checks(args.hooks_dir, base, config["rules"], problems, warnings)
    drivers = sorted({r["driver"] for r in config["rules"] if r["enabled"]})
    for driver in drivers:
        entry = "%s/%s" % (args.hooks_dir, driver)
        if not os.path.exists(entry):
            problems.append("hooks/%s is missing: rules for the %s driver never run" % (driver, driver))
        elif not file_is_ours(entry):
            problems.append("hooks/%s is not a virthooks entry point: rules for %s never run" % (driver, driver))
    for problem in problems:
        _emit(out, "FAIL %s" % problem)
    for warning in warnings:
        _emit(out, "WARN %s" % warning)
    _emit(out, "%s: %d rule(s), %d problem(s), %d warning(s)"
          % (path, len(config["rules"]), len(problems), len(warnings)))
    return 1 if problems else 0


def _generation_checks(hooks_dir, base, rules, problems, warnings):
    """The deploy's syntax gate again, and what changed in the generation since it was written."""
    from .generations import read_meta
    from .syntax import generation_problems
    own = "%s/%s" % (hooks_dir, OWN_DIR)
    gen = current_id(own)
    meta = read_meta(own, gen) if gen else {}
    found, noted = generation_problems(base, rules, meta, {r["name"]: script_path(base, r["script"]) for r in rules})
    problems.extend(found)
    warnings.extend(noted)


def _trust_problems(trust, hooks_dir, config_path) -> list:
    """What root reads or imports on every hook call that is not root's alone: config.json and
    the runtime's package (scripts are checked with their rules)."""
    from .layout import LIB_CURRENT, LIB_DIR, RUNTIME_PACKAGE
    from .trust import Untrusted
    problems = []
    try:
        trust.read_data(config_path)
    except Untrusted as exc:
        problems.append("config.json: %s: the dispatcher refuses it, no hook runs" % exc)
    lib = "%s/%s/%s/%s/%s" % (hooks_dir, OWN_DIR, LIB_DIR, LIB_CURRENT, RUNTIME_PACKAGE)
    problems.extend("runtime: %s: the entry points refuse to import it, no hook runs" % p
                    for p in trust.tree_problems(lib))
    return problems


def _print_record(rec, out):
    """A log record, readable; any field may hold anything (the log is only ever appended to)."""
    if set(rec) == {"unparsable"}:
        _emit(out, "unparsable log line: %s" % rec["unparsable"])
        return
    _emit(out, "%s %-7s %s %s %s %s -> %s (exit %s, %s ms)" % (
        rec.get("time", "?"), rec.get("driver"), rec.get("object"), rec.get("operation"), rec.get("suboperation"),
        rec.get("extra"), rec.get("result"), rec.get("exit"), rec.get("duration_ms")))
    if rec.get("error"):
        _emit(out, "    error: %s" % rec["error"])
    for note in _list(rec.get("notes")):
        _emit(out, "    note: %s" % note)
    for s in _list(rec.get("scripts")):
        if not isinstance(s, dict):
            _emit(out, "    %s" % s)
            continue
        extra = " %s" % s["message"] if s.get("message") else ""
        fields = (s.get("status"), s.get("name"), s.get("exit"), s.get("duration_ms", "-"), extra)
        _emit(out, "    %-8s %-30s exit=%s %s ms%s" % fields)
        for stream in ("stderr", "stdout"):
            if s.get(stream):
                text = str(s[stream]).strip().split("\n")
                _emit(out, "             %s: %s" % (stream, " | ".join(text[-3:])))


def _list(value):
    return value if isinstance(value, list) else [] if value is None else [value]


def cmd_log(args, out):
    config = _load(args.hooks_dir)
    if not config["log"]["file"]:
        _emit(out, "file logging is off (log.file is null); see syslog (ident virthooks)")
        return 0
    records = read_records(config["log"]["file"], 0, config["log"]["backups"])
    if args.failed:
        records = [r for r in records if r.get("result") in ("failed", "error")]
    records = records[-args.n:] if args.n > 0 else records
    if args.json:
        from .minijson import dumps
        for rec in records:
            out.write(dumps(rec) + "\n")  # ASCII: every control character is a JSON escape
        return 0
    for rec in records:
        _print_record(rec, out)
    if not records:
        _emit(out, "no calls logged in %s" % config["log"]["file"])
    return 0


def cmd_generations(args, out):
    from .generations import GenerationError, all_ids, read_meta
    own = "%s/%s" % (args.hooks_dir, OWN_DIR)
    ids = all_ids(own)
    current = current_id(own)
    if not ids:
        _emit(out, "no generations in %s (nothing deployed, or deployed before generations)" % own)
        return 0
    _emit(out, "  %-36s %-20s %-14s %-16s %5s %7s  %s"
          % ("generation", "time", "deployer", "digest", "rules", "scripts", "entry points"))
    problems = []
    for gen in ids:
        try:
            meta = read_meta(own, gen, strict=True)
        except GenerationError as exc:
            meta = {}
            problems.append(str(exc))
        _emit(out, "%s %-36s %-20s %-14s %-16s %5s %7s  %s" % (
            "*" if gen == current else " ", gen, meta.get("time", "?"), meta.get("deployer") or "-",
            meta.get("digest", "?"), meta.get("rules", "?"), meta.get("scripts", "?"),
            ",".join(meta.get("drivers", [])) or "-"))
    for problem in problems:
        _emit(out, "virthooks: %s" % problem)
    return 1 if problems else 0


def cmd_rollback(args, out):
    from .rollback import (RollbackError, apply_rollback, daemons_to_reload, plan_rollback, reload_daemons,
                           running_daemons)
    try:
        plan = plan_rollback(args.hooks_dir, args.generation)
    except RollbackError as exc:
        _emit(out, "virthooks: %s" % exc)
        return 1
    verb = "would roll back" if args.dry_run else "rolled back"
    for line in plan["summary"] or ["no rule or script differs"]:
        _emit(out, "  " + line)
    for driver in plan["added"]:
        _emit(out, "  entry point hooks/%s: added" % driver)
    for driver in plan["removed"]:
        _emit(out, "  entry point hooks/%s: removed" % driver)
    for note in plan["notes"]:
        _emit(out, "  note: %s" % note)
    if not args.dry_run:
        try:
            apply_rollback(plan)
        except RollbackError as exc:
            _emit(out, "virthooks: %s" % exc)
            return 1
    _emit(out, "%s from generation %s to %s" % (verb, plan["current"], plan["target"]))
    running = running_daemons(args.hooks_dir)
    daemons = daemons_to_reload(plan["added"] + plan["removed"], running)
    if daemons and args.reload and not args.dry_run:
        pids = reload_daemons(daemons, running)
        _emit(out, "reloaded (SIGHUP) %s: pid %s" % (", ".join(daemons), ", ".join(str(p) for p in pids)))
    elif daemons:
        _emit(out, "entry points changed: %s must reload to see them (virthooks rollback --reload, or "
              "service %s reload)" % (", ".join(daemons), daemons[0]))
    elif plan["added"] or plan["removed"]:
        _emit(out, "entry points changed: no libvirt daemon that runs them is running; it reads them when it "
              "starts (no reload needed)")
    return 0


def cmd_metrics(args, out):
    from .logstats import cmd_metrics as write_metrics
    return write_metrics(args, out, _load(args.hooks_dir))


def cmd_import(args, out):
    from .importers import cmd_import as run_import
    return run_import(args, out, sys.stderr)


def main(hooks_dir="/etc/libvirt/hooks", argv=None, out=None):
    if out is None:
        out = sys.stdout
        # Whatever the locale (C, POSIX, latin-1...), a character it cannot encode is shown
        # as a backslash escape rather than ending the command with UnicodeEncodeError.
        if hasattr(out, "reconfigure"):
            out.reconfigure(errors="backslashreplace")
    args = _parser(hooks_dir).parse_args(sys.argv[1:] if argv is None else argv)
    args.hooks_dir = args.hooks_dir.rstrip("/")
    handler = {"list": cmd_list, "simulate": cmd_simulate, "validate": cmd_validate, "log": cmd_log,
               "generations": cmd_generations, "rollback": cmd_rollback, "metrics": cmd_metrics,
               "import": cmd_import}[args.command]
    sys.exit(handler(args, out))  # pylint: disable=ansible-bad-function  # a host program, not a module
