# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON for the hook hot path without importing ``json``.

``import json`` pulls in ``re``, ``enum`` and ``functools`` and costs about as much as
Python's own start-up; the dispatcher runs on every guest start. The C accelerator
``_json`` that ``json`` itself uses is cheap to import, so this module drives it directly
and falls back to ``json`` where the accelerator is missing. Only a bad document may import
``json`` (see _scan_error): whatever the input, loads() returns a value or raises JSONError.

The accelerator is a shared library on Debian's Python (a third of a millisecond to load), so it
is loaded by the first parse, not at import: a hook call writes its log record with dumps(),
plain Python, and reads its rules from config.marshal (configcache), so it loads no JSON code.
"""

_WS = " \t\n\r"


class JSONError(ValueError):
    """The text is not a single valid JSON document."""


def _reject_constant(name):
    raise JSONError("invalid JSON constant %s" % name)


_INF = float("inf")


def _finite_float(text):
    value = float(text)
    if value in (_INF, -_INF):  # would come back out of dumps() as 'inf', not JSON
        raise JSONError("number out of range: %s" % (text if len(text) <= 40 else text[:40] + "..."))
    return value


class _Context(object):
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = staticmethod(_finite_float)
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo = None


_ACCEL = []     # [the _json module or None, its scanner or None], on first use (_accelerator)


def _accelerator() -> list:
    if not _ACCEL:
        try:
            import _json
            _ACCEL.extend((_json, _json.make_scanner(_Context())))
        except ImportError:  # pragma: no cover - CPython always ships _json
            _ACCEL.extend((None, None))
    return _ACCEL


def _where(text, pos):
    line = text.count("\n", 0, pos) + 1
    return "line %d column %d (char %d)" % (line, pos - text.rfind("\n", 0, pos), pos)


def _scan_error(text, start, exc, retry=True):
    """A one-line message for an exception out of the accelerator's scanner."""
    if isinstance(exc, StopIteration):
        if exc.value == start and text.startswith("\ufeff", start):
            return "starts with a byte order mark (BOM), not JSON"
        return "expecting a value: %s" % _where(text, exc.value)
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ValueError):  # json.decoder.JSONDecodeError, int digit limit, JSONError
        return " ".join(str(exc).split())
    if retry:
        # Python 3.10 and 3.11's accelerator can only raise its JSONDecodeError once
        # json.decoder is imported; before that a bad document gives SystemError. Only now,
        # on the error path, pay for the import and scan again for the real message.
        try:
            import json.decoder  # noqa: F401  pylint: disable=unused-import
            _accelerator()[1](text, start)
        except Exception as again:  # pylint: disable=broad-except
            return _scan_error(text, start, again, retry=False)
    return "invalid JSON (%s)" % type(exc).__name__


def loads(text):
    """Parse one JSON document (str or UTF-8 bytes).

    Any bad input raises JSONError, with a one-line message that says where.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError("not UTF-8: byte 0x%02x at byte %d" % (exc.object[exc.start], exc.start))
    if not isinstance(text, str):
        raise JSONError("not text but %s" % type(text).__name__)
    start = len(text) - len(text.lstrip(_WS))
    if start == len(text):
        raise JSONError("empty document")
    scan = _accelerator()[1]
    if scan is None:  # pragma: no cover
        import json
        try:
            return json.loads(text, parse_float=_finite_float, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise JSONError(" ".join(str(exc).split()))
    try:
        value, end = scan(text, start)
    except Exception as exc:  # pylint: disable=broad-except
        raise JSONError(_scan_error(text, start, exc)) from None
    rest = text[end:].lstrip(_WS)
    if rest:
        raise JSONError("extra data after the JSON document: %s" % _where(text, len(text) - len(rest)))
    return value


def _skip_ws(text, i):
    while text[i] in _WS:
        i += 1
    return i


def scan_object(text, skip):
    """A top-level JSON object read member by member: ({key: value}, {key: (start, end)}).

    skip(key, members so far, text, start) may return where the member's value ends (it is then
    not parsed, only its span returned) or None (parsed). None for anything else than a plain
    object with distinct keys (the caller then uses loads, which says what is wrong).
    """
    accel, scan = _accelerator()
    if scan is None:  # pragma: no cover
        return None
    members, skipped = {}, {}
    try:
        i = _skip_ws(text, 0)
        if text[i] != "{":
            return None
        i = _skip_ws(text, i + 1)
        while text[i] != "}":
            if text[i] != '"':
                return None
            key, i = accel.scanstring(text, i + 1, True)
            i = _skip_ws(text, i)
            if text[i] != ":" or key in members or key in skipped:
                return None
            i = _skip_ws(text, i + 1)
            end = skip(key, members, text, i)
            if end is None:
                members[key], i = scan(text, i)
            else:
                skipped[key], i = (i, end), end
            i = _skip_ws(text, i)
            if text[i] == ",":
                i = _skip_ws(text, i + 1)
                if text[i] == "}":
                    return None
            elif text[i] != "}":
                return None
        if text[i + 1:].strip(_WS):
            return None
    except Exception:  # pylint: disable=broad-except  # IndexError at the end, a scanner error...
        return None
    return members, skipped


def scan_value(text, start):
    """The JSON value at text[start:] (and where it ends); JSONError if there is none."""
    try:
        return _accelerator()[1](text, start)
    except Exception as exc:  # pylint: disable=broad-except
        raise JSONError(_scan_error(text, start, exc)) from None


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _quote(text: str) -> str:
    """A JSON string of text, ASCII only: what json's encode_basestring_ascii gives (a test compares)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'      # the common case: nothing to escape
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0x20 <= code < 0x7f:
            out.append(ch)
        elif code < 0x10000:
            out.append("\\u%04x" % code)
        else:
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xd800 | (code >> 10), 0xdc00 | (code & 0x3ff)))
    out.append('"')
    return "".join(out)


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
    out = []
    _encode(value, out)
    return "".join(out)
