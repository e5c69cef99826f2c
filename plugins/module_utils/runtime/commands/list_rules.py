# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks list``: the rules, or what would run for one event (XPath evaluated with --xml)."""

import sys

from .util import (JSON_HELP, CliError, columns, current_dir, emit, emit_json, entry_point_gap, event_args, load,
                   read_file, unreached_dropins)
from ..events import is_abortable, reads_stdout
from ..rules import merge_dropins, steps_for_event

RULE_FIELDS = ("name", "driver", "objects", "operations", "suboperations", "extras", "daemons", "xpath",
               "order", "timeout", "on_failure", "enabled", "script")


def rule_record(rule: dict) -> dict:
    """A rule as --json shows it; ``source`` names the file it comes from (config.json, or rules.d/<file>)."""
    record = {field: rule.get(field) for field in RULE_FIELDS}
    record["source"] = rule.get("origin") or "config.json"
    return record


def rule_row(rule: dict) -> list:
    """A rule as a row of the table: name, driver, what it matches, then how it runs."""
    row = [rule["name"], rule["driver"], "objects=" + ",".join(rule["objects"]),
           "ops=" + ",".join(rule["operations"]), "subops=" + ",".join(rule["suboperations"])]
    rest = []
    if rule["extras"] != ["*"]:
        rest.append("extras=%s" % ",".join(rule["extras"]))
    if rule["daemons"] != ["*"]:
        rest.append("daemons=%s" % ",".join(rule["daemons"]))
    if rule["xpath"]:
        rest.append("xpath=%s" % rule["xpath"])
    disabled = "" if rule["enabled"] else " DISABLED"
    rest.append("order=%d timeout=%gs on_failure=%s%s" % (rule["order"], rule["timeout"], rule["on_failure"], disabled))
    if rule.get("origin"):
        rest.append("(from %s)" % rule["origin"])
    return row + [" ".join(rest)]


def list_rules(args, out, config) -> int:
    rules = sorted(config["rules"], key=lambda r: (r["order"], r["name"]))
    if args.json:
        gaps = {driver: entry_point_gap(args.hooks_dir, driver) for driver in {r["driver"] for r in rules}}
        emit_json(out, {"rules": [dict(rule_record(r), entry_point=not gaps[r["driver"]]) for r in rules]})
        return 0
    for line in columns([rule_row(r) for r in rules]):
        out.write(line + "\n")
    if not rules:
        emit(out, "no rules")
    return 0


def xml_document(path: str):
    """The --xml file as an XPath document (parsed when a condition first reads it); CliError when
    it cannot be read."""
    from ..xmlcond import Document
    return Document(read_file(path, "--xml"))


def step_record(step, document, xml_path: str = "") -> dict:
    """A step as --json shows it; ``xpath_result`` is null when there is no condition or no --xml.
    CliError when the --xml file is not XML, or the condition cannot be evaluated on it."""
    result = None
    if step.xpath and document is not None:
        try:
            result = bool(document.evaluate(step.xpath, step.namespaces))
        except ValueError as exc:       # xmlcond.ConditionError, NotInSubset
            raise CliError("--xml %s: rule %r: %s" % (xml_path, step.name, exc)) from None
    return {"order": step.order, "name": step.name, "path": step.path, "source": step.source,
            "timeout": step.timeout, "on_failure": step.on_failure, "xpath": step.xpath, "xpath_result": result}


def step_row(record: dict) -> list:
    cond = ""
    if record["xpath"] and record["xpath_result"] is None:
        cond = "if xpath %s (not evaluated: no --xml)" % record["xpath"]
    elif record["xpath"]:
        cond = "xpath %s -> %s" % (record["xpath"], record["xpath_result"])
    return ["%4d" % record["order"], record["name"], record["path"],
            "timeout=%gs on_failure=%s%s" % (record["timeout"], record["on_failure"], "  " + cond if cond else "")]


def list_event(args, out, config, words) -> int:
    driver, obj, op, sub, extra = event_args(words)
    document = xml_document(args.xml) if args.xml else None
    steps, notes = steps_for_event(config, args.hooks_dir, current_dir(args.hooks_dir), driver, obj, op, sub, extra,
                                   args.daemon)
    event = {"driver": driver, "object": obj, "operation": op, "suboperation": sub, "extra": extra,
             "daemon": args.daemon, "abortable": is_abortable(driver, op), "reads_stdout": reads_stdout(driver, op)}
    gap = entry_point_gap(args.hooks_dir, driver) if steps else ""
    if gap:
        notes = notes + ["hooks/%s is %s: libvirt calls no virthooks entry point for %s, so none of this runs"
                         % (driver, gap, driver)]
    records = [step_record(step, document, args.xml) for step in steps]
    if args.json:
        emit_json(out, {"event": event, "notes": notes, "steps": records})
        return 0
    emit(out, "event: %s %s %s %s %s (%s%s)" % (driver, obj, op, sub, extra,
         "abortable" if event["abortable"] else "failures only logged",
         ", stdout read as XML" if event["reads_stdout"] else ""))
    for note in notes:
        emit(out, "note: %s" % note)
    if not steps:
        emit(out, "nothing would run")
    for line in columns([step_row(r) for r in records]):
        out.write(line + "\n")
    return 0


def add_parser(sub) -> None:
    ls = sub.add_parser("list", help="the rules, or what would run for one event")
    ls.add_argument("event", nargs="*", metavar="DRIVER OBJECT OPERATION [SUBOP [EXTRA]]")
    ls.add_argument("--xml", help="XML file to evaluate XPath conditions against")
    ls.add_argument("--daemon", help="calling daemon, for daemon-driver rules (e.g. virtqemud)")
    ls.add_argument("--json", action="store_true", help=JSON_HELP)


def run(args, out) -> int:
    config = load(args.hooks_dir)
    notes = out if not args.json else sys.stderr
    for problem in merge_dropins(config, args.hooks_dir):       # hooks/virthooks/rules.d/*.json
        emit(notes, "note: host drop-in skipped: %s" % problem)
    for line in unreached_dropins(args.hooks_dir, config["rules"]):
        emit(notes, "note: host drop-in never runs: %s" % line)
    if args.event:
        return list_event(args, out, config, args.event)
    return list_rules(args, out, config)
