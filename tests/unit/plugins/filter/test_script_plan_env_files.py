"""The script_plan filter's env and files: a secret env value moves to the script's secrets (never the
rule), files go to the module with their content and mode, and every problem names the entry and key."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virthooks.libvirt.plugins.filter.script_plan import script_plan

SH = "#!/bin/sh\nexit 0\n"
SECRET = "env-S3cr3t"


def test_plain_env_goes_to_the_rule_and_a_secret_one_to_the_scripts_secrets():
    plan = script_plan({"libvirt_hooks_scripts": [{
        "name": "a", "content": SH, "secrets": {"OTHER": "x"},
        "env": {"MODE": "fast", "TOKEN": {"secret": SECRET}, "CONF": "${VIRTHOOKS_FILES}/c.json"}}]})
    assert plan["rules"][0]["env"] == {"MODE": "fast", "TOKEN": {"secret": True}, "CONF": "${VIRTHOOKS_FILES}/c.json"}
    assert plan["scripts"][0]["secrets"] == {"OTHER": "x", "TOKEN": SECRET}
    assert SECRET not in json.dumps(plan["rules"])


def test_files_carry_content_src_and_mode():
    files = [{"name": "hooks.json", "src": "peer/hooks.json"}, {"name": "helper", "content": SH, "mode": 0o700},
             {"name": "ro", "content": "x", "mode": "0400"}]
    plan = script_plan({"libvirt_hooks_scripts": [{"name": "a", "content": SH, "files": files}]},
                       {"a/hooks.json": "{}\n"})
    assert plan["scripts"][0]["files"] == [{"name": "hooks.json", "content": "{}\n", "mode": "0600"},
                                           {"name": "helper", "content": SH, "mode": "0700"},
                                           {"name": "ro", "content": "x", "mode": "0400"}]
    assert "files" not in plan["rules"][0]


@pytest.mark.parametrize("entry,needle", [
    ({"env": {"PATH": "/opt/bin"}}, "env name PATH is reserved"),
    ({"env": {"VIRTHOOKS_FILES": "/x"}}, "env name VIRTHOOKS_FILES is reserved"),
    ({"env": {"lower": "x"}}, "env name 'lower' must be upper-case"),
    ({"env": {"PORT": 8080}}, "env PORT must be a string"),
    ({"env": {"TOKEN": {"secret": 1}}}, "env TOKEN: a secret value is written {secret:"),
    ({"env": {"TOKEN": {"secret": SECRET}}, "secrets": {"TOKEN": "other"}}, "env TOKEN is a secret and 'secrets' has"),
    ({"env": "A=b"}, "'env' must map NAME"),
    ({"files": [{"name": "x"}]}, "files[0] (x): needs exactly one of content, src (got none)"),
    ({"files": [{"name": "x", "content": "a", "mode": "0644"}]}, "'mode' must be one of 0400, 0500, 0600, 0700"),
    ({"files": [{"name": "../x", "content": "a"}]}, "files[0]: 'name' may only contain"),
    ({"files": [{"name": "x", "content": "a"}, {"name": "x", "content": "b"}]}, "the file name 'x' is used twice"),
    ({"files": [{"name": "x", "src": "nope"}]}, "files[0] (x): src 'nope' could not be read"),
    ({"files": [{"name": "x", "content": "a", "owner": "qemu"}]}, "unknown key(s) owner"),
    ({"files": {"name": "x"}}, "'files' must be a list"),
])
def test_bad_env_or_files_fail_naming_the_entry_and_key_never_a_secret(entry, needle):
    with pytest.raises(AnsibleFilterError) as exc:
        script_plan({"libvirt_hooks_scripts": [dict({"name": "a", "content": SH}, **entry)]})
    assert "libvirt_hooks_scripts[0] (a): " in str(exc.value) and needle in str(exc.value), str(exc.value)
    assert SECRET not in str(exc.value)
