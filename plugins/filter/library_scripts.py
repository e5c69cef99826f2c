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
    description: Absolute path of the Python (>= 3.9) the scripts run with on the host.
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
  description: Script declarations, in the format of C(libvirt_hooks_scripts) entries (always with C(content)).
  type: list
  elements: dict
"""

import ipaddress
import json
import urllib.parse

from ansible.errors import AnsibleFilterError

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import launcher
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.library.common import PARAMS_FILE

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
# The secret (file) that carries a block's parameters to its scripts: see runtime/library/common.py's load_params.
PARAMS_SECRET = PARAMS_FILE
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


def _port_forward(params, errors):
    guests = params.get("guests")
    if not isinstance(guests, dict) or not guests:
        errors.add("port_forward.guests", "must be a non-empty mapping of guest name to {ip, forwards}, got %r" % (guests,))
        return None, None
    owners, clean = {}, {}
    for name, cfg in guests.items():
        where = "port_forward.guests.%s" % name
        if not isinstance(name, str) or not name or "/" in name or "\n" in name:
            errors.add(where, "not a valid guest name")
            continue
        if not isinstance(cfg, dict):
            errors.add(where, "must be a mapping with ip and forwards, got %r" % (cfg,))
            continue
        unknown = sorted(set(cfg) - {"ip", "forwards"})
        if unknown:
            errors.add(where, "unknown key(s) %s (valid: ip, forwards)" % ", ".join(unknown))
        try:
            address = ipaddress.ip_address(str(cfg.get("ip")))
        except ValueError:
            errors.add(where + ".ip", "must be the guest's IPv4 or IPv6 address, got %r" % (cfg.get("ip"),))
            continue
        if getattr(address, "scope_id", None):
            # nft cannot match an address with a zone: every start of the guest would be refused.
            errors.add(where + ".ip", "must be an address without an IPv6 zone id (%%%s), got %r"
                       % (address.scope_id, cfg.get("ip")))
            continue
        ip = str(address)
        forwards = cfg.get("forwards")
        if not isinstance(forwards, list) or not forwards:
            errors.add(where + ".forwards", "must be a non-empty list of {host_port, guest_port, proto}")
            continue
        out = []
        for i, fwd in enumerate(forwards):
            fwhere = "%s.forwards[%d]" % (where, i)
            if not isinstance(fwd, dict):
                errors.add(fwhere, "must be a mapping with host_port, guest_port, proto")
                continue
            unknown = sorted(set(fwd) - {"host_port", "guest_port", "proto"})
            if unknown:
                errors.add(fwhere, "unknown key(s) %s (valid: host_port, guest_port, proto)" % ", ".join(unknown))
            ok = True
            for key in ("host_port", "guest_port"):
                if isinstance(fwd.get(key), bool) or not isinstance(fwd.get(key), int) or not 1 <= fwd[key] <= 65535:
                    errors.add("%s.%s" % (fwhere, key), "must be a port number 1-65535, got %r" % (fwd.get(key),))
                    ok = False
            proto = fwd.get("proto", "tcp")
            if proto not in ("tcp", "udp"):
                errors.add(fwhere + ".proto", "must be tcp or udp, got %r" % (proto,))
                ok = False
            if not ok:
                continue
            key = (proto, fwd["host_port"])
            if key in owners:
                errors.add(fwhere, "host port %s/%d is already forwarded by %s" % (proto, fwd["host_port"], owners[key]))
                continue
            owners[key] = "libvirt_hooks_library." + fwhere
            out.append({"host_port": fwd["host_port"], "guest_port": fwd["guest_port"], "proto": proto})
        clean[name] = {"ip": ip, "forwards": out}
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
    """The secrets of a block's script: its parameters as JSON, read at run time by load_params."""
    return {PARAMS_SECRET: json.dumps(params, sort_keys=True)}


def library_scripts(library, python="/usr/bin/python3"):
    if library in (None, ""):
        return []
    if not isinstance(library, dict):
        raise AnsibleFilterError("libvirt_hooks_library must be a mapping of building block to parameters, got %s"
                                 % type(library).__name__)
    if not isinstance(python, str) or not python.startswith("/"):
        raise AnsibleFilterError("library_scripts: python must be an absolute path, got %r" % (python,))
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
            entry["content"] = launcher.render(block, step, python)
            entry["secrets"] = params_secret(clean)
            out.append(entry)
    if errors:
        raise AnsibleFilterError("invalid libvirt_hooks_library (no host was changed):\n  " + "\n  ".join(errors))
    return out


class FilterModule(object):
    def filters(self):
        return {"library_scripts": library_scripts}
