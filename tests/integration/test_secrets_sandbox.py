"""Secrets through the role on sandbox hosts: the notify block's URL credentials, query token and headers,
and a user's `secrets:` (an Ansible Vault value), are in no output of any run (`--check --diff`, `-vvv`, ansible-runner job events),
in no generated script, the dispatcher log or the CLI's output; they sit in 0600 root files of the generation,
and still reach the webhook and the user's script when a hook is called."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path


import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import COLLECTIONS
from tests.integration.test_role_sandbox import Fleet, recap

pytestmark = pytest.mark.root  # deploys through the modules, which chown what they install to root

BIN = Path(sys.executable).parent
CLI_ENV = {"LC_ALL": "C", "PATH": "/usr/bin:/bin"}


def vaulted(value: str, password_file: Path) -> dict:
    """value encrypted with ansible-vault, as a JSON variable file holds it."""
    proc = subprocess.run([str(BIN / "ansible-vault"), "encrypt_string", "--vault-password-file", str(password_file),
                           value], capture_output=True, text=True, env=ansible_env(), timeout=120, check=True)
    text = proc.stdout.split("!vault |", 1)[1]
    return {"__ansible_vault": "\n".join(line.strip() for line in text.strip().splitlines()) + "\n"}


class Secrets:
    """One set of secret values (unique strings) and the variables that carry them."""

    def __init__(self, tag: str, port: int, tmp: Path):
        password_file = tmp / "vault-password"
        password_file.write_text("vault-pw\n")
        self.password, self.token = "pw-%s-S3cr3t" % tag, "tok-%s-S3cr3t" % tag
        self.header, self.user = "hdr-%s-S3cr3t" % tag, "usr-%s-S3cr3t" % tag
        self.url = "http://bot:%s@127.0.0.1:%d/hook?token=%s" % (self.password, port, self.token)
        self.basic = base64.b64encode(("bot:%s" % self.password).encode()).decode()
        self.gpu = {
            "libvirt_hooks_library": {"notify": {"url": self.url, "headers": {"X-Api-Key": self.header},
                                                 "operations": ["started"], "on_failure": "fail"}},
            "libvirt_hooks_scripts__gpu": [{
                "name": "mine", "operations": ["started"], "secrets": {"MYTOKEN": vaulted(self.user, password_file)},
                # the script proves it got the value without the value being in its text
                "content": "#!/bin/sh\n/usr/bin/sha256sum < \"$VIRTHOOKS_SECRETS/MYTOKEN\" > %s/got\n" % tmp}]}

    @property
    def values(self) -> list:
        return [self.password, self.token, self.header, self.user, self.basic]

    def assert_absent(self, text: str, where: str) -> None:
        for value in self.values:
            assert value not in text, "a secret is in %s" % where


def run_cli(fleet: Fleet, *args: str) -> str:
    proc = subprocess.run([str(fleet.hooks("host-a") / "virthooks" / "virthooks"), *args], capture_output=True,
                          text=True, env=CLI_ENV, timeout=120, check=False)
    return proc.stdout + proc.stderr


def runner_events(fleet: Fleet, tmp: Path, *cmdline: str) -> tuple:
    """Run the deploy playbook through ansible-runner (AWX's engine): (rc, every job event as text)."""
    data = tmp / "job"
    (data / "project").mkdir(parents=True, exist_ok=True)
    (data / "env").mkdir(exist_ok=True)
    (data / "project" / "deploy.yml").write_text(
        "---\n- name: Deploy libvirt hooks\n  ansible.builtin.import_playbook: virthooks.libvirt.deploy_hooks\n")
    (data / "env" / "envvars").write_text(json.dumps({"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS)}))
    (data / "env" / "cmdline").write_text(" ".join(cmdline))
    proc = subprocess.run([str(BIN / "ansible-runner"), "run", str(data), "-p", "deploy.yml", "--ident", "job1",
                           "--inventory", str(fleet.inventory / "hosts.yml")],
                          capture_output=True, text=True, env=ansible_env(), timeout=600, check=False)
    events = "\n".join(p.read_text() for p in sorted((data / "artifacts" / "job1" / "job_events").glob("*.json")))
    return proc.returncode, events + proc.stdout + proc.stderr


def test_secrets_are_in_no_output_and_still_reach_the_webhook_and_the_script(tmp_path, webhook):
    fleet = Fleet(tmp_path)
    first = Secrets("one", webhook.port, tmp_path)
    fleet.write(gpu=first.gpu)
    vault = "--vault-password-file=%s" % (tmp_path / "vault-password")
    check = fleet.deploy("--check", "--diff", "-v", vault)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert "secrets/lib-notify-post" in check.stdout and "PARAMS=<redacted>" in check.stdout
    assert "MYTOKEN=<redacted>" in check.stdout
    first.assert_absent(check.stdout + check.stderr, "the --check --diff output")

    deploy = fleet.deploy("--diff", "-vvv", vault)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    first.assert_absent(deploy.stdout + deploy.stderr, "the -vvv --diff output")

    # New values through ansible-runner, as AWX runs a job with "Show changes" and verbosity 3.
    second = Secrets("two", webhook.port, tmp_path)
    fleet.write(gpu=second.gpu)
    rc, events = runner_events(fleet, tmp_path, "--diff", "-vvv", vault)
    assert rc == 0, events[-4000:]
    assert "MYTOKEN=<redacted> (changed)" in events
    first.assert_absent(events, "the job events")
    second.assert_absent(events, "the job events")

    own = fleet.hooks("host-a") / "virthooks"
    generation = (own / "current").resolve()
    for script in (generation / "scripts").iterdir():
        second.assert_absent(script.read_text(), script.name)
    for path in (generation / "secrets").rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o7777 == 0o600 and path.stat().st_uid == 0, path
    assert (generation / "secrets" / "mine" / "MYTOKEN").read_text() == second.user
    assert json.loads((generation / "secrets" / "lib-notify-post" / "PARAMS").read_text())["url"] == second.url

    # A hook call: the webhook gets the event with the credentials; the user's script gets its secret.
    fired = fleet.fire("host-a", "vm1", "started", "begin", "-")
    assert fired.returncode == 0, fired
    (request,) = webhook.requests
    assert request["path"] == "/hook?token=%s" % second.token
    assert request["headers"]["Authorization"] == "Basic " + second.basic
    assert request["headers"]["X-Api-Key"] == second.header
    assert request["body"]["object"] == "vm1" and request["body"]["operation"] == "started"
    assert (tmp_path / "got").read_text().split()[0] == hashlib.sha256(second.user.encode()).hexdigest()
    second.assert_absent(fired.stdout.decode() + fired.stderr.decode(), "the hook's output")

    outputs = {"list": run_cli(fleet, "list"), "validate": run_cli(fleet, "validate"),
               "simulate": run_cli(fleet, "simulate", "qemu", "vm1", "started", "begin"),
               "log": run_cli(fleet, "log")}
    assert "lib-notify-post" in outputs["list"] and len(webhook.requests) == 2
    for name, text in outputs.items():
        second.assert_absent(text, "virthooks %s" % name)
    log = (tmp_path / "host-a" / "log.jsonl").read_text()
    assert "http://127.0.0.1:%d/hook (HTTP 200)" % webhook.port in log
    second.assert_absent(log, "the dispatcher log")


def test_a_header_with_a_newline_fails_on_the_controller_naming_it_without_its_value(tmp_path):
    fleet = Fleet(tmp_path)
    fleet.write(gpu={"libvirt_hooks_library": {"notify": {"url": "http://127.0.0.1:9/x",
                                                          "headers": {"Authorization": "Bearer nl-S3cr3t\n"}}},
                     "libvirt_hooks_scripts__gpu": [{"name": "mine", "content": "#!/bin/sh\n",
                                                     "secrets": {"1BAD": "val-S3cr3t"}}]})
    proc = fleet.deploy("-vvv")
    assert proc.returncode != 0
    assert "libvirt_hooks_library.notify.headers.Authorization: its value holds a CR, LF" in proc.stdout
    assert "nl-S3cr3t" not in proc.stdout + proc.stderr and "val-S3cr3t" not in proc.stdout + proc.stderr
    assert not (fleet.hooks("host-a") / "virthooks").exists()
    # Fixed header: the plan's failure names the script and the bad secret name, not its value.
    fleet.write(gpu={"libvirt_hooks_scripts__gpu": [{"name": "mine", "content": "#!/bin/sh\n",
                                                     "secrets": {"1BAD": "val-S3cr3t"}}]})
    proc = fleet.deploy("-vvv")
    assert proc.returncode != 0 and recap(proc)["host-a"]["failed"] == 1
    assert "libvirt_hooks_scripts__gpu[0] (mine): secret name '1BAD' must be" in proc.stdout
    assert "val-S3cr3t" not in proc.stdout + proc.stderr
