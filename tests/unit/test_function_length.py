"""No function over 60 lines in plugins/: a function that long holds several things that want names."""
from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
MAX_LINES = 60


def long_functions(root: Path, skip=frozenset()) -> list:
    """'file:function:length' of every function (methods and nested ones too) over MAX_LINES lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LINES:
                    found.append("%s:%s:%d" % (rel, node.name, length))
    return found


def test_no_function_in_plugins_is_over_60_lines():
    assert long_functions(PLUGINS) == []


def test_a_long_function_is_named_with_its_file_and_length(tmp_path):
    (tmp_path / "pkg").mkdir()
    body = "".join("    x%d = %d\n" % (i, i) for i in range(MAX_LINES))
    (tmp_path / "pkg" / "mod.py").write_text("class C:\n    def short(self):\n        pass\n\n    def long(self):\n"
                                             + body.replace("\n    ", "\n        ").replace("    x0", "        x0", 1))
    (tmp_path / "pkg" / "ok.py").write_text("def fine():\n" + "".join("    y%d = 1\n" % i for i in range(MAX_LINES - 1)))
    assert long_functions(tmp_path) == ["pkg/mod.py:long:%d" % (MAX_LINES + 1)]
