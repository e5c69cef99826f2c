"""virthooks.libvirt.hook, run for real through Ansible."""
from __future__ import annotations

import base64
import json
import sys

import pytest

MODULE = "virthooks.libvirt.hook"
GOOD = "#!/bin/sh\nexit 0\n"


@pytest.mark.root
def test_installs_updates_removes_and_purges(ansible_module, tmp_path):
    hooks = tmp_path / "hooks"
    scripts = hooks / "virthooks" / "current" / "scripts"     # the current generation's
    first = ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [
        {"name": "a", "content": GOOD}, {"name": "b", "content": GOOD}]})
    assert first["changed"] and sorted(first["added"]) == ["a", "b"]
    assert (scripts / "a").stat().st_mode & 0o7777 == 0o700 and (scripts / "a").stat().st_uid == 0
    again = ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [
        {"name": "a", "content": GOOD}, {"name": "b", "content": GOOD}]})
    assert again["changed"] is False and sorted(again["unchanged"]) == ["a", "b"]
    (scripts / "a").chmod(0o775)
    fixed = ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [{"name": "a", "content": GOOD}]})
    assert fixed["updated"] == ["a"] and (scripts / "a").stat().st_mode & 0o7777 == 0o700
    purged = ansible_module(MODULE, {"hooks_dir": str(hooks), "purge": True, "scripts": [{"name": "a", "content": GOOD}]})
    assert purged["removed"] == ["b"] and not (scripts / "b").exists()
    gone = ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [{"name": "a", "state": "absent"}]})
    assert gone["removed"] == ["a"] and not (scripts / "a").exists()


@pytest.mark.root
def test_diff_shows_content_changes_in_check_mode(ansible_module, tmp_path):
    hooks = tmp_path / "hooks"
    ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [{"name": "a", "content": GOOD}]})
    new = "#!/bin/sh\necho changed\n"
    result = ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [{"name": "a", "content": new}]},
                            check=True, diff=True)
    script_diff = next(d for d in result["diff"] if d.get("before_header", "").endswith("/scripts/a"))
    assert result["changed"] and script_diff["before"] == GOOD and script_diff["after"] == new
    assert (hooks / "virthooks" / "current" / "scripts" / "a").read_text() == GOOD


@pytest.mark.root
def test_invalid_scripts_fail_naming_each_and_change_nothing(ansible_module, tmp_path):
    hooks = tmp_path / "hooks"
    result = ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [
        {"name": "ok", "content": GOOD},
        {"name": "noshebang", "content": "echo hi\n"},
        {"name": "../escape", "content": GOOD},
        {"name": "relative", "content": "#!bash\n"},
        {"name": "missing-interp", "content": "#!/opt/nowhere/bash\n"},
        {"name": "ok", "content": GOOD},
    ]})
    assert result["failed"] is True
    msg = result["msg"]
    assert "'noshebang' does not start with '#!'" in msg and "Exec format error" in msg
    assert "'../escape'" in msg and "'relative'" in msg and "/opt/nowhere/bash does not exist" in msg
    assert "'ok' is declared more than once" in msg and "nothing was changed" in msg
    assert not hooks.exists()


@pytest.mark.root
def test_binary_elf_content_and_size_limit(ansible_module, tmp_path):
    hooks = tmp_path / "hooks"
    elf = open("/bin/true", "rb").read()
    ok = ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [
        {"name": "true", "content_base64": base64.b64encode(elf).decode()}]})
    assert ok["added"] == ["true"] and (hooks / "virthooks" / "current" / "scripts" / "true").read_bytes() == elf
    big = ansible_module(MODULE, {"hooks_dir": str(hooks), "max_size": 100, "scripts": [
        {"name": "big", "content": "#!/bin/sh\n" + "#" * 200}]})
    assert big["failed"] and "more than the limit of 100" in big["msg"]


@pytest.mark.root
def test_env_shebang_warns(ansible_module, tmp_path):
    result = ansible_module(MODULE, {"hooks_dir": str(tmp_path / "hooks"), "scripts": [
        {"name": "envy", "content": "#!/usr/bin/env bash\necho\n"}]})
    assert result["changed"] and any("minimal PATH" in w for w in result["warnings"])


@pytest.mark.root
def test_a_new_secret_value_updates_the_script_shown_redacted_and_in_no_result(ansible_module, tmp_path):
    hooks = tmp_path / "hooks"
    ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [
        {"name": "a", "content": GOOD, "secrets": {"TOKEN": "tok-S3cr3t-old"}}]})
    secret = hooks / "virthooks" / "current" / "secrets" / "a" / "TOKEN"
    assert secret.read_text() == "tok-S3cr3t-old" and secret.stat().st_mode & 0o7777 == 0o600
    result = ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [
        {"name": "a", "content": GOOD, "secrets": {"TOKEN": "tok-S3cr3t-new"}}]}, diff=True)
    assert result["updated"] == ["a"] and "tok-S3cr3t" not in json.dumps(result)
    assert any(d.get("after") == "TOKEN=<redacted> (changed)\n" for d in result["diff"])
    assert (hooks / "virthooks" / "current" / "secrets" / "a" / "TOKEN").read_text() == "tok-S3cr3t-new"


@pytest.mark.root
def test_a_library_launcher_is_written_for_the_python_the_module_runs_with(ansible_module, tmp_path):
    hooks = tmp_path / "hooks"
    result = ansible_module(MODULE, {"hooks_dir": str(hooks), "scripts": [
        {"name": "lib-hugepages-reserve", "launcher": {"block": "hugepages", "step": "reserve"}}]})
    assert result["changed"] and result["added"] == ["lib-hugepages-reserve"], result
    text = (hooks / "virthooks" / "current" / "scripts" / "lib-hugepages-reserve").read_text()
    assert text.startswith("#!%s -IS\n" % sys.executable) and "main('hugepages', 'reserve')" in text
