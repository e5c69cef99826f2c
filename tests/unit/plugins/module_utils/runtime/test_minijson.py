"""The re-free JSON used on the hot path agrees with the json module."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import minijson
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.minijson import JSONError, dumps, loads
from .test_dispatch import hook_pythons

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


# --- any bad input is a JSONError, under every Python a host may run ---------------------------

MINIJSON = os.path.join(os.path.dirname(minijson.__file__), "minijson.py")

# Run by each interpreter on its own (-I -S: nothing imports json behind our back). Reads the
# documents to try, as JSON lines, on stdin; prints the problems found, as one JSON list.
FUZZ = r'''
import importlib.util, sys
spec = importlib.util.spec_from_file_location("minijson", sys.argv[1])
minijson = importlib.util.module_from_spec(spec)
spec.loader.exec_module(minijson)
text = minijson.loads(sys.stdin.read())   # the document, sent as one JSON string
good = minijson.loads(text)
problems = []
if "json" in sys.modules or "json.decoder" in sys.modules:
    problems.append("loading a good document imported json")
def attempt(label, doc, may_be_valid=False):
    try:
        minijson.loads(doc)
    except minijson.JSONError as exc:
        message = str(exc)
        if not message or "\n" in message or "Traceback" in message:
            problems.append("%s: unclear message %r" % (label, message))
    except BaseException as exc:
        problems.append("%s: %s: %s" % (label, type(exc).__name__, str(exc)[:100]))
    else:
        if not may_be_valid:
            problems.append("%s: accepted" % label)
text = text.rstrip()
raw = text.encode("utf-8")
for i in range(len(text)):
    attempt("prefix %d" % i, text[:i])
for i in range(len(raw)):
    attempt("byte prefix %d" % i, raw[:i])
for n in (2000, 100000, 1000000):
    # Valid JSON, but past the recursion limit of some Pythons (not of 3.13's at 2000)
    attempt("%d nested arrays" % n, "[" * n + "]" * n, may_be_valid=True)
    attempt("%d nested objects" % n, '{"a":' * n + "1" + "}" * n, may_be_valid=True)
    attempt("%d nested, truncated" % n, '{"a":[' * n)
    attempt("%d nested, bad inside" % n, "[" * n + "\x01" + "]" * n)
bad = [
    '{"version": 1,', "{ this is not json", '{"version": 1} trailing', "NaN", "-Infinity", "nul",
    "\x00", '{"a": "\x00"}', '{"a"\x00: 1}', '{"a": "\x1b[31m"}', '{"a": "\\x41"}', '{"a": "\\u12"}',
    '"\\ud800', '{"a": 1e999999}', '[-1e400]', "1" * 5000, '{"a": ' + "9" * 5000 + "}", "\ufeff{}",
    b"\xef\xbb\xbf{}", b"\x00\x01\x02\xff\xfe", bytes(range(256)), b'"\xed\xa0\x80"', b'{"a": "\xc3"}',
    b"\x89PNG\r\n\x1a\n\x00\x00", "", "   \n\t ", None, 3, ["[]"],
]
for i, doc in enumerate(bad):
    attempt("case %d %r" % (i, doc if not isinstance(doc, (str, bytes)) else doc[:30]), doc)
# Escaped lone surrogates are JSON (the log holds them for names that were not UTF-8).
if minijson.loads('"\\udcff\\ud800"') != "\udcff\ud800":
    problems.append("escaped lone surrogates not kept")
print(minijson.dumps(good))
print(minijson.dumps(problems))
'''


def real_configs() -> list:
    """config.json as the installer writes it for a few realistic rules, and as hand-edited (raw UTF-8)."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.install import config_text
    rules = [{"name": "gpu-passthrough", "script": "scripts/gpu", "objects": ["win*", "caf\u00e9-\u2603"],
              "operations": ["prepare", "release"], "xpath": "/domain/devices/hostdev[@type='pci']",
              "timeout": 12.5, "order": -3},
             {"name": "net", "script": "/usr/local/bin/net-hook", "driver": "network", "on_failure": "ignore"}]
    text = config_text(rules, log={"file": "/var/log/libvirt/virthooks.jsonl", "max_bytes": 65536})
    return [text, json.dumps(json.loads(text), indent=4, ensure_ascii=False)]


@pytest.mark.parametrize("python", hook_pythons())
def test_any_bad_input_is_a_clear_json_error_under_every_host_python(python):
    for text in real_configs():
        assert "\n" in text and ("\\u2603" in text or "\u2603" in text)
        proc = subprocess.run([python, "-I", "-S", "-c", FUZZ, MINIJSON], input=json.dumps(text), capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        parsed, problems = proc.stdout.splitlines()
        assert json.loads(problems) == []
        assert json.loads(parsed) == json.loads(text)


def test_errors_say_what_and_where():
    with pytest.raises(JSONError, match=r"^Expecting property name enclosed in double quotes: line 2 column 1 "):
        loads('{"version": 1,\n')
    with pytest.raises(JSONError, match=r"^expecting a value: line 3 column 3 \(char 4\)$"):
        loads("\n\n  nope")
    with pytest.raises(JSONError, match=r"^extra data after the JSON document: line 1 column 4 \(char 3\)$"):
        loads("{} {}")
    with pytest.raises(JSONError, match=r"^nested too deeply$"):
        loads("[" * 100000)
    with pytest.raises(JSONError, match=r"^not UTF-8: byte 0xff at byte 2$"):
        loads(b"[1\xff]")
    with pytest.raises(JSONError, match=r"^number out of range: 1e999$"):
        loads("[1e999]")


def test_corrupt_config_json_is_one_clear_line_or_a_logged_no_op_never_a_traceback(sandbox):
    from .test_dispatch import rule
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec", operations=["*"])])
    config = sandbox.own / "config.json"
    text = config.read_bytes()
    corrupt = [text[:n] for n in range(0, len(text) - 1, 7)] + [
        b'{"version": 1,', b"{ this is not json", b"[" * 2000, b'{"a":' * 2000, b"[" * 2000 + b"]" * 2000,
        bytes(range(256)) * 4, b"\x00" * 64, text.replace(b'"rules"', b'"ru\x00les"'), b"\xff\xfe{\x00}\x00",
        b'{"version": 1e999}', b'{"version": ' + b"9" * 5000 + b"}", b'{"version": 1} {"version": 1}',
    ]
    problems = []
    for data in corrupt:
        config.write_bytes(data)
        veto = sandbox.fire("qemu", "g", "prepare", "begin")
        lines = veto.stderr.splitlines()
        if veto.rc != 1 or len(lines) != 1 or "config.json" not in lines[0] or "Traceback" in veto.stderr:
            problems.append(("prepare", data[:40], veto))
        logged = sandbox.fire("qemu", "g", "stopped", "end")
        if logged.rc != 0 or logged.stderr:
            problems.append(("stopped", data[:40], logged))
    assert problems == []
    assert sandbox.order() == [] and sandbox.records() == []
