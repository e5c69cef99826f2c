"""The runtime package: what it may import, what is shipped to hosts, and its version."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[5] / "plugins" / "module_utils" / "runtime"
REPO = RUNTIME.parents[2]
STDLIB = set(sys.stdlib_module_names)


def runtime_files() -> list:
    """Every module of the runtime, the library's blocks (runtime/library/) included."""
    return sorted(RUNTIME.rglob("*.py"))


def imports_of(path: Path) -> list:
    """(level, module) of every import in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


@pytest.mark.parametrize("path", runtime_files(), ids=lambda p: str(p.relative_to(RUNTIME)))
def test_runtime_imports_only_the_standard_library_and_itself(path):
    depth = len(path.relative_to(RUNTIME).parts)        # 1 in runtime/, 2 in runtime/library/
    for level, module in imports_of(path):
        if level:
            assert level <= depth, "%s: 'from %s%s import' leaves the runtime package" % (path.name, "." * level, module)
            continue
        if module == "__future__":
            assert depth > 1, "%s: the hot path's modules do without __future__" % path.name
            continue
        top = module.split(".")[0]
        if top == "lxml":
            continue        # optional, imported lazily for XPath beyond the built-in subset
        assert top in STDLIB, "%s imports %s, which is not in the standard library" % (path.name, module)
        assert top != "ansible", "%s imports Ansible" % path.name


def test_runtime_is_a_leaf_nothing_of_the_installer_reaches_into_it_from_inside():
    installer_side = {p.stem for p in (RUNTIME.parent).glob("*.py")} - {"__init__"}
    for path in runtime_files():
        for _level, module in imports_of(path):
            assert module.split(".")[0] not in installer_side, "%s imports installer code (%s)" % (path.name, module)


def test_runtime_version_is_the_collection_version():
    galaxy = (REPO / "galaxy.yml").read_text()
    version = re.search(r"^version:\s*['\"]?([^'\"\s]+)", galaxy, re.M).group(1)
    from ansible_collections.virthooks.libvirt.plugins.module_utils import runtime
    assert runtime.VERSION == version


def test_the_module_map_names_every_runtime_module():
    """runtime/__init__.py's docstring is the map of the package: every module of it is named there."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils import runtime
    named = set(re.findall(r"``(\w+)``", runtime.__doc__))
    missing = [p.stem for p in runtime_files() if p.stem != "__init__" and p.stem not in named]
    assert missing == [], "runtime/__init__.py does not name %s" % ", ".join(missing)


def test_only_the_launcher_imports_the_library_and_nothing_of_the_runtime_imports_the_launcher():
    """The blocks run in their launcher's process: no module the dispatcher or the CLI reaches names them
    (runtime/__init__.py names every module for Ansible's packer, in a function never called)."""
    for path in RUNTIME.glob("*.py"):
        if path.name in ("launcher.py", "__init__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                names = [node.module or ""] + [alias.name for alias in node.names if not node.module]
                assert not [n for n in names if n.split(".")[0] in ("library", "launcher")], \
                    "%s imports %s" % (path.name, names)


@pytest.mark.parametrize("name", ["dispatch.py", "entrypoint.py", "trust.py", "runlog.py"])
def test_no_function_of_the_hot_path_is_longer_than_60_lines(name):
    """Issue 23: Call.execute was 78 lines; each function (method, nested one) fits in 60."""
    import ast
    tree = ast.parse((RUNTIME / name).read_text())
    long = ["%s (%d lines)" % (node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60]
    assert not long, "%s: %s" % (name, ", ".join(long))
