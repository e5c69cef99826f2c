# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks import``: a peer's hook setup on this host as the role's variables (the work is in importers)."""

import sys


def add_parser(sub) -> None:
    from ..importers import add_import_parser
    add_import_parser(sub)


def run(args, out) -> int:
    from ..importers import cmd_import
    return cmd_import(args, out, sys.stderr)
