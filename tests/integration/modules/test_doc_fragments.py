"""The modules' shared options and attributes are documented once, in plugins/doc_fragments/, and
ansible-doc still shows each of them on every module."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
SHARED_OPTIONS = ("hooks_dir", "scripts", "generations_keep", "max_size")
SHARED_ATTRIBUTES = ("check_mode", "platform")


def own_documentation(name: str) -> dict:
    """A module's DOCUMENTATION as written in its file (fragments not merged)."""
    tree = ast.parse((REPO / "plugins" / "modules" / (name + ".py")).read_text())
    text = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["DOCUMENTATION"])
    return yaml.safe_load(text)


@pytest.mark.parametrize("name", MODULES)
def test_no_module_repeats_a_shared_option_or_attribute_by_hand(name):
    doc = own_documentation(name)
    assert not set(doc.get("options") or {}) & set(SHARED_OPTIONS), name
    assert not set(doc.get("attributes") or {}) & set(SHARED_ATTRIBUTES), name


def test_secrets_are_documented_once_in_the_scripts_fragment():
    holders = [str(p.relative_to(REPO)) for p in sorted((REPO / "plugins").rglob("*.py"))
               if "\n      secrets:\n" in p.read_text()]
    assert holders == ["plugins/doc_fragments/scripts.py"]


def ansible_doc(name: str) -> dict:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "tests" / "output" / "collections"), ANSIBLE_NOCOLOR="1")
    # ansible-doc run by this interpreter (its console script's #! may name one another user cannot run)
    proc = subprocess.run([sys.executable, "-m", "ansible.cli.doc", "-t", "module", "--json",
                           "virthooks.libvirt." + name], capture_output=True, text=True, env=env, timeout=120, check=True)
    return json.loads(proc.stdout)["virthooks.libvirt." + name]["doc"]


def test_ansible_doc_shows_the_fragments_options_and_attributes_on_the_modules_that_write():
    for name in ("hook", "hook_runtime"):
        doc = ansible_doc(name)
        assert set(SHARED_OPTIONS) <= set(doc["options"]), name
        assert "hooks directory to write to" in " ".join(doc["options"]["hooks_dir"]["description"]), name
        assert "secrets" in doc["options"]["scripts"]["suboptions"], name
        assert doc["attributes"]["check_mode"]["support"] == "full" and doc["attributes"]["diff_mode"]["support"] == "full"
    info = ansible_doc("hooks_info")
    assert info["attributes"]["check_mode"]["support"] == "full" and info["attributes"]["diff_mode"]["support"] == "none"
