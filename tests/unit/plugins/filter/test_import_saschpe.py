"""virthooks import of saschpe/libvirt-hook-qemu's hooks.json against the library's own port_forward validator.

Here, not beside the other importer tests: the validator is controller code (a filter), which ansible-test units
does not let a module_utils test import.
"""
from __future__ import annotations

import json

from ansible_collections.virthooks.libvirt.plugins.filter.library_scripts import _Errors, _port_forward
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import importers
from tests.support.peers import HOOKS_JSON


def saschpe_dnat(domain, first_ip_only=True) -> list:
    """What saschpe's populate_chains DNATs, (proto, public port, private port), for each domain of a guest."""
    out, ips = [], []
    for dom in domain if isinstance(domain, list) else [domain]:
        if first_ip_only and ips and dom["private_ip"] != ips[0]:
            continue
        ips.append(dom["private_ip"])
        for proto, ports_list in dom.get("port_map", {}).items():
            for ports in ports_list:
                public, private = ports if isinstance(ports, list) else [ports, ports]
                out.append((proto, public, private))
        for rng in dom.get("port_range", []):
            out.extend((rng["protocol"], p, p) for p in range(rng["init_port"], rng["init_port"] + rng["ports_num"]))
    return out


def test_saschpe_port_forward(tmp_path):
    (tmp_path / "hooks.json").write_text(HOOKS_JSON)
    variables, notes, found = importers.import_host(str(tmp_path), sources=("saschpe",))
    assert found == ["saschpe"]
    config = json.loads(importers.strip_json_comments(HOOKS_JSON))
    params = variables["libvirt_hooks_library"]["port_forward"]
    errors = _Errors()
    clean, _objects = _port_forward(params, errors)
    assert errors == []                                      # the block takes them as they are
    for guest, domain in config.items():
        expected = [f for f in saschpe_dnat(domain) if f[0] in ("tcp", "udp")]
        got = [(f["proto"], f["host_port"], f["guest_port"]) for f in clean["guests"][guest]["forwards"]]
        assert got == expected, guest
    assert clean["guests"]["multi"]["ip"] == "10.0.0.2"
    joined = "\n".join(notes)
    for lost in ("'icmp'", "source_ip", "interface", "public_ip", "a second address 10.0.0.3", "unknown key 'note'",
                 "hairpin"):
        assert lost in joined, lost
