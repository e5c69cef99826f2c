#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: hooks_stats
short_description: Summarise what the virthooks dispatcher did on a host over a time window
version_added: 0.1.0
description:
  - Reads the dispatcher's JSON-lines log (C(log.file) of C(config.json), by default
    C(/var/log/libvirt/virthooks.jsonl)) and its rotated backups C(FILE.1) to C(FILE.N), and
    summarises the hook calls logged at or after O(since). Changes nothing.
  - Per driver and operation, and per script, it counts calls or runs, successes, failures,
    timeouts and refusals, and gives the duration's 50th and 95th percentile and maximum; it
    returns the last five failures with their time, event, script, status, exit status and the
    tail of their stderr.
  - Lines that are not a record (a torn write, a corrupt line) are counted and named by file and
    line number in RV(stats.unparsable); they never fail the module.
  - A host without the virthooks runtime (no C(config.json)) is not an error either;
    RV(runtime) is V(false) and RV(stats) is empty.
  - Nothing is added to the hooks themselves; this reads the log after the fact. A million
    records take a few seconds.
author:
  - virthooks maintainers (@virthooks)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - virthooks.libvirt.paths
  - virthooks.libvirt.read_only
  - virthooks.libvirt.read_only.attributes
options:
  since:
    description:
      - Start of the window, as a duration back from now on the host (V(24h), V(30m), V(7d),
        V(2w), V(90s)) or an ISO 8601 time (V(2026-11-29T10:00:00Z); UTC when it has no zone).
    type: str
    default: 24h
  log_file:
    description:
      - The log to read, as the host sees it (taken under O(root)); V("") uses the one that
        C(config.json) names.
    type: path
    default: ""
  backups:
    description:
      - How many rotated backups to read; V(0) uses C(log.backups) of C(config.json).
    type: int
    default: 0
notes:
  - Times are those of the host's clock; records are kept in the log only as long as its
    rotation keeps them (C(max_bytes) x (C(backups) + 1)).
seealso:
  - module: virthooks.libvirt.hooks_info
  - module: virthooks.libvirt.hook_runtime
"""

EXAMPLES = r"""
- name: What did the hooks do in the last day?
  virthooks.libvirt.hooks_stats:
    since: 24h
  register: hooks

- name: Fail when a hook failed since the maintenance window began
  ansible.builtin.assert:
    that: hooks.stats.failures == 0
    fail_msg: "{{ hooks.stats.last_failures }}"

- name: Read a log kept elsewhere
  virthooks.libvirt.hooks_stats:
    log_file: /srv/log/virthooks.jsonl
    backups: 10
    since: "2026-11-29T00:00:00Z"
"""

RETURN = r"""
hooks_dir:
  description: The hooks directory looked at.
  returned: always
  type: str
  sample: /etc/libvirt/hooks
runtime:
  description: Whether the virthooks runtime is installed (its C(config.json) exists).
  returned: always
  type: bool
  sample: true
log_file:
  description: The log that was read (with O(root)), or V(null) without runtime or with file logging off.
  returned: always
  type: str
  sample: /var/log/libvirt/virthooks.jsonl
message:
  description: Why there are no statistics, when there are none.
  returned: when RV(stats) is empty
  type: str
  sample: "no virthooks runtime: /etc/libvirt/hooks/virthooks/config.json does not exist"
stats:
  description: What was logged in the window; empty without runtime or log.
  returned: always
  type: dict
  contains:
    since:
      description: Start of the window (UTC, the log's time format).
      type: str
      sample: "2026-11-28T10:00:00.000Z"
    first_time:
      description: Time of the first record in the window, or V(null).
      type: str
    last_time:
      description: Time of the last record in the window, or V(null).
      type: str
    files:
      description: Each file read, oldest first, with its size (C(bytes)) and how many records of the window it held (C(records)).
      type: list
      elements: dict
    calls:
      description: Hook calls in the window.
      type: int
      sample: 120
    results:
      description: Calls by result (C(ok), C(failed), C(no_match), C(error), C(interrupted)).
      type: dict
    failures:
      description: Script runs that did not succeed (failed, timeout, refused, error, killed),
        plus calls that failed without a script to blame (dispatcher error, interruption).
      type: int
    timeouts:
      description: Script runs killed at their timeout.
      type: int
    refused:
      description: Script runs refused (not owned by root, or writable by others).
      type: int
    duration_ms:
      description: Call durations, milliseconds, C(p50), C(p95) (nearest rank) and C(max); nulls without calls.
      type: dict
    worst_script:
      description: The script with the most failures (ties by p95), or V(null) when none failed.
      type: str
    operations:
      description: One entry per driver and operation, sorted, with C(driver), C(operation),
        C(calls), C(ok), C(failed), C(no_match), C(error), C(interrupted), C(timeouts),
        C(refused) (script runs in those calls) and C(duration_ms).
      type: list
      elements: dict
    scripts:
      description: One entry per script name, sorted, with C(name), C(source), C(runs) (skipped
        excluded), C(ok), C(failed), C(timeouts), C(refused), C(error), C(killed), C(skipped),
        C(failures) and C(duration_ms).
      type: list
      elements: dict
    last_failures:
      description: The last five failures, newest first, with C(time), C(event)
        (C(driver object operation suboperation)), C(script) (V(null) for a dispatcher error),
        C(status), C(exit) and C(stderr) (its tail, control characters escaped).
      type: list
      elements: dict
    unparsable:
      description: Lines that are not log records, C(count) and the first ten C(lines) named by
        C(file), C(line) number, C(reason) and the start of their C(text).
      type: dict
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virthooks.libvirt.plugins.module_utils.detect import DetectionError, path_argument_spec, resolve_hooks_dir
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.layout import CONFIG_FILE, OWN_DIR
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.logstats import StatsError, parse_since, window_stats
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rules import ConfigError, load_config


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **path_argument_spec(),
            hooks_dir=dict(type="path", default=""),
            since=dict(type="str", default="24h"),
            log_file=dict(type="path", default=""),
            backups=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    root = params["root"].rstrip("/")
    try:
        since = parse_since(params["since"], time.time())
    except StatsError as exc:
        module.fail_json(msg=str(exc))
    if params["backups"] < 0:
        module.fail_json(msg="backups: %d is negative; 0 means the value of config.json" % params["backups"])
    try:
        hooks_dir = resolve_hooks_dir(params["hooks_dir"], root, params["sysconfdir"], params["sandbox"])
    except DetectionError as exc:
        module.exit_json(changed=False, hooks_dir=None, runtime=False, log_file=None, stats={},
                         message="no libvirt hooks directory: %s" % exc)
    config_path = "%s/%s/%s" % (hooks_dir, OWN_DIR, CONFIG_FILE)
    result = dict(changed=False, hooks_dir=hooks_dir, runtime=os.path.exists(config_path), log_file=None, stats={})
    if not result["runtime"] and not params["log_file"]:
        module.exit_json(message="no virthooks runtime: %s does not exist" % config_path, **result)
    log_file, backups = params["log_file"], params["backups"]
    if result["runtime"]:
        try:
            log = load_config(config_path, strict=False)["log"]
        except (OSError, ConfigError) as exc:
            module.fail_json(msg="cannot read the log settings: %s" % exc, **result)
        log_file = log_file or log["file"]
        backups = backups or log["backups"]
    if not log_file:
        module.exit_json(message="file logging is off (log.file is null in %s)" % config_path, **result)
    result["log_file"] = root + log_file
    try:
        result["stats"] = window_stats(result["log_file"], backups or 3, since)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (result["log_file"], exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
