"""Markers for the molecule scenarios that pytest-ansible's `molecule_scenario` fixture parametrizes.

pytest-ansible turns every git-tracked `**/molecule/*/molecule.yml` into one parameter of the fixture; a
scenario named like one of our markers (`libvirt`, `fleet`) gets that marker, so `pytest -m "not fleet"`
works on them as on every other test. `default` (one podman container) counts as a fleet test.
"""
from __future__ import annotations

import pytest

SCENARIO_MARKERS = {"libvirt": pytest.mark.libvirt, "fleet": pytest.mark.fleet, "default": pytest.mark.fleet}


def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        scenario = callspec.params.get("molecule_scenario") if callspec else None
        if scenario is not None and scenario.name in SCENARIO_MARKERS:
            item.add_marker(SCENARIO_MARKERS[scenario.name])
