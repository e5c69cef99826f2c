"""The syntax gate (runtime/syntax.py): each script through its own interpreter's check, real interpreters."""
from __future__ import annotations

import shutil
import time

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.syntax import check_command, syntax_problem, unchecked

PERL = shutil.which("perl")


@pytest.mark.parametrize("text,expected", [
    ("#!/bin/sh\nif true; then\n  echo x\n", "script 's', line 4: Syntax error: end of file unexpected (expecting \"fi\") (/bin/sh -n)"),
    ("#!/bin/sh\nargs=(a b)\n", "script 's', line 2: Syntax error: \"(\" unexpected (/bin/sh -n)"),
    ("#!/bin/bash\ncase x in\n", "script 's', line 3: syntax error: unexpected end of file (/bin/bash -n)"),
    ("#!/usr/bin/python3 -I\nx = 1\ndef f(:\n", "script 's', line 3: invalid syntax (compile() by /usr/bin/python3)"),
])
def test_a_syntax_error_names_the_script_the_line_and_the_check(text, expected):
    assert syntax_problem("s", text.encode()) == expected


@pytest.mark.parametrize("text", [
    "#!/bin/sh\nif true; then echo x; fi\n",
    "#!/bin/bash\nargs=(a b)\necho ${#args[@]}\n",
    "#!/usr/bin/python3\nimport sys\nprint(sys.argv)\n",
])
def test_a_correct_script_passes(text):
    assert syntax_problem("s", text.encode()) == ""


@pytest.mark.skipif(PERL is None, reason="needs perl")
def test_perl_is_checked_with_the_switches_of_its_shebang():
    assert syntax_problem("p", b"#!/usr/bin/perl -T\nprint 1;\n") == ""
    problem = syntax_problem("p", b"#!/usr/bin/perl -w\nuse strict;\nmy $x = ;\n")
    assert problem.startswith("script 'p', line 3: syntax error at line 3") and problem.endswith("(/usr/bin/perl -c)")


@pytest.mark.skipif(PERL is None, reason="needs perl")
def test_a_check_that_hangs_is_killed_at_its_timeout(tmp_path):
    started = time.monotonic()
    problem = syntax_problem("p", b"#!/usr/bin/perl\nBEGIN { sleep 30 }\n", timeout=1)
    assert problem == "script 'p': its syntax check (/usr/bin/perl -c) did not finish within 1s"
    assert time.monotonic() - started < 10


def test_the_script_text_is_never_written_anywhere_nor_shown(tmp_path):
    secret = b"#!/bin/sh\nURL=http://ops:s3cret@x/\nif true; then\n"
    assert "s3cret" not in syntax_problem("n", secret)


@pytest.mark.parametrize("text,reason", [
    (b"#!/usr/bin/awk -f\n", "no syntax check is known for /usr/bin/awk"),
    (b"#!/usr/bin/env bash\n", "its interpreter is found through #!/usr/bin/env bash"),
    (b"\x7fELF\x02\x01", "it is an ELF executable"),
])
def test_what_has_no_check_is_said(text, reason):
    assert syntax_problem("u", text) == ""
    assert str(unchecked("u", text)) == "script 'u' is not syntax-checked: %s" % reason


def test_env_with_an_absolute_program_and_an_image_interpreter_are_checked_with_that_program():
    assert check_command(b"#!/usr/bin/env /bin/bash\n")[0] == ["/bin/bash", "-n"]
    assert check_command(b"#!/bin/sh -e\n", "/image/bin/sh")[0] == ["/image/bin/sh", "-n"]


def test_validate_after_the_deploy_gate_skips_the_syntax_checks_but_not_the_digests(tmp_path):
    """virthooks validate --skip-syntax (hook_runtime's own check of a generation it made, whose scripts its
    gate has just checked): no interpreter runs, but a script that is not the one deployed is still found."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.syntax import (
        generation_problems, script_digests)
    base = tmp_path / "generation"
    (base / "scripts").mkdir(parents=True)
    (base / "config.json").write_text('{"version": 1, "rules": []}\n')
    bad = b"#!/bin/sh\nif true; then\n"
    (base / "scripts" / "s").write_bytes(bad)
    meta = {"script_digests": script_digests({"s": bad})}
    rules = {"r": str(base / "scripts" / "s")}
    assert any("Syntax error" in p for p in generation_problems(str(base), [], meta, rules)[0])
    assert generation_problems(str(base), [], meta, rules, syntax=False)[0] == []
    (base / "scripts" / "s").write_bytes(b"#!/bin/sh\nexit 0\n")
    assert any("is not what was deployed" in p for p in generation_problems(str(base), [], meta, rules, syntax=False)[0])
