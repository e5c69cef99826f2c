"""Verify of the molecule scenario "libvirt": real events through the deployed hooks on this machine.

Run as root on the test machine after converge (verify.yml does):
    verify_libvirt.py --repo REPO --inventory INVENTORY --ansible-playbook PATH --policy-json JSON --library-json JSON

Every step drives the real libvirtd (virsh, service, ansible-playbook) and compares what the recorder
scripts saw (records.jsonl: argv, stdin, environment of each call) with the expected table; the library
steps check what the library blocks did on the host itself (nft, nr_hugepages, qemu-img, a webhook). Steps
print one line each; the first mismatch stops with exit status 1 and the evidence. Guests and networks are
named vh-* (recorded) and vhmol-* (library); everything this script creates is removed again in `finally`
(cleanup.yml removes leftovers too).
"""
from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

# The guest XML and probes shared with tests/integration/test_library_libvirt.py live in the repository's tests.
REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO))
from tests.support.libvirt_objects import (guest_xml, hugepage_kib, nat_network_xml, nft_table, nr_hugepages, snapshots,
                                           start_webhook, webhook_posts)

STATE = Path("/var/tmp/virthooks-molecule")
RECORDS = STATE / "records.jsonl"
FOREIGN_LOG = STATE / "foreign.log"
DISPATCH_LOG = STATE / "dispatch.jsonl"
HOOKS = Path("/etc/libvirt/hooks")
PIDFILE = Path("/run/libvirtd.pid")
URI = "qemu:///system"
NET = "vh-net"
BRIDGE = "vhmol0"
CLI_LINK = Path("/usr/local/bin/virthooks")

NET_XML = "<network><name>%s</name><bridge name='%s'/></network>" % (NET, BRIDGE)


class Failed(Exception):
    pass


def check(cond: bool, what: str, evidence: object = "") -> None:
    if not cond:
        raise Failed("%s\n  evidence: %s" % (what, evidence if isinstance(evidence, str) else json.dumps(evidence, indent=1)[:6000]))


def say(msg: str) -> None:
    print(msg, flush=True)


def run(cmd: list, timeout: float = 180, check_rc: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check_rc and proc.returncode != 0:
        raise Failed("command failed (rc=%d): %s\n%s%s" % (proc.returncode, " ".join(cmd), proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


def virsh(*args: str, check_rc: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    return run(["virsh", "-q", "-c", URI, *args], timeout=timeout, check_rc=check_rc)


def virsh_file(cmd: str, xml: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".xml", dir=STATE, delete=False) as f:
        f.write(xml)
    try:
        virsh(cmd, f.name)
    finally:
        os.unlink(f.name)


def domstate(name: str) -> str:
    return virsh("domstate", name).stdout.strip()


def daemon_pid() -> int:
    return int(PIDFILE.read_text().strip())


def wait_daemon(timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise Failed("libvirtd does not answer after %ss" % timeout)


# --- records ------------------------------------------------------------------------------------------
def all_records() -> list:
    if not RECORDS.exists():
        return []
    return [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]


def mark() -> int:
    return len(all_records())


def key(rec: dict) -> tuple:
    """(driver, object, operation, sub-operation, extra) of one recorded call."""
    return (rec["script"].split("-", 1)[1],) + tuple(rec["argv"])


def since(m: int, driver: str | None = None) -> list:
    recs = all_records()[m:]
    return [r for r in recs if driver is None or key(r)[0] == driver]


def settle(m: int, count: int, timeout: float = 30, quiet: float = 0.7) -> list:
    """Records after mark m once at least `count` arrived and nothing new came for `quiet` seconds."""
    end = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while time.monotonic() < end:
        n = len(since(m))
        if n != last:
            last, last_change = n, time.monotonic()
        elif n >= count and time.monotonic() - last_change >= quiet:
            break
        time.sleep(0.1)
    return since(m)


def expect(step: str, m: int, table: dict, daemon_too: bool = False) -> list:
    """The recorded calls since m, per driver, are exactly `table[driver]` (a list of 5-tuples)."""
    want = sum(len(v) for v in table.values())
    recs = settle(m, want)
    drivers = set(table) | ({"qemu", "network"} | ({"daemon"} if daemon_too else set()))
    wrong = {}
    for drv in sorted(drivers):
        got = [" ".join(key(r)[1:]) for r in recs if key(r)[0] == drv]
        want_drv = [" ".join(t[1:]) for t in table.get(drv, [])]
        if got != want_drv:
            wrong[drv] = {"expected": want_drv, "got": got}
    check(not wrong, "%s: the hooks saw a different sequence (%s)" % (step, ", ".join(sorted(wrong))), wrong)
    for r in recs:
        check_record(step, r)
    say("ok  %-58s %s" % (step, "; ".join("%s: %s" % (d, " | ".join(" ".join(t[1:]) for t in v)) for d, v in table.items() if v)))
    return recs


def check_record(step: str, r: dict) -> None:
    """argv, environment, cwd, uid and stdin of one call are what the dispatcher contract promises."""
    drv, obj, op, sub, extra = key(r)
    env = r["env"]
    for var, val in (("DRIVER", drv), ("OBJECT", obj), ("OPERATION", op), ("SUBOPERATION", sub), ("EXTRA", extra)):
        check(env.get("LIBVIRT_HOOK_" + var) == val, "%s: LIBVIRT_HOOK_%s is wrong" % (step, var), {"argv": r["argv"], "env": env})
    check(env.get("LC_ALL") == "C", "%s: libvirt's LC_ALL=C did not reach the script" % step, env)
    check(r["cwd"] == "/" and r["uid"] == 0, "%s: cwd/uid" % step, {"cwd": r["cwd"], "uid": r["uid"]})
    stdin = r["stdin"]
    if drv == "daemon":
        check(stdin == "", "%s: daemon hook got stdin" % step, stdin[:300])
        return
    try:
        root = ET.fromstring(stdin)
    except ET.ParseError as e:
        raise Failed("%s: stdin of %s is not XML (%s): %r" % (step, key(r), e, stdin[:300]))
    if drv == "qemu":
        check(root.tag == "domain" and root.findtext("name") == obj, "%s: stdin is not %s's domain XML" % (step, obj), stdin[:400])
    else:
        check(root.tag == "hookData" and root.findtext("network/name") == obj,
              "%s: stdin is not <hookData> with network %s" % (step, obj), stdin[:400])
        if op in ("port-created", "port-deleted"):
            check(root.find("networkport") is not None, "%s: %s has no <networkport>" % (step, op), stdin[:600])


def q(obj, *events):
    return [("qemu", obj) + tuple(e.split()) for e in events]


def n(*events):
    return [("network", NET) + tuple(e.split()) for e in events]


START = ("prepare begin -", "start begin -", "started begin -")
RESTORE = ("restore begin -",) + START


@functools.lru_cache(maxsize=None)
def daemon_version() -> tuple:
    """The running daemon's libvirt version, as it answers over the API (this machine's, not a fixed one)."""
    out = virsh("version", "--daemon").stdout
    found = re.search(r"Running against daemon: (\d+)\.(\d+)\.(\d+)", out)
    check(found is not None, "virsh version --daemon did not name the daemon's version", out)
    return tuple(int(x) for x in found.groups())


# qemu's release end gets the shutoff reason as its 4th argument since libvirt 10.5.0, "-" before.
RELEASE_GETS_REASON = (10, 5, 0)


def stop(reason: str) -> tuple:
    """stopped end, then release end with the extra argument this machine's libvirt passes for `reason`."""
    return ("stopped end -", "release end %s" % (reason if daemon_version() >= RELEASE_GETS_REASON else "-"))


# --- the steps ----------------------------------------------------------------------------------------
def events_steps() -> None:
    m = mark()
    virsh_file("net-define", NET_XML)
    virsh("net-start", NET)
    expect("network start", m, {"network": n("start begin -", "started begin -")})
    foreign = FOREIGN_LOG.read_text().splitlines() if FOREIGN_LOG.exists() else []
    check(foreign[-2:] == ["%s start begin -" % NET, "%s started begin -" % NET],
          "the adopted foreign hooks/network did not run for the network events", foreign)
    say("ok  the adopted foreign hooks/network ran first for the same events")

    virsh_file("define", guest_xml("vh-tiny", network=NET))
    m = mark()
    virsh("start", "vh-tiny")
    recs = expect("virsh start (guest with a NIC on vh-net)", m,
                  {"qemu": q("vh-tiny", *START), "network": n("port-created begin -")})
    started = [r for r in recs if key(r)[2] == "started"][0]
    check("<interface type='network'" in started["stdin"] or '<interface type="network"' in started["stdin"],
          "started begin's XML lacks the live interface", started["stdin"][:600])

    m = mark()
    virsh("shutdown", "vh-tiny")
    time.sleep(3)
    check(domstate("vh-tiny") == "running", "a guest without OS ignores ACPI shutdown: expected still running")
    expect("virsh shutdown (no OS: ACPI request ignored, no events)", m, {"qemu": [], "network": []})

    m = mark()
    virsh("destroy", "vh-tiny")
    expect("virsh destroy", m, {"qemu": q("vh-tiny", *stop("destroyed")), "network": n("port-deleted begin -")})

    virsh("start", "vh-tiny")
    settle(mark(), 0)
    save = STATE / "vh-tiny.save"
    m = mark()
    virsh("save", "vh-tiny", str(save))
    expect("virsh save", m, {"qemu": q("vh-tiny", *stop("saved")), "network": n("port-deleted begin -")})
    m = mark()
    virsh("restore", str(save))
    recs = expect("virsh restore", m, {"qemu": q("vh-tiny", *RESTORE), "network": n("port-created begin -")})
    check("<domain" in recs[0]["stdin"] and "vh-tiny" in recs[0]["stdin"], "restore begin got no domain XML", recs[0]["stdin"][:300])
    save.unlink()

    m = mark()
    virsh("managedsave", "vh-tiny")
    expect("virsh managedsave", m, {"qemu": q("vh-tiny", *stop("saved")), "network": n("port-deleted begin -")})
    check("yes" in virsh("dominfo", "vh-tiny").stdout.split("Managed save:")[1].splitlines()[0], "no managed save image")
    m = mark()
    virsh("start", "vh-tiny")
    expect("virsh start from the managed save image", m,
           {"qemu": q("vh-tiny", *RESTORE), "network": n("port-created begin -")})

    pid = daemon_pid()
    dom_id = virsh("domid", "vh-tiny").stdout.strip()
    m = mark()
    run(["service", "libvirtd", "reload"])
    wait_daemon()
    expect("daemon reload (SIGHUP)", m, {"daemon": [("daemon", "-", "reload", "begin", "SIGHUP")]}, daemon_too=True)
    check(daemon_pid() == pid, "reload changed the daemon's pid", {"before": pid, "after": daemon_pid()})

    m = mark()
    restart_libvirtd()
    check(daemon_pid() != pid, "libvirtd was not restarted")
    expect("daemon restart with vh-tiny running", m, {
        "daemon": [("daemon", "-", "shutdown", "-", "shutdown"), ("daemon", "-", "start", "-", "start")],
        "qemu": q("vh-tiny", "reconnect begin -"),
        # libvirt re-announces the running guest's port on reconnect (the network itself stays up).
        "network": n("port-created begin -"),
    }, daemon_too=True)
    check(domstate("vh-tiny") == "running" and virsh("domid", "vh-tiny").stdout.strip() == dom_id,
          "the guest did not survive the daemon restart")

    m = mark()
    virsh("destroy", "vh-tiny")
    virsh("net-destroy", NET)
    expect("virsh destroy + net-destroy", m, {"qemu": q("vh-tiny", *stop("destroyed")),
                                              "network": n("port-deleted begin -", "stopped end -")})
    virsh("undefine", "vh-tiny")
    virsh("net-undefine", NET)


def restart_libvirtd() -> None:
    """Stop, wait until the process is gone (Debian's restart is racy), start, wait until it answers."""
    pid = daemon_pid()
    run(["service", "libvirtd", "stop"], check_rc=False)
    end = time.monotonic() + 60
    while Path("/proc/%d" % pid).exists() and time.monotonic() < end:
        time.sleep(0.1)
    check(not Path("/proc/%d" % pid).exists(), "libvirtd %d does not stop" % pid)
    run(["service", "libvirtd", "start"])
    wait_daemon()


def policy_steps() -> None:
    virsh_file("define", guest_xml("vh-failprep"))
    m = mark()
    proc = virsh("start", "vh-failprep", check_rc=False)
    err = proc.stderr
    check(proc.returncode != 0, "a failing prepare begin script did not stop virsh start", proc.stdout)
    ours = [line for line in err.split("\n") if "virthooks:" in line]
    check(len(ours) == 1 and "script 'fail-prepare'" in ours[0] and "storage for vh-failprep is not mounted" in ours[0]
          and "exit" in ours[0], "virsh's error does not carry our one-line message", err)
    check(domstate("vh-failprep") == "shut off", "the guest is not off after the failed start")
    recs = expect("prepare begin fails (on_failure: fail)", m, {"qemu": q("vh-failprep", "prepare begin -", *stop("failed"))})
    say("    virsh said: %s" % " ".join(err.split())[:300])
    del recs
    virsh("undefine", "vh-failprep")

    virsh_file("define", guest_xml("vh-ignprep"))
    m = mark()
    virsh("start", "vh-ignprep")
    check(domstate("vh-ignprep") == "running", "on_failure: ignore did not let the guest start")
    expect("prepare begin fails (on_failure: ignore): started", m, {"qemu": q("vh-ignprep", *START)})
    virsh("destroy", "vh-ignprep")
    virsh("undefine", "vh-ignprep")

    virsh_file("define", guest_xml("vh-failstop"))
    virsh("start", "vh-failstop")
    m = mark()
    proc = virsh("destroy", "vh-failstop", check_rc=False)
    check(proc.returncode == 0, "a failing stopped end script made virsh destroy fail", proc.stderr)
    check(domstate("vh-failstop") == "shut off", "the guest did not stop")
    expect("stopped end fails: the guest stops anyway, release still runs", m, {"qemu": q("vh-failstop", *stop("destroyed"))})
    entries = [json.loads(x) for x in DISPATCH_LOG.read_text().splitlines() if "vh-failstop" in x]
    stopped = [e for e in entries if e.get("object") == "vh-failstop" and e.get("operation") == "stopped"]
    check(any(s.get("name") == "fail-stopped" and s.get("exit") == 4
              for e in stopped for s in e.get("scripts", [])),
          "the dispatcher log does not show fail-stopped exiting 4", stopped[-2:] or entries[-3:])
    say("ok  the dispatcher log records fail-stopped's exit 4 (call exit %s)" % stopped[-1].get("exit"))
    virsh("undefine", "vh-failstop")

    virsh_file("define", guest_xml("vh-hang"))
    m = mark()
    t0 = time.monotonic()
    proc = virsh("start", "vh-hang", check_rc=False, timeout=120)
    took = time.monotonic() - t0
    check(proc.returncode != 0 and "script 'hang'" in proc.stderr, "the hanging start begin script did not fail the start", proc.stderr)
    check(3 <= took <= 3 + 2 + 6, "virsh start did not return shortly after the 3 s timeout (+2 s kill grace)", "%.1fs" % took)
    check(domstate("vh-hang") == "shut off", "the guest is not off after the timed-out start")
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) in ("sleep 317", "sleep 318")]
    check(not left, "the hanging script's process group was not killed", [str(p) for p in left])
    expect("start begin hangs: killed at its 3 s timeout (%.1fs)" % took, m,
           {"qemu": q("vh-hang", "prepare begin -", "start begin -", *stop("failed"))})
    say("    virsh said: %s" % " ".join(proc.stderr.split())[:300])
    virsh("undefine", "vh-hang")

    virsh_file("define", guest_xml("vh-restore", description="original"))
    virsh("start", "vh-restore")
    save = STATE / "vh-restore.save"
    virsh("save", "vh-restore", str(save))
    m = mark()
    virsh("restore", str(save))
    recs = expect("restore begin rewrites the XML", m, {"qemu": q("vh-restore", *RESTORE)})
    check("<description>original</description>" in recs[0]["stdin"], "restore begin did not get the saved XML", recs[0]["stdin"][:500])
    live = virsh("dumpxml", "vh-restore").stdout
    check("<description>rewritten by virthooks</description>" in live, "the rewritten XML was not applied", live[:800])
    check("<description>rewritten by virthooks</description>" in recs[1]["stdin"],
          "prepare begin did not get the rewritten XML", recs[1]["stdin"][:500])
    say("ok  virsh dumpxml after restore shows <description>rewritten by virthooks</description>")
    virsh("destroy", "vh-restore")
    virsh("undefine", "vh-restore")
    save.unlink()


def _cmdline(p: Path) -> str:
    try:
        return p.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


# --- the library of ready-made hooks ------------------------------------------------------------------
LIB_GUEST, LIB_NET, LIB_BRIDGE = "vhmol-lib", "vhmol-net", "vhmolnat0"
LIB_IMAGE = STATE / "vhmol-lib.qcow2"
WEBHOOK_LOG = STATE / "webhook.jsonl"


def library_steps(library: dict) -> None:
    """What the library blocks converge deployed (group_vars' libvirt_hooks_library) really do for vhmol-lib:
    DNAT rules in nft while it runs, huge pages reserved and given back, `keep` disk snapshots, start/stop
    posted to a webhook without the URL's credentials reaching the log."""
    pf = library["port_forward"]["guests"][LIB_GUEST]
    keep = int(library["disk_snapshot"]["keep"])
    url = urllib.parse.urlsplit(library["notify"]["url"])
    gateway = str(ipaddress.ip_interface(pf["ip"] + "/24").network[1])
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(LIB_IMAGE), "16M"])
    virsh_file("net-define", nat_network_xml(LIB_NET, LIB_BRIDGE, gateway))
    virsh("net-start", LIB_NET)
    virsh_file("define", guest_xml(LIB_GUEST, network=LIB_NET, image=str(LIB_IMAGE), hugepages=True))
    pages = 64 * 1024 // hugepage_kib()
    nr = nr_hugepages()
    check(nft_table() == "", "the table inet virthooks exists before a guest with forwards started", nft_table())
    dnat = ["%s dport %d dnat ip to %s:%d" % (f.get("proto", "tcp"), f["host_port"], pf["ip"], f["guest_port"])
            for f in pf["forwards"]]
    server = start_webhook(WEBHOOK_LOG, url.port)
    try:
        virsh("start", LIB_GUEST)
        check(domstate(LIB_GUEST) == "running", "vhmol-lib does not run")
        table = nft_table()
        check(all(rule in table for rule in dnat), "port_forward: the DNAT rules are not in inet virthooks", table)
        check(nr_hugepages() == nr + pages, "hugepages: nr_hugepages is not %d + %d while vhmol-lib runs" % (nr, pages),
              {"nr_hugepages": nr_hugepages()})
        say("ok  library, virsh start vhmol-lib: %s in inet virthooks; nr_hugepages %d -> %d" % (" | ".join(dnat), nr, nr + pages))
        virsh("destroy", LIB_GUEST)
        check(nft_table() == "", "port_forward: the table inet virthooks is still there after destroy", nft_table())
        check(nr_hugepages() == nr, "hugepages: nr_hugepages is not back to %d after destroy" % nr, {"nr_hugepages": nr_hugepages()})
        say("ok  library, virsh destroy: no table inet virthooks, nr_hugepages back to %d" % nr)

        for _ignored in range(keep):
            virsh("start", LIB_GUEST)
            virsh("destroy", LIB_GUEST)
        names = snapshots(LIB_IMAGE)
        check(len(names) == keep and all(n.startswith("virthooks-") for n in names),
              "disk_snapshot: %d starts did not leave exactly keep=%d snapshots" % (keep + 1, keep), names)
        say("ok  library, %d starts with keep=%d: qemu-img snapshot -l lists %s" % (keep + 1, keep, ", ".join(names)))

        posts = webhook_posts(WEBHOOK_LOG)
        got = [(p["event"]["object"], p["event"]["operation"], p["event"]["suboperation"], p["path"]) for p in posts]
        check(got == [(LIB_GUEST, "started", "begin", url.path), (LIB_GUEST, "stopped", "end", url.path)] * (keep + 1),
              "notify: the webhook did not get every start and stop", got)
        basic = "Basic " + base64.b64encode(("%s:%s" % (url.username, url.password)).encode()).decode()
        check(all(p["auth"] == basic for p in posts), "notify: the URL's credentials were not sent as Basic auth", posts[:2])
        logged = DISPATCH_LOG.read_text()
        redacted = "%s://%s:%d%s" % (url.scheme, url.hostname, url.port, url.path)
        check(redacted in logged, "notify: the dispatcher log does not name %s (where did its output go?)" % redacted)
        check(url.password not in logged, "notify: the URL's password is in the dispatcher log")
        say("ok  library, notify: %d posts (started/stopped) with Basic auth; the log names %s, never the password"
            % (len(posts), redacted))
    finally:
        server.kill()
        server.wait()
    virsh("undefine", LIB_GUEST)
    virsh("net-destroy", LIB_NET)
    virsh("net-undefine", LIB_NET)
    LIB_IMAGE.unlink()


# --- Ansible runs ---------------------------------------------------------------------------------------
class Deploy:
    def __init__(self, args):
        self.args = args

    def __call__(self, *extra: str, variant: dict | None = None) -> subprocess.CompletedProcess:
        cmd = [self.args.ansible_playbook, "-i", self.args.inventory, str(Path(self.args.repo) / "playbooks" / "deploy_hooks.yml")]
        tmp = None
        if variant is not None:
            tmp = tempfile.NamedTemporaryFile("w", suffix=".json", dir=STATE, delete=False)
            json.dump(variant, tmp)
            tmp.close()
            cmd += ["-e", "@" + tmp.name]
        cmd += list(extra)
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        try:
            t0 = time.monotonic()
            proc = run(cmd, timeout=600, check_rc=False, env=env)
            proc.seconds = time.monotonic() - t0
        finally:
            if tmp:
                os.unlink(tmp.name)
        if proc.returncode != 0:
            raise Failed("ansible-playbook %s failed:\n%s\n%s" % (" ".join(extra), proc.stdout[-5000:], proc.stderr[-2000:]))
        return proc


def recap(proc) -> dict:
    mo = re.search(r"vh-local\s*:\s*ok=(\d+)\s+changed=(\d+)", proc.stdout)
    check(mo is not None, "no PLAY RECAP for vh-local", proc.stdout[-2000:])
    return {"ok": int(mo.group(1)), "changed": int(mo.group(2))}


def tree_digest() -> dict:
    out = {}
    for p in sorted(HOOKS.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            st = p.stat()
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
    return out


def ansible_steps(args) -> None:
    deploy = Deploy(args)
    prepare_pid = int((STATE / "libvirtd.pid.prepare").read_text())

    # 1. The first converge reloaded (SIGHUP keeps the pid); molecule's idempotence step ran converge again.
    #    (The restart steps above changed the pid since; this is checked against the records instead.)
    m = mark()
    pid = daemon_pid()
    before = tree_digest()
    proc = deploy()
    r = recap(proc)
    check(r["changed"] == 0, "a second converge reported changes", proc.stdout[-4000:])
    check(daemon_pid() == pid, "a second converge restarted libvirtd")
    check(not since(m, "daemon"), "a second converge reloaded or restarted libvirtd", [key(x) for x in since(m, "daemon")])
    check(tree_digest() == before, "a second converge changed files")
    say("ok  converge again: changed=0, no daemon reload/restart event, pid %d kept, files identical (%.1fs)" % (pid, proc.seconds))

    # 2. --check --diff on a changed inventory: shows the diff, changes nothing.
    edited = [dict(s, content=s["content"].replace("cleanup of", "CLEANUP OF")) if s["name"] == "fail-stopped" else s
              for s in args.policy]
    added = [{"name": "added-in-check", "operations": ["started"], "content": "#!/bin/sh\nexit 0\n"}]
    variant = {"libvirt_hooks_scripts__policy": edited + added}
    m = mark()
    proc = deploy("--check", "--diff", variant=variant)
    r = recap(proc)
    check(r["changed"] > 0, "--check on a changed inventory reported no change", proc.stdout[-4000:])
    check('+echo "CLEANUP OF $1 failed" >&2' in proc.stdout and '-echo "cleanup of $1 failed" >&2' in proc.stdout,
          "--diff does not show the changed line of fail-stopped", proc.stdout[-6000:])
    check("added-in-check" in proc.stdout, "--diff does not show the new script", proc.stdout[-6000:])
    check(tree_digest() == before, "--check changed files on the host",
          {k: v for k, v in tree_digest().items() if before.get(k) != v})
    check(not (HOOKS / "virthooks" / "current" / "scripts" / "added-in-check").exists(), "--check created a script")
    check(not since(m, "daemon") and daemon_pid() == pid, "--check reloaded or restarted libvirtd")
    say("ok  --check --diff on a changed inventory: changed=%d, diff shown, nothing changed on the host" % r["changed"])

    # 3. A role-triggered restart (libvirt_hooks_restart: restart) with a guest running.
    virsh_file("define", guest_xml("vh-keep"))
    virsh("start", "vh-keep")
    dom_id = virsh("domid", "vh-keep").stdout.strip()
    m = mark()
    proc = deploy("-e", "libvirt_hooks_restart=restart")
    check(daemon_pid() != pid, "libvirt_hooks_restart: restart did not restart libvirtd", proc.stdout[-3000:])
    check(domstate("vh-keep") == "running" and virsh("domid", "vh-keep").stdout.strip() == dom_id,
          "the running guest did not survive the role's restart")
    expect("role restart (libvirt_hooks_restart: restart), vh-keep running", m, {
        "daemon": [("daemon", "-", "shutdown", "-", "shutdown"), ("daemon", "-", "start", "-", "start")],
        "qemu": q("vh-keep", "reconnect begin -"), "network": []}, daemon_too=True)
    virsh("destroy", "vh-keep")
    virsh("undefine", "vh-keep")
    pid = daemon_pid()

    # 4. Purge one script: it goes, the rest stays, no daemon event (no entry point changed).
    variant = {"libvirt_hooks_scripts__policy": [s for s in args.policy if s["name"] != "hang"], "libvirt_hooks_purge": True}
    m = mark()
    deploy(variant=variant)
    scripts = sorted(p.name for p in (HOOKS / "virthooks" / "current" / "scripts").iterdir())
    check("hang" not in scripts and "fail-stopped" in scripts and "rec-qemu" in scripts,
          "purge did not remove exactly the undeclared script", scripts)
    check(not since(m, "daemon") and daemon_pid() == pid, "removing a script reloaded or restarted libvirtd")
    say("ok  purge: the undeclared script 'hang' is gone, %d others stay" % len(scripts))

    # 5. Purge everything: entry points and our directory go, the foreign hook is back as it was.
    empty = dict({k: [] for k in ("libvirt_hooks_scripts__recorders", "libvirt_hooks_scripts__policy")}, libvirt_hooks_library={})
    m = mark()
    deploy(variant=dict(empty, libvirt_hooks_purge=True))
    left = sorted(p.name for p in HOOKS.iterdir())
    check(left == ["network"], "removing every script left files in %s" % HOOKS, left)
    foreign = HOOKS / "network"
    st = foreign.stat()
    check(hashlib.sha256(foreign.read_bytes()).hexdigest() == (STATE / "foreign.sha256").read_text().strip()
          and "%o root root" % (st.st_mode & 0o7777) == (STATE / "foreign.stat").read_text().strip()
          and st.st_uid == 0 and st.st_gid == 0,
          "the foreign hooks/network is not as it was", (foreign.read_text(), oct(st.st_mode)))
    check(not (CLI_LINK.is_symlink() and os.readlink(CLI_LINK).startswith(str(HOOKS))),
          "the CLI link %s into the hooks dir is still there" % CLI_LINK)
    wait_daemon()
    say("ok  purge everything: only the foreign hooks/network is left, byte-identical, mode %o" % (st.st_mode & 0o7777))
    del prepare_pid


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--inventory", required=True)
    ap.add_argument("--ansible-playbook", required=True)
    ap.add_argument("--policy-json", required=True, help="the scenario's libvirt_hooks_scripts__policy as JSON")
    ap.add_argument("--library-json", required=True, help="the scenario's libvirt_hooks_library as JSON")
    args = ap.parse_args()
    args.policy = json.loads(args.policy_json)
    args.library = json.loads(args.library_json)
    t0 = time.monotonic()
    try:
        check(os.geteuid() == 0, "run as root")
        wait_daemon()
        version = daemon_version()
        say("ok  libvirt %s answers (release end gets %s)" % (".".join(map(str, version)), "the shutoff reason"
            if version >= RELEASE_GETS_REASON else '"-"'))
        prepare_pid = int((STATE / "libvirtd.pid.prepare").read_text())
        check(daemon_pid() == prepare_pid,
              "converge + idempotence did not keep libvirtd's pid (a reload keeps it; was it restarted?)",
              {"prepare": prepare_pid, "now": daemon_pid()})
        entry = sorted(p.name for p in HOOKS.iterdir())
        # the foreign hooks/network is adopted in place, beside the entry point that replaced it
        check(entry == ["daemon", "network", "network.virthooks-adopted", "qemu", "virthooks"],
              "unexpected hooks dir after converge", entry)
        for name in ("daemon", "network", "qemu"):
            st = (HOOKS / name).stat()
            check(st.st_mode & 0o7777 == 0o755 and st.st_uid == 0, "entry point %s is not 0755 root" % name, oct(st.st_mode))
        say("ok  converge + idempotence: entry points daemon/network/qemu 0755 root, libvirtd pid %d unchanged since prepare" % prepare_pid)
        events_steps()
        policy_steps()
        report_steps(args)
        library_steps(args.library)
        ansible_steps(args)
    except Failed as e:
        print("FAILED: %s" % e, flush=True)
        return 1
    finally:
        cleanup()
    say("all checks passed in %.1fs" % (time.monotonic() - t0))
    return 0


FAILED_RUNS = ("failed", "timeout", "refused", "error", "killed")


def report_steps(args) -> None:
    """The fleet report (playbooks/report.yml) on this real libvirtd counts exactly what the dispatcher
    logged for the events fired above (ok calls, the failing and ignored prepare scripts, ...)."""
    logged = [json.loads(line) for line in DISPATCH_LOG.read_text().splitlines() if line.strip()]
    failures = 0
    per_script = {}
    for rec in logged:
        bad = [s for s in rec.get("scripts", []) if s.get("status") in FAILED_RUNS]
        failures += len(bad) or (1 if rec.get("result") in ("error", "interrupted") else 0)
        for s in bad:
            per_script[s["name"]] = per_script.get(s["name"], 0) + 1
    out = Path(tempfile.mkdtemp(prefix="vh-report-"))
    proc = run([args.ansible_playbook, "-i", args.inventory, str(Path(args.repo) / "playbooks" / "report.yml"),
                "-e", "libvirt_hooks_report_dir=%s" % out, "-e", "libvirt_hooks_report_since=24h"],
               timeout=300, check_rc=False)
    check(proc.returncode == 0, "playbooks/report.yml failed", (proc.stdout + proc.stderr)[-3000:])
    report = json.loads((out / "report.json").read_text())
    host = next(h for h in report["hosts"] if h["host"] == "vh-local")
    check(host["status"] == "ok", "the report did not read vh-local", host)
    check(host["calls"] == len(logged) and host["failures"] == failures,
          "report.json does not count what the dispatcher logged",
          {"report": (host["calls"], host["failures"]), "log": (len(logged), failures)})
    reported = {s["name"]: s["failures"] for s in host["stats"]["scripts"] if s["failures"]}
    check(reported == per_script and per_script.get("fail-prepare", 0) >= 1,
          "report.json's failures per script differ from the log", {"report": reported, "log": per_script})
    check((out / "report.html").read_text().count("vh-local") >= 1, "report.html does not list vh-local")
    say("ok  report: %d calls, %d failures (%s) counted as logged on the real libvirtd"
        % (len(logged), failures, ", ".join("%s=%d" % kv for kv in sorted(per_script.items()))))


def cleanup() -> None:
    for dom in ("vh-tiny", "vh-failprep", "vh-ignprep", "vh-failstop", "vh-hang", "vh-restore", "vh-keep"):
        virsh("destroy", dom, check_rc=False)
        virsh("managedsave-remove", dom, check_rc=False)
        virsh("undefine", dom, check_rc=False)
    virsh("net-destroy", NET, check_rc=False)
    virsh("net-undefine", NET, check_rc=False)
    # With the hooks still deployed, destroying vhmol-lib gives its huge pages back and removes its forwards.
    virsh("destroy", LIB_GUEST, check_rc=False)
    virsh("undefine", LIB_GUEST, check_rc=False)
    virsh("net-destroy", LIB_NET, check_rc=False)
    virsh("net-undefine", LIB_NET, check_rc=False)
    LIB_IMAGE.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
