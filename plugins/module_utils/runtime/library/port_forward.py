# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""port_forward: nftables DNAT from host ports to a guest, in the table ``inet virthooks``.

Every rule of a guest carries the comment ``virthooks:pf:<id>`` (id from the guest name) and all
of a guest's rules are added or removed in ONE nft transaction: a failure leaves none of them.

By default only the DNAT is added (and the host itself reaches the guest). With ``external``, the
DNAT'd traffic from other machines is also accepted where libvirt's own firewall would reject it
(``<forward mode='nat'>`` rejects new inbound connections): one rule of ours, tagged like the rest,
at the top of libvirt's inbound chain, ``guest_input`` of the table ``ip[6] libvirt_network``
(libvirt's nftables backend, in the same nft transaction) or ``LIBVIRT_FWI`` (its iptables backend,
through ``iptables``, as libvirt itself writes it). Nothing else of libvirt's is changed, and the
state file records exactly what was added so that the stop removes exactly that.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os

from .common import Fail, log, run

TABLE = "inet virthooks"
BASE_CHAINS = (
    ("prerouting", "type nat hook prerouting priority dstnat; policy accept;"),
    ("output", "type nat hook output priority -100; policy accept;"),
    ("forward", "type filter hook forward priority filter; policy accept;"),
)
LIBVIRT_NFT_CHAIN = "guest_input"       # libvirt's nftables backend: table ip|ip6 libvirt_network
LIBVIRT_IPT_CHAIN = "LIBVIRT_FWI"       # libvirt's iptables backend: filter table


def tag_of(guest: str) -> str:
    return "virthooks:pf:" + hashlib.sha256(guest.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def port_span(value) -> tuple:
    """8080 -> (8080, 8080); '6000-6010' -> (6000, 6010)."""
    lo, _sep, hi = str(value).partition("-")
    return int(lo), int(hi or lo)


def nft_ports(span: tuple) -> str:
    return str(span[0]) if span[0] == span[1] else "%d-%d" % span


class Forwards:
    """The nft rules of one guest's configuration (validated on the controller)."""

    def __init__(self, guest: str, cfg: dict):
        self.guest, self.cfg = guest, cfg
        self.addr = ipaddress.ip_address(cfg["ip"])
        self.fam = "ip" if self.addr.version == 4 else "ip6"
        self.tag = tag_of(guest)

    def _target(self, host: tuple, guest: tuple) -> str:
        addr = str(self.addr) if self.addr.version == 4 else "[%s]" % self.addr
        if host == guest and host[0] != host[1]:
            return addr                              # a range to the same ports: the port stays
        return "%s:%d" % (addr, guest[0])

    def _daddr(self) -> str:
        host = self.cfg.get("host_address")
        return "%s daddr %s" % (self.fam, host) if host else "fib daddr type local"

    def _from(self) -> str:
        """What restricts traffic arriving from other machines (prerouting): interface, sources."""
        parts = []
        if self.cfg.get("interface"):
            parts.append('iifname "%s"' % self.cfg["interface"])
        if self.cfg.get("sources"):
            parts.append("%s saddr { %s }" % (self.fam, ", ".join(self.cfg["sources"])))
        return " ".join(parts + [""])

    def rules(self) -> list:
        """nft 'add rule' lines of the guest's table inet virthooks rules."""
        lines = []
        for fwd in self.cfg["forwards"]:
            proto = fwd.get("proto", "tcp")
            host = port_span(fwd["host_port"])
            guest = port_span(fwd.get("guest_port", fwd["host_port"]))
            dnat = "%s dport %s dnat %s to %s comment \"%s\"" % (
                proto, nft_ports(host), self.fam, self._target(host, guest), self.tag)
            lines.append("add rule %s prerouting %s%s %s" % (TABLE, self._from(), self._daddr(), dnat))
            lines.append("add rule %s output %s %s" % (TABLE, self._daddr(), dnat))
            lines.append("add rule %s forward %s daddr %s %s dport %s ct status dnat accept comment \"%s\""
                         % (TABLE, self.fam, self.addr, proto, nft_ports(guest), self.tag))
        return lines

    def accepts(self) -> list:
        """(proto, guest port span) of each forward, for the accept rules in libvirt's inbound chain."""
        out = []
        for fwd in self.cfg["forwards"]:
            out.append((fwd.get("proto", "tcp"), port_span(fwd.get("guest_port", fwd["host_port"]))))
        return out

    def nft_accepts(self) -> list:
        """nft 'insert rule' lines for libvirt's nftables backend chain guest_input."""
        return ["insert rule %s libvirt_network %s %s daddr %s %s dport %s ct status dnat accept comment \"%s\""
                % (self.fam, LIBVIRT_NFT_CHAIN, self.fam, self.addr, proto, nft_ports(span), self.tag)
                for proto, span in self.accepts()]

    def ipt_accepts(self) -> list:
        """iptables rule specifications for libvirt's iptables backend chain LIBVIRT_FWI."""
        return [["-d", str(self.addr), "-p", proto, "--dport", "%d:%d" % span if span[0] != span[1] else str(span[0]),
                 "-m", "conntrack", "--ctstate", "DNAT", "-m", "comment", "--comment", self.tag, "-j", "ACCEPT"]
                for proto, span in self.accepts()]


def listing(hook, table: str) -> tuple:
    """(table exists, [(chain, handle, comment)] of every rule in it), from the live ruleset."""
    try:
        text = run([hook.paths["nft"], "-j", "-a", "list", "table"] + table.split())
    except Fail as exc:
        if "No such file or directory" in str(exc):
            return False, []
        raise
    rules = [item["rule"] for item in json.loads(text).get("nftables", []) if "rule" in item]
    return True, [(r["chain"], r["handle"], r.get("comment")) for r in rules]


def transaction(hook, lines: list) -> None:
    run([hook.paths["nft"], "-f", "-"], input_text="\n".join(lines) + "\n")


def libvirt_backend(hook, fam: str) -> str:
    """Which firewall libvirt keeps its inbound reject in: 'nftables', 'iptables' or '' (none)."""
    exists, _rules = listing(hook, "%s libvirt_network" % fam)
    if exists:
        return "nftables"
    tool = hook.paths["iptables" if fam == "ip" else "ip6tables"]
    if not os.path.exists(tool):
        return ""
    try:
        run([tool, "-w", "-S", LIBVIRT_IPT_CHAIN])
    except Fail:
        return ""
    return "iptables"


def delete(hook, tag: str) -> int:
    """Delete our rules with this tag, and the table when nothing else is in it: one transaction."""
    exists, rules = listing(hook, TABLE)
    mine = [(chain, handle) for chain, handle, comment in rules if comment == tag]
    if not exists:
        return 0
    if len(mine) == len(rules):
        transaction(hook, ["delete table " + TABLE])
    elif mine:
        transaction(hook, ["delete rule %s %s handle %d" % (TABLE, chain, handle) for chain, handle in mine])
    return len(mine)


def delete_libvirt_nft(hook, fam: str, tag: str) -> int:
    """Our accept rules in libvirt's nftables table (the table itself is libvirt's: it stays)."""
    _exists, rules = listing(hook, "%s libvirt_network" % fam)
    mine = ["delete rule %s libvirt_network %s handle %d" % (fam, chain, handle)
            for chain, handle, comment in rules if comment == tag]
    if mine:
        transaction(hook, mine)
    return len(mine)


def delete_libvirt_ipt(hook, fam: str, specs: list) -> None:
    tool = hook.paths["iptables" if fam == "ip" else "ip6tables"]
    for spec in specs:
        try:
            run([tool, "-w", "-D", LIBVIRT_IPT_CHAIN] + spec)
        except Fail as exc:
            if "does a matching rule exist" not in str(exc) and "No chain" not in str(exc) \
                    and "Bad rule" not in str(exc):
                raise


def remove_all(hook, state: dict) -> int:
    """Everything the state file says was added: libvirt's accepts first, then our table's rules."""
    fam = state.get("family", "ip")
    external = state.get("external") or {}
    if external.get("backend") == "nftables":
        delete_libvirt_nft(hook, fam, state["tag"])
    elif external.get("backend") == "iptables":
        delete_libvirt_ipt(hook, fam, external.get("rules", []))
    return delete(hook, state["tag"])


def add(hook) -> None:
    guests = hook.params["guests"]
    if hook.object not in guests:
        return                        # not one of ours (the rule's objects make this rare)
    fwd = Forwards(hook.object, guests[hook.object])
    fd = hook.lock()
    try:
        external = add_rules(hook, fwd, hook.load_state() or {})
        log("port_forward: %d rule(s) for %s (%s)%s" % (
            len(fwd.rules()), hook.object, fwd.tag,
            "; accepted from other machines in libvirt's %s chain" % external["backend"] if external.get("backend") else ""))
    finally:
        os.close(fd)


def stale_deletions(hook, fwd: Forwards, old: dict) -> list:
    """nft lines deleting what is there for this guest (a re-add on reconnect): in the same transaction
    as the new set, so the guest's forwards are replaced atomically."""
    lines = ["delete rule %s %s handle %d" % (TABLE, chain, handle)
             for chain, handle, comment in listing(hook, TABLE)[1] if comment == fwd.tag]
    for fam in sorted({fwd.fam, old.get("family", fwd.fam)}):
        if (old.get("external") or {}).get("backend") == "nftables" or fwd.cfg.get("external"):
            lines += ["delete rule %s libvirt_network %s handle %d" % (fam, chain, handle)
                      for chain, handle, comment in listing(hook, "%s libvirt_network" % fam)[1] if comment == fwd.tag]
    return lines


def add_rules(hook, fwd: Forwards, old: dict) -> dict:
    """Our table's rules and, with external, libvirt's accepts; then the state file. All or nothing."""
    rules = fwd.rules()
    lines = ["add table " + TABLE] + ["add chain %s %s { %s }" % (TABLE, n, spec) for n, spec in BASE_CHAINS]
    lines += stale_deletions(hook, fwd, old) + rules
    external = {}
    if fwd.cfg.get("external"):
        external["backend"] = libvirt_backend(hook, fwd.fam)
        if external["backend"] == "nftables":
            lines += fwd.nft_accepts()
    old_ipt = old.get("external", {}).get("rules", []) if (old.get("external") or {}).get("backend") == "iptables" else []
    delete_libvirt_ipt(hook, old.get("family", fwd.fam), old_ipt)
    state = {"tag": fwd.tag, "rules": rules, "ip": fwd.cfg["ip"], "forwards": fwd.cfg["forwards"],
             "family": fwd.fam, "external": external}
    transaction(hook, lines)
    try:
        if external.get("backend") == "iptables":
            external["rules"] = []
            tool = hook.paths["iptables" if fwd.fam == "ip" else "ip6tables"]
            for position, spec in enumerate(fwd.ipt_accepts(), 1):     # first in the chain, in their order
                run([tool, "-w", "-I", LIBVIRT_IPT_CHAIN, str(position)] + spec)
                external["rules"].append(spec)
        hook.save_state(state)
    except Fail:
        remove_all(hook, state)       # roll back: no rule without a state file that can undo it
        raise
    return external


def remove(hook) -> None:
    state = hook.load_state()
    if state is None:
        return                        # nothing recorded: nothing of ours to undo
    fd = hook.lock()
    try:
        removed = remove_all(hook, state)
        hook.drop_state()
        log("port_forward: removed %d rule(s) of %s" % (removed, hook.object))
    finally:
        os.close(fd)


STEPS = {"add": add, "readd": add, "remove": remove}
