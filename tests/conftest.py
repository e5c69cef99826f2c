"""Test plumbing: the collection on an importable path, the markers of the test tiers. Helpers live in tests/support."""
from __future__ import annotations

import os
import sys

import pytest

from tests.support.ansible import run_module
from tests.support.paths import COLLECTIONS, EXTRA_COLLECTIONS, LINK, REPO
# The webhook fixture, for every test.
from tests.support.webhook import webhook  # noqa: F401 # pylint: disable=unused-import


def _link_collection() -> None:
    """Expose the repository as ansible_collections.virthooks.libvirt (a symlink, nothing copied)."""
    LINK.parent.mkdir(parents=True, exist_ok=True)
    if not LINK.is_symlink():
        tmp = LINK.with_name("libvirt.tmp%d" % os.getpid())
        tmp.symlink_to(REPO)
        os.replace(tmp, LINK)


_link_collection()
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
# pytest-ansible (--ansible-unit-inject-only in pyproject.toml) installs Ansible's collection
# finder for exactly these paths in its pytest_configure, which runs after this import.
# Under ansible-test units the collection already sits in its own ansible_collections tree, and
# ansible-test's pytest plugin owns the collection path.
UNDER_ANSIBLE_TEST = "ANSIBLE_CONTROLLER_MIN_PYTHON_VERSION" in os.environ or REPO.parent.parent.name == "ansible_collections"
if not UNDER_ANSIBLE_TEST:
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([str(COLLECTIONS), str(EXTRA_COLLECTIONS)])


def _install_collection_finder() -> None:
    """Import ansible_collections.* through Ansible's own loader, as ansible-test units does.

    Conftests below this one import the collection before pytest_configure; without the
    finder in place first, those imports would bypass it and later relative imports fail.
    """
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    _AnsibleCollectionFinder(paths=[str(COLLECTIONS), str(EXTRA_COLLECTIONS)])._install()


if not UNDER_ANSIBLE_TEST:
    _install_collection_finder()


ANSIBLE_TEST_COLLECTIONS_PATH = os.environ.get("ANSIBLE_COLLECTIONS_PATH")


# The test tiers: a test carries the marker of each thing it needs beyond Python and this checkout.
# The unmarked tests of tests/unit are the tier `make units` runs, as any user, in seconds; a
# quality gate runs that tier as nobody to prove it (tests/quality/test_tiers.py).
MARKERS = {
    "root": "needs root (chown to other users, mounts, network namespaces, cgroups)",
    "libvirt": "needs a real libvirtd on this machine (started by the test itself or the test setup)",
    "podman": "needs podman (the container fleet, molecule scenarios, the execution environment)",
    "slow": "takes more than about a minute (soak, live migration, molecule scenarios, image builds)",
    "quality": "collection quality gates (ansible-test, linters, docs, changelog, galaxy artifact)",
}
UNIT_TIER = "not (%s)" % " or ".join(MARKERS)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Markers, registered here too: ansible-test units runs pytest with its own ini file.

    Under ansible-test, pytest-ansible (there for the molecule scenarios) misses our
    --ansible-unit-inject-only and points ANSIBLE_COLLECTIONS_PATH elsewhere in its own
    pytest_configure; xdist workers would inherit that and fail ansible-test's own check.
    Running last, this puts ansible-test's path back.
    """
    if UNDER_ANSIBLE_TEST and ANSIBLE_TEST_COLLECTIONS_PATH is not None:
        os.environ["ANSIBLE_COLLECTIONS_PATH"] = ANSIBLE_TEST_COLLECTIONS_PATH
    for name, meaning in MARKERS.items():
        config.addinivalue_line("markers", "%s: %s" % (name, meaning))


@pytest.fixture
def ansible_module():
    """Call a module for real: ansible_module('virthooks.libvirt.hooks_info', {...})."""
    return run_module
