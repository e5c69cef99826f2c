# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks``: the operator's command line on a hypervisor, its arguments and its dispatch.

  virthooks --version
  virthooks list [DRIVER OBJECT OPERATION [SUBOP [EXTRA]]] [--xml FILE] [--daemon NAME] [--json]
  virthooks simulate DRIVER OBJECT OPERATION SUBOP [EXTRA] [--xml FILE] [--dry-run] [--json]
  virthooks validate [--json]
  virthooks log [-n N] [--failed] [--json]
  virthooks generations [--json]
  virthooks rollback [GENERATION] [--reload] [--dry-run] [--json]
  virthooks metrics --textfile-dir DIR [--state FILE]
  virthooks import [--source tree|mrjk|saschpe] [--format yaml|json]

Each subcommand is a module of ``commands/`` (COMMANDS) with ``add_parser(sub)`` and
``run(args, out)``; what they share is in ``commands/util``. A command that cannot go on raises
``util.CliError``: one line on stderr, a non-zero exit, never a traceback. ``commands/`` is checked
(trust.TrustCheck.tree_problems) before anything of it is imported. Nothing here is imported by the
dispatcher.
"""

import os
import sys

from . import VERSION
from .runlog import printable

# subcommand -> its module in commands/, in the order ``virthooks --help`` shows them
COMMANDS = (("list", "list_rules"), ("simulate", "simulate"), ("validate", "validate"), ("log", "log"),
            ("generations", "list_generations"), ("rollback", "roll_back"), ("metrics", "metrics"),
            ("import", "import_setup"))
COMMANDS_DIR = "commands"


def commands_problem() -> str:
    """Why root must not import commands/ ('' if it may): the installed CLI checked the runtime's
    top-level modules before it imported us; this folder is checked here, as the library's launcher
    checks library/ (the whole path, the folder and its __pycache__, every entry root's alone)."""
    from .trust import TrustCheck
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), COMMANDS_DIR)
    problems = TrustCheck().tree_problems(folder, ("__pycache__",))
    return problems[0] if problems else ""


def load_commands() -> dict:
    """{subcommand: its module}, once commands/ proved to be root's alone; else exit with one line."""
    problem = commands_problem()
    if problem:
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), COMMANDS_DIR)
        sys.exit("virthooks: refusing to run: the runtime in %s cannot be trusted: %s"  # pylint: disable=ansible-bad-function
                 % (folder, printable(problem)))  # (a host program, not a module)
    import importlib
    return {name: importlib.import_module("%s.%s.%s" % (__package__, COMMANDS_DIR, module))
            for name, module in COMMANDS}


def _parser(hooks_dir, modules: dict):
    import argparse
    p = argparse.ArgumentParser(prog="virthooks", description="Inspect and exercise the virthooks dispatch "
                                "of libvirt hooks in %s." % hooks_dir)
    p.add_argument("--version", action="version", version="virthooks %s" % VERSION)
    p.add_argument("--hooks-dir", default=hooks_dir, help="libvirt hooks directory (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    for name, _module in COMMANDS:
        modules[name].add_parser(sub)
    return p


def _stdout():
    out = sys.stdout
    # Whatever the locale (C, POSIX, latin-1...), a character it cannot encode is shown
    # as a backslash escape rather than ending the command with UnicodeEncodeError.
    if hasattr(out, "reconfigure"):
        out.reconfigure(errors="backslashreplace")
    return out


def run(args, out, err, modules: dict) -> int:
    """The subcommand's exit status; its error, if any, as one line on err."""
    from .commands.util import CliError
    try:
        return modules[args.command].run(args, out)
    except CliError as exc:
        err.write(printable("virthooks %s: %s" % (args.command, exc)) + "\n")
        return exc.code
    except OSError as exc:      # a file we did not expect to fail: still one line, naming it
        where = " %s" % exc.filename if getattr(exc, "filename", None) else ""
        err.write(printable("virthooks %s:%s: %s" % (args.command, where, exc.strerror or exc)) + "\n")
        return 1


def main(hooks_dir="/etc/libvirt/hooks", argv=None, out=None):
    modules = load_commands()
    out = _stdout() if out is None else out
    args = _parser(hooks_dir, modules).parse_args(sys.argv[1:] if argv is None else argv)
    args.hooks_dir = args.hooks_dir.rstrip("/")
    sys.exit(run(args, out, sys.stderr, modules))  # pylint: disable=ansible-bad-function  # a host program, not a module
