# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launchers of the library's blocks: what a generation holds for each step, and what it runs.

A launcher is a script of a few lines in ``generations/<id>/scripts/lib-<block>-<step>``: it puts
``hooks/virthooks/lib/current`` (found from its own real path) first on ``sys.path`` and calls
``main(block, step)`` here, in its own process (the dispatcher never imports the library). ``main``
checks the library folder as the entry point checks the runtime (the whole path, every file root's
alone), then imports the block and runs the step; the parameters are ``$VIRTHOOKS_SECRETS/PARAMS``.
"""

import importlib
import os
import sys

from .layout import GENERATIONS_DIR, LIB_CURRENT, LIB_DIR, RUNTIME_PACKAGE, SCRIPTS_DIR
from .trust import TrustCheck

LIBRARY = "library"

LAUNCHER = '''#!%(python)s -IS
# virthooks library block %(block)s, step %(step)s: written by the role virthooks.libvirt.libvirt_hooks from
# libvirt_hooks_library (change that, not this file). The code is the installed runtime's
# %(package)s/%(library)s/%(block)s.py; the parameters are the root-only file $VIRTHOOKS_SECRETS/PARAMS.
import os.path, sys
own, generations, _id, scripts, _name = os.path.realpath(__file__).rsplit("/", 4)
sys.path[:0] = [own + "/%(lib)s"]
try:
    if (generations, scripts) != (%(generations)r, %(scripts)r):
        raise ImportError("%%s is not a script of a generation" %% __file__)
    from %(package)s.launcher import main
except ImportError as exc:
    sys.exit("virthooks %(block)s: cannot load the runtime from %%s: %%s" %% (sys.path[0], exc))
main(%(block)r, %(step)r%(paths)s)
'''


def render(block: str, step: str, python: str, paths=None) -> str:
    """The launcher of one step of a block (``paths`` overrides host paths: tests only, the role never)."""
    return LAUNCHER % {"python": python, "block": block, "step": step, "package": RUNTIME_PACKAGE,
                       "library": LIBRARY, "lib": "%s/%s" % (LIB_DIR, LIB_CURRENT), "generations": GENERATIONS_DIR,
                       "scripts": SCRIPTS_DIR, "paths": ", %r" % (dict(paths),) if paths else ""}


def main(block: str, step: str, paths=None) -> None:
    """Run one step of a block, once the library's files proved to be root's alone."""
    library = os.path.join(os.path.dirname(os.path.abspath(__file__)), LIBRARY)
    problems = TrustCheck().tree_problems(library)
    if problems:
        guest = sys.argv[1] if len(sys.argv) > 1 else "-"
        sys.exit("virthooks %s: %s: refusing to run: the library in %s cannot be trusted: %s"  # pylint: disable=ansible-bad-function
                 % (block, guest, library, problems[0]))  # (a launcher on the host, not a module)
    common = importlib.import_module("%s.%s.common" % (__package__, LIBRARY))
    module = importlib.import_module("%s.%s.%s" % (__package__, LIBRARY, block))
    common.main(block, module.STEPS, step, paths)
