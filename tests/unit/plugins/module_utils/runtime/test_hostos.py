"""runtime.hostos: the dispatcher's path runs without importing os (0.9 ms at a -IS start), and
hostos is os wherever the runtime uses it."""
from __future__ import annotations

import ast
import os
import posixpath
import subprocess
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import entrypoint, hostos
from tests.support.probe import at_end

from ..conftest import LIBVIRT_ENV, Sandbox
from .test_dispatch import hook_pythons

RUNTIME = Path(hostos.__file__).resolve().parent
IMPORTS_HOSTOS = "from . import hostos as os"


def modules_on_hostos() -> list:
    return sorted(p for p in RUNTIME.glob("*.py") if IMPORTS_HOSTOS in p.read_text())


def os_names(path: Path) -> set:
    """Every os.NAME and os.path.NAME a module uses, as 'NAME' and 'path.NAME'."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            names.add(node.attr)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
              and isinstance(node.value.value, ast.Name) and node.value.value.id == "os" and node.value.attr == "path"):
            names.add("path." + node.attr)
    return names


def test_the_dispatchers_modules_use_hostos_not_os():
    names = {p.stem for p in modules_on_hostos()}
    assert {"dispatch", "rules", "generations", "runlog", "trust"} <= names
    for path in modules_on_hostos():
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:       # a top-level `import os` would undo it
            if isinstance(node, ast.Import):
                assert "os" not in [a.name for a in node.names], "%s imports os" % path.name


@pytest.mark.parametrize("path", modules_on_hostos(), ids=lambda p: p.name)
def test_every_os_name_a_module_uses_is_in_hostos_and_is_os_own(path):
    for name in sorted(os_names(path)):
        if name.startswith("path."):
            attr = name[5:]
            assert hasattr(hostos.path, attr), "%s uses os.%s, which hostos.path lacks" % (path.name, name)
            continue
        assert hasattr(hostos, name), "%s uses os.%s, which hostos lacks" % (path.name, name)
        if hasattr(os, name) and callable(getattr(os, name)) and name not in ("makedirs",):
            assert getattr(hostos, name) is getattr(os, name), "hostos.%s is not os.%s" % (name, name)


def test_path_helpers_agree_with_os_path(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link-file").symlink_to(tmp_path / "file")
    (tmp_path / "link-dir").symlink_to(tmp_path / "dir")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    paths = [str(tmp_path / n) for n in ("dir", "file", "link-file", "link-dir", "dangling", "loop", "nowhere",
                                         "file/below", "dir/")]
    paths += ["/", "//", "/etc", "/etc/", "a", "a/b", "", "/a//b", "/tmp/x\udcff", "/tmp/\0nul"]
    for p in paths:
        assert hostos.path.dirname(p) == posixpath.dirname(p), p
        assert hostos.path.basename(p) == posixpath.basename(p), p
        for fn in ("isdir", "isfile", "islink", "lexists"):
            assert getattr(hostos.path, fn)(p) == getattr(posixpath, fn)(p), (fn, p)


def test_makedirs_creates_the_missing_parents_with_the_mode_and_fails_as_os_does(tmp_path):
    target = str(tmp_path / "a" / "b" / "c")
    old = os.umask(0)
    try:
        hostos.makedirs(target, 0o750, exist_ok=True)
    finally:
        os.umask(old)
    assert os.path.isdir(target) and os.stat(target).st_mode & 0o777 == 0o750
    assert os.stat(tmp_path / "a").st_mode & 0o777 == 0o750
    hostos.makedirs(target, 0o750, exist_ok=True)                   # already there: fine
    with pytest.raises(FileExistsError):
        hostos.makedirs(target, 0o750)
    (tmp_path / "f").write_text("")
    with pytest.raises(OSError):
        hostos.makedirs(str(tmp_path / "f" / "x"), exist_ok=True)  # a file in the way


@pytest.mark.parametrize("python", hook_pythons())
def test_a_hook_call_never_imports_os_and_scripts_get_the_environment_byte_for_byte(tmp_path, python):
    """Through the entry point's own bootstrap, under each host Python: the modules a dispatcher
    call loaded, and the environment a script saw, with a variable that is not UTF-8."""
    sandbox = Sandbox(tmp_path, python)
    sandbox.recorder("rec")
    sandbox.deploy([{"name": "rec", "script": "scripts/rec", "operations": ["start"]}])
    report = at_end("MODULES", "' '.join(sorted(sys.modules))")
    argv = entrypoint.dispatcher_argv(str(sandbox.hooks), sandbox.python, "qemu")
    assert argv[2] == "-c"
    argv[3] = report + argv[3]
    env = {k.encode(): v.encode() for k, v in LIBVIRT_ENV.items()}
    env[b"ODD"] = b"caf\xe9 \xff"
    proc = subprocess.run(argv + ["vm1", "start", "begin", "-"], input=b"<domain/>", capture_output=True,
                          env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    modules = proc.stderr.decode().split("MODULES ", 1)[1].split()
    assert "virthooks_runtime.dispatch" in modules
    # _json: a shared library on Debian's Python; the call reads config.marshal (configcache) instead.
    # generations: deploys' code; the call opens the current generation through current.py.
    for heavy in ("os", "stat", "posixpath", "_collections_abc", "json", "re", "_json", "virthooks_runtime.generations"):
        assert heavy not in modules, "a hook call imported %s" % heavy
    seen = (sandbox.seen / "rec.env").read_bytes().splitlines()
    assert b"ODD=caf\xe9 \xff" in seen
    assert b"LIBVIRT_HOOK_OBJECT=vm1" in seen


@pytest.mark.parametrize("python", hook_pythons())
def test_a_call_ends_without_the_teardown_and_loses_nothing_buffered(tmp_path, python):
    """dispatch.end, the way every call ends, leaves through posix._exit: no atexit handler runs (the
    interpreter's teardown is what it saves, about a fifth of a call), what sat in sys.stdout's and
    sys.stderr's buffers is written first, and the exit status is the call's code."""
    sandbox = Sandbox(tmp_path, python)
    sandbox.deploy([])
    runtime = (sandbox.own / "lib" / "current").resolve()
    program = ("import sys, atexit\nsys.path.insert(0, %r)\nfrom virthooks_runtime import dispatch\n"
               "atexit.register(lambda: sys.stderr.write('TEARDOWN\\n'))\n"
               "sys.stdout.write('buffered out'); sys.stderr.write('buffered err')\ndispatch.end(3)\n"
               % str(runtime))
    proc = subprocess.run([python, "-IS", "-c", program], capture_output=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, b"buffered out", b"buffered err"), proc
