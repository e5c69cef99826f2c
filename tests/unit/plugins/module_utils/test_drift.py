"""drift.host_state / read_xml_dir (the hooks_state module, run as root) on real hostile files in tmp_path.

Each read must end: a FIFO is never waited on, a device or a huge file never read whole.
"""
from __future__ import annotations

import os
import signal

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils import drift

from .conftest import SYSTEM_PYTHON


@pytest.fixture
def deadline():
    """Fail (not hang) a test whose read blocks: SIGALRM after 20 s raises in the blocked call."""
    def expired(_signum, _frame):
        raise TimeoutError("the drift read blocked")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def deployed(sandbox):
    sandbox.script("keep", "exit 0\n")
    sandbox.deploy([{"name": "keep", "script": "scripts/keep", "operations": ["prepare"]}])
    return sandbox


def tree(box):
    directory = box.hooks / "qemu.d" / "vm" / "prepare" / "begin"
    directory.mkdir(parents=True)
    return directory


def test_a_fifo_in_the_per_guest_tree_is_named_not_waited_on(deployed, deadline):
    os.mkfifo(tree(deployed) / "10-pipe")
    state = drift.host_state(str(deployed.hooks), SYSTEM_PYTHON)
    assert state["tree"]["qemu.d/vm/prepare/begin/10-pipe"] == "not a regular file (a FIFO)"
    assert state["rules"] and state["config_error"] is None


def test_a_link_to_dev_zero_in_the_tree_is_not_read(deployed, deadline):
    os.symlink("/dev/zero", tree(deployed) / "20-zero")
    state = drift.host_state(str(deployed.hooks), SYSTEM_PYTHON)
    assert state["tree"]["qemu.d/vm/prepare/begin/20-zero"] == "not a regular file (a character device)"


def test_a_huge_file_in_the_tree_is_reported_too_large_not_read(deployed, deadline):
    image = tree(deployed) / "30-image"
    with open(image, "wb") as f:
        f.truncate(20 << 30)                # 20 GiB, sparse
    state = drift.host_state(str(deployed.hooks), SYSTEM_PYTHON)
    assert state["tree"]["qemu.d/vm/prepare/begin/30-image"] == (
        "too large (%d bytes, over the %d-byte limit of the drift check): not read"
        % (20 << 30, drift.READ_MAX))


def test_a_fifo_as_config_json_or_a_script_is_named_not_waited_on(deployed, deadline):
    current = deployed.current.resolve()
    os.unlink(current / "scripts" / "keep")
    os.mkfifo(current / "scripts" / "keep")
    os.unlink(current / "config.json")
    os.mkfifo(current / "config.json")
    state = drift.host_state(str(deployed.hooks), SYSTEM_PYTHON)
    assert state["config_error"] == "%s: not a regular file (a FIFO)" % (deployed.current / "config.json")


def test_a_fifo_and_a_non_utf8_file_in_the_xml_dir_are_named(tmp_path, deadline):
    (tmp_path / "good.xml").write_text("<domain/>")
    os.mkfifo(tmp_path / "pipe.xml")
    with pytest.raises(OSError, match="pipe.xml: not a regular file"):
        drift.read_xml_dir(str(tmp_path))
    os.unlink(tmp_path / "pipe.xml")
    (tmp_path / "latin.xml").write_bytes(b"<domain><name>caf\xe9</name></domain>")
    with pytest.raises(OSError, match=r"latin\.xml is not UTF-8 \(byte 0xe9 at offset 17\)"):
        drift.read_xml_dir(str(tmp_path))


def rules_d(box):
    directory = box.own / "rules.d"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_host_drop_ins_are_described_with_digest_drivers_and_rules_and_left_out_of_the_rules(deployed, deadline):
    import hashlib
    import json
    directory = rules_d(deployed)
    net = json.dumps([{"name": "net-up", "driver": "network", "script": "n.sh"},
                      {"name": "gpu", "script": "g.sh"}, {"name": "ct", "driver": "lxc", "script": "c.sh"}])
    (directory / "50-net.json").write_text(net)
    (directory / "60-one.json").write_text(json.dumps({"name": "one", "script": "o.sh"}))
    (directory / "70-broken.json").write_text("{not json")
    (directory / "50-net.json~").write_text("a backup")
    (directory / ".hidden.json").write_text("{}")
    (directory / "n.sh").write_text("#!/bin/sh\n")
    state = drift.host_state(str(deployed.hooks), SYSTEM_PYTHON)
    assert state["dropins"] == {
        "rules.d/50-net.json": {"digest": hashlib.sha256(net.encode()).hexdigest(), "drivers": ["qemu", "lxc", "network"],
                                "rules": ["net-up", "gpu", "ct"], "problem": None},
        "rules.d/60-one.json": {"digest": hashlib.sha256(b'{"name": "one", "script": "o.sh"}').hexdigest(),
                                "drivers": ["qemu"], "rules": ["one"], "problem": None},
        "rules.d/70-broken.json": {"digest": hashlib.sha256(b"{not json").hexdigest(), "drivers": [], "rules": [],
                                   "problem": state["dropins"]["rules.d/70-broken.json"]["problem"]}}
    assert state["dropins"]["rules.d/70-broken.json"]["problem"].startswith("not valid JSON: ")
    assert [r["name"] for r in state["rules"]] == ["keep"]


def test_a_fifo_drop_in_is_named_not_waited_on_and_a_host_without_rules_d_has_none(deployed, deadline):
    assert drift.host_state(str(deployed.hooks), SYSTEM_PYTHON)["dropins"] == {}
    os.mkfifo(rules_d(deployed) / "pipe.json")
    assert drift.host_state(str(deployed.hooks), SYSTEM_PYTHON)["dropins"] == {"rules.d/pipe.json": {
        "digest": "not a regular file (a FIFO)", "drivers": [], "rules": [], "problem": "not a regular file (a FIFO)"}}
