# ---- vfio_bind.py: bind a guest's <hostdev type='pci' managed='no'> devices to vfio-pci, and back ----
# Per device: driver_override = vfio-pci, unbind from the current driver, drivers_probe, check the
# device is on vfio-pci. The state file records each device's original driver and override, so
# release puts back exactly that. A failure on any device puts back every device done so far.
def vb_devices(root):
    out = []
    for dev in root.findall("devices/hostdev"):
        if dev.get("type") != "pci" or dev.get("managed", "no") != "no" or dev.get("mode", "subsystem") != "subsystem":
            continue
        addr = dev.find("source/address")
        if addr is None:
            continue
        try:
            parts = [int(addr.get(k, "0"), 0) for k in ("domain", "bus", "slot", "function")]
        except ValueError:
            raise Fail("bad PCI address in the domain XML: %s" % dict(addr.attrib))
        bdf = "%04x:%02x:%02x.%x" % tuple(parts)
        if bdf not in out:
            out.append(bdf)
    return out


def vb_dev(bdf, *rest):
    return os.path.join(P["sys"], "bus/pci/devices", bdf, *rest)


def vb_driver(bdf):
    link = vb_dev(bdf, "driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def vb_write(path, value, what):
    try:
        write_file(path, value)
    except OSError as exc:
        raise Fail("%s: cannot write %r to %s: %s" % (what, value, path, exc))


def vb_wait_driver(bdf, wanted):
    deadline = time.monotonic() + float(P["settle"])
    while True:
        current = vb_driver(bdf)
        if current == wanted or time.monotonic() > deadline:
            return current
        time.sleep(0.01)


def vb_move(bdf, driver, override):
    """Put the device on `driver` (None = no driver) with driver_override `override` ('' = none)."""
    current = vb_driver(bdf)
    if vb_override(bdf) != (override or ""):
        vb_write(vb_dev(bdf, "driver_override"), override or "\n", bdf)
    if current is not None and current != driver:
        vb_write(vb_dev(bdf, "driver", "unbind"), bdf, "%s: unbind from %s" % (bdf, current))
        if vb_wait_driver(bdf, None) is not None:
            raise Fail("%s: still bound to %s after unbind" % (bdf, current))
    if driver is not None and vb_driver(bdf) != driver:
        target = os.path.join(P["sys"], "bus/pci/drivers", driver, "bind")
        vb_write(target if override == "" and os.path.exists(target) else os.path.join(P["sys"], "bus/pci/drivers_probe"),
                 bdf, "%s: bind to %s" % (bdf, driver))
        got = vb_wait_driver(bdf, driver)
        if got != driver:
            raise Fail("%s: bound to %s instead of %s" % (bdf, got, driver))


def vb_bind(hook):
    devices = vb_devices(hook.xml)
    if not devices:
        return
    fd = hook.lock()
    try:
        if hook.load_state() is not None:
            return
        if not os.path.isdir(os.path.join(P["sys"], "bus/pci/drivers/vfio-pci")) and os.path.exists(P["modprobe"]):
            run([P["modprobe"], "vfio-pci"])
        if not os.path.isdir(os.path.join(P["sys"], "bus/pci/drivers/vfio-pci")):
            raise Fail("the vfio-pci driver is not available (modprobe vfio-pci)")
        undo, done = Undo(), []
        try:
            for bdf in devices:
                if not os.path.isdir(vb_dev(bdf)):
                    raise Fail("%s: no such PCI device on this host" % bdf)
                original = {"bdf": bdf, "driver": vb_driver(bdf), "override": vb_override(bdf)}
                if original["driver"] == "vfio-pci":
                    continue                       # already there: nothing of ours to undo later
                undo.push("put %s back on %s" % (bdf, original["driver"]), vb_move, bdf, original["driver"], original["override"])
                vb_move(bdf, "vfio-pci", "vfio-pci")
                done.append(original)
            hook.save_state({"devices": done})
        except Fail as exc:
            problems = undo.rollback()
            raise Fail("%s; %s" % (exc, "every device was put back on its driver" if not problems
                                   else "rollback FAILED: " + "; ".join(problems)))
        log("vfio_bind: " + ", ".join("%s %s -> vfio-pci" % (d["bdf"], d["driver"]) for d in done))
    finally:
        os.close(fd)


def vb_override(bdf):
    try:
        value = read_file(vb_dev(bdf, "driver_override"))
    except OSError:
        return ""
    return "" if value == "(null)" else value


def vb_unbind(hook):
    state = hook.load_state()
    if state is None:
        return
    fd = hook.lock()
    try:
        problems = []
        for dev in reversed(state["devices"]):
            try:
                vb_move(dev["bdf"], dev["driver"], dev["override"])
            except (Fail, OSError) as exc:
                problems.append(str(exc))
        hook.drop_state()
        if problems:
            raise Fail("could not put every device back: " + "; ".join(problems))
        log("vfio_bind: " + ", ".join("%s -> %s" % (d["bdf"], d["driver"]) for d in state["devices"]))
    finally:
        os.close(fd)


STEPS = {"bind": vb_bind, "unbind": vb_unbind}
