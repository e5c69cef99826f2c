"""The shared_plan lookup: one plan for the play only when every host would work out the same one."""
from __future__ import annotations

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.virthooks.libvirt.plugins.lookup.shared_plan import LookupModule

INPUTS = "^libvirt_hooks_(scripts(__.+)?|library|strict)$"
SCRIPTS = [{"name": "audit", "operations": ["started"], "content": "#!/bin/sh\nexit 0\n"}]


class HostVars:
    """hostvars as a lookup sees it: raw_get gives a host's variables untemplated."""

    def __init__(self, hosts: dict):
        self.hosts = hosts

    def raw_get(self, host):
        return self.hosts[host]


def shared(hosts: dict, seen: dict | None = None, plan="{{ {'rules': ['r']} }}"):
    """What the lookup returns for the first host, which sees seen (default: its inventory variables)."""
    variables = dict(seen if seen is not None else next(iter(hosts.values())))
    variables.update(hostvars=HostVars(hosts), plan=trust_as_template(plan), inventory_hostname=next(iter(hosts)))
    lookup = LookupModule(loader=DataLoader(), templar=Templar(loader=DataLoader(), variables=variables))
    return lookup.run(["plan"], variables, hosts=list(hosts), inputs=INPUTS)[0]


def test_the_same_declarations_everywhere_give_one_plan():
    same = {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_sandbox": {"dir": trust_as_template("/s/{{ inventory_hostname }}")}}
    # (libvirt_hooks_sandbox is not an input: a per-host value there does not matter to the plan, but each host
    # checks its own value before it deploys)
    assert shared({"a": dict(same), "b": dict(same), "c": dict(same)}) == {
        "plan": {"rules": ["r"]}, "recheck": {"b": ["libvirt_hooks_sandbox"], "c": ["libvirt_hooks_sandbox"]}}


def test_a_host_checks_the_role_variables_it_does_not_share_with_the_checked_one():
    """The plan checked the first host's role variables; another host checks those whose value is its own."""
    base = {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_restart": "auto", "libvirt_hooks_kill_grace": 2}
    hosts = {"a": dict(base), "b": dict(base, libvirt_hooks_restart="never"), "c": dict(base),
             "d": dict(base, libvirt_hooks_kill_grace="soon", libvirt_hooks_restart="never")}
    assert shared(hosts) == {"plan": {"rules": ["r"]}, "recheck": {
        "b": ["libvirt_hooks_restart"], "d": ["libvirt_hooks_kill_grace", "libvirt_hooks_restart"]}}


@pytest.mark.parametrize("b", [
    {"libvirt_hooks_scripts": SCRIPTS + [{"name": "more", "content": "#!/bin/sh\n"}]},
    {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_scripts__gpu": SCRIPTS},
    {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_strict": True},
    {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_restrat": "never"},   # the typos check reads the names
    {},
])
def test_hosts_that_differ_in_an_input_or_a_name_work_out_their_own(b):
    assert shared({"a": {"libvirt_hooks_scripts": SCRIPTS}, "b": b}) == {}


@pytest.mark.parametrize("seen", [
    # a template (in the play's vars, a role parameter): each host may get its own value
    {"libvirt_hooks_scripts": [{"name": "who", "content": trust_as_template("#!/bin/sh\n# {{ inventory_hostname }}\n")}]},
    {"libvirt_hooks_scripts": trust_as_template("{{ my_scripts }}")},
    {"libvirt_hooks_library": {trust_as_template("{{ block }}"): {}}},
    # a script rendered from a template file, with each host's variables
    {"libvirt_hooks_scripts": [{"name": "who", "template": "who.sh.j2"}]},
])
def test_a_template_among_the_inputs_this_host_sees_works_out_each_host_own(seen):
    hosts = {"a": {"libvirt_hooks_scripts": SCRIPTS}, "b": {"libvirt_hooks_scripts": SCRIPTS}}
    assert shared(hosts, seen=seen) == {}


def test_text_jinja_would_not_read_is_not_a_template():
    """A script marked !unsafe (bash's ${#a[@]}, {{) is the same text for every host."""
    scripts = [{"name": "x", "content": "#!/bin/bash\necho ${#a[@]} {{ not jinja }}\n"}]
    assert shared({"a": {"libvirt_hooks_scripts": scripts}, "b": {"libvirt_hooks_scripts": scripts}}) == {
        "plan": {"rules": ["r"]}, "recheck": {}}


def test_a_plan_that_fails_is_left_to_each_host():
    hosts = {"a": {"libvirt_hooks_scripts": SCRIPTS}, "b": {"libvirt_hooks_scripts": SCRIPTS}}
    assert shared(hosts, plan="{{ undef(hint='a script does not validate') }}") == {}
    assert shared(hosts, plan="{{ [1, 2] }}") == {}      # not a plan
