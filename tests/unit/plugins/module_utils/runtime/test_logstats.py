"""logread, logstats, logmetrics: the log reader behind hooks_stats and `virthooks metrics`, on real files written by runlog."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime import logmetrics, logread, logstats
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.cli import main as cli_main
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.runlog import append_line, iso_time

NOW = time.time()


def rec(t=None, op="prepare", result="ok", scripts=(("s1", "ok", 5.0),), driver="qemu", duration=10.0):
    return {"time": iso_time(NOW if t is None else t), "pid": 1, "driver": driver, "object": "vm",
            "operation": op, "suboperation": "begin", "extra": "-", "result": result, "exit": 0,
            "scripts": [{"name": n, "source": "rule", "status": s, "exit": 0 if s == "ok" else 1,
                         "duration_ms": d, "stderr": "boom %s\n" % n if s != "ok" else ""} for n, s, d in scripts],
            "duration_ms": duration}


def write(path, records, max_bytes=0, backups=3):
    for r in records:
        assert append_line(str(path), r, max_bytes, backups)


def test_window_counts_per_operation_and_script(tmp_path):
    log = tmp_path / "v.jsonl"
    write(log, [rec(), rec(result="failed", scripts=[("s1", "ok", 1.0), ("s2", "failed", 3.0)]),
                rec(op="start", result="failed", scripts=[("s3", "timeout", 1000.0)]),
                rec(op="started", scripts=[("s4", "refused", 0.0)]),
                rec(op="stopped", result="error", scripts=[])])
    stats = logstats.window_stats(str(log), 3, NOW - 60)
    assert (stats["calls"], stats["failures"], stats["timeouts"], stats["refused"]) == (5, 4, 1, 1)
    assert stats["results"] == {"ok": 2, "failed": 2, "no_match": 0, "error": 1, "interrupted": 0}
    scripts = {s["name"]: s for s in stats["scripts"]}
    assert (scripts["s1"]["runs"], scripts["s1"]["ok"], scripts["s2"]["failed"]) == (2, 2, 1)
    assert scripts["s3"]["timeouts"] == 1 and scripts["s4"]["refused"] == 1
    ops = {o["operation"]: o for o in stats["operations"]}
    assert (ops["prepare"]["calls"], ops["prepare"]["failed"], ops["start"]["timeouts"]) == (2, 1, 1)
    assert [f["script"] for f in stats["last_failures"]] == [None, "s4", "s3", "s2"]
    assert stats["last_failures"][3]["stderr"] == "boom s2" and stats["last_failures"][0]["status"] == "error"
    assert stats["worst_script"] in ("s2", "s3", "s4")


def test_percentiles_are_nearest_rank():
    assert logstats.percentiles(list(range(1, 101))) == {"p50": 50, "p95": 95, "max": 100}
    assert logstats.percentiles([7]) == {"p50": 7, "p95": 7, "max": 7}
    assert logstats.percentiles([]) == {"p50": None, "p95": None, "max": None}


def test_only_the_last_five_failures_are_kept_newest_first(tmp_path):
    log = tmp_path / "v.jsonl"
    write(log, [rec(t=NOW - 100 + i, result="failed", scripts=[("s%d" % i, "failed", 1.0)]) for i in range(30)])
    last = logstats.window_stats(str(log), 3, NOW - 1000)["last_failures"]
    assert [f["script"] for f in last] == ["s29", "s28", "s27", "s26", "s25"]


def test_window_excludes_older_records_and_reads_rotated_backups(tmp_path):
    log = tmp_path / "v.jsonl"
    write(log, [rec(t=NOW - 3 * 86400)] * 3 + [rec(t=NOW - 60 + i) for i in range(20)], max_bytes=1200, backups=30)
    assert len(list(tmp_path.glob("v.jsonl.*"))) >= 5
    assert logstats.window_stats(str(log), 30, NOW - 3600)["calls"] == 20
    assert logstats.window_stats(str(log), 30, NOW - 7 * 86400)["calls"] == 23
    assert logstats.window_stats(str(log), 2, NOW - 7 * 86400)["calls"] < 23     # only the backups asked for


def test_corrupt_lines_are_counted_and_named_not_fatal(tmp_path):
    log = tmp_path / "v.jsonl"
    write(log, [rec()])
    with log.open("ab") as f:
        f.write(b'{"time": "2026-\n[1, 2]\n\xff\xfe not utf-8\n{"no": "time"}\n')
    write(log, [rec()])
    stats = logstats.window_stats(str(log), 3, NOW - 60)
    assert stats["calls"] == 2 and stats["unparsable"]["count"] == 4
    assert [(u["line"], u["file"]) for u in stats["unparsable"]["lines"]] == [(n, str(log)) for n in (2, 3, 4, 5)]
    assert stats["unparsable"]["lines"][1]["reason"] == "not a JSON object"
    assert stats["unparsable"]["lines"][2]["text"].startswith("\\xff\\xfe")


def test_missing_log_gives_empty_stats(tmp_path):
    stats = logstats.window_stats(str(tmp_path / "none.jsonl"), 3, NOW - 60)
    assert stats["calls"] == 0 and stats["files"] == [] and stats["duration_ms"]["p95"] is None


@pytest.mark.parametrize("text,seconds", [("24h", 86400), ("7d", 7 * 86400), ("30m", 1800), ("90s", 90),
                                          ("2w", 14 * 86400)])
def test_since_durations(text, seconds):
    assert logstats.parse_since(text, 2000000000.0) == 2000000000.0 - seconds


def test_since_iso_times_and_bad_values():
    assert logstats.parse_since("2026-11-29T10:00:00Z", 0) == logstats.parse_since("2026-11-29T11:00:00+01:00", 0)
    assert logstats.parse_since("2026-11-29T10:00:00", 0) == logread.record_epoch("2026-11-29T10:00:00.000Z")
    with pytest.raises(logstats.StatsError, match="neither a duration"):
        logstats.parse_since("yesterday", 0)


# --- metrics -------------------------------------------------------------------------------

def metrics(log, textfile, backups=3):
    done = logmetrics.write_textfile(str(log), backups, str(textfile))
    values = {}
    for line in (textfile / "virthooks.prom").read_text().splitlines():
        if not line.startswith("#"):
            name, _sep, value = line.rpartition(" ")
            values[name] = float(value)
    return done, values


RUNS_OK = 'virthooks_script_runs_total{script="s1",result="ok"}'
CALLS_OK = 'virthooks_calls_total{driver="qemu",operation="prepare",result="ok"}'


def test_metrics_count_every_record_then_only_new_ones(tmp_path):
    log, textfile = tmp_path / "v.jsonl", tmp_path / "tf"
    textfile.mkdir()
    write(log, [rec(), rec(result="failed", scripts=[("s1", "failed", 20000.0)])])
    done, got = metrics(log, textfile)
    assert done["read"] == 2 and "no state file" in done["note"]
    assert got[RUNS_OK] == 1 and got['virthooks_script_runs_total{script="s1",result="failed"}'] == 1
    assert got['virthooks_script_runs_total{script="s1",result="timeout"}'] == 0
    assert got[CALLS_OK] == 1 and got['virthooks_calls_total{driver="qemu",operation="prepare",result="no-match"}'] == 0
    assert got['virthooks_script_duration_seconds_bucket{script="s1",le="0.01"}'] == 1
    assert got['virthooks_script_duration_seconds_bucket{script="s1",le="10.0"}'] == 1
    assert got['virthooks_script_duration_seconds_bucket{script="s1",le="30.0"}'] == 2
    assert got['virthooks_script_duration_seconds_count{script="s1"}'] == 2
    assert got['virthooks_script_duration_seconds_sum{script="s1"}'] == pytest.approx(20.005)
    assert abs(got["virthooks_last_call_timestamp_seconds"] - NOW) < 1
    write(log, [rec()])
    done, got = metrics(log, textfile)
    assert done["read"] == 1 and done["note"] is None and got[RUNS_OK] == 2


def test_counters_never_go_down_across_rotations(tmp_path):
    log, textfile = tmp_path / "v.jsonl", tmp_path / "tf"
    textfile.mkdir()
    total = 0
    previous = 0
    for batch in (3, 5, 1, 4, 0, 5, 2, 5):                  # each batch fits in the log and its 3 backups
        write(log, [rec() for _ignored in range(batch)], max_bytes=900, backups=3)
        total += batch
        _done, got = metrics(log, textfile)
        assert got[CALLS_OK] == total >= previous
        previous = got[CALLS_OK]
    assert len(list(tmp_path.glob("v.jsonl.[0-9]"))) == 3   # most records are long gone from the disk


def test_records_rotated_away_unread_are_lost_but_counters_still_only_rise(tmp_path):
    log, textfile = tmp_path / "v.jsonl", tmp_path / "tf"
    textfile.mkdir()
    write(log, [rec() for _ignored in range(3)], max_bytes=900, backups=1)
    _done, first = metrics(log, textfile, backups=1)
    write(log, [rec() for _ignored in range(20)], max_bytes=900, backups=1)   # the file read last is deleted
    _done, second = metrics(log, textfile, backups=1)
    assert first[CALLS_OK] == 3 < second[CALLS_OK] < 23


def test_half_written_last_line_is_read_once_complete(tmp_path):
    log, textfile = tmp_path / "v.jsonl", tmp_path / "tf"
    textfile.mkdir()
    write(log, [rec()])
    line = (logmetrics.dumps(rec()) + "\n").encode()
    with log.open("ab") as f:
        f.write(line[:40])
    _done, got = metrics(log, textfile)
    assert got[CALLS_OK] == 1 and got["virthooks_log_unparsable_records_total"] == 0
    with log.open("ab") as f:
        f.write(line[40:])
    _done, got = metrics(log, textfile)
    assert got[CALLS_OK] == 2 and got["virthooks_log_unparsable_records_total"] == 0


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"version": 99}', b'{"version": 1, "buckets": [1]}'])
def test_corrupt_or_missing_state_is_rebuilt_from_the_log(tmp_path, damage):
    log, textfile = tmp_path / "v.jsonl", tmp_path / "tf"
    textfile.mkdir()
    write(log, [rec(), rec()])
    metrics(log, textfile)
    state = logmetrics.state_path(str(log))
    if damage:
        with open(state, "wb") as f:
            f.write(damage)
    else:
        os.unlink(state)
    done, got = metrics(log, textfile)
    assert got[CALLS_OK] == 2 and done["read"] == 2 and "state" in done["note"]


def test_textfile_is_replaced_atomically_and_no_temp_file_stays(tmp_path):
    log, textfile = tmp_path / "v.jsonl", tmp_path / "tf"
    textfile.mkdir()
    write(log, [rec()])
    metrics(log, textfile)
    inode = (textfile / "virthooks.prom").stat().st_ino
    write(log, [rec()])
    metrics(log, textfile)
    assert (textfile / "virthooks.prom").stat().st_ino != inode
    assert sorted(os.listdir(textfile)) == ["virthooks.prom"]
    assert (textfile / "virthooks.prom").stat().st_mode & 0o777 == 0o644


def test_label_values_are_escaped():
    counters = logmetrics.Counters()
    counters.add({"time": iso_time(NOW), "driver": "qemu", "operation": 'a"b\\c\nd', "result": "ok"})
    text = logmetrics.render_metrics(counters, "0.1.0")
    assert 'operation="a\\"b\\\\c\\nd"' in text


def test_cli_metrics_writes_the_prom_file(tmp_path, capsys):
    hooks = tmp_path / "hooks"
    (hooks / "virthooks").mkdir(parents=True)
    log, textfile = tmp_path / "v.jsonl", tmp_path / "tf"
    textfile.mkdir()
    (hooks / "virthooks" / "config.json").write_text(logmetrics.dumps(
        {"version": 1, "log": {"file": str(log), "backups": 3}, "rules": []}))
    write(log, [rec()])
    with pytest.raises(SystemExit) as exit_:
        cli_main(str(hooks), ["metrics", "--textfile-dir", str(textfile)])
    assert exit_.value.code == 0
    assert "1 new record(s)" in capsys.readouterr().out
    assert CALLS_OK + " 1" in (textfile / "virthooks.prom").read_text()
    with pytest.raises(SystemExit) as exit_:
        cli_main(str(hooks), ["metrics", "--textfile-dir", str(tmp_path / "missing")])
    assert exit_.value.code == 1


# --- label values from per-guest tree names, checked by promtool ----------------------------

GUEST = 'we\tb\r"x\\y'                           # tab, CR, quote, backslash: a legal guest directory
FILES = ("a\nb", "c\udcffd", 'e"\\f')             # newline, a byte that is not UTF-8, quote + backslash


def promtool_check(path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "check", "metrics"], stdin=path.open("rb"), capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian package prometheus) is not installed")
def test_a_textfile_from_hostile_tree_names_passes_promtool(sandbox, tmp_path):
    sandbox.deploy([])
    tree = sandbox.hooks / "qemu.d" / GUEST / "prepare" / "begin"
    tree.mkdir(parents=True)
    for name in FILES:
        script = tree / name
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
    assert sandbox.fire("qemu", GUEST, "prepare", "begin", stdin=b"<domain/>").rc == 0
    ran = sandbox.records()[-1]["scripts"]
    assert len(ran) == 3 and all(s["status"] == "ok" for s in ran), ran
    textfile = tmp_path / "tf"
    textfile.mkdir()
    logmetrics.write_textfile(str(sandbox.log), 3, str(textfile))
    prom = textfile / "virthooks.prom"
    checked = promtool_check(prom)
    assert checked.returncode == 0, checked.stdout + checked.stderr + prom.read_text()
    text = prom.read_bytes().decode("utf-8")  # read_text would turn the CR into a newline
    assert 'script="qemu.d/we\tb\r\\"x\\\\y/prepare/begin/a\\nb",result="ok"} 1' in text
    assert 'script="qemu.d/we\tb\r\\"x\\\\y/prepare/begin/c\ufffdd",result="ok"} 1' in text


def test_a_saved_state_holding_bad_labels_is_repaired(tmp_path):
    log, textfile = tmp_path / "v.jsonl", tmp_path / "tf"
    textfile.mkdir()
    log.write_bytes(b"")
    # What an older version saved: the name as logged, undecodable bytes and all.
    old = logmetrics.Counters()
    for r in (rec(scripts=[("s\udcff1", "ok", 5.0)]), rec(scripts=[("s\udcfe1", "ok", 5.0)])):
        old.calls[("qemu", "prepare", "ok")] = old.calls.get(("qemu", "prepare", "ok"), 0) + 1
        name = r["scripts"][0]["name"]
        old.runs[(name, "ok")] = 1
        old.hist[name] = [1] + [0] * len(logmetrics.BUCKETS) + [0.005]
    (tmp_path / "v.jsonl.metrics-state").write_text(old.to_json())
    done, got = metrics(log, textfile)
    assert done["note"] is None
    assert got['virthooks_script_runs_total{script="s\ufffd1",result="ok"}'] == 2
    assert got['virthooks_script_duration_seconds_count{script="s\ufffd1"}'] == 2
    if shutil.which("promtool"):
        checked = promtool_check(textfile / "virthooks.prom")
        assert checked.returncode == 0, checked.stdout + checked.stderr


# --- the metrics job under disk faults (found by the chaos soak) ------------------------------

@pytest.fixture
def small_disks(tmp_path):
    """Two 64 KiB tmpfs: a log directory and a textfile directory, each to be filled or made read-only."""
    mounted = []

    def mount(name):
        path = tmp_path / name
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path
    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(directory):
    subprocess.run("head -c 1048576 /dev/zero > %s/fill" % directory, shell=True, check=False)


def run_metrics_cli(tmp_path, log, textfile, capsys) -> tuple:
    hooks = tmp_path / "hooks"
    if not hooks.exists():
        (hooks / "virthooks").mkdir(parents=True)
        (hooks / "virthooks" / "config.json").write_text(logmetrics.dumps(
            {"version": 1, "log": {"file": str(log), "backups": 3}, "rules": []}))
    with pytest.raises(SystemExit) as exit_:
        cli_main(str(hooks), ["metrics", "--textfile-dir", str(textfile)])
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def calls_ok(textfile) -> str:
    return [line for line in (textfile / "virthooks.prom").read_text().splitlines() if line.startswith(CALLS_OK)][0]


@pytest.mark.root
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_metrics_are_written_when_the_log_directory_is_full_or_read_only(tmp_path, small_disks, capsys, fault):
    """Found by the chaos soak: the job failed, and virthooks.prom went stale, whenever it could not save its
    state beside the log. Now the metrics are written, one warning line says what was not saved, exit 0, and
    the next run with room again counts each record once."""
    logdir, textfile = small_disks("log"), tmp_path / "tf"
    textfile.mkdir()
    log = logdir / "v.jsonl"
    write(log, [rec()])
    assert run_metrics_cli(tmp_path, log, textfile, capsys)[0] == 0
    state = (logdir / "v.jsonl.metrics-state").read_bytes()
    write(log, [rec(), rec()])
    if fault == "full":
        fill(logdir)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(logdir)], check=True)
    code, out, err = run_metrics_cli(tmp_path, log, textfile, capsys)
    assert (code, calls_ok(textfile)) == (0, CALLS_OK + " 3"), out + err
    assert len(err.splitlines()) == 1 and err.startswith("virthooks metrics: warning: could not save the metrics state ("), err
    assert ("No space left on device" if fault == "full" else "Read-only file system") in err
    assert "2 new record(s)" in out
    assert (logdir / "v.jsonl.metrics-state").read_bytes() == state
    if fault == "full":
        (logdir / "fill").unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(logdir)], check=True)
    write(log, [rec()])
    code, out, err = run_metrics_cli(tmp_path, log, textfile, capsys)
    assert (code, err, calls_ok(textfile)) == (0, "", CALLS_OK + " 4")
    assert [n for n in os.listdir(logdir) if n.startswith(".")] == []


@pytest.mark.root
def test_a_full_textfile_directory_is_one_error_and_the_old_metrics_stay_whole(tmp_path, small_disks, capsys):
    textfile = small_disks("tf")
    log = tmp_path / "v.jsonl"
    write(log, [rec()])
    assert run_metrics_cli(tmp_path, log, textfile, capsys)[0] == 0
    before = (textfile / "virthooks.prom").read_bytes()
    write(log, [rec(scripts=[("s%d" % i, "ok", 1.0) for i in range(400)])])    # a .prom that needs pages more
    fill(textfile)
    code, out, err = run_metrics_cli(tmp_path, log, textfile, capsys)
    assert code == 1 and out == ""
    assert err == "virthooks metrics: cannot write the metrics: %s/virthooks.prom: No space left on device (the previous " \
                  "virthooks.prom is left as it was)\n" % textfile
    assert (textfile / "virthooks.prom").read_bytes() == before
    assert sorted(os.listdir(textfile)) == ["fill", "virthooks.prom"]
