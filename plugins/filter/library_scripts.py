# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: library_scripts
short_description: Expand the virthooks library of ready-made hooks into ordinary script declarations
version_added: 0.2.0
author:
  - virthooks maintainers (@virthooks)
description:
  - Takes C(libvirt_hooks_library) of the role C(virthooks.libvirt.libvirt_hooks) (building block -> its parameters),
    validates every parameter, and returns script declarations like the entries of C(libvirt_hooks_scripts),
    named C(lib-<block>-<step>), each with its rule (driver, guests, events, XPath condition, timeout, failure
    policy), its content (a launcher of a few lines that runs the block's step from the runtime installed on
    the host, C(virthooks_runtime/library/<block>.py)) and its C(secrets) (C(PARAMS), the block's parameters
    as JSON).
  - The parameters are never part of the script text (which diffs show); they reach the script on the host
    only as the root-only secret file C($VIRTHOOKS_SECRETS/PARAMS), since some of them are credentials
    (the notify URL's user:password, its headers and query string).
  - Fails on the controller, before any host is touched, naming the block and the parameter at fault.
positional: _input, python
options:
  _input:
    description: Block name -> parameters (C(libvirt_hooks_library)).
    type: dict
    required: true
  python:
    description:
      - Absolute path of the Python (>= 3.9) the scripts run with on the host.
      - With V(""), the Python is left to the host, and each script is then C(launcher) (its block and step)
        instead of C(content), which M(virthooks.libvirt.hook_runtime) writes for the Python the hooks run with
        there (the role does this, so that a deploy needs no module call before it).
    type: str
    default: /usr/bin/python3
"""

EXAMPLES = r"""
- name: Expand the library
  ansible.builtin.set_fact:
    scripts: "{{ libvirt_hooks_library | virthooks.libvirt.library_scripts('/usr/bin/python3') }}"
"""

RETURN = r"""
_value:
  description:
    - Script declarations, in the format of C(libvirt_hooks_scripts) entries, with C(content), or with
      C(launcher) when O(python) is V("").
  type: list
  elements: dict
"""

import ipaddress
import json
import urllib.parse

from ansible.errors import AnsibleFilterError


# block -> step -> rule fields. Setup steps run before users' scripts (order 30), undo steps after (70).
PREPARE = {"operations": ["prepare"], "suboperations": ["begin"], "order": 30}
RELEASE = {"operations": ["release"], "suboperations": ["end"], "order": 70}
STEPS = {
    "port_forward": {
        "add": {"operations": ["started"], "suboperations": ["begin"], "order": 30},
        "remove": {"operations": ["stopped"], "suboperations": ["end"], "order": 70},
        # A failing reconnect hook kills the running guest: never let a firewall problem do that.
        "readd": {"operations": ["reconnect"], "suboperations": ["begin"], "order": 30, "on_failure": "ignore"},
    },
    "hugepages": {
        "reserve": dict(PREPARE, xpath="/domain/memoryBacking/hugepages", timeout=120),
        "release": dict(RELEASE),
    },
    "disk_snapshot": {
        "snapshot": dict(PREPARE, xpath="/domain/devices/disk/driver[@type='qcow2']", timeout=600),
    },
    "cpu_isolation": {
        "isolate": dict(PREPARE, xpath="/domain/cputune/vcpupin"),
        "restore": dict(RELEASE),
    },
    "vfio_bind": {
        "bind": dict(PREPARE, xpath="/domain/devices/hostdev[@type='pci']"),
        "unbind": dict(RELEASE),
    },
    "notify": {
        "post": {"order": 90},
    },
}
COMMON_KEYS = ("state",)
KEYS = {
    "port_forward": ("guests",),
    "hugepages": ("guests",),
    "disk_snapshot": ("guests", "keep"),
    "cpu_isolation": ("guests", "mode", "units", "cgroups"),
    "vfio_bind": ("guests",),
    "notify": ("url", "guests", "driver", "operations", "suboperations", "timeout", "retries", "headers", "on_failure"),
}
NOTIFY_DRIVERS = ("daemon", "qemu", "lxc", "libxl", "bhyve", "network")
# RFC 9110 token: what a header name may be made of.
HEADER_NAME_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _Errors(list):
    def add(self, where, msg):
        self.append("libvirt_hooks_library.%s: %s" % (where, msg))


def _glob_literal(name):
    """A glob that matches exactly this name (libvirt names may contain *, ? and [)."""
    return "".join("[%s]" % c if c in "*?[" else c for c in name)


def _str_list(value, where, errors, default):
    if value is None:
        return list(default)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        errors.add(where, "must be a non-empty list of non-empty strings, got %r" % (value,))
        return list(default)
    return list(value)


def _int(value, where, errors, default, lo, hi):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        errors.add(where, "must be an integer from %d to %d, got %r" % (lo, hi, value))
        return default
    return value


PF_GUEST_KEYS = ("ip", "forwards", "external", "sources", "host_address", "interface")
PF_FORWARD_KEYS = ("host_port", "guest_port", "proto")
# An interface name as the kernel allows it (at most 15 bytes), or an nft wildcard ending in *.
PF_INTERFACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@-")


def _address(value, where, errors, what):
    """An IP address without an IPv6 zone id (nft cannot match one: every start would be refused), or None."""
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        errors.add(where, "must be %s, got %r" % (what, value))
        return None
    if getattr(address, "scope_id", None):
        errors.add(where, "must be an address without an IPv6 zone id (%%%s), got %r" % (address.scope_id, value))
        return None
    return address


def _port_span(value):
    """8080 or '6000-6010' -> (lo, hi), or None when it is neither a port nor a range of ports."""
    if isinstance(value, int) and not isinstance(value, bool):
        lo = hi = value
    elif isinstance(value, str) and value.count("-") == 1 and all(p.strip().isdigit() for p in value.split("-")):
        lo, hi = (int(p) for p in value.split("-"))
    else:
        return None
    return (lo, hi) if 1 <= lo <= hi <= 65535 else None


def _port_text(span):
    """(8080, 8080) -> 8080; (6000, 6010) -> '6000-6010' (as a user writes them)."""
    return span[0] if span[0] == span[1] else "%d-%d" % span


def _pf_forward(fwd, fwhere, errors):
    """One forward, checked: {host_port, guest_port, proto} (ranges as 'lo-hi'), or None."""
    if not isinstance(fwd, dict):
        errors.add(fwhere, "must be a mapping with host_port, guest_port, proto")
        return None
    unknown = sorted(set(fwd) - set(PF_FORWARD_KEYS))
    if unknown:
        errors.add(fwhere, "unknown key(s) %s (valid: host_port, guest_port, proto)" % ", ".join(unknown))
    host = _port_span(fwd.get("host_port"))
    guest = _port_span(fwd["guest_port"]) if fwd.get("guest_port") is not None else (host if host and host[0] != host[1] else None)
    ok = True
    for key, span in (("host_port", host), ("guest_port", guest)):
        if span is None:
            errors.add("%s.%s" % (fwhere, key), "must be a port number 1-65535 or a range 'first-last' of them%s, got %r"
                       % (" (it may be left out for a range: the same ports)" if key == "guest_port" else "", fwd.get(key)))
            ok = False
    if ok and host != guest and (host[0] != host[1] or guest[0] != guest[1]):
        errors.add(fwhere, "a range of host ports forwards to the same ports of the guest: give guest_port %s or "
                   "leave it out, got %r" % ("%d-%d" % host if host[0] != host[1] else host[0], fwd.get("guest_port")))
        ok = False
    proto = fwd.get("proto", "tcp")
    if proto not in ("tcp", "udp"):
        errors.add(fwhere + ".proto", "must be tcp or udp, got %r" % (proto,))
        ok = False
    if not ok:
        return None
    return {"host_port": _port_text(host), "guest_port": _port_text(guest), "proto": proto}


def _pf_options(cfg, where, errors, family):
    """The guest's optional matches and external forwarding, checked against its address family."""
    out = {}
    if not isinstance(cfg.get("external", False), bool):
        errors.add(where + ".external", "must be true or false, got %r" % (cfg.get("external"),))
    elif cfg.get("external"):
        out["external"] = True
    if cfg.get("host_address") is not None:
        host = _address(cfg["host_address"], where + ".host_address", errors, "one of the host's IPv4 or IPv6 addresses")
        if host is not None and host.version != family:
            errors.add(where + ".host_address", "must be an IPv%d address like the guest's ip, got %r" % (family, str(host)))
        elif host is not None:
            out["host_address"] = str(host)
    sources = cfg.get("sources")
    if sources is not None:
        if not isinstance(sources, list) or not sources:
            errors.add(where + ".sources", "must be a non-empty list of addresses or networks, got %r" % (sources,))
            sources = []
        out["sources"] = []
        for i, source in enumerate(sources):
            try:
                network = ipaddress.ip_network(str(source), strict=False)
            except ValueError:
                errors.add("%s.sources[%d]" % (where, i), "must be an IP address or network, got %r" % (source,))
                continue
            if network.version != family:
                errors.add("%s.sources[%d]" % (where, i), "must be IPv%d like the guest's ip, got %r" % (family, source))
                continue
            out["sources"].append(str(network))
    interface = cfg.get("interface")
    if interface is not None:
        name = interface[:-1] if isinstance(interface, str) and interface.endswith("*") else interface
        if not isinstance(name, str) or not name or len(interface) > 15 or not set(name) <= PF_INTERFACE_CHARS:
            errors.add(where + ".interface", "must be a network interface name (at most 15 characters of letters, "
                       "digits, _.:@-, or a prefix ending in *), got %r" % (interface,))
        else:
            out["interface"] = interface
    return out


def _pf_guest(name, cfg, errors):
    """One guest's configuration, checked: {ip, forwards, ...}, or None."""
    where = "port_forward.guests.%s" % name
    if not isinstance(name, str) or not name or "/" in name or "\n" in name:
        errors.add(where, "not a valid guest name")
        return None
    if not isinstance(cfg, dict):
        errors.add(where, "must be a mapping with ip and forwards, got %r" % (cfg,))
        return None
    unknown = sorted(set(cfg) - set(PF_GUEST_KEYS))
    if unknown:
        errors.add(where, "unknown key(s) %s (valid: %s)" % (", ".join(unknown), ", ".join(PF_GUEST_KEYS)))
    address = _address(cfg.get("ip"), where + ".ip", errors, "the guest's IPv4 or IPv6 address")
    if address is None:
        return None
    forwards = cfg.get("forwards")
    if not isinstance(forwards, list) or not forwards:
        errors.add(where + ".forwards", "must be a non-empty list of {host_port, guest_port, proto}")
        return None
    out = [_pf_forward(fwd, "%s.forwards[%d]" % (where, i), errors) for i, fwd in enumerate(forwards)]
    return dict({"ip": str(address), "forwards": out}, **_pf_options(cfg, where, errors, address.version))


def _pf_taken(guests, errors):
    """Refuse a host port (or range) that two forwards would take for the same traffic."""
    taken = []                     # (proto, (lo, hi), host address or None, where)
    for name, cfg in guests.items():
        for i, fwd in enumerate(cfg["forwards"]):
            if fwd is None:
                continue
            where = "libvirt_hooks_library.port_forward.guests.%s.forwards[%d]" % (name, i)
            span, host = _port_span(fwd["host_port"]), cfg.get("host_address")
            for proto, other, other_host, owner in taken:
                if proto == fwd["proto"] and span[0] <= other[1] and other[0] <= span[1] \
                        and (host is None or other_host is None or host == other_host):
                    errors.add(where[len("libvirt_hooks_library."):], "host port %s/%s is already forwarded by %s"
                               % (fwd["proto"], fwd["host_port"], owner))
                    break
            else:
                taken.append((fwd["proto"], span, host, where))


def _port_forward(params, errors):
    guests = params.get("guests")
    if not isinstance(guests, dict) or not guests:
        errors.add("port_forward.guests", "must be a non-empty mapping of guest name to {ip, forwards}, got %r" % (guests,))
        return None, None
    clean = {}
    for name, cfg in guests.items():
        guest = _pf_guest(name, cfg, errors)
        if guest is not None:
            clean[name] = guest
    _pf_taken(clean, errors)
    for guest in clean.values():
        guest["forwards"] = [fwd for fwd in guest["forwards"] if fwd is not None]
    return {"guests": clean}, [_glob_literal(n) for n in sorted(clean)]


def _guests_only(block):
    def check(params, errors):
        guests = _str_list(params.get("guests"), block + ".guests", errors, ["*"])
        return {"guests": guests}, guests
    return check


def _disk_snapshot(params, errors):
    guests = _str_list(params.get("guests"), "disk_snapshot.guests", errors, ["*"])
    keep = _int(params.get("keep"), "disk_snapshot.keep", errors, 3, 1, 1000)
    return {"guests": guests, "keep": keep}, guests


def _cpu_isolation(params, errors):
    guests = _str_list(params.get("guests"), "cpu_isolation.guests", errors, ["*"])
    mode = params.get("mode", "auto")
    if mode not in ("auto", "systemd", "cgroup_v1", "cgroup_v2"):
        errors.add("cpu_isolation.mode", "must be auto, systemd, cgroup_v1 or cgroup_v2, got %r" % (mode,))
    units = _str_list(params.get("units"), "cpu_isolation.units", errors, ["system.slice", "user.slice", "init.scope"])
    cgroups = params.get("cgroups")
    if cgroups is not None:
        cgroups = _str_list(cgroups, "cpu_isolation.cgroups", errors, [])
        for group in cgroups:
            if "/" in group or group.startswith(".") or group.startswith("machine"):
                errors.add("cpu_isolation.cgroups", "%r: give top-level group names other than libvirt's machine*" % group)
    return {"guests": guests, "mode": mode, "units": units, "cgroups": cgroups or []}, guests


def _url_problem(url):
    """Why the notify URL cannot be used, or ''. Never echoes the URL: it may hold credentials."""
    if not isinstance(url, str) or any(ord(c) < 0x21 or ord(c) == 0x7f for c in url):
        return "must be an http:// or https:// URL with a host (a string without spaces or control characters)"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:  # its message may quote the host part, credentials included: not shown
        if "port" in str(exc).lower():
            return "has a port that is not a number from 1 to 65535"
        return "is not a valid URL (a malformed [IPv6] literal or invalid characters in the host part)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if port == 0:
        return "has a port that is not a number from 1 to 65535"
    return ""


def _headers(headers, errors):
    """The headers, checked: names are HTTP tokens, values have no CR/LF or other control characters
    (they would split the request, and libvirt would show the secret in the failure). Errors name the
    header, never its value."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        errors.add("notify.headers", "must be a mapping of header name to string value")
        return {}
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not set(name) <= HEADER_NAME_CHARS:
            errors.add("notify.headers", "header name %r is not a valid HTTP header name" % (name,))
        elif not isinstance(value, str):
            errors.add("notify.headers.%s" % name, "must be a string")
        elif any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7f for c in value):
            errors.add("notify.headers.%s" % name, "its value holds a CR, LF or other control character "
                       "(a YAML | block adds a trailing newline: use >- or a quoted string)")
    return headers


def _notify(params, errors):
    url = params.get("url")
    problem = _url_problem(url)
    if problem:
        errors.add("notify.url", problem)
    guests = _str_list(params.get("guests"), "notify.guests", errors, ["*"])
    driver = params.get("driver", "qemu")
    if driver not in NOTIFY_DRIVERS:
        errors.add("notify.driver", "must be one of %s, got %r" % (", ".join(NOTIFY_DRIVERS), driver))
    operations = _str_list(params.get("operations"), "notify.operations", errors, ["started", "stopped"])
    suboperations = _str_list(params.get("suboperations"), "notify.suboperations", errors, ["*"])
    timeout = _int(params.get("timeout"), "notify.timeout", errors, 5, 1, 120)
    retries = _int(params.get("retries"), "notify.retries", errors, 2, 0, 10)
    headers = _headers(params.get("headers"), errors)
    on_failure = params.get("on_failure", "ignore")
    if on_failure not in ("fail", "ignore"):
        errors.add("notify.on_failure", "must be fail or ignore, got %r" % (on_failure,))
    clean = {"url": url, "timeout": timeout, "retries": retries, "headers": headers, "driver": driver}
    rule = {"driver": driver, "operations": operations, "suboperations": suboperations, "on_failure": on_failure,
            # the whole retry budget: each attempt, the back-off sleeps between them, and a margin
            "timeout": timeout * (retries + 1) + sum(min(2 ** i, 5) for i in range(retries)) + 5}
    return clean, (guests, rule)


CHECKS = {
    "port_forward": _port_forward,
    "hugepages": _guests_only("hugepages"),
    "disk_snapshot": _disk_snapshot,
    "cpu_isolation": _cpu_isolation,
    "vfio_bind": _guests_only("vfio_bind"),
    "notify": _notify,
}


def params_secret(params: dict) -> dict:
    """The secrets of a block's script: its parameters as JSON, in the file (PARAMS_FILE) that
    runtime/library/common.py's load_params reads at run time."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.library.common import PARAMS_FILE
    return {PARAMS_FILE: json.dumps(params, sort_keys=True)}


def library_scripts(library, python="/usr/bin/python3"):
    if library in (None, ""):
        return []
    if not isinstance(library, dict):
        raise AnsibleFilterError("libvirt_hooks_library must be a mapping of building block to parameters, got %s"
                                 % type(library).__name__)
    if python != "" and (not isinstance(python, str) or not python.startswith("/")):
        raise AnsibleFilterError("library_scripts: python must be an absolute path or \"\", got %r" % (python,))
    # (imported here: every host's plan loads this filter, most with no library to expand)
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import launcher
    errors, out = _Errors(), []
    for block in sorted(library):
        params = library[block]
        if block not in CHECKS:
            errors.add(block, "unknown building block (valid: %s)" % ", ".join(sorted(CHECKS)))
            continue
        if params is None:
            params = {}
        if not isinstance(params, dict):
            errors.add(block, "must be a mapping of parameters, got %s" % type(params).__name__)
            continue
        unknown = sorted(set(params) - set(KEYS[block]) - set(COMMON_KEYS))
        if unknown:
            errors.add(block, "unknown parameter(s) %s (valid: %s)" % (", ".join(unknown), ", ".join(KEYS[block] + COMMON_KEYS)))
            continue
        state = params.get("state", "present")
        if state not in ("present", "absent"):
            errors.add(block + ".state", "must be present or absent, got %r" % (state,))
            continue
        if state == "absent":
            out.extend({"name": "lib-%s-%s" % (block, step), "state": "absent"} for step in STEPS[block])
            continue
        before = len(errors)
        clean, objects = CHECKS[block]({k: v for k, v in params.items() if k != "state"}, errors)
        if len(errors) != before:
            continue
        extra_rule = {}
        if block == "notify":
            objects, extra_rule = objects
        for step, rule in STEPS[block].items():
            entry = {"name": "lib-%s-%s" % (block, step), "objects": objects}
            entry.update(rule)
            entry.update(extra_rule)
            if python:
                entry["content"] = launcher.render(block, step, python)
            else:
                entry["launcher"] = {"block": block, "step": step}
            entry["secrets"] = params_secret(clean)
            out.append(entry)
    if errors:
        raise AnsibleFilterError("invalid libvirt_hooks_library (no host was changed):\n  " + "\n  ".join(errors))
    return out


class FilterModule(object):
    def filters(self):
        return {"library_scripts": library_scripts}
