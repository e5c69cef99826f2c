"""The play_sources lookup: the src of every host's declarations read once, plain paths only."""
from __future__ import annotations

from ansible_collections.virthooks.libvirt.plugins.lookup.play_sources import declared_sources, plain_path


def test_only_plain_paths_of_present_declarations_are_taken():
    raw = {
        "libvirt_hooks_scripts": [
            {"name": "a", "src": "/srv/a.sh", "files": [{"name": "f", "src": "/srv/f.json"}, {"name": "g", "content": "x"}]},
            {"name": "b", "src": "{{ inventory_hostname }}.sh"},
            {"name": "c", "src": "/srv/c.sh", "state": "absent"},
            {"name": "d", "content": "#!/bin/sh\n${#x[@]}\n"},
            "not-a-mapping",
        ],
        "libvirt_hooks_scripts__gpu": [{"name": "e", "src": "gpu.sh", "files": "{{ gpu_files }}"}],
        "libvirt_hooks_scripts__templated": "{{ common_scripts }}",
        "libvirt_hooks_library": {"hugepages": {"src": "/not/a/script"}},
        "other_scripts": [{"name": "z", "src": "/srv/z.sh"}],
    }
    assert declared_sources(raw) == ({"/srv/a.sh", "gpu.sh"}, {"/srv/f.json"})


def test_a_path_with_jinja_is_not_plain():
    assert plain_path("/srv/a.sh") and plain_path("files/a.sh")
    assert not any(plain_path(v) for v in ("", None, 3, "{{ x }}.sh", "a{% if y %}b{% endif %}", "{# c #}"))
