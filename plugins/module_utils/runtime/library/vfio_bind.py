# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vfio_bind: bind a guest's ``<hostdev type='pci' managed='no'>`` devices to vfio-pci, and back.

Per device: driver_override = vfio-pci, unbind from the current driver, drivers_probe, check the
device is on vfio-pci. The state file records each device's original driver and override, so
release puts back exactly that. A failure on any device puts back every device done so far.
"""
from __future__ import annotations

import os
import time

from .common import Fail, Undo, log, read_file, run, undo_message, write_file


def devices_of(root) -> list:
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


class Pci:
    """The PCI devices and drivers of a sysfs tree."""

    def __init__(self, paths: dict):
        self.sys, self.settle = paths["sys"], float(paths["settle"])

    def dev(self, bdf: str, *rest) -> str:
        return os.path.join(self.sys, "bus/pci/devices", bdf, *rest)

    def driver(self, bdf: str):
        """The device's driver, None when it has none (the link may go between two looks: unbinding races)."""
        try:
            return os.path.basename(os.readlink(self.dev(bdf, "driver")))
        except OSError:
            return None

    def override(self, bdf: str) -> str:
        try:
            value = read_file(self.dev(bdf, "driver_override"))
        except OSError:
            return ""
        return "" if value == "(null)" else value

    def wait_driver(self, bdf: str, wanted):
        deadline = time.monotonic() + self.settle
        while True:
            current = self.driver(bdf)
            if current == wanted or time.monotonic() > deadline:
                return current
            time.sleep(0.01)

    def move(self, bdf: str, driver, override: str) -> None:
        """Put the device on `driver` (None = no driver) with driver_override `override` ('' = none)."""
        current = self.driver(bdf)
        if self.override(bdf) != (override or ""):
            put(self.dev(bdf, "driver_override"), override or "\n", bdf)
        if current is not None and current != driver:
            put(self.dev(bdf, "driver", "unbind"), bdf, "%s: unbind from %s" % (bdf, current))
            if self.wait_driver(bdf, None) is not None:
                raise Fail("%s: still bound to %s after unbind" % (bdf, current))
        if driver is not None and self.driver(bdf) != driver:
            target = os.path.join(self.sys, "bus/pci/drivers", driver, "bind")
            probe = os.path.join(self.sys, "bus/pci/drivers_probe")
            put(target if override == "" and os.path.exists(target) else probe, bdf, "%s: bind to %s" % (bdf, driver))
            got = self.wait_driver(bdf, driver)
            if got != driver:
                raise Fail("%s: bound to %s instead of %s" % (bdf, got, driver))


def put(path: str, value: str, what: str) -> None:
    try:
        write_file(path, value)
    except OSError as exc:
        raise Fail("%s: cannot write %r to %s: %s" % (what, value, path, exc))


def ensure_vfio(hook) -> None:
    driver = os.path.join(hook.paths["sys"], "bus/pci/drivers/vfio-pci")
    if not os.path.isdir(driver) and os.path.exists(hook.paths["modprobe"]):
        run([hook.paths["modprobe"], "vfio-pci"])
    if not os.path.isdir(driver):
        raise Fail("the vfio-pci driver is not available (modprobe vfio-pci)")


def bind(hook) -> None:
    devices = devices_of(hook.xml)
    if not devices:
        return
    pci = Pci(hook.paths)
    fd = hook.lock()
    try:
        if hook.load_state() is not None:
            return
        ensure_vfio(hook)
        undo, done = Undo(), []
        try:
            for bdf in devices:
                if not os.path.isdir(pci.dev(bdf)):
                    raise Fail("%s: no such PCI device on this host" % bdf)
                original = {"bdf": bdf, "driver": pci.driver(bdf), "override": pci.override(bdf)}
                if original["driver"] == "vfio-pci":
                    continue                       # already there: nothing of ours to undo later
                undo.push("put %s back on %s" % (bdf, original["driver"]), pci.move, bdf, original["driver"],
                          original["override"])
                pci.move(bdf, "vfio-pci", "vfio-pci")
                done.append(original)
            hook.save_state({"devices": done})
        except Fail as exc:
            raise undo_message(exc, undo, "every device was put back on its driver")
        log("vfio_bind: " + ", ".join("%s %s -> vfio-pci" % (d["bdf"], d["driver"]) for d in done))
    finally:
        os.close(fd)


def unbind(hook) -> None:
    state = hook.load_state()
    if state is None:
        return
    pci = Pci(hook.paths)
    fd = hook.lock()
    try:
        problems = []
        for dev in reversed(state["devices"]):
            try:
                pci.move(dev["bdf"], dev["driver"], dev["override"])
            except (Fail, OSError) as exc:
                problems.append(str(exc))
        hook.drop_state()
        if problems:
            raise Fail("could not put every device back: " + "; ".join(problems))
        log("vfio_bind: " + ", ".join("%s -> %s" % (d["bdf"], d["driver"]) for d in state["devices"]))
    finally:
        os.close(fd)


STEPS = {"bind": bind, "unbind": unbind}
