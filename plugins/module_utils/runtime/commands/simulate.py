# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks simulate``: fire one event through the installed entry point, for real, as libvirt would."""

import os
import sys

from ..events import DRIVERS, STDIN_DOMAIN_XML, STDIN_HOOKDATA_XML, STDIN_KIND
from ..runlog import read_records
from .util import JSON_HELP, check_event, emit, emit_json, load, read_file

HOOK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOMAIN_TYPES = {"qemu": "kvm", "lxc": "lxc", "libxl": "xen", "bhyve": "bhyve"}
STDIN_WAIT = 1.0    # seconds for the first byte of a piped document


def minimal_xml(driver: str, name: str) -> bytes:
    """The least libvirt would pass on stdin for an object of that name ('' for the daemon hook)."""
    text = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    kind = STDIN_KIND.get(driver)
    if kind == STDIN_DOMAIN_XML:
        xml = "<domain type='%s'><name>%s</name></domain>\n" % (DOMAIN_TYPES.get(driver, driver), text)
    elif kind == STDIN_HOOKDATA_XML:
        xml = "<hookData><network><name>%s</name></network></hookData>\n" % text
    else:
        return b""
    return xml.encode("utf-8", "surrogateescape")


def piped_input() -> bytes:
    """What is piped into us; nothing for a terminal, a closed stdin, or a stdin nothing arrives on
    within STDIN_WAIT (an idle one inherited from ssh, cron or a CI runner: never wait for it)."""
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        return b""
    import select
    try:
        ready = select.select([stdin], [], [], STDIN_WAIT)[0]
    except (OSError, ValueError):
        return b""
    return stdin.buffer.read() if ready else b""


def hook_input(args, err) -> tuple:
    """(bytes for the hook's stdin, where they come from): --xml FILE, else our stdin unless it is a
    terminal or empty, else a minimal document of the object's name (said on stderr)."""
    if args.xml:
        return read_file(args.xml, "--xml"), "file"
    data = piped_input()
    if data:
        return data, "stdin"
    data = minimal_xml(args.driver, args.object)
    if data:
        emit(err, "virthooks: note: no --xml and nothing on stdin: the hook gets a minimal document: %s"
             % data.decode("utf-8", "surrogateescape").strip())
    return data, "minimal" if data else "none"


def hook_command(args, err) -> list:
    """The entry point and libvirt's four arguments (the installed dispatcher when there is no entry point)."""
    entry = "%s/%s" % (args.hooks_dir, args.driver)
    argv = [args.object, args.operation, args.suboperation, args.extra]
    if os.path.isfile(entry):
        return [entry] + argv
    emit(err, "virthooks: note: no entry point %s; running the dispatcher directly" % entry)
    from ..entrypoint import dispatcher_argv
    return dispatcher_argv(args.hooks_dir, sys.executable, args.driver) + argv


def as_argv(value):
    """A logged argv string back as the bytes the hook was given."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except (AttributeError, UnicodeEncodeError):
        return None


def logged_call(args):
    """The log record of the call just made, or None (logging off, or not found)."""
    config = load(args.hooks_dir)
    log = config["log"]
    records = read_records(log["file"], 5, log["backups"]) if log["file"] else []
    # The hook decoded its argv as UTF-8 (LC_ALL=C); ours went by the locale: compare the bytes.
    mine = [r for r in records if r.get("driver") == args.driver and as_argv(r.get("object")) == os.fsencode(args.object)
            and r.get("operation") == args.operation]
    return mine[-1] if mine else None


def show(out, command: list, proc, record) -> None:
    from .log import print_record
    emit(out, "$ %s" % " ".join(command[:1] + command[-4:]))
    emit(out, "exit status: %d" % proc.returncode)
    for title, data in (("stdout (libvirt would read this as XML)", proc.stdout), ("stderr", proc.stderr)):
        if data:
            emit(out, title + ":")
            for line in data.decode("utf-8", "surrogateescape").rstrip("\n").split("\n"):
                emit(out, line)
    if record is not None:
        print_record(record, out)


def add_parser(sub) -> None:
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


def run(args, out, err=None) -> int:
    err = err or sys.stderr
    check_event(args.driver, args.operation, args.suboperation)
    if args.dry_run:
        from .list_rules import list_event
        args.daemon = None
        return list_event(args, out, load(args.hooks_dir),
                          [args.driver, args.object, args.operation, args.suboperation, args.extra])
    import subprocess
    stdin, source = hook_input(args, err)
    command = hook_command(args, err)
    env = {"LC_ALL": "C", "PATH": HOOK_PATH}
    proc = subprocess.run(command, input=stdin, capture_output=True, env=env, cwd="/", check=False)
    record = logged_call(args)
    if args.json:
        emit_json(out, {"command": command[:1] + command[-4:], "stdin": source, "exit": proc.returncode,
                        "stdout": proc.stdout.decode("utf-8", "surrogateescape"),
                        "stderr": proc.stderr.decode("utf-8", "surrogateescape"), "record": record})
    else:
        show(out, command, proc, record)
    return proc.returncode
