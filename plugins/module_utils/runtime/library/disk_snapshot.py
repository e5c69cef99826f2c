# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_snapshot: an internal qcow2 snapshot of each disk before the guest starts, newest ``keep`` kept.

Only snapshots named virthooks-* are ever deleted; the user's own snapshots are left alone. A guest
is not running at prepare, so qemu-img may write its images. When a later disk fails, the snapshots
already taken for this start are deleted again (the state file lists what this start took).
"""
from __future__ import annotations

import datetime
import fnmatch

from .common import Fail, Undo, log, run, undo_message

PREFIX = "virthooks-"


def disks(root) -> list:
    """Image files of the guest's writable qcow2 file/block disks, in XML order."""
    out = []
    for disk in root.findall("devices/disk"):
        driver, source = disk.find("driver"), disk.find("source")
        if disk.get("device", "disk") != "disk" or driver is None or driver.get("type") != "qcow2" or source is None:
            continue
        if disk.find("readonly") is not None or disk.find("shareable") is not None:
            continue
        path = source.get("file") or source.get("dev")
        if path and path not in out:
            out.append(path)
    return out


def snapshots(hook, image: str) -> list:
    """Names of the image's internal snapshots, oldest first (qemu-img lists them by creation)."""
    text = run([hook.paths["qemu_img"], "snapshot", "-l", image])
    names = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit():
            names.append(fields[1])
    return names


def delete(hook, image: str, name: str) -> None:
    run([hook.paths["qemu_img"], "snapshot", "-d", name, image])


def take(hook) -> None:
    if not any(fnmatch.fnmatchcase(hook.object, g) for g in hook.params.get("guests", ["*"])):
        return
    keep = int(hook.params.get("keep", 3))
    images = disks(hook.xml)
    if not images:
        return
    name = PREFIX + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    undo, taken = Undo(), []
    try:
        for image in images:
            if name in snapshots(hook, image):
                continue                      # this very snapshot exists already (a re-run): nothing to do
            run([hook.paths["qemu_img"], "snapshot", "-c", name, image], timeout=600)
            undo.push("delete %s of %s" % (name, image), delete, hook, image, name)
            taken.append(image)
        hook.save_state({"snapshot": name, "images": taken})
    except Fail as exc:
        raise undo_message(exc, undo, "the snapshots taken for this start were deleted again")
    pruned = []
    for image in taken:
        ours = sorted(n for n in snapshots(hook, image) if n.startswith(PREFIX))
        for old in ours[:max(len(ours) - keep, 0)]:
            delete(hook, image, old)
            pruned.append(old)
    log("disk_snapshot: %s of %s; pruned %d old" % (name, ", ".join(taken), len(pruned)))


STEPS = {"snapshot": take}
