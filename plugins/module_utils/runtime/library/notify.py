# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""notify: POST the event as JSON to a webhook, with a timeout and retries.

Credentials in the URL (user:password@) become a Basic Authorization header and, like the query
string and the headers, never appear in a message or the log: only scheme://host[:port]/path does.
Redirects: only 307/308 keep the POST and its body, so 301/302/303 are failures (following them would
send a GET without the event); a 307/308 to another origin (scheme, host or port) is a failure too
when the request carries credentials or headers, which must not go there.
Nothing is reserved, so there is nothing to undo and no state file.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from .common import Fail, log


def host_of(parts) -> str:
    """host[:port] as the URL gives it ([IPv6] literals keep their brackets), without user:password@."""
    return parts.netloc.rpartition("@")[2]


def redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return "%s://%s%s" % (parts.scheme, host_of(parts), parts.path or "/")


def origin(url: str) -> tuple:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class Redirect(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only where the event and the credentials stay where they belong."""

    def __init__(self, credentials: bool):
        super().__init__()
        self.credentials = credentials

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if code not in (307, 308):
            raise Fail("HTTP %d redirect from %s to %s: following it would turn the POST into a GET without "
                       "the event (not followed)" % (code, redacted(req.full_url), redacted(newurl)))
        if self.credentials and origin(newurl) != origin(req.full_url):
            raise Fail("HTTP %d redirect from %s to another origin, %s: the credentials are not sent there "
                       "(not followed)" % (code, redacted(req.full_url), redacted(newurl)))
        return urllib.request.Request(newurl, data=req.data, headers=dict(req.header_items()), method="POST")

    http_error_308 = urllib.request.HTTPRedirectHandler.http_error_302   # Python < 3.11 has no 308 handler


def request(url: str, body: bytes, headers: dict):
    parts = urllib.parse.urlsplit(url)
    clean = urllib.parse.urlunsplit((parts.scheme, host_of(parts), parts.path, parts.query, ""))
    req = urllib.request.Request(clean, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("User-Agent", "virthooks")
    if parts.username is not None:
        cred = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    for key, value in headers.items():
        req.add_header(key, value)
    return req


def event_of(hook) -> dict:
    return {"host": socket.gethostname(),
            "driver": os.environ.get("LIBVIRT_HOOK_DRIVER", hook.params.get("driver", "qemu")),
            "object": hook.object, "operation": hook.operation, "suboperation": hook.suboperation,
            "extra": hook.extra, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def post(hook) -> None:
    url = hook.params["url"]
    headers = hook.params.get("headers") or {}
    body = json.dumps(event_of(hook), sort_keys=True).encode()
    timeout, retries = float(hook.params.get("timeout", 5)), int(hook.params.get("retries", 2))
    opener = urllib.request.build_opener(Redirect(bool(headers) or "@" in urllib.parse.urlsplit(url).netloc))
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(2 ** (attempt - 1), 5))
        try:
            with opener.open(request(url, body, headers), timeout=timeout) as resp:
                log("notify: %s %s %s -> %s (HTTP %d)"
                    % (hook.object, hook.operation, hook.suboperation, redacted(resp.geturl()), resp.status))
                return
        except urllib.error.HTTPError as exc:
            last = "HTTP %d" % exc.code
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            last = type(reason).__name__ if isinstance(reason, Exception) and not str(reason) else str(reason)
    raise Fail("POST to %s failed after %d attempt(s): %s" % (redacted(url), retries + 1, last))


STEPS = {"post": post}
