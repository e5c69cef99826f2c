"""unknown_vars: misspelt libvirt_hooks_* variables, with the nearest valid name."""
from __future__ import annotations

from ansible_collections.virthooks.libvirt.plugins.filter.unknown_vars import unknown_vars

KNOWN = ["libvirt_hooks_restart", "libvirt_hooks_purge", "libvirt_hooks_scripts", "libvirt_hooks_strict"]


def test_a_typo_names_the_nearest_valid_name():
    assert unknown_vars(["libvirt_hooks_restrat", "libvirt_hooks_restart"], KNOWN) == [
        "libvirt_hooks_restrat is not a variable of virthooks.libvirt (it has no effect); "
        "did you mean libvirt_hooks_restart?"]


def test_merged_script_variables_are_always_valid_and_a_near_miss_is_pointed_at_them():
    assert unknown_vars(["libvirt_hooks_scripts__gpu", "libvirt_hooks_scripts__"], KNOWN) == [
        "libvirt_hooks_scripts__ is not a variable of virthooks.libvirt (it has no effect); "
        "did you mean libvirt_hooks_scripts?"]


def test_a_name_far_from_every_valid_one_has_no_suggestion():
    assert unknown_vars(["libvirt_hooks_zzzzzzzzzzzzzzzzzzzzzz"], KNOWN) == [
        "libvirt_hooks_zzzzzzzzzzzzzzzzzzzzzz is not a variable of virthooks.libvirt (it has no effect)"]
