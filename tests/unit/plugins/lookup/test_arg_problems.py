"""The arg_problems lookup: the role's variables checked by its argument specs, as Ansible's check at a role's
start words it, inside the tasks that read them (playbooks/deploy_hooks.yml leaves out Ansible's own task)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.virthooks.libvirt.plugins.lookup.arg_problems import LookupModule
from tests.support.paths import REPO

SPECS = str(REPO / "roles" / "libvirt_hooks" / "meta" / "argument_specs.yml")


def problems(variables: dict, path: str = SPECS, **options) -> str:
    lookup = LookupModule(loader=DataLoader(), templar=Templar(loader=DataLoader(), variables=variables))
    return lookup.run([path], variables, **options)[0]


def test_valid_variables_have_no_problem():
    assert problems({"libvirt_hooks_restart": "never", "libvirt_hooks_generations_keep": 3, "other": "x"}) == ""


def test_a_bad_choice_a_bad_type_and_an_unknown_option_are_named():
    found = problems({"libvirt_hooks_restart": "sometimes",
                      "libvirt_hooks_library": {"hugepages": {"size": 2}, "notify": {"retries": "many"}}})
    assert found.startswith("Validation of arguments failed:\n")
    assert "libvirt_hooks_restart must be one of: auto, reload, restart, never, got: sometimes" in found
    assert "libvirt_hooks_library.hugepages.size. Supported parameters include: guests, state." in found
    assert "argument 'retries' is of type str found in 'libvirt_hooks_library -> notify'" in found


def test_values_are_templated_before_they_are_checked():
    assert "got: sometimes" in problems({"libvirt_hooks_restart": trust_as_template("{{ how }}"), "how": "sometimes"})
    assert problems({"libvirt_hooks_restart": trust_as_template("{{ how }}"), "how": "never"}) == ""


def test_a_missing_specs_file_or_entry_point_is_named(tmp_path):
    with pytest.raises(AnsibleLookupError, match="no argument specs for the entry point 'main'"):
        problems({}, str(tmp_path / "argument_specs.yml"))
    with pytest.raises(AnsibleLookupError, match="no argument specs for the entry point 'nope'"):
        problems({}, entry_point="nope")


def test_the_specs_are_read_once_per_run_and_a_change_is_read_again(tmp_path, monkeypatch):
    """Workers of one run share the specs through the run's local temporary directory; an edited file is new."""
    from ansible_collections.virthooks.libvirt.plugins.plugin_utils import argspecs as arg_problems
    monkeypatch.setattr(arg_problems.C, "DEFAULT_LOCAL_TMP", str(tmp_path / "local"))
    (tmp_path / "local").mkdir()
    monkeypatch.setattr(arg_problems, "_SPECS", {})
    specs = tmp_path / "argument_specs.yml"
    specs.write_text("argument_specs:\n  main:\n    options:\n      x_mode:\n        type: str\n        choices: [a, b]\n")
    assert "x_mode must be one of: a, b, got: c" in problems({"x_mode": "c"}, path=str(specs))
    assert len(list((tmp_path / "local").glob("virthooks-argspecs-*.json"))) == 1
    monkeypatch.setattr(arg_problems, "_SPECS", {})           # another worker of the run: the cache, not the YAML
    with monkeypatch.context() as patched:
        patched.setattr(arg_problems.yaml, "load", lambda *a, **k: pytest.fail("the YAML was read again"))
        assert "x_mode must be one of: a, b, got: c" in problems({"x_mode": "c"}, path=str(specs))
    assert "x_mode must be one of: a, b, got: c" in problems({"x_mode": "c"}, path=str(specs))
    specs.write_text("argument_specs:\n  main:\n    options:\n      x_mode:\n        type: str\n        choices: [a, b, c]\n")
    assert problems({"x_mode": "c"}, path=str(specs)) == ""
