"""port_forward with the real nft, in a private network namespace (the host's firewall is never touched)."""
from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from .conftest import domain

PARAMS = {"guests": {
    "web": {"ip": "192.168.122.10", "forwards": [
        {"host_port": 8080, "guest_port": 80, "proto": "tcp"},
        {"host_port": 5353, "guest_port": 53, "proto": "udp"}]},
    "db": {"ip": "fd00::5", "forwards": [{"host_port": 15432, "guest_port": 5432, "proto": "tcp"}]},
}}


# nft in private network namespaces: root only.
pytestmark = pytest.mark.root


@pytest.fixture
def netns():
    """A network namespace of our own, kept alive by a sleep; commands enter it with nsenter."""
    proc = subprocess.Popen(["unshare", "-n", "sleep", "600"])
    try:
        wrap = ["nsenter", "-t", str(proc.pid), "-n"]
        for _ignored in range(100):   # until unshare has exec'd sleep in the new namespace
            if os.readlink("/proc/%d/ns/net" % proc.pid) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.02)
        yield wrap
    finally:
        proc.kill()
        proc.wait()


def nft(wrap, *args) -> subprocess.CompletedProcess:
    return subprocess.run(wrap + ["nft", *args], capture_output=True, text=True, check=False)


def table(wrap) -> str:
    """`nft list table inet virthooks` without handles, or '' when there is no table."""
    proc = nft(wrap, "list", "table", "inet", "virthooks")
    return proc.stdout if proc.returncode == 0 else ""


def test_started_adds_dnat_and_forward_rules_stopped_removes_them_and_the_table(blocks, netns):
    assert table(netns) == ""
    ran = blocks.run("port_forward", "add", PARAMS, "web", domain("web"), op="started", wrap=netns)
    assert ran.rc == 0, ran
    text = table(netns)
    assert "tcp dport 8080 dnat ip to 192.168.122.10:80" in text
    assert "udp dport 5353 dnat ip to 192.168.122.10:53" in text
    assert text.count("dnat ip to") == 4            # prerouting and output, for each forward
    assert "ip daddr 192.168.122.10 tcp dport 80 ct status dnat accept" in text
    assert "15432" not in text                         # only this guest's work
    assert blocks.state_of("port_forward", "web")["ip"] == "192.168.122.10"
    ran = blocks.run("port_forward", "remove", PARAMS, "web", domain("web"), op="stopped", sub="end", wrap=netns)
    assert ran.rc == 0, ran
    assert table(netns) == "" and blocks.state_of("port_forward", "web") is None


def test_ipv6_guest_gets_ip6_dnat(blocks, netns):
    assert blocks.run("port_forward", "add", PARAMS, "db", domain("db"), op="started", wrap=netns).rc == 0
    assert "tcp dport 15432 dnat ip6 to [fd00::5]:5432" in table(netns)


def test_running_add_twice_changes_nothing(blocks, netns):
    blocks.run("port_forward", "add", PARAMS, "web", domain("web"), op="started", wrap=netns)
    first = table(netns)
    ran = blocks.run("port_forward", "readd", PARAMS, "web", domain("web"), op="reconnect", wrap=netns)
    assert ran.rc == 0, ran
    assert table(netns) == first


def test_removing_one_guest_keeps_the_other_guests_rules(blocks, netns):
    for guest in ("web", "db"):
        assert blocks.run("port_forward", "add", PARAMS, guest, domain(guest), op="started", wrap=netns).rc == 0
    blocks.run("port_forward", "remove", PARAMS, "web", domain("web"), op="stopped", sub="end", wrap=netns)
    text = table(netns)
    assert "8080" not in text and "15432" in text


def test_libvirts_own_tables_are_left_exactly_as_they_were(blocks, netns):
    subprocess.run(netns + ["nft", "-f", "-"], input="table ip libvirt_like {\n chain fw {\n type filter hook forward priority 0; policy accept;\n"
                   " oifname \"virbr0\" reject\n }\n}\n", text=True, check=True)
    before = nft(netns, "list", "table", "ip", "libvirt_like").stdout
    blocks.run("port_forward", "add", PARAMS, "web", domain("web"), op="started", wrap=netns)
    blocks.run("port_forward", "remove", PARAMS, "web", domain("web"), op="stopped", sub="end", wrap=netns)
    assert nft(netns, "list", "table", "ip", "libvirt_like").stdout == before


def test_a_guest_not_in_the_parameters_is_left_alone(blocks, netns):
    ran = blocks.run("port_forward", "add", PARAMS, "other", domain("other"), op="started", wrap=netns)
    assert ran.rc == 0 and table(netns) == ""


def test_failure_after_the_rules_were_added_removes_them_again(blocks, netns):
    """The state file cannot be written (its directory is a file): no rule may stay behind without it."""
    blocks.state.parent.mkdir(parents=True)
    blocks.state.write_text("not a directory")
    ran = blocks.run("port_forward", "add", PARAMS, "web", domain("web"), op="started", wrap=netns)
    assert ran.rc == 1
    assert re.fullmatch(r"virthooks port_forward: web: cannot (create the lock|write the state file) .*\n", ran.stderr)
    assert "8080" not in table(netns)


def test_a_rule_nft_refuses_fails_the_whole_transaction_with_one_line(blocks, netns):
    """All of a guest's forwards are one nft transaction: nft refusing the second leaves none of them.

    (The filter only lets tcp and udp through; the script is fed a bad protocol directly here.)"""
    params = {"guests": {"web": {"ip": "192.168.122.10", "forwards": [
        {"host_port": 8080, "guest_port": 80, "proto": "tcp"}, {"host_port": 8081, "guest_port": 81, "proto": "bogus"}]}}}
    ran = blocks.run("port_forward", "add", params, "web", domain("web"), op="started", wrap=netns)
    assert ran.rc == 1 and ran.stderr.count("\n") == 1 and ran.stderr.startswith("virthooks port_forward: web: ")
    assert "8080" not in table(netns) and blocks.state_of("port_forward", "web") is None


def test_missing_nft_is_named(blocks, netns):
    blocks.paths["nft"] = "/nonexistent/nft"
    ran = blocks.run("port_forward", "add", PARAMS, "web", domain("web"), op="started", wrap=netns)
    assert ran.rc == 1 and ran.stderr == "virthooks port_forward: web: /nonexistent/nft is not installed\n"


def test_stop_without_a_state_file_does_nothing(blocks, netns):
    ran = blocks.run("port_forward", "remove", PARAMS, "web", domain("web"), op="stopped", sub="end", wrap=netns)
    assert ran.rc == 0 and table(netns) == ""


# libvirt's own inbound chain, as each of its firewall backends writes it for a NAT network (a stand-in made here
# with the real iptables and nft in the private namespace: tests/integration/test_library_libvirt.py opens the real
# one of libvirt 9.0 and connects through it from other machines).
LIBVIRT_IPTABLES = ["iptables -w -N LIBVIRT_FWI", "iptables -w -A FORWARD -j LIBVIRT_FWI",
                    "iptables -w -A LIBVIRT_FWI -d 192.168.122.0/24 -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                    "iptables -w -A LIBVIRT_FWI -o virbr0 -j REJECT"]
LIBVIRT_NFT = ("table ip libvirt_network {\n chain forward {\n type filter hook forward priority filter; policy accept;\n"
               " jump guest_input\n }\n chain guest_input {\n oifname \"virbr0\" ip daddr 192.168.122.0/24 ct state "
               "related,established accept\n oifname \"virbr0\" reject\n }\n}\n")
EXTERNAL = {"guests": {"web": {"ip": "192.168.122.10", "external": True, "forwards": [
    {"host_port": 8080, "guest_port": 80}, {"host_port": "6000-6002", "guest_port": "6000-6002", "proto": "udp"}]}}}


def fwi(wrap) -> str:
    return subprocess.run(wrap + ["iptables", "-w", "-S", "LIBVIRT_FWI"], capture_output=True, text=True, check=True).stdout


def test_defaults_leave_libvirts_inbound_chain_alone(blocks, netns):
    for cmd in LIBVIRT_IPTABLES:
        subprocess.run(netns + cmd.split(), check=True)
    before = fwi(netns)
    assert blocks.run("port_forward", "add", PARAMS, "web", domain("web"), op="started", wrap=netns).rc == 0
    assert fwi(netns) == before


def test_external_accepts_the_dnat_traffic_first_in_libvirts_iptables_chain_and_takes_it_out_at_stop(blocks, netns):
    for cmd in LIBVIRT_IPTABLES:
        subprocess.run(netns + cmd.split(), check=True)
    before = fwi(netns)
    ran = blocks.run("port_forward", "add", EXTERNAL, "web", domain("web"), op="started", wrap=netns)
    assert ran.rc == 0, ran
    rules = fwi(netns)
    ours = rules.splitlines()[1:3]
    assert all("--ctstate DNAT" in r and "virthooks:pf:" in r and r.endswith("-j ACCEPT") for r in ours), rules
    assert any("-p udp -m udp --dport 6000:6002" in r for r in ours) and any("--dport 80 " in r for r in ours)
    assert "accepted from other machines in libvirt's iptables chain" in ran.stdout
    assert "udp dport 6000-6002 dnat ip to 192.168.122.10 " in table(netns)
    # A re-add (reconnect) replaces them, it does not stack them.
    assert blocks.run("port_forward", "readd", EXTERNAL, "web", domain("web"), op="reconnect", wrap=netns).rc == 0
    again = fwi(netns)
    assert again.count("virthooks:pf:") == 2
    assert blocks.run("port_forward", "remove", EXTERNAL, "web", "", op="stopped", sub="end", wrap=netns).rc == 0
    assert fwi(netns) == before
    assert table(netns) == ""


def test_external_with_libvirts_nftables_backend_goes_in_its_guest_input_chain_in_the_same_transaction(blocks, netns):
    subprocess.run(netns + ["nft", "-f", "-"], input=LIBVIRT_NFT, text=True, check=True)
    before = nft(netns, "list", "table", "ip", "libvirt_network").stdout
    ran = blocks.run("port_forward", "add", EXTERNAL, "web", domain("web"), op="started", wrap=netns)
    assert ran.rc == 0, ran
    chain = nft(netns, "list", "chain", "ip", "libvirt_network", "guest_input").stdout.splitlines()
    body = [line.strip() for line in chain if line.strip() and not line.strip().startswith(("table", "chain", "}"))]
    assert body[0].startswith("ip daddr 192.168.122.10 udp dport 6000-6002 ct status dnat accept comment")
    assert body[1].startswith("ip daddr 192.168.122.10 tcp dport 80 ct status dnat accept comment")
    assert blocks.state_of("port_forward", "web")["external"] == {"backend": "nftables"}
    assert blocks.run("port_forward", "remove", EXTERNAL, "web", "", op="stopped", sub="end", wrap=netns).rc == 0
    assert nft(netns, "list", "table", "ip", "libvirt_network").stdout == before and table(netns) == ""


def test_external_where_libvirt_has_no_inbound_chain_adds_only_our_table(blocks, netns):
    """A routed or open network: libvirt rejects nothing, so there is nothing of libvirt's to open."""
    ran = blocks.run("port_forward", "add", EXTERNAL, "web", domain("web"), op="started", wrap=netns)
    assert ran.rc == 0, ran
    assert blocks.state_of("port_forward", "web")["external"] == {"backend": ""} and "8080" in table(netns)


def test_a_failing_libvirt_accept_takes_our_rules_out_again(blocks, netns):
    """iptables refuses the insert (a stand-in that fails once the chain exists): nothing of ours stays."""
    for cmd in LIBVIRT_IPTABLES:
        subprocess.run(netns + cmd.split(), check=True)
    fake = blocks.tmp / "iptables"
    fake.write_text("#!/bin/sh\ncase \"$*\" in *-I*) echo 'iptables: Chain full' >&2; exit 4;; esac\n"
                    "exec /usr/sbin/iptables \"$@\"\n")
    fake.chmod(0o755)
    blocks.paths["iptables"] = str(fake)
    ran = blocks.run("port_forward", "add", EXTERNAL, "web", domain("web"), op="started", wrap=netns)
    assert ran.rc == 1 and ran.stderr.startswith("virthooks port_forward: web: ") and "Chain full" in ran.stderr
    assert table(netns) == "" and blocks.state_of("port_forward", "web") is None


def test_sources_interface_and_host_address_match_what_arrives_from_elsewhere(blocks, netns):
    params = {"guests": {"web": {"ip": "192.168.122.10", "sources": ["10.0.0.0/8", "192.0.2.7"], "interface": "eth0",
                                 "host_address": "198.51.100.7", "forwards": [{"host_port": 8080, "guest_port": 80}]}}}
    assert blocks.run("port_forward", "add", params, "web", domain("web"), op="started", wrap=netns).rc == 0
    text = table(netns)
    assert ('iifname "eth0" ip saddr { 10.0.0.0/8, 192.0.2.7 } ip daddr 198.51.100.7 tcp dport 8080 '
            "dnat ip to 192.168.122.10:80") in text, text
    assert "ip daddr 198.51.100.7 tcp dport 8080 dnat ip to 192.168.122.10:80" in text.split("chain output")[1]
