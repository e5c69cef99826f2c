# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: drift_report
short_description: Compare the hooks of migration peers
version_added: 0.1.0
author:
  - virthooks maintainers (@virthooks)
description:
  - Takes C(hostvars) and the peer groups (group name to its hosts), reads each host's registered
    M(virthooks.libvirt.hooks_state) result, and returns the document written as C(drift.json) by
    C(playbooks/drift.yml) (C(virthooks.libvirt.drift)).
  - Per group, for each aspect (C(runtime), C(rules), C(scripts), C(entry_points), C(tree), C(xpath)) whose
    value is not the same on every host, the variants with the hosts that hold each (the majority first)
    and, per rule, script, entry point or tree file, the value each host has; per guest and event, the
    scripts each host would run, and the guests whose scripts differ between hosts.
  - A host that was unreachable or whose module failed is listed as unreadable; it counts as drift, since
    nothing says it agrees.
  - Host drop-in rule files (C(hooks/virthooks/rules.d/*.json), which no deploy manages) are listed per group
    as C(unmanaged_dropins), each host's files with their digest and the drivers they add rules for; they
    are not compared and are not drift unless O(dropins_fail) is set.
positional: _input, groups, peer_groups
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  groups:
    description: Group name to the list of its hosts (C(groups)).
    type: dict
    required: true
  peer_groups:
    description: The groups to compare, each on its own; V(null) compares every group of O(groups).
      A name that is not in O(groups) is a group without hosts.
    type: list
    elements: str
  result_var:
    description: Name of the variable each host registered the module result in.
    type: str
    default: libvirt_hooks_state
  read_var:
    description: Name of the variable each host registered the result of an earlier read in (the first
      M(virthooks.libvirt.hooks_state) task of C(playbooks/drift.yml), which reads the guests); a host
      where it failed or was skipped is unreadable, whatever O(result_var) holds. V(null) or empty to
      look at O(result_var) only.
    type: str
    default: __libvirt_hooks_guests
  dropins_fail:
    description: Count a host that holds any unmanaged drop-in rule file as drift (its group then fails the
      check), even when its peers hold the same ones.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Compare the peers of each group
  ansible.builtin.set_fact:
    drift: "{{ hostvars | virthooks.libvirt.drift_report(groups, ['hypervisors']) }}"
"""

RETURN = r"""
_value:
  description: The report (see docs/fleet-operations.md, "Drift check", for every field).
  type: dict
"""

import json
import time

ASPECTS = ("runtime", "rules", "scripts", "entry_points", "tree", "xpath")
DIGEST_SHOWN = 12


def _key(value) -> str:
    return json.dumps(value, sort_keys=True)


def _readable(result) -> str:
    """'' when a registered hooks_state result can be compared, else why not."""
    if not isinstance(result, dict) or not result:
        return "no result (the host was not reached by the play)"
    if result.get("unreachable"):
        return "unreachable: %s" % result.get("msg", "")
    if result.get("failed"):
        return "failed: %s" % result.get("msg", "")
    if "scripts" not in result:
        return "no hooks_state result"
    return ""


def aspect_value(result: dict, aspect: str):
    """What is compared of one aspect."""
    if aspect == "rules":
        return {"config_error": result["config_error"]} if result.get("config_error") else result.get("rules", [])
    if aspect == "xpath":
        return result.get("xpath", {}).get("unsatisfied", [])
    return result.get(aspect)


def variants(values: dict, order: list) -> list:
    """[{'hosts': [...], 'value': v}], the variant most hosts hold first (then by first host)."""
    groups = {}
    for host in order:
        groups.setdefault(_key(values[host]), []).append(host)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), order.index(item[1][0])))
    return [{"hosts": hosts, "value": values[hosts[0]]} for _k, hosts in ordered]


def _as_items(aspect: str, value) -> dict:
    if aspect == "rules":
        if isinstance(value, dict):
            return {"config.json": value.get("config_error")}
        return {rule.get("name"): rule for rule in value}
    if aspect == "runtime":
        return dict(value or {})
    if aspect == "xpath":
        return {name: "lxml missing" for name in value}
    return dict(value or {})


def _short(value):
    if isinstance(value, str) and len(value) >= 64:
        return value[:DIGEST_SHOWN] + value[64:]
    return value


def item_differences(aspect: str, values: dict, order: list) -> dict:
    """{item: {host: value or None}} for each item (rule, script, file...) not the same on every host."""
    items = {host: _as_items(aspect, values[host]) for host in order}
    names = sorted({name for per_host in items.values() for name in per_host}, key=str)
    out = {}
    for name in names:
        per_host = {host: items[host].get(name) for host in order}
        if len({_key(v) for v in per_host.values()}) > 1:
            entry = {host: _short(v) for host, v in per_host.items()}
            if aspect == "rules":
                fields = sorted({f for v in per_host.values() if isinstance(v, dict) for f in v
                                 if len({_key((w or {}).get(f) if isinstance(w, dict) else None)
                                         for w in per_host.values()}) > 1})
                entry = {"fields": fields if all(isinstance(v, dict) for v in per_host.values()) else ["present"],
                         "hosts": {host: ({f: v.get(f) for f in fields} if isinstance(v, dict) else None)
                                   for host, v in per_host.items()}}
            out[str(name)] = entry
    return out


def guest_differences(results: dict, order: list) -> tuple:
    """({guest: {event: {host: [scripts]}}}, [differences])."""
    steps = {}
    for host in order:
        for guest, per_event in (results[host].get("steps") or {}).items():
            for event, names in per_event.items():
                steps.setdefault(guest, {}).setdefault(event, {})[host] = names
    differences = []
    for guest in sorted(steps):
        for event in sorted(steps[guest]):
            per_host = {host: steps[guest][event].get(host) for host in order}
            found = variants(per_host, order)
            if len(found) > 1:
                differences.append({"guest": guest, "event": event,
                                    "variants": [{"hosts": v["hosts"], "scripts": v["value"]} for v in found]})
    return steps, differences


def _read_failure(result) -> str:
    """'' when the earlier read of a host went through, else why not (a host never reached: '',
    the result of the read that matters says so)."""
    if not isinstance(result, dict) or not result:
        return ""
    if result.get("skipped"):
        return "the read of its guests was skipped"
    why = _readable(dict(result, scripts=None))
    return "reading its hooks and guests %s" % why if why else ""


def unmanaged_dropins(results: dict, order: list) -> dict:
    """{host: {'rules.d/<file>': {'digest', 'drivers'}}} of the hosts that hold drop-in rule files."""
    found = {}
    for host in order:
        files = results[host].get("dropins") or {}
        if files:
            found[host] = {name: {"digest": entry.get("digest"), "drivers": entry.get("drivers") or [],
                                  "rules": entry.get("rules") or [], "problem": entry.get("problem")}
                           for name, entry in sorted(files.items())}
    return found


def group_report(hostvars, name: str, hosts: list, result_var: str, read_var: str = "",
                 dropins_fail: bool = False) -> dict:
    results, unreadable = {}, []
    for host in hosts:
        values = hostvars.get(host, {}) if host in hostvars else {}
        result = values.get(result_var)
        why = (_read_failure(values.get(read_var)) if read_var else "") or _readable(result)
        if why:
            unreadable.append({"host": host, "reason": why.strip()})
        else:
            results[host] = result
    order = [h for h in hosts if h in results]
    differences = []
    for aspect in ASPECTS:
        values = {host: aspect_value(results[host], aspect) for host in order}
        found = variants(values, order)
        if len(found) > 1:
            differences.append({"aspect": aspect, "variants": found, "items": item_differences(aspect, values, order)})
    steps, guests_differ = guest_differences(results, order)
    dropins = unmanaged_dropins(results, order)
    return {"group": name, "hosts": list(hosts), "compared": order, "unreadable": unreadable,
            "differences": differences, "guests": steps, "guest_differences": guests_differ,
            "unmanaged_dropins": dropins,
            "drift": bool(unreadable or differences or guests_differ or (dropins_fail and dropins))}


def _hosts_of(found: list) -> str:
    return " | ".join(",".join(v["hosts"]) for v in found)


def _item_line(entry: dict) -> str:
    """'host-a,host-b=value | host-c=missing', the hosts grouped by the value they hold."""
    prefix = ""
    if "fields" in entry and "hosts" in entry:
        prefix = "fields %s; " % ",".join(entry["fields"])
        entry = entry["hosts"]
    by_value = {}
    for host, value in entry.items():
        by_value.setdefault(_key(value), []).append(host)
    return prefix + " | ".join("%s=%s" % (",".join(hosts), "missing" if value == "null" else value.strip('"'))
                               for value, hosts in by_value.items())


def _dropin_lines(dropins: dict) -> list:
    """'unmanaged drop-in host: rules.d/<file> (drivers; digest or why it is unreadable)', per host and file."""
    return ["unmanaged drop-in %s: %s (%s; %s)"
            % (host, name, ", ".join(entry["drivers"]) or "no rules", entry["problem"] or _short(entry["digest"]))
            for host, files in dropins.items() for name, entry in files.items()]


def table(groups: list) -> str:
    lines = ["%-20s %5s  %-6s %s" % ("group", "hosts", "status", "what differs (variants: hosts, majority first)")]
    for group in groups:
        what = ["%s (%s)" % (d["aspect"], _hosts_of(d["variants"])) for d in group["differences"]]
        what += ["guest %s %s (%s)" % (d["guest"], d["event"], " | ".join(
            "%s: %s" % (",".join(v["hosts"]), ", ".join(v["scripts"] or ["nothing"])) for v in d["variants"]))
            for d in group["guest_differences"]]
        what += ["unreadable %s: %s" % (u["host"], u["reason"]) for u in group["unreadable"]]
        what += _dropin_lines(group.get("unmanaged_dropins") or {})
        lines.append("%-20s %5d  %-6s %s" % (group["group"], len(group["hosts"]), "DRIFT" if group["drift"] else "same",
                                             what[0] if what else "-"))
        lines.extend("%-34s %s" % ("", w) for w in what[1:])
        for d in group["differences"]:
            for item, entry in d["items"].items():
                lines.append("%-34s   %s %s: %s" % ("", d["aspect"], item, _item_line(entry)))
    return "\n".join(lines)


def drift_report(hostvars, groups: dict, peer_groups=None, result_var: str = "libvirt_hooks_state",
                 read_var: str = "__libvirt_hooks_guests", dropins_fail: bool = False) -> dict:
    names = list(groups) if peer_groups is None else list(peer_groups)
    reports = [group_report(hostvars, name, list(groups.get(name) or []), result_var, read_var or "", bool(dropins_fail))
               for name in names]
    return {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "drift": any(g["drift"] for g in reports),
            "groups": reports, "table": table(reports)}


class FilterModule(object):
    def filters(self):
        return {"drift_report": drift_report}
