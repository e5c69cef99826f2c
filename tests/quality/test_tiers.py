"""The test tiers: `make units` is the unmarked tier of tests/unit, and it passes as a user that is not root.

The tier runs as `nobody` from the checkout (which nobody may read, not write), with pytest's cache off and
its temporary files in a directory of nobody's. The venv's interpreter lives under /root, which nobody cannot
enter, so Debian's own Python of the same minor runs it, with the venv's packages on PYTHONPATH. A test of the
tier that needs root, libvirt, podman or minutes, and is not marked so, fails here.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from tests.conftest import MARKERS, UNIT_TIER
from tests.support.host import NOBODY
from tests.support.paths import REPO

pytestmark = [pytest.mark.root, pytest.mark.slow]
SYSTEM_PYTHON = "/usr/bin/python%d.%d" % sys.version_info[:2]


def test_make_units_selects_the_unmarked_tier():
    makefile = (REPO / "Makefile").read_text()
    tier = re.search(r"^UNIT_TIER := (.*)$", makefile, flags=re.M)
    assert tier, "the Makefile has no UNIT_TIER"
    assert set(re.findall(r"\w+", tier.group(1))) - {"not", "or"} == set(MARKERS), tier.group(1)
    assert set(re.findall(r"\w+", UNIT_TIER)) - {"not", "or"} == set(MARKERS)
    assert '-m "$(UNIT_TIER)" tests/unit' in makefile


@pytest.fixture
def nobodys_dir():
    """A directory of nobody's outside pytest's (root's, mode 0700) temporary tree."""
    path = Path(tempfile.mkdtemp(prefix="virthooks-tier-"))
    os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_unit_tier_passes_as_a_user_that_is_not_root(nobodys_dir):
    if os.geteuid() != 0:
        pytest.skip("run as root, to become nobody")   # as a user, `make units` itself is the proof
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail("%s (python3 of the same minor as the venv) is needed to run the tier as nobody" % SYSTEM_PYTHON,
                    pytrace=False)
    work = nobodys_dir
    env = {"HOME": str(work), "PATH": "%s:/usr/sbin:/usr/bin:/sbin:/bin" % Path(sys.executable).parent,
           "PYTHONPATH": sysconfig.get_paths()["purelib"], "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "TMPDIR": str(work)}
    proc = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                           SYSTEM_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", UNIT_TIER,
                           "--basetemp", str(work / "pytest"), "-n", "2", "tests/unit"],
                          cwd=str(REPO), env=env, capture_output=True, text=True, timeout=1200, check=False)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, "the unit tier failed as nobody (mark what needs root, libvirt or podman):\n" + tail
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed and int(passed.group(1)) > 500, tail
