# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks metrics``: write Prometheus metrics of the log for node_exporter's textfile collector.

Exit 0 when virthooks.prom was written, even if the counters' state could not be saved beside the log (a full
or read-only log directory): one ``virthooks metrics: warning:`` line on stderr says so (cron mails it, the journal
keeps it). Exit 1 when virthooks.prom itself could not be written: one line names it, the previous file is
left whole.
"""

import os
import sys

from .util import CliError, emit, load


def add_parser(sub) -> None:
    mp = sub.add_parser("metrics", help="write Prometheus metrics for node_exporter's textfile collector")
    mp.add_argument("--textfile-dir", required=True, help="node_exporter's --collector.textfile.directory")
    mp.add_argument("--state", default="", help="cumulative state file (default: LOG.metrics-state)")


def run(args, out) -> int:
    from ..logmetrics import PROM_FILE, write_textfile
    log = load(args.hooks_dir)["log"]
    if not log["file"]:
        raise CliError("file logging is off (log.file is null): no metrics")
    if not os.path.isdir(args.textfile_dir):
        raise CliError("--textfile-dir %s is not a directory" % args.textfile_dir)
    try:
        done = write_textfile(log["file"], log["backups"], args.textfile_dir, args.state)
    except OSError as exc:
        raise CliError("cannot write the metrics: %s: %s (the previous %s is left as it was)"
                       % (getattr(exc, "filename", None) or args.textfile_dir, exc.strerror or exc, PROM_FILE)) from None
    if done["unsaved"]:
        emit(sys.stderr, "virthooks metrics: warning: %s" % done["unsaved"])
    if done["note"]:
        emit(out, "virthooks: %s" % done["note"])
    emit(out, "%s: %d new record(s)" % (done["file"], done["read"]))
    return 0
