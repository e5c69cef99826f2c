# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: fleet_report
short_description: Fold the hooks_stats results of many hosts into one fleet report
version_added: 0.1.0
author:
  - virthooks maintainers (@virthooks)
description:
  - Takes C(hostvars) and the hosts of the report, reads each host's registered
    M(virthooks.libvirt.hooks_stats) result, and returns the document written as C(report.json)
    by C(playbooks/report.yml), with one entry per host (hosts that were unreachable, failed, or have
    no runtime are listed as such), fleet totals, fleet-wide per-script figures, the text table
    and the bars of the charts of C(report.html).
positional: _input, hosts
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The hosts of the report, in order.
    type: list
    elements: str
    required: true
  result_var:
    description: Name of the variable each host registered the module result in.
    type: str
    default: libvirt_hooks_stats
  since:
    description: The window asked for, as given (shown in the report).
    type: str
    default: 24h
  max_failures:
    description: The failure budget of the fleet (shown, and C(over_budget) set), or V(null).
    type: int
"""

EXAMPLES = r"""
- name: Build the report on the controller
  ansible.builtin.set_fact:
    report: "{{ hostvars | virthooks.libvirt.fleet_report(query('ansible.builtin.inventory_hostnames', 'hypervisors')) }}"
"""

RETURN = r"""
_value:
  description: The report (see docs/fleet-operations.md, "Fleet report", for every field).
  type: dict
"""

import time

from ansible.errors import AnsibleFilterError

CHART_WIDTH = 420.0
FAIL_KEYS = ("failed", "timeouts", "refused", "error", "killed")


def _host_entry(name: str, result) -> dict:
    entry = {"host": name, "status": "ok", "message": "", "calls": 0, "failures": 0, "timeouts": 0,
             "refused": 0, "p95_ms": None, "max_ms": None, "worst_script": None, "stats": {}}
    if not isinstance(result, dict) or not result:
        entry.update(status="unreachable", message="no result: the host was not reached")
    elif result.get("unreachable"):
        entry.update(status="unreachable", message=str(result.get("msg", "unreachable")).strip())
    elif result.get("failed"):
        entry.update(status="failed", message=str(result.get("msg", "the module failed")).strip())
    elif not result.get("runtime") and not result.get("stats"):
        entry.update(status="no-runtime", message=str(result.get("message", "no virthooks runtime")))
    else:
        stats = result.get("stats") or {}
        entry.update(calls=stats.get("calls", 0), failures=stats.get("failures", 0),
                     timeouts=stats.get("timeouts", 0), refused=stats.get("refused", 0),
                     p95_ms=(stats.get("duration_ms") or {}).get("p95"),
                     max_ms=(stats.get("duration_ms") or {}).get("max"),
                     worst_script=stats.get("worst_script"), stats=stats, log_file=result.get("log_file"))
        if not stats:
            entry["message"] = str(result.get("message", ""))
    return entry


def _fleet_scripts(hosts: list) -> list:
    merged = {}
    for entry in hosts:
        for s in entry["stats"].get("scripts", []):
            row = merged.setdefault(s["name"], {"name": s["name"], "hosts": 0, "runs": 0, "ok": 0, "failed": 0,
                                                "timeouts": 0, "refused": 0, "failures": 0, "p95_ms_max": None})
            row["hosts"] += 1
            for key in ("runs", "ok", "failed", "timeouts", "refused", "failures"):
                row[key] += s.get(key, 0)
            p95 = (s.get("duration_ms") or {}).get("p95")
            if p95 is not None and (row["p95_ms_max"] is None or p95 > row["p95_ms_max"]):
                row["p95_ms_max"] = p95
    return sorted(merged.values(), key=lambda r: (-r["failures"], r["name"]))


def _bars(items, unit: str) -> list:
    top = max([v for _l, v in items if v] or [0])
    bars = []
    for label, value in items:
        width = round(CHART_WIDTH * value / top, 1) if top and value else 0.0
        shown = "-" if value is None else ("%g %s" % (value, unit)).strip()
        bars.append({"label": label, "value": value, "width": width, "text": shown})
    return bars


def _table(hosts: list, totals: dict) -> list:
    header = ("host", "status", "calls", "failures", "timeouts", "p95 ms", "worst script")
    rows = [header]
    for e in hosts:
        rows.append((e["host"], e["status"], str(e["calls"]), str(e["failures"]), str(e["timeouts"]),
                     "-" if e["p95_ms"] is None else "%g" % e["p95_ms"], e["worst_script"] or "-"))
    rows.append(("FLEET (%d hosts)" % totals["hosts"], "%d ok" % totals["hosts_ok"], str(totals["calls"]),
                 str(totals["failures"]), str(totals["timeouts"]),
                 "-" if totals["p95_ms_max"] is None else "%g" % totals["p95_ms_max"], totals["worst_script"] or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def fleet_report(hostvars, hosts, result_var="libvirt_hooks_stats", since="24h", max_failures=None) -> dict:
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("fleet_report: hosts must be a list of host names, not %s" % type(hosts).__name__)
    entries = []
    for name in hosts:
        try:
            result = hostvars[name].get(result_var)
        except (KeyError, AttributeError):
            result = None
        entries.append(_host_entry(str(name), result))
    scripts = _fleet_scripts(entries)
    reached = [e for e in entries if e["status"] == "ok"]
    p95s = [e["p95_ms"] for e in reached if e["p95_ms"] is not None]
    worst = next((s["name"] for s in scripts if s["failures"]), None)
    totals = {"hosts": len(entries), "hosts_ok": len(reached),
              "unreachable": [e["host"] for e in entries if e["status"] == "unreachable"],
              "failed": [e["host"] for e in entries if e["status"] == "failed"],
              "no_runtime": [e["host"] for e in entries if e["status"] == "no-runtime"],
              "calls": sum(e["calls"] for e in reached), "failures": sum(e["failures"] for e in reached),
              "timeouts": sum(e["timeouts"] for e in reached), "refused": sum(e["refused"] for e in reached),
              "unparsable": sum(e["stats"].get("unparsable", {}).get("count", 0) for e in reached),
              "p95_ms_max": max(p95s) if p95s else None, "worst_script": worst}
    budget = None if max_failures in (None, "") else int(max_failures)
    report = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "since": str(since),
        "max_failures": budget, "over_budget": budget is not None and totals["failures"] > budget,
        "totals": totals, "hosts": entries, "scripts": scripts,
        "charts": [
            {"id": "chart-p95", "title": "p95 call latency per host", "unit": "ms",
             "bars": _bars([(e["host"], e["p95_ms"]) for e in reached], "ms")},
            {"id": "chart-host-failures", "title": "Failures per host", "unit": "",
             "bars": _bars([(e["host"], e["failures"]) for e in reached], "")},
            {"id": "chart-script-failures", "title": "Failures per script (fleet)", "unit": "",
             "bars": _bars([(s["name"], s["failures"]) for s in scripts], "")},
        ],
    }
    report["table"] = _table(entries, totals)
    return report


class FilterModule(object):
    def filters(self):
        return {"fleet_report": fleet_report}
