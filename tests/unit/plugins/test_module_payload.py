"""What Ansible's module packer (AnsiballZ) ships with each module: every module_utils file the module can import.

A module may import a module_utils inside the function that needs it, so that a run that does not need it does
not compile it from the payload. The packer ships such an import as optional: one it cannot find is left out
without a word, and the module would then fail only on that path, on a host. These tests build each module's
payload with the packer and look for every file reachable from the module, imports inside functions included.

They live under tests/unit/plugins, not modules/: ansible-test runs the unit tests there with the controller's
ansible, which the packer is part of; under modules/ only ansible.module_utils can be imported, as in a module.
"""
from __future__ import annotations

import ast
import datetime
import functools
import io
import zipfile
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
PACKAGE = "ansible_collections.virthooks.libvirt.plugins"
PAYLOAD_DIR = "ansible_collections/virthooks/libvirt/plugins"
MODULES = sorted(p.stem for p in (PLUGINS / "modules").glob("*.py") if p.stem != "__init__")


def _source_file(dotted: str):
    """plugins/<path>.py or plugins/<path>/__init__.py for a dotted name below PACKAGE (None: not a module,
    e.g. a class imported from a module)."""
    rel = Path(*dotted[len(PACKAGE) + 1:].split("."))
    for candidate in (PLUGINS / rel.with_suffix(".py"), PLUGINS / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _imported(path: Path) -> list:
    """(dotted module name, nested) of each of our module_utils a file imports, at any depth of its AST (nested:
    not at the file's top level, but in a function, a try or an if: what the packer ships as optional); for
    'from X import Y', X and X.Y (Y may be a module)."""
    dotted = PACKAGE + "." + ".".join(path.relative_to(PLUGINS).with_suffix("").parts)
    package = dotted.rsplit(".", 1)[0]         # a package's own for its __init__.py too
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, id(node) not in top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = parent + ("." + node.module if node.module else "")
            found.append((base, id(node) not in top))
            found.extend((base + "." + alias.name, id(node) not in top) for alias in node.names)
    return [(name, nested) for name, nested in found if name.startswith(PACKAGE + ".module_utils")]


def reachable(module: str) -> dict:
    """{file under plugins/: whether every way to it passes a nested import} of the module_utils a module can
    import, following every import (top-level and nested) of every file reached."""
    start = PLUGINS / "modules" / (module + ".py")
    seen, todo = {}, [(start, False)]
    while todo:
        path, nested = todo.pop()
        if path in seen and (seen[path] is False or nested):
            continue
        seen[path] = nested
        for name, inner in _imported(path):
            target = _source_file(name)
            if target is not None:
                todo.append((target, nested or inner))
    del seen[start]
    return {path.relative_to(PLUGINS).as_posix(): nested for path, nested in seen.items()}


@functools.lru_cache(maxsize=None)
def payload(module: str) -> frozenset:
    """The files under plugins/ of the module's AnsiballZ payload, as Ansible's packer builds it."""
    from ansible._internal._ansiballz import _builder
    from ansible.executor.module_common import recursive_finder
    path = PLUGINS / "modules" / (module + ".py")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        recursive_finder(module, "%s.modules.%s" % (PACKAGE, module), path.read_bytes(), zf,
                         datetime.datetime.now(datetime.timezone.utc), _builder.ExtensionManager())
        names = zf.namelist()
    return frozenset(name[len(PAYLOAD_DIR) + 1:] for name in names if name.startswith(PAYLOAD_DIR + "/"))


@pytest.mark.parametrize("module", MODULES)
def test_the_payload_holds_every_module_utils_the_module_can_import(module):
    missing = sorted(set(reachable(module)) - payload(module))
    assert missing == [], "%s's payload lacks %s" % (module, ", ".join(missing))


def test_hook_runtime_imports_inside_functions_what_a_run_that_changes_nothing_does_not_need():
    """The test above is no formality for hook_runtime: these files are reached only through nested imports
    (selinux to relabel what a run wrote, rollback for state=rollback and a diff, syntax for a new generation,
    xmlcond for rules with an XPath condition, launcher for a library block's script)."""
    nested = {path for path, inside in reachable("hook_runtime").items() if inside}
    assert {"module_utils/selinux.py", "module_utils/runtime/rollback.py", "module_utils/runtime/syntax.py",
            "module_utils/runtime/xmlcond.py", "module_utils/runtime/launcher.py"} <= nested
    assert {"module_utils/selinux.py", "module_utils/runtime/rollback.py"} <= payload("hook_runtime")
