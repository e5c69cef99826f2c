# ---- disk_snapshot.py: an internal qcow2 snapshot of each disk before the guest starts, newest `keep` kept ----
# Only snapshots named virthooks-* are ever deleted; the user's own snapshots are left alone. A guest
# is not running at prepare, so qemu-img may write its images. When a later disk fails, the snapshots
# already taken for this start are deleted again (the state file lists what this start took).
import datetime
import fnmatch

PREFIX = "virthooks-"


def ds_disks(root):
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


def ds_list(image):
    """Names of the image's internal snapshots, oldest first (qemu-img lists them by creation)."""
    text = run([P["qemu_img"], "snapshot", "-l", image])
    names = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit():
            names.append(fields[1])
    return names


def ds_delete(image, name):
    run([P["qemu_img"], "snapshot", "-d", name, image])


def ds_take(hook):
    if not any(fnmatch.fnmatchcase(hook.object, g) for g in PARAMS.get("guests", ["*"])):  # noqa: F821
        return
    keep = int(PARAMS.get("keep", 3))  # noqa: F821
    disks = ds_disks(hook.xml)
    if not disks:
        return
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    name = PREFIX + stamp
    undo, taken = Undo(), []
    try:
        for image in disks:
            if name in ds_list(image):
                continue                      # this very snapshot exists already (a re-run): nothing to do
            run([P["qemu_img"], "snapshot", "-c", name, image], timeout=600)
            undo.push("delete %s of %s" % (name, image), ds_delete, image, name)
            taken.append(image)
        hook.save_state({"snapshot": name, "images": taken})
    except Fail as exc:
        problems = undo.rollback()
        raise Fail("%s; %s" % (exc, "the snapshots taken for this start were deleted again" if not problems
                               else "rollback FAILED: " + "; ".join(problems)))
    pruned = []
    for image in taken:
        ours = sorted(n for n in ds_list(image) if n.startswith(PREFIX))
        for old in ours[:max(len(ours) - keep, 0)]:
            ds_delete(image, old)
            pruned.append(old)
    log("disk_snapshot: %s of %s; pruned %d old" % (name, ", ".join(taken), len(pruned)))


STEPS = {"snapshot": ds_take}
