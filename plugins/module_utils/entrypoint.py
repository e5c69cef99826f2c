# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files libvirt executes: ``hooks/<driver>`` entry points, and the CLI launcher.

An entry point is a few lines of POSIX sh. Most libvirt events match no rule, and those must
not pay for a Python start: the entry point carries a ``case`` prefilter built from the
rules at deploy time (operation/sub-operation/object patterns). It lets through a superset of
the events the rules match (the dispatcher decides exactly), plus any event for which a
per-guest tree directory exists. Everything else exits 0 at once.
"""

from .events import GUEST_DRIVERS
from .layout import ENTRY_POINT_MARKER, LIB_CURRENT, LIB_DIR, OWN_DIR, RUNTIME_PACKAGE
from .rules import operation_spellings

SAFE_PATTERN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-+,:@%=")
PYTHON_FLAGS = "-IS"   # isolated (no env, no user site), no site import: fast and predictable


def sh_quote(value: str) -> str:
    """Single-quote a string for POSIX sh."""
    return "'" + value.replace("'", "'\\''") + "'"


def _simple_class(body: str) -> bool:
    """Whether a bracket expression body (without [ ]) means the same in sh and in our globs."""
    if body.startswith("!"):
        body = body[1:]
    if not body or not all(c.isalnum() and c.isascii() or c in "-_." for c in body):
        return False
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-" and body[i] > body[i + 2]:
            return False            # a reversed range: widen rather than guess
        i += 3 if i + 2 < len(body) and body[i + 1] == "-" else 1
    return True


def sh_glob(glob: str) -> str:
    """A sh ``case`` pattern that matches at least what the rule glob matches.

    ``*``, ``?`` and simple bracket expressions (``[0-9]``, ``[!a-c]``) keep their meaning,
    other characters are escaped; any other bracket expression widens the whole glob to ``*``
    (a superset is all a prefilter needs).
    """
    out = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if ch == "[":
            end = glob.find("]", i + 2)
            if end < 0 or not _simple_class(glob[i + 1:end]):
                return "*"
            out.append(glob[i:end + 1])
            i = end + 1
            continue
        out.append(ch if ch in "*?" or ch in SAFE_PATTERN_CHARS else "\\" + ch)
        i += 1
    return "".join(out)


def prefilter_patterns(driver: str, rules) -> list:
    """The ``case "$2/$3/$1"`` patterns (op/subop/object) that can match a rule of this driver."""
    patterns = []
    for rule in rules:
        if rule.get("driver") != driver or not rule.get("enabled", True):
            continue
        ops = rule.get("operations", ["*"])
        ops = ["*"] if "*" in ops else operation_spellings(driver, ops)
        subops = rule.get("suboperations", ["*"])
        subops = ["*"] if "*" in subops else subops
        objects = rule.get("objects", ["*"])
        objects = ["*"] if "*" in objects else objects
        for op in ops:
            for sub in subops:
                for obj in objects:
                    pattern = "%s/%s/%s" % (sh_glob(op), sh_glob(sub), sh_glob(obj))
                    if pattern not in patterns:
                        patterns.append(pattern)
    if "*/*/*" in patterns:
        return ["*/*/*"]
    return patterns


def dispatcher_command(hooks_dir: str, python: str, driver: str) -> str:
    code = ("import sys;sys.path[:0]=[sys.argv[1]+%r];from %s.dispatch import main;main()"
            % ("/%s/%s/%s" % (OWN_DIR, LIB_DIR, LIB_CURRENT), RUNTIME_PACKAGE))
    parts = (sh_quote(python), PYTHON_FLAGS, sh_quote(code), sh_quote(hooks_dir), driver)
    return 'exec %s %s -c %s %s %s "$@"' % parts


def render_entry_point(driver: str, hooks_dir: str, python: str, rules, tree: bool = True,
                       version: str = "") -> str:
    """The text of hooks/<driver>."""
    patterns = prefilter_patterns(driver, rules)
    lines = [
        "#!/bin/sh",
        ENTRY_POINT_MARKER,
        "# libvirt runs this for every %s hook event (argv: object operation sub-operation extra)." % driver,
        "# Events that no virthooks rule can match end here without starting Python; the others",
        "# go to the virthooks dispatcher%s, which reads %s/%s/config.json."
        % (" " + version if version else "", hooks_dir, OWN_DIR),
    ]
    tree_check = tree and (driver in GUEST_DRIVERS or driver == "network")
    if patterns != ["*/*/*"]:
        if tree_check:
            fallback = "[ -d %s\"$1/$2/$3\" ] || exit 0" % sh_quote("%s/%s.d/" % (hooks_dir, driver))
        else:
            fallback = "exit 0"
        lines.append('case "$2/$3/$1" in')
        if patterns:
            lines.append("%s) ;;" % "|".join(patterns))
        lines.append("*) %s ;;" % fallback)
        lines.append("esac")
    lines.append(dispatcher_command(hooks_dir, python, driver))
    return "\n".join(lines) + "\n"


def render_cli(hooks_dir: str, python: str) -> str:
    """The text of hooks/virthooks/virthooks, the operator CLI launcher."""
    code = ("import sys;sys.path[:0]=[%r];from %s.cli import main;main(%r)"
            % ("%s/%s/%s/%s" % (hooks_dir, OWN_DIR, LIB_DIR, LIB_CURRENT), RUNTIME_PACKAGE, hooks_dir))
    return "\n".join([
        "#!/bin/sh",
        "# virthooks operator CLI (managed by Ansible, virthooks.libvirt): list, simulate, validate, log.",
        "exec %s -I -c %s \"$@\"" % (sh_quote(python), sh_quote(code)),
    ]) + "\n"


HEAD_BYTES = 4096
HEAD_LINES = 5


def is_ours(text: str) -> bool:
    """Whether a hook file's text is one of our entry points (the marker line near its top)."""
    return any(line.strip() == ENTRY_POINT_MARKER for line in text[:HEAD_BYTES].splitlines()[:HEAD_LINES])


def file_is_ours(path: str) -> bool:
    """Whether the file at path is one of our entry points (False if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return is_ours(f.read(HEAD_BYTES).decode("utf-8", "replace"))
    except OSError:
        return False
