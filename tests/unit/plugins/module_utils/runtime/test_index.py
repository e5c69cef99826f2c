"""The rule index of config.json: the dispatcher reads only the rules it gives for an event, and
gets the same steps as when it reads every rule; an index that does not belong to the rules is
not used; nothing in one makes the dispatcher crash."""
from __future__ import annotations

import copy
import json
import random

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils import install
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import events, minijson, ruleindex, rules
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.ruleindex import candidates
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import (
    ConfigError, load_config, needs_daemon_name, normalize_config, steps_for_event)

GUESTS = ["win10", "win11", "db-1", "db-22", "web", "caf\u00e9", "a[b", "x*y", "-", "guest-007"]
OBJECT_PATTERNS = GUESTS + ["*", "win*", "db-[0-9]*", "?eb", "[!w]*", "*-*", "caf\u00e9", "a[b", "guest-00?", "win1[01]"]
SUBS = ["begin", "end", "-"]


def operations_of(driver: str) -> list:
    names = list(events.EVENTS.get(driver, {}))
    for old in events.OPERATION_ALIASES.get(driver, {}):
        names.append(old)
    return names


def random_rule(rng: random.Random, i: int) -> dict:
    driver = rng.choice(("qemu", "qemu", "qemu", "lxc", "network", "daemon"))
    rule = {"name": "r%03d" % i, "script": "scripts/r%03d" % i, "driver": driver}
    ops = operations_of(driver)
    if rng.random() < 0.8:
        rule["operations"] = rng.sample(ops, rng.randint(1, min(3, len(ops))))
    if rng.random() < 0.3:
        rule["operations"] = "*" if rng.random() < 0.5 else [rng.choice(ops), "*"]
    if rng.random() < 0.9:
        rule["objects"] = rng.sample(OBJECT_PATTERNS, rng.randint(1, 3))
    if rng.random() < 0.2:
        rule["suboperations"] = [rng.choice(SUBS)]
    if rng.random() < 0.1:
        rule["enabled"] = False
    if driver == "daemon" and rng.random() < 0.4:
        rule["daemons"] = [rng.choice(("libvirtd", "virt*", "virtqemud"))]
    if rng.random() < 0.3:
        rule["order"] = rng.randint(-3, 3)
    return rule


def written(raw_rules: list) -> dict:
    """config.json as the installer writes it, parsed back the way the dispatcher parses it."""
    document, _normalized = install.build_config(raw_rules, log={"file": "/tmp/x.jsonl"})
    return minijson.loads(json.dumps(document, indent=2, sort_keys=True) + "\n")


def steps_via(raw: dict, event: tuple, only) -> tuple:
    """What runs for the event, reading the rules at these positions (None: every rule)."""
    config = normalize_config(raw, strict=False, only=None if only is None else [(i, raw["rules"][i]) for i in only])
    return steps_of(config, event)


def steps_of(config: dict, event: tuple) -> tuple:
    driver, obj, op, sub = event
    steps, notes = steps_for_event(config, "/h", "/h/virthooks", driver, obj, op, sub, "-", "libvirtd")
    return [(s.name, s.path, s.order, s.timeout) for s in steps], notes, needs_daemon_name(config, driver)


def random_event(rng: random.Random) -> tuple:
    driver = rng.choice(("qemu", "qemu", "lxc", "network", "daemon", "libxl"))
    ops = operations_of(driver) + ["no-such-op"]
    return driver, rng.choice(GUESTS + ["nobody"]), rng.choice(ops), rng.choice(SUBS)


@pytest.mark.parametrize("seed", range(12))
def test_indexed_steps_equal_full_steps_for_random_rule_sets(seed):
    rng = random.Random(seed)
    raw = written([random_rule(rng, i) for i in range(rng.choice((3, 5, 40, 300)))])
    assert raw["index"]["count"] == len(raw["rules"])
    matched = 0
    for _round in range(300):
        event = random_event(rng)
        only = candidates(raw, *event[:3])
        assert only is not None                                 # the index belongs to these rules
        assert only == sorted(set(only))
        indexed = steps_via(raw, event, only)
        assert indexed == steps_via(raw, event, None), event
        matched += bool(indexed[0])
    assert matched > 0


def test_the_index_narrows_per_guest_rules_to_the_guest():
    raw = written([{"name": "g%03d" % i, "script": "s", "objects": ["guest-%03d" % i], "operations": ["prepare"]}
                   for i in range(500)] + [{"name": "all", "script": "s", "objects": ["*"]}])
    assert candidates(raw, "qemu", "guest-042", "prepare") == [42, 500]
    assert candidates(raw, "qemu", "nobody", "prepare") == [500]
    assert candidates(raw, "lxc", "guest-042", "prepare") == []


def test_the_index_narrows_glob_rules_by_their_literal_prefix():
    """500 rules on vm-<n>-* (three operations each): a guest's event reads its own rule, not 500."""
    raw = written([{"name": "g%03d" % i, "script": "s", "objects": ["vm-%d-*" % i],
                    "operations": ["prepare", "start", "started"]} for i in range(500)]
                  + [{"name": "any", "script": "s", "objects": ["*web"], "operations": ["prepare"]},
                     {"name": "mixed", "script": "s", "objects": ["db", "vm-4?-x"]}])
    assert sorted(raw["index"]["drivers"]["qemu"]["prefixes"]) == ["4", "5", "6", "7"]
    # A superset of what matches, whatever the operation: the rules read are then matched as usual.
    assert candidates(raw, "qemu", "vm-42-web", "prepare") == [42, 500, 501]
    assert candidates(raw, "qemu", "vm-42-web", "release") == [42, 501]
    assert candidates(raw, "qemu", "vm-4", "prepare") == [500, 501]      # shorter than every vm-<n>- prefix
    assert candidates(raw, "qemu", "db", "stopped") == [501]
    assert candidates(raw, "qemu", "web", "stopped") == []
    event = ("qemu", "vm-42-web", "prepare", "begin")
    indexed = steps_via(raw, event, candidates(raw, *event[:3]))
    assert indexed == steps_via(raw, event, None)
    assert sorted(step[0] for step in indexed[0]) == ["any", "g042"]


def test_daemon_rules_are_all_read_for_daemon_events():
    """Whether the daemon's name is looked up (and logged) depends on every daemon rule."""
    raw = written([{"name": "d", "script": "s", "driver": "daemon", "operations": ["shutdown"], "objects": ["x"],
                    "daemons": ["virtqemud"]}, {"name": "q", "script": "s", "objects": ["-"]}])
    event = ("daemon", "-", "start", "-")
    only = candidates(raw, *event[:3])
    assert only == [0]
    assert steps_via(raw, event, only) == steps_via(raw, event, None) == ([], [], True)


def write_config(path, raw_rules: list) -> str:
    """config.json as the installer writes it (install.plan: json.dumps(indent=2, sort_keys=True))."""
    document, _normalized = install.build_config(raw_rules, log={"file": "/tmp/x.jsonl"})
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return str(path)


@pytest.mark.parametrize("seed", range(6))
def test_the_text_path_reads_the_same_rules_as_the_full_path(tmp_path, seed):
    rng = random.Random(100 + seed)
    path = write_config(tmp_path / "config.json", [random_rule(rng, i) for i in range(rng.choice((3, 40, 300)))])
    data = (tmp_path / "config.json").read_bytes()
    small = len(data) < rules.INDEX_MIN_BYTES
    full = load_config(path)
    for _round in range(200):
        event = random_event(rng)
        raw, picked = ruleindex.read_indexed(data, event[:3])
        assert raw is not None and "rules" not in raw            # the rules array was not parsed
        assert [i for i, _r in picked] == candidates(minijson.loads(data), *event[:3])
        config = load_config(path, event=event[:3])
        assert small or len(config["rules"]) == len(picked)       # load_config took the text path
        assert steps_of(config, event) == steps_of(full, event), event


def test_the_deployed_config_takes_the_text_path(sandbox):
    """If the installer writes config.json differently, the index text no longer matches: caught here."""
    sandbox.deploy([rule("a", objects=["win10"]), rule("b", objects=["w*"])])
    raw, picked = ruleindex.read_indexed((sandbox.own / "config.json").read_bytes(), ("qemu", "win10", "start"))
    assert raw is not None and [(i, r["name"]) for i, r in picked] == [(0, "a"), (1, "b")]


def test_an_edited_or_damaged_file_is_read_whole_or_fails_as_before(tmp_path):
    rng = random.Random(5)
    rule_list = [random_rule(rng, i) for i in range(40)]
    path = write_config(tmp_path / "config.json", rule_list)
    good = (tmp_path / "config.json").read_text()
    edited = good.replace('"r001"', '"r001x"', 1)
    assert ruleindex.read_indexed(edited.encode(), ("qemu", "win10", "start")) == (None, None)
    same_length = good.replace('"r001"', '"r00x"', 1)          # every offset still right, the CRC is not
    assert len(same_length) == len(good) != len(edited)
    assert ruleindex.read_indexed(same_length.encode(), ("qemu", "win10", "start")) == (None, None)
    for _round in range(400):
        text = list(good)
        for _edit in range(rng.randint(1, 3)):
            at = rng.randrange(len(text))
            text[at:at + rng.randint(0, 3)] = rng.choice(["", " ", "1", "]", "}", ",", '"', "\u00e9", "x", "[0]"])
        damaged = "".join(text)
        (tmp_path / "config.json").write_text(damaged)
        event = random_event(rng)
        try:
            expected = steps_of(normalize_config(minijson.loads(damaged), strict=False), event)
        except (minijson.JSONError, ConfigError, TypeError, AttributeError, KeyError):
            expected = None
        try:
            got = steps_of(load_config(path, event=event[:3]), event)
        except ConfigError:
            got = None
        if expected is not None:
            assert got == expected, damaged
        # (a damaged file may still dispatch where the full read fails: only in rules the event does
        # not read, and only when the index text still matches, i.e. not in the rules array)


def test_load_config_with_an_event_reads_only_the_candidates(tmp_path):
    raw_rules = [{"name": "g%d" % i, "script": "s", "objects": ["guest-%d" % i]} for i in range(160)]
    document, _normalized = install.build_config(raw_rules)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    assert path.stat().st_size >= rules.INDEX_MIN_BYTES
    assert [r["name"] for r in load_config(str(path), event=("qemu", "guest-7", "start"))["rules"]] == ["g7"]
    assert len(load_config(str(path))["rules"]) == 160                              # the CLI's view
    assert len(load_config(str(path), event=("qemu", "guest-7", "start"), strict=True)["rules"]) == 1


def test_rules_edited_by_hand_make_the_index_unused():
    raw = written([{"name": "a", "script": "s", "objects": ["win10"]}, {"name": "b", "script": "s", "objects": ["db"]}])
    assert candidates(raw, "qemu", "web", "start") == []
    edits = [
        lambda r: r["rules"][1]["objects"].append("web"),
        lambda r: r["rules"][1].update(objects=["w*"]),
        lambda r: r["rules"].append({"name": "c", "script": "s", "objects": ["web"]}),
        lambda r: r["rules"].reverse(),
        lambda r: r["rules"][0].update(driver="lxc"),
        lambda r: r["rules"][0].update(enabled=False),
        lambda r: r["rules"].pop(),
    ]
    for edit in edits:
        changed = copy.deepcopy(raw)
        edit(changed)
        assert candidates(changed, "qemu", "web", "start") is None, changed["rules"]


def test_a_config_without_an_index_is_read_whole():
    raw = written([{"name": "a", "script": "s"}])
    del raw["index"]
    assert candidates(raw, "qemu", "win10", "start") is None
    assert steps_via(raw, ("qemu", "win10", "start", "begin"), None)[0][0][0] == "a"


BAD_INDEXES = [None, [], "x", 1, {}, {"version": 2}, {"version": 1, "count": "1"}, {"version": 1, "count": 1},
               {"version": 1, "count": 1, "drivers": []}, {"version": 1, "count": 1, "drivers": {"qemu": []}},
               {"version": 1, "count": 1, "drivers": {"qemu": {"names": [], "operations": {}}}},
               {"version": 1, "count": 1, "drivers": {"qemu": {"names": {"win10": [5]}, "operations": {}}}},
               {"version": 1, "count": 1, "drivers": {"qemu": {"names": {"win10": [-1]}, "operations": {}}}},
               {"version": 1, "count": 1, "drivers": {"qemu": {"names": {"win10": [True]}, "operations": {}}}},
               {"version": 1, "count": 1, "drivers": {"qemu": {"names": {"win10": [0.0]}, "operations": {}}}},
               {"version": 1, "count": 1, "drivers": {"qemu": {"names": {"win10": "0"}, "operations": {}}}},
               {"version": 1, "count": 1, "drivers": {"qemu": {"names": {"win10": [[0]]}, "operations": {}}}},
               {"version": 1, "count": 1, "drivers": {"qemu": {"names": {}, "operations": {"*": [0, "a"]}}}},
               {"version": 1, "count": 1, "checksum": "x",
                "drivers": {"qemu": {"names": {"win10": [0]}, "operations": {}}}}]


@pytest.mark.parametrize("index", BAD_INDEXES)
def test_a_malformed_index_is_not_used_and_never_crashes(index):
    raw = written([{"name": "a", "script": "s", "objects": ["win10"]}])
    raw["index"] = index
    assert candidates(raw, "qemu", "win10", "start") is None
    if isinstance(index, dict) or index is None:
        assert [r["name"] for r in normalize_config(raw, strict=False)["rules"]] == ["a"]
    else:
        with pytest.raises(ConfigError, match="'index' must be an object"):
            normalize_config(raw, strict=False)


def test_random_damage_to_the_index_never_crashes():
    rng = random.Random(7)
    base = written([random_rule(rng, i) for i in range(30)])
    junk = [None, True, -1, 10 ** 30, 1.5, "", "*", [], {}, [0, 0], ["x"], {"*": [0]}, [[1]], 2, 29, 30]
    for _round in range(2000):
        raw = copy.deepcopy(base)
        parent, key = raw, "index"
        while isinstance(parent[key], (dict, list)) and parent[key] and rng.random() < 0.8:
            node = parent[key]
            parent, key = node, (rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node)))
        if isinstance(parent[key], dict) and rng.random() < 0.3:
            parent[key][rng.choice(["*", "win10", "qemu", "names", "start"])] = rng.choice(junk)
        else:
            parent[key] = rng.choice(junk)
        event = random_event(rng)
        only = candidates(raw, *event[:3])      # never raises
        if only is not None:                    # still plausible: any rule it leaves out must not match
            assert all(isinstance(p, int) and 0 <= p < len(raw["rules"]) for p in only)


def test_an_invalid_candidate_is_still_a_config_error():
    """Rules are validated as before, only fewer of them: a bad one the event reads fails it."""
    raw = written([{"name": "a", "script": "s", "objects": ["win10"]}])
    raw["rules"][0]["timeout"] = "soon"
    raw["index"]["checksum"] = ruleindex.rules_checksum(raw["rules"], raw["index"]["drivers"])   # forged to match
    with pytest.raises(ConfigError, match="'timeout' must be a number"):
        normalize_config(raw, strict=False, only=[(0, raw["rules"][0])])


def test_checksum_survives_the_installers_serialization_of_odd_values():
    raw_rules = [{"name": "u", "script": "scripts/\u00e9t\u00e9 \"q\" \\ \n", "objects": ["caf\u00e9", "\U0001f600*"],
                  "timeout": 2.5, "order": -7, "namespaces": {"z": "urn:z", "a": "urn:a"},
                  "xpath": "/domain[@x='\u00e9']", "operations": ["start", "prepare"]}]
    raw = written(raw_rules)
    assert candidates(raw, "qemu", "caf\u00e9", "start") == [0]
    assert candidates(raw, "qemu", "\U0001f600-1", "prepare") == [0]


# --- through the real entry point ------------------------------------------------------------

def rule(name, **kw):
    return dict({"name": name, "script": "scripts/" + name}, **kw)


def test_many_per_guest_rules_dispatch_through_the_entry_point(sandbox):
    for name in ("g007", "g150", "all-win", "other"):
        sandbox.recorder(name)
    rule_list = [rule("g%03d" % i, objects=["guest-%03d" % i], operations=["prepare", "release"])
                 for i in range(200)]
    rule_list += [rule("all-win", objects=["win*", "guest-15?"], operations=["prepare"]),
                  rule("other", objects=["guest-007"], operations=["start"])]
    sandbox.deploy(rule_list)
    config = json.loads((sandbox.own / "config.json").read_text())
    assert candidates(config, "qemu", "guest-150", "prepare") == [150, 200]     # the deployed index is usable
    for guest in ("guest-007", "guest-150", "win10", "nobody"):
        fired = sandbox.fire("qemu", guest, "prepare", "begin")
        assert fired.rc == 0, fired
    assert sandbox.order() == ["g007 guest-007 prepare begin -", "all-win guest-150 prepare begin -",
                               "g150 guest-150 prepare begin -", "all-win win10 prepare begin -"]
    assert [r["result"] for r in sandbox.records()] == ["ok", "ok", "ok"]      # 'nobody' stops in sh


def test_a_config_edited_by_hand_is_read_whole(sandbox):
    sandbox.recorder("a")
    sandbox.recorder("b")
    padding = [rule("pad%02d" % i, objects=["guest-%02d" % i], script="scripts/a") for i in range(120)]
    sandbox.deploy([rule("a", objects=["win10"]), rule("b", objects=["db"])] + padding)
    path = sandbox.own / "config.json"
    assert path.stat().st_size >= rules.INDEX_MIN_BYTES          # the dispatcher would use the index
    config = json.loads(path.read_text())
    config["rules"][1]["objects"] = ["db", "win10"]            # the index still says b is for db only
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    assert sandbox.fire("qemu", "win10", "prepare", "begin").rc == 0
    assert sandbox.order() == ["a win10 prepare begin -", "b win10 prepare begin -"]
    config["rules"][1]["timeout"] = "soon"                      # a bad rule that win10 does not read
    config["rules"][1]["objects"] = ["db"]
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    fired = sandbox.fire("qemu", "win10", "prepare", "begin")
    assert fired.rc == 1 and "cannot load the configuration" in fired.stderr and "'timeout'" in fired.stderr, fired
