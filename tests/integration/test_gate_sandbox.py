"""A bad change stops before it reaches a guest (issue 20): the syntax gate on the controller and on
each host, `virthooks validate` on what a host runs, purge by default, a quiet no-change run with a
readable diff, and typos caught (unknown variables, XPath, Jinja in script text). Sandbox hosts as in
test_role_sandbox.py (own SYSCONFDIR in tmp_path, hooks run for real)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.ansible import run_module
from tests.support.host import machine_libvirtd_up
from tests.integration.test_role_sandbox import SH, Fleet, current_generation, gpu_scripts, recap, tree_state

pytestmark = pytest.mark.root  # deploys through the modules, which chown what they install to root; one test starts this machine's libvirtd

UNTERMINATED_IF = "#!/bin/sh\nif [ -n \"$1\" ]; then\n  echo started\n"
BASHISM = "#!/bin/sh\nargs=(one two)\necho \"$args\"\n"


@pytest.fixture
def fleet(tmp_path):
    return Fleet(tmp_path)


def with_script(fleet, **script) -> dict:
    scripts = gpu_scripts(fleet.tmp)
    scripts["libvirt_hooks_scripts__gpu"].append(dict({"operations": ["prepare"]}, **script))
    return scripts


def deployed(fleet) -> dict:
    """A first good deploy; {host: tree state} afterwards."""
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    first = fleet.deploy()
    assert first.returncode == 0, first.stdout[-3000:]
    return {h: tree_state(fleet.tmp / h) for h in ("host-a", "host-b")}


def validate(fleet, host: str) -> subprocess.CompletedProcess:
    hooks = fleet.hooks(host)
    return subprocess.run([str(hooks / "virthooks" / "virthooks"), "--hooks-dir", str(hooks), "validate"],
                          capture_output=True, text=True, timeout=120, check=False)


# --- 1. the syntax gate -----------------------------------------------------------------------

def test_unterminated_if_fails_the_run_naming_script_and_line_and_hosts_keep_their_generation(fleet):
    before = deployed(fleet)
    generation = current_generation(fleet, "host-a")
    fleet.write(gpu=with_script(fleet, name="broken", content=UNTERMINATED_IF))
    proc = fleet.deploy()
    assert proc.returncode != 0
    assert "script 'broken', line 4: Syntax error: end of file unexpected (expecting \"fi\")" in proc.stdout, \
        proc.stdout[-3000:]
    assert current_generation(fleet, "host-a") == generation
    assert {h: tree_state(fleet.tmp / h) for h in ("host-a", "host-b")} == before
    assert fleet.fire("host-a", "vm", "prepare", "begin", "-").returncode == 0


@pytest.mark.parametrize("content,needle", [
    ("#!%s\nimport os\ndef f(:\n    pass\n", "script 'broken', line 3: invalid syntax (compile() by %s)"),
    ("#!/usr/bin/perl -w\nuse strict;\nmy $x = ;\nprint $x;\n", "script 'broken', line 3: syntax error"),
])
def test_python_and_perl_syntax_errors_are_refused(fleet, content, needle):
    python = "/usr/bin/python3"
    before = deployed(fleet)
    fleet.write(gpu=with_script(fleet, name="broken", content=content.replace("%s", python)))
    proc = fleet.deploy()
    assert proc.returncode != 0
    assert needle.replace("%s", python) in proc.stdout, proc.stdout[-3000:]
    assert {h: tree_state(fleet.tmp / h) for h in ("host-a", "host-b")} == before


def test_bash_syntax_under_bin_sh_is_refused_by_the_hosts_dash(tmp_path):
    """bash accepts the script, the host's /bin/sh (dash) does not: the host's own check refuses it."""
    assert os.path.realpath("/bin/sh").endswith("dash")
    assert subprocess.run(["bash", "-n"], input=BASHISM.encode(), check=False).returncode == 0
    hooks = tmp_path / "hooks"
    args = {"hooks_dir": str(hooks), "drivers": ["qemu"], "cli_link": "",
            "rules": [{"name": "ok", "script": "scripts/ok"}],
            "scripts": [{"name": "ok", "content": "#!/bin/sh\nexit 0\n"}]}
    assert not run_module("virthooks.libvirt.hook_runtime", args).get("failed")
    generation = os.readlink(hooks / "virthooks" / "current")
    args["rules"].append({"name": "count", "script": "scripts/count"})
    args["scripts"].append({"name": "count", "content": BASHISM})
    result = run_module("virthooks.libvirt.hook_runtime", args)
    assert result.get("failed")
    assert "script 'count', line 2: Syntax error: \"(\" unexpected (/bin/sh -n)" in result["msg"], result["msg"]
    assert "stays on its current generation" in result["msg"]
    assert os.readlink(hooks / "virthooks" / "current") == generation
    assert sorted(os.listdir(hooks / "virthooks" / "generations")) == [generation.rsplit("/", 1)[-1]]


def test_a_shell_only_the_host_has_is_checked_on_the_host(fleet, tmp_path):
    """The controller has no /opt/vh/sh, the image being built has (dash): the host side refuses."""
    image = tmp_path / "image"
    (image / "etc" / "libvirt").mkdir(parents=True)
    (image / "opt" / "vh").mkdir(parents=True)
    (image / "opt" / "vh" / "sh").symlink_to(os.path.realpath("/bin/sh"))
    assert not os.path.exists("/opt/vh/sh")
    scripts = with_script(fleet, name="count", content=BASHISM.replace("#!/bin/sh", "#!/opt/vh/sh"))
    fleet.write(gpu=scripts, host_a={"libvirt_hooks_root": str(image), "libvirt_hooks_sysconfdir": "/etc"})
    proc = fleet.deploy("--limit", "host-a")
    assert proc.returncode != 0
    assert "Install the dispatcher" in proc.stdout.split("fatal: [host-a]")[0].rsplit("TASK [", 1)[1]
    assert "script 'count', line 2: Syntax error: \"(\" unexpected (%s/opt/vh/sh -n)" % image in proc.stdout
    assert not (image / "etc" / "libvirt" / "hooks" / "virthooks" / "current").exists()


def test_an_interpreter_without_a_check_is_warned_about_once_and_deploys(fleet):
    awk = {"libvirt_hooks_scripts": [{"name": "tally", "operations": ["started"],
                                      "content": "#!/usr/bin/awk -f\nBEGIN { exit 0 }\n"}]}
    fleet.write(common=awk)
    proc = fleet.deploy()
    assert proc.returncode == 0, proc.stdout[-3000:]
    output = proc.stdout + proc.stderr
    assert output.count("script 'tally' is not syntax-checked: no syntax check is known for /usr/bin/awk") == 1, output
    assert (fleet.hooks("host-b") / "virthooks" / "current" / "scripts" / "tally").exists()


def test_validate_reports_an_edited_script_an_orphan_and_a_rule_without_its_script(fleet):
    deployed(fleet)
    assert validate(fleet, "host-a").returncode == 0
    scripts = fleet.hooks("host-a") / "virthooks" / "current" / "scripts"
    (scripts / "isolate").write_text("#!/bin/sh\nif true; then echo edited\n")
    (scripts / "stray").write_text("#!/bin/sh\nexit 0\n")
    (scripts / "stray").chmod(0o700)
    (scripts / "release").unlink()
    proc = validate(fleet, "host-a")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(line.startswith("FAIL script 'isolate'") and "sha256 does not match" in line for line in lines), lines
    assert any(line.startswith("FAIL script 'isolate', line 3: Syntax error") for line in lines), lines
    assert any(line.startswith("FAIL rule 'release': its script") and line.endswith("is missing") for line in lines), lines
    assert any(line.startswith("WARN script 'stray' is run by no rule") for line in lines), lines
    assert any(line.startswith("FAIL script 'stray'") and "was not deployed" in line for line in lines), lines


# --- 3. purge by default ------------------------------------------------------------------------

NOTIFY = {"url": "http://ops:s3cret-token@127.0.0.1:9/hook", "operations": ["started"]}


def test_purge_is_the_default_removed_scripts_and_library_blocks_go_foreign_and_tree_stay(fleet):
    hooks = fleet.hooks("host-a")
    tree = hooks / "qemu.d" / "vm" / "prepare" / "begin"
    tree.mkdir(parents=True)
    (tree / "mine").write_text(SH % fleet.tmp)
    (tree / "mine").chmod(0o755)
    (hooks / "network").write_text("#!/bin/sh\nexit 0\n")
    (hooks / "network").chmod(0o755)
    scripts = gpu_scripts(fleet.tmp)
    fleet.write(gpu=dict(scripts, libvirt_hooks_library={"notify": NOTIFY}))
    assert fleet.deploy().returncode == 0
    current = hooks / "virthooks" / "current" / "scripts"
    assert sorted(os.listdir(current)) == ["isolate", "lib-notify-post", "release"]
    scripts["libvirt_hooks_scripts__gpu"].pop()
    fleet.write(gpu=scripts)
    proc = fleet.deploy()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sorted(os.listdir(current)) == ["isolate"]
    generation = hooks / "virthooks" / "current"
    assert all("s3cret-token" not in path.read_text(errors="replace") for path in generation.rglob("*") if path.is_file())
    assert (tree / "mine").read_text() == SH % fleet.tmp and (hooks / "network").read_text() == "#!/bin/sh\nexit 0\n"
    assert validate(fleet, "host-a").stdout.count("is run by no rule") == 0


def test_purge_false_keeps_undeclared_scripts_as_before(fleet):
    scripts = gpu_scripts(fleet.tmp)
    fleet.write(gpu=scripts, common={"libvirt_hooks_purge": False})
    assert fleet.deploy().returncode == 0
    scripts["libvirt_hooks_scripts__gpu"].pop()
    fleet.write(gpu=scripts, common={"libvirt_hooks_purge": False})
    assert fleet.deploy().returncode == 0
    current = fleet.hooks("host-a") / "virthooks" / "current" / "scripts"
    assert sorted(os.listdir(current)) == ["isolate", "release"]


# --- 5. quiet when nothing changed, readable diffs ---------------------------------------------

@pytest.mark.libvirt
def test_a_no_change_run_does_not_say_entry_points_changed(fleet):
    """The message is about a running daemon: this test starts the machine's libvirtd rather than assume it."""
    machine_libvirtd_up()
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    first = fleet.deploy()
    assert first.returncode == 0
    assert "Entry points changed on host-a: libvirtd will only run them after a reload" in first.stdout
    second = fleet.deploy()
    assert second.returncode == 0
    assert {h: c["changed"] for h, c in recap(second).items()} == {"host-a": 0, "host-b": 0}
    assert "Entry points changed" not in second.stdout, second.stdout


def test_the_diff_shows_rules_and_scripts_not_the_index(fleet):
    deployed(fleet)
    changed = gpu_scripts(fleet.tmp)
    changed["libvirt_hooks_scripts__gpu"][0]["timeout"] = 9
    changed["libvirt_hooks_scripts__gpu"][1]["content"] = "#!/bin/sh\necho new release\n"
    fleet.write(gpu=changed)
    proc = fleet.deploy("--check", "--diff", "--limit", "host-a")
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = proc.stdout
    assert "rule isolate: changed\nscript release: changed\n" in out, out
    assert 'config.json: rule isolate' in out and '+  "timeout": 9' in out and "+echo new release" in out
    for bookkeeping in ('"index"', '"checksum"', '"offsets"', '"generator"', '"text"'):
        assert bookkeeping not in out, bookkeeping


# --- 6. typos are caught -----------------------------------------------------------------------

def test_an_unknown_variable_is_a_warning_naming_the_nearest_valid_one(fleet):
    fleet.write(gpu=gpu_scripts(fleet.tmp))
    proc = fleet.deploy("-e", "libvirt_hooks_restrat=never")
    assert proc.returncode == 0, proc.stdout[-3000:]
    warning = "libvirt_hooks_restrat is not a variable of virthooks.libvirt (it has no effect); did you mean libvirt_hooks_restart?"
    assert (proc.stdout + proc.stderr).count(warning) == 1, proc.stderr


def test_an_unknown_variable_is_an_error_with_strict(fleet):
    fleet.write(gpu=gpu_scripts(fleet.tmp), common={"libvirt_hooks_strict": True, "libvirt_hooks_purg": False})
    proc = fleet.deploy()
    assert proc.returncode != 0
    assert "libvirt_hooks_purg is not a variable of virthooks.libvirt (it has no effect); did you mean libvirt_hooks_purge?" in proc.stdout
    assert not fleet.hooks("host-a").exists() and not fleet.hooks("host-b").exists()


def test_a_broken_xpath_is_refused_on_the_controller_naming_the_script(fleet):
    before = deployed(fleet)
    fleet.write(gpu=with_script(fleet, name="gpu-only", content=SH % fleet.tmp,
                                xpath="/domain/devices/hostdev[@type="))
    proc = fleet.deploy()
    assert proc.returncode != 0
    # The planning task is no_log (it carries secrets): its rescue reports the message, in the last fatal line.
    failed = [line for line in proc.stdout.splitlines() if line.startswith("fatal: [host-a]")][-1]
    assert "invalid libvirt hook scripts (no host was changed)" in failed
    assert "libvirt_hooks_scripts__gpu[2] (gpu-only): rule 'gpu-only': xpath '/domain/devices/hostdev[@type='" in failed
    assert {h: tree_state(fleet.tmp / h) for h in ("host-a", "host-b")} == before


BASH_COUNT = '#!/bin/bash\nargs=("$@")\necho "${#args[@]}" >> %s/count\n'


def test_jinja_in_script_text_names_the_script_and_the_way_out_and_unsafe_works(fleet):
    fleet.write(gpu=with_script(fleet, name="count", content=BASH_COUNT % fleet.tmp))
    proc = fleet.deploy()
    assert proc.returncode != 0
    assert "libvirt_hooks_scripts__gpu[2] (script count): content cannot be read by Jinja" in proc.stdout, proc.stdout[-3000:]
    assert "!unsafe" in proc.stdout and "src:" in proc.stdout
    fleet.write()
    (fleet.inventory / "group_vars" / "gpu.yml").write_text(
        "libvirt_hooks_scripts__gpu:\n  - name: count\n    operations: [prepare]\n    content: !unsafe |\n"
        + "".join("      %s\n" % line for line in (BASH_COUNT % fleet.tmp).splitlines()))
    proc = fleet.deploy()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert fleet.fire("host-a", "vm", "prepare", "begin", "-").returncode == 0
    assert Path(fleet.tmp, "count").read_text() == "4\n"
