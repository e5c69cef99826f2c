"""benchmarks/fleet.py --quick runs and measures what it says (not its targets, which need 200 hosts and a quiet
machine: docs/scale.md): every play it times ran on every host, with the module calls and task results each
play makes per host, and the ratios against the ping floor."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import REPO

pytestmark = [pytest.mark.root, pytest.mark.slow]  # deploys through the modules (which chown to root); minutes

ROW = re.compile(r"^\s+(\d+)\s+(\d+)\s+(floor|first|re-run|naive re|naive)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)s"
                 r"\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)\s+(\d+) /\s+(\d+)$")


def test_the_quick_fleet_benchmark_measures_the_floor_the_role_and_the_naive_play():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fleet.py"), "--quick"], capture_output=True,
                          text=True, env=ansible_env(), timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {m.group(3): m.groups() for m in map(ROW.match, proc.stdout.splitlines()) if m}
    assert sorted(rows) == ["first", "floor", "naive", "naive re", "re-run"], proc.stdout
    calls = {label: float(row[6]) for label, row in rows.items()}
    results = {label: float(row[7]) for label, row in rows.items()}
    # The floor is one ping a host; the naive play a directory and one copy per script (3 in --quick).
    assert calls["floor"] == 1.0 and results["floor"] == 1.0, proc.stdout
    assert calls["naive"] == calls["naive re"] == 4.0, proc.stdout
    # The role: hook_runtime alone (it finds libvirt itself, and checks a new generation itself on the first run),
    # one task a host (the sandbox hosts share one plan, and have no daemon to reload)
    assert calls["re-run"] == 1.0 and calls["first"] == 1.0, proc.stdout
    assert results["re-run"] == results["first"] < 3, proc.stdout
    for row in rows.values():
        assert int(row[0]) == 10 and int(row[1]) == 10 and float(row[3]) > 0 and float(row[4]) > 0, row
        # peak memory of the run, MiB: the controller's (ansible-playbook and its workers), within the whole tree's
        assert 0 < int(row[8]) <= int(row[9]) and int(row[8]) < 1024, row
    assert re.search(r"^N=10\s+forks=10\s+re-run/floor [\d.]+ \(cpu [\d.]+\)\s+first/floor [\d.]+", proc.stdout, re.M)
    assert "(--quick: no targets checked)" in proc.stdout or "(--report-only: exit 0)" in proc.stdout
