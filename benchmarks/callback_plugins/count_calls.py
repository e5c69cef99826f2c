# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper: counts the module calls that reach each host (controller-only actions excluded)."""
from __future__ import annotations

DOCUMENTATION = r"""
name: count_calls
type: aggregate
short_description: Count module calls per host (benchmarks only)
description:
  - Writes {host: calls} as JSON to the file named by E(VIRTHOOKS_COUNT_FILE) at the end of the run.
  - "Writes {host: task results} (ok, changed, failed, skipped, unreachable and includes, controller-only
    actions included) as JSON to the file named by E(VIRTHOOKS_RESULTS_FILE), when set."
author: virthooks contributors
"""

import json
import os
from collections import Counter

from ansible.plugins.callback import CallbackBase

LOCAL_ACTIONS = {"set_fact", "include_tasks", "import_tasks", "include_vars", "debug", "meta", "assert", "fail",
                 "include_role", "import_role", "validate_argument_spec", "add_host", "group_by", "set_stats"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "count_calls"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.calls = Counter()
        self.results = Counter()

    def _remote(self, result) -> bool:
        action = result._task.action.rsplit(".", 1)[-1]
        return action not in LOCAL_ACTIONS

    def _count(self, result):
        self.results[result._host.get_name()] += 1
        if not self._remote(result):
            return
        items = result._result.get("results")
        if isinstance(items, list):
            self.calls[result._host.get_name()] += sum(1 for r in items if not r.get("skipped"))
        else:
            self.calls[result._host.get_name()] += 1

    v2_runner_on_ok = _count
    v2_runner_on_failed = _count

    def v2_runner_on_skipped(self, result):
        self.results[result._host.get_name()] += 1

    v2_runner_on_unreachable = v2_runner_on_skipped

    def v2_playbook_on_include(self, included_file):
        for host in included_file._hosts:
            self.results[host.get_name()] += 1

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("VIRTHOOKS_COUNT_FILE")
        if path:
            with open(path, "w") as f:
                json.dump(dict(self.calls), f)
        path = os.environ.get("VIRTHOOKS_RESULTS_FILE")
        if path:
            with open(path, "w") as f:
                json.dump(dict(self.results), f)
