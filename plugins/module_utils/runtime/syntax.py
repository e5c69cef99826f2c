# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The syntax gate: each script checked by its own interpreter before a generation goes live.

One check for the three places that need it: the controller (``script_plan``, where the
interpreter exists there), each host before its new generation is switched in (the installer:
the host's ``/bin/sh`` is dash on Debian, not the controller's bash), and ``virthooks validate``.

- shells (``sh``, ``dash``, ``bash``, ``ksh``, ``mksh``, ``zsh``, ``ash``): ``<interpreter> -n``;
- Python (``python``, ``python3``, ``python3.N``): ``compile()`` run by the script's own interpreter;
- Perl: ``perl -c`` with the ``#!`` line's switches. ``perl -c`` runs ``BEGIN`` blocks, so it only
  ever runs where perl is the script's interpreter, and like every check, with a timeout;
- anything else (and ELF executables) is not checked, which ``unchecked`` says.

The script's text goes to the interpreter on stdin: nothing of it (a notify block's credentials)
is written anywhere, and nothing of it but the interpreter's own error line is ever shown.
Not on the dispatcher's path: only the installer and the CLI import this module.
"""

import os
import re
import signal
import subprocess

CHECK_TIMEOUT = 10.0
SHELLS = ("sh", "dash", "bash", "ksh", "ksh93", "mksh", "zsh", "ash")
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
# Python 2 and 3 alike: the error as "line N: message" on stderr.
_PYTHON_CHECK = ("import sys\ntry:\n    compile(sys.stdin.read(), 'script', 'exec')\nexcept SyntaxError as e:\n"
                 "    sys.stderr.write('line %s: %s\\n' % (e.lineno, e.msg))\n    sys.exit(1)\n")
# A line number in an interpreter's error message: "sh: 3: ...", "line 3:", "at - line 3,".
_LINE = re.compile(r"^(?:[^:\n]*: )?(\d+): |\bline (\d+)\b")
_ERROR_LINES = 2


class Unchecked(object):
    """Why a script gets no syntax check (its interpreter has none known here)."""

    __slots__ = ("name", "reason")

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    def __str__(self):
        return "script %r is not syntax-checked: %s" % (self.name, self.reason)


def shebang(data: bytes) -> list:
    """The #! line split in words ([] if there is none)."""
    if not data.startswith(b"#!"):
        return []
    return data[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").split()


def check_command(data: bytes, interpreter: str = ""):
    """(argv that checks this script's syntax, how it is called) or (None, why there is no check).

    interpreter, if given, replaces the #! line's program (the same interpreter under an image root)."""
    words = shebang(data)
    if not words:
        return None, "it is an ELF executable" if data.startswith(b"\x7fELF") else "it has no #! line"
    program, args = words[0], words[1:]
    if os.path.basename(program) == "env" and args:
        program, args = args[0], args[1:]
        if not program.startswith("/"):
            return None, "its interpreter is found through #!/usr/bin/env %s" % program
    elif interpreter:
        program = interpreter
    kind = os.path.basename(program)
    if kind in SHELLS:
        return [program, "-n"], "%s -n" % program
    if _PYTHON.match(kind):
        return [program, "-c", _PYTHON_CHECK], "compile() by %s" % program
    if kind == "perl" or re.match(r"^perl5(\.\d+)*$", kind):
        switches = [a for a in args if a.startswith("-") and a != "--"]
        return [program] + switches + ["-c", "-"], "%s -c" % program
    return None, "no syntax check is known for %s" % program


def _run(argv: list, data: bytes, timeout: float):
    """(exit status, stderr) of a check; the whole process group is killed at the timeout."""
    env = {"LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env, cwd="/", start_new_session=True, close_fds=True)
    try:
        _out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        return None, b""
    except BrokenPipeError:          # it exited before reading the whole script: its status says why
        proc.wait()
        err = proc.stderr.read() if proc.stderr else b""
    return proc.returncode, err


def _message(program: str, err: bytes) -> str:
    """'line N: what the interpreter said' (its first lines, without its own name)."""
    lines = []
    for raw in err.decode("utf-8", "replace").split("\n"):
        line = raw.strip()
        if line.startswith(program + ": "):
            line = line[len(program) + 2:]
        if line and not line.endswith("had compilation errors."):
            lines.append(line.replace(" at - line ", " at line "))
    found = _LINE.search(lines[0]) if lines else None
    if found:
        number = found.group(1) or found.group(2)
        if found.group(1):
            lines[0] = lines[0][found.end():]
        elif lines[0].startswith("line %s: " % number):
            lines[0] = lines[0][len("line %s: " % number):]
        return "line %s: %s" % (number, " | ".join(lines[:_ERROR_LINES]))
    return " | ".join(lines[:_ERROR_LINES]) or "no message"


def syntax_problem(name: str, data: bytes, interpreter: str = "", timeout: float = CHECK_TIMEOUT) -> str:
    """Why a script's syntax is wrong ('' if it is right, or has no check: see unchecked).

    interpreter replaces the #! line's program to run the check with (an image root's copy)."""
    argv, how = check_command(data, interpreter)
    if argv is None:
        return ""
    try:
        status, err = _run(argv, data, timeout)
    except OSError as exc:
        return "script %r: its syntax check (%s) could not run: %s" % (name, how, exc.strerror or exc)
    if status is None:
        return "script %r: its syntax check (%s) did not finish within %gs" % (name, how, timeout)
    if status == 0:
        return ""
    return "script %r, %s (%s)" % (name, _message(argv[0], err), how)


def unchecked(name: str, data: bytes):
    """An Unchecked saying why this script gets no syntax check, or None if it gets one."""
    argv, why = check_command(data)
    return None if argv is not None else Unchecked(name, why)


def script_digests(scripts: dict) -> dict:
    """{name: sha256 of its bytes}: what a generation's meta.json records, so an edit is found later."""
    import hashlib
    return {name: hashlib.sha256(data).hexdigest() for name, data in scripts.items()}


def generation_problems(base: str, rules: list, meta: dict, rule_scripts: dict, syntax: bool = True) -> tuple:
    """(problems, warnings) of a generation's scripts, for ``virthooks validate``: syntax (the same
    checks as at deploy time; not when syntax is false), a digest that no longer matches meta.json (edited by
    hand), scripts no rule runs. rule_scripts is {rule name: the script's path}."""
    from .generations import read_state
    from .layout import SCRIPTS_DIR
    problems, warnings = [], []
    _config, scripts = read_state(base)
    recorded = meta.get("script_digests")
    digests = script_digests(scripts)
    for name in sorted(scripts):
        if isinstance(recorded, dict) and recorded.get(name) != digests[name]:
            problems.append("script %r (%s/%s/%s) is not what was deployed: its sha256 does not match the "
                            "generation's meta.json (edited by hand? deploy again, or roll back)"
                            % (name, base, SCRIPTS_DIR, name) if name in recorded else
                            "script %r (%s/%s/%s) was not deployed: meta.json does not list it"
                            % (name, base, SCRIPTS_DIR, name))
        problem = syntax_problem(name, scripts[name]) if syntax else ""
        if problem:
            problems.append(problem)
        skipped = unchecked(name, scripts[name])
        if skipped is not None:
            warnings.append(str(skipped))
    if isinstance(recorded, dict):
        for name in sorted(set(recorded) - set(scripts)):
            problems.append("script %r is missing from %s/%s (meta.json lists it)" % (name, base, SCRIPTS_DIR))
    used = set(rule_scripts.values())
    for name in sorted(scripts):
        if "%s/%s/%s" % (base, SCRIPTS_DIR, name) not in used:
            warnings.append("script %r is run by no rule (%s/%s/%s)" % (name, base, SCRIPTS_DIR, name))
    return problems, warnings
