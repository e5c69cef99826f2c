"""notify against a local HTTP server on 127.0.0.1 (the real libvirtd test sends real guest events to one too)."""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import domain


class Webhook:
    def __init__(self):
        self.requests, self.fail_first, self.delay = [], 0, 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                time.sleep(hook.delay)
                self.send_response(500 if len(hook.requests) <= hook.fail_first else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.server.shutdown()


def test_posts_the_event_as_json_with_basic_auth_from_the_url(blocks, webhook):
    params = {"url": "http://alice:s%%3Acret@127.0.0.1:%d/hooks?token=abc" % webhook.port, "headers": {"X-Team": "ops"}}
    ran = blocks.run("notify", "post", params, "vm1", domain("vm1"), op="started", env={"LIBVIRT_HOOK_DRIVER": "qemu"})
    assert ran.rc == 0, ran
    (req,) = webhook.requests
    assert req["path"] == "/hooks?token=abc" and req["headers"]["X-Team"] == "ops"
    assert base64.b64decode(req["headers"]["Authorization"].split()[1]) == b"alice:s:cret"
    body = req["body"]
    assert {k: body[k] for k in ("host", "driver", "object", "operation", "suboperation", "extra")} == {
        "host": socket.gethostname(), "driver": "qemu", "object": "vm1", "operation": "started",
        "suboperation": "begin", "extra": "-"}
    assert body["time"].endswith("Z")
    assert "alice" not in ran.stdout and "s%3Acret" not in ran.stdout and "token" not in ran.stdout
    assert "http://127.0.0.1:%d/hooks" % webhook.port in ran.stdout


def test_retries_until_the_server_answers(blocks, webhook):
    webhook.fail_first = 2
    ran = blocks.run("notify", "post", {"url": "http://127.0.0.1:%d/" % webhook.port, "retries": 2}, "vm1", "")
    assert ran.rc == 0, ran
    assert len(webhook.requests) == 3


def test_gives_up_with_one_line_that_never_shows_credentials(blocks):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                     # nothing listens there once closed
    ran = blocks.run("notify", "post", {"url": "http://bob:hunter2@127.0.0.1:%d/x?key=k3y" % port, "retries": 1},
                     "vm1", "")
    assert ran.rc == 1 and ran.stderr.count("\n") == 1
    assert ran.stderr.startswith("virthooks notify: vm1: POST to http://127.0.0.1:%d/x failed after 2 attempt(s): " % port)
    assert "refused" in ran.stderr.lower()
    for secret in ("bob", "hunter2", "k3y"):
        assert secret not in ran.stderr + ran.stdout


def test_a_slow_server_times_out(blocks, webhook):
    webhook.delay = 3
    t0 = time.monotonic()
    ran = blocks.run("notify", "post", {"url": "http://127.0.0.1:%d/" % webhook.port, "timeout": 1, "retries": 0}, "vm1", "")
    assert ran.rc == 1 and "timed out" in ran.stderr and time.monotonic() - t0 < 2.5
