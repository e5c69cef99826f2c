"""notify against a local HTTP server on 127.0.0.1 (the real libvirtd test sends real guest events to one too)."""
from __future__ import annotations

import base64
import socket
import time

import pytest


from tests.support.webhook import Webhook

from .conftest import domain


@pytest.fixture
def other_origin():
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


@pytest.mark.parametrize("code", [301, 302, 303])
def test_a_redirect_that_would_turn_the_post_into_a_get_is_a_failure(blocks, webhook, code):
    webhook.redirects["/x"] = (code, "/y")
    ran = blocks.run("notify", "post", {"url": "http://127.0.0.1:%d/x" % webhook.port, "retries": 2}, "vm1", "")
    assert ran.rc == 1 and ran.stderr.count("\n") == 1, ran
    assert "HTTP %d redirect from http://127.0.0.1:%d/x to http://127.0.0.1:%d/y" % (code, webhook.port, webhook.port) \
        in ran.stderr and "turn the POST into a GET" in ran.stderr
    assert [r["method"] for r in webhook.requests] == ["POST"]      # no GET, no retry


@pytest.mark.parametrize("code", [307, 308])
def test_a_same_origin_307_or_308_is_followed_with_the_body_and_credentials(blocks, webhook, code):
    webhook.redirects["/x"] = (code, "/y")
    url = "http://bot:pw@127.0.0.1:%d/x" % webhook.port
    ran = blocks.run("notify", "post", {"url": url, "headers": {"X-Token": "t"}}, "vm1", "", op="started")
    assert ran.rc == 0, ran
    first, second = webhook.requests
    assert (second["method"], second["path"]) == ("POST", "/y")
    assert second["body"]["operation"] == "started" and second["headers"]["X-Token"] == "t"
    assert second["headers"]["Authorization"] == first["headers"]["Authorization"]
    assert "http://127.0.0.1:%d/y (HTTP 200)" % webhook.port in ran.stdout and "pw" not in ran.stdout


@pytest.mark.parametrize("code", [302, 307, 308])
@pytest.mark.parametrize("secret", [{"url_auth": True}, {"headers": {"Authorization": "Bearer b34r3r"}}])
def test_credentials_never_follow_a_redirect_to_another_origin(blocks, webhook, other_origin, code, secret):
    webhook.redirects["/x"] = (code, "http://127.0.0.1:%d/stolen" % other_origin.port)
    url = "http://%s127.0.0.1:%d/x" % ("bot:pw@" if secret.get("url_auth") else "", webhook.port)
    ran = blocks.run("notify", "post", {"url": url, "headers": secret.get("headers", {})}, "vm1", "")
    assert ran.rc == 1 and ran.stderr.count("\n") == 1, ran
    assert other_origin.requests == []
    assert "redirect from http://127.0.0.1:%d/x to" % webhook.port in ran.stderr
    assert "pw" not in ran.stderr + ran.stdout and "b34r3r" not in ran.stderr + ran.stdout


@pytest.mark.root     # listens on port 80
def test_an_ipv6_literal_without_a_port_connects_to_that_address(blocks):
    try:
        server = Webhook(("::1", 80), socket.AF_INET6)
    except OSError as exc:
        pytest.skip("cannot listen on [::1]:80 here: %s" % exc)
    try:
        ran = blocks.run("notify", "post", {"url": "http://u:pw@[::1]/x", "retries": 0}, "vm1", "")
        assert ran.rc == 0, ran
        assert [r["path"] for r in server.requests] == ["/x"]
        assert "-> http://[::1]/x (HTTP 200)" in ran.stdout
    finally:
        server.server.shutdown()
