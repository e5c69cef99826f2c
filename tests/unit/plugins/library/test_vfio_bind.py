"""vfio_bind against a faked sysfs tree: this machine has no passthrough hardware (and binding a real device
to vfio-pci would take it from the host), so a thread plays the kernel's PCI core on the fake files: a BDF
written to drivers/<d>/unbind unbinds, to drivers/<d>/bind or drivers_probe binds (drivers_probe honours
driver_override). Every step, the give-back and the rollback on failure are checked on that tree."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from .conftest import domain

DEV_A, DEV_B = "0000:01:00.0", "0000:02:00.1"


class FakeKernel(threading.Thread):
    def __init__(self, sys_: Path):
        super().__init__(daemon=True)
        self.sys, self.stop, self.log = sys_, threading.Event(), []

    def _take(self, path: Path) -> str:
        try:
            text = path.read_text().strip()
        except OSError:
            return ""
        if text:
            path.write_text("")
        return text

    def _bind(self, bdf: str, driver: str) -> None:
        link = self.sys / "bus/pci/devices" / bdf / "driver"
        if not link.is_symlink() and (self.sys / "bus/pci/drivers" / driver / "bind").exists():
            link.symlink_to("../../drivers/" + driver)
            self.log.append("bind %s %s" % (bdf, driver))

    def run(self):
        pci = self.sys / "bus/pci"
        while not self.stop.is_set():
            for drv in sorted((pci / "drivers").iterdir()):
                bdf = self._take(drv / "unbind")
                if bdf:
                    (pci / "devices" / bdf / "driver").unlink()
                    self.log.append("unbind %s %s" % (bdf, drv.name))
                bdf = self._take(drv / "bind")
                if bdf:
                    self._bind(bdf, drv.name)
            bdf = self._take(pci / "drivers_probe")
            if bdf:
                override = (pci / "devices" / bdf / "driver_override").read_text().strip()
                self._bind(bdf, override if override not in ("", "(null)") else "e1000e")
            time.sleep(0.002)


@pytest.fixture
def sysfs(blocks, tmp_path):
    sys_ = tmp_path / "sys"
    pci = sys_ / "bus/pci"
    for drv in ("vfio-pci", "e1000e", "nvme"):
        (pci / "drivers" / drv).mkdir(parents=True)
        for f in ("bind", "unbind"):
            (pci / "drivers" / drv / f).write_text("")
    (pci / "drivers_probe").write_text("")
    for bdf, drv in ((DEV_A, "e1000e"), (DEV_B, None)):
        (pci / "devices" / bdf).mkdir(parents=True)
        (pci / "devices" / bdf / "driver_override").write_text("(null)\n")
        if drv:
            os.symlink("../../drivers/" + drv, pci / "devices" / bdf / "driver")
    blocks.paths.update(sys=str(sys_), settle="3", modprobe=str(tmp_path / "no-modprobe"))
    kernel = FakeKernel(sys_)
    kernel.start()
    yield kernel
    kernel.stop.set()
    kernel.join()


def hostdevs(*bdfs, managed="no"):
    out = ""
    for bdf in bdfs:
        d, b, rest = bdf.split(":")
        s, f = rest.split(".")
        out += ("<hostdev mode='subsystem' type='pci' managed='%s'><source><address domain='0x%s' bus='0x%s' slot='0x%s' "
                "function='0x%s'/></source></hostdev>" % (managed, d, b, s, f))
    return domain("gpu", "<devices>%s</devices>" % out)


def driver(sysfs, bdf):
    link = sysfs.sys / "bus/pci/devices" / bdf / "driver"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


def override(sysfs, bdf):
    return (sysfs.sys / "bus/pci/devices" / bdf / "driver_override").read_text().strip()


def test_binds_to_vfio_pci_and_gives_each_device_back_to_its_own_driver(blocks, sysfs):
    ran = blocks.run("vfio_bind", "bind", {}, "gpu", hostdevs(DEV_A, DEV_B))
    assert ran.rc == 0, ran
    assert driver(sysfs, DEV_A) == driver(sysfs, DEV_B) == "vfio-pci"
    assert override(sysfs, DEV_A) == "vfio-pci"
    assert sysfs.log == ["unbind %s e1000e" % DEV_A, "bind %s vfio-pci" % DEV_A, "bind %s vfio-pci" % DEV_B]
    assert blocks.state_of("vfio_bind", "gpu") == {"devices": [
        {"bdf": DEV_A, "driver": "e1000e", "override": ""}, {"bdf": DEV_B, "driver": None, "override": ""}]}
    ran = blocks.run("vfio_bind", "unbind", {}, "gpu", hostdevs(DEV_A, DEV_B), op="release", sub="end")
    assert ran.rc == 0, ran
    assert driver(sysfs, DEV_A) == "e1000e" and driver(sysfs, DEV_B) is None
    assert override(sysfs, DEV_A) == override(sysfs, DEV_B) == ""
    assert blocks.state_of("vfio_bind", "gpu") is None


def test_binding_twice_changes_nothing(blocks, sysfs):
    for _ignored in range(2):
        assert blocks.run("vfio_bind", "bind", {}, "gpu", hostdevs(DEV_A)).rc == 0
    assert len(sysfs.log) == 2


def test_a_device_already_on_vfio_pci_is_not_ours_to_give_back(blocks, sysfs):
    link = sysfs.sys / "bus/pci/devices" / DEV_A / "driver"
    link.unlink()
    link.symlink_to("../../drivers/vfio-pci")
    assert blocks.run("vfio_bind", "bind", {}, "gpu", hostdevs(DEV_A)).rc == 0
    assert blocks.run("vfio_bind", "unbind", {}, "gpu", "", op="release", sub="end").rc == 0
    assert driver(sysfs, DEV_A) == "vfio-pci" and sysfs.log == []


def test_failure_on_the_second_device_puts_the_first_back(blocks, sysfs):
    path = sysfs.sys / "bus/pci/devices" / DEV_B / "driver_override"
    path.unlink()
    path.mkdir()                                        # the kernel refuses the override
    ran = blocks.run("vfio_bind", "bind", {}, "gpu", hostdevs(DEV_A, DEV_B))
    assert ran.rc == 1 and ran.stderr.count("\n") == 1
    assert ran.stderr.startswith("virthooks vfio_bind: gpu: %s: cannot write 'vfio-pci' to" % DEV_B)
    assert ran.stderr.endswith("; every device was put back on its driver\n")
    assert driver(sysfs, DEV_A) == "e1000e" and override(sysfs, DEV_A) == ""
    assert blocks.state_of("vfio_bind", "gpu") is None


def test_a_driver_that_does_not_take_the_device_is_refused_and_rolled_back(blocks, sysfs):
    (sysfs.sys / "bus/pci/drivers/vfio-pci/bind").unlink()     # the fake kernel's vfio-pci then takes nothing
    blocks.paths["settle"] = "0.3"
    ran = blocks.run("vfio_bind", "bind", {}, "gpu", hostdevs(DEV_A))
    assert ran.rc == 1 and "%s: bound to None instead of vfio-pci" % DEV_A in ran.stderr
    assert "every device was put back" in ran.stderr and driver(sysfs, DEV_A) == "e1000e"


def test_a_missing_device_is_named(blocks, sysfs):
    ran = blocks.run("vfio_bind", "bind", {}, "gpu", hostdevs("0000:09:00.0"))
    assert ran.rc == 1 and "0000:09:00.0: no such PCI device on this host" in ran.stderr


def test_no_vfio_pci_driver_is_named(blocks, sysfs):
    (sysfs.sys / "bus/pci/drivers/vfio-pci").rename(sysfs.sys / "bus/pci/drivers/other")
    ran = blocks.run("vfio_bind", "bind", {}, "gpu", hostdevs(DEV_A))
    assert ran.rc == 1 and "the vfio-pci driver is not available" in ran.stderr and driver(sysfs, DEV_A) == "e1000e"


@pytest.mark.parametrize("xml", [hostdevs(DEV_A, managed="yes"), domain("gpu", "<devices><hostdev mode='subsystem' "
                                 "type='usb' managed='no'><source><vendor id='0x1'/></source></hostdev></devices>"), ""])
def test_managed_and_non_pci_hostdevs_are_libvirts_business(blocks, sysfs, xml):
    assert blocks.run("vfio_bind", "bind", {}, "gpu", xml).rc == 0 and sysfs.log == []
