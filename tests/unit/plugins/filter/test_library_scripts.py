"""The library_scripts filter: every block's parameters validated on the controller, expanded into scripts."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virthooks.libvirt.plugins.filter.library_scripts import library_scripts
from ansible_collections.virthooks.libvirt.plugins.filter.script_plan import script_plan

PF = {"guests": {"web[1]": {"ip": "10.0.0.5", "forwards": [{"host_port": 80, "guest_port": 8080}]}}}


def expand(library):
    return library_scripts(library, "/usr/bin/python3")


def test_each_block_becomes_lib_block_step_scripts_that_script_plan_accepts():
    out = expand({"port_forward": PF, "hugepages": None, "disk_snapshot": {"keep": 2}, "cpu_isolation": {},
                  "vfio_bind": {}, "notify": {"url": "https://h.example/x"}})
    names = [e["name"] for e in out]
    assert names == ["lib-cpu_isolation-isolate", "lib-cpu_isolation-restore", "lib-disk_snapshot-snapshot",
                     "lib-hugepages-reserve", "lib-hugepages-release", "lib-notify-post", "lib-port_forward-add",
                     "lib-port_forward-remove", "lib-port_forward-readd", "lib-vfio_bind-bind", "lib-vfio_bind-unbind"]
    plan = script_plan({"libvirt_hooks_library": out})
    assert plan["drivers"] == ["qemu"] and len(plan["rules"]) == 11
    for entry in out:
        assert entry["content"].startswith("#!/usr/bin/python3 -IS\n")
        compile(entry["content"], entry["name"], "exec")
        assert set(entry["secrets"]) == {"PARAMS"}


def test_no_parameter_is_in_the_script_text_only_in_its_params_secret():
    url = "https://bot:s3cr3tpw@hooks.example.org/x?token=t0k3n"
    (entry,) = expand({"notify": {"url": url, "headers": {"Authorization": "Bearer b34r3r"}}})
    for secret in ("s3cr3tpw", "t0k3n", "b34r3r", "hooks.example.org"):
        assert secret not in entry["content"]
    params = json.loads(entry["secrets"]["PARAMS"])
    assert params["url"] == url and params["headers"] == {"Authorization": "Bearer b34r3r"}
    plan = script_plan({"libvirt_hooks_library": [entry]})
    assert plan["scripts"][0]["secrets"] == entry["secrets"]


def test_port_forward_rules_match_exactly_its_guests_and_reconnect_never_kills_a_guest():
    out = {e["name"]: e for e in expand({"port_forward": PF})}
    assert out["lib-port_forward-add"]["objects"] == ["web[[]1]"]
    assert out["lib-port_forward-add"]["operations"] == ["started"]
    assert out["lib-port_forward-remove"]["operations"] == ["stopped"]
    assert out["lib-port_forward-readd"]["on_failure"] == "ignore"


def test_notify_defaults_and_retry_budget_in_the_timeout():
    (entry,) = expand({"notify": {"url": "http://h/x", "timeout": 2, "retries": 3}})
    assert entry["operations"] == ["started", "stopped"] and entry["on_failure"] == "ignore"
    assert entry["timeout"] == 2 * 4 + (1 + 2 + 4) + 5


def test_absent_block_removes_its_scripts():
    assert expand({"hugepages": {"state": "absent"}}) == [
        {"name": "lib-hugepages-reserve", "state": "absent"}, {"name": "lib-hugepages-release", "state": "absent"}]


@pytest.mark.parametrize("library,needle", [
    ({"firewall": {}}, "libvirt_hooks_library.firewall: unknown building block"),
    ({"hugepages": {"size": 2}}, "libvirt_hooks_library.hugepages: unknown parameter(s) size"),
    ({"port_forward": {}}, "port_forward.guests: must be a non-empty mapping"),
    ({"port_forward": {"guests": {"w": {"ip": "10.0.0.300", "forwards": [{"host_port": 1, "guest_port": 1}]}}}},
     "port_forward.guests.w.ip: must be the guest's IPv4 or IPv6 address"),
    ({"port_forward": {"guests": {"w": {"ip": "10.0.0.3", "forwards": [{"host_port": 0, "guest_port": 1}]}}}},
     "port_forward.guests.w.forwards[0].host_port: must be a port number 1-65535"),
    ({"port_forward": {"guests": {"w": {"ip": "10.0.0.3", "forwards": [{"host_port": 5, "guest_port": 1, "proto": "sctp"}]}}}},
     "forwards[0].proto: must be tcp or udp"),
    ({"port_forward": {"guests": {"a": {"ip": "10.0.0.3", "forwards": [{"host_port": 5, "guest_port": 1}]},
                                  "b": {"ip": "10.0.0.4", "forwards": [{"host_port": 5, "guest_port": 2}]}}}},
     "host port tcp/5 is already forwarded by libvirt_hooks_library.port_forward.guests.a.forwards[0]"),
    ({"disk_snapshot": {"keep": 0}}, "disk_snapshot.keep: must be an integer from 1 to 1000"),
    ({"disk_snapshot": {"guests": "vm1"}}, "disk_snapshot.guests: must be a non-empty list"),
    ({"cpu_isolation": {"mode": "v3"}}, "cpu_isolation.mode: must be auto, systemd"),
    ({"cpu_isolation": {"cgroups": ["machine.slice"]}}, "give top-level group names other than libvirt's machine*"),
    ({"notify": {}}, "notify.url: must be an http:// or https:// URL"),
    ({"notify": {"url": "ftp://u:pw@h/"}}, "notify.url: must be an http:// or https:// URL"),
    ({"notify": {"url": "http://h/", "on_failure": "retry"}}, "notify.on_failure: must be fail or ignore"),
    ({"vfio_bind": []}, "vfio_bind: must be a mapping of parameters"),
    ({"port_forward": {"guests": {"w": {"ip": "fe80::10%virbr0", "forwards": [{"host_port": 5, "guest_port": 1}]}}}},
     "port_forward.guests.w.ip: must be an address without an IPv6 zone id (%virbr0)"),
    ({"notify": {"url": "https://u:pw@h.example:70000/x"}}, "notify.url: has a port that is not a number from 1 to 65535"),
    ({"notify": {"url": "https://u:pw@h.example:0/x"}}, "notify.url: has a port that is not a number from 1 to 65535"),
    ({"notify": {"url": "https://u:pw@[2001:db8::10/x"}}, "notify.url: is not a valid URL"),
    ({"notify": {"url": "https://u:pw@h.example/x\n"}}, "notify.url: must be an http:// or https:// URL"),
    ({"notify": {"url": "http://h/", "headers": {"Authorization": "Bearer pw@\n"}}},
     "notify.headers.Authorization: its value holds a CR, LF or other control character"),
    ({"notify": {"url": "http://h/", "headers": {"X-Token": "pw@\rX-Injected: 1"}}},
     "notify.headers.X-Token: its value holds a CR, LF"),
    ({"notify": {"url": "http://h/", "headers": {"X-Bad\nName": "pw@"}}},
     "notify.headers: header name 'X-Bad\\nName' is not a valid HTTP header name"),
])
def test_bad_parameters_name_the_block_and_parameter(library, needle):
    with pytest.raises(AnsibleFilterError) as err:
        expand(library)
    assert needle in str(err.value) and "no host was changed" in str(err.value)
    assert "pw@" not in str(err.value)


def test_an_ipv6_url_without_a_port_is_accepted():
    (entry,) = expand({"notify": {"url": "https://[2001:db8::10]/x"}})
    assert json.loads(entry["secrets"]["PARAMS"])["url"] == "https://[2001:db8::10]/x"


def test_a_user_script_named_like_a_library_step_is_a_duplicate():
    with pytest.raises(AnsibleFilterError, match="the name 'lib-hugepages-reserve' is already used"):
        script_plan({"libvirt_hooks_library": expand({"hugepages": {}}),
                     "libvirt_hooks_scripts": [{"name": "lib-hugepages-reserve", "content": "#!/bin/sh\n"}]})


def pf(**guest):
    return {"port_forward": {"guests": {"w": dict({"ip": "10.0.0.3", "forwards": [{"host_port": 5, "guest_port": 1}]},
                                                  **guest)}}}


def test_port_forwards_options_are_off_by_default_and_pass_through_checked():
    (entry, *_rest) = expand(pf())
    assert json.loads(entry["secrets"]["PARAMS"])["guests"]["w"] == {
        "ip": "10.0.0.3", "forwards": [{"host_port": 5, "guest_port": 1, "proto": "tcp"}]}
    (entry, *_rest) = expand(pf(external=True, sources=["10.1.0.0/16", "192.0.2.9"], host_address="198.51.100.7",
                                interface="eth*", forwards=[{"host_port": "6000-6010"},
                                                            {"host_port": 7000, "guest_port": 22, "proto": "udp"}]))
    assert json.loads(entry["secrets"]["PARAMS"])["guests"]["w"] == {
        "ip": "10.0.0.3", "external": True, "sources": ["10.1.0.0/16", "192.0.2.9/32"], "host_address": "198.51.100.7",
        "interface": "eth*", "forwards": [{"host_port": "6000-6010", "guest_port": "6000-6010", "proto": "tcp"},
                                          {"host_port": 7000, "guest_port": 22, "proto": "udp"}]}


def test_the_same_host_port_on_two_host_addresses_is_two_forwards():
    guests = {"a": {"ip": "10.0.0.3", "host_address": "198.51.100.7", "forwards": [{"host_port": 80, "guest_port": 80}]},
              "b": {"ip": "10.0.0.4", "host_address": "198.51.100.8", "forwards": [{"host_port": 80, "guest_port": 80}]}}
    assert len(expand({"port_forward": {"guests": guests}})) == 3


@pytest.mark.parametrize("library,needle", [
    (pf(external="yes"), "port_forward.guests.w.external: must be true or false"),
    (pf(sources=["fd00::/64"]), "port_forward.guests.w.sources[0]: must be IPv4 like the guest's ip"),
    (pf(sources=["10.0.0.300"]), "port_forward.guests.w.sources[0]: must be an IP address or network"),
    (pf(sources=[]), "port_forward.guests.w.sources: must be a non-empty list"),
    (pf(host_address="fd00::1"), "port_forward.guests.w.host_address: must be an IPv4 address like the guest's ip"),
    (pf(host_address="eth0"), "port_forward.guests.w.host_address: must be one of the host's IPv4 or IPv6 addresses"),
    (pf(interface="eth0; drop"), "port_forward.guests.w.interface: must be a network interface name"),
    (pf(interface="a-very-long-interface"), "port_forward.guests.w.interface: must be a network interface name"),
    (pf(forwards=[{"host_port": "6000-6010", "guest_port": "7000-7010"}]),
     "forwards[0]: a range of host ports forwards to the same ports of the guest: give guest_port 6000-6010"),
    (pf(forwards=[{"host_port": "6010-6000"}]), "forwards[0].host_port: must be a port number 1-65535 or a range"),
    (pf(forwards=[{"host_port": 8080}]), "forwards[0].guest_port: must be a port number 1-65535 or a range"),
    ({"port_forward": {"guests": {"a": {"ip": "10.0.0.3", "forwards": [{"host_port": "5-9"}]},
                                  "b": {"ip": "10.0.0.4", "forwards": [{"host_port": 7, "guest_port": 2}]}}}},
     "port_forward.guests.b.forwards[0]: host port tcp/7 is already forwarded by "
     "libvirt_hooks_library.port_forward.guests.a.forwards[0]"),
])
def test_bad_port_forward_options_name_the_guest_and_option(library, needle):
    with pytest.raises(AnsibleFilterError) as err:
        expand(library)
    assert needle in str(err.value), str(err.value)


def library_spec() -> dict:
    import yaml
    from tests.support.paths import REPO
    specs = yaml.safe_load((REPO / "roles" / "libvirt_hooks" / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]["libvirt_hooks_library"]["options"]


def test_the_role_declares_every_blocks_parameters_as_the_filter_takes_them():
    from ansible_collections.virthooks.libvirt.plugins.filter.library_scripts import COMMON_KEYS, KEYS
    spec = library_spec()
    assert set(spec) == set(KEYS)
    for block, keys in KEYS.items():
        assert set(spec[block]["options"]) == set(keys) | set(COMMON_KEYS), block


@pytest.mark.parametrize("block,params", [("disk_snapshot", {}), ("cpu_isolation", {}), ("hugepages", {}),
                                          ("vfio_bind", {}), ("notify", {"url": "http://h/"})])
def test_the_declared_defaults_are_the_filters(block, params):
    options = library_spec()[block]["options"]
    entries = expand({block: params})
    rule_keys = ("on_failure", "driver", "operations", "suboperations") if block == "notify" else ()
    used = dict(json.loads(entries[0]["secrets"]["PARAMS"]), **{k: entries[0][k] for k in rule_keys})
    used.setdefault("guests", entries[0]["objects"])
    for key, option in options.items():
        if "default" in option and key != "state":
            assert used[key] == option["default"], (block, key)


def test_without_a_python_each_step_is_a_launcher_that_the_host_writes():
    """The role's expansion (no module call before hook_runtime tells the host's Python): {block, step}."""
    out = library_scripts({"hugepages": None}, "")
    assert [(e["name"], e.get("launcher"), "content" in e) for e in out] == [
        ("lib-hugepages-reserve", {"block": "hugepages", "step": "reserve"}, False),
        ("lib-hugepages-release", {"block": "hugepages", "step": "release"}, False)]
    plan = script_plan({"libvirt_hooks_library": out})
    assert [s["launcher"] for s in plan["scripts"]] == [e["launcher"] for e in out]
    assert all("content" not in s for s in plan["scripts"]) and plan["drivers"] == ["qemu"]


def test_a_relative_python_is_refused():
    with pytest.raises(AnsibleFilterError, match="absolute path"):
        library_scripts({"hugepages": None}, "python3")
