# ---- notify.py: POST the event as JSON to a webhook, with a timeout and retries ----
# Credentials in the URL (user:password@) become a Basic Authorization header and, like the query
# string and the headers, never appear in a message or the log: only scheme://host[:port]/path does.
# Nothing is reserved, so there is nothing to undo and no state file.
import base64
import socket
import urllib.error
import urllib.request


def nt_redacted(url):
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += ":%d" % parts.port
    return "%s://%s%s" % (parts.scheme, host, parts.path or "/")


def nt_request(url, body, headers):
    parts = urllib.parse.urlsplit(url)
    clean = urllib.parse.urlunsplit((parts.scheme, parts.hostname + (":%d" % parts.port if parts.port else ""),
                                     parts.path, parts.query, ""))
    req = urllib.request.Request(clean, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("User-Agent", "virthooks")
    if parts.username is not None:
        cred = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    for key, value in headers.items():
        req.add_header(key, value)
    return req


def nt_post(hook):
    url = PARAMS["url"]  # noqa: F821
    event = {"host": socket.gethostname(), "driver": os.environ.get("LIBVIRT_HOOK_DRIVER", PARAMS.get("driver", "qemu")),  # noqa: F821
             "object": hook.object, "operation": hook.operation, "suboperation": hook.suboperation,
             "extra": hook.extra, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    body = json.dumps(event, sort_keys=True).encode()
    timeout, retries = float(PARAMS.get("timeout", 5)), int(PARAMS.get("retries", 2))  # noqa: F821
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(2 ** (attempt - 1), 5))
        try:
            with urllib.request.urlopen(nt_request(url, body, PARAMS.get("headers") or {}), timeout=timeout) as resp:  # noqa: F821
                log("notify: %s %s %s -> %s (HTTP %d)" % (hook.object, hook.operation, hook.suboperation,
                                                         nt_redacted(url), resp.status))
                return
        except urllib.error.HTTPError as exc:
            last = "HTTP %d" % exc.code
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            last = type(reason).__name__ if isinstance(reason, Exception) and not str(reason) else str(reason)
    raise Fail("POST to %s failed after %d attempt(s): %s" % (nt_redacted(url), retries + 1, last))


STEPS = {"post": nt_post}
