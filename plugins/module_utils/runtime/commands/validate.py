# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks validate``: config.json, the scripts, the runtime and the entry points, as root runs them.

It holds the deploy lock shared while it reads, so a deploy or rollback running meanwhile (one whose
ansible-playbook was killed goes on in Ansible's worker) is waited for rather than seen half-way, and it finds
the current generation once: its rules are checked against its own scripts and meta.json.
"""

import os

from .util import JSON_HELP, CliError, current_dir, emit, emit_json, entry_point_gap, own_dir, unreached_dropins
from ..generations import DeployLock, GenerationError
from ..layout import CONFIG_FILE
from ..rules import ConfigError, load_config, merge_dropins, script_path


def trust_problems(trust, hooks_dir: str, path: str) -> list:
    """What root reads or imports on every hook call that is not root's alone: config.json and
    the runtime's package (scripts are checked with their rules)."""
    from ..layout import LIB_CURRENT, LIB_DIR, RUNTIME_PACKAGE
    from ..trust import Untrusted
    problems = []
    try:
        trust.read_data(path)
    except Untrusted as exc:
        problems.append("config.json: %s: the dispatcher refuses it, no hook runs" % exc)
    lib = "%s/%s/%s/%s" % (own_dir(hooks_dir), LIB_DIR, LIB_CURRENT, RUNTIME_PACKAGE)
    problems.extend("runtime: %s: the entry points refuse to import it, no hook runs" % p
                    for p in trust.tree_problems(lib))
    return problems


def script_problem(trust, base: str, rule: dict):
    """Why root would not run the rule's script, or None."""
    from ..trust import Untrusted, format_problem
    script = script_path(base, rule["script"])
    if not os.path.lexists(script):
        return "rule %r: its script %s is missing" % (rule["name"], script)
    try:
        problem = format_problem(trust.check_file(script))
    except Untrusted as exc:
        problem = str(exc)
    return "rule %r: %s %s" % (rule["name"], script, problem) if problem else None


def kills_guest_warning(rule: dict):
    """A warning for an enabled rule that may fail on 'reconnect' and so kill a running guest, or None."""
    from ..events import GUEST_KILLING_OPERATIONS, kills_running_guest
    ops = GUEST_KILLING_OPERATIONS if rule["operations"] == ["*"] else rule["operations"]
    if rule["enabled"] and rule["on_failure"] == "fail" and any(kills_running_guest(rule["driver"], op) for op in ops):
        return ("rule %r: on_failure is 'fail' and it runs on 'reconnect': if it fails when the daemon restarts, "
                "libvirt kills the running guest (set operations without reconnect, or on_failure: ignore)"
                % rule["name"])
    return None


def generation_checks(hooks_dir: str, base: str, rules: list, syntax: bool = True) -> tuple:
    """(problems, warnings): the deploy's syntax gate again (unless syntax is false), and what changed in the
    generation since."""
    from ..generations import read_meta
    from ..syntax import generation_problems
    own = own_dir(hooks_dir)
    gen = os.path.basename(base) if base != own else ""
    meta = read_meta(own, gen) if gen else {}
    return generation_problems(base, rules, meta, {r["name"]: script_path(base, r["script"]) for r in rules}, syntax)


def entry_point_problems(hooks_dir: str, rules: list) -> list:
    """Enabled deployed rules whose driver has no entry point of ours, by driver. (A host drop-in for a
    driver no deployed rule has is a warning, unreached_dropins: it is the host's, not the deploy's, so it
    must not fail the role's check after a deploy and roll it back.)"""
    deployed = sorted({r["driver"] for r in rules if r["enabled"] and not r.get("origin")})
    problems = []
    for driver in deployed:
        gap = entry_point_gap(hooks_dir, driver)
        if gap == "missing":
            problems.append("hooks/%s is missing: rules for the %s driver never run" % (driver, driver))
        elif gap:
            problems.append("hooks/%s is not a virthooks entry point: rules for %s never run" % (driver, driver))
    return problems


def findings(hooks_dir: str, base: str, rules: list, syntax: bool = True) -> tuple:
    """(problems, warnings) of the generation in base, whose config.json loaded; host drop-ins
    (rules.d/*.json) are checked and their rules checked with the deployed ones."""
    from ..trust import TrustCheck
    path = "%s/%s" % (base, CONFIG_FILE)
    trust = TrustCheck()
    problems = trust_problems(trust, hooks_dir, path)
    config = {"rules": rules}
    problems.extend(merge_dropins(config, hooks_dir, trust, strict=True))
    rules = config["rules"]
    warnings = []
    for rule in rules:
        problems.append(script_problem(trust, base, rule))
        warnings.append(kills_guest_warning(rule))
    if any(rule["xpath"] for rule in rules):
        from ..xmlcond import rule_problems
        problems.extend(rule_problems(rules))
    found, noted = generation_checks(hooks_dir, base, rules, syntax)
    problems.extend(found)
    warnings.extend(noted)
    problems.extend(entry_point_problems(hooks_dir, rules))
    warnings.extend(unreached_dropins(hooks_dir, rules))
    return [p for p in problems if p], [w for w in warnings if w]


def check(hooks_dir: str, syntax: bool = True) -> tuple:
    """(config.json path, rules, problems, warnings) of the current generation, found once, read while no
    deploy or rollback is half-way."""
    try:
        with DeployLock(own_dir(hooks_dir), shared=True):
            base = current_dir(hooks_dir)
            path = "%s/%s" % (base, CONFIG_FILE)
            try:
                rules = load_config(path, strict=True)["rules"]
            except (OSError, ConfigError, ValueError) as exc:
                return path, [], [str(exc)], []
            return (path, rules) + findings(hooks_dir, base, rules, syntax)
    except GenerationError as exc:
        raise CliError(str(exc)) from None


def add_parser(sub) -> None:
    val = sub.add_parser("validate", help="check config.json, the scripts and the entry points")
    val.add_argument("--json", action="store_true", help=JSON_HELP)
    val.add_argument("--skip-syntax", action="store_true",
                     help="do not run the scripts' syntax checks (a deploy that made this generation just ran them; "
                          "each script is still checked to be the one deployed, by its sha256)")


def run(args, out) -> int:
    path, rules, problems, warnings = check(args.hooks_dir, not args.skip_syntax)
    if args.json:
        emit_json(out, {"config": path, "rules": len(rules), "ok": not problems, "problems": problems,
                        "warnings": warnings})
        return 1 if problems else 0
    for problem in problems:
        emit(out, "FAIL %s" % problem)
    for warning in warnings:
        emit(out, "WARN %s" % warning)
    emit(out, "%s: %d rule(s), %d problem(s), %d warning(s)" % (path, len(rules), len(problems), len(warnings)))
    return 1 if problems else 0
