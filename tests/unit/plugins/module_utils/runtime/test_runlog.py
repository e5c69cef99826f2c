"""The dispatcher's log file: never a hang on a non-regular file, no record lost to rotation."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from .test_dispatch import rule

RUNLOG = "ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.runlog"
CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=CHILD_ENV, timeout=timeout, check=False)


def all_records(path: str, backups: int) -> list:
    records = []
    for candidate in [path] + ["%s.%d" % (path, i) for i in range(1, backups + 1)]:
        if os.path.exists(candidate):
            with open(candidate) as f:
                records += [json.loads(line) for line in f]
    return records


def test_concurrent_writers_lose_no_record_across_rotations(tmp_path):
    writers, calls, max_bytes, backups = 32, 100, 600, 400
    path = str(tmp_path / "log" / "virthooks.jsonl")
    go = tmp_path / "go"
    writer = """
        import os, sys, time
        from %s import append_line
        who, path, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        while not os.path.exists(go):
            time.sleep(0.001)
        failed = [n for n in range(%d) if not append_line(path, {"w": who, "n": n}, %d, %d)]
        print(failed)
    """ % (RUNLOG, calls, max_bytes, backups)
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(writer), str(w), path, str(go)],
                              stdout=subprocess.PIPE, text=True, env=CHILD_ENV) for w in range(writers)]
    time.sleep(0.5)
    go.touch()
    reported = [p.communicate(timeout=120)[0].strip() for p in procs]
    records = all_records(path, backups)
    # The capacity (backups + 1 files of ~max_bytes) holds every record: none may be missing.
    assert not os.path.exists("%s.%d" % (path, backups)), "test needs more backups"
    assert sorted((r["w"], r["n"]) for r in records) == [(w, n) for w in range(writers) for n in range(calls)]
    assert reported == ["[]"] * writers
    # Rotation still bounds each file: never past max_bytes by more than the writes racing it.
    sizes = [os.path.getsize(p) for p in [path] + ["%s.%d" % (path, i) for i in range(1, backups)]
             if os.path.exists(p)]
    assert len(sizes) > 50 and max(sizes) < max_bytes + writers * 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_a_fifo_socket_device_or_symlink_at_the_log_path_is_skipped_never_a_hang(tmp_path):
    code = """
        import os, stat, sys
        from %s import append_line
        for path in sys.argv[1:]:
            for max_bytes in (0, 1 << 20):
                print(os.path.basename(path), max_bytes, append_line(path, {"x": 1}, max_bytes, 3), flush=True)
    """ % RUNLOG
    fifo, reader_fifo, sock, device, link, target = (str(tmp_path / name) for name in (
        "fifo", "fifo-with-reader", "sock", "device", "link", "target"))
    os.mkfifo(fifo)
    os.mkfifo(reader_fifo)
    reader = os.open(reader_fifo, os.O_RDONLY | os.O_NONBLOCK)
    server = socket.socket(socket.AF_UNIX)
    server.bind(sock)
    paths = [fifo, reader_fifo, sock, link]
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 3))   # /dev/null
        paths.append(device)
    except PermissionError:
        pass
    with open(target, "w") as f:
        f.write("precious\n")
    os.symlink(target, link)
    try:
        proc = run_python(code, *paths, timeout=30)
        assert proc.returncode == 0, proc.stderr
        results = [line.split() for line in proc.stdout.splitlines()]
        assert results == [[os.path.basename(p), str(m), "False"] for p in paths for m in (0, 1 << 20)]
        with open(target) as f:
            assert f.read() == "precious\n"
        assert os.read(reader, 100) == b""
        assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths + [target])
    finally:
        os.close(reader)
        server.close()


def test_hook_call_with_a_fifo_at_the_log_path_does_not_hang(sandbox):
    sandbox.recorder("rec")
    sandbox.deploy([rule("rec")])
    sandbox.log.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(str(sandbox.log))
    fired = sandbox.fire("qemu", "g", "start", "begin", timeout=30)
    assert fired.rc == 0 and fired.stderr == "", fired
    assert sandbox.order() == ["rec g start begin -"]
    assert stat.S_ISFIFO(os.lstat(str(sandbox.log)).st_mode)


def test_printable_escapes_controls_and_undecodable_bytes_and_keeps_the_rest():
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.runlog import printable
    assert printable("win10 caf\u00e9 \u2603 C:\\x") == "win10 caf\u00e9 \u2603 C:\\x"
    assert printable("a\nb\tc\rd\x00\x1b[31m\x7f") == "a\\nb\\tc\\rd\\x00\\x1b[31m\\x7f"
    assert printable("\x85\x9b\x80\x9f\xa0") == "\\u0085\\u009b\\u0080\\u009f\xa0"
    assert printable(b"g\xff\x9b\xc3".decode("utf-8", "surrogateescape")) == "g\\xff\\x9b\\xc3"
    assert printable("\ud800") == "\\ud800"
    every = "".join(map(chr, range(0x110000)))
    assert not [c for c in printable(every) if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0xd800 <= ord(c) < 0xe000]


@pytest.mark.root
def test_a_record_cut_short_by_a_full_disk_is_taken_back_and_reported_not_left_as_a_broken_line(tmp_path):
    """Found by the chaos soak (tests/soak): on a full log directory a record was written in part (a short
    write), append_line said it was written, no syslog line went out, and the next record was glued to the
    broken line, so both were lost to every reader (virthooks log, metrics, the fleet report)."""
    disk = tmp_path / "log"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], check=True)
    try:
        path = disk / "virthooks.jsonl"
        # Two pages taken by another file; the log fills its two pages but for 100 bytes.
        (disk / "other").write_bytes(b"x" * 8192)
        first = json.dumps({"pad": "y" * (8192 - 100 - 12)}) + "\n"
        path.write_text(first)
        assert len(first) == 8192 - 100
        record = {"event": "qemu g started begin", "result": "ok", "stdout": "z" * 300}
        for max_bytes in (0, 1 << 20):      # without rotation (no lock) and with it
            proc = run_python("""
                import sys
                from %s import append_line
                print(append_line(sys.argv[1], {"event": "qemu g started begin", "result": "ok", "stdout": "z" * 300},
                                  int(sys.argv[2]), 3))
            """ % RUNLOG, str(path), str(max_bytes))
            assert proc.stdout.strip() == "False", proc.stdout + proc.stderr
            assert path.read_text() == first
        # Room again: the next record is whole, and every line reads.
        (disk / "other").unlink()
        proc = run_python("""
            import sys
            from %s import append_line
            print(append_line(sys.argv[1], {"event": "qemu g started begin", "result": "ok", "stdout": "z" * 300}, 0, 3))
        """ % RUNLOG, str(path))
        assert proc.stdout.strip() == "True", proc.stdout + proc.stderr
        assert [json.loads(line) for line in path.read_text().splitlines()][1] == record
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
