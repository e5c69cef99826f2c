"""A test that needs root carries the `root` marker (tests/conftest.py), so `-m "not root"` picks what runs as a user.

What needs root is read from the test's own module, statically: the test, or a function, class or fixture of its
module it calls or takes as a fixture (transitively), does one of the things only root can do here:

- asks for root itself: ``if os.geteuid() != 0:`` then ``pytest.fail``/``pytest.skip``;
- gives a file to another user: ``os.chown``/``os.lchown``/``os.fchown`` to ``NOBODY`` (tests.support.host);
- runs ``unshare``, ``nsenter``, ``mount`` or ``umount`` (a command list that starts with it);
- starts this machine's libvirtd (``machine_libvirtd_up``).

Each of these fails as a user, so the check has no false alarm; it cannot see what a fixture of a conftest or a
helper of another module does (a deploy through the modules, which chown what they install to root, is the
commonest: those modules are marked by hand, with the reason beside the marker).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ROOT_COMMANDS = frozenset({"unshare", "nsenter", "mount", "umount"})
ROOT_HELPERS = frozenset({"machine_libvirtd_up"})
CHOWNS = frozenset({"chown", "lchown", "fchown"})


def _is_root_guard(node) -> bool:
    """``if os.geteuid() != 0: pytest.fail(...)`` (or skip): the code says it needs root."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    call = node.test.left
    asks = isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "geteuid"
    gives_up = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("fail", "skip")
                   for stmt in node.body for n in ast.walk(stmt))
    return asks and isinstance(node.test.ops[0], ast.NotEq) and gives_up


def root_idioms(tree) -> list:
    """(line, what) of each thing only root can do in a function, class or module body."""
    found = []
    for node in ast.walk(tree):
        if _is_root_guard(node):
            found.append((node.lineno, "refuses to run unless root"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CHOWNS \
                and any(isinstance(a, ast.Name) and a.id == "NOBODY" for a in node.args[1:]):
            found.append((node.lineno, "chowns to NOBODY"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ROOT_HELPERS:
            found.append((node.lineno, "calls %s" % node.func.id))
        elif isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant) \
                and node.elts[0].value in ROOT_COMMANDS:
            found.append((node.lineno, "runs %s" % node.elts[0].value))
    return found


def _marks_root(decorators) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "root" and isinstance(n.value, ast.Attribute)
               and n.value.attr == "mark" for d in decorators for n in ast.walk(d))


def _pytestmark_root(body) -> bool:
    return any(isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets)
               and _marks_root([stmt.value]) for stmt in body)


def _is_autouse(node) -> bool:
    return any(isinstance(k, ast.keyword) and k.arg == "autouse" and isinstance(k.value, ast.Constant) and k.value.value
               for d in node.decorator_list if isinstance(d, ast.Call) for k in d.keywords)


def _uses(node) -> set:
    """The names a function or class calls or takes as fixtures."""
    names = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        names.update(a.arg for a in node.args.args)
    return names


def unmarked_root_tests(path: Path) -> list:
    """'file::test: why' for each test of the module that needs root (see the module docstring) and is not marked."""
    tree = ast.parse(path.read_text(), str(path))
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    memo = {}

    def why(name, seen=()):
        if name not in memo and name in defs and name not in seen:
            own = root_idioms(defs[name])
            memo[name] = "%s (line %d)" % (own[0][1], own[0][0]) if own else next(
                (w for w in (why(used, seen + (name,)) for used in sorted(_uses(defs[name]))) if w), "")
        return memo.get(name, "")

    if _pytestmark_root(tree.body):
        return []
    autouse = next((w for w in (why(n) for n, d in defs.items() if _is_autouse(d)) if w), "")
    tests = [(n, []) for n in defs.values() if n.name.startswith("test_") and not isinstance(n, ast.ClassDef)]
    for cls in (n for n in defs.values() if isinstance(n, ast.ClassDef) and n.name.startswith("Test")):
        if not _marks_root(cls.decorator_list) and not _pytestmark_root(cls.body):
            tests.extend((m, cls.decorator_list) for m in cls.body if isinstance(m, ast.FunctionDef) and m.name.startswith("test_"))
    found = []
    for test, outer in tests:
        if _marks_root(test.decorator_list + outer):
            continue
        own = root_idioms(test)
        reason = autouse or ("%s (line %d)" % (own[0][1], own[0][0]) if own else "") or next(
            (w for w in (why(used) for used in sorted(_uses(test))) if w), "")
        if reason:
            found.append("%s::%s: %s" % (path.relative_to(TESTS).as_posix() if TESTS in path.parents else path.name,
                                         test.name, reason))
    return found


def test_every_test_that_needs_root_carries_the_root_marker():
    found = [line for path in sorted(TESTS.rglob("test_*.py")) for line in unmarked_root_tests(path)]
    assert found == [], "tests that need root without pytest.mark.root:\n" + "\n".join(found)


@pytest.mark.parametrize("source,expected", [
    ("def test_a():\n    subprocess.run(['unshare', '-n', 'true'])\n", ["test_a: runs unshare (line 2)"]),
    ("import pytest\n@pytest.mark.root\ndef test_a():\n    os.chown(p, NOBODY, NOBODY)\n", []),
    ("def helper():\n    os.chown(p, NOBODY, -1)\n\ndef test_a():\n    helper()\n", ["test_a: chowns to NOBODY (line 2)"]),
    ("@pytest.fixture\ndef box():\n    if os.geteuid() != 0:\n        pytest.fail('root')\n\ndef test_a(box):\n    pass\n",
     ["test_a: refuses to run unless root (line 3)"]),
    ("pytestmark = [pytest.mark.libvirt, pytest.mark.root]\n\ndef test_a():\n    machine_libvirtd_up()\n", []),
    ("def test_a():\n    subprocess.run(['mountpoint', '/'])\n    os.chown(p, os.getuid(), -1)\n", []),
], ids=["command", "marked", "helper", "fixture", "module-mark", "user-can"])
def test_the_check_finds_what_needs_root_through_helpers_and_fixtures(tmp_path, source, expected):
    path = tmp_path / "test_sample.py"
    path.write_text(source)
    found = unmarked_root_tests(path)
    assert [line.split("::", 1)[1] for line in found] == expected
