"""The role on sandbox hosts with what peers' users need: host drop-in rules an admin adds without
Ansible (kept and run across deploys), and saschpe/libvirt-hook-qemu's own hook deployed as a script with
its hooks.json as a file and its config path as env (no wrapper), a secret env value in no output."""
from __future__ import annotations

import json

import pytest

from tests.integration.test_role_sandbox import Fleet
from tests.support.peers import SASCHPE_HOOK

pytestmark = pytest.mark.root  # deploys through the modules, which chown what they install to root

SECRET = "envtok-S3cr3t"


def test_a_dropin_added_on_the_host_survives_deploys_and_runs(tmp_path):
    fleet = Fleet(tmp_path)
    script = {"name": "prep", "operations": ["prepare"], "content": "#!/bin/sh\necho prep >> %s/order\n" % tmp_path}
    fleet.write(gpu={"libvirt_hooks_scripts": [script]})
    assert fleet.deploy().returncode == 0
    rules_d = fleet.hooks("host-a") / "virthooks" / "rules.d"
    rules_d.mkdir()
    (rules_d / "local.sh").write_text("#!/bin/sh\necho \"local $*\" >> %s/order\n" % tmp_path)
    (rules_d / "local.sh").chmod(0o755)
    (rules_d / "local.json").write_text(json.dumps({"name": "local", "script": "local.sh", "operations": ["started"]}))
    fleet.write(gpu={"libvirt_hooks_scripts": [dict(script, timeout=20)]})     # a new generation
    deploy = fleet.deploy()
    assert deploy.returncode == 0, deploy.stdout[-3000:]
    assert sorted(p.name for p in rules_d.iterdir()) == ["local.json", "local.sh"]
    assert fleet.fire("host-a", "vm1", "started", "begin", "-").returncode == 0
    assert fleet.fire("host-a", "vm1", "prepare", "begin", "-").returncode == 0
    assert (tmp_path / "order").read_text().splitlines() == ["local vm1 started begin -", "prep"]


def test_saschpe_hook_runs_from_the_role_with_its_hooks_json_and_env_and_no_wrapper(tmp_path):
    fleet = Fleet(tmp_path)
    peer = tmp_path / "libvirt-hook-qemu"
    peer.mkdir()
    seen = tmp_path / "seen"
    (peer / "hooks").write_text((SASCHPE_HOOK % (str(seen), str(seen), str(seen))).replace("/usr/bin/env python3", "/usr/bin/python3"))
    (peer / "hooks.json").write_text('{"vm1": {"private_ip": "192.168.122.10", "port_map": {"tcp": [80]}}}\n')
    fleet.write(gpu={"libvirt_hooks_scripts": [{
        "name": "saschpe", "operations": ["start", "stopped", "reconnect"], "src": str(peer / "hooks"),
        "env": {"CONFIG_PATH": "${VIRTHOOKS_FILES}", "API_TOKEN": {"secret": SECRET}},
        "files": [{"name": "hooks.json", "src": str(peer / "hooks.json")}]}]})
    check = fleet.deploy("--check", "--diff")
    assert check.returncode == 0, check.stdout[-3000:]
    assert "files/saschpe/hooks.json" in check.stdout and "API_TOKEN=<redacted>" in check.stdout
    deploy = fleet.deploy("--diff", "-vvv")
    assert deploy.returncode == 0, deploy.stdout[-3000:]
    assert SECRET not in check.stdout + check.stderr + deploy.stdout + deploy.stderr
    generation = (fleet.hooks("host-a") / "virthooks" / "current").resolve()
    assert SECRET not in (generation / "config.json").read_text()
    assert (generation / "files" / "saschpe" / "hooks.json").stat().st_mode & 0o777 == 0o600
    for argv in (("vm1", "start", "begin", "-"), ("vm1", "stopped", "end", "-"), ("web", "start", "begin", "-")):
        fired = fleet.fire("host-a", *argv)
        assert fired.returncode == 0, fired
    assert seen.read_text().splitlines() == [
        "saschpe vm1 start forward", "saschpe vm1 start_forwarding 192.168.122.10",
        "saschpe vm1 stopped forward", "saschpe vm1 stop_forwarding 192.168.122.10", "saschpe web start no-config"]
    assert fleet.deploy().returncode == 0 and (fleet.hooks("host-a") / "virthooks" / "current").resolve() == generation
