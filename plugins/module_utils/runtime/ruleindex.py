# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rule index of config.json: which rules can apply to an event, so that the dispatcher
parses, validates and matches only those, and a call costs the same with 500 rules as with one.

The installer writes it (rules.index_rules, at deploy time, from rules it has validated); the
dispatcher uses it (rules.load_config with an event) only while it belongs to the rules:

- ``text`` matches the file: a CRC-32 of the rules array as written and of the index itself,
  with where each rule starts in that array. The dispatcher then reads the other top-level
  members one by one and parses only the rules the index picks (read_indexed);
- else ``checksum`` matches the rules as parsed (config.json written some other way): every
  rule is parsed, only the picked ones validated (candidates);
- else (rules edited by hand, no index, an index that is not what build_index writes) every
  rule is read, as without an index. Nothing in an index can make the dispatcher fail.
"""

from .configcache import INDEX_VERSION, positions_for  # the lookup, which a hook call's cache path uses too

GLOB_CHARS = "*?["


def rules_checksum(rules, drivers) -> int:
    """A checksum of the rules and the index's ``drivers`` as parsed from config.json: an index
    is used only while it matches."""
    import binascii
    return binascii.crc32(repr(drivers).encode("utf-8", "backslashreplace"),
                          binascii.crc32(repr(rules).encode("utf-8", "backslashreplace")))


def _literal(pattern: str) -> bool:
    return not any(c in pattern for c in GLOB_CHARS)


def _prefix(pattern: str) -> str:
    """What every name a glob matches starts with: the pattern up to its first wildcard."""
    cut = min((pattern.find(c) for c in GLOB_CHARS if c in pattern), default=len(pattern))
    return pattern[:cut]


def _indexable(pattern: str) -> bool:
    return "\t" not in pattern and "\n" not in pattern and (_literal(pattern) or _prefix(pattern) != "")


def _table(entries: dict) -> str:
    """name -> positions as one string, ``\nNAME\tPOS,POS\n...``: a string costs next to nothing to parse."""
    return "".join("\n%s\t%s" % (name, ",".join(str(p) for p in positions)) for name, positions in entries.items()) + "\n"


def build_index(rules: list, raw_rules: list) -> dict:
    """The ``index`` the installer writes into config.json.

    ``drivers``: for each driver, the positions of the rules whose objects are all plain names or
    globs that start with a plain prefix (``vm-12-*``): under each name (``names``) and under each
    prefix, grouped by the prefix's length (``prefixes``: length -> table), each table one string
    ``\nNAME\tPOS,POS\n...`` (a string costs next to nothing to parse); the other rules under each of
    their operations, or ``*`` (``operations``); daemon-driver rules all go under ``*`` (the daemon's
    name is looked up when any of them filters on it). A name is looked up once in ``names`` and once
    per prefix length (a handful), whatever the number of rules. ``count`` and ``checksum``: the rules it was built for, as
    the dispatcher parses them back (keys sorted, through JSON), with ``drivers``. ``text``: where each rule
    starts in the rules array as the installer writes config.json (``json.dumps(indent=2,
    sort_keys=True)``), its length, and a CRC-32 of it and of the index: while the file holds
    exactly that, the dispatcher parses only the rules it reads. Written any other way, the
    checksum applies; edited, every rule is read.

    rules are the normalized rules, raw_rules the same as they are written.
    """
    import json
    import binascii
    parsed = json.loads(json.dumps(list(raw_rules), sort_keys=True))
    drivers = {}
    for position, rule in enumerate(rules):
        entry = drivers.setdefault(rule["driver"], {"names": {}, "prefixes": {}, "operations": {}})
        if rule["driver"] == "daemon":
            places = [(entry["operations"], "*")]
        elif all(_indexable(o) for o in rule["objects"]):
            places = [(entry["names"], o) if _literal(o) else
                      (entry["prefixes"].setdefault(str(len(_prefix(o))), {}), _prefix(o)) for o in rule["objects"]]
        else:
            places = [(entry["operations"], operation) for operation in rule["operations"]]
        for bucket, key in places:
            positions = bucket.setdefault(key, [])
            if position not in positions:
                positions.append(position)
    for entry in drivers.values():
        entry["names"] = _table(entry["names"])
        entry["prefixes"] = {length: _table(table) for length, table in entry["prefixes"].items()}
    drivers = json.loads(json.dumps(drivers, sort_keys=True))
    document = json.dumps({"rules": parsed}, indent=2, sort_keys=True)
    text = document[document.index("["):document.rindex("]") + 1]      # the array, as nested in config.json
    decoder = json.JSONDecoder()
    offsets, i = [], 1
    for _rule in parsed:
        while text[i] in " \n,":
            i += 1
        offsets.append("%08x" % i)
        i = decoder.raw_decode(text, i)[1]
    offsets = "".join(offsets)
    return {"version": INDEX_VERSION, "count": len(parsed), "checksum": rules_checksum(parsed, drivers), "drivers": drivers,
            "text": {"length": len(text), "offsets": offsets,
                     "crc": binascii.crc32(_index_bytes(drivers, offsets), binascii.crc32(text.encode("ascii")))}}


def _index_bytes(drivers, offsets) -> bytes:
    """What of the index the text CRC covers besides the rules text (as parsed from JSON)."""
    return (repr(drivers) + offsets).encode("utf-8", "backslashreplace")


def candidates(raw, driver: str, obj: str, operation: str):
    """Positions in raw["rules"] of the rules that may apply to an event, in order, by the
    index; None when there is no index, it was built for other rules, or it is not what
    index_rules writes (then every rule is read)."""
    try:
        rules = raw["rules"]
        if not isinstance(rules, list):
            return None
        positions = positions_for(raw["index"], len(rules), driver, obj, operation)
        if positions is None or raw["index"]["checksum"] != rules_checksum(rules, raw["index"]["drivers"]):
            return None
        return positions
    except (TypeError, KeyError, AttributeError, ValueError, RecursionError):
        return None


def read_indexed(data: bytes, event):
    """(the top-level members, the rules the index picks for the event as (position, rule)) when
    config.json holds the rules text its index was built for, without parsing the other rules;
    (None, None) otherwise."""
    from .minijson import scan_object, scan_value
    import binascii
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, None
    if len(text) != len(data):      # not ASCII, as the installer writes: offsets would not be bytes
        return None, None

    def skip(key, members, text, start):
        if key != "rules":
            return None
        try:
            span = members["index"]["text"]
            end = start + span["length"]
            if text[end - 1:end] == "]" and span["crc"] == binascii.crc32(
                    _index_bytes(members["index"]["drivers"], span["offsets"]), binascii.crc32(memoryview(data)[start:end])):
                return end
        except (TypeError, KeyError, AttributeError, ValueError):
            pass
        return None

    scanned = scan_object(text, skip)
    if scanned is None or "rules" not in scanned[1]:
        return None, None
    raw, spans = scanned
    start, end = spans["rules"]
    try:
        index = raw["index"]
        offsets = index["text"]["offsets"]
        positions = positions_for(index, len(offsets) // 8, *event)
        if positions is None:
            return None, None
        picked = []
        for position in positions:
            at = int(offsets[8 * position:8 * position + 8], 16)
            if not 0 < at < end - start:
                return None, None
            picked.append((position, scan_value(text, start + at)[0]))
    except Exception:  # pylint: disable=broad-except  # an odd index: read the whole file instead
        return None, None
    return raw, picked
