# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hugepages: reserve the huge pages a guest with ``<memoryBacking><hugepages/>`` needs, give them back.

Pools are the kernel's per-size counters: /sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages, or
/sys/devices/system/node/node<N>/hugepages/... where the guest's memory is bound to one host node
(<numatune>). Reserving ADDS the guest's pages to the pool (never counts on free pages another guest
may be about to use); releasing takes away exactly what was added, as recorded in the state file.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from .common import Fail, Undo, log, parse_cpuset, read_file, undo_message, write_file

UNITS = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024 ** 2, "mib": 1024 ** 2, "mb": 1000 ** 2,
         "g": 1024 ** 3, "gib": 1024 ** 3, "gb": 1000 ** 3, "t": 1024 ** 4, "tib": 1024 ** 4, "tb": 1000 ** 4}


def kib(elem, what: str, default_unit: str = "KiB") -> int:
    """An XML size (text or size= attribute with unit=) in KiB."""
    value = elem.get("size") if elem.get("size") is not None else elem.text
    unit = (elem.get("unit") or default_unit).lower()
    try:
        return int(value.strip()) * UNITS[unit] // 1024
    except (AttributeError, ValueError, KeyError):
        raise Fail("bad %s in the domain XML: %r %r" % (what, value, unit))


def single_node(nodeset):
    if not nodeset:
        return None
    nodes = parse_cpuset(nodeset)
    return next(iter(nodes)) if len(nodes) == 1 else None


def meminfo(hook, key: str):
    for line in read_file(os.path.join(hook.paths["proc"], "meminfo")).splitlines():
        name, _sep, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0])
    return None


def page_sizes(backing) -> list:
    """(guest cells or None for all, page size KiB) of each <page> of <hugepages>."""
    return [(parse_cpuset(page.get("nodeset")) if page.get("nodeset") else None, kib(page, "hugepage size"))
            for page in backing.findall("page")]


def size_for(sizes: list, cell, default_size: int) -> int:
    for cells, size in sizes:
        if cells is not None and cell is not None and cell in cells:
            return size
    for cells, size in sizes:
        if cells is None:
            return size
    return default_size


def needs_of(hook, root) -> dict:
    """{(page size in KiB, host node or None): pages} for this guest; {} when it has no hugepage backing."""
    backing = root.find("memoryBacking/hugepages")
    if backing is None:
        return {}
    default_size = hook.params.get("default_page_kib") or meminfo(hook, "Hugepagesize") or 2048
    sizes = page_sizes(backing)
    memory = root.find("memory")
    if memory is None:
        raise Fail("the domain XML has hugepages but no <memory>")
    whole = root.find("numatune/memory")
    whole_node = single_node((whole if whole is not None else ET.Element("x")).get("nodeset"))
    cell_nodes = {m.get("cellid"): single_node(m.get("nodeset")) for m in root.findall("numatune/memnode")}
    parts = []                                     # (KiB, size, host node)
    cells = root.findall("cpu/numa/cell")
    for cell in cells:
        cid = cell.get("id")
        node = cell_nodes.get(cid) if cell_nodes.get(cid) is not None else whole_node
        memory_kib = kib(ET.Element("m", size=cell.get("memory") or "", unit=cell.get("unit") or "KiB"), "NUMA cell memory")
        parts.append((memory_kib, size_for(sizes, int(cid) if cid and cid.isdigit() else None, default_size), node))
    if not cells:
        parts.append((kib(memory, "memory"), size_for(sizes, None, default_size), whole_node))
    needs = {}
    for amount, size, node in parts:
        needs[(size, node)] = needs.get((size, node), 0) + -(-amount // size)
    return needs


def pool(hook, size: int, node) -> str:
    base = ("devices/system/node/node%d/hugepages" % node) if node is not None else "kernel/mm/hugepages"
    return os.path.join(hook.paths["sys"], base, "hugepages-%dkB" % size, "nr_hugepages")


def where(size: int, node) -> str:
    return "%d kB pages%s" % (size, "" if node is None else " on host NUMA node %d" % node)


def count(path: str) -> int:
    text = read_file(path)
    if not text.isdigit():
        raise Fail("unexpected content %r in %s" % (text, path))
    return int(text)


def give_back(hook, size: int, node, pages: int) -> None:
    path = pool(hook, size, node)
    write_file(path, max(count(path) - pages, 0))


def check_host(hook, needs: dict) -> None:
    """Refuse, with nothing reserved, what the host cannot give."""
    total_kib = sum(size * pages for (size, _node), pages in needs.items())
    available = meminfo(hook, "MemAvailable")
    if available is not None and total_kib > available:
        raise Fail("needs %d MiB of huge pages (%s) but the host has only %d MiB available; nothing was reserved"
                   % (total_kib // 1024, ", ".join("%d x %s" % (n, where(*k)) for k, n in sorted(needs.items(), key=str)),
                      available // 1024))
    for (size, node) in needs:
        if not os.path.exists(pool(hook, size, node)):
            raise Fail("the host has no pool of %s (%s is missing); nothing was reserved"
                       % (where(size, node), pool(hook, size, node)))


def add_pages(hook, needs: dict) -> list:
    """Add each pool's pages, all or nothing; the pools done."""
    undo, done = Undo(), []
    try:
        for (size, node), pages in sorted(needs.items(), key=str):
            path = pool(hook, size, node)
            try:
                before = count(path)
                write_file(path, before + pages)
                after = count(path)
            except OSError as exc:
                raise Fail("cannot reserve %d x %s: %s" % (pages, where(size, node), exc))
            if after > before:
                undo.push("give back %s" % where(size, node), give_back, hook, size, node, after - before)
            if after < before + pages:
                raise Fail("the host could only provide %d of %d %s (memory too fragmented or too small)"
                           % (after - before, pages, where(size, node)))
            done.append({"size_kib": size, "node": node, "pages": pages})
        hook.save_state({"pools": done})
    except Fail as exc:
        raise undo_message(exc, undo, "rolled back what was reserved")
    return done


def reserve(hook) -> None:
    needs = needs_of(hook, hook.xml)
    if not needs:
        return
    fd = hook.lock()
    try:
        if hook.load_state() is not None:
            return                              # already reserved for this guest (a second run changes nothing)
        check_host(hook, needs)
        try:
            write_file(os.path.join(hook.paths["proc"], "sys/vm/compact_memory"), 1)   # contiguous memory
        except OSError:
            pass
        done = add_pages(hook, needs)
        log("hugepages: reserved " + ", ".join("%d x %s" % (d["pages"], where(d["size_kib"], d["node"])) for d in done))
    finally:
        os.close(fd)


def release(hook) -> None:
    state = hook.load_state()
    if state is None:
        return
    fd = hook.lock()
    try:
        problems = []
        for reserved in state["pools"]:
            try:
                give_back(hook, reserved["size_kib"], reserved["node"], reserved["pages"])
            except (OSError, Fail) as exc:
                problems.append("%s: %s" % (where(reserved["size_kib"], reserved["node"]), exc))
        hook.drop_state()
        if problems:
            raise Fail("could not give back every page: " + "; ".join(problems))
        log("hugepages: gave back " + ", ".join("%d x %s" % (p["pages"], where(p["size_kib"], p["node"]))
                                                for p in state["pools"]))
    finally:
        os.close(fd)


STEPS = {"reserve": reserve, "release": release}
