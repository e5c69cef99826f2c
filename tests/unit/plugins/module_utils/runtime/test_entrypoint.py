"""The sh prefilter in the entry points, evaluated by a real /bin/sh."""
from __future__ import annotations

import itertools
import subprocess

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.entrypoint import (
    prefilter_specs, render_entry_point, sh_glob)
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import normalize_config, rule_matches

RULES = [
    {"name": "gpu", "script": "s", "objects": ["win*", "gpu-[0-9]"], "operations": ["prepare", "release"],
     "suboperations": ["begin", "end"]},
    {"name": "odd", "script": "s", "objects": ["we$ird 'name' \"q\" (x) `y` \\z"], "operations": ["started"]},
    {"name": "net", "script": "s", "driver": "network", "operations": ["port-created"]},
    {"name": "off", "script": "s", "operations": ["stopped"], "enabled": False},
]
OBJECTS = ["win10", "gpu-1", "gpu-x", "gpu-12", "gpu-", "web", "we$ird 'name' \"q\" (x) `y` \\z", "weXird", "-", "a b"]
OPS = [("prepare", "begin"), ("release", "end"), ("started", "begin"), ("stopped", "end"), ("plugged", "begin"),
       ("port-created", "begin"), ("port-deleted", "begin")]


def passes_prefilter(tmp_path, driver, obj, op, sub):
    """Run the real entry point with a 'python' that just reports it was reached."""
    marker = tmp_path / "reached"
    fake_python = tmp_path / "python3"
    fake_python.write_text("#!/bin/sh\necho reached > %s\n" % marker)
    fake_python.chmod(0o755)
    entry = tmp_path / driver
    rules = normalize_config({"version": 1, "rules": RULES})["rules"]
    entry.write_text(render_entry_point(driver, str(tmp_path / "hooks"), str(fake_python), rules))
    entry.chmod(0o755)
    if marker.exists():
        marker.unlink()
    subprocess.run(["/bin/sh", str(entry), obj, op, sub, "-"], check=True, timeout=30)
    return marker.exists()


@pytest.mark.parametrize("driver", ["qemu", "network"])
def test_prefilter_lets_through_every_event_a_rule_matches(tmp_path, driver):
    rules = normalize_config({"version": 1, "rules": RULES})["rules"]
    blocked_some = False
    for obj, (op, sub) in itertools.product(OBJECTS, OPS):
        matched = any(rule_matches(r, driver, obj, op, sub, "-", None) for r in rules)
        reached = passes_prefilter(tmp_path, driver, obj, op, sub)
        if matched:
            assert reached, (driver, obj, op, sub)
        blocked_some |= not reached
    assert blocked_some, "the prefilter should stop events no rule matches"


def test_prefilter_stops_unmatched_events_without_python(tmp_path):
    assert not passes_prefilter(tmp_path, "qemu", "web", "prepare", "begin")
    assert not passes_prefilter(tmp_path, "qemu", "win10", "stopped", "end")   # its rule is disabled
    assert passes_prefilter(tmp_path, "qemu", "win10", "prepare", "begin")


def test_prefilter_lets_through_guests_with_a_tree_directory(tmp_path):
    (tmp_path / "hooks" / "qemu.d" / "web" / "prepare" / "begin").mkdir(parents=True)
    assert passes_prefilter(tmp_path, "qemu", "web", "prepare", "begin")
    assert not passes_prefilter(tmp_path, "qemu", "web", "start", "begin")


def test_match_all_rule_needs_no_prefilter():
    rules = normalize_config({"version": 1, "rules": [{"name": "all", "script": "s"}]})["rules"]
    assert prefilter_specs("qemu", rules) == [(None, None, None)]
    text = render_entry_point("qemu", "/etc/libvirt/hooks", "/usr/bin/python3", rules)
    assert text.startswith("#!/bin/sh\n# virthooks-entry-point")
    assert "exit 0 ;;" not in text.split("(reconnect|attach)", maxsplit=1)[0]    # nothing filtered before the launch
    network = render_entry_point("network", "/etc/libvirt/hooks", "/usr/bin/python3",
                                 [dict(rules[0], driver="network")])
    assert "case" not in network          # no prefilter, no guest to spare: a plain exec


def test_sh_glob_escapes_everything_but_wildcards():
    assert sh_glob("win*") == "win*"
    assert sh_glob("a b") == "a\\ b"
    assert sh_glob("x[0-9]") == "x[0-9]"
    assert sh_glob("x[!a-c]y") == "x[!a-c]*y"     # [!a-c] may be a multi-byte character
    assert sh_glob("x[]a]") == "x?"                # one ASCII character, awkward to write in sh
    assert sh_glob("x[z-a]") is None               # matches nothing
    assert sh_glob("x[") == "x\\["                  # an unclosed [ is a literal
    assert sh_glob("$(reboot)") == "\\$\\(reboot\\)"


def test_a_diff_shows_the_compiled_bootstrap_as_its_size_and_digest_and_the_source_in_full():
    """The entry point carries its bootstrap compiled, and its source, in hex on its last lines (LOADER
    reads them): a diff shows the bytecode as one short line, the source it was compiled from as text."""
    import sys

    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.entrypoint import readable
    rules = normalize_config({"version": 1, "rules": RULES[:1]})["rules"]
    text = render_entry_point("qemu", "/etc/libvirt/hooks", sys.executable, rules)
    assert max(len(line) for line in text.splitlines()) > 2000 and "sys.path[:0]" not in text
    shown = readable(text)
    assert "#: bytecode of the source below: " in shown
    assert max(len(line) for line in shown.splitlines() if line.startswith("#:")) < 100
    assert max(len(line) for line in shown.splitlines()) < 1000
    assert "#| sys.path[:0]=[r.rpartition('/')[0]]" in shown.splitlines()     # the source, readable
    assert readable(shown) == shown and readable("#!/bin/sh\nexit 0\n") == "#!/bin/sh\nexit 0\n"


def test_the_program_on_the_command_line_is_short_and_reads_the_bootstrap_from_the_entry_point():
    """Python decodes and copies its argv several times at start-up (~0.2 us a character): the entry point's
    -c program is the short LOADER, the bootstrap is read from the file (issue 19: the dispatch benchmark)."""
    import shlex
    import sys

    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.entrypoint import LOADER
    rules = normalize_config({"version": 1, "rules": RULES[:1]})["rules"]
    text = render_entry_point("qemu", "/etc/libvirt/hooks", sys.executable, rules)
    exec_line = shlex.split(text[text.rindex("\nexec "):text.rindex("\nexit 1")], posix=True)
    assert exec_line[:5] == ["exec", sys.executable, "-IS", "-c", LOADER] and len(LOADER) < 500
    assert all(len(arg) < 500 for arg in exec_line)


def test_peers_compare_the_same_entry_point_whatever_python_compiled_its_bootstrap(tmp_path):
    """Debian 12's Python 3.11 and 13's 3.13 compile the same bootstrap to other bytecode: drift compares the
    entry point without it (found by the fleet's drift test), and still sees a change of the source."""
    import sys

    from ansible_collections.virthooks.libvirt.plugins.module_utils.drift import entry_points
    rules = normalize_config({"version": 1, "rules": RULES[:1]})["rules"]
    text = render_entry_point("qemu", str(tmp_path / "a"), sys.executable, rules)
    lines = text.splitlines(True)
    magic, code, source = lines[-3:]
    assert magic.startswith("#:") and code.startswith("#:") and source.startswith("#:")
    other = "".join(lines[:-3] + ["#:00000d0a\n", "#:00" + code[2:], source])       # another Python's bytecode
    changed = "".join(lines[:-1] + ["#:" + bytes.fromhex(source[2:]).replace(b"main()", b"main( )").hex() + "\n"])
    for name, content in (("a", text), ("b", other), ("c", changed)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "qemu").write_text(content.replace(str(tmp_path / "a"), str(tmp_path / name)))
    a, b, c = (entry_points(str(tmp_path / name))["qemu"] for name in "abc")
    assert a == b and a != c


def test_the_bootstrap_is_compiled_here_when_the_hooks_python_is_this_interpreter_with_the_same_bytes(tmp_path,
                                                                                                      monkeypatch):
    """A deploy compiles each entry point's bootstrap with the hooks' Python: in its own process when that is
    the module's interpreter (no Python started per deploy), and byte for byte what that Python would write
    (marshal format 2 has no references between objects, so the bytes are the code's alone)."""
    import os
    import sys

    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import entrypoint
    source = entrypoint.bootstrap_source("qemu")
    link = tmp_path / "python3"
    link.symlink_to(os.path.realpath(sys.executable))
    assert entrypoint._is_this_interpreter(str(link))                               # through a symlink too
    assert not entrypoint._is_this_interpreter("/nonexistent/python3")
    here = entrypoint._compiled_here(source)
    assert here == entrypoint._compiled_by(source, sys.executable) and here[1]
    monkeypatch.setattr(entrypoint, "_COMPILED", {})
    started = []
    monkeypatch.setattr(entrypoint, "_compiled_by", lambda src, python: started.append(python))
    assert entrypoint.compiled(source, str(link)) == here and started == []
    entrypoint.compiled(source, "/usr/bin/python-elsewhere")
    assert started == ["/usr/bin/python-elsewhere"]                               # another Python: run to compile
