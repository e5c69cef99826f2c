# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""config.marshal: a generation's config.json as the dispatcher reads it, made once at deploy time.

A hook call used to parse config.json (through the ``_json`` accelerator, a shared library that
costs a third of a millisecond to load) and validate the rules it picked, on every call. The
installer now also writes, beside config.json, what that parse and validation give
(``rules.normalize_config(..., strict=False)`` of the file's own bytes), in ``marshal`` data
format 2 (built-in, plain data, no references), with each rule marshalled apart so that a call
unmarshals only the rules the index picks for its event.

config.json stays the source of truth: the cache records the size and CRC-32 of the config.json it
was made from, and a call uses it only while the file it has just read (and checked) is that one,
so a hand-edited config.json is read as before. Only what the installer writes is used: anything
else (another format, a corrupt or truncated file, another version of this module) is ignored and
config.json parsed. The cache is trusted as config.json is (root's alone, the whole path to it):
its content picks the scripts root runs.
"""

import marshal

from .events import canonical_operation

FORMAT = "virthooks-config-cache"
VERSION = 1
MARSHAL_VERSION = 2             # plain data, no back-references: the same bytes from every Python 3
INDEXED_RULES = 64              # with more rules a call unmarshals only those the index picks
INDEX_VERSION = 2               # of config.json's index (ruleindex.build_index), which the cache carries


def build(config_bytes: bytes) -> bytes:
    """config.marshal for a config.json (the installer's; ConfigError if it is not valid)."""
    import binascii
    import json
    from .rules import normalize_config
    raw = json.loads(config_bytes.decode("utf-8"))
    config = normalize_config(raw, strict=False)
    index = raw.get("index") if len(config["rules"]) > INDEXED_RULES else None
    document = {"format": FORMAT, "version": VERSION, "size": len(config_bytes),
                "crc": binascii.crc32(config_bytes), "index": index,
                "config": {key: value for key, value in config.items() if key != "rules"},
                "rules": [marshal.dumps(rule, MARSHAL_VERSION) for rule in config["rules"]]}
    return marshal.dumps(document, MARSHAL_VERSION)


def _document(cache: bytes, config_bytes: bytes):
    """The cache's document when it was made from exactly these config.json bytes, else None."""
    import binascii
    try:
        document = marshal.loads(cache)
        if document["format"] != FORMAT or document["version"] != VERSION \
                or document["size"] != len(config_bytes) or document["crc"] != binascii.crc32(config_bytes):
            return None
        return document
    except Exception:  # pylint: disable=broad-except  # bad marshal data, not a dict, a key missing...
        return None


def load(cache: bytes, config_bytes: bytes, event=None):
    """The config load_config would give for config_bytes (and the event: (driver, object,
    operation)), from the cache; None when the cache does not belong to these bytes (then
    config.json is parsed)."""
    document = _document(cache, config_bytes)
    if document is None:
        return None
    try:
        rules = document["rules"]
        positions = None
        if event is not None and document["index"] is not None:
            positions = positions_for(document["index"], len(rules), *event)
        picked = rules if positions is None else [rules[i] for i in positions]
        config = dict(document["config"])
        config["rules"] = [marshal.loads(rule) for rule in picked]
        return config
    except Exception:  # pylint: disable=broad-except  # a cache this module did not write
        return None


def _decoded(document) -> tuple:
    return document["index"], document["config"], [marshal.loads(rule) for rule in document["rules"]]


def belongs(cache: bytes, config_bytes: bytes) -> bool:
    """Whether a call would use this cache with these config.json bytes, and it holds what build
    makes of them now (`virthooks validate`, and the installer keeping a generation). Compared as
    data: another Python may marshal the same data to other bytes."""
    try:
        document = _document(cache, config_bytes)
        return document is not None and _decoded(document) == _decoded(marshal.loads(build(config_bytes)))
    except Exception:  # pylint: disable=broad-except  # config.json no longer valid, a cache of another shape
        return False


# --- the rule index's lookup (ruleindex.build_index writes the index; config.json's JSON path uses this too) --

def _lookup(table: str, name: str, found: set) -> None:
    key = "\n%s\t" % name
    at = table.find(key)
    if at >= 0:
        at += len(key)
        found.update(int(p) for p in table[at:table.index("\n", at)].split(","))


def positions_for(index: dict, count: int, driver: str, obj: str, operation: str):
    """The index's positions for an event, in order; None if the index is not what index_rules writes."""
    if index["version"] != INDEX_VERSION or index["count"] != count:
        return None
    entry = index["drivers"].get(driver)
    if entry is None:
        return []
    found = set()
    names, prefixes = entry["names"], entry["prefixes"]
    if not isinstance(names, str) or not all(isinstance(t, str) and length.isdigit() for length, t in prefixes.items()):
        return None
    if "\t" not in obj and "\n" not in obj:
        _lookup(names, obj, found)
        for length, table in prefixes.items():
            if len(obj) >= int(length):
                _lookup(table, obj[:int(length)], found)
    operations = entry["operations"]
    found.update(operations.get("*", ()))
    found.update(operations.get(canonical_operation(driver, operation), ()))
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < count for p in found):
        return None
    return sorted(found)
