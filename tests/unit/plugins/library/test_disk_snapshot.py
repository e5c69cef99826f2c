"""disk_snapshot with the real qemu-img on real qcow2 images in tmp_path."""
from __future__ import annotations

import subprocess

import pytest

from .conftest import domain


def qemu_img(*args) -> str:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=True).stdout


def snapshots(image) -> list:
    return [line.split()[1] for line in qemu_img("snapshot", "-l", str(image)).splitlines()
            if line.split() and line.split()[0].isdigit()]


@pytest.fixture
def disks(tmp_path):
    a, b, raw = tmp_path / "a.qcow2", tmp_path / "b.qcow2", tmp_path / "c.raw"
    for image in (a, b):
        qemu_img("create", "-q", "-f", "qcow2", str(image), "1M")
    qemu_img("create", "-q", "-f", "raw", str(raw), "1M")
    qemu_img("snapshot", "-c", "mine", str(a))         # the user's own snapshot: never touched
    return a, b, raw


def xml(a, b, raw, extra=""):
    disk = "<disk type='file' device='%s'><driver name='qemu' type='%s'/><source file='%s'/>%s</disk>"
    return domain("vm", "<devices>%s%s%s%s</devices>" % (
        disk % ("disk", "qcow2", a, ""), disk % ("disk", "qcow2", b, ""), disk % ("disk", "raw", raw, ""),
        disk % ("cdrom", "qcow2", raw, "<readonly/>") + extra))


def test_four_starts_keep_the_newest_three_snapshots_of_each_qcow2_disk(blocks, disks):
    a, b, raw = disks
    names = []
    for _ignored in range(4):
        ran = blocks.run("disk_snapshot", "snapshot", {"guests": ["vm"], "keep": 3}, "vm", xml(a, b, raw))
        assert ran.rc == 0, ran
        names.append(blocks.state_of("disk_snapshot", "vm")["snapshot"])
    assert snapshots(a) == ["mine"] + names[1:]
    assert snapshots(b) == names[1:]
    assert qemu_img("info", "--output=json", str(raw)).count("snapshots") == 0


def test_keep_one(blocks, disks):
    a, b, raw = disks
    for _ignored in range(2):
        assert blocks.run("disk_snapshot", "snapshot", {"keep": 1}, "vm", xml(a, b, raw)).rc == 0
    assert len(snapshots(b)) == 1 and snapshots(a)[0] == "mine"


def test_failure_on_the_second_disk_deletes_the_first_disks_snapshot(blocks, disks, tmp_path):
    a, _b, raw = disks
    broken = tmp_path / "broken.qcow2"
    broken.write_text("not an image")
    ran = blocks.run("disk_snapshot", "snapshot", {}, "vm", xml(a, broken, raw))
    assert ran.rc == 1 and ran.stderr.count("\n") == 1
    assert ran.stderr.startswith("virthooks disk_snapshot: vm: /usr/bin/qemu-img snapshot -c failed")
    assert ran.stderr.endswith("the snapshots taken for this start were deleted again\n")
    assert snapshots(a) == ["mine"]


def test_other_guests_are_left_alone(blocks, disks):
    a, b, raw = disks
    assert blocks.run("disk_snapshot", "snapshot", {"guests": ["db-*"]}, "vm", xml(a, b, raw)).rc == 0
    assert snapshots(b) == []


def test_guest_without_qcow2_disks_does_nothing(blocks, disks):
    assert blocks.run("disk_snapshot", "snapshot", {}, "vm", domain("vm")).rc == 0
    assert blocks.state_of("disk_snapshot", "vm") is None
