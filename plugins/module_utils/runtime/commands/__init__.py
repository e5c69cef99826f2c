# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The subcommands of ``virthooks`` (the operator CLI), one module each, wired by ``cli`` (``cli.COMMANDS``).

Each module has ``add_parser(sub)`` (its arguments) and ``run(args, out)`` (its exit status); what
they share is in ``util``. A module is named for its subcommand where that name is free, else for
what it does: ``list`` is a builtin and ``import`` a keyword, and ``generations`` and ``rollback``
are the runtime modules that do the work.

Nothing here is imported before ``cli.main`` has checked this folder as the library's launcher
checks ``library/`` (the whole path to it, every file and ``__pycache__`` root's alone): the
installed CLI's own check, before Python imports anything (entrypoint.render_cli, CLI_MODULES),
covers the runtime's top-level modules only.
"""
