"""The library blocks' tests (library/) expand their parameters with the controller's library_scripts
filter. ansible-test units runs the module_utils tests without the controller's ansible, where that filter
cannot be imported: there they are left out (make test runs them, with the controller's ansible)."""
from __future__ import annotations

import importlib.util

collect_ignore = [] if importlib.util.find_spec("ansible.errors") is not None else ["library"]
