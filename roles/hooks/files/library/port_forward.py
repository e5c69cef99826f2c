# ---- port_forward.py: nftables DNAT from host ports to a guest, in the table inet virthooks ----
# Every rule of a guest carries the comment "virthooks:pf:<id>" (id from the guest name) and all of
# a guest's rules are added or removed in ONE nft transaction: a failure leaves none of them. libvirt's
# own tables are never touched.
import hashlib
import ipaddress

TABLE = "inet virthooks"
BASE_CHAINS = (
    ("prerouting", "type nat hook prerouting priority dstnat; policy accept;"),
    ("output", "type nat hook output priority -100; policy accept;"),
    ("forward", "type filter hook forward priority filter; policy accept;"),
)


def pf_tag(guest):
    return "virthooks:pf:" + hashlib.sha256(guest.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def pf_rules(guest, cfg):
    """nft 'add rule' lines for the guest's forwards."""
    addr = ipaddress.ip_address(cfg["ip"])
    fam = "ip" if addr.version == 4 else "ip6"
    target = str(addr) if addr.version == 4 else "[%s]" % addr
    tag = pf_tag(guest)
    lines = []
    for fwd in cfg["forwards"]:
        proto, hport, gport = fwd.get("proto", "tcp"), int(fwd["host_port"]), int(fwd["guest_port"])
        dnat = "fib daddr type local %s dport %d dnat %s to %s:%d comment \"%s\"" % (proto, hport, fam, target, gport, tag)
        lines.append("add rule %s prerouting %s" % (TABLE, dnat))
        lines.append("add rule %s output %s" % (TABLE, dnat))
        lines.append("add rule %s forward %s daddr %s %s dport %d ct status dnat accept comment \"%s\""
                     % (TABLE, fam, addr, proto, gport, tag))
    return lines


def pf_listing():
    """(table exists, [(chain, handle, comment)] of every rule in it), from the live ruleset."""
    try:
        text = run([P["nft"], "-j", "-a", "list", "table"] + TABLE.split())
    except Fail as exc:
        if "No such file or directory" in str(exc):
            return False, []
        raise
    rules = [item["rule"] for item in json.loads(text).get("nftables", []) if "rule" in item]
    return True, [(r["chain"], r["handle"], r.get("comment")) for r in rules]


def pf_transaction(lines):
    run([P["nft"], "-f", "-"], input_text="\n".join(lines) + "\n")


def pf_delete(tag):
    """Delete our rules with this tag, and the table when nothing else is in it: one transaction."""
    exists, rules = pf_listing()
    mine = [(chain, handle) for chain, handle, comment in rules if comment == tag]
    if not exists:
        return 0
    if len(mine) == len(rules):
        pf_transaction(["delete table " + TABLE])
    elif mine:
        pf_transaction(["delete rule %s %s handle %d" % (TABLE, chain, handle) for chain, handle in mine])
    return len(mine)


def pf_add(hook):
    guests = PARAMS["guests"]  # noqa: F821
    if hook.object not in guests:
        return                        # not one of ours (the rule's objects make this rare)
    cfg = guests[hook.object]
    tag = pf_tag(hook.object)
    rules = pf_rules(hook.object, cfg)
    fd = hook.lock()
    try:
        old = [(chain, handle) for chain, handle, comment in pf_listing()[1] if comment == tag]
        lines = ["add table " + TABLE] + ["add chain %s %s { %s }" % (TABLE, n, spec) for n, spec in BASE_CHAINS]
        # Replace, atomically: what was there for this guest (a re-add on reconnect) goes, the new set comes.
        lines += ["delete rule %s %s handle %d" % (TABLE, chain, handle) for chain, handle in old]
        lines += rules
        pf_transaction(lines)
        try:
            hook.save_state({"tag": tag, "rules": rules, "ip": cfg["ip"], "forwards": cfg["forwards"]})
        except Fail:
            pf_delete(tag)            # roll back: no rule without a state file that can undo it
            raise
        log("port_forward: %d rule(s) for %s (%s)" % (len(rules), hook.object, tag))
    finally:
        os.close(fd)


def pf_remove(hook):
    state = hook.load_state()
    if state is None:
        return                        # nothing recorded: nothing of ours to undo
    fd = hook.lock()
    try:
        removed = pf_delete(state["tag"])
        hook.drop_state()
        log("port_forward: removed %d rule(s) of %s" % (removed, hook.object))
    finally:
        os.close(fd)


STEPS = {"add": pf_add, "readd": pf_add, "remove": pf_remove}
