"""The entry point's prefilter against the dispatcher's globs: a superset for any UTF-8 name, and fast.

The prefilter is the real text render_entry_point generates, run by real shells: dash, and bash
in the C locale libvirt gives its hooks and in a UTF-8 one.
"""
from __future__ import annotations

import subprocess
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.entrypoint import launch_lines, render_entry_point, sh_quote
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import glob_match, normalize_config, rule_matches

from ..conftest import LIBVIRT_ENV

SHELLS = {
    "dash": (["/bin/dash"], "C"),
    "bash-C": (["/bin/bash"], "C"),
    "bash-C.UTF-8": (["/bin/bash"], "C.UTF-8"),
}
QEMU_OPS = ("prepare", "start", "started", "stopped", "release", "migrate")
SUBS = ("begin", "end", "-")
PASSED = 3                          # the exit status that stands for the dispatcher's exec

# Characters that trip byte-oriented matching: 2, 3 and 4 UTF-8 bytes, bytes 0x80-0x88 (dash's
# internal control bytes), sh and glob syntax, and whitespace.
TRICKY = ["é", "ā", "\u0088", "\u0080", "ÿ", "€", "中", "😀", "ß", "\u2028",
          "*", "?", "[", "]", "!", "-", "^", "\\", "'", '"', "/", "$", "`", "(", ")", "|", ";", "&",
          " ", "\t", "\n", "a", "b", "x", "z", "A", "0", "9", "_", "."]
CHARS = st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8", exclude_characters="\x00"))


def _class(draw):
    """A bracket expression: (text, [(low, high)], negated); ranges may be reversed."""
    items = draw(st.lists(st.one_of(CHARS.map(lambda c: (c, c)), st.tuples(CHARS, CHARS)), min_size=1, max_size=4))
    negate = draw(st.booleans())
    return "[" + ("!" if negate else "") + "".join(lo if lo == hi else lo + "-" + hi for lo, hi in items) + "]", items, negate


def _class_char(draw, items, negate):
    """A character the bracket expression likely matches."""
    lo, hi = draw(st.sampled_from(items))
    if negate or lo > hi:
        return draw(CHARS)
    return chr(draw(st.integers(ord(lo), ord(hi))))


@st.composite
def glob_and_names(draw):
    """A rule glob from pieces, names built to match it (mostly), and a few random names."""
    glob, name_parts = [], [[] for _ignored in range(3)]
    for _ignored in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["literal", "literal", "star", "any", "class"]))
        if kind == "literal":
            text = draw(st.text(CHARS, min_size=1, max_size=4))
            glob.append(text)
            fills = [text] * 3
        elif kind == "star":
            glob.append("*")
            fills = [draw(st.text(CHARS, max_size=4)) for _ignored in range(3)]
        elif kind == "any":
            glob.append("?")
            fills = [draw(CHARS) for _ignored in range(3)]
        else:
            text, items, negate = _class(draw)
            glob.append(text)
            fills = [_class_char(draw, items, negate) for _ignored in range(3)]
        for part, fill in zip(name_parts, fills):
            part.append(fill)
    names = ["".join(p) for p in name_parts] + draw(st.lists(st.text(CHARS, max_size=8), max_size=2))
    return "".join(glob), names


@st.composite
def rule_sets(draw):
    """1-3 qemu rules (object globs, operations, sub-operations) and events, mostly matching."""
    rules, events = [], []
    for i in range(draw(st.integers(1, 3))):
        globs, names = [], []
        for _ignored in range(draw(st.integers(1, 2))):
            glob, matching = draw(glob_and_names())
            globs.append(glob)
            names.extend(matching)
        ops = draw(st.one_of(st.just(["*"]), st.lists(st.sampled_from(QEMU_OPS), min_size=1, max_size=2, unique=True)))
        subs = draw(st.one_of(st.just(["*"]), st.lists(st.sampled_from(SUBS), min_size=1, max_size=2, unique=True)))
        rules.append({"name": "r%d" % i, "script": "s", "objects": globs, "operations": ops, "suboperations": subs})
        for name in names:
            op = draw(st.sampled_from(QEMU_OPS if ops == ["*"] else ops))
            sub = draw(st.sampled_from(SUBS if subs == ["*"] else subs))
            events.append((name, op, sub))
    return rules, events


def prefilter_program(rules, events) -> str:
    """One sh program: the entry point as a function, called once per event, printing each status.

    The entry point is render_entry_point's text with the lines that launch the dispatcher
    replaced by 'exit 3'; a function whose body is a ( subshell ) turns its 'exit's into statuses.
    """
    text = render_entry_point("qemu", "/nonexistent/hooks", "/nonexistent/python3", rules, tree=False)
    launch = "\n".join(launch_lines("/nonexistent/hooks", "/nonexistent/python3", "qemu")) + "\n"
    assert text.endswith(launch), text
    body = text[:-len(launch)] + "exit %d" % PASSED
    calls = "".join("entry %s %s %s -; echo $?\n" % (sh_quote(o), sh_quote(op), sh_quote(sub)) for o, op, sub in events)
    return "entry() (\n%s\n)\n%s" % (body, calls)


def run_program(shell: str, program: str, timeout: float = 30):
    """The exit statuses of the entry point calls, or None if the shell took over timeout seconds."""
    argv, locale = SHELLS[shell]
    env = dict(LIBVIRT_ENV, LC_ALL=locale)
    try:
        proc = subprocess.run(argv + ["-c", program], capture_output=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    assert proc.returncode == 0 and not proc.stderr, (shell, proc.returncode, proc.stderr)
    return [int(s) for s in proc.stdout.decode().split()]


@settings(derandomize=True, database=None, max_examples=150, deadline=None)
@given(rule_sets())
@example(([{"name": "vm", "script": "s", "objects": ["vm-?"]}], [("vm-é", "start", "begin")]))
@example(([{"name": "db", "script": "s", "objects": ["db[!x]"]}], [("dbé", "start", "begin")]))
@example(([{"name": "p", "script": "s", "objects": ["*-*-*-*-prod", "a[é-ü]?"], "operations": ["started"]}],
          [("a-b-c-d-prod", "started", "begin"), ("añ€", "started", "begin")]))
@example(([{"name": "q", "script": "s", "objects": ["it's \"a\"\n$(x) `y`\\*", "esac", "[!]ab]?\\"]}],
          [("it's \"a\"\n$(x) `y`\\ z", "start", "begin"), ("esac", "start", "begin"), ("\u0101\u0088\\", "start", "begin")]))
def test_prefilter_lets_through_every_event_a_rule_matches(data):
    raw_rules, events = data
    rules = normalize_config({"version": 1, "rules": raw_rules})["rules"]
    must_pass = [any(rule_matches(r, "qemu", obj, op, sub, "-", None) for r in rules) for obj, op, sub in events]
    program = prefilter_program(rules, events)
    for shell in SHELLS:
        statuses = run_program(shell, program)
        assert statuses is not None and len(statuses) == len(events), (shell, statuses)
        for event, status, matched in zip(events, statuses, must_pass):
            assert status in (0, PASSED), (shell, event, status)
            if matched:
                assert status == PASSED, "%s drops %r that a rule matches (objects %r)" % (
                    shell, event, [r["objects"] for r in rules])


def test_prefilter_stays_tight_for_exact_names_and_one_star():
    rules = normalize_config({"version": 1, "rules": [
        {"name": "a", "script": "s", "objects": ["win10", "db-*", "*-prod", "gpu-[0-9]"], "operations": ["prepare"]},
        {"name": "b", "script": "s", "objects": ["vm-?"], "suboperations": ["end"]},
    ]})["rules"]
    events = [("win10", "prepare", "begin"), ("db-é", "prepare", "begin"), ("x-prod", "prepare", "end"),
              ("gpu-7", "prepare", "begin"), ("vm-中", "stopped", "end"),                   # pass
              ("win100", "prepare", "begin"), ("db", "prepare", "begin"), ("x-pro", "prepare", "begin"),
              ("gpu-x", "prepare", "begin"), ("win10", "start", "begin"), ("vm-", "stopped", "end"),
              ("vm-1", "stopped", "begin")]                                                 # stop
    expected = [PASSED] * 5 + [0] * 7
    for shell in SHELLS:
        assert run_program(shell, prefilter_program(rules, events)) == expected, shell


# --- the examples of the issue, through a deployed runtime ------------------------------------

@pytest.mark.parametrize("glob,guest,other", [("vm-?", "vm-é", "vm-ab"), ("db[!x]", "dbé", "dbx")])
def test_rule_for_a_non_ascii_guest_runs(sandbox, glob, guest, other):
    sandbox.recorder("rec")
    sandbox.deploy([{"name": "rec", "script": "scripts/rec", "objects": [glob]}])
    for obj in (guest, other):
        fired = sandbox.fire("qemu", obj, "prepare", "begin")
        assert fired.rc == 0, fired
    assert glob_match(glob, guest) and not glob_match(glob, other)
    assert sandbox.order() == ["rec %s prepare begin -" % guest]


# --- speed: no name makes the prefilter backtrack for long -----------------------------------

SLOW_SHAPES = [
    {"objects": ["*-*-*-*-prod"]},
    {"objects": ["*-*-*-*-prod"], "operations": ["prepare"], "suboperations": ["begin"]},
    {"objects": ["*a*-*a*-*a*-*a*-*b"], "operations": ["prepare", "start"]},
    {"objects": ["*-?-*-[!x]-*-*-*x", "*-*-*-*-*-*"]},
    {"objects": ["?*?*?*?*?*-prod", "[!-]*[!-]*[!-]*[!-]*-x"]},
]
LONG_NAMES = {
    "600 dashes": "-" * 600,
    "a- x300": "a-" * 300,
    "1000 dashes": "-" * 1000,
    "é- x333 (999 bytes)": "é-" * 333,
    "a-é x250 (1000 bytes)": "a-é" * 250,
    "1000 bytes, 3-byte chars": "€" * 333 + "-",
}


def test_prefilter_is_fast_for_long_names_and_many_stars(tmp_path, capsys):
    """Each event through the real entry point (python: /bin/true) in dash, a few ms each."""
    worst = 0.0
    for i, shape in enumerate(SLOW_SHAPES):
        rules = normalize_config({"version": 1, "rules": [dict({"name": "r", "script": "s"}, **shape)]})["rules"]
        entry = tmp_path / ("qemu%d" % i)
        entry.write_text(render_entry_point("qemu", str(tmp_path / "hooks"), "/bin/true", rules))
        for label, name in LONG_NAMES.items():
            start = time.perf_counter()
            try:
                subprocess.run(["/bin/dash", str(entry), name, "prepare", "begin", "-"], env=LIBVIRT_ENV,
                               capture_output=True, timeout=10, check=True)
                took = time.perf_counter() - start
            except subprocess.TimeoutExpired:
                took = None
            if took is None:
                pytest.fail("objects %r against %s: no answer from dash within 10 s" % (shape["objects"], label))
            worst = max(worst, took)
            print("dash %6.1f ms  %-40r %s" % (took * 1000, shape["objects"], label))
            assert took < 2, (shape, label, took)
    with capsys.disabled():
        print(" [slowest event in dash: %.1f ms]" % (worst * 1000), end="")


def test_time_for_a_long_name_is_that_of_a_short_one():
    """The same shapes, timed in one dash process, against the cost of a 5-character name."""
    rules = normalize_config({"version": 1, "rules": [dict({"name": "r%d" % i, "script": "s"}, **shape)
                                                      for i, shape in enumerate(SLOW_SHAPES)]})["rules"]
    long_events = [(name, op, "begin") for name in LONG_NAMES.values() for op in ("prepare", "start", "stopped")]
    short_events = [("ab-cd", op, "begin") for _ignored in LONG_NAMES for op in ("prepare", "start", "stopped")]
    timings = {}
    for label, events in (("long", long_events), ("short", short_events)):
        program = prefilter_program(rules, events * 5)
        start = time.perf_counter()
        if run_program("dash", program, timeout=10) is None:
            pytest.fail("dash did not get through %d %s-name events within 10 s" % (len(events) * 5, label))
        timings[label] = time.perf_counter() - start
    per_event = (timings["long"] - timings["short"]) / (len(long_events) * 5)
    print("dash: %.2f ms per long-name event beyond a short one" % (per_event * 1000))
    assert per_event < 0.05, timings


def test_each_operation_is_a_case_statement_of_its_own_so_an_event_parses_only_up_to_its_own():
    """sh parses a whole compound command before it runs it: one outer case for every operation made an event
    parse the names of every operation (most of what an event no rule matches cost). The operation branches
    are statements of their own, and a last one sends the other operations to the fallback."""
    rules = normalize_config({"version": 1, "rules": [
        {"name": "a", "script": "s", "objects": ["win10"], "operations": ["prepare"]},
        {"name": "b", "script": "s", "objects": ["db-*"], "operations": ["start"]},
        {"name": "c", "script": "s", "objects": ["vm-?"], "operations": ["release"], "suboperations": ["end"]},
    ]})["rules"]
    text = render_entry_point("qemu", "/nonexistent/hooks", "/nonexistent/python3", rules, tree=False)
    launch = "\n".join(launch_lines("/nonexistent/hooks", "/nonexistent/python3", "qemu")) + "\n"
    prefilter = text[:-len(launch)]
    outer = [line for line in prefilter.splitlines() if line == 'case "$2" in']
    assert len(outer) == 4, text           # prepare, start, release, and the others
    assert "(prepare|start|release) ;;" in text, text
    events = [("win10", "prepare", "begin"), ("db-1", "start", "begin"), ("vm-1", "release", "end"),        # pass
              ("win11", "prepare", "begin"), ("win10", "start", "begin"), ("vm-1", "release", "begin"),
              ("win10", "stopped", "end"), ("x", "reconnect", "begin")]                                   # stop
    for shell in SHELLS:
        assert run_program(shell, prefilter_program(rules, events)) == [PASSED] * 3 + [0] * 5, shell
