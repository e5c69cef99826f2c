# ---- hugepages.py: reserve the huge pages a guest with <memoryBacking><hugepages/> needs, give them back ----
# Pools are the kernel's per-size counters: /sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages, or
# /sys/devices/system/node/node<N>/hugepages/... where the guest's memory is bound to one host node
# (<numatune>). Reserving ADDS the guest's pages to the pool (never counts on free pages another guest
# may be about to use); releasing takes away exactly what was added, as recorded in the state file.
UNITS = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024 ** 2, "mib": 1024 ** 2, "mb": 1000 ** 2,
         "g": 1024 ** 3, "gib": 1024 ** 3, "gb": 1000 ** 3, "t": 1024 ** 4, "tib": 1024 ** 4, "tb": 1000 ** 4}


def hp_kib(elem, what, default_unit="KiB"):
    """An XML size (text or size= attribute with unit=) in KiB."""
    value = elem.get("size") if elem.get("size") is not None else elem.text
    unit = (elem.get("unit") or default_unit).lower()
    try:
        return int(value.strip()) * UNITS[unit] // 1024
    except (AttributeError, ValueError, KeyError):
        raise Fail("bad %s in the domain XML: %r %r" % (what, value, unit))


def hp_single_node(nodeset):
    if not nodeset:
        return None
    nodes = parse_cpuset(nodeset)
    return next(iter(nodes)) if len(nodes) == 1 else None


def hp_meminfo(key):
    for line in read_file(os.path.join(P["proc"], "meminfo")).splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0])
    return None


def hp_needs(root):
    """{(page size in KiB, host node or None): pages} for this guest; {} when it has no hugepage backing."""
    backing = root.find("memoryBacking/hugepages")
    if backing is None:
        return {}
    default_size = PARAMS.get("default_page_kib") or hp_meminfo("Hugepagesize") or 2048  # noqa: F821
    sizes = []                                     # (guest cells or None for all, size KiB)
    for page in backing.findall("page"):
        cells = parse_cpuset(page.get("nodeset")) if page.get("nodeset") else None
        sizes.append((cells, hp_kib(page, "hugepage size")))

    def size_for(cell):
        for cells, size in sizes:
            if cells is not None and cell is not None and cell in cells:
                return size
        for cells, size in sizes:
            if cells is None:
                return size
        return default_size

    memory = root.find("memory")
    if memory is None:
        raise Fail("the domain XML has hugepages but no <memory>")
    whole_node = hp_single_node((root.find("numatune/memory") if root.find("numatune/memory") is not None
                                 else ET.Element("x")).get("nodeset"))
    cell_nodes = {m.get("cellid"): hp_single_node(m.get("nodeset")) for m in root.findall("numatune/memnode")}
    parts = []                                     # (KiB, size, host node)
    cells = root.findall("cpu/numa/cell")
    if cells:
        for cell in cells:
            cid = cell.get("id")
            node = cell_nodes.get(cid) if cell_nodes.get(cid) is not None else whole_node
            parts.append((hp_kib(ET.Element("m", size=cell.get("memory") or "", unit=cell.get("unit") or "KiB"),
                                 "NUMA cell memory"), size_for(int(cid) if cid and cid.isdigit() else None), node))
    else:
        parts.append((hp_kib(memory, "memory"), size_for(None), whole_node))
    needs = {}
    for kib, size, node in parts:
        needs[(size, node)] = needs.get((size, node), 0) + -(-kib // size)
    return needs


def hp_pool(size, node):
    base = ("devices/system/node/node%d/hugepages" % node) if node is not None else "kernel/mm/hugepages"
    return os.path.join(P["sys"], base, "hugepages-%dkB" % size, "nr_hugepages")


def hp_where(size, node):
    return "%d kB pages%s" % (size, "" if node is None else " on host NUMA node %d" % node)


def hp_read(path):
    text = read_file(path)
    if not text.isdigit():
        raise Fail("unexpected content %r in %s" % (text, path))
    return int(text)


def hp_give_back(size, node, pages):
    path = hp_pool(size, node)
    write_file(path, max(hp_read(path) - pages, 0))


def hp_reserve(hook):
    needs = hp_needs(hook.xml)
    if not needs:
        return
    fd = hook.lock()
    try:
        if hook.load_state() is not None:
            return                              # already reserved for this guest (a second run changes nothing)
        total_kib = sum(size * pages for (size, _node), pages in needs.items())
        available = hp_meminfo("MemAvailable")
        if available is not None and total_kib > available:
            raise Fail("needs %d MiB of huge pages (%s) but the host has only %d MiB available; nothing was reserved"
                       % (total_kib // 1024, ", ".join("%d x %s" % (n, hp_where(*k)) for k, n in sorted(needs.items(), key=str)),
                          available // 1024))
        for (size, node) in needs:
            if not os.path.exists(hp_pool(size, node)):
                raise Fail("the host has no pool of %s (%s is missing); nothing was reserved"
                           % (hp_where(size, node), hp_pool(size, node)))
        try:
            write_file(os.path.join(P["proc"], "sys/vm/compact_memory"), 1)   # contiguous memory for the pages
        except OSError:
            pass
        undo, done = Undo(), []
        try:
            for (size, node), pages in sorted(needs.items(), key=str):
                path = hp_pool(size, node)
                try:
                    before = hp_read(path)
                    write_file(path, before + pages)
                    after = hp_read(path)
                except OSError as exc:
                    raise Fail("cannot reserve %d x %s: %s" % (pages, hp_where(size, node), exc))
                if after > before:
                    undo.push("give back %s" % hp_where(size, node), hp_give_back, size, node, after - before)
                if after < before + pages:
                    raise Fail("the host could only provide %d of %d %s (memory too fragmented or too small)"
                               % (after - before, pages, hp_where(size, node)))
                done.append({"size_kib": size, "node": node, "pages": pages})
            hook.save_state({"pools": done})
        except Fail as exc:
            problems = undo.rollback()
            raise Fail("%s; %s" % (exc, "rolled back what was reserved" if not problems
                                   else "rollback FAILED: " + "; ".join(problems)))
        log("hugepages: reserved " + ", ".join("%d x %s" % (d["pages"], hp_where(d["size_kib"], d["node"])) for d in done))
    finally:
        os.close(fd)


def hp_release(hook):
    state = hook.load_state()
    if state is None:
        return
    fd = hook.lock()
    try:
        problems = []
        for pool in state["pools"]:
            try:
                hp_give_back(pool["size_kib"], pool["node"], pool["pages"])
            except (OSError, Fail) as exc:
                problems.append("%s: %s" % (hp_where(pool["size_kib"], pool["node"]), exc))
        hook.drop_state()
        if problems:
            raise Fail("could not give back every page: " + "; ".join(problems))
        log("hugepages: gave back " + ", ".join("%d x %s" % (p["pages"], hp_where(p["size_kib"], p["node"])) for p in state["pools"]))
    finally:
        os.close(fd)


STEPS = {"reserve": hp_reserve, "release": hp_release}
