"""``virthooks import``: each peer's setup, imported, runs the same scripts in the same order with the same
arguments as the peer itself, for every event of a matrix (round trips through the real peer or its replica
and through the dispatcher deployed by the installer with the imported variables)."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import cli, importers
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.events import EVENTS
from tests.support.peers import HOOKS_JSON, TREE_HELPER, mrjk_controller

from ..conftest import LIBVIRT_ENV


def recorder(path: Path, label: str, log: Path, status: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\necho "%s $*" >> %s\nexit %d\n' % (label, log, status))
    path.chmod(0o755)
    return path


def deploy(sandbox, variables: dict) -> None:
    """The imported scripts deployed as the role deploys them: one script and one rule per entry."""
    rules, drivers = [], set()
    for entry in variables.get("libvirt_hooks_scripts", []):
        assert "content" in entry, entry
        sandbox.script(entry["name"], entry["content"], shebang="")
        rule = {k: v for k, v in entry.items() if k != "content"}
        rule["script"] = "scripts/" + entry["name"]
        rules.append(rule)
        drivers.add(entry["driver"])
    tree = variables.get("libvirt_hooks_tree")
    sandbox.deploy(rules, drivers=sorted(drivers), tree=tree)


def replay(hooks: Path, log: Path, events, env=None) -> list:
    """[(event, exit status, lines written)] for each event, as libvirt calls hooks/<driver>."""
    out = []
    for driver, obj, op, sub in events:
        log.unlink(missing_ok=True)
        entry = hooks / driver
        if not entry.exists():
            out.append(((driver, obj, op, sub), None, []))
            continue
        proc = subprocess.run([str(entry), obj, op, sub, "-"], input=b"", capture_output=True,
                              env=dict(LIBVIRT_ENV, **(env or {})), cwd="/", timeout=60, check=False)
        out.append(((driver, obj, op, sub), proc.returncode, log.read_bytes().decode().split("\n")[:-1] if log.exists() else []))
    return out


def matrix(drivers_objects) -> list:
    out = []
    for driver, objects in drivers_objects:
        for obj in objects:
            for op, spec in EVENTS[driver].items():
                subs = {spec[0], "begin", "end"} if driver == "qemu" else {spec[0]}
                out.extend((driver, obj, op, sub) for sub in sorted(subs))
    return out


# --- the per-guest tree through the verbatim helper ----------------------------------------------------

def build_tree(hooks: Path, log: Path, elsewhere: Path) -> None:
    tree = hooks / "qemu.d"
    d = tree / "vm1" / "prepare" / "begin"
    for name in ("20-second", "10-first", "30-third", ".hidden"):    # created in this order
        recorder(d / name, "prepare-" + name, log)
    (d / "notes.txt").write_text("not a script\n")
    (d / "sub").mkdir()
    recorder(tree / "vm1" / "started" / "begin", "file-started", log)                 # the file form
    recorder(elsewhere / "linked", "linked", log)
    (tree / "vm1" / "release" / "end").mkdir(parents=True)
    (tree / "vm1" / "release" / "end" / "50-linked").symlink_to(elsewhere / "linked")
    recorder(tree / "vm[1]" / "prepare" / "begin" / "only", "brackets", log)         # glob characters in a name
    recorder(tree / "vm2" / "stopped" / "end" / "a", "vm2-stopped-a", log)
    recorder(tree / "vm2" / "stopped" / "end" / "b", "vm2-stopped-b", log)
    (tree / "vm2" / "stopped" / "bogus").mkdir()                                      # never run
    (tree / "vm2" / "notanop").mkdir()


def test_tree_round_trip(sandbox, tmp_path):
    orig = tmp_path / "orig" / "hooks"
    orig.mkdir(parents=True)
    shutil.copy(TREE_HELPER, orig / "qemu")
    (orig / "qemu").chmod(0o755)
    log = tmp_path / "ran"
    build_tree(orig, log, tmp_path / "elsewhere")
    variables, notes, found = importers.import_host(str(orig), sources=("tree",))
    assert found == ["tree"]
    assert variables["libvirt_hooks_tree"] == {"enabled": False}
    joined = "\n".join(notes)
    for skipped in ("notes.txt: not an executable file", "sub: a directory", "stopped/bogus: not a sub-operation",
                    "vm2/notanop: not an operation", ".hidden: hidden or backup file", "50-linked: a symlink to"):
        assert skipped in joined
    # The tree stays on disk in the sandbox too: with the tree off, only the imported rules run.
    shutil.copytree(orig / "qemu.d", sandbox.hooks / "qemu.d", symlinks=True)
    deploy(sandbox, variables)
    events = matrix([("qemu", ["vm1", "vm2", "vm[1]", "vm3"])])
    theirs = replay(orig, log, events)
    ours = replay(sandbox.hooks, log, events)
    assert ours == theirs
    ran = {e: lines for e, _rc, lines in theirs if lines}
    assert len(ran) == 5, ran        # the matrix does reach every script of the tree
    # The helper's order is find's, the directory's: the import keeps that order, whatever it is.
    listed = [n for n in (orig / "qemu.d/vm1/prepare/begin").iterdir() if n.name not in ("notes.txt", "sub")]
    assert ran[("qemu", "vm1", "prepare", "begin")] == ["prepare-%s vm1 prepare begin -" % p.name for p in listed]


# --- mrjk/libvirt-hook-controller through its replica -----------------------------------------------------

RULES = """\
# the controller's rules, with comments
qemu;started;*;*;{c}/a one
qemu;started;*;*;{c}/a one
*;started;*;*;{c}/a one
qemu;started;*;50;{c}/a one
qemu;started;*;50;{c}/B
qemu;*;vm1;20;{c}/b
qemu;prepare;*;20;{c}/b
qemu;prepare;vm2;20;{c}/b
qemu;release;vm2;20;{c}/b
*;*;*;99;{c}/z any "thing"
network;*;*;10;{c}/net
qemu;stopped;*;5;{c}/fails
qemu;stopped;*;6;{c}/after
qemu;reconnect;vm2;7;{c}/a dos\r
lxc;*;*;1;{c}/lxc
qemu;bogus;*;1;{c}/x
qemu;started;*;1
bhyve;*;*;1;{c}/x
"""


def test_mrjk_round_trip(sandbox, tmp_path):
    orig = tmp_path / "orig" / "hooks"
    orig.mkdir(parents=True)
    mrjk_controller(orig, drivers=("qemu", "network", "daemon"))
    log = tmp_path / "ran"
    cmds = tmp_path / "cmds"
    for name in ("a", "B", "b", "z", "net", "after", "lxc", "x", "d"):
        recorder(cmds / name, name, log)
    recorder(cmds / "fails", "fails", log, status=3)
    (orig / "conf" / "rules.conf").write_text(RULES.format(c=cmds))
    (orig / "conf" / "rules.d" / "10-extra.conf").write_text("qemu;started;vm2;50;%s/d\n" % cmds)
    (orig / "conf" / "rules.d" / "README").write_text("qemu;*;*;1;%s/x\n" % cmds)
    variables, notes, found = importers.import_host(str(orig), sources=("mrjk",))
    assert found == ["mrjk"]
    joined = "\n".join(notes)
    for skipped in ("'lxc' is no", "hook 'bhyve'", "'bogus' is no operation", "no command field",
                    "rules.d/README: not *.conf", "a carriage return", "as a regular expression"):
        assert skipped in joined or skipped.replace("'lxc' is no", "hooks/lxc is not") in joined, skipped
    assert {e["driver"] for e in variables["libvirt_hooks_scripts"]} == {"qemu", "network", "daemon"}
    deploy(sandbox, variables)
    events = matrix([("qemu", ["vm1", "vm2", "vm3"]), ("network", ["net1"]), ("daemon", ["-"]), ("lxc", ["ct1"])])
    theirs = replay(orig, log, events)
    ours = replay(sandbox.hooks, log, events)
    assert [(e, lines) for e, _rc, lines in ours] == [(e, lines) for e, _rc, lines in theirs]
    assert [rc for _e, rc, _l in ours] == [rc for _e, rc, _l in theirs]    # every failure ignored, as there
    ran = dict((e, lines) for e, _rc, lines in theirs)
    # Duplicates run once, "*" and "50" both run, ties in byte order of the line, the command's words first.
    assert ran[("qemu", "vm2", "started", "begin")] == [
        "B vm2 started begin -", "a one vm2 started begin -", "a one vm2 started begin -", "d vm2 started begin -",
        'z any "thing" vm2 started begin -']
    # Its uniq keeps rows with different object fields apart: "vm1" and "*" rows both run for vm1.
    assert ran[("qemu", "vm1", "prepare", "begin")] == ["b vm1 prepare begin -", "b vm1 prepare begin -",
                                                        'z any "thing" vm1 prepare begin -']
    assert ran[("qemu", "vm2", "prepare", "begin")] == ["b vm2 prepare begin -", "b vm2 prepare begin -",
                                                        'z any "thing" vm2 prepare begin -']
    assert ran[("qemu", "vm3", "prepare", "begin")] == ["b vm3 prepare begin -", 'z any "thing" vm3 prepare begin -']
    assert ran[("qemu", "vm2", "reconnect", "begin")][0] == "a dos\r vm2 reconnect begin -"
    assert ran[("qemu", "vm1", "stopped", "end")][:2] == ["fails vm1 stopped end -", "after vm1 stopped end -"]


# --- saschpe/libvirt-hook-qemu: the port_forward parameters ------------------------------------------------

def test_saschpe_unreadable_names_the_file(tmp_path, capsys):
    (tmp_path / "hooks.json").write_text('{"a": {"private_ip": "10.0.0.1",},}')   # trailing commas: the hook fails too
    with pytest.raises(SystemExit) as exc:
        cli.main(str(tmp_path), ["import", "--source", "saschpe"], io.StringIO())
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hooks.json: cannot read it" in err


# --- the output ------------------------------------------------------------------------------------------

AWKWARD = ["yes", "no", "null", "~", "", " lead", "trail ", "a: b", "#x", "- x", "'q'", '"dq"', "tab\tx", "x\r\ny",
           "caf\u00e9 \u2603", "\x01\x7f", "@at", "%pct", "{a}", "[b]", "*star", "&amp", "!tag", "0x10", "1e3", "010",
           "#!/bin/sh\necho hi\n", "  indented\nscript\n", "two\n\n", "no newline\nat end", "trailing  \nspace\n",
           "line\u2028sep\n", "\n\nleading\n"]


def test_yaml_loads_back_to_the_same_data(sandbox, tmp_path):
    data = {"libvirt_hooks_scripts": [{"name": s or "empty", "objects": [s, "*"], "order": -5, "enabled": False,
                                       "content": s, "src": None} for s in AWKWARD],
            "libvirt_hooks_library": {"port_forward": {"guests": {s: {"ip": "10.0.0.1", "forwards": []}
                                                                  for s in AWKWARD}}},
            "empty": {}, "yes": [[]], "nested": [[1, "x"], {"a": [{"b": {}}]}]}
    text = importers.to_yaml(data, ["a comment\nwith a newline: no key", "- x"])
    assert yaml.safe_load(text) == data
    assert "content: |\n" in text          # scripts stay readable


def test_cli_import_yaml_and_json(tmp_path, capsys):
    hooks = tmp_path / "hooks"
    recorder(hooks / "qemu.d" / "vm1" / "prepare" / "begin", "x", tmp_path / "log")
    (hooks / "hooks.json").write_text('{"vm1": {"private_ip": "10.0.0.5", "port_map": {"tcp": [80]}}}')
    out = io.StringIO()
    with pytest.raises(SystemExit) as exc:
        cli.main(str(hooks), ["import"], out)
    assert exc.value.code == 0
    err = capsys.readouterr().err
    assert "virthooks import: note: saschpe:" in err
    loaded = yaml.safe_load(out.getvalue())
    assert loaded["libvirt_hooks_scripts"][0]["name"] == "tree-vm1-prepare-begin"
    assert loaded["libvirt_hooks_library"]["port_forward"]["guests"]["vm1"]["forwards"] == [
        {"host_port": 80, "guest_port": 80, "proto": "tcp"}]
    assert "# - saschpe:" in out.getvalue()          # what differs is in the file itself
    out_json = io.StringIO()
    with pytest.raises(SystemExit):
        cli.main(str(hooks), ["import", "--json"], out_json)
    assert json.loads(out_json.getvalue()) == loaded


def test_cli_import_nothing_found(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(str(tmp_path), ["import"], io.StringIO())
    assert exc.value.code == 1
    assert "nothing to import in" in capsys.readouterr().err


def test_imported_variables_pass_the_role_argument_specs(tmp_path):
    """What the import prints is what the role takes: checked against roles/libvirt_hooks/meta/argument_specs.yml."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    repo = Path(__file__).resolve().parents[5]
    specs = yaml.safe_load((repo / "roles/libvirt_hooks/meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    hooks = tmp_path / "hooks"
    build_tree(hooks, tmp_path / "log", tmp_path / "elsewhere")
    mrjk_controller(hooks)
    (hooks / "conf" / "rules.conf").write_text(RULES.format(c=tmp_path))
    (hooks / "hooks.json").write_text(HOOKS_JSON)
    variables, _notes, found = importers.import_host(str(hooks))
    assert found == ["tree", "mrjk", "saschpe"]
    loaded = yaml.safe_load(importers.to_yaml(variables))
    assert loaded == variables
    result = ArgumentSpecValidator(specs["options"]).validate(loaded)
    assert result.error_messages == []
