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

Each subcommand is a module, ``cli_<name>.py``, with ``run(args, out)``; what they share is in
``cli_util``. A command that cannot go on raises ``cli_util.CliError``: one line on stderr, a
non-zero exit, never a traceback. Nothing here is imported by the dispatcher.
"""

import sys

from . import (VERSION, cli_generations, cli_import, cli_list, cli_log, cli_metrics, cli_rollback, cli_simulate,
               cli_validate)
from .cli_util import CliError
from .events import DRIVERS
from .runlog import printable

COMMANDS = {"list": cli_list, "simulate": cli_simulate, "validate": cli_validate, "log": cli_log,
            "generations": cli_generations, "rollback": cli_rollback, "metrics": cli_metrics, "import": cli_import}
JSON_HELP = "one JSON document on stdout (fields: docs/cli.md)"


def _event_parsers(sub) -> None:
    ls = sub.add_parser("list", help="the rules, or what would run for one event")
    ls.add_argument("event", nargs="*", metavar="DRIVER OBJECT OPERATION [SUBOP [EXTRA]]")
    ls.add_argument("--xml", help="XML file to evaluate XPath conditions against")
    ls.add_argument("--daemon", help="calling daemon, for daemon-driver rules (e.g. virtqemud)")
    ls.add_argument("--json", action="store_true", help=JSON_HELP)
    sim = sub.add_parser("simulate", help="fire an event through the installed entry point, for real")
    sim.add_argument("driver", choices=DRIVERS)
    sim.add_argument("object")
    sim.add_argument("operation")
    sim.add_argument("suboperation")
    sim.add_argument("extra", nargs="?", default="-")
    sim.add_argument("--xml", help="file given to the hook on stdin, as libvirt would (default: our stdin "
                     "unless it is a terminal or empty, else a minimal document of OBJECT's name)")
    sim.add_argument("--dry-run", action="store_true", help="only show what would run")
    sim.add_argument("--json", action="store_true", help=JSON_HELP)
    val = sub.add_parser("validate", help="check config.json, the scripts and the entry points")
    val.add_argument("--json", action="store_true", help=JSON_HELP)


def _history_parsers(sub) -> None:
    lg = sub.add_parser("log", help="recent hook calls")
    lg.add_argument("-n", type=int, default=20, help="how many calls (default 20)")
    lg.add_argument("--failed", action="store_true", help="only calls that failed")
    lg.add_argument("--json", action="store_true", help="raw JSON lines")
    gen = sub.add_parser("generations", help="the deployed generations, newest last, the current one marked")
    gen.add_argument("--json", action="store_true", help=JSON_HELP)
    rb = sub.add_parser("rollback", help="make the previous generation (or GENERATION) current again")
    rb.add_argument("generation", nargs="?", default="", help="the generation to make current (default: the previous)")
    rb.add_argument("--reload", action="store_true",
                    help="send SIGHUP to the daemons whose entry points were added or removed")
    rb.add_argument("--dry-run", action="store_true", help="only show what would change")
    rb.add_argument("--json", action="store_true", help=JSON_HELP)
    mp = sub.add_parser("metrics", help="write Prometheus metrics for node_exporter's textfile collector")
    mp.add_argument("--textfile-dir", required=True, help="node_exporter's --collector.textfile.directory")
    mp.add_argument("--state", default="", help="cumulative state file (default: LOG.metrics-state)")


def _parser(hooks_dir):
    import argparse
    p = argparse.ArgumentParser(prog="virthooks", description="Inspect and exercise the virthooks dispatch "
                                "of libvirt hooks in %s." % hooks_dir)
    p.add_argument("--version", action="version", version="virthooks %s" % VERSION)
    p.add_argument("--hooks-dir", default=hooks_dir, help="libvirt hooks directory (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    _event_parsers(sub)
    _history_parsers(sub)
    from .importers import add_import_parser
    add_import_parser(sub)
    return p


def _stdout():
    out = sys.stdout
    # Whatever the locale (C, POSIX, latin-1...), a character it cannot encode is shown
    # as a backslash escape rather than ending the command with UnicodeEncodeError.
    if hasattr(out, "reconfigure"):
        out.reconfigure(errors="backslashreplace")
    return out


def run(args, out, err) -> int:
    """The subcommand's exit status; its error, if any, as one line on err."""
    try:
        return COMMANDS[args.command].run(args, out)
    except CliError as exc:
        err.write(printable("virthooks %s: %s" % (args.command, exc)) + "\n")
        return exc.code
    except OSError as exc:      # a file we did not expect to fail: still one line, naming it
        where = " %s" % exc.filename if getattr(exc, "filename", None) else ""
        err.write(printable("virthooks %s:%s: %s" % (args.command, where, exc.strerror or exc)) + "\n")
        return 1


def main(hooks_dir="/etc/libvirt/hooks", argv=None, out=None):
    out = _stdout() if out is None else out
    args = _parser(hooks_dir).parse_args(sys.argv[1:] if argv is None else argv)
    args.hooks_dir = args.hooks_dir.rstrip("/")
    sys.exit(run(args, out, sys.stderr))  # pylint: disable=ansible-bad-function  # a host program, not a module
