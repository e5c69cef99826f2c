"""One home per primitive: atomic_write (fileops), the write-all loop, iso_time and STDERR_TAIL (runlog)."""
from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[5] / "plugins"
HOMES = {"atomic_write": "module_utils/runtime/fileops.py", "iso_time": "module_utils/runtime/runlog.py",
         "write_all": "module_utils/runtime/runlog.py", "STDERR_TAIL": "module_utils/runtime/runlog.py"}


def definitions() -> dict:
    """{name: [file defining it]} for HOMES' names, and the files with a write(2) loop as 'write_all'."""
    found = {name: [] for name in HOMES}
    for path in sorted(PLUGINS.rglob("*.py")):
        rel = str(path.relative_to(PLUGINS))
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.FunctionDef) and node.name in HOMES and node.name != "write_all":
                found[node.name].append(rel)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in HOMES for t in node.targets):
                found[node.targets[0].id].append(rel)
            elif isinstance(node, ast.While) and any(isinstance(n, ast.Attribute) and n.attr == "write"
                                                     for n in ast.walk(node)):
                found["write_all"].append(rel)
    return found


def test_each_primitive_is_defined_once_in_its_home():
    assert definitions() == {name: [home] for name, home in HOMES.items()}


def test_the_homes_are_runtime_modules_the_dispatcher_may_import():
    # runlog is on the dispatcher's path (it imports hostos, never os); fileops is not, and imports runlog.
    runlog = ast.parse((PLUGINS / HOMES["iso_time"]).read_text())
    imported = {a.name for n in ast.walk(runlog) if isinstance(n, ast.Import) for a in n.names}
    assert "os" not in imported
