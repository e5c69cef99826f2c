"""The shared_plan lookup: one plan for the play only when every host would work out the same one."""
from __future__ import annotations

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.virthooks.libvirt.plugins.lookup.shared_plan import LookupModule
from tests.support.paths import REPO

SPECS = str(REPO / "roles" / "libvirt_hooks" / "meta" / "argument_specs.yml")

INPUTS = "^libvirt_hooks_(scripts(__.+)?|library|strict)$"
SCRIPTS = [{"name": "audit", "operations": ["started"], "content": "#!/bin/sh\nexit 0\n"}]


class HostVars:
    """hostvars as a lookup sees it: raw_get gives a host's variables untemplated, hostvars[host][name] its value
    templated with that host's variables."""

    def __init__(self, hosts: dict):
        self.hosts = hosts

    def raw_get(self, host):
        return self.hosts[host]

    def __getitem__(self, host):
        templar = Templar(loader=DataLoader(), variables=dict(self.hosts[host], inventory_hostname=host))
        return {name: templar.template(value) for name, value in self.hosts[host].items()}


def shared(hosts: dict, seen: dict | None = None, plan="{{ {'rules': ['r']} }}"):
    """What the lookup returns for the first host, which sees seen (default: its inventory variables)."""
    variables = dict(seen if seen is not None else next(iter(hosts.values())))
    variables.update(hostvars=HostVars(hosts), plan=trust_as_template(plan), inventory_hostname=next(iter(hosts)))
    lookup = LookupModule(loader=DataLoader(), templar=Templar(loader=DataLoader(), variables=variables))
    return lookup.run(["plan"], variables, hosts=list(hosts), inputs=INPUTS, specs=SPECS)[0]


def test_the_same_declarations_everywhere_give_one_plan():
    same = {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_sandbox": {"dir": trust_as_template("/s/{{ inventory_hostname }}")}}
    # (libvirt_hooks_sandbox is not an input: a per-host value there does not matter to the plan; each host's value
    # is checked, and passes)
    assert shared({"a": dict(same), "b": dict(same), "c": dict(same)}) == {"plan": {"rules": ["r"]}, "problems": {}}


def test_the_role_variables_a_host_does_not_share_with_the_checked_one_are_checked_with_its_values():
    """The plan checked the first host's role variables; another host's are checked where they are its own."""
    base = {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_restart": "auto", "libvirt_hooks_kill_grace": 2}
    hosts = {"a": dict(base), "b": dict(base, libvirt_hooks_restart="never"), "c": dict(base),
             "d": dict(base, libvirt_hooks_kill_grace="soon", libvirt_hooks_restart="sometimes"),
             "e": dict(base, libvirt_hooks_restart=trust_as_template("{{ how }}"), how="whenever")}
    found = shared(hosts)
    assert found["plan"] == {"rules": ["r"]} and sorted(found["problems"]) == ["d", "e"]
    assert found["problems"]["d"].startswith("Validation of arguments failed:\n")
    assert "libvirt_hooks_restart must be one of" in found["problems"]["d"] and "got: sometimes" in found["problems"]["d"]
    assert "libvirt_hooks_kill_grace" in found["problems"]["d"]
    assert "got: whenever" in found["problems"]["e"]          # the template, rendered with e's variables


def test_only_the_batch_is_checked():
    base = {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_restart": "auto"}
    hosts = {"a": dict(base), "b": dict(base, libvirt_hooks_restart="sometimes")}
    variables = dict(hosts["a"], hostvars=HostVars(hosts), plan=trust_as_template("{{ {'rules': []} }}"),
                     inventory_hostname="a")
    lookup = LookupModule(loader=DataLoader(), templar=Templar(loader=DataLoader(), variables=variables))
    assert lookup.run(["plan"], variables, hosts=["a", "b"], inputs=INPUTS, specs=SPECS, batch=["a"])[0]["problems"] == {}


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
        "plan": {"rules": ["r"]}, "problems": {}}


def test_a_plan_that_fails_is_left_to_each_host():
    hosts = {"a": {"libvirt_hooks_scripts": SCRIPTS}, "b": {"libvirt_hooks_scripts": SCRIPTS}}
    assert shared(hosts, plan="{{ undef(hint='a script does not validate') }}") == {}
    assert shared(hosts, plan="{{ [1, 2] }}") == {}      # not a plan


def test_a_host_whose_variable_cannot_be_templated_gets_the_error_as_its_problem():
    base = {"libvirt_hooks_scripts": SCRIPTS, "libvirt_hooks_restart": "auto"}
    hosts = {"a": dict(base), "b": dict(base, libvirt_hooks_restart=trust_as_template("{{ nowhere_defined }}"))}
    found = shared(hosts)
    assert list(found["problems"]) == ["b"] and "nowhere_defined" in found["problems"]["b"]
