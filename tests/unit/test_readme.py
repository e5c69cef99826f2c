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


def test_the_deploy_playbook_is_one_file_its_former_name_a_relative_symlink_to_it():
    """playbooks/deploy_hooks.yml is the play (callable as virthooks.libvirt.deploy_hooks); deploy-hooks.yml, the
    path documented before, is a symlink to it, and the README names it only to say so."""
    link = REPO / "playbooks" / "deploy-hooks.yml"
    assert link.is_symlink() and os.readlink(str(link)) == "deploy_hooks.yml"
    plays = yaml.safe_load((REPO / "playbooks" / "deploy_hooks.yml").read_text())
    assert plays and all("hosts" in play and "ansible.builtin.import_playbook" not in play for play in plays)
    assert (REPO / "README.md").read_text().count("deploy-hooks.yml") == 1
