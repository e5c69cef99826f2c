# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks rollback``: make the previous generation (or GENERATION) current again."""

from .util import JSON_HELP, CliError, emit, emit_json


def reload_advice(plan: dict, daemons: list) -> str:
    """What the operator must do for the daemons to see entry points that were added or removed."""
    if daemons:
        return ("entry points changed: %s must reload to see them (virthooks rollback --reload, or "
                "service %s reload)" % (", ".join(daemons), daemons[0]))
    if plan["added"] or plan["removed"]:
        return ("entry points changed: no libvirt daemon that runs them is running; it reads them when it "
                "starts (no reload needed)")
    return ""


def plan_record(plan: dict, dry_run: bool, daemons: list) -> dict:
    """The rollback as --json shows it."""
    return {"dry_run": dry_run, "current": plan["current"], "target": plan["target"], "changes": plan["summary"],
            "added": plan["added"], "removed": plan["removed"], "notes": plan["notes"], "reload": daemons}


def show_plan(out, plan: dict) -> None:
    for line in plan["summary"] or ["no rule or script differs"]:
        emit(out, "  " + line)
    for driver in plan["added"]:
        emit(out, "  entry point hooks/%s: added" % driver)
    for driver in plan["removed"]:
        emit(out, "  entry point hooks/%s: removed" % driver)
    for note in plan["notes"]:
        emit(out, "  note: %s" % note)


def add_parser(sub) -> None:
    rb = sub.add_parser("rollback", help="make the previous generation (or GENERATION) current again")
    rb.add_argument("generation", nargs="?", default="", help="the generation to make current (default: the previous)")
    rb.add_argument("--reload", action="store_true",
                    help="send SIGHUP to the daemons whose entry points were added or removed")
    rb.add_argument("--dry-run", action="store_true", help="only show what would change")
    rb.add_argument("--json", action="store_true", help=JSON_HELP)


def run(args, out) -> int:
    from .. import rollback
    try:
        plan = rollback.plan_rollback(args.hooks_dir, args.generation)
        if not args.dry_run:
            rollback.apply_rollback(plan)
    except rollback.RollbackError as exc:
        raise CliError(str(exc)) from None
    running = rollback.running_daemons(args.hooks_dir)
    daemons = rollback.daemons_to_reload(plan["added"] + plan["removed"], running)
    reload_now = bool(daemons) and args.reload and not args.dry_run
    pids = rollback.reload_daemons(daemons, running) if reload_now else []
    if args.json:
        emit_json(out, dict(plan_record(plan, args.dry_run, daemons), reloaded=pids))
        return 0
    show_plan(out, plan)
    emit(out, "%s from generation %s to %s" % ("would roll back" if args.dry_run else "rolled back", plan["current"],
                                               plan["target"]))
    if reload_now:
        emit(out, "reloaded (SIGHUP) %s: pid %s" % (", ".join(daemons), ", ".join(str(p) for p in pids)))
    elif reload_advice(plan, daemons):
        emit(out, reload_advice(plan, daemons))
    return 0
