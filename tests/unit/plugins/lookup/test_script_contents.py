"""The script_contents lookup: what a host's declared scripts name, read on the controller in Python (it
replaced a Jinja loop each host's worker compiled anew), with a real DataLoader and Templar."""
from __future__ import annotations

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.virthooks.libvirt.plugins.lookup.script_contents import LookupModule, named_entries


def contents(tmp_path, declared, sources=None, variables=None):
    loader = DataLoader()
    loader.set_basedir(str(tmp_path))
    variables = dict(variables or {}, ansible_search_path=[str(tmp_path)])
    lookup = LookupModule(loader=loader, templar=Templar(loader=loader, variables=variables))
    return lookup.run([], variables, declared=declared, sources=sources or {})[0]


def test_src_template_and_files_are_read_and_what_cannot_be_read_is_none(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.sh").write_text("#!/bin/sh\necho a\n\n")
    (tmp_path / "files" / "conf.json").write_text("{}\n\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.sh.j2").write_text("#!/bin/sh\necho {{ site }}\n")
    declared = {
        "libvirt_hooks_scripts": [
            {"name": "a", "src": "a.sh", "files": [{"name": "conf", "src": "conf.json"},
                                                   {"name": "inline", "content": "x"}, "not-a-mapping"]},
            {"name": "t", "template": "t.sh.j2"},
            {"name": "gone", "src": "missing.sh"},
            {"name": "absent", "src": "a.sh", "state": "absent", "files": [{"name": "f", "src": "conf.json"}]},
            {"name": "inline", "content": "#!/bin/sh\n"},
            "not-a-mapping",
        ],
        "libvirt_hooks_library": [[{"name": "nested", "template": "nope.j2"}]],
    }
    got = contents(tmp_path, declared, variables={"site": "lab"})
    assert got == {"a": "#!/bin/sh\necho a", "t": "#!/bin/sh\necho lab\n", "gone": None, "nested": None,
                   "a/conf": "{}\n\n"}


def test_a_src_the_play_read_once_is_taken_from_there(tmp_path):
    declared = {"libvirt_hooks_scripts": [{"name": "a", "src": "/srv/a.sh", "files": [{"name": "f", "src": "/srv/f"}]}]}
    sources = {"scripts": {"/srv/a.sh": "read once"}, "files": {"/srv/f": "file read once"}}
    assert contents(tmp_path, declared, sources) == {"a": "read once", "a/f": "file read once"}


def test_only_named_mappings_that_are_not_absent_count():
    declared = {"x": [{"name": "a"}, {"name": "b", "state": "absent"}, {"name": "c", "state": None}, {"src": "s"}, 3],
                "y": [[{"name": "d", "state": "present"}]]}
    assert [e["name"] for e in named_entries(declared)] == ["a", "c", "d"]
