"""A private libvirtd of its own on this machine, for the soak and the live migration (standard library only).

Debian's libvirtd and virtlogd in a private mount and UTS namespace (and network namespace unless two daemons
must reach each other over tcp): /etc/libvirt, /var/lib|log|cache/libvirt and /run bound to a work directory,
so the hooks deployed there (the compile-time /etc/libvirt/hooks) are this daemon's alone. Beside that, three
things the soak injects faults into, all inside the namespace and nowhere else:
- `W/log`, a small tmpfs: the dispatcher's log directory (filled, or remounted read-only, for seconds);
- `W/tmp`, a small tmpfs: TMPDIR of the daemon (so of every hook) and of the Ansible runs (filled);
- `/dev/log`: a private /dev (the host's devices bound into a tmpfs) whose `log` is a link to `W/syslog.sock`,
  where SyslogReceiver reads what the runtime sends to syslog (this machine runs no syslog daemon).
The machine's libvirtd, /tmp, /var/log and /dev are never touched.
"""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

SETUP = r"""
set -e
W=$1; NAME=$2; UUID=$3; LOG_KB=$4; TMP_KB=$5
[ -n "$W" ] && [ -d "$W/etc" ] || { echo "no work dir" >&2; exit 1; }
mount --make-rprivate /
hostname "$NAME"
# A hugetlbfs of the host hidden by this /run would still be in the mount table, where libvirtd stops on it.
awk '$3 == "hugetlbfs" {print $2}' /proc/self/mounts | while read -r m; do umount -l "$m"; done
mount -t tmpfs tmpfs /run
mkdir -p /run/libvirt /run/lock
cp -a /etc/libvirt/. "$W/etc/"
rm -rf "$W/etc/hooks"/* "$W/etc/qemu/networks"/*.xml "$W/etc/qemu/networks/autostart"/* "$W/etc/qemu"/*.xml
# No cgroups: guests of two private daemons (and other tests' daemons) would share cgroup names.
printf 'user = "root"\ngroup = "root"\nsecurity_driver = "none"\ncgroup_controllers = [ ]\n' >>"$W/etc/qemu.conf"
printf 'host_uuid = "%s"\nlog_outputs = "4:file:/var/log/libvirt/libvirtd.log"\n' "$UUID" >>"$W/etc/libvirtd.conf"
mount --bind "$W/etc" /etc/libvirt
for d in lib log cache; do mount --bind "$W/var-$d" /var/$d/libvirt; done
mkdir -p /var/lib/libvirt/qemu /var/log/libvirt/qemu
mount -t tmpfs -o size=${LOG_KB}k,mode=0755 tmpfs "$W/log"
mount -t tmpfs -o size=${TMP_KB}k,mode=1777 tmpfs "$W/tmp"
# A private /dev: the host's nodes and sub-mounts, plus /dev/log -> our syslog socket.
mount --rbind /dev "$W/hostdev"
mount -t tmpfs -o mode=0755 tmpfs /dev
for e in "$W/hostdev"/*; do
  n=${e##*/}
  if [ -d "$e" ] && [ ! -L "$e" ]; then mkdir "/dev/$n"; mount --rbind "$e" "/dev/$n"; else cp -a "$e" /dev/ || true; fi
done
ln -s "$W/syslog.sock" /dev/log
ip link set lo up
echo ready
exec sleep 86400
"""


class SyslogReceiver:
    """The messages sent to /dev/log inside the namespace (RFC 3164 datagrams), kept in order."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.lines = []
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.lines.append(data.decode("utf-8", "replace"))

    def ours(self) -> list:
        return [line for line in list(self.lines) if "virthooks[" in line]

    def close(self) -> None:
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


class PrivateHost:
    def __init__(self, work: Path, name: str, host_uuid: str, netns: bool = True, log_kb: int = 4096,
                 tmp_kb: int = 65536):
        self.work, self.name = work, name
        for d in ("etc", "var-lib", "var-log", "var-cache", "log", "tmp", "hostdev", "rec"):
            (work / d).mkdir(parents=True, exist_ok=True)
        os.chmod(work / "rec", 0o755)
        self.syslog = SyslogReceiver(work / "syslog.sock")
        flags = ["-m", "-u"] + (["-n"] if netns else [])
        self.holder = subprocess.Popen(["unshare"] + flags + ["sh", "-c", SETUP, "sh", str(work), name, host_uuid,
                                                              str(log_kb), str(tmp_kb)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            self.syslog.close()
            raise AssertionError("the private namespace could not be set up: %s" % self.holder.stderr.read())
        self.enter = ["nsenter", "-t", str(self.holder.pid), "-m", "-u"] + (["-n"] if netns else [])
        self.env = dict(os.environ, TMPDIR=str(work / "tmp"))
        self.socket = "/proc/%d/root/run/libvirt/libvirt-sock" % self.holder.pid
        self.uri = "qemu+unix:///system?socket=" + self.socket

    def view(self, path) -> Path:
        """A path as the namespace sees it (its /run, its tmpfs mounts), read from outside."""
        return Path("/proc/%d/root" % self.holder.pid) / str(path).lstrip("/")

    def run(self, *cmd, check=True, timeout=180, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("env", self.env)
        proc = subprocess.run(self.enter + list(cmd), capture_output=True, text=True, timeout=timeout, check=False, **kw)
        if check and proc.returncode != 0:
            raise AssertionError("%s on %s failed (%d): %s%s" % (" ".join(cmd), self.name, proc.returncode, proc.stdout,
                                                                 proc.stderr))
        return proc

    def virsh(self, *args, check=True, timeout=120) -> subprocess.CompletedProcess:
        return self.run("virsh", "-q", "-c", "qemu:///system", *args, check=check, timeout=timeout)

    def define(self, xml: str) -> None:
        path = self.work / ("def-%d.xml" % time.monotonic_ns())
        path.write_text(xml)
        self.virsh("define", str(path))

    def start_daemons(self) -> None:
        self.run("/usr/sbin/virtlogd", "-d")
        self.start_libvirtd()

    def daemon_pid(self, name: str = "libvirtd"):
        try:
            text = self.view("/run/%s.pid" % name).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and Path("/proc", text).exists() else None

    def answers(self, timeout: float = 20) -> bool:
        try:
            return self.virsh("version", check=False, timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start_libvirtd(self, wait: float = 60) -> None:
        self.run("/usr/sbin/libvirtd", "-d")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.answers():
                return
            time.sleep(0.1)
        raise AssertionError("the private libvirtd of %s does not answer" % self.name)

    def stop(self, name: str = "libvirtd") -> None:
        """SIGTERM to the daemon, back once its process is gone (its guests' QEMU processes keep running)."""
        pid = self.daemon_pid(name)
        if pid is None:
            return
        os.kill(pid, 15)
        for _ignored in range(600):
            if not Path("/proc", str(pid)).exists():
                return
            time.sleep(0.05)
        raise AssertionError("the private %s of %s (pid %s) does not stop" % (name, self.name, pid))

    def restart_libvirtd(self) -> None:
        self.stop("libvirtd")
        self.start_libvirtd()

    def daemon_errors(self, lines: int = 5) -> str:
        """The last errors libvirtd logged (libvirtd.conf: errors to /var/log/libvirt/libvirtd.log)."""
        try:
            return "\n".join((self.work / "var-log" / "libvirtd.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def qemu_pid(self, guest: str):
        try:
            text = self.view("/run/libvirt/qemu/%s.pid" % guest).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def close(self) -> None:
        try:
            if self.holder.poll() is None:
                for name in self.virsh("list", "--all", "--name", check=False, timeout=60).stdout.split():
                    self.virsh("destroy", name, check=False, timeout=60)
                    self.virsh("undefine", "--managed-save", name, check=False, timeout=60)
                for name in ("libvirtd", "virtlogd"):
                    try:
                        self.stop(name)
                    except AssertionError:
                        pid = self.daemon_pid(name)
                        if pid:
                            os.kill(pid, 9)
        finally:
            self.holder.kill()
            self.holder.wait()
            self.syslog.close()


def interpreter(host: PrivateHost, python: str) -> str:
    """A Python for Ansible that runs each module inside the host's namespaces: the controller stays here."""
    path = host.work / "python-in-ns"
    path.write_text("#!/bin/sh\nexec %s -- %s \"$@\"\n" % (" ".join(host.enter), python))
    path.chmod(0o755)
    return str(path)


def inventory(hosts: list, python: str, group: str = "hypervisors", **common) -> dict:
    """An inventory of private hosts reached with the local connection through interpreter()."""
    base = {"ansible_connection": "local", "ansible_become": False, "libvirt_hooks_cli_link": ""}
    base.update(common)
    return {group: {"vars": base, "hosts": {
        h.name: {"ansible_python_interpreter": interpreter(h, python), "libvirt_hooks_log": {"file": str(h.work / "log" / "virthooks.jsonl")}}
        for h in hosts}}}
