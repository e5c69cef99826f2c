"""Fleet report and Prometheus metrics on sandbox hosts, with the real tools that read them.

- playbooks/report.yml over a fleet of two sandbox hosts with deployed hooks that fire known events
  (ok, failing, timed out, refused; one host's log rotating into backups, a corrupt and an old line in
  the other's), a host with no runtime and a host that is down: report.json holds exactly what was fired;
  report.html is opened in headless Chromium, its DOM read back and a screenshot taken;
  libvirt_hooks_report_max_failures gates the play.
- The role's metrics job (libvirt_hooks_metrics): its cron entry's command run as cron would run it,
  the .prom file served by Debian's prometheus-node-exporter (textfile collector) and scraped over HTTP,
  checked by promtool; counters carry on across log rotation; unsetting the variable removes the job.

Chromium, node_exporter and promtool come from tests/setup/debian-packages.txt; a missing one fails.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import REPO

pytestmark = pytest.mark.root  # deploys through the modules, which chown what they install to root

OK = "#!/bin/sh\necho fine\n"
FAIL = "#!/bin/sh\necho \"storage for $1 is not mounted\" >&2\nexit 3\n"
HANG = "#!/bin/sh\nsleep 30\n"


def tool(name: str) -> str:
    path = shutil.which(name) or next((p for p in ("/usr/bin/" + name, "/usr/sbin/" + name) if os.path.exists(p)), None)
    if not path:
        pytest.fail("%s is missing: install tests/setup/debian-packages.txt (tests/setup/prepare-host.sh)" % name)
    return path


class Fleet:
    """host-a and host-b deployed (group deployed), host-bare without runtime, host-down unreachable."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.inventory = tmp / "hosts.yml"
        for host in ("host-a", "host-b", "host-bare"):
            (tmp / host / "etc" / "libvirt").mkdir(parents=True)

    def hooks(self, host: str) -> Path:
        return self.tmp / host / "etc" / "libvirt" / "hooks"

    def log(self, host: str) -> Path:
        return self.tmp / host / "log" / "virthooks.jsonl"

    def write(self, host_a: dict | None = None) -> None:
        base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "ansible_become": False, "libvirt_hooks_restart": "never", "libvirt_hooks_cli_link": "",
                "libvirt_hooks_sysconfdir": str(self.tmp) + "/{{ inventory_hostname }}/etc",
                "libvirt_hooks_log": {"file": str(self.tmp) + "/{{ inventory_hostname }}/log/virthooks.jsonl"},
                "libvirt_hooks_scripts": [
                    {"name": "ok-script", "operations": ["prepare"], "order": 10, "content": OK},
                    {"name": "fail-script", "objects": ["vm-fail"], "operations": ["prepare"], "order": 20,
                     "content": FAIL},
                    {"name": "hang", "objects": ["vm-hang"], "operations": ["start"], "timeout": 1, "content": HANG},
                    {"name": "refuse-me", "objects": ["vm-ref"], "operations": ["started"], "on_failure": "ignore",
                     "content": OK}]}
        a = {"libvirt_hooks_log": {"file": str(self.log("host-a")), "max_bytes": 700, "backups": 30}}
        a.update(host_a or {})
        inventory = {"hypervisors": {"vars": base, "children": {
            "deployed": {"hosts": {"host-a": a, "host-b": {}}},
            "others": {"hosts": {"host-bare": {},
                                 "host-down": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1",
                                               "ansible_port": free_port(), "ansible_user": "nobody",
                                               "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}}}}}}
        self.inventory.write_text(json.dumps(inventory))

    def playbook(self, name: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.inventory),
               str(REPO / "playbooks" / name), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(), timeout=600, check=False,
                              cwd=str(self.tmp))

    def fire(self, host: str, obj: str, op: str, sub: str = "begin") -> int:
        entry = self.hooks(host) / "qemu"
        return subprocess.run([str(entry), obj, op, sub, "-"], input=b"<domain/>", capture_output=True, timeout=60,
                              env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, check=False).returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fire_known_events(fleet: Fleet) -> None:
    """host-a: 7 calls, 4 failures (2 failed, 1 timeout, 1 refused); host-b: 2 ok calls."""
    script = fleet.hooks("host-a") / "virthooks" / "current" / "scripts" / "refuse-me"
    script.chmod(0o775)                                    # group-writable: the dispatcher refuses it
    codes = [fleet.fire("host-a", "vm1", "prepare") for _ignored in range(3)]
    codes += [fleet.fire("host-a", "vm-fail", "prepare") for _ignored in range(2)]
    codes += [fleet.fire("host-a", "vm-hang", "start"), fleet.fire("host-a", "vm-ref", "started")]
    codes += [fleet.fire("host-b", "vm1", "prepare") for _ignored in range(2)]
    assert codes == [0, 0, 0, 1, 1, 1, 0, 0, 0], codes
    # host-b: a corrupt line and a record older than the window, neither counted as a call.
    with fleet.log("host-b").open("a") as f:
        f.write('{"time": "2026-01-01T00:00:00.000Z", "scripts": [\n')
        f.write('{"time":"2020-01-01T00:00:00.000Z","driver":"qemu","operation":"prepare","result":"failed",'
                '"scripts":[{"name":"ok-script","status":"failed"}]}\n')


@pytest.fixture(scope="module")
def fired(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("report"))
    fleet.write()
    proc = fleet.playbook("deploy_hooks.yml", "-e", "libvirt_hooks_target=deployed")
    assert proc.returncode == 0, proc.stdout[-3000:]
    fire_known_events(fleet)
    return fleet


@pytest.fixture(scope="module")
def report(fired):
    proc = fired.playbook("report.yml")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = fired.tmp / "virthooks-report"
    return proc, json.loads((out / "report.json").read_text()), out / "report.html"


def host(report_json: dict, name: str) -> dict:
    return next(h for h in report_json["hosts"] if h["host"] == name)


def test_report_json_counts_exactly_what_was_fired(report, fired):
    _proc, data, _html = report
    assert len(list(fired.log("host-a").parent.glob("virthooks.jsonl.*"))) >= 3   # read across rotation
    a, b = host(data, "host-a"), host(data, "host-b")
    assert (a["status"], a["calls"], a["failures"], a["timeouts"], a["refused"]) == ("ok", 7, 4, 1, 1)
    assert a["stats"]["results"] == {"ok": 4, "failed": 3, "no_match": 0, "error": 0, "interrupted": 0}
    scripts = {s["name"]: s for s in a["stats"]["scripts"]}
    assert {n: (s["runs"], s["ok"], s["failed"], s["timeouts"], s["refused"]) for n, s in scripts.items()} == {
        "ok-script": (5, 5, 0, 0, 0), "fail-script": (2, 0, 2, 0, 0), "hang": (1, 0, 0, 1, 0),
        "refuse-me": (1, 0, 0, 0, 1)}
    assert scripts["hang"]["duration_ms"]["max"] >= 1000
    ops = {(o["driver"], o["operation"]): (o["calls"], o["ok"], o["failed"]) for o in a["stats"]["operations"]}
    assert ops == {("qemu", "prepare"): (5, 3, 2), ("qemu", "start"): (1, 0, 1), ("qemu", "started"): (1, 1, 0)}
    last = a["stats"]["last_failures"]
    assert [f["script"] for f in last] == ["refuse-me", "hang", "fail-script", "fail-script"]
    assert last[2]["exit"] == 3 and "storage for vm-fail is not mounted" in last[2]["stderr"]
    assert last[2]["event"] == "qemu vm-fail prepare begin"
    assert (b["calls"], b["failures"], b["stats"]["unparsable"]["count"]) == (2, 0, 1)
    assert b["stats"]["unparsable"]["lines"][0]["line"] == 3
    assert host(data, "host-bare")["status"] == "no-runtime"
    assert host(data, "host-down")["status"] == "unreachable"
    totals = data["totals"]
    assert (totals["hosts"], totals["hosts_ok"], totals["calls"], totals["failures"], totals["timeouts"],
            totals["refused"]) == (4, 2, 9, 4, 1, 1)
    assert totals["unreachable"] == ["host-down"] and totals["no_runtime"] == ["host-bare"]
    assert totals["worst_script"] == "fail-script" and data["over_budget"] is False


def test_report_prints_the_fleet_table(report):
    proc, _data, _html = report
    rows = {line.split()[0].strip('"'): line.split() for line in proc.stdout.splitlines()
            if re.match(r'\s*"(host-|FLEET)', line)}
    assert rows["host-a"][1:6] == ["ok", "7", "4", "1"] + rows["host-a"][5:6]
    assert rows["host-a"][-1].strip('",') == "fail-script"
    assert rows["host-down"][1] == "unreachable" and rows["host-bare"][1] == "no-runtime"
    assert rows["FLEET"][5:8] == ["9", "4", "1"], rows["FLEET"]


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    profile = cwd / ("chromium-profile-%d" % time.monotonic_ns())
    profile.mkdir()
    cmd = [tool("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--user-data-dir=%s" % profile, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=str(cwd))


def test_report_html_renders_in_chromium_with_every_host_and_chart(report, fired):
    _proc, data, html = report
    page = html.read_text()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page), "the page loads something from the network"
    dom = chromium("--dump-dom", html.as_uri(), cwd=fired.tmp)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert 'data-sortable="ready"' in text                      # the inline script ran
    for name, status in (("host-a", "ok"), ("host-b", "ok"), ("host-bare", "no-runtime"), ("host-down", "unreachable")):
        assert re.search(r'<tr class="%s" data-host="%s">' % (status, name), text), name
    for chart in ("chart-p95", "chart-host-failures", "chart-script-failures"):
        figure = re.search(r'<figure id="%s">(.*?)</figure>' % chart, text, re.S)
        assert figure and "<svg" in figure.group(1), chart
    bars = re.search(r'<figure id="chart-script-failures">(.*?)</figure>', text, re.S).group(1)
    assert bars.count("<rect") == len(data["scripts"]) == 4
    assert '<td class="num" id="fleet-failures">4</td>' in text
    shot = fired.tmp / "report.png"
    proc = chromium("--screenshot=%s" % shot, "--window-size=1280,1400", "--hide-scrollbars", html.as_uri(),
                    cwd=fired.tmp)
    assert proc.returncode == 0 and shot.stat().st_size > 20000, proc.stderr[-2000:]
    keep = REPO / "tests" / "output" / "report-screenshot.png"
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, keep)                                 # for a human to look at


def test_max_failures_gates_the_play_and_still_writes_the_report(fired):
    over = fired.playbook("report.yml", "-e", "libvirt_hooks_report_max_failures=3",
                          "-e", "libvirt_hooks_report_dir=gate")
    assert over.returncode != 0
    assert "4 hook failure(s) in the fleet" in over.stdout and "fail-script" in over.stdout
    assert json.loads((fired.tmp / "gate" / "report.json").read_text())["over_budget"] is True
    within = fired.playbook("report.yml", "-e", "libvirt_hooks_report_max_failures=4",
                            "-e", "libvirt_hooks_report_dir=gate")
    assert within.returncode == 0, within.stdout[-3000:]


def test_since_narrows_the_window(fired):
    proc = fired.playbook("report.yml", "-e", "libvirt_hooks_report_since=2030-01-01T00:00:00Z",
                          "-e", "libvirt_hooks_report_dir=future")
    assert proc.returncode == 0, proc.stdout[-3000:]
    data = json.loads((fired.tmp / "future" / "report.json").read_text())
    assert data["totals"]["calls"] == 0 and host(data, "host-a")["stats"]["since"].startswith("2030-01-01T00:00:00")


# --- metrics ---------------------------------------------------------------------------------

def scrape(port: int) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def series(text: str) -> dict:
    """{'name{a="x",b="y"}': value} of the virthooks series (and node_textfile_*), labels sorted by name."""
    out = {}
    for line in text.splitlines():
        if line.startswith(("virthooks_", "node_textfile_")):
            name, _sep, value = line.rpartition(" ")
            if "{" in name:
                family, _sep, labels = name.partition("{")
                pairs = sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
                name = family + "{" + ",".join('%s="%s"' % p for p in pairs) + "}"
            out[name] = float(value)
    return out


def cron_command(cron_file: Path) -> str:
    line = next(l for l in cron_file.read_text().splitlines() if l.startswith("*/"))
    fields = line.split(None, 6)
    assert fields[:5] == ["*/1", "*", "*", "*", "*"] and fields[5] == "root", line
    return fields[6]


def test_metrics_job_feeds_node_exporter_and_promtool_accepts_it(fired):
    textfile = fired.tmp / "textfile"
    textfile.mkdir(exist_ok=True)
    cron_file = fired.tmp / "host-a" / "cron.d" / "virthooks-metrics"
    cron_file.parent.mkdir(exist_ok=True)
    settings = {"libvirt_hooks_metrics": {"textfile_dir": str(textfile), "interval": 60, "scheduler": "cron",
                                          "cron_file": str(cron_file)}}
    fired.write(host_a=settings)
    proc = fired.playbook("deploy_hooks.yml", "-e", "libvirt_hooks_target=host-a")
    assert proc.returncode == 0, proc.stdout[-3000:]
    command = cron_command(cron_file)
    run = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=60, check=False,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SHELL": "/bin/sh"})
    assert run.returncode == 0, run.stderr
    prom = textfile / "virthooks.prom"
    check = subprocess.run([tool("promtool"), "check", "metrics"], input=prom.read_text(), capture_output=True,
                           text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    port = free_port()
    exporter = subprocess.Popen([tool("prometheus-node-exporter"), "--web.listen-address=127.0.0.1:%d" % port,
                                 "--collector.disable-defaults", "--collector.textfile",
                                 "--collector.textfile.directory=%s" % textfile],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        got = series(scrape(port))
        runs = 'virthooks_script_runs_total{result="%s",script="%s"}'
        assert got[runs % ("ok", "ok-script")] == 5 and got[runs % ("failed", "fail-script")] == 2
        assert got[runs % ("timeout", "hang")] == 1 and got[runs % ("refused", "refuse-me")] == 1
        assert got[runs % ("failed", "ok-script")] == 0
        calls = 'virthooks_calls_total{driver="qemu",operation="%s",result="%s"}'
        assert got[calls % ("prepare", "ok")] == 3 and got[calls % ("prepare", "failed")] == 2
        assert got[calls % ("start", "failed")] == 1 and got[calls % ("started", "ok")] == 1
        assert got['virthooks_script_duration_seconds_count{script="ok-script"}'] == 5
        assert got['virthooks_script_duration_seconds_bucket{le="+Inf",script="hang"}'] == 1
        assert got['virthooks_script_duration_seconds_bucket{le="0.5",script="hang"}'] == 0
        assert abs(got["virthooks_last_call_timestamp_seconds"] - time.time()) < 600
        assert got['virthooks_runtime_info{version="0.2.0"}'] == 1
        assert got["node_textfile_scrape_error"] == 0

        # More calls, enough to rotate host-a's log several times: the counters only go up, by exactly that.
        for _ignored in range(12):
            assert fired.fire("host-a", "vm1", "prepare") == 0
        assert fired.fire("host-a", "vm-fail", "prepare") == 1
        run = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stderr
        again = series(scrape(port))
        assert again[calls % ("prepare", "ok")] == 3 + 12 and again[calls % ("prepare", "failed")] == 2 + 1
        assert again[runs % ("ok", "ok-script")] == 5 + 13 and again[runs % ("failed", "fail-script")] == 3
    finally:
        exporter.terminate()
        exporter.wait(timeout=30)

    # No textfile_dir: the job goes away (cron_file stays set only because this sandbox moved it).
    fired.write(host_a={"libvirt_hooks_metrics": {"cron_file": str(cron_file)}})
    proc = fired.playbook("deploy_hooks.yml", "-e", "libvirt_hooks_target=host-a")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert not cron_file.exists()


def test_metrics_systemd_timer_units_are_valid_and_removed(fired):
    units = fired.tmp / "host-b" / "systemd"
    units.mkdir(exist_ok=True)
    textfile = fired.tmp / "textfile-b"
    textfile.mkdir(exist_ok=True)
    settings = {"libvirt_hooks_metrics": {"textfile_dir": str(textfile), "interval": 30, "scheduler": "systemd",
                                          "systemd_dir": str(units)}}
    inventory = json.loads(fired.inventory.read_text())
    inventory["hypervisors"]["children"]["deployed"]["hosts"]["host-b"] = settings
    fired.inventory.write_text(json.dumps(inventory))
    proc = fired.playbook("deploy_hooks.yml", "-e", "libvirt_hooks_target=host-b")
    assert proc.returncode == 0, proc.stdout[-3000:]
    timer = (units / "virthooks-metrics.timer").read_text()
    assert "OnUnitActiveSec=30s" in timer
    service = (units / "virthooks-metrics.service").read_text()
    command = re.search(r"^ExecStart=(.*)$", service, re.M).group(1)
    assert subprocess.run(command, shell=True, timeout=60, check=False).returncode == 0
    assert 'virthooks_script_runs_total{script="ok-script",result="ok"} 2' in (textfile / "virthooks.prom").read_text()
    verify = subprocess.run([tool("systemd-analyze"), "verify", "--man=no", str(units / "virthooks-metrics.timer"),
                             str(units / "virthooks-metrics.service")], capture_output=True, text=True, timeout=60,
                            check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    inventory["hypervisors"]["children"]["deployed"]["hosts"]["host-b"] = {
        "libvirt_hooks_metrics": {"systemd_dir": str(units)}}
    fired.inventory.write_text(json.dumps(inventory))
    proc = fired.playbook("deploy_hooks.yml", "-e", "libvirt_hooks_target=host-b")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sorted(os.listdir(units)) == []


def test_metrics_cron_schedule_runs_every_second_hour_for_7200_and_refuses_what_cron_cannot_run(fired):
    textfile = fired.tmp / "textfile-cron"
    textfile.mkdir(exist_ok=True)
    cron_file = fired.tmp / "host-a" / "cron.d" / "virthooks-metrics-hours"
    cron_file.parent.mkdir(exist_ok=True)
    metrics = {"textfile_dir": str(textfile), "interval": 7200, "scheduler": "cron", "cron_file": str(cron_file)}
    fired.write(host_a={"libvirt_hooks_metrics": metrics})
    try:
        proc = fired.playbook("deploy_hooks.yml", "-e", "libvirt_hooks_target=host-a")
        assert proc.returncode == 0, proc.stdout[-3000:]
        line = [l for l in cron_file.read_text().splitlines() if " root " in l]
        assert len(line) == 1 and line[0].split(None, 6)[:6] == ["0", "*/2", "*", "*", "*", "root"], line
        before = cron_file.read_text()
        fired.write(host_a={"libvirt_hooks_metrics": dict(metrics, interval=5400)})
        proc = fired.playbook("deploy_hooks.yml", "-e", "libvirt_hooks_target=host-a")
        assert proc.returncode != 0
        assert "libvirt_hooks_metrics.interval 5400 s cannot be a cron schedule" in proc.stdout, proc.stdout[-3000:]
        assert cron_file.read_text() == before
    finally:
        fired.write(host_a={"libvirt_hooks_metrics": {"cron_file": str(cron_file)}})
        proc = fired.playbook("deploy_hooks.yml", "-e", "libvirt_hooks_target=host-a")
        assert proc.returncode == 0, proc.stdout[-3000:]
    assert not cron_file.exists()
