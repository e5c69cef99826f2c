"""The canary runs the change for real: playbooks/deploy_hooks.yml on a private libvirtd (marker `libvirt`).

The canary host is this machine inside the private namespaces of test_library_libvirt.PrivateLibvirt (its own
libvirtd, virtlogd, /etc/libvirt and /run); two sandbox hosts (SYSCONFDIR in tmp_path) have the same plan, so
they wait for it. The canary guest is a .xml file on the controller, a TCG guest that boots nothing, created
as a transient guest and destroyed again: its start and stop fire the new scripts through the real libvirtd.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import REPO
from tests.support.libvirt_objects import guest_xml
from tests.integration.test_library_libvirt import PrivateLibvirt, wait_for

pytestmark = [pytest.mark.libvirt, pytest.mark.root]  # a private libvirtd in its own namespaces
CANARY = "lv-canary"
OTHERS = ("host-b", "host-c")
PREPARE = {"name": "bridge", "operations": ["prepare"], "suboperations": ["begin"]}
BROKEN = "#!/bin/sh\necho \"bridge br-canary is missing\" >&2\nexit 3\n"


@pytest.fixture
def lv(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("needs root (a private libvirtd)")
    for tool in ("unshare", "nsenter", "qemu-system-x86_64", "/usr/sbin/libvirtd", "/usr/sbin/virtlogd"):
        if not shutil.which(tool):
            pytest.fail("%s is missing: run tests/setup/prepare-host.sh (tests/setup/debian-packages.txt)" % tool)
    work = tmp_path / "w"
    work.mkdir()
    private = None
    try:
        private = PrivateLibvirt(work)
        yield private
    finally:
        if private is not None:
            for name in private.virsh("list", "--all", "--name", check=False).stdout.split():
                private.virsh("destroy", name, check=False)
                private.virsh("undefine", name, check=False)
            private.close()


def deploy(lv: PrivateLibvirt, content: str, *extra: str, guest: str = "") -> subprocess.CompletedProcess:
    """deploy_hooks.yml on the canary host (the private libvirt) and the two sandbox hosts, from inside the namespace.

    guest: the canary guest's name (defined on the private libvirtd); "" = canary.xml, a transient guest."""
    (lv.work / "canary.xml").write_text(guest_xml("vhcanary"))
    base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
            "libvirt_hooks_restart": "never", "libvirt_hooks_cli_link": "",
            "libvirt_hooks_scripts": [dict(PREPARE, content=content)]}
    hosts = {CANARY: {"libvirt_hooks_log": {"file": str(lv.work / "dispatch.jsonl")},
                      "libvirt_hooks_canary_guest": guest or str(lv.work / "canary.xml")}}
    for host in OTHERS:
        (lv.work / host / "etc" / "libvirt").mkdir(parents=True, exist_ok=True)
        hosts[host] = {"libvirt_hooks_sysconfdir": str(lv.work / host / "etc"),
                       "libvirt_hooks_log": {"file": str(lv.work / host / "log.jsonl")}}
    (lv.work / "hosts.json").write_text(json.dumps({"hypervisors": {"vars": base, "hosts": hosts}}))
    return lv.run(str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(lv.work / "hosts.json"),
                  str(REPO / "playbooks" / "deploy_hooks.yml"), *extra, check=False, env=ansible_env(), timeout=600,
                  cwd=str(REPO))


def generations(lv: PrivateLibvirt) -> dict:
    dirs = {CANARY: "/etc/libvirt/hooks"}
    dirs.update({h: str(lv.work / h / "etc" / "libvirt" / "hooks") for h in OTHERS})
    return {h: lv.run("readlink", d + "/virthooks/current").stdout.strip().rsplit("/", 1)[-1] for h, d in dirs.items()}


def test_a_broken_prepare_begin_fails_on_the_canary_guest_is_rolled_back_and_a_good_change_reaches_every_host(lv):
    ran = lv.work / "ran"
    good = "#!/bin/sh\necho \"$*\" >> %s\n" % ran
    first = deploy(lv, good)                       # before the daemon starts: the qemu entry point is there from its start
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    lv.start_daemons()
    before = generations(lv)

    proc = deploy(lv, BROKEN, "-e", "libvirt_hooks_canary=1")
    assert proc.returncode != 0, proc.stdout[-4000:]
    out = proc.stdout
    assert "Canary hosts: %s (1 distinct plan(s) among 3 host(s))" % CANARY in out, out[-4000:]
    # host, event, script and the end of its stderr, from the dispatcher's log record
    assert "Canary %s: event qemu vhcanary prepare begin failed: script bridge failed with exit status 3; " \
           "stderr: bridge br-canary is missing" % CANARY in " ".join(out.split()), out[-6000:]
    assert "Rolled back to generation %s" % before[CANARY] in out, out[-4000:]
    assert out.count("PLAY [Deploy libvirt hooks") == 1, out                 # the other hosts' batch never started
    assert generations(lv) == before
    assert lv.virsh("list", "--all", "--name").stdout.split() == []          # the transient guest is gone
    assert not ran.exists()

    proc = deploy(lv, good.replace("echo", "echo v2"), "-e", "libvirt_hooks_canary=1")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    flat = " ".join(proc.stdout.split())
    assert "Canary %s passed: the canary guest vhcanary started and stopped" % CANARY in flat, flat[-4000:]
    assert ran.read_text() == "v2 vhcanary prepare begin -\n"               # the new script really ran, once
    after = generations(lv)
    assert all(after[h] != before[h] for h in after), (before, after)        # and the change reached every host
    assert lv.virsh("list", "--all", "--name").stdout.split() == []


def test_a_defined_canary_guest_is_started_and_stopped_and_a_running_one_is_refused(lv):
    """The guest's name starts with a dash (issue 19, 9): every virsh call of the canary ends its options with --."""
    name = "-vhdefined"
    ran = lv.work / "ran"
    good = "#!/bin/sh\necho \"$*\" >> %s\n" % ran
    first = deploy(lv, good)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    lv.start_daemons()
    lv.define("define", guest_xml(name))
    lv.virsh("start", "--", name)                 # a running guest is never the canary's to stop
    before = generations(lv)
    ran.unlink()

    proc = deploy(lv, good.replace("echo", "echo v2"), "-e", "libvirt_hooks_canary=1", guest=name)
    assert proc.returncode != 0, proc.stdout[-4000:]
    flat = " ".join(proc.stdout.split())
    assert "The canary guest %s is running on %s" % (name, CANARY) in flat, flat[-4000:]
    assert "Rolled back to generation %s" % before[CANARY] in flat
    assert lv.virsh("domstate", "--", name).stdout.strip() == "running"
    assert generations(lv) == before and not ran.exists()

    lv.virsh("destroy", "--", name)
    proc = deploy(lv, good.replace("echo", "echo v2"), "-e", "libvirt_hooks_canary=1", guest=name)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Canary %s passed: the canary guest %s started and stopped" % (CANARY, name) in " ".join(proc.stdout.split())
    assert ran.read_text() == "v2 %s prepare begin -\n" % name
    assert lv.virsh("domstate", "--", name).stdout.strip() == "shut off"   # still defined, stopped again
    assert all(generations(lv)[h] != before[h] for h in before)


def site_run(lv: PrivateLibvirt, scripts: list, notify: bool) -> subprocess.CompletedProcess:
    """A site's own play on the private libvirtd: the role, then (notify) a task of its own that notifies the
    role's handler topic "virthooks reload libvirt"."""
    inventory = {"all": {"hosts": {CANARY: {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "libvirt_hooks_cli_link": "", "libvirt_hooks_log": {"file": str(lv.work / "dispatch.jsonl")},
        "libvirt_hooks_scripts": scripts}}}}
    (lv.work / "site.json").write_text(json.dumps(inventory))
    tasks = [{"name": "A site's own change that needs libvirtd to reload", "ansible.builtin.debug": {"msg": "x"},
              "changed_when": True, "notify": "virthooks reload libvirt"}] if notify else []
    play = [{"hosts": "all", "gather_facts": False, "roles": ["virthooks.libvirt.libvirt_hooks"], "tasks": tasks}]
    (lv.work / "site.yml").write_text(json.dumps(play))
    return lv.run(str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(lv.work / "site.json"),
                  str(lv.work / "site.yml"), check=False, env=ansible_env(), timeout=600, cwd=str(REPO))


def test_reloads_go_through_the_handler_which_a_sites_own_task_can_notify(lv):
    reloads = lv.work / "reloads"
    qemu = dict(PREPARE, content="#!/bin/sh\nexit 0\n")
    on_reload = {"name": "on-reload", "driver": "daemon", "operations": ["reload"],
                 "content": "#!/bin/sh\necho \"$*\" >> %s\n" % reloads}
    first = site_run(lv, [qemu], notify=False)                # before the daemon starts: no reload needed
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    lv.start_daemons()
    pid = lv.run("cat", "/run/libvirtd.pid").stdout.strip()

    # A new entry point (daemon): the role notifies its handler, which reloads libvirtd and waits for its answer.
    proc = site_run(lv, [qemu, on_reload], notify=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "RUNNING HANDLER [virthooks.libvirt.libvirt_hooks : Reload libvirt for virthooks]" in proc.stdout, proc.stdout[-6000:]
    assert "Wait until the daemon answers | libvirtd" in proc.stdout
    assert wait_for(lambda: reloads.exists() and reloads.read_text().splitlines()) == ["- reload begin SIGHUP"]
    # Nothing changed, but the site's own task notifies the topic: libvirtd is reloaded once more, same process.
    proc = site_run(lv, [qemu, on_reload], notify=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert wait_for(lambda: reloads.read_text().count("\n") == 2) and \
        reloads.read_text().splitlines() == ["- reload begin SIGHUP"] * 2, proc.stdout[-6000:]
    assert lv.run("cat", "/run/libvirtd.pid").stdout.strip() == pid
