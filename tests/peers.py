"""Faithful replicas of the hooks users run today (peers), laid out as their own docs say."""
from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
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
