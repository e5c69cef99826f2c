"""Markers for the molecule scenarios that pytest-ansible's `molecule_scenario` fixture parametrizes.

pytest-ansible turns every git-tracked `**/molecule/*/molecule.yml` into one parameter of the fixture; a
scenario gets the markers of what it needs (`libvirt`; `podman` for the fleet and `default`, one podman
container), and `slow`, so `pytest -m "not podman"` works on them as on every other test.
"""
from __future__ import annotations

import pytest

SCENARIO_MARKERS = {"libvirt": (pytest.mark.libvirt, pytest.mark.slow), "fleet": (pytest.mark.podman, pytest.mark.slow),
                    "default": (pytest.mark.podman, pytest.mark.slow)}


def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        scenario = callspec.params.get("molecule_scenario") if callspec else None
        if scenario is not None and scenario.name in SCENARIO_MARKERS:
            for marker in SCENARIO_MARKERS[scenario.name]:
                item.add_marker(marker)
