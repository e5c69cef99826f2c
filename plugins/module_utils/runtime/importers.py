# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks import``: the hook setups of peers, as the role's variables.

Three sources, read on the host where they run today:

- the per-guest tree of the VFIO-Tools hook helper, ``hooks/<driver>.d/<guest>/<op>/<sub-op>``
  (an executable file there, or the executable files in a directory there, in the order the
  helper's ``find`` lists them on this host: the directory's order);
- mrjk/libvirt-hook-controller: ``conf/rules.conf`` and ``conf/rules.d/*.conf``, rows
  ``hook;operation;object;priority;command``, matched and ordered exactly as its script does
  (see import_mrjk);
- saschpe/libvirt-hook-qemu: ``hooks.json`` (port forwarding), as a ``port_forward`` library block.

Each gives ``libvirt_hooks_scripts`` entries or ``libvirt_hooks_library`` blocks, and notes:
everything it could not carry over, or carries over with a difference. Nothing is dropped without
a note. Only the CLI imports this module (never the dispatcher).
"""

import json
import os
import re

from .events import EVENTS, GUEST_DRIVERS
from .rules import NAME_CHARS, NAME_MAX, is_backup_name

# The drivers mrjk's controller is installed for (its APP_HOOKS; its repository links all five).
MRJK_DRIVERS = ("daemon", "qemu", "lxc", "libxl", "network")
MRJK_SCRIPT = "libvirt_hook_controller"
TREE_DRIVERS = GUEST_DRIVERS + ("network",)
PORT_RANGE_MAX = 1024       # ports one saschpe port_range may expand to


class ImportFailed(ValueError):
    """A source that cannot be read at all; the message names it."""


def _safe_name(*parts) -> str:
    """A script name from parts: [A-Za-z0-9_.-] only, at most NAME_MAX characters."""
    text = "-".join(p for p in parts if p)
    text = "".join(c if c in NAME_CHARS else "_" for c in text).lstrip(".") or "x"
    return text[:NAME_MAX]


def _unique(name, taken) -> str:
    base, n = name, 2
    while name in taken:
        suffix = "-%d" % n
        name = base[:NAME_MAX - len(suffix)] + suffix
        n += 1
    taken.add(name)
    return name


def glob_literal(name: str) -> str:
    """A glob that matches exactly this name (libvirt names may contain *, ? and [)."""
    return "".join("[%s]" % c if c in "*?[" else c for c in name)


def _printable_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return all(c >= " " and c not in "\x7f" for c in name)


def _script_body(path: str, entry: dict, notes: list, label: str) -> None:
    """content: (UTF-8 text), else src: (the host path, to copy to the controller) with a note."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:
        entry["src"] = path
        notes.append("%s: %s is not UTF-8 text: given as src: (a path on the controller), copy it there" % (label, path))
    else:
        entry["content"] = text


# --- the per-guest tree --------------------------------------------------------------------------------

def _executable_file(path: str) -> bool:
    """find -L ... -type f -executable: a regular file (through symlinks) the caller may execute."""
    return os.path.isfile(path) and os.access(path, os.X_OK)


def import_tree(hooks_dir: str, order: int = 50) -> tuple:
    """(script entries, notes) for every hooks/<driver>.d/<guest>/<op>/<sub-op> on this host.

    As the helper runs it: the path itself when it is a file, else the executable regular files in
    it (hidden and backup files too, symlinks followed, subdirectories not entered), in the order
    find lists them, which is the directory's order (os.listdir gives the same). Each script
    becomes one entry for its guest, operation and sub-operation; names carry their position so
    that the dispatcher's (order, name) sort keeps that order.
    """
    entries, notes, taken = [], [], set()
    for driver in TREE_DRIVERS:
        base = "%s/%s.d" % (hooks_dir, driver)
        if not os.path.isdir(base):
            continue
        for guest in sorted(os.listdir(base)):
            _import_tree_guest(driver, guest, "%s/%s" % (base, guest), order, entries, notes, taken)
    return entries, notes


def _import_tree_guest(driver: str, guest: str, gpath: str, order: int, entries: list, notes: list,
                       taken: set) -> None:
    """The entries of hooks/<driver>.d/<guest>/ (and a note for each thing not imported)."""
    if not os.path.isdir(gpath):
        if os.path.isfile(gpath) and os.access(gpath, os.X_OK):
            notes.append("%s.d/%s: libvirt itself runs this file for every %s event (not the tree "
                         "helper); not imported: declare it as a script with objects/operations '*'"
                         % (driver, guest, driver))
        return
    if not _printable_name(guest):
        notes.append("%s.d/%r: a guest name that is not printable UTF-8; not imported" % (driver, guest))
        return
    known = EVENTS.get(driver, {})
    for op in sorted(os.listdir(gpath)):
        opath = "%s/%s" % (gpath, op)
        if op not in known or not os.path.isdir(opath):
            notes.append("%s.d/%s/%s: not an operation directory of the %s driver: the helper never "
                         "runs it; not imported" % (driver, guest, op, driver))
            continue
        for sub in sorted(os.listdir(opath)):
            where = "%s.d/%s/%s/%s" % (driver, guest, op, sub)
            if sub not in ("begin", "end", "-"):
                notes.append("%s: not a sub-operation (begin, end, -): the helper never runs it; "
                             "not imported" % where)
                continue
            files = _tree_files(where, (guest, op, sub), "%s/%s" % (opath, sub), notes)
            for pos, (name, path) in enumerate(files, 1):
                entry = _tree_entry(driver, (guest, op, sub), where, pos, name, path, order, notes, taken)
                if entry is not None:
                    entries.append(entry)


def _tree_files(where: str, event: tuple, spath: str, notes: list) -> list:
    """[(name or None for the path itself, path)] the helper runs for one <op>/<sub-op>, in its order."""
    guest, op, sub = event
    if os.path.isfile(spath):
        if not os.access(spath, os.X_OK):
            notes.append("%s: not executable: the helper runs it and fails every %s %s of %s "
                         "(Permission denied); not imported" % (where, op, sub, guest))
            return []
        return [(None, spath)]
    if not os.path.isdir(spath):
        return []
    files = []
    for name in os.listdir(spath):    # find's order: the directory's
        path = "%s/%s" % (spath, name)
        if _executable_file(path):
            files.append((name, path))
        elif os.path.isdir(path):
            notes.append("%s/%s: a directory: the helper does not enter it; not imported" % (where, name))
        else:
            notes.append("%s/%s: not an executable file: the helper does not run it; not imported" % (where, name))
    return files


def _tree_entry(driver: str, event: tuple, where: str, pos: int, name, path: str, order: int, notes: list,
                taken: set):
    """The script entry of one file of the tree (None, with a note, when it cannot be imported)."""
    guest, op, sub = event
    label = where + ("/" + name if name else "")
    if name is not None and not _printable_name(name):
        notes.append("%s/%r: a file name that is not printable UTF-8; not imported" % (where, name))
        return None
    if name and is_backup_name(name):
        notes.append("%s: hidden or backup file: the helper runs it, so it is imported "
                     "(delete the entry if it was a leftover)" % label)
    if os.path.islink(path):
        notes.append("%s: a symlink to %s: its content is imported (later changes to the "
                     "target no longer apply)" % (label, os.path.realpath(path)))
    entry = {"name": _unique(_safe_name("tree", guest, op, sub, "%02d" % pos if name else "", name or ""), taken),
             "driver": driver, "objects": [glob_literal(guest)], "operations": [op],
             "suboperations": [sub], "order": order, "on_failure": "fail"}
    _script_body(path, entry, notes, label)
    return entry


# --- mrjk/libvirt-hook-controller ------------------------------------------------------------------------

def _hnum(text: str) -> tuple:
    """The key GNU ``sort -h`` compares a field by (C locale): sign, SI suffix, number; no number = 0."""
    m = re.match(r"[ \t]*(-?)([0-9]*)(?:\.([0-9]*))?([KMGTPEZYRQk]?)", text)
    digits, frac = m.group(2), m.group(3) or ""
    if not digits and not frac:
        return (0, 0, 0.0)
    value = float("%s.%s" % (digits or "0", frac or "0"))
    if value == 0:
        return (0, 0, 0.0)
    sign = -1 if m.group(1) else 1
    rank = "kKMGTPEZYRQ".find(m.group(4)) if m.group(4) else 0
    rank = max(rank, 1) if m.group(4) else 0
    return (sign, sign * rank, sign * value)


def _read_words(cmd: str):
    """What bash does with the command text: ``read cmd`` (backslashes and outer blanks), then the
    word splitting of an unquoted ``$cmd``. None for a trailing backslash (a continuation line)."""
    out, i = [], 0
    while i < len(cmd):
        if cmd[i] == "\\":
            if i + 1 == len(cmd):
                return None
            out.append(cmd[i + 1])
            i += 2
            continue
        out.append(cmd[i])
        i += 1
    return [w for w in re.split(r"[ \t\n]+", "".join(out)) if w]    # IFS, not every Unicode space


def mrjk_drivers(hooks_dir: str) -> tuple:
    """The drivers whose hooks/<driver> is the controller (a link to it, or a copy)."""
    found = []
    for driver in MRJK_DRIVERS:
        path = "%s/%s" % (hooks_dir, driver)
        try:
            if MRJK_SCRIPT in os.path.basename(os.path.realpath(path)):
                found.append(driver)
                continue
            with open(path, "rb") as f:
                if MRJK_SCRIPT.encode() in f.read(4096):
                    found.append(driver)
        except OSError:
            continue
    return tuple(found)


def read_mrjk(conf_dir: str) -> tuple:
    """(lines, files read, notes): rules.conf and rules.d/*.conf concatenated as ``cat`` does (a file
    without a final newline runs into the next one), files in byte order (the glob under LC_ALL=C)."""
    files = ["%s/rules.conf" % conf_dir]
    notes = []
    dropins = "%s/rules.d" % conf_dir
    if os.path.isdir(dropins):
        for name in sorted(os.listdir(dropins), key=lambda n: n.encode("utf-8", "surrogateescape")):
            if name.endswith(".conf"):
                files.append("%s/%s" % (dropins, name))
            else:
                notes.append("rules.d/%s: not *.conf: the controller ignores it too" % name)
    data, read = b"", []
    for path in files:
        try:
            with open(path, "rb") as f:
                data += f.read()
            read.append(path)
        except OSError:
            continue
    return data.decode("utf-8", "surrogateescape").split("\n"), read, notes


def import_mrjk(conf_dir: str, drivers=MRJK_DRIVERS, on_failure: str = "ignore") -> tuple:
    """(script entries, notes) for the controller's rules, which it applies per event like this:

    rows whose hook, operation and object fields are the event's (or ``*``; the sub-operation is
    not looked at) are kept; rows that differ only in hook or operation run once, rows with other
    object fields (``vm1`` and ``*``) each run (see _rule_shapes); a ``*`` priority is 50; they
    run sorted by ``sort -h -k1,1 -k2,2 -t';'`` (priority, then the command's leading number,
    then the whole line byte by byte), each as ``$cmd $@`` (its words, then the event's
    arguments), every failure ignored (APP_FAIL_ON_ERROR is false under libvirt's environment).

    Each distinct (priority, command) becomes one wrapper script (``exec <words> "$@"``) with rules
    that, per driver, match the events where the controller runs it, as many times as it does.
    Names carry the position of their line in the controller's sort, so the dispatcher's
    (order, name) sort is the controller's.
    """
    lines, read, notes = read_mrjk(conf_dir)
    if not read:
        raise ImportFailed("%s/rules.conf: no such file (and no rules.d/*.conf)" % conf_dir)
    groups = {}         # (priority text, command text) -> [(driver, op, object, line number)]
    regex_rows = False
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = _mrjk_row(number, line, drivers, notes)
        if row is None:
            continue
        (prio, cmd), runs = row
        regex_rows = regex_rows or any(obj != "*" for _d, _op, obj, _n in runs)
        groups.setdefault((prio, cmd), []).extend(runs)
    if regex_rows:
        notes.append("the controller matches the event's guest name as a regular expression against each "
                     "row's object field: a guest whose name has '.', '[', '*' or '+' may also run rows "
                     "written for other names (web.1 runs those of web01); imported as exact names")
    return _mrjk_entries(groups, on_failure), notes


def _mrjk_row(number: int, line: str, drivers, notes: list):
    """((priority, command), [(driver, op, object, number)] the row runs for) of one rules line, or
    None with a note saying why the controller never runs it or it is not imported."""
    fields = line.split(";", 4)
    where = "rules line %d %r" % (number, line)
    if len(fields) < 5:
        if len(fields) == 4 and (fields[0] in MRJK_DRIVERS or fields[0] == "*"):
            notes.append("%s: no command field: the controller runs the priority %r as a command; not "
                         "imported" % (where, fields[3]))
        elif fields[0] in MRJK_DRIVERS or fields[0] == "*":
            notes.append("%s: fewer than 5 fields: the controller never runs it; not imported" % where)
        else:
            notes.append("%s: not a rule (the controller ignores it); not imported" % where)
        return None
    hook, op, obj, prio, cmd = fields
    row_drivers = [d for d in drivers if hook in ("*", d)]
    problem = _mrjk_row_problem(hook, op, prio, cmd, row_drivers)
    if problem:
        notes.append("%s: %s" % (where, problem))
        return None
    for word in _read_words(cmd):
        if any(c in word for c in "*?["):
            notes.append("%s: the controller expands %r as a file name pattern at run time; imported as "
                         "the literal word" % (where, word))
    if "\r" in cmd:
        notes.append("%s: a carriage return (a DOS line end) ends the command's last word, in the "
                     "controller and as imported (a command without arguments is then not found)" % where)
    return (prio, cmd), [(d, op, obj, number) for d in row_drivers if op == "*" or op in EVENTS.get(d, {})]


def _mrjk_row_problem(hook: str, op: str, prio: str, cmd: str, row_drivers: list) -> str:
    """Why a 5-field row is not imported ('' if it is)."""
    if hook != "*" and hook not in MRJK_DRIVERS:
        return "hook %r is not one the controller is installed for; never runs; not imported" % hook
    if not row_drivers:
        return "hooks/%s is not the controller on this host: never runs; not imported" % hook
    if op != "*" and not any(op in EVENTS.get(d, {}) for d in row_drivers):
        return "%r is no operation of %s: never runs; not imported" % (op, "/".join(row_drivers))
    if prio != "*" and not re.fullmatch(r"[ \t]*-?[0-9]{1,6}[ \t]*", prio):
        return "priority %r is not a whole number: not imported (order it by hand)" % prio
    if not cmd.strip():
        return "empty command: the controller runs the event's own arguments as a command; not imported"
    if not _read_words(cmd):
        return ("command %r ends in a backslash: bash's read joins the next command to it; not imported" % cmd)
    return ""


def _mrjk_sort_key(key: tuple) -> tuple:
    """The controller's order: sort -h on the priority, then on the command's leading number, then bytes."""
    prio, cmd = key
    line = ("50" if prio == "*" else prio) + ";" + cmd
    return (_hnum(line.split(";")[0]), _hnum(line.split(";")[1]), line.encode("utf-8", "surrogateescape"))


def _mrjk_entries(groups: dict, on_failure: str) -> list:
    """One wrapper script per (priority, command), with the rules that run it as the controller does."""
    import shlex
    keys = sorted(groups, key=_mrjk_sort_key)
    width = len(str(len(keys)))
    entries, taken = [], set()
    for index, key in enumerate(keys, 1):
        prio, cmd = key
        words = _read_words(cmd)
        slug = os.path.basename(words[0])
        order = 50 if prio == "*" else int(prio)
        rows = groups[key]
        shown = " ".join(words).replace("\n", " ")
        quoted = " ".join(shlex.quote(w) for w in words)
        content = ("#!/bin/sh\n# imported by virthooks from mrjk/libvirt-hook-controller: priority %s, command %s\n"
                   "exec %s \"$@\"\n" % (prio.strip(), shown, quoted))
        for driver in [d for d in MRJK_DRIVERS if any(r[0] == d for r in rows)]:
            parts = _rule_shapes([(op, obj) for d, op, obj, _n in rows if d == driver])
            for part, (ops, objs) in enumerate(parts, 1):
                name = _safe_name("mrjk", str(index).zfill(width), slug, driver, str(part) if len(parts) > 1 else "")
                entries.append({"name": _unique(name, taken), "driver": driver,
                                "objects": ["*"] if objs == ["*"] else [glob_literal(o) for o in objs],
                                "operations": ops, "order": order, "on_failure": on_failure, "content": content})
    return entries


def _rule_shapes(rows) -> list:
    """(operations, objects) of the rules that run a command as often as the controller does.

    Its ``uniq`` at each stage runs on the line that still holds that stage's field: rows that differ
    only in hook or operation merge, but rows with different object fields (``vm1`` and ``*``) stay
    apart, and both run for vm1. So: one rule per object field, with the union of its operations;
    objects that have the same operations share a rule (one event names one object).
    """
    by_object = {}
    for op, obj in rows:
        by_object.setdefault(obj, set()).add(op)
    shapes, specific = [], {}
    for obj in sorted(by_object):
        ops = ["*"] if "*" in by_object[obj] else sorted(by_object[obj])
        if obj == "*":
            shapes.append((ops, ["*"]))
        else:
            specific.setdefault(tuple(ops), []).append(obj)
    for ops, objs in sorted(specific.items()):
        shapes.append((list(ops), objs))
    return shapes


# --- saschpe/libvirt-hook-qemu -------------------------------------------------------------------------

def strip_json_comments(text: str) -> str:
    """// and /* */ comments outside strings removed (what the hook's json_minify accepts)."""
    out, i, n = [], 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def import_saschpe(path: str) -> tuple:
    """({"port_forward": {"guests": ...}} or {}, notes) from saschpe's hooks.json."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        config = json.loads(strip_json_comments(text))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ImportFailed("%s: cannot read it (%s); the hook itself fails on it the same way" % (path, exc))
    if not isinstance(config, dict):
        raise ImportFailed("%s: not a JSON object of guests" % path)
    notes = ["hooks.json: the hook forwards at 'start' and removes at 'stopped' (both again at 'reconnect'); "
             "port_forward adds at 'started begin', removes at 'stopped end', adds again at 'reconnect begin'",
             "hooks.json: the hook also SNATs a guest's own connections to the public address back to it "
             "(hairpin) and clears bridge-nf-call-iptables; port_forward has no equivalent"]
    guests = {}
    for guest, domain in config.items():
        ip, forwards = _saschpe_guest(guest, domain, notes)
        if ip is not None and forwards:
            guests[guest] = {"ip": ip, "forwards": forwards}
        elif ip is not None:
            notes.append("hooks.json %s: no tcp/udp port to forward; not imported" % guest)
    return ({"port_forward": {"guests": guests}} if guests else {}), notes


def _saschpe_guest(guest: str, domain, notes: list) -> tuple:
    """(private address or None, [forward]) of one guest of hooks.json (one domain or a list of them)."""
    where = "hooks.json %s" % guest
    domains = domain if isinstance(domain, list) else [domain]
    ip, forwards, seen = None, [], {}
    for k, dom in enumerate(domains):
        dwhere = where if not isinstance(domain, list) else "%s[%d]" % (where, k)
        if not isinstance(dom, dict) or not isinstance(dom.get("private_ip"), str):
            notes.append("%s: no private_ip: the hook fails on it; not imported" % dwhere)
            continue
        if ip is None:
            ip = dom["private_ip"]
        elif dom["private_ip"] != ip:
            notes.append("%s: a second address %s for the guest: port_forward takes one address per guest; "
                         "not imported" % (dwhere, dom["private_ip"]))
            continue
        _saschpe_lost_keys(dom, dwhere, notes)
        pairs = _saschpe_port_map(dom, dwhere, notes) + _saschpe_port_ranges(dom, dwhere, notes)
        for proto, host, guest_port in pairs:
            if not (1 <= host <= 65535 and 1 <= guest_port <= 65535):
                notes.append("%s: %s port %d -> %d is out of range; not converted" % (dwhere, proto, host, guest_port))
                continue
            if (proto, host) in seen:
                if seen[(proto, host)] != guest_port:
                    notes.append("%s: %s host port %d is forwarded twice; only the first (to %d) converted"
                                 % (dwhere, proto, host, seen[(proto, host)]))
                continue
            seen[(proto, host)] = guest_port
            forwards.append({"host_port": host, "guest_port": guest_port, "proto": proto})
    return ip, forwards


def _saschpe_lost_keys(dom: dict, dwhere: str, notes: list) -> None:
    """A note for each key of a domain that port_forward has no equivalent for."""
    lost = (("public_ip", "only to the host address %r (port_forward forwards to every local address)"),
            ("source_ip", "only from %r (port_forward has no source allow list)"),
            ("interface", "accepting forwarded traffic out of interface %r (port_forward has no "
             "interface match)"))
    for key, what in lost:
        if key in dom:
            notes.append("%s: %s: forwards %s; not converted" % (dwhere, key, what % (dom[key],)))
    if "public_ip" not in dom:
        notes.append("%s: the hook forwards only to the address of the default route's interface; "
                     "port_forward forwards to every local address" % dwhere)
    known_keys = {"private_ip", "public_ip", "source_ip", "interface", "port_map", "port_range"}
    for key in sorted(set(dom) - known_keys):
        notes.append("%s: unknown key %r (the hook's schema rejects it); not converted" % (dwhere, key))


def _saschpe_port_map(dom: dict, dwhere: str, notes: list) -> list:
    """[(proto, host port, guest port)] of a domain's port_map."""
    pairs = []
    port_map = dom.get("port_map") or {}
    for proto in port_map if isinstance(port_map, dict) else []:
        if proto not in ("tcp", "udp"):
            notes.append("%s: port_map %r: port_forward forwards tcp and udp only; not converted" % (dwhere, proto))
            continue
        for ports in port_map[proto] if isinstance(port_map[proto], list) else []:
            pair = ports if isinstance(ports, list) else [ports, ports]
            if len(pair) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) for p in pair):
                notes.append("%s: port_map %s entry %r is not a port or [public, private]; not converted"
                             % (dwhere, proto, ports))
                continue
            pairs.append((proto, pair[0], pair[1]))
    return pairs


def _saschpe_port_ranges(dom: dict, dwhere: str, notes: list) -> list:
    """[(proto, port, port)] of a domain's port_range entries."""
    pairs = []
    for rng in dom.get("port_range") or []:
        ok = isinstance(rng, dict) and all(isinstance(rng.get(k), int) for k in ("init_port", "ports_num"))
        proto = rng.get("protocol") if isinstance(rng, dict) else None
        if not ok or proto not in ("tcp", "udp") or not 0 < rng["ports_num"] <= PORT_RANGE_MAX:
            notes.append("%s: port_range %r: not a tcp/udp range of 1-%d ports; not converted"
                         % (dwhere, rng, PORT_RANGE_MAX))
            continue
        pairs.extend((proto, p, p) for p in range(rng["init_port"], rng["init_port"] + rng["ports_num"]))
    return pairs


# --- output ------------------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_YAML_WORDS = frozenset(("y", "n", "yes", "no", "on", "off", "true", "false", "null"))
_BLOCK_BAD = frozenset("\r\x7f\x85\u2028\u2029\ufeff")


def _yaml_string(text: str) -> str:
    """A double-quoted YAML scalar: JSON's escapes are YAML's (ASCII only, every control escaped)."""
    return json.dumps(text, ensure_ascii=True)


def _block_ok(text: str) -> bool:
    return ("\n" in text and not text.startswith((" ", "\n")) and text.endswith("\n") and not text.endswith("\n\n")
            and all((c >= " " or c in "\n\t") and c not in _BLOCK_BAD for c in text)
            and not any(line[:1] in (" ", "\t") and not line.strip() for line in text.split("\n")))


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS else _yaml_string(key)


def _scalar(value) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    return _yaml_string(value)


def _emit(value, indent: int, lines: list) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            _emit_item(pad + _key(key) + ":", item, indent, lines)
    else:
        for item in value:
            if isinstance(item, dict) and item:
                sub = []
                _emit(item, indent + 2, sub)
                lines.append(pad + "- " + sub[0][indent + 2:])
                lines.extend(sub[1:])
            else:
                _emit_item(pad + "-", item, indent, lines)


def _emit_item(head: str, item, indent: int, lines: list) -> None:
    if isinstance(item, list) and item and all(not isinstance(v, (dict, list)) for v in item):
        lines.append(head + " [" + ", ".join(_scalar(v) for v in item) + "]")    # JSON's flow form is YAML
    elif isinstance(item, (dict, list)) and item:
        lines.append(head)
        _emit(item, indent + 2, lines)
    elif isinstance(item, (dict, list)):
        lines.append(head + (" {}" if isinstance(item, dict) else " []"))
    elif isinstance(item, str) and _block_ok(item):
        lines.append(head + " |")
        lines.extend((" " * (indent + 2) + line) if line else "" for line in item[:-1].split("\n"))
    else:
        lines.append(head + " " + _scalar(item))


def to_yaml(data: dict, comments=()) -> str:
    """YAML for the subset used here (dicts with string keys, lists, strings, ints, bools, null)."""
    lines = ["---"]
    for comment in comments:
        lines.append(("# " + comment.replace("\n", " ").replace("\r", " ")).rstrip())
    _emit(data, 0, lines)
    return "\n".join(lines) + "\n"


def import_host(hooks_dir: str, sources=("tree", "mrjk", "saschpe"), mrjk_conf=None, saschpe_config=None,
                explicit=False) -> tuple:
    """(role variables, notes, sources found) for what this host has; ImportFailed for a source given
    explicitly that cannot be read."""
    scripts, library, notes, found = [], {}, [], []
    if "tree" in sources:
        entries, tree_notes = import_tree(hooks_dir)
        if entries or tree_notes:
            found.append("tree")
            scripts.extend(entries)
            notes.extend("tree: " + n for n in tree_notes)
            if entries:
                notes.append("tree: the helper has no timeout; these scripts get the default 30 s")
    if "mrjk" in sources:
        conf = mrjk_conf or hooks_dir + "/conf"
        if explicit or os.path.exists(conf + "/rules.conf") or os.path.isdir(conf + "/rules.d"):
            drivers = mrjk_drivers(hooks_dir)
            if not drivers:
                drivers = MRJK_DRIVERS
                notes.append("mrjk: no hooks/<driver> of %s links to the controller: imported for all of %s"
                             % (hooks_dir, ", ".join(MRJK_DRIVERS)))
            entries, mrjk_notes = import_mrjk(conf, drivers)
            found.append("mrjk")
            scripts.extend(entries)
            notes.extend("mrjk: " + n for n in mrjk_notes)
            if entries:
                notes.append("mrjk: the controller has no timeout; these scripts get the default 30 s")
    if "saschpe" in sources:
        path = saschpe_config or hooks_dir + "/hooks.json"
        if explicit or os.path.isfile(path):
            blocks, s_notes = import_saschpe(path)
            found.append("saschpe")
            library.update(blocks)
            notes.extend("saschpe: " + n for n in s_notes)
    variables = {}
    if scripts:
        variables["libvirt_hooks_scripts"] = scripts
    if library:
        variables["libvirt_hooks_library"] = library
    if "tree" in found and any(e["name"].startswith("tree-") for e in scripts):
        variables["libvirt_hooks_tree"] = {"enabled": False}
        notes.append("tree: libvirt_hooks_tree.enabled is false: the imported scripts replace the tree "
                     "(else each would run twice); remove the tree once deployed")
    if found:
        notes.append("move the peer's hooks/<driver> entry points away (or set libvirt_hooks_foreign: adopt only "
                     "if you keep the peer running too), else the role refuses to replace them")
    return variables, notes, found


def cmd_import(args, out, err) -> int:
    sources = tuple(args.source) if args.source else ("tree", "mrjk", "saschpe")
    try:
        variables, notes, found = import_host(args.hooks_dir, sources, args.mrjk_conf, args.saschpe_config,
                                              explicit=bool(args.source))
    except (ImportFailed, OSError) as exc:
        err.write("virthooks import: %s\n" % exc)
        return 1
    if not found:
        err.write("virthooks import: nothing to import in %s (no per-guest tree, conf/rules.conf or hooks.json)\n"
                  % args.hooks_dir)
        return 1
    for note in notes:
        err.write("virthooks import: note: %s\n" % note)
    if args.json or args.format == "json":
        out.write(json.dumps(variables, indent=2, sort_keys=False) + "\n")
    else:
        comments = ["virthooks import from %s (%s): paste into group_vars/host_vars" % (args.hooks_dir, ", ".join(found))]
        if notes:
            comments.append("NOT converted, or converted with a difference (read each):")
            comments.extend("- " + n for n in notes)
        out.write(to_yaml(variables, comments))
    return 0


def add_import_parser(sub) -> None:
    imp = sub.add_parser("import", help="turn a per-guest tree, mrjk rules.conf or saschpe hooks.json on this host "
                         "into role variables (YAML for group_vars)")
    imp.add_argument("--source", action="append", choices=("tree", "mrjk", "saschpe"),
                     help="import only this (repeatable; default: every one found)")
    imp.add_argument("--mrjk-conf", help="mrjk's conf directory (default: HOOKS_DIR/conf)")
    imp.add_argument("--saschpe-config", help="saschpe's hooks.json (default: HOOKS_DIR/hooks.json)")
    imp.add_argument("--format", choices=("yaml", "json"), default="yaml")
    imp.add_argument("--json", action="store_true", help="same as --format json")
