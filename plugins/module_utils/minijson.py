# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON for the hook hot path without importing ``json``.

``import json`` pulls in ``re``, ``enum`` and ``functools`` and costs about as much as
Python's own start-up; the dispatcher runs on every guest start. The C accelerator
``_json`` that ``json`` itself uses is cheap to import, so this module drives it directly
and falls back to ``json`` where the accelerator is missing.
"""

try:
    import _json as _accel
except ImportError:  # pragma: no cover - CPython always ships _json
    _accel = None

_WS = " \t\n\r"


class JSONError(ValueError):
    """The text is not a single valid JSON document."""


def _reject_constant(name):
    raise JSONError("invalid JSON constant %s" % name)


class _Context(object):
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo = None


_scan = _accel.make_scanner(_Context()) if _accel is not None else None


def loads(text):
    """Parse one JSON document (str); raise JSONError with the position on bad input."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError("not UTF-8: %s" % exc)
    doc = text.strip(_WS)
    if _scan is None:  # pragma: no cover
        import json
        try:
            return json.loads(doc)
        except ValueError as exc:
            raise JSONError(str(exc))
    try:
        value, end = _scan(doc, 0)
    except StopIteration as exc:
        raise JSONError("invalid JSON at character %d" % exc.value)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise JSONError(str(exc))
    if end != len(doc):
        raise JSONError("extra data after the JSON document at character %d" % end)
    return value


_quote = _accel.encode_basestring_ascii if _accel is not None else None


def _encode(value, out):
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_quote(value))
    elif isinstance(value, (int, float)):
        out.append(repr(value) if isinstance(value, float) else str(int(value)))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_quote(str(key)))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append(_quote(str(value)))


def dumps(value):
    """Compact, ASCII-only JSON text for value (dict/list/str/int/float/bool/None)."""
    if _quote is None:  # pragma: no cover
        import json
        return json.dumps(value, separators=(",", ":"), default=str)
    out = []
    _encode(value, out)
    return "".join(out)
