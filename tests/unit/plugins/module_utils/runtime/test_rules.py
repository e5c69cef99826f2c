"""Config validation, glob matching and rule selection."""
from __future__ import annotations

import fnmatch
import itertools
import json
import random

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import events, rules
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import ConfigError, glob_match, normalize_config

GLOBS = ["*", "win*", "*10", "w?n10", "db-[0-9]*", "[!a-c]*", "[a-]x", "a*b*c", "[]x]", "[!]]*", "*[", "a[b",
         "**", "?", "", "x*y", "[z-a]", "caf\u00e9*", "db-[0-9][0-9]"]
TEXTS = ["", "win10", "w1n10", "db-1", "db-12", "db-x", "a", "ab", "abc", "aXbYc", "]", "x", "xy", "-x", "ax",
         "[", "a[b", "caf\u00e9-1", "z", "*", "?"]


@pytest.mark.parametrize("pattern,text", list(itertools.product(GLOBS, TEXTS)))
def test_glob_match_agrees_with_fnmatchcase(pattern, text):
    assert glob_match(pattern, text) == fnmatch.fnmatchcase(text, pattern)


def test_glob_match_agrees_with_fnmatchcase_on_random_input():
    rng = random.Random(1234)
    alphabet = "ab*?[]!-"
    for _case in range(5000):
        pattern = "".join(rng.choice(alphabet) for _char in range(rng.randint(0, 7)))
        text = "".join(rng.choice("ab-]![") for _char in range(rng.randint(0, 6)))
        assert glob_match(pattern, text) == fnmatch.fnmatchcase(text, pattern), (pattern, text)


def cfg(*rule_list, **top):
    return dict({"version": 1, "rules": list(rule_list)}, **top)


def test_defaults_are_filled_in():
    config = normalize_config(cfg({"name": "a", "script": "scripts/a"}))
    r = config["rules"][0]
    assert (r["driver"], r["objects"], r["operations"], r["timeout"], r["on_failure"], r["order"]) == (
        "qemu", ["*"], ["*"], 30, "fail", 50)
    assert config["log"]["file"] == "/var/log/libvirt/virthooks.jsonl"


@pytest.mark.parametrize("rule,needle", [
    ({"name": "a", "script": "s", "driver": "kvm"}, "unknown driver 'kvm' (valid: daemon, qemu"),
    ({"name": "a", "script": "s", "operations": ["boot"]}, "unknown operation 'boot' for driver 'qemu' (valid: prepare"),
    ({"name": "a", "script": "s", "suboperations": ["middle"]}, "unknown sub-operation 'middle'"),
    ({"name": "a/b", "script": "s"}, "'name' may only contain"),
    ({"name": "..", "script": "s"}, "'name' must not start with '.'"),
    ({"name": "a", "script": ""}, "'script' must be a path"),
    ({"name": "a", "script": "s", "timeout": 0}, "'timeout' must be a number between"),
    ({"name": "a", "script": "s", "timeout": "10"}, "'timeout' must be a number"),
    ({"name": "a", "script": "s", "on_failure": "panic"}, "'on_failure' must be one of fail, ignore"),
    ({"name": "a", "script": "s", "objects": []}, "'objects' must be a non-empty list"),
    ({"name": "a", "script": "s", "colour": "red"}, "unknown field 'colour'"),
    ({"name": "a", "script": "s", "daemons": ["virtqemud"]}, "'daemons' only applies to the daemon driver"),
    ({"name": "a", "script": "s", "driver": "daemon", "xpath": "/x"}, "daemon driver does not get"),
])
def test_invalid_rules_are_named_in_the_error(rule, needle):
    with pytest.raises(ConfigError) as err:
        normalize_config(cfg(rule))
    assert needle in str(err.value)
    assert "rule %r (rules[0])" % rule["name"] in str(err.value) or "rules[0]" in str(err.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        normalize_config(cfg({"name": "a", "script": "s", "timeout": -1}, {"name": "a", "script": "s", "driver": "x"}))
    text = str(err.value)
    assert "'timeout'" in text and "unknown driver 'x'" in text and "duplicate name, also rules[0]" in text


def test_unknown_operations_pass_when_not_strict():
    config = normalize_config(cfg({"name": "a", "script": "s", "operations": ["teleport"]}), strict=False)
    assert config["rules"][0]["operations"] == ["teleport"]


def test_unsupported_version_is_refused():
    with pytest.raises(ConfigError, match="unsupported config version 2"):
        normalize_config({"version": 2})


def test_old_network_operation_names_are_canonicalised():
    config = normalize_config(cfg({"name": "a", "script": "s", "driver": "network", "operations": ["plugged"]}))
    assert config["rules"][0]["operations"] == ["port-created"]


def test_load_config_names_the_file_on_bad_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"version": 1,')
    with pytest.raises(ConfigError, match=str(path)):
        rules.load_config(str(path))


def test_load_config_reads_what_install_writes(tmp_path):
    from ansible_collections.virthooks.libvirt.plugins.module_utils.install import config_text
    path = tmp_path / "config.json"
    path.write_text(config_text([{"name": "a", "script": "scripts/a", "objects": ["w*"]}]))
    assert rules.load_config(str(path))["rules"][0]["objects"] == ["w*"]
    assert json.loads(path.read_text())["version"] == 1


@pytest.mark.parametrize("name,problem", [("win10", ""), ("..", "'.' or '..'"), ("a/b", "'/'"),
                                          ("a\nb", "newline"), ("x" * 256, "longer than 255"),
                                          ("\udcff", "not valid UTF-8"), ("", "empty")])
def test_unsafe_path_components(name, problem):
    got = rules.unsafe_path_component(name)
    assert (problem in got) if problem else got == ""


def test_event_model_covers_every_driver_and_knows_xml_out_events():
    assert set(events.EVENTS) == set(events.DRIVERS)
    xml_out = {(d, op) for d in events.EVENTS for op in events.EVENTS[d] if events.reads_stdout(d, op)}
    assert xml_out == {("qemu", "migrate"), ("qemu", "restore"), ("libxl", "migrate")}
    assert not events.is_abortable("qemu", "release") and events.is_abortable("qemu", "prepare")
    assert events.is_abortable("network", "plugged") and not events.is_abortable("network", "unplugged")
    assert not any(events.is_abortable("daemon", op) for op in events.EVENTS["daemon"])
    assert events.is_abortable("qemu", "a-future-operation")
    assert events.owning_daemons("qemu", modular=True) == ("virtqemud",)
    assert events.owning_daemons("network", modular=False) == ("libvirtd",)
