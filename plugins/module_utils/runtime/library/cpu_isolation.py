# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cpu_isolation: keep host processes off the CPUs a guest's vCPUs are pinned to.

Where systemd runs: AllowedCPUs of the host's slices (systemctl set-property --runtime). systemd applies
it only on cgroup v2 with the cpuset controller; on a v1/hybrid layout it stores and shows the property
and changes nothing (systemd 257, Debian 13), so mode auto refuses there rather than pretend. Elsewhere
the cpuset controller: cgroup v2 (cpuset.cpus of the top-level groups) or v1 (the cpuset hierarchy, every
group below each top-level one, deepest first when shrinking as v1 requires). libvirt's own partition
(machine*) is never touched. The host set is all online CPUs minus the CPUs of EVERY isolated guest;
the values found before the first guest are kept in .original.json and written back after the last.
"""
from __future__ import annotations

import json
import os

from .common import Fail, Undo, format_cpuset, log, parse_cpuset, read_file, run, undo_message, write_file

ORIGINAL = ".original.json"
DEFAULT_UNITS = ["system.slice", "user.slice", "init.scope"]


def mode_of(hook) -> str:
    mode = hook.params.get("mode", "auto")
    if mode in ("systemd", "cgroup_v1", "cgroup_v2"):
        return mode
    cgroup = hook.paths["cgroup"]
    if os.path.isdir(hook.paths["systemd"]):
        missing = systemd_cannot_apply(hook)
        if missing:
            # Short enough for the 300 characters of stderr that the dispatcher passes on to libvirt.
            raise Fail("systemd would not apply AllowedCPUs here: %s; boot with systemd.unified_cgroup_hierarchy=1, "
                       "or set mode (cgroup_v1 with cgroups of your own, or systemd to set it anyway)" % missing)
        return "systemd"
    if os.path.exists(os.path.join(cgroup, "cgroup.controllers")):
        return "cgroup_v2"
    if os.path.exists(os.path.join(cgroup, "cpuset", "cpuset.cpus")):
        return "cgroup_v1"
    raise Fail("neither systemd nor a cpuset cgroup hierarchy was found under %s" % cgroup)


def systemd_cannot_apply(hook) -> str:
    """Why systemd cannot turn AllowedCPUs into cpusets here ("" when it can: cgroup v2 with cpuset)."""
    cgroup = hook.paths["cgroup"]
    try:
        controllers = read_file(os.path.join(cgroup, "cgroup.controllers")).split()
    except OSError:
        return "%s is not cgroup v2 (v1/hybrid layout)" % cgroup
    return "" if "cpuset" in controllers else "cgroup v2 at %s has no cpuset controller" % cgroup


def pinned_cpus(root) -> set:
    cpus = set()
    for pin in root.findall("cputune/vcpupin"):
        cpus |= parse_cpuset(pin.get("cpuset") or "")
    return cpus


def root_of(hook, mode: str) -> str:
    return os.path.join(hook.paths["cgroup"], "cpuset") if mode == "cgroup_v1" else hook.paths["cgroup"]


def targets(hook, mode: str) -> list:
    """Keys of everything this mode restricts, parents before children."""
    if mode == "systemd":
        return list(hook.params.get("units") or DEFAULT_UNITS)
    root = root_of(hook, mode)
    groups = hook.params.get("cgroups") or sorted(
        d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("machine"))
    keys = []
    for group in groups:
        if "/" in group or group.startswith(".") or group.startswith("machine"):
            raise Fail("cgroup %r: give a top-level group name, not libvirt's machine partition" % group)
        top = os.path.join(root, group)
        if not os.path.isdir(top):
            continue
        if mode == "cgroup_v2":
            keys.append(group)
            continue
        for dirpath, dirnames, _files in os.walk(top):
            dirnames.sort()
            keys.append(os.path.relpath(dirpath, root))
    return keys


def read_cpus(hook, mode: str, key: str) -> str:
    if mode == "systemd":
        return run([hook.paths["systemctl"], "show", "-p", "AllowedCPUs", "--value", key]).strip()
    try:
        return read_file(os.path.join(root_of(hook, mode), key, "cpuset.cpus"))
    except OSError as exc:
        raise Fail("cannot read cpuset.cpus of %s: %s" % (key, exc))


def write_cpus(hook, mode: str, key: str, value: str) -> None:
    if mode == "systemd":
        run([hook.paths["systemctl"], "set-property", "--runtime", key, "AllowedCPUs=" + value])
        return
    try:
        write_file(os.path.join(root_of(hook, mode), key, "cpuset.cpus"), value)
    except OSError as exc:
        raise Fail("cannot set cpuset.cpus of %s to %r: %s" % (key, value, exc))


def apply(hook, mode: str, originals: dict, host: set, shrinking: bool) -> None:
    """Give every target its original CPUs intersected with the host set; all or nothing."""
    keys = [k for k in targets(hook, mode) if k in originals]
    if shrinking:
        keys.reverse()                                   # v1: children must shrink before their parent
    undo = Undo()
    try:
        for key in keys:
            before = read_cpus(hook, mode, key)
            original = parse_cpuset(originals[key]) if originals[key] else set(host)
            value = format_cpuset((original & host) or host)
            if value != format_cpuset(parse_cpuset(before)):   # systemd shows '0 2-3' for '0,2-3'; '' is all
                write_cpus(hook, mode, key, value)
                undo.push("put back %s" % key, write_cpus, hook, mode, key, before)
    except Fail as exc:
        raise undo_message(exc, undo, "every cgroup was put back")


def online_cpus(hook) -> set:
    return parse_cpuset(read_file(os.path.join(hook.paths["sys"], "devices/system/cpu/online")))


def guests_cpus(states: dict) -> set:
    cpus = set()
    for state in states.values():
        cpus |= set(state["cpus"])
    return cpus


def originals_of(hook, mode: str) -> dict:
    """The values found before the first guest, recorded then (and read back for the next guests)."""
    path = os.path.join(hook.state_dir(), ORIGINAL)
    if os.path.exists(path):
        with open(path) as f:
            return json.loads(f.read())["targets"]
    originals = {key: read_cpus(hook, mode, key) for key in targets(hook, mode)}
    write_file(path, json.dumps({"mode": mode, "targets": originals}))
    return originals


def isolate(hook) -> None:
    pinned = pinned_cpus(hook.xml)
    if not pinned:
        return
    fd = hook.lock()
    try:
        states = hook.all_states()
        if hook.object in states:
            return                                       # already isolated for this guest
        mode = mode_of(hook)
        online = online_cpus(hook)
        if not pinned <= online:
            raise Fail("vCPUs are pinned to CPUs %s that are not online (online: %s)"
                       % (format_cpuset(pinned - online), format_cpuset(online)))
        isolated = pinned | guests_cpus(states)
        host = online - isolated
        if not host:
            raise Fail("isolating CPUs %s would leave no CPU for the host" % format_cpuset(isolated))
        originals = originals_of(hook, mode)
        try:
            apply(hook, mode, originals, host, shrinking=True)
            hook.save_state({"cpus": sorted(pinned), "mode": mode})
        except Fail:
            if not states:
                os.unlink(os.path.join(hook.state_dir(), ORIGINAL))
            raise
        log("cpu_isolation: host processes on %s, %s kept for guests (%s)"
            % (format_cpuset(host), format_cpuset(isolated), how(hook, mode)))
    finally:
        os.close(fd)


def how(hook, mode: str) -> str:
    if mode == "systemd":
        missing = systemd_cannot_apply(hook)
        if missing:
            return "systemd, NOT applied: %s" % missing
    return mode


def restore(hook) -> None:
    if hook.load_state() is None:
        return
    fd = hook.lock()
    try:
        states = hook.all_states()
        mine = states.pop(hook.object)
        orig_path = os.path.join(hook.state_dir(), ORIGINAL)
        with open(orig_path) as f:
            originals = json.loads(f.read())["targets"]
        isolated = guests_cpus(states)
        mode = mine["mode"]
        if states:
            apply(hook, mode, originals, online_cpus(hook) - isolated, shrinking=False)
        else:
            put_back(hook, mode, originals)
            os.unlink(orig_path)
        hook.drop_state()
        log("cpu_isolation: CPUs %s given back to the host" % format_cpuset(set(mine["cpus"]) - isolated))
    finally:
        os.close(fd)


def put_back(hook, mode: str, originals: dict) -> None:
    """The values found before the first guest, parents first (v1: a parent must grow before its children)."""
    problems = []
    for key in targets(hook, mode) if mode != "systemd" else list(originals):
        if key in originals:
            try:
                write_cpus(hook, mode, key, originals[key])
            except Fail as exc:
                problems.append(str(exc))
    if problems:
        raise Fail("could not put every cgroup back: " + "; ".join(problems))


STEPS = {"isolate": isolate, "restore": restore}
