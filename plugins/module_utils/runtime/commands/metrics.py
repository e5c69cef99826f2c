# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks metrics``: write Prometheus metrics of the log for node_exporter's textfile collector."""

import os

from .util import CliError, emit, load


def add_parser(sub) -> None:
    mp = sub.add_parser("metrics", help="write Prometheus metrics for node_exporter's textfile collector")
    mp.add_argument("--textfile-dir", required=True, help="node_exporter's --collector.textfile.directory")
    mp.add_argument("--state", default="", help="cumulative state file (default: LOG.metrics-state)")


def run(args, out) -> int:
    from ..logmetrics import write_textfile
    log = load(args.hooks_dir)["log"]
    if not log["file"]:
        raise CliError("file logging is off (log.file is null): no metrics")
    if not os.path.isdir(args.textfile_dir):
        raise CliError("--textfile-dir %s is not a directory" % args.textfile_dir)
    try:
        done = write_textfile(log["file"], log["backups"], args.textfile_dir, args.state)
    except OSError as exc:
        raise CliError("cannot write the metrics: %s: %s" % (getattr(exc, "filename", None) or args.textfile_dir,
                                                             exc.strerror or exc)) from None
    if done["note"]:
        emit(out, "virthooks: %s" % done["note"])
    emit(out, "%s: %d new record(s)" % (done["file"], done["read"]))
    return 0
