"""This machine as the tests use it: a user-owned interpreter, this machine's libvirtd."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

NOBODY = 65534
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def user_owned_shell(directory: Path) -> Path:
    """A copy of /bin/sh in directory/user-bin, a directory owned by nobody: a user could replace the
    interpreter, so the installer takes it (it exists) and the host's trust check must refuse it."""
    user_bin = directory / "user-bin"
    user_bin.mkdir()
    shell = user_bin / "sh"
    shell.write_bytes(Path("/bin/sh").resolve().read_bytes())
    shell.chmod(0o755)
    os.chown(user_bin, NOBODY, NOBODY)
    return shell


def machine_libvirtd_up(timeout: float = 30.0) -> None:
    """This machine's libvirtd answering on qemu:///system: a test that needs it running makes it so itself
    (through its service, as the init scripts and systemd units both leave a running daemon alone)."""
    import shutil
    import time

    def answers() -> bool:
        return subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=30,
                              check=False).returncode == 0

    if answers():
        return
    if shutil.which("libvirtd", path=SYSTEM_PATH) is None or shutil.which("service", path=SYSTEM_PATH) is None:
        pytest.fail("libvirt (libvirtd) or the service command is not installed: run tests/setup/prepare-host.sh first",
                    pytrace=False)
    for service in ("virtlogd", "libvirtd"):
        subprocess.run(["service", service, "start"], check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + timeout
    while not answers():
        if time.monotonic() > deadline:
            pytest.fail("libvirtd did not answer within %d s after `service libvirtd start`" % timeout, pytrace=False)
        time.sleep(0.5)
