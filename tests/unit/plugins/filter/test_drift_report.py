"""The drift_report filter on hooks_state results read by drift.host_state from real sandbox hosts."""
from __future__ import annotations

import json

from ansible_collections.virthooks.libvirt.plugins.filter.drift_report import drift_report
from ansible_collections.virthooks.libvirt.plugins.module_utils import drift
from tests.unit.plugins.module_utils.conftest import SYSTEM_PYTHON, Sandbox

HOSTS = ("host-a", "host-b", "host-c")
NET = json.dumps({"name": "net-up", "driver": "network", "script": "net.sh"})


def peers(tmp_path) -> dict:
    """{host: Sandbox} deployed the same way."""
    boxes = {}
    for host in HOSTS:
        box = Sandbox(tmp_path / host)
        box.script("keep", "exit 0\n")
        box.deploy([{"name": "keep", "script": "scripts/keep", "operations": ["prepare"]}])
        boxes[host] = box
    return boxes


def report(boxes: dict, **options) -> dict:
    hostvars = {}
    for host, box in boxes.items():
        state = drift.host_state(str(box.hooks), SYSTEM_PYTHON)
        state.pop("_config", None)          # as the hooks_state module returns it
        hostvars[host] = {"libvirt_hooks_state": state}
    return drift_report(hostvars, {"hypervisors": list(HOSTS)}, ["hypervisors"], read_var="", **options)


def test_an_unmanaged_drop_in_is_listed_without_failing_peers_that_otherwise_agree(tmp_path):
    boxes = peers(tmp_path)
    directory = boxes["host-b"].own / "rules.d"
    directory.mkdir()
    (directory / "50-net.json").write_text(NET)
    found = report(boxes)
    group = found["groups"][0]
    assert not found["drift"] and not group["drift"] and group["differences"] == []
    dropins = group["unmanaged_dropins"]
    assert list(dropins) == ["host-b"] and list(dropins["host-b"]) == ["rules.d/50-net.json"]
    entry = dropins["host-b"]["rules.d/50-net.json"]
    assert entry["drivers"] == ["network"] and entry["rules"] == ["net-up"] and len(entry["digest"]) == 64
    assert "unmanaged drop-in host-b: rules.d/50-net.json (network; %s)" % entry["digest"][:12] in found["table"]
    assert found["table"].splitlines()[1].split()[2] == "same"


def test_with_dropins_fail_a_drop_in_makes_its_group_drift_even_when_every_peer_holds_it(tmp_path):
    boxes = peers(tmp_path)
    assert not report(boxes, dropins_fail=True)["drift"]
    for box in boxes.values():
        (box.own / "rules.d").mkdir()
        (box.own / "rules.d" / "50-net.json").write_text(NET)
    assert not report(boxes)["drift"]
    found = report(boxes, dropins_fail=True)
    assert found["drift"] and found["groups"][0]["drift"] and found["groups"][0]["differences"] == []
    assert sorted(found["groups"][0]["unmanaged_dropins"]) == list(HOSTS)
    assert "DRIFT" in found["table"]
