"""Run a command in a private mount namespace where the host cannot be touched.

Everything is read-only except one writable directory (and /dev, /proc, /sys), and the host's libvirt
tools, virsh, systemctl, service and crontab are recorders: small scripts that append their command
line to a log and exit 1. Tools this machine lacks get a recorder in /usr/local/sbin (a tmpfs there),
where libvirt's binaries are looked for too. What a run recorded, and whether it passed, tell whether
it reached the host. Needs root and unshare(1).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.events import DAEMONS

TOOLS = DAEMONS + ("virsh", "virt-admin", "systemctl", "service", "crontab")
# Each tool where this machine has it; a tool not found anywhere here is put in /usr/local/sbin.
TOOL_DIRS = ("/usr/sbin", "/usr/bin")
# Writes here must fail in the namespace (checked before the command runs).
MUST_BE_READ_ONLY = ("/etc", "/etc/cron.d", "/etc/systemd", "/usr/local/bin", "/var/log", "/root")

SETUP = r"""
set -eu
rec=$1 log=$2 keep=$3 missing=$4; shift 4
mount --bind "$keep" "$keep"
# Every other mount read-only (the bind above keeps its own flags).
for mp in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
    case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$keep") continue ;; esac
    mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
for tool in "$rec"/bin/*; do
    name=${tool##*/}
    for dir in /usr/sbin /usr/bin; do
        if [ -e "$dir/$name" ]; then mount --bind "$tool" "$dir/$name"; fi
    done
done
mount -t tmpfs -o mode=0755 virthooks-recorders /usr/local/sbin
for name in $missing; do cp "$rec/bin/$name" /usr/local/sbin/; done
mount -o remount,ro /usr/local/sbin
exec "$@"
"""

RECORDER = """#!/bin/sh
echo "$0 $*" >> %s
exit 1
"""

PROBE = r"""
for dir in "$@"; do
    if [ -d "$dir" ] && touch "$dir/.virthooks-hermetic-probe" 2>/dev/null; then
        rm -f "$dir/.virthooks-hermetic-probe"; echo "$dir is writable"; exit 99
    fi
done
"""


class Hermetic:
    """Recorders and a log under ``writable``; run() runs a command in a fresh namespace each time,
    recorded() is what the last run called."""

    def __init__(self, writable: Path):
        if shutil.which("unshare") is None:
            raise RuntimeError("unshare(1) is missing (util-linux)")
        self.writable = writable
        self.rec = writable / "recorders"
        self.log = self.rec / "calls.log"
        (self.rec / "bin").mkdir(parents=True)
        self.log.write_text("")
        for name in TOOLS:
            tool = self.rec / "bin" / name
            tool.write_text(RECORDER % self.log)
            tool.chmod(0o755)
        self.missing = [name for name in TOOLS if not any(Path(d, name).exists() for d in TOOL_DIRS)]

    def run(self, argv: list, **kwargs) -> subprocess.CompletedProcess:
        probe = ["sh", "-c", PROBE, "sh"] + list(MUST_BE_READ_ONLY)
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", SETUP, "sh", str(self.rec),
               str(self.log), str(self.writable), " ".join(self.missing)]
        checked = subprocess.run(cmd + probe, capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise AssertionError("the namespace is not hermetic (rc=%d): %s%s"
                                 % (checked.returncode, checked.stdout, checked.stderr))
        self.log.write_text("")         # recorded() tells what this run did
        return subprocess.run(cmd + list(argv), capture_output=True, text=True, check=False, **kwargs)

    def recorded(self) -> list:
        return [line for line in self.log.read_text().splitlines() if line]
