# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rollback: make an earlier generation current again, on the host, Ansible or not.

The emergency path when a new hook blocks guest starts (``virthooks rollback``), and what the
role runs when a later task of the same deploy fails on a host. Entry points are kept
consistent with the generation made current: the ones it needs are written before the switch,
the ones it does not need are removed after it (a foreign hook that was adopted is put back).
A hook file that is not ours is never touched.
"""

import os

from .events import DRIVER_DAEMONS, DRIVERS
from .generations import DeployLock, Generation, GenerationError, all_ids, current_id, switch
from .layout import CONFIG_FILE, OWN_DIR, kept_adopted_hook


class RollbackError(Exception):
    """Nothing can be rolled back; the message says why. Nothing was changed."""


def previous_id(own: str, current: Generation) -> str:
    """The generation that was current before current became so: its meta.json's ``previous`` (the one
    the deploy that made it replaced), if it is still kept; '' if none. Not the newest older one: a deploy
    killed after writing its generation and before switching to it leaves a generation that was never
    current, and it must not become current by a rollback nobody aimed at it."""
    before = current.meta.get("previous") or ""
    return before if before != current.id and before in all_ids(own) else ""


def _nothing_before(own: str, current: Generation) -> str:
    """Why there is no generation to go back to from current (the rollback's error)."""
    before = current.meta.get("previous") or ""
    if not before:
        return "%s is the first generation deployed in %s: there is nothing to roll back to" % (current.id, own)
    return ("%s, the generation current before %s, is no longer kept in %s: there is nothing to roll back to; "
            "name a kept generation to go to one (virthooks generations lists them)" % (before, current.id, own))


def _rules_by_name(config: dict) -> dict:
    return {r["name"]: r for r in config["rules"]}


def _load(generation: Generation) -> dict:
    """A generation's config.json, validated as the dispatcher reads it."""
    from .rules import ConfigError
    try:
        return generation.load_config(strict=False)
    except (OSError, ConfigError) as exc:
        raise RollbackError("cannot read %s/%s: %s (nothing was changed)" % (generation.path, CONFIG_FILE, exc))


def _is_ours(path: str) -> bool:
    from .layout import file_is_ours
    return os.path.isfile(path) and not os.path.islink(path) and file_is_ours(path)


def _target_id(own: str, current: Generation, target: str) -> str:
    """The generation to roll back to: target, or the one before current; RollbackError if none can be."""
    if not target:
        target = previous_id(own, current)
        if not target:
            raise RollbackError("%s (nothing was changed)" % _nothing_before(own, current))
    elif target == current.id:
        raise RollbackError("generation %s is already current (nothing was changed)" % target)
    elif target not in all_ids(own):
        raise RollbackError("generation %s is not kept in %s (kept: %s)" % (target, own, ", ".join(all_ids(own))))
    return target


def _read_target(own: str, target_id: str) -> Generation:
    """The generation to roll back to, read once, with the interpreter its meta.json names."""
    try:
        target = Generation.read(own, target_id, strict=True)
    except GenerationError as exc:
        raise RollbackError("cannot roll back to %s: %s (nothing was changed)" % (target_id, exc))
    if not target.meta.get("python"):
        raise RollbackError("generation %s has no meta.json naming its interpreter (nothing was changed)" % target_id)
    return target


def plan_rollback(hooks_dir: str, target: str = "", runtime_hooks_dir: str = "") -> dict:
    """What rolling back to target (default: the previous generation) changes; RollbackError if nothing can."""
    own = "%s/%s" % (hooks_dir, OWN_DIR)
    current_gen = current_id(own)
    if not current_gen:
        raise RollbackError("no generation is current in %s: nothing to roll back" % own)
    current = Generation.read(own, current_gen)     # once: its meta names the generation it replaced
    goal = _read_target(own, _target_id(own, current, target))
    config = _load(goal)
    refuse_unrunnable(goal.path, goal.id, config, goal.meta["python"])
    plan = {"own": own, "current": current_gen, "target": goal.id, "summary": summarize(current, goal, config)}
    plan.update(_entry_point_changes(hooks_dir, runtime_hooks_dir or hooks_dir, goal, config))
    return plan


def _entry_point_changes(hooks_dir: str, runtime_hooks_dir: str, goal: Generation, config: dict) -> dict:
    """The entry points the goal generation needs written (before the switch) and those it needs removed
    (after it); a hook file that is not ours is left as it is, and a note says so."""
    from .entrypoint import render_entry_point
    drivers = target_drivers(config, goal.meta)
    writes, removals, added, removed, skipped = [], [], [], [], []
    for driver in drivers:
        path = "%s/%s" % (hooks_dir, driver)
        text = render_entry_point(driver, runtime_hooks_dir, goal.meta["python"], config["rules"],
                                  config["tree"]["enabled"]).encode()
        if not os.path.lexists(path):
            writes.append((path, text))
            added.append(driver)
        elif _is_ours(path):
            with open(path, "rb") as f:
                if f.read() != text:
                    writes.append((path, text))
        else:
            skipped.append("hooks/%s is not a virthooks entry point: left as it is" % driver)
    for driver in DRIVERS:
        path = "%s/%s" % (hooks_dir, driver)
        if driver not in drivers and _is_ours(path):
            removals.append((path, kept_adopted_hook(hooks_dir, driver, os.path.lexists)))
            removed.append(driver)
    return {"writes": writes, "removals": removals, "added": added, "removed": removed, "notes": skipped}


def target_drivers(config: dict, meta: dict) -> list:
    """The drivers that need an entry point in a generation: those of its enabled rules (what it
    runs, whatever meta.json says), plus those the deploy gave one for its per-guest tree or by
    request (meta.json's drivers)."""
    wanted = {r["driver"] for r in config["rules"] if r["enabled"]} | set(meta.get("drivers", []))
    return [d for d in DRIVERS if d in wanted]


def refuse_unrunnable(directory: str, target: str, config: dict, python: str) -> None:
    """RollbackError naming the first file the target's enabled rules need that root may not run
    (missing, not root's alone, not executable, no #! line), or its interpreter."""
    from .rules import script_path
    from .trust import TrustCheck, Untrusted, format_problem
    trust = TrustCheck()
    try:
        trust.check_file(python, interpreter=False)
    except Untrusted as exc:
        raise RollbackError("cannot roll back to %s: its interpreter %s cannot run the hooks: %s "
                            "(nothing was changed)" % (target, python, exc))
    for rule in config["rules"]:
        if not rule["enabled"]:
            continue
        path = script_path(directory, rule["script"])
        try:
            problem = format_problem(trust.check_file(path))
        except Untrusted as exc:
            problem = str(exc)
        if problem:
            raise RollbackError("cannot roll back to %s: rule %r: %s %s (nothing was changed)"
                                % (target, rule["name"], path, problem))


def summarize(before: Generation, after: Generation, after_config: dict) -> list:
    """What changes between two generations, one line per rule or script."""
    try:
        rules_before = _rules_by_name(_load(before))
    except RollbackError:
        rules_before = {}
    return (differences("rule", rules_before, _rules_by_name(after_config))
            + differences("script", before.scripts, after.scripts))


def differences(kind: str, before: dict, after: dict) -> list:
    """'<kind> <name>: removed|added|changed' for each name whose value differs, in name order (a
    rollback's summary, and the summary line of a deploy's diff)."""
    lines = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            lines.append("%s %s: removed" % (kind, name))
        elif name not in before:
            lines.append("%s %s: added" % (kind, name))
        elif before[name] != after[name]:
            lines.append("%s %s: changed" % (kind, name))
    return lines


def apply_rollback(plan: dict, uid: int = -1, gid: int = -1) -> None:
    """Entry points needed by the target first, then the switch, then removals; one at a time."""
    from .fileops import atomic_write, fsync_dir
    own = plan["own"]
    with DeployLock(own):
        if current_id(own) != plan["current"]:
            raise RollbackError("the current generation changed to %s while the rollback was planned "
                                "(nothing was changed)" % current_id(own))
        for path, text in plan["writes"]:
            atomic_write(path, text, 0o755, uid, gid)
        switch(own, plan["target"], uid, gid)
        for path, adopted in plan["removals"]:
            if adopted:
                os.rename(adopted, path)
                fsync_dir(os.path.dirname(path))
            elif os.path.lexists(path):
                os.unlink(path)


SOURCE_BUILD_PREFIX = "/usr/local/"     # a daemon installed there has SYSCONFDIR /usr/local/etc (detect.py)


def daemon_hooks_dir(pid: int) -> str:
    """The hooks directory of a running daemon as this process can reach it: SYSCONFDIR/libvirt/hooks
    (what libvirt compiles in: /usr/local/etc for a binary under /usr/local, else /etc), inside
    the daemon's own root (a chroot or container), through /proc/PID/root."""
    exe = os.readlink("/proc/%d/exe" % pid)
    sysconfdir = "/usr/local/etc" if exe.startswith(SOURCE_BUILD_PREFIX) else "/etc"
    return "/proc/%d/root%s/libvirt/hooks" % (pid, sysconfdir)


def runs_hooks_dir(pid: int, hooks_dir: str) -> bool:
    """Whether the daemon pid runs the hooks of hooks_dir (the same directory, compared by inode)."""
    try:
        mine, theirs = os.stat(hooks_dir), os.stat(daemon_hooks_dir(pid))
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def running_daemons(hooks_dir: str = "") -> dict:
    """{process name: [pid, ...]} of the libvirt daemons running on this host; with hooks_dir, only
    those that run its hooks (a sandbox hooks directory has none: the host's daemons are left alone)."""
    from .events import DAEMONS
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % name, "rb") as f:
                comm = f.read().strip().decode("utf-8", "replace")
        except OSError:
            continue
        if comm in DAEMONS and (not hooks_dir or runs_hooks_dir(int(name), hooks_dir)):
            found.setdefault(comm, []).append(int(name))
    return found


def daemons_to_reload(drivers, running: dict) -> list:
    """The running daemons that must rescan their hooks when these drivers' entry points change."""
    if not drivers:
        return []
    if "libvirtd" in running:
        return ["libvirtd"]
    names = []
    for driver in drivers:
        owners = [d for d in running if d not in ("virtlogd", "virtlockd")] if driver == "daemon" \
            else [DRIVER_DAEMONS[driver]]
        names.extend(d for d in owners if d in running and d not in names)
    return names


def reload_daemons(names, running: dict) -> list:
    """SIGHUP (libvirt's reload: it rescans the hooks directory) to each named daemon; the pids signalled."""
    import signal
    signalled = []
    for name in names:
        for pid in running.get(name, []):
            try:
                os.kill(pid, signal.SIGHUP)
                signalled.append(pid)
            except OSError:
                pass
    return signalled
