# ---- cpu_isolation.py: keep host processes off the CPUs a guest's vCPUs are pinned to ----
# Where systemd runs: AllowedCPUs of the host's slices (systemctl set-property --runtime). Elsewhere the
# cpuset controller: cgroup v2 (cpuset.cpus of the top-level groups) or v1 (the cpuset hierarchy, every
# group below each top-level one, deepest first when shrinking as v1 requires). libvirt's own partition
# (machine*) is never touched. The host set is all online CPUs minus the CPUs of EVERY isolated guest;
# the values found before the first guest are kept in .original.json and written back after the last.
ORIGINAL = ".original.json"


def ci_mode():
    mode = PARAMS.get("mode", "auto")  # noqa: F821
    if mode in ("systemd", "cgroup_v1", "cgroup_v2"):
        return mode
    if os.path.isdir(P["systemd"]):
        return "systemd"
    if os.path.exists(os.path.join(P["cgroup"], "cgroup.controllers")):
        return "cgroup_v2"
    if os.path.exists(os.path.join(P["cgroup"], "cpuset", "cpuset.cpus")):
        return "cgroup_v1"
    raise Fail("neither systemd nor a cpuset cgroup hierarchy was found under %s" % P["cgroup"])


def ci_pinned(root):
    cpus = set()
    for pin in root.findall("cputune/vcpupin"):
        cpus |= parse_cpuset(pin.get("cpuset") or "")
    return cpus


def ci_root(mode):
    return os.path.join(P["cgroup"], "cpuset") if mode == "cgroup_v1" else P["cgroup"]


def ci_targets(mode):
    """Keys of everything this mode restricts, parents before children."""
    if mode == "systemd":
        return list(PARAMS.get("units") or ["system.slice", "user.slice", "init.scope"])  # noqa: F821
    root = ci_root(mode)
    groups = PARAMS.get("cgroups") or sorted(  # noqa: F821
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


def ci_read(mode, key):
    if mode == "systemd":
        return run([P["systemctl"], "show", "-p", "AllowedCPUs", "--value", key]).strip()
    try:
        return read_file(os.path.join(ci_root(mode), key, "cpuset.cpus"))
    except OSError as exc:
        raise Fail("cannot read cpuset.cpus of %s: %s" % (key, exc))


def ci_write(mode, key, value):
    if mode == "systemd":
        run([P["systemctl"], "set-property", "--runtime", key, "AllowedCPUs=" + value])
        return
    try:
        write_file(os.path.join(ci_root(mode), key, "cpuset.cpus"), value)
    except OSError as exc:
        raise Fail("cannot set cpuset.cpus of %s to %r: %s" % (key, value, exc))


def ci_apply(hook, mode, originals, host, shrinking):
    """Give every target its original CPUs intersected with the host set; all or nothing."""
    keys = [k for k in ci_targets(mode) if k in originals]
    if shrinking:
        keys.reverse()                                   # v1: children must shrink before their parent
    undo = Undo()
    try:
        for key in keys:
            before = ci_read(mode, key)
            original = parse_cpuset(originals[key]) if originals[key] else set(host)
            value = format_cpuset((original & host) or host)
            if value != before:
                ci_write(mode, key, value)
                undo.push("put back %s" % key, ci_write, mode, key, before)
    except Fail as exc:
        problems = undo.rollback()
        raise Fail("%s; %s" % (exc, "every cgroup was put back" if not problems else "rollback FAILED: " + "; ".join(problems)))


def ci_isolate(hook):
    pinned = ci_pinned(hook.xml)
    if not pinned:
        return
    fd = hook.lock()
    try:
        states = hook.all_states()
        if hook.object in states:
            return                                       # already isolated for this guest
        mode = ci_mode()
        online = parse_cpuset(read_file(os.path.join(P["sys"], "devices/system/cpu/online")))
        if not pinned <= online:
            raise Fail("vCPUs are pinned to CPUs %s that are not online (online: %s)"
                       % (format_cpuset(pinned - online), format_cpuset(online)))
        isolated = set(pinned)
        for state in states.values():
            isolated |= set(state["cpus"])
        host = online - isolated
        if not host:
            raise Fail("isolating CPUs %s would leave no CPU for the host" % format_cpuset(isolated))
        orig_path = os.path.join(hook.state_dir(), ORIGINAL)
        if os.path.exists(orig_path):
            with open(orig_path) as f:
                originals = json.loads(f.read())["targets"]
        else:
            originals = {key: ci_read(mode, key) for key in ci_targets(mode)}
            write_file(orig_path, json.dumps({"mode": mode, "targets": originals}))
        try:
            ci_apply(hook, mode, originals, host, shrinking=True)
            hook.save_state({"cpus": sorted(pinned), "mode": mode})
        except Fail:
            if not states:
                os.unlink(orig_path)
            raise
        log("cpu_isolation: host processes on %s, %s kept for guests (%s)" % (format_cpuset(host), format_cpuset(isolated), mode))
    finally:
        os.close(fd)


def ci_restore(hook):
    if hook.load_state() is None:
        return
    fd = hook.lock()
    try:
        states = hook.all_states()
        mine = states.pop(hook.object)
        orig_path = os.path.join(hook.state_dir(), ORIGINAL)
        with open(orig_path) as f:
            originals = json.loads(f.read())["targets"]
        online = parse_cpuset(read_file(os.path.join(P["sys"], "devices/system/cpu/online")))
        isolated = set()
        for state in states.values():
            isolated |= set(state["cpus"])
        mode = mine["mode"]
        if states:
            ci_apply(hook, mode, originals, online - isolated, shrinking=False)
        else:
            ci_put_back(mode, originals)
            os.unlink(orig_path)
        hook.drop_state()
        log("cpu_isolation: CPUs %s given back to the host" % format_cpuset(set(mine["cpus"]) - isolated))
    finally:
        os.close(fd)


def ci_put_back(mode, originals):
    """The values found before the first guest, parents first (v1: a parent must grow before its children)."""
    problems = []
    for key in ci_targets(mode) if mode != "systemd" else list(originals):
        if key in originals:
            try:
                ci_write(mode, key, originals[key])
            except Fail as exc:
                problems.append(str(exc))
    if problems:
        raise Fail("could not put every cgroup back: " + "; ".join(problems))


STEPS = {"isolate": ci_isolate, "restore": ci_restore}
