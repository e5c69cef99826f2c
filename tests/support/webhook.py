"""A webhook receiver in the test process, on a local address: what it was sent, in order (the library's
notify block and the secrets tests post to it). tests/support/libvirt_objects.start_webhook is the same
kind of receiver as a process of its own, for a guest network namespace."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Webhook:
    """requests: [{method, path, headers, body}]; fail_first answers 500 that many times; delay
    slows each answer; redirects maps a path to (HTTP status, Location)."""

    def __init__(self, address=("127.0.0.1", 0), family=socket.AF_INET):
        self.requests, self.fail_first, self.delay = [], 0, 0.0
        self.redirects = {}                     # path -> (HTTP status, Location)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers),
                                      "body": json.loads(body)})
                time.sleep(hook.delay)
                if self.path in hook.redirects:
                    code, location = hook.redirects[self.path]
                    self.send_response(code)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                else:
                    self.send_response(500 if len(hook.requests) <= hook.fail_first else 200)
                self.end_headers()

            def do_GET(self):
                hook.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers), "body": None})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            address_family = family

        self.server = Server(address, Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.server.shutdown()
