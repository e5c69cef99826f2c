"""config.marshal (configcache): a call reads exactly the config it would get by parsing config.json,
never a cache that does not belong to the config.json beside it, and a damaged or foreign cache only
costs the parse it saves."""
from __future__ import annotations

import json
import marshal
import os
import random

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils import install
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import configcache
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import load_config

from .test_index import random_event, random_rule, rule, steps_of
from .test_dispatch import DOMAIN

NOBODY = 65534


def config_bytes(raw_rules: list) -> bytes:
    """config.json as the installer writes it."""
    document, _normalized = install.build_config(raw_rules, log={"file": "/tmp/x.jsonl"})
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


@pytest.mark.parametrize("seed", range(8))
def test_the_cache_gives_what_parsing_config_json_gives(tmp_path, seed):
    """For random rule sets of every size (small ones read whole, large ones through the index), and random
    events: the same config, rule for rule, as load_config parsing the file."""
    rng = random.Random(seed)
    data = config_bytes([random_rule(rng, i) for i in range(rng.choice((1, 3, 40, 70, 300)))])
    path = tmp_path / "config.json"
    path.write_bytes(data)
    cache = configcache.build(data)
    assert configcache.belongs(cache, data)
    assert configcache.load(cache, data) == load_config(str(path))
    for _round in range(200):
        event = random_event(rng)
        cached = configcache.load(cache, data, event[:3])
        parsed = load_config(str(path), event=event[:3], data=data)
        assert steps_of(cached, event) == steps_of(parsed, event), event
        assert load_config(str(path), event=event[:3], data=data, cache=cache) == cached


def test_a_large_config_unmarshals_only_the_rules_the_index_picks():
    data = config_bytes([{"name": "g%03d" % i, "script": "s", "objects": ["vm-%d-*" % i],
                          "operations": ["prepare", "start", "started"]} for i in range(500)])
    config = configcache.load(configcache.build(data), data, ("qemu", "vm-42-web", "prepare"))
    assert [r["name"] for r in config["rules"]] == ["g042"]
    assert len(configcache.load(configcache.build(data), data)["rules"]) == 500     # no event: every rule


def test_a_hand_edited_config_json_is_parsed_not_the_cache(tmp_path):
    """The cache names the size and CRC-32 of the config.json it was made from: an edit of the same length
    is caught too, and the edit is what runs."""
    data = config_bytes([rule("a", objects=["win10"])])
    cache = configcache.build(data)
    for edited in (data.replace(b'"win10"', b'"win11"'), data.replace(b'"win10"', b'"web"')):
        assert configcache.load(cache, edited) is None and not configcache.belongs(cache, edited)
        path = "/nonexistent/config.json"
        assert load_config(path, data=edited, cache=cache)["rules"][0]["objects"] == \
            [json.loads(edited)["rules"][0]["objects"][0]]


@pytest.mark.parametrize("damage", [
    lambda c: b"", lambda c: c[:len(c) // 2], lambda c: c[:-1], lambda c: b"\xff" * 64,
    lambda c: marshal.dumps([1, 2, 3]), lambda c: marshal.dumps({"format": "other"}),
    lambda c: marshal.dumps(dict(marshal.loads(c), version=99)),
    lambda c: marshal.dumps(dict(marshal.loads(c), rules=[b"\xff\xff"])),
    lambda c: marshal.dumps(dict(marshal.loads(c), rules="not a list")),
    lambda c: marshal.dumps(dict(marshal.loads(c), index={"version": 2, "count": "x"})),
], ids=["empty", "half", "one-byte-short", "garbage", "a-list", "another-format", "another-version",
        "bad-rule", "rules-not-a-list", "bad-index"])
def test_a_damaged_or_foreign_cache_is_ignored(damage):
    data = config_bytes([rule("a", objects=["win10"]), rule("b")] +
                        [rule("g%d" % i, objects=["guest-%d" % i]) for i in range(80)])
    bad = damage(configcache.build(data))
    event = ("qemu", "win10", "start", "begin")
    parsed = load_config("/nonexistent/config.json", event=event[:3], data=data)
    got = configcache.load(bad, data, event[:3])
    # Ignored, or (an index it cannot use) read whole: what runs is what parsing config.json gives.
    assert got is None or steps_of(got, event) == steps_of(parsed, event)
    assert steps_of(load_config("/nonexistent/config.json", event=event[:3], data=data, cache=bad), event) == \
        steps_of(parsed, event)
    assert not configcache.belongs(bad, data)


def test_the_cache_is_the_same_bytes_on_every_build():
    """marshal format 2 has no back-references: a re-deploy writes the same file."""
    data = config_bytes([rule("a", objects=["win10"], timeout=2.5), rule("b", env={"X": "1"})])
    assert len({configcache.build(data) for _attempt in range(5)}) == 1


# --- the deployed host ------------------------------------------------------------------------------

def current(sandbox):
    return sandbox.own / "current"


def test_a_deploy_writes_the_cache_beside_config_json_and_a_call_runs_from_it(sandbox):
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec", objects=["win10"])])
    generation = current(sandbox).resolve()
    cache = (generation / "config.marshal").read_bytes()
    assert oct((generation / "config.marshal").stat().st_mode & 0o7777) == "0o644"
    assert configcache.belongs(cache, (generation / "config.json").read_bytes())
    assert sandbox.fire("qemu", "win10", "prepare", "begin", stdin=DOMAIN).rc == 0
    assert sandbox.order() == ["rec win10 prepare begin -"]


def test_a_hand_edit_of_the_deployed_config_json_takes_effect(sandbox):
    """An operator who edits the generation's config.json by hand (unsupported, but done) gets what he wrote."""
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec", objects=["win*"])])          # the entry point lets both guests through
    config = current(sandbox).resolve() / "config.json"
    config.write_text(config.read_text().replace('"win*"', '"win11"'))
    sandbox.fire("qemu", "win10", "prepare", "begin", stdin=DOMAIN)
    sandbox.fire("qemu", "win11", "prepare", "begin", stdin=DOMAIN)
    assert sandbox.order() == ["rec win11 prepare begin -"]


@pytest.mark.root
def test_a_cache_root_does_not_own_alone_refuses_the_call_as_config_json_would(sandbox):
    """Its content picks the scripts root runs (its checksum does not bind it to config.json against a
    forger): a cache anyone else could have written fails the call as an untrusted config.json does."""
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec", objects=["win10"])])
    cache = current(sandbox).resolve() / "config.marshal"
    for spoil in (lambda: os.chown(cache, NOBODY, NOBODY), lambda: cache.chmod(0o666)):
        spoil()
        fired = sandbox.fire("qemu", "win10", "prepare", "begin", stdin=DOMAIN)
        assert fired.rc == 1 and "cannot load the configuration" in fired.stderr and str(cache) in fired.stderr
        assert sandbox.order() == []
        os.chown(cache, 0, 0)
        cache.chmod(0o644)


def test_a_generation_without_its_cache_is_made_again_by_the_next_deploy(sandbox):
    """A generation written before there was a cache (or with a stale one) still dispatches (config.json is
    parsed); the next deploy of the same rules makes a new generation with it, so calls stop parsing JSON."""
    sandbox.recorder("rec")
    rules = [rule("rec", objects=["win10"])]
    sandbox.deploy(rules)
    first = current(sandbox).resolve()
    sandbox.deploy(rules)
    assert current(sandbox).resolve() == first                       # unchanged: the same generation
    (first / "config.marshal").unlink()
    sandbox.fire("qemu", "win10", "prepare", "begin", stdin=DOMAIN)
    assert sandbox.order() == ["rec win10 prepare begin -"]
    sandbox.deploy(rules)
    second = current(sandbox).resolve()
    assert second != first and (second / "config.marshal").exists()


@pytest.mark.parametrize("planted", ["symlink", "fifo", "writable"])
def test_a_cache_replaced_by_a_symlink_is_never_read_and_the_next_deploy_makes_a_new_generation(sandbox, planted):
    """A symlink to /dev/zero, a FIFO nobody writes to, or a cache others could have written, in place of
    config.marshal: the deploy's check of the current generation opens it without following a link or waiting on
    a FIFO and looks at what it opened before reading (reading /dev/zero would never end), and makes a new
    generation."""
    sandbox.recorder("rec")
    rules = [rule("rec", objects=["win10"])]
    sandbox.deploy(rules)
    first = current(sandbox).resolve()
    cache = first / "config.marshal"
    if planted == "writable":
        cache.chmod(0o666)
    elif planted == "symlink":
        cache.unlink()
        cache.symlink_to("/dev/zero")
    else:
        cache.unlink()
        os.mkfifo(cache)
    sandbox.deploy(rules)
    second = current(sandbox).resolve()
    assert second != first and (second / "config.marshal").is_file() and not (second / "config.marshal").is_symlink()
