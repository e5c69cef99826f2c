# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ``virthooks`` subcommands (``commands/*.py``) share: output, errors, the current
generation, events given on the command line.

Output is for a terminal or a script: every line is escaped (runlog.printable) so a guest name,
a rule field or a script's output cannot move the cursor; ``--json`` documents are ASCII JSON.
An error is a CliError: ``cli.main`` prints it as one line on stderr and exits non-zero.
"""

from ..events import DRIVERS, EVENTS, canonical_operation
from ..generations import current_id, generation_path
from ..layout import CONFIG_FILE, OWN_DIR
from ..rules import SUBOPERATIONS, ConfigError, load_config
from ..runlog import printable

USAGE_EXIT = 2      # a bad argument, as argparse exits
JSON_HELP = "one JSON document on stdout (fields: docs/cli.md)"


class CliError(Exception):
    """The command cannot go on; the message names the thing at fault (one line, no traceback)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def emit(out, line: str) -> None:
    """Write one line, every control character or undecodable byte in it escaped."""
    out.write(printable(line) + "\n")


def emit_json(out, document) -> None:
    """A --json document: ASCII only, so every control character and odd byte is a JSON escape."""
    import json
    out.write(json.dumps(document, indent=2) + "\n")


def columns(rows: list) -> list:
    """rows of cells as lines, each column as wide as its widest cell (the last one not padded).

    Cells are escaped first, so an escaped control character counts as the text shown."""
    shown = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in shown if i < len(row)) for i in range(max(len(r) for r in shown))] \
        if shown else []
    return [" ".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)).rstrip()
            for row in shown]


def own_dir(hooks_dir: str) -> str:
    return "%s/%s" % (hooks_dir, OWN_DIR)


def current_dir(hooks_dir: str) -> str:
    """The directory of the current generation (hooks/virthooks/ before the first one)."""
    own = own_dir(hooks_dir)
    gen = current_id(own)
    return generation_path(own, gen) if gen else own


def config_path(hooks_dir: str) -> str:
    return "%s/%s" % (current_dir(hooks_dir), CONFIG_FILE)


def entry_point_gap(hooks_dir: str, driver: str) -> str:
    """Why libvirt calls no virthooks entry point for a driver: 'missing', 'not a virthooks entry
    point', or '' when hooks/<driver> is ours."""
    import os
    from ..layout import file_is_ours
    entry = "%s/%s" % (hooks_dir, driver)
    if not os.path.exists(entry):
        return "missing"
    return "" if file_is_ours(entry) else "not a virthooks entry point"


def unreached_dropins(hooks_dir: str, rules: list) -> list:
    """A line for each host drop-in whose enabled rules are for a driver with no entry point of ours
    and no deployed rule (a deployed rule's driver missing its entry point is validate's own problem)."""
    from ..rules import dropin_rules_by_driver, unreached_dropin
    deployed = {r["driver"] for r in rules if r["enabled"] and not r.get("origin")}
    lines = []
    for (origin, driver), names in dropin_rules_by_driver(rules).items():
        gap = "" if driver in deployed else entry_point_gap(hooks_dir, driver)
        if gap:
            lines.append(unreached_dropin(origin, driver, names, "hooks/%s is %s" % (driver, gap)))
    return lines


def load(hooks_dir: str, strict: bool = False) -> dict:
    """The current config.json, validated; CliError names the file and what is wrong with it.

    Host drop-in rules (rules.d/*.json) are merged by the commands that show rules (list, validate),
    with rules.merge_dropins, as the dispatcher merges them."""
    path = config_path(hooks_dir)
    try:
        return load_config(path, strict=strict)
    except (OSError, ConfigError, ValueError) as exc:
        raise CliError("cannot load %s: %s" % (path, getattr(exc, "strerror", None) or exc)) from None


def read_file(path: str, what: str) -> bytes:
    """A file named on the command line; CliError (one line) when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CliError("%s %s: %s" % (what, path, exc.strerror or exc)) from None


def check_event(driver: str, operation: str, suboperation: str) -> None:
    """Refuse an operation or sub-operation libvirt never passes, naming the valid ones.

    The list is the runtime's event model (events.EVENTS, rules.SUBOPERATIONS), the one the role
    validates rules against: what the role refuses in a rule, the CLI refuses in an event."""
    if driver not in DRIVERS:
        raise CliError("unknown driver %r (valid: %s)" % (driver, ", ".join(DRIVERS)), USAGE_EXIT)
    known = EVENTS[driver]
    if canonical_operation(driver, operation) not in known:
        raise CliError("unknown operation %r for driver %r (valid: %s)" % (operation, driver, ", ".join(known)),
                       USAGE_EXIT)
    if suboperation not in SUBOPERATIONS:
        raise CliError("unknown sub-operation %r (valid: %s)" % (suboperation, ", ".join(SUBOPERATIONS)),
                       USAGE_EXIT)


def event_args(words: list) -> tuple:
    """(driver, object, operation, sub-operation, extra) of DRIVER OBJECT OPERATION [SUBOP [EXTRA]];
    a missing sub-operation is the one libvirt passes with that operation."""
    if len(words) < 3 or len(words) > 5:
        raise CliError("an event is DRIVER OBJECT OPERATION [SUBOP [EXTRA]]", USAGE_EXIT)
    driver, obj, op = words[:3]
    if driver not in DRIVERS:
        raise CliError("unknown driver %r (valid: %s)" % (driver, ", ".join(DRIVERS)), USAGE_EXIT)
    default_sub = EVENTS[driver].get(canonical_operation(driver, op), ("-",))[0]
    sub = words[3] if len(words) > 3 else default_sub
    extra = words[4] if len(words) > 4 else "-"
    check_event(driver, op, sub)
    return driver, obj, op, sub, extra
