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
    variables.update(hostvars=HostVars(hosts), plan=trust_as_template(plan))
    lookup = LookupModule(loader=DataLoader(), templar=Templar(loader=DataLoader(), variables=variables))
    return lookup.run(["plan"], variables, hosts=list(hosts), inputs=INPUTS)[0]


def test_the_same_declarations_everywhere_give_one_plan():
    same = {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_sandbox": {"dir": trust_as_template("/s/{{ inventory_hostname }}")}}
    # (libvirt_hooks_sandbox is not an input: a per-host value there does not matter)
    assert shared({"a": dict(same), "b": dict(same)}) == {"rules": ["r"]}


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
    assert shared({"a": {"libvirt_hooks_scripts": scripts}, "b": {"libvirt_hooks_scripts": scripts}}) == {"rules": ["r"]}


def test_a_plan_that_fails_is_left_to_each_host():
    hosts = {"a": {"libvirt_hooks_scripts": SCRIPTS}, "b": {"libvirt_hooks_scripts": SCRIPTS}}
    assert shared(hosts, plan="{{ undef(hint='a script does not validate') }}") == {}
    assert shared(hosts, plan="{{ [1, 2] }}") == {}      # not a plan
