"""Faithful replicas of the hooks users run today (peers), laid out as their own docs say."""
from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The VFIO-Tools per-guest tree helper, verbatim (benchmarks/dispatch.py races it against the dispatcher).
TREE_HELPER = REPO / "benchmarks" / "peers" / "tree-helper.sh"

# saschpe/libvirt-hook-qemu as its Makefile installs it: hooks/hooks (Python), hooks/hooks.json beside it,
# hooks/qemu a symlink to hooks/hooks. Like the real hook, this replica finds its config in the directory
# of its own path (os.path.abspath(__file__), not realpath), exits 1 (a traceback) when hooks.json is not
# there, whatever the event, and exits 0 for a guest the config does not name. Instead of iptables calls
# it records what it would do.
SASCHPE_HOOK = """#!/usr/bin/env python3
import json
import os
import sys

CONFIG_PATH = os.getenv('CONFIG_PATH') or os.path.dirname(os.path.abspath(__file__))
CONFIG_FILENAME = os.getenv('CONFIG_FILENAME') or os.path.join(CONFIG_PATH, "hooks.json")


def config():
    if not hasattr(config, "_conf"):
        with open(CONFIG_FILENAME, "r") as f:
            config._conf = json.loads(f.read())
    return config._conf


if __name__ == "__main__":
    vir_domain, action = sys.argv[1:3]
    domain = config().get(vir_domain)
    with open(%r, "a") as f:
        f.write("saschpe %%s %%s %%s\\n" %% (vir_domain, action, "forward" if domain else "no-config"))
    if domain is None:
        sys.exit(0)
    if action in ["stopped", "reconnect"]:
        with open(%r, "a") as f:
            f.write("saschpe %%s stop_forwarding %%s\\n" %% (vir_domain, domain["private_ip"]))
    if action in ["start", "reconnect"]:
        with open(%r, "a") as f:
            f.write("saschpe %%s start_forwarding %%s\\n" %% (vir_domain, domain["private_ip"]))
"""


def saschpe_hook(hooks: Path, seen: Path, form: str = "symlink") -> Path:
    """The peer as its Makefile installs it: hooks/hooks, hooks/hooks.json beside it, and hooks/qemu
    a symlink to hooks/hooks (form "symlink") or a copy of it (form "file"). Returns hooks/qemu."""
    hook = hooks / "hooks"
    hook.write_text(SASCHPE_HOOK % (str(seen), str(seen), str(seen)))
    hook.chmod(0o755)
    (hooks / "hooks.json").write_text('{"vm1": {"private_ip": "192.168.122.10", "port_map": {"tcp": [80]}}}')
    if form == "symlink":
        (hooks / "qemu").symlink_to(hook)
    else:
        shutil.copy2(hook, hooks / "qemu")
    return hooks / "qemu"


# mrjk/libvirt-hook-controller (scripts/libvirt_hook_controller.sh, MIT, by mrjk), as a REPLICA: its
# main function copied line for line (rule assembly with grep/sort/uniq/cut/sed, then `$cmd $@` per
# rule, every failure ignored unless APP_FAIL_ON_ERROR), with two changes only: the `logger -s` calls
# are `:` (no syslog in tests) and APP_CONF_DIR defaults to conf/ beside the script's directory (the
# original: /etc/libvirt/hooks/conf). Installed as its README says: the script in hooks/scripts/,
# hooks/<driver> symlinks to it (the hook name is the link's name).
MRJK_CONTROLLER = r'''#!/bin/bash
set -eu

APP_NAME="libvirt_hook_controller"
APP_CONF_DIR=${APP_CONF_DIR:-$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../conf}
APP_FAIL_ON_ERROR=${APP_FAIL_ON_ERROR:-false}

main ()
{
    local object=${1}
    local operation=${2}
    local sub=${3}
    local args=${4}

    # Capture stdin
    local stdin=
    if [[ "$args" == '-' ]]; then
        stdin=$(cat -)
    fi

    # Guess the hook name from symlink file
    local script="${BASH_SOURCE[0]}"
    local hook=${script##*/}

    : "$APP_NAME: Hook: $operation $hook for $object"

    # Assemble config
    local config=$(cat "$APP_CONF_DIR/rules.conf" "$APP_CONF_DIR/rules.d"/*.conf 2>/dev/null)
    config=$(grep -E "^(($hook)|(\*));" <<< "$config" | sort | uniq | cut -f2- -d";")
    config=$(grep -E "^(($operation)|(\*));" <<< "$config" | sort | uniq | cut -f2- -d";")
    config=$(grep -E "^(($object)|(\*));" <<< "$config" | sort | uniq | cut -f2- -d";")
    config=$(sed 's/^\*;/50;/' <<< "$config" | sort -h -k1,1 -k2,2 -t";" )
    config=$( cut -f2- -d";"  <<< "$config")

    # Execute commands
    while read cmd; do

        # Execute command
        set +e
        local rc=0
        if [[ "$args" == '-' ]]; then
            : "$APP_NAME: Execute with stdin data: $cmd $@"
            printf "%s" "$stdin" | $cmd $@
        else
            : "$APP_NAME: Execute: $cmd $@"
            $cmd $@
        fi
        rc=$?
        set -e

        # Log or fail on errors
        if [[ "$rc" -ne 0 ]]; then
            if $APP_FAIL_ON_ERROR; then
                : "$APP_NAME: An error occured, got return code: $rc"
                exit $rc
            else
                : "$APP_NAME: Ignoring non-zero return code: $rc"
            fi
        fi
    done <<< "$config"
}

main $@
'''


def mrjk_controller(hooks: Path, drivers=("qemu", "network", "daemon")) -> Path:
    """The controller replica at hooks/scripts/libvirt_hook_controller.sh, hooks/<driver> linked to it;
    its rules go in hooks/conf/rules.conf and hooks/conf/rules.d/*.conf."""
    script = hooks / "scripts" / "libvirt_hook_controller.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(MRJK_CONTROLLER)
    script.chmod(0o755)
    (hooks / "conf" / "rules.d").mkdir(parents=True, exist_ok=True)
    for driver in drivers:
        (hooks / driver).symlink_to("scripts/libvirt_hook_controller.sh")
    return script


# A saschpe/libvirt-hook-qemu hooks.json with every form its hook reads (the importer tests).
HOOKS_JSON = """{
    // comments in two styles, as the hook accepts them
    /* the guest */
    "web": {"private_ip": "192.168.122.10", "source_ip": "8.8.8.8", "interface": "virbr0",
            "port_map": {"tcp": [[1100, 3000], 443], "udp": [27016], "icmp": [1]},
            "port_range": [{"init_port": 8888, "ports_num": 2, "protocol": "tcp"}]},
    "multi": [{"private_ip": "10.0.0.2", "public_ip": "192.0.2.1", "port_map": {"tcp": [22]}},
              {"private_ip": "10.0.0.2", "port_map": {"tcp": [[2222, 22]]}},
              {"private_ip": "10.0.0.3", "port_map": {"tcp": [80]}}],
    "url": {"private_ip": "10.0.0.9", "port_map": {"tcp": [[8080, 80]]}, "note": "a // not a comment"}
}
"""
