"""The re-free JSON used on the hot path agrees with the json module."""
from __future__ import annotations

import json

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.minijson import JSONError, dumps, loads

SAMPLES = [{}, [], {"a": [1, -2, 3.5, 1e-7, None, True, False]}, "caf\u00e9 \u2603 \"q\" \\ \n\t",
           {"nested": {"deep": [[{"x": ""}]]}}, 0, 12345678901234567890]


@pytest.mark.parametrize("value", SAMPLES)
def test_round_trips_like_json(value):
    assert json.loads(dumps(value)) == value
    assert loads(json.dumps(value)) == value
    assert loads(json.dumps(value, indent=2).encode()) == value


@pytest.mark.parametrize("text", ["", "{", "[1,]", "{'a': 1}", "[1] [2]", "NaN", "Infinity", b"\xff\xfe"])
def test_rejects_invalid_documents(text):
    with pytest.raises(JSONError):
        loads(text)


def test_dumps_is_ascii_and_one_line():
    text = dumps({"s": "line1\nline2 \u00e9"})
    assert "\n" not in text and text.isascii()
