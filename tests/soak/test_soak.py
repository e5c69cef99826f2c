"""The chaos soak, 2 minutes of it, in the suite (marker `libvirt`); `make soak` is the long run.

tests/soak/engine.py does the work: a private real libvirtd with 4 TCG guests cycled continuously while
deploys (some killed with SIGKILL), both rollbacks, SIGHUP, a daemon restart with guests running, full and
read-only disks, the metrics job and the fleet report run at seeded random moments. The seed is printed (and
is in the failure message): `python -m tests.soak.engine --minutes 2 --seed N` runs the same schedule again.
"""
from __future__ import annotations

import os
import random
import shutil

import pytest

from tests.soak.engine import Soak, summary

pytestmark = [pytest.mark.libvirt, pytest.mark.slow, pytest.mark.root]  # a private libvirtd in its own namespaces


def test_two_minutes_of_chaos_on_a_real_libvirtd_leave_no_failure_of_ours(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("needs root (a private libvirtd, tmpfs mounts)")
    for tool in ("unshare", "nsenter", "qemu-system-x86_64", "/usr/sbin/libvirtd", "/usr/sbin/virtlogd"):
        if not shutil.which(tool):
            pytest.fail("%s is missing: run tests/setup/prepare-host.sh (tests/setup/debian-packages.txt)" % tool)
    seed = int(os.environ.get("VIRTHOOKS_SOAK_SEED") or random.SystemRandom().randrange(1, 2 ** 31))
    print("soak seed %d" % seed)
    soak = Soak(tmp_path, seed, seconds=120)
    try:
        result = soak.run()
    finally:
        soak.close()
    text = summary(result)
    print(text)
    assert result["failures_ours"] == {}, text
    # Every kind of fault was injected, the long run's figures in small.
    faults = result["faults"]
    for kind in ("deploy", "virthooks rollback", "role rollback (daemon hung at the reload)",
                 "SIGHUP", "TMPDIR full", "log directory full", "log directory read-only"):
        assert faults.get(kind), (kind, text)
    assert any(k.startswith("ansible-playbook SIGKILL") for k in faults), text     # its workers too, or not
    assert any(k.startswith("daemon restart") for k in faults), text
    if any(k.startswith("daemon restart with") for k in faults):
        assert result["reconnects"] >= 1, text
    # Calls were recorded by the scripts, logged (or syslogged), and counted by the metrics job.
    assert result["calls"] >= 100 and result["cycles"] >= 40, text
    assert result["calls"] == result["records"] + result["syslog_lines"], text
    assert result["metrics_counted"] == result["records"] and result["reports"] >= 2, text
