"""The per-guest tree run as the VFIO-Tools hook helper runs it: the same events replayed through
the verbatim helper (benchmarks/peers/tree-helper.sh) and through the dispatcher, compared."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.peers import TREE_HELPER as HELPER

from ..conftest import LIBVIRT_ENV

NOBODY = 65534
XML = b"<domain type='kvm'><name>vm1</name></domain>"

# Each script appends one line: its name, its argv, its cwd and what it read on stdin (or "-" for
# one that does not read it, as most tree scripts do not).
RECORDER = """#!/bin/sh
printf '%%s|%%s|%%s|%%s\\n' %s "$*" "$(pwd)" "$(%s)" >> %s
"""


def recorder(path: Path, name: str, log: Path, mode: int = 0o755, reads_stdin: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RECORDER % (name, "cat | tr '\\n' ' '" if reads_stdin else "echo -", log))
    path.chmod(mode)
    return path


def build_tree(box) -> None:
    """Both forms of the helper's tree, and symlinks into it from a root-owned place."""
    log = box.seen / "ran"
    tree = box.hooks / "qemu.d" / "vm1"
    recorder(tree / "prepare" / "begin", "file-prepare", log)                  # the file form
    recorder(tree / "restore" / "begin", "file-restore", log)                  # file form, XML event
    elsewhere = box.root / "opt" / "hooks"
    recorder(elsewhere / "started", "linked-file", log)
    (tree / "started").mkdir()
    (tree / "started" / "begin").symlink_to(elsewhere / "started")            # file form through a symlink
    recorder(tree / "release" / "end" / "10-first", "dir-10", log, reads_stdin=False)  # the directory form
    recorder(tree / "release" / "end" / "20-second", "dir-20", log, reads_stdin=False)
    recorder(elsewhere / "release", "linked-dir", log, reads_stdin=False)
    (tree / "release" / "end" / "30-linked").symlink_to(elsewhere / "release")


EVENTS = [("vm1", "prepare", "begin"), ("vm1", "restore", "begin"), ("vm1", "started", "begin"),
          ("vm1", "release", "end"), ("vm2", "prepare", "begin"), ("vm1", "stopped", "end")]


def replay(box, hook: Path) -> list:
    """[(event, exit status, lines the scripts wrote)] for every event, as libvirt calls hook."""
    log = box.seen / "ran"
    out = []
    for obj, op, sub in EVENTS:
        log.unlink(missing_ok=True)
        proc = subprocess.run([str(hook), obj, op, sub, "-"], input=XML, capture_output=True, env=LIBVIRT_ENV,
                              cwd="/", timeout=60, check=False)
        lines = log.read_text().splitlines() if log.exists() else []
        out.append(((obj, op, sub), proc.returncode, lines))
    return out


@pytest.fixture
def both(sandbox):
    """A tree, the verbatim helper beside it (as hooks/helper: $0's dirname is the hooks dir) and
    the dispatcher's entry point at hooks/qemu, no rules."""
    build_tree(sandbox)
    shutil.copy(HELPER, sandbox.hooks / "helper")
    (sandbox.hooks / "helper").chmod(0o755)
    sandbox.deploy([])
    return sandbox


def test_the_tree_runs_what_the_helper_runs_with_the_same_argv_stdin_and_cwd(both):
    helper = replay(both, both.hooks / "helper")
    ours = replay(both, both.hooks / "qemu")
    xml = XML.decode()
    assert [(e, rc) for e, rc, _lines in ours] == [(e, rc) for e, rc, _lines in helper] == [(e, 0) for e in EVENTS]
    # The file form: the file itself runs, once, with libvirt's argv, stdin and cwd, in both.
    for index, name in ((0, "file-prepare"), (1, "file-restore"), (2, "linked-file")):
        obj, op, sub = EVENTS[index]
        expected = ["%s|%s %s %s -|/|%s" % (name, obj, op, sub, xml)]
        assert ours[index][2] == helper[index][2] == expected
    # The directory form: the same scripts with the same argv and cwd, in find's order in the helper and
    # in byte order in the dispatcher.
    assert sorted(helper[3][2]) == ours[3][2] == ["%s|vm1 release end -|/|-" % n
                                                  for n in ("dir-10", "dir-20", "linked-dir")]
    assert ours[4][2] == helper[4][2] == [] and ours[5][2] == helper[5][2] == []


def test_a_file_form_hook_that_cannot_run_fails_the_start_in_both(both):
    hook = both.hooks / "qemu.d" / "vm1" / "prepare" / "begin"
    hook.chmod(0o644)
    assert replay(both, both.hooks / "helper")[0][1] != 0
    fired = both.fire("qemu", "vm1", "prepare", "begin", stdin=XML)
    assert fired.rc == 1 and "qemu.d/vm1/prepare/begin" in fired.stderr and "not executable" in fired.stderr


@pytest.mark.root
@pytest.mark.parametrize("what", ["link", "target dir"])
def test_symlinks_in_the_tree_follow_the_trust_rules(both, what):
    """A symlink a user owns, or a directory on the way to its target that a user owns, is refused:
    the helper would run it as root."""
    link = both.hooks / "qemu.d" / "vm1" / "started" / "begin"
    if what == "link":
        os.lchown(link, NOBODY, NOBODY)
    else:
        os.chown(both.root / "opt" / "hooks", NOBODY, NOBODY)
    assert replay(both, both.hooks / "helper")[2][2]                  # the helper runs it anyway
    fired = both.fire("qemu", "vm1", "started", "begin", stdin=XML)
    assert fired.rc == 1 and "refused" in fired.stderr and "uid %d" % NOBODY in fired.stderr
    assert not (both.seen / "ran").exists() or "linked-file" not in (both.seen / "ran").read_text()


def test_directory_scripts_get_the_xml_where_the_helper_gives_them_its_file_list(both):
    """The helper's loop reads find's output on the stdin its scripts inherit: a script that reads
    stdin gets the names of the scripts after it, which then never run. The dispatcher gives each
    the domain XML and runs them all (a difference the migration guide lists)."""
    end = both.hooks / "qemu.d" / "vm1" / "release" / "end"
    for path in end.iterdir():
        path.unlink()
    for name in ("10-first", "20-second"):
        recorder(end / name, name, both.seen / "ran")
    helper, ours = replay(both, both.hooks / "helper")[3], replay(both, both.hooks / "qemu")[3]
    assert len(helper[2]) == 1 and str(end) in helper[2][0].split("|")[3]
    assert ours[2] == ["%s|vm1 release end -|/|%s" % (n, XML.decode()) for n in ("10-first", "20-second")]


def test_a_failure_where_libvirt_cannot_abort_stops_the_helper_but_not_the_tree(both):
    """set -e stops the helper at the first failing script whatever the event; on release end (which
    libvirt cannot abort) the dispatcher still runs the scripts after it (a difference the guide lists)."""
    end = both.hooks / "qemu.d" / "vm1" / "release" / "end"
    for path in end.iterdir():
        path.unlink()
    for name in ("10-a", "20-b"):
        recorder(end / name, name, both.seen / "ran", reads_stdin=False)
    listed = subprocess.run(["find", "-L", str(end), "-maxdepth", "1", "-type", "f", "-executable", "-print"],
                            capture_output=True, text=True, check=True).stdout.split()
    first = Path(listed[0])                    # the helper's first script, in find's order: make it fail
    first.write_text(first.read_text() + "exit 1\n")
    helper, ours = replay(both, both.hooks / "helper")[3], replay(both, both.hooks / "qemu")[3]
    assert helper[1] != 0 and [line.split("|")[0] for line in helper[2]] == [first.name]
    assert [line.split("|")[0] for line in ours[2]] == ["10-a", "20-b"]


def test_tree_on_failure_abortable_spares_running_guests_on_reconnect(both):
    hook = recorder(both.hooks / "qemu.d" / "vm1" / "reconnect" / "begin", "reconnect", both.seen / "ran")
    hook.write_text("#!/bin/sh\nexit 1\n")
    assert both.fire("qemu", "vm1", "reconnect", "begin", stdin=XML).rc != 0       # as the helper: the guest dies
    both.deploy([], tree={"on_failure": "abortable"})
    assert both.fire("qemu", "vm1", "reconnect", "begin", stdin=XML).rc == 0
    assert both.fire("qemu", "vm1", "prepare", "begin", stdin=XML).rc == 0
    (both.hooks / "qemu.d" / "vm1" / "prepare" / "begin").write_text("#!/bin/sh\nexit 1\n")
    assert both.fire("qemu", "vm1", "prepare", "begin", stdin=XML).rc == 1          # a start is still aborted
