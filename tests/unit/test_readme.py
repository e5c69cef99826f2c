"""The rules reference's tables (docs/rules.md, moved there from the README) say what roles/libvirt_hooks/meta/argument_specs.yml says."""
from __future__ import annotations

import json
import os

import yaml

from tests.support.paths import REPO


def readme_table(first_header: str) -> dict:
    """{first cell: second cell} of the docs/rules.md table whose header starts with first_header."""
    rows, inside = {}, False
    for line in (REPO / "docs" / "rules.md").read_text().splitlines():
        if line.startswith("| " + first_header + " |"):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set(cells[0]) <= set("-"):
                continue
            rows[cells[0].strip("`")] = cells[1]
    return rows


def specs() -> dict:
    return yaml.safe_load((REPO / "roles/libvirt_hooks/meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def shown(value) -> str:
    return "`%s`" % (json.dumps(value) if not isinstance(value, str) else ('""' if value == "" else value))


def test_role_variables_table_matches_argument_specs():
    table = readme_table("variable")
    options = specs()
    assert set(table) == set(options)
    for name, spec in options.items():
        assert table[name] == shown(spec.get("default")), name


def test_script_keys_table_covers_every_suboption():
    table = readme_table("key")
    keys = {k for cell in table for k in cell.replace("`", "").split(" / ")}
    assert keys == set(specs()["libvirt_hooks_scripts"]["options"])


def test_every_role_entry_point_a_playbook_or_guide_uses_is_declared_in_argument_specs():
    """include_role/import_role tasks_from: X.yml runs the entry point X, which argument_specs must declare."""
    import re
    declared = set(yaml.safe_load((REPO / "roles/libvirt_hooks/meta/argument_specs.yml").read_text())["argument_specs"])
    used = set()
    for path in list((REPO / "playbooks").rglob("*.yml")) + list((REPO / "docs").glob("*.md")) + \
            list((REPO / "examples").rglob("*.yml")) + list((REPO / "extensions").rglob("*.yml")):
        used.update(re.findall(r"tasks_from:\s*['\"]?([A-Za-z0-9_]+)(?:\.ya?ml)?", path.read_text()))
    assert used and used <= declared, used - declared


def test_a_scripts_on_failure_choices_are_exactly_what_the_runtime_accepts():
    """The role's argument_specs validate a script before the runtime sees its rule: a value the runtime
    runs (rules.ON_FAILURE, 'abortable' included) must not be refused there, nor one it refuses accepted,
    and the rules reference names each."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import ON_FAILURE, RULE_DEFAULTS
    spec = specs()["libvirt_hooks_scripts"]["options"]["on_failure"]
    assert sorted(spec["choices"]) == sorted(ON_FAILURE)
    assert spec["default"] == RULE_DEFAULTS["on_failure"]
    row = readme_table("key")["on_failure"]
    assert row == shown(spec["default"])
    described = [line for line in (REPO / "docs" / "rules.md").read_text().splitlines()
                 if line.startswith("| `on_failure` |")][0]
    assert all("`%s`" % choice in described.split("|")[3] for choice in ON_FAILURE), described


def test_a_scripts_driver_choices_are_the_runtimes_drivers():
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.events import DRIVERS
    options = specs()
    assert options["libvirt_hooks_scripts"]["options"]["driver"]["choices"] == list(DRIVERS)
    assert options["libvirt_hooks_drivers"]["choices"] == list(DRIVERS)


def test_every_libvirt_hooks_variable_a_playbook_reads_is_known_to_the_typo_check():
    """play_once.yml's list of playbook variables (with argument_specs and defaults) is what the typo check
    knows: a variable a playbook reads and that list lacks is reported as a misspelling (or fails the host
    with libvirt_hooks_strict)."""
    import re
    role = REPO / "roles" / "libvirt_hooks"
    tasks = yaml.safe_load((role / "tasks" / "play_once.yml").read_text())
    known = set(tasks[0]["vars"]["__libvirt_hooks_playbook_vars"]) | set(yaml.safe_load((role / "defaults" / "main.yml").read_text()))
    for entry in yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"].values():
        known |= set(entry.get("options") or {})
    read = set()
    for path in (REPO / "playbooks").glob("*.yml"):
        read |= set(re.findall(r"(?<![_\w])libvirt_hooks_[a-z_]*[a-z]", path.read_text()))
    assert read and read <= known, sorted(read - known)


def test_the_deploy_playbook_is_one_file_its_former_name_a_relative_symlink_to_it():
    """playbooks/deploy_hooks.yml is the play (callable as virthooks.libvirt.deploy_hooks); deploy-hooks.yml, the
    path documented before, is a symlink to it, and the README names it only to say so."""
    link = REPO / "playbooks" / "deploy-hooks.yml"
    assert link.is_symlink() and os.readlink(str(link)) == "deploy_hooks.yml"
    plays = yaml.safe_load((REPO / "playbooks" / "deploy_hooks.yml").read_text())
    assert plays and all("hosts" in play and "ansible.builtin.import_playbook" not in play for play in plays)
    assert (REPO / "README.md").read_text().count("deploy-hooks.yml") == 1
