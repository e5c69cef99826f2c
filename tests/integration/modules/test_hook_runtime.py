"""virthooks.libvirt.hook_runtime, run for real through Ansible."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.paths import REPO
from tests.support.peers import saschpe_hook

MODULE = "virthooks.libvirt.hook_runtime"
RULES = [{"name": "rec", "script": "scripts/rec", "operations": ["prepare"], "objects": ["win*"]}]


def args(tmp_path, **kw):
    base = {"hooks_dir": str(tmp_path / "hooks"), "drivers": ["qemu"], "rules": RULES,
            "log": {"file": str(tmp_path / "log.jsonl")}, "python": "/usr/bin/python3"}
    base.update(kw)
    return base


@pytest.mark.root
def test_check_mode_with_diff_shows_changes_and_writes_nothing(ansible_module, tmp_path):
    result = ansible_module(MODULE, args(tmp_path), check=True, diff=True)
    assert result["changed"] is True and result["added"] == ["qemu"]
    headers = [d.get("before_header") for d in result["diff"]]
    assert str(tmp_path / "hooks" / "qemu") in headers
    # config.json is shown rule by rule (its index and checksums are bookkeeping, not shown)
    assert str(tmp_path / "hooks" / "virthooks" / "config.json") + ": rule rec" in headers
    config_diff = next(d for d in result["diff"] if d.get("before_header", "").endswith("config.json: rule rec"))
    assert config_diff["before"] == "" and '"name": "rec"' in config_diff["after"]
    assert not (tmp_path / "hooks").exists()


@pytest.mark.root
def test_install_then_rerun_is_idempotent_and_dispatches(ansible_module, tmp_path):
    scripts = [{"name": "rec", "content": "#!/bin/sh\necho ran > %s/ran\n" % tmp_path}]
    first = ansible_module(MODULE, args(tmp_path, scripts=scripts))
    assert first["changed"] is True and first["entry_points"] == ["qemu"] and first["added"] == ["qemu"]
    assert first["generation"] and first["previous_generation"] == "" and first["scripts"]["added"] == ["rec"]
    second = ansible_module(MODULE, args(tmp_path, scripts=scripts))
    assert second["changed"] is False and second["added"] == [] and second["changes"] == []
    assert second["generation"] == first["generation"]
    proc = subprocess.run([str(tmp_path / "hooks" / "qemu"), "win10", "prepare", "begin", "-"], input=b"<domain/>",
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0 and (tmp_path / "ran").read_text() == "ran\n"


@pytest.mark.root
def test_changing_rules_rewrites_config_without_adding_entry_points(ansible_module, tmp_path):
    ansible_module(MODULE, args(tmp_path))
    result = ansible_module(MODULE, args(tmp_path, rules=[dict(RULES[0], timeout=5)]))
    assert result["changed"] is True and result["added"] == [] and result["removed"] == []


@pytest.mark.root
def test_dropping_a_driver_reports_its_entry_point_removed(ansible_module, tmp_path):
    ansible_module(MODULE, args(tmp_path, drivers=["qemu", "network"]))
    result = ansible_module(MODULE, args(tmp_path, drivers=["qemu"]))
    assert result["removed"] == ["network"] and not (tmp_path / "hooks" / "network").exists()


@pytest.mark.root
def test_bad_rule_fails_naming_it(ansible_module, tmp_path):
    result = ansible_module(MODULE, args(tmp_path, rules=[dict(RULES[0], operations=["boot"])]))
    assert result["failed"] is True
    assert "rule 'rec'" in result["msg"] and "unknown operation 'boot'" in result["msg"]
    assert not (tmp_path / "hooks").exists()


@pytest.mark.root
def test_foreign_hook_fails_or_is_adopted_and_restored(ansible_module, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "qemu").write_text("#!/bin/sh\nexit 0\n")
    (hooks / "qemu").chmod(0o755)
    failed = ansible_module(MODULE, args(tmp_path))
    assert failed["failed"] is True and str(hooks / "qemu") in failed["msg"] and "foreign_hooks=adopt" in failed["msg"]
    adopted = ansible_module(MODULE, args(tmp_path, foreign_hooks="adopt"))
    assert adopted["adopted"] == ["qemu"] and (hooks / "qemu.virthooks-adopted").exists()
    removed = ansible_module(MODULE, {"hooks_dir": str(hooks), "state": "absent"})
    assert removed["changed"] is True and removed["entry_points"] == []
    assert (hooks / "qemu").read_text() == "#!/bin/sh\nexit 0\n" and not (hooks / "virthooks").exists()


@pytest.mark.root
def test_symlinked_peer_hook_is_adopted_in_place_and_put_back(ansible_module, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    seen = tmp_path / "seen"
    saschpe_hook(hooks, seen, "symlink")
    nothing = ansible_module(MODULE, args(tmp_path, drivers=[], rules=[], foreign_hooks="adopt"))
    assert nothing["adopted"] == [] and os.readlink(hooks / "qemu") == str(hooks / "hooks")
    assert [w for w in nothing["warnings"] if str(hooks / "qemu") in w and "not adopted" in w]
    adopted = ansible_module(MODULE, args(tmp_path, rules=[], foreign_hooks="adopt"))
    assert adopted["adopted"] == ["qemu"] and not adopted.get("warnings")
    assert os.readlink(hooks / "qemu.virthooks-adopted") == str(hooks / "hooks")
    for op, sub in (("prepare", "begin"), ("restore", "begin"), ("reconnect", "begin")):
        proc = subprocess.run([str(hooks / "qemu"), "vm1", op, sub, "-"], input=b"<domain/>", capture_output=True,
                              env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, timeout=60, check=False)
        assert (proc.returncode, proc.stdout) == (0, b""), proc.stderr
    assert seen.read_text().splitlines() == [
        "saschpe vm1 prepare forward", "saschpe vm1 restore forward", "saschpe vm1 reconnect forward",
        "saschpe vm1 stop_forwarding 192.168.122.10", "saschpe vm1 start_forwarding 192.168.122.10"]
    ansible_module(MODULE, {"hooks_dir": str(hooks), "state": "absent"})
    assert os.readlink(hooks / "qemu") == str(hooks / "hooks") and sorted(os.listdir(hooks)) == \
        ["hooks", "hooks.json", "qemu"]


@pytest.mark.root
def test_cli_link(ansible_module, tmp_path):
    link = tmp_path / "bin" / "virthooks"
    link.parent.mkdir()
    ansible_module(MODULE, args(tmp_path, cli_link=str(link)))
    proc = subprocess.run([str(link), "list"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "rec" in proc.stdout


@pytest.mark.root
def test_rollback_state_goes_back_to_the_previous_generation(ansible_module, tmp_path):
    one = ansible_module(MODULE, args(tmp_path, scripts=[{"name": "rec", "content": "#!/bin/sh\nexit 0\n"}]))
    two = ansible_module(MODULE, args(tmp_path, scripts=[{"name": "rec", "content": "#!/bin/sh\nexit 1\n"}],
                                      drivers=["qemu", "network"]))
    assert two["previous_generation"] == one["generation"] != two["generation"]
    checked = ansible_module(MODULE, {"hooks_dir": str(tmp_path / "hooks"), "state": "rollback"}, check=True)
    assert checked["changed"] and checked["generation"] == one["generation"]
    assert (tmp_path / "hooks" / "network").exists()
    back = ansible_module(MODULE, {"hooks_dir": str(tmp_path / "hooks"), "state": "rollback"})
    assert back["changed"] and back["generation"] == one["generation"] and back["removed"] == ["network"]
    assert "script rec: changed" in back["summary"]
    assert not (tmp_path / "hooks" / "network").exists()
    nothing = ansible_module(MODULE, {"hooks_dir": str(tmp_path / "hooks"), "state": "rollback"})
    assert nothing["failed"] and "nothing to roll back to" in nothing["msg"]


@pytest.mark.root
def test_the_host_gets_the_runtime_package_whole(ansible_module, tmp_path):
    """Through Ansible's module packer (AnsiballZ): every file of the runtime folder, byte for byte, the
    library's blocks (library/, which nothing on the dispatcher's path imports) and the CLI's subcommands
    (commands/, imported by name) included."""
    ansible_module(MODULE, args(tmp_path))
    installed = tmp_path / "hooks" / "virthooks" / "lib" / "current" / "virthooks_runtime"
    folder = REPO / "plugins" / "module_utils" / "runtime"
    shipped = {str(p.relative_to(installed)): p.read_bytes() for p in installed.rglob("*.py")}
    assert shipped == {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*.py")}
    assert "library/port_forward.py" in shipped and "commands/list_rules.py" in shipped


@pytest.mark.root
def test_a_scripts_secrets_are_in_no_result_and_the_diff_shows_them_redacted(ansible_module, tmp_path):
    scripts = [{"name": "rec", "content": "#!/bin/sh\ncat \"$VIRTHOOKS_SECRETS/TOKEN\" > %s/token\n" % tmp_path,
                "secrets": {"TOKEN": "tok-S3cr3t-mod"}}]
    result = ansible_module(MODULE, args(tmp_path, scripts=scripts), diff=True)
    assert result["changed"] is True, result
    assert "tok-S3cr3t-mod" not in json.dumps(result)
    assert any(d.get("after") == "TOKEN=<redacted>\n" for d in result["diff"])
    token = next((tmp_path / "hooks" / "virthooks" / "current" / "secrets" / "rec").iterdir())
    assert token.stat().st_mode & 0o7777 == 0o600 and token.read_text() == "tok-S3cr3t-mod"
    proc = subprocess.run([str(tmp_path / "hooks" / "qemu"), "win10", "prepare", "begin", "-"], input=b"<domain/>",
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0 and (tmp_path / "token").read_text() == "tok-S3cr3t-mod"


@pytest.mark.root
def test_a_bad_secret_name_fails_naming_it_not_its_value(ansible_module, tmp_path):
    scripts = [{"name": "rec", "content": "#!/bin/sh\n", "secrets": {"NOT-A-NAME": "tok-S3cr3t-bad"}}]
    result = ansible_module(MODULE, args(tmp_path, scripts=scripts))
    assert result["failed"] is True and "script 'rec': secret name 'NOT-A-NAME' must be" in result["msg"]
    assert "tok-S3cr3t-bad" not in json.dumps(result) and not (tmp_path / "hooks").exists()


@pytest.mark.root
def test_the_diff_shows_the_scripts_before_even_when_their_generation_is_pruned(ansible_module, tmp_path):
    old = [{"name": "rec", "content": "#!/bin/sh\necho old\n", "secrets": {"TOKEN": "tok-old"}}]
    new = [{"name": "rec", "content": "#!/bin/sh\necho new\n", "secrets": {"TOKEN": "tok-new"}}]
    ansible_module(MODULE, args(tmp_path, scripts=old, generations_keep=1))
    result = ansible_module(MODULE, args(tmp_path, scripts=new, generations_keep=1), diff=True)
    assert result["changed"] is True and len(os.listdir(tmp_path / "hooks" / "virthooks" / "generations")) == 1
    script = next(d for d in result["diff"] if d.get("before_header", "").endswith("/scripts/rec"))
    assert (script["before"], script["after"]) == ("#!/bin/sh\necho old\n", "#!/bin/sh\necho new\n")
    secrets = next(d for d in result["diff"] if d.get("before_header", "").endswith("/secrets/rec"))
    assert (secrets["before"], secrets["after"]) == ("TOKEN=<redacted>\n", "TOKEN=<redacted> (changed)\n")


def sandbox_args(tmp_path, **kw):
    """A sandbox host (its own description, nothing of this machine's libvirt) for detect."""
    base = {"sandbox": {"dir": str(tmp_path / "box"), "version": "10.0.0", "daemons": ["virtqemud", "virtnetworkd"]},
            "detect": True, "drivers": ["qemu"], "rules": RULES, "log": {"file": str(tmp_path / "log.jsonl")}}
    base.update(kw)
    return base


@pytest.mark.root
def test_detect_describes_the_host_as_hooks_info_and_deploys_there_for_its_python(ansible_module, tmp_path):
    """One module call for a deploy: the hooks directory, the description and the Python come from detection."""
    (tmp_path / "box" / "etc").mkdir(parents=True)
    (tmp_path / "box" / "etc" / "os-release").write_text("ID=debian\n")
    scripts = [{"name": "rec", "content": "#!/bin/sh\nexit 0\n"},
               {"name": "lib-hugepages-reserve", "launcher": {"block": "hugepages", "step": "reserve"}}]
    result = ansible_module(MODULE, sandbox_args(tmp_path, scripts=scripts))
    info = ansible_module("virthooks.libvirt.hooks_info", {"sandbox": sandbox_args(tmp_path)["sandbox"]})["libvirt"]
    hooks = tmp_path / "box" / "etc" / "libvirt" / "hooks"
    assert result["changed"] is True and result["hooks_dir"] == str(hooks) and result["entry_points"] == ["qemu"]
    # the host as it was before the run: the same as hooks_info's then, but for the listing of the files
    # (which only hooks_info returns: it is most of the description, and the controller has no use for it)
    assert "files" not in result["libvirt"] and "warnings" not in result["libvirt"]
    assert {k: v for k, v in result["libvirt"].items() if k not in ("files", "drivers", "hooks_dir_exists")} == {
        k: v for k, v in info.items() if k not in ("files", "drivers", "hooks_dir_exists")}
    assert result["libvirt"]["os_family"] == "Debian" and result["libvirt"]["daemons"].keys() == {"virtqemud", "virtnetworkd"}
    assert "/usr/bin/python3" in (hooks / "qemu").read_text()
    launcher = (hooks / "virthooks" / "current" / "scripts" / "lib-hugepages-reserve").read_text()
    assert launcher.startswith("#!/usr/bin/python3 -IS\n") and "main('hugepages', 'reserve')" in launcher
    again = ansible_module(MODULE, sandbox_args(tmp_path, scripts=scripts), check=True)
    assert again["changed"] is False and again["libvirt"]["drivers"]["qemu"]["entry_point"] == "ours"


@pytest.mark.root
def test_a_launcher_with_a_bad_block_name_fails_naming_the_script(ansible_module, tmp_path):
    scripts = [{"name": "lib-x", "launcher": {"block": "../../x", "step": "run"}}]
    result = ansible_module(MODULE, args(tmp_path, scripts=scripts))
    assert result["failed"] is True and "script 'lib-x': launcher block" in result["msg"]
    assert not (tmp_path / "hooks").exists()


@pytest.mark.root
def test_tree_drivers_get_an_entry_point_without_a_rule(ansible_module, tmp_path):
    tree = tmp_path / "hooks" / "network.d" / "lan" / "started" / "begin"
    tree.mkdir(parents=True)
    (tree / "fw.sh").write_text("#!/bin/sh\nexit 0\n")
    (tree / "fw.sh").chmod(0o755)
    without = ansible_module(MODULE, args(tmp_path, rules=[], drivers=[]), check=True)
    assert without["entry_points"] == []
    result = ansible_module(MODULE, args(tmp_path, rules=[], drivers=[], tree_drivers=True))
    assert result["entry_points"] == ["network"] and (tmp_path / "hooks" / "network").exists()


@pytest.mark.root
def test_remove_if_empty_removes_everything_when_nothing_is_left_to_deploy(ansible_module, tmp_path):
    ansible_module(MODULE, args(tmp_path, cli_link=str(tmp_path / "bin" / "virthooks")))
    kept = ansible_module(MODULE, args(tmp_path, rules=[], drivers=[]), check=True)
    assert kept["changed"] is True and kept["generation"]          # an empty generation, the runtime kept
    result = ansible_module(MODULE, args(tmp_path, rules=[], drivers=[], remove_if_empty=True,
                                         cli_link=str(tmp_path / "bin" / "virthooks")))
    assert result["changed"] is True and result["removed"] == ["qemu"] and result["generation"] == ""
    assert os.listdir(tmp_path / "hooks") == []


def test_a_host_without_libvirt_is_left_alone_only_when_no_path_is_given(tmp_path):
    from ansible_collections.virthooks.libvirt.plugins.module_utils.detect import detect
    from ansible_collections.virthooks.libvirt.plugins.modules.hook_runtime import libvirt_missing
    info = detect(root=str(tmp_path))
    assert info["installed"] is False
    params = {"root": "", "sysconfdir": "", "hooks_dir": ""}
    assert libvirt_missing(params, info) is True
    for given in ({"root": str(tmp_path)}, {"sysconfdir": "/etc"}, {"hooks_dir": str(tmp_path / "hooks")}):
        assert libvirt_missing(dict(params, **given), info) is False
    assert libvirt_missing(params, None) is False and libvirt_missing(params, dict(info, installed=True)) is False


@pytest.mark.root
def test_validate_checks_a_new_generation_with_the_installed_cli_and_fails_with_what_a_rollback_needs(
        ansible_module, tmp_path):
    """validate: a changed run is checked by the CLI it installed (here its trust check refuses a script whose
    interpreter a user could replace), failing with the generation and the one before it; a run that changes
    nothing, or a check-mode run, is not checked again."""
    from tests.support.host import user_owned_shell
    good = [{"name": "rec", "content": "#!/bin/sh\nexit 0\n"}]
    first = ansible_module(MODULE, args(tmp_path, scripts=good, validate=True))
    assert first["changed"] is True and first["validated"] is True
    again = ansible_module(MODULE, args(tmp_path, scripts=good, validate=True))
    assert again["changed"] is False and again["validated"] is False
    untrusted = good + [{"name": "untrusted", "content": "#!%s\nexit 0\n" % user_owned_shell(tmp_path)}]
    rules = RULES + [{"name": "u", "script": "scripts/untrusted", "operations": ["prepare"]}]
    assert ansible_module(MODULE, args(tmp_path, scripts=untrusted, rules=rules, validate=True),
                          check=True)["validated"] is False
    bad = ansible_module(MODULE, args(tmp_path, scripts=untrusted, rules=rules, validate=True))
    assert bad["failed"] is True and "the new generation does not validate on this host" in bad["msg"], bad
    assert "untrusted" in bad["msg"] and bad["validated"] is False
    assert bad["previous_generation"] == first["generation"] and bad["generation"] not in ("", first["generation"])
    # the deploy stands (the caller rolls back: state=rollback, as the role's rescue does)
    back = ansible_module(MODULE, args(tmp_path, state="rollback", generation=bad["previous_generation"]))
    assert back["changed"] is True and back["generation"] == first["generation"]


def stamp_of(tmp_path):
    return tmp_path / "hooks" / "virthooks" / ".stamp.json"


@pytest.mark.root
def test_a_rerun_that_changes_nothing_comes_from_the_stamp_and_anything_changed_plans_again(ansible_module, tmp_path):
    """A run that leaves the host as asked writes the stamp; a re-run with the same request on the same files gets
    the same result from it without planning (the stamp is not written again); a file edited (same size), a mode
    changed, a request changed: the run plans, and repairs or deploys."""
    scripts = [{"name": "rec", "content": "#!/bin/sh\nexit 0\n"},
               {"name": "env", "content": "#!/usr/bin/env sh\nexit 0\n"}]
    first = ansible_module(MODULE, args(tmp_path, scripts=scripts))
    assert first["changed"] is True
    stamp = stamp_of(tmp_path)
    assert stamp.stat().st_mode & 0o777 == 0o600 and stamp.stat().st_uid == 0
    written = stamp.stat().st_ino
    again = ansible_module(MODULE, args(tmp_path, scripts=scripts, deployer="someone else"))
    assert again["changed"] is False and again["generation"] == first["generation"]
    assert again["previous_generation"] == first["generation"] and again["scripts"]["unchanged"] == ["env", "rec"]
    assert any("#!/usr/bin/env" in w for w in again.get("warnings", [])), again      # warnings as a planned run's
    assert stamp.stat().st_ino == written                       # from the stamp: nothing planned, nothing written
    script = tmp_path / "hooks" / "virthooks" / "current" / "scripts" / "rec"
    script.write_text("#!/bin/sh\nexit 1\n")                    # same size, same mode: its ctime tells
    repaired = ansible_module(MODULE, args(tmp_path, scripts=scripts))
    assert repaired["changed"] is True and repaired["generation"] != first["generation"]
    assert (tmp_path / "hooks" / "virthooks" / "current" / "scripts" / "rec").read_text() == "#!/bin/sh\nexit 0\n"
    (tmp_path / "hooks" / "qemu").chmod(0o777)
    assert ansible_module(MODULE, args(tmp_path, scripts=scripts))["changed"] is True
    assert (tmp_path / "hooks" / "qemu").stat().st_mode & 0o777 == 0o755
    assert ansible_module(MODULE, args(tmp_path, scripts=scripts))["changed"] is False
    changed = ansible_module(MODULE, args(tmp_path, scripts=scripts, rules=[dict(RULES[0], timeout=5)]))
    assert changed["changed"] is True


@pytest.mark.root
def test_a_stamp_anyone_else_could_have_written_or_a_gone_interpreter_is_not_trusted(ansible_module, tmp_path):
    """Only a regular 0600 file of root's counts; a script's interpreter that went away fails the run as a planned
    run does, though the stamp said the run would change nothing."""
    import shutil
    interpreter = tmp_path / "bin" / "sh"
    interpreter.parent.mkdir()
    shutil.copy("/bin/sh", interpreter)
    scripts = [{"name": "rec", "content": "#!%s\nexit 0\n" % interpreter}]
    ansible_module(MODULE, args(tmp_path, scripts=scripts))
    stamp = stamp_of(tmp_path)
    stamp.chmod(0o644)
    written = stamp.stat().st_ino
    assert ansible_module(MODULE, args(tmp_path, scripts=scripts))["changed"] is False
    assert stamp.stat().st_ino != written and stamp.stat().st_mode & 0o777 == 0o600     # planned, then written anew
    real = tmp_path / "elsewhere.json"
    stamp.rename(real)
    stamp.symlink_to(real)
    assert ansible_module(MODULE, args(tmp_path, scripts=scripts))["changed"] is False
    assert not stamp.is_symlink()
    interpreter.unlink()
    gone = ansible_module(MODULE, args(tmp_path, scripts=scripts))
    assert gone["failed"] is True and "interpreter %s does not exist" % interpreter in gone["msg"], gone


@pytest.mark.root
def test_the_stamp_holds_no_secret_and_a_check_run_writes_none(ansible_module, tmp_path):
    scripts = [{"name": "rec", "content": "#!/bin/sh\nexit 0\n", "secrets": {"TOKEN": "hunter2-stamp-secret"}}]
    assert ansible_module(MODULE, args(tmp_path, scripts=scripts), check=True)["changed"] is True
    assert not (tmp_path / "hooks").exists()
    ansible_module(MODULE, args(tmp_path, scripts=scripts))
    assert "hunter2-stamp-secret" not in stamp_of(tmp_path).read_text()
    stamp_of(tmp_path).unlink()
    assert ansible_module(MODULE, args(tmp_path, scripts=scripts), check=True)["changed"] is False
    assert not stamp_of(tmp_path).exists()
