"""Scripts' secrets in a generation: 0600 files beside the scripts, handed to the script by the dispatcher as
$VIRTHOOKS_SECRETS, part of the generation's identity, shown only as <redacted> in diffs."""
from __future__ import annotations

import json

from ansible_collections.virthooks.libvirt.plugins.module_utils.install import RuntimeInstaller, diff_of

RULE = {"name": "rec", "script": "scripts/rec", "operations": ["prepare"]}
PLAIN = {"name": "plain", "script": "scripts/plain", "operations": ["prepare"], "order": 60}
TOKEN = b"tok-S3cr3t-value"


def scripts(box, token=TOKEN, with_plain=True):
    out = [{"name": "rec", "state": "present", "data": (box.stage / "rec").read_bytes(), "secrets": {"TOKEN": token}}]
    if with_plain:
        out.append({"name": "plain", "state": "present", "data": (box.stage / "plain").read_bytes(), "secrets": {}})
    return out


def plan(box, declared, rules=(RULE, PLAIN), purge=False):
    installer = RuntimeInstaller(str(box.hooks), box.python, -1, -1)
    return installer, installer.plan(["qemu"], list(rules), log={"file": str(box.log)}, scripts=declared, purge=purge)


def deploy(box, declared, **kw):
    installer, the_plan = plan(box, declared, **kw)
    installer.apply(the_plan)
    return the_plan


def staged(sandbox):
    sandbox.script("rec", 'cat "$VIRTHOOKS_SECRETS/TOKEN" > %s/token\n' % sandbox.seen)
    sandbox.script("plain", 'echo "${VIRTHOOKS_SECRETS-unset}" > %s/plain\n' % sandbox.seen)


def test_a_secret_is_a_0600_file_the_script_reads_and_never_in_its_text(sandbox):
    staged(sandbox)
    deploy(sandbox, scripts(sandbox))
    secret = sandbox.current / "secrets" / "rec" / "TOKEN"
    assert secret.read_bytes() == TOKEN and secret.stat().st_mode & 0o7777 == 0o600
    assert TOKEN not in (sandbox.current / "scripts" / "rec").read_bytes()
    # A script without secrets never gets the variable, not even one the dispatcher inherited.
    env = {"LC_ALL": "C", "PATH": "/usr/bin:/bin", "VIRTHOOKS_SECRETS": str(sandbox.root)}
    assert sandbox.fire("qemu", "vm", "prepare", "begin", env=env).rc == 0
    assert (sandbox.seen / "token").read_bytes() == TOKEN
    assert (sandbox.seen / "plain").read_text() == "unset\n"
    assert TOKEN.decode() not in sandbox.log.read_text()


def test_same_secrets_change_nothing_a_new_value_makes_a_generation_shown_redacted(sandbox):
    staged(sandbox)
    first = deploy(sandbox, scripts(sandbox))
    _inst, again = plan(sandbox, scripts(sandbox))
    assert again.changes == [] and again.generation == first.generation
    _inst, changed = plan(sandbox, scripts(sandbox, b"tok-S3cr3t-new"))
    assert changed.generation != first.generation and changed.scripts.updated == ["rec"]
    diffs = diff_of(changed, str(sandbox.hooks))
    text = json.dumps(diffs)
    assert "tok-S3cr3t" not in text
    (entry,) = [d for d in diffs if d.get("before_header", "").endswith("/secrets/rec")]
    assert entry["before"] == "TOKEN=<redacted>\n" and entry["after"] == "TOKEN=<redacted> (changed)\n"


def test_a_secret_file_made_readable_is_put_right_by_the_next_deploy(sandbox):
    staged(sandbox)
    first = deploy(sandbox, scripts(sandbox))
    (sandbox.current / "secrets" / "rec" / "TOKEN").chmod(0o644)
    repaired = deploy(sandbox, scripts(sandbox))
    assert repaired.generation != first.generation
    assert (sandbox.current / "secrets" / "rec" / "TOKEN").stat().st_mode & 0o7777 == 0o600


def test_an_undeclared_script_keeps_its_secrets_unless_purged(sandbox):
    staged(sandbox)
    deploy(sandbox, scripts(sandbox))
    kept = deploy(sandbox, scripts(sandbox)[1:])          # rec no longer declared, purge off: carried over
    assert kept.scripts.unchanged == ["plain", "rec"] and kept.changes == []
    deploy(sandbox, scripts(sandbox)[1:], rules=(PLAIN,), purge=True)
    assert not (sandbox.current / "secrets").exists() and not (sandbox.current / "scripts" / "rec").exists()
