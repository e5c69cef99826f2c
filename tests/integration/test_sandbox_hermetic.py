"""The sandbox (`make demo`, examples/inventory/sandbox.yml) never reaches the real host.

Run in a private mount namespace where everything but a temporary directory is read-only and the host's
libvirt tools, virsh, systemctl, service and crontab are recorders (tests/support/hermetic.py): the demo,
a deploy with the metrics job on and off again, drift.yml, report.yml and a canary deploy, all on a copy of
the checkout, must pass with nothing recorded, and write only inside the copy.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.hermetic import Hermetic

pytestmark = pytest.mark.root  # a private mount namespace, and the demo deploys as root

HOSTS = ("sandbox-gpu-01", "sandbox-gpu-02", "sandbox-store-01")


def copy_checkout(dest: Path) -> None:
    """The files git would track (committed or not, ignored ones left out), symlinks kept as links."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if not os.path.lexists(src):
            continue            # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root for a private mount namespace")
    work = tmp_path_factory.mktemp("hermetic")
    clone = work / "virthooks"
    copy_checkout(clone)
    link = work / "collections" / "ansible_collections" / "virthooks" / "libvirt"
    link.parent.mkdir(parents=True)
    link.symlink_to(clone)
    (work / "home").mkdir()
    (work / "tmp").mkdir()
    env = {
        "PATH": "%s:/usr/sbin:/usr/bin:/sbin:/bin" % Path(sys.executable).parent,
        "HOME": str(work / "home"),
        "TMPDIR": str(work / "tmp"),
        "LANG": "C.UTF-8",
        "ANSIBLE_CONFIG": str(clone / "tests" / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(work / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        # Only a fallback: the sandbox inventory keeps Ansible's scratch files in the checkout itself
        # (tests/integration/test_readme_quickstart.py runs it without this).
        "ANSIBLE_REMOTE_TMP": str(work / "tmp" / "ansible"),
    }
    ns = Hermetic(work)
    demo = ns.run(["ansible-playbook", "-i", "examples/inventory/sandbox.yml", "examples/sandbox/demo.yml"],
                  cwd=clone, env=env)
    return {"ns": ns, "clone": clone, "env": env, "demo": demo}


def playbook(sandbox, *args):
    return sandbox["ns"].run(["ansible-playbook", "-i", "examples/inventory/sandbox.yml"] + list(args),
                             cwd=sandbox["clone"], env=sandbox["env"])


def assert_passed_untouched(sandbox, proc, what):
    assert proc.returncode == 0, "%s failed (rc=%d):\n%s\n%s" % (what, proc.returncode, proc.stdout[-6000:], proc.stderr)
    assert sandbox["ns"].recorded() == [], "%s ran the host's tools:\n%s" % (what, "\n".join(sandbox["ns"].recorded()))
    # A sandbox describes its own libvirt: the host's daemon has no say in it.
    assert "reports /etc" not in proc.stdout + proc.stderr, proc.stdout


def test_demo_runs_hooks_and_touches_nothing_of_the_host(sandbox):
    proc = sandbox["demo"]
    assert_passed_untouched(sandbox, proc, "make demo's playbook")
    assert "isolate-cpus" in proc.stdout, proc.stdout          # the hooks really ran in the sandbox
    for host in HOSTS:
        root = sandbox["clone"] / ".cache" / "sandbox" / host
        link = root / "usr" / "local" / "bin" / "virthooks"   # the CLI link lives in the sandbox
        assert link.is_symlink(), link
        assert os.readlink(link) == str(root / "etc" / "libvirt" / "hooks" / "virthooks" / "virthooks")
        assert (root / "var" / "log" / "libvirt" / "virthooks.jsonl").is_file()


def test_metrics_job_goes_into_the_sandbox_and_out_again(sandbox):
    root = sandbox["clone"] / ".cache" / "sandbox" / "sandbox-gpu-01"
    (root / "var" / "lib" / "node-exporter").mkdir(parents=True, exist_ok=True)
    on = playbook(sandbox, "playbooks/deploy_hooks.yml", "-l", "sandbox-gpu-01",
                  "-e", json.dumps({"libvirt_hooks_metrics": {"textfile_dir": "/var/lib/node-exporter"}}))
    assert_passed_untouched(sandbox, on, "a deploy with the metrics job")
    cron = root / "etc" / "cron.d" / "virthooks-metrics"
    assert "--textfile-dir %s/var/lib/node-exporter" % root in cron.read_text(), cron.read_text()
    off = playbook(sandbox, "playbooks/deploy_hooks.yml", "-l", "sandbox-gpu-01")
    assert_passed_untouched(sandbox, off, "a deploy without the metrics job")
    assert not cron.exists()


def test_drift_reads_the_sandbox_guests_not_virsh(sandbox):
    report = sandbox["clone"] / "drift-report"
    proc = playbook(sandbox, "playbooks/drift.yml", "-e", json.dumps({"libvirt_hooks_peer_groups": ["gpu_hosts"]}),
                    "-e", "libvirt_hooks_report_dir=%s" % report)
    assert_passed_untouched(sandbox, proc, "drift.yml")
    drift = json.loads((report / "drift.json").read_text())
    assert not drift["drift"], drift
    assert "win10" in json.dumps(drift["groups"]), drift     # the guest defined in the sandboxes


def test_report_and_canary_stay_in_the_sandbox(sandbox):
    report = sandbox["clone"] / "fleet-report"
    proc = playbook(sandbox, "playbooks/report.yml", "-e", "libvirt_hooks_report_dir=%s" % report)
    assert_passed_untouched(sandbox, proc, "report.yml")
    assert json.loads((report / "report.json").read_text())["totals"]["calls"] > 0
    canary = playbook(sandbox, "playbooks/deploy_hooks.yml", "-e", "libvirt_hooks_canary=1")
    assert_passed_untouched(sandbox, canary, "a canary deploy")
    said = " ".join(canary.stdout.split())
    assert "Canary sandbox-gpu-01 only validated" in said and "a sandbox host has no libvirt of its own" in said, said
