"""virthooks.libvirt.hooks_stats run for real through ansible-playbook on a sandbox hooks directory."""
from __future__ import annotations

import json
import time

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.runlog import append_line, iso_time
from tests.support.ansible import run_module


def sandbox(tmp_path, records=()):
    hooks = tmp_path / "etc" / "libvirt" / "hooks"
    (hooks / "virthooks").mkdir(parents=True)
    log = tmp_path / "log" / "virthooks.jsonl"
    (hooks / "virthooks" / "config.json").write_text(json.dumps(
        {"version": 1, "log": {"file": str(log), "backups": 2}, "rules": []}))
    for rec in records:
        assert append_line(str(log), rec, 0, 2)
    return hooks, log


def call(t, status):
    return {"time": iso_time(t), "driver": "qemu", "object": "vm", "operation": "prepare", "suboperation": "begin",
            "result": "ok" if status == "ok" else "failed", "duration_ms": 3.0,
            "scripts": [{"name": "s", "status": status, "exit": 0 if status == "ok" else 2, "duration_ms": 1.0}]}


def test_counts_the_window_in_check_mode_and_changes_nothing(tmp_path):
    now = time.time()
    hooks, log = sandbox(tmp_path, [call(now - 3 * 86400, "failed"), call(now - 10, "ok"), call(now - 5, "timeout")])
    before = log.read_bytes()
    result = run_module("virthooks.libvirt.hooks_stats", {"hooks_dir": str(hooks), "since": "24h"}, check=True)
    assert not result.get("failed") and result["changed"] is False and result["runtime"] is True
    stats = result["stats"]
    assert (stats["calls"], stats["failures"], stats["timeouts"]) == (2, 1, 1)
    assert stats["scripts"][0]["name"] == "s" and stats["last_failures"][0]["status"] == "timeout"
    assert result["log_file"] == str(log) and log.read_bytes() == before
    wider = run_module("virthooks.libvirt.hooks_stats", {"hooks_dir": str(hooks), "since": "7d"})
    assert wider["stats"]["calls"] == 3


def test_host_without_runtime_is_not_an_error(tmp_path):
    (tmp_path / "etc" / "libvirt").mkdir(parents=True)
    result = run_module("virthooks.libvirt.hooks_stats", {"sysconfdir": str(tmp_path / "etc")})
    assert not result.get("failed") and result["runtime"] is False and result["stats"] == {}
    assert "config.json does not exist" in result["message"]


def test_bad_since_fails_naming_what_is_valid(tmp_path):
    hooks, _log = sandbox(tmp_path)
    result = run_module("virthooks.libvirt.hooks_stats", {"hooks_dir": str(hooks), "since": "last tuesday"})
    assert result["failed"] and "neither a duration (24h" in result["msg"]


def test_a_duration_reaching_back_before_1970_is_refused_not_an_overflow(tmp_path):
    hooks, _log = sandbox(tmp_path)
    result = run_module("virthooks.libvirt.hooks_stats", {"hooks_dir": str(hooks), "since": "99999999999999999999d"})
    assert result["failed"] and "Traceback" not in json.dumps(result), result
    assert result["msg"] == ("since: '99999999999999999999d' reaches back before 1970-01-01T00:00:00Z; "
                             "give a shorter duration")
