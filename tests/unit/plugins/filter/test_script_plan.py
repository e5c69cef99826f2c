"""The role's script_plan filter: merging, validation on the controller, rules for the runtime."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virthooks.libvirt.plugins.filter.script_plan import script_plan

SH = "#!/bin/sh\nexit 0\n"


def test_merges_every_variable_and_builds_rules():
    plan = script_plan({
        "libvirt_hooks_scripts": [{"name": "a", "content": SH}],
        "libvirt_hooks_scripts__gpu": [{"name": "b", "driver": "network", "operations": ["plugged"], "src": "f"}],
        "libvirt_hooks_scripts__old": [{"name": "c", "state": "absent"}],
    }, {"b": SH})
    assert [s["name"] for s in plan["scripts"]] == ["a", "b", "c"]
    assert plan["scripts"][2] == {"name": "c", "state": "absent"}
    assert plan["rules"] == [{"name": "a", "script": "scripts/a"},
                             {"name": "b", "script": "scripts/b", "driver": "network", "operations": ["plugged"]}]
    assert plan["drivers"] == ["qemu", "network"]


def test_disabled_script_gives_no_entry_point():
    plan = script_plan({"libvirt_hooks_scripts": [{"name": "a", "content": SH, "enabled": False}]})
    assert plan["drivers"] == [] and plan["rules"][0]["enabled"] is False


@pytest.mark.parametrize("entry,needle", [
    ({"name": "a", "content": SH, "driver": "xen"}, "unknown driver 'xen'"),
    ({"name": "a", "content": SH, "operations": ["boot"]}, "unknown operation 'boot'"),
    ({"name": "a/b", "content": SH}, "'name' may only contain"),
    ({"name": "a"}, "needs exactly one of content, src, template (got none)"),
    ({"name": "a", "content": SH, "src": "x"}, "(got content, src)"),
    ({"name": "a", "src": "missing.sh"}, "src 'missing.sh' could not be read on the controller"),
    ({"name": "a", "content": SH, "colour": "red"}, "unknown key(s) colour"),
    ({"name": "a", "content": SH, "timeout": -1}, "'timeout' must be a number"),
    ({"name": "a", "launcher": {"block": "../x", "step": "run"}}, "'launcher' must be {block: NAME, step: NAME}"),
    ({"name": "a", "launcher": {"block": "hugepages"}}, "'launcher' must be {block: NAME, step: NAME}"),
    ({"name": "a", "launcher": {"block": "hugepages", "step": "reserve"}, "content": SH}, "(got content, launcher)"),
    ("just-a-string", "must be a mapping"),
])
def test_bad_entries_name_the_variable_and_entry(entry, needle):
    with pytest.raises(AnsibleFilterError) as err:
        script_plan({"libvirt_hooks_scripts__lab": [entry]})
    text = str(err.value)
    assert needle in text and "libvirt_hooks_scripts__lab[0]" in text and "no host was changed" in text


def test_duplicate_names_across_variables_are_refused():
    with pytest.raises(AnsibleFilterError, match=r"libvirt_hooks_scripts__b\[0\] \(x\): the name 'x' is already used by "
                                                 r"libvirt_hooks_scripts__a\[0\]"):
        script_plan({"libvirt_hooks_scripts__a": [{"name": "x", "content": SH}],
                     "libvirt_hooks_scripts__b": [{"name": "x", "content": SH}]})


def test_a_variable_that_is_not_a_list_is_refused():
    with pytest.raises(AnsibleFilterError, match="libvirt_hooks_scripts__x must be a list"):
        script_plan({"libvirt_hooks_scripts__x": {"name": "a"}})


def test_a_script_many_hosts_share_is_syntax_checked_once_per_run_and_a_failing_one_every_time(tmp_path, monkeypatch):
    """Each host's plan runs in a worker process of its own: a passing check is remembered as an empty file,
    named by the text's sha256, in ansible-core's temporary directory for the run (private, removed at its
    end), so 200 hosts that share a script check it once; a failure is never remembered."""
    import os
    from ansible import constants as C
    from ansible_collections.virthooks.libvirt.plugins.filter import script_plan as plan_filter
    monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(tmp_path), raising=False)
    checked = []
    real = plan_filter.syntax_problem
    monkeypatch.setattr(plan_filter, "syntax_problem", lambda name, data: checked.append(name) or real(name, data))
    good, bad = "#!/bin/sh\necho ok\n", "#!/bin/sh\nif then\n"
    for _host in range(3):
        assert plan_filter.controller_syntax("good", good) == []
        assert "line 2" in plan_filter.controller_syntax("bad", bad)[0]
    assert checked == ["good", "bad", "bad", "bad"]
    marker = plan_filter.passed_marker(good.encode())
    assert os.path.dirname(marker) == str(tmp_path / "virthooks-syntax-passed")
    assert os.stat(marker).st_size == 0 and os.stat(marker).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(marker)).st_mode & 0o777 == 0o700
    assert plan_filter.controller_syntax("edited", good + "if then\n")        # another text: checked, and fails
    assert checked[-1] == "edited"
    monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(tmp_path / "gone"), raising=False)
    assert plan_filter.passed_marker(good.encode()) is None                   # no directory: checked each time
    assert plan_filter.controller_syntax("good", good) == [] and checked[-1] == "good"
