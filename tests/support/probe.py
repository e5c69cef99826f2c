"""A probe put before a dispatcher call's ``-c`` program, to see the call's state at its very end.

A call leaves through ``posix._exit`` (``dispatch.end``: no interpreter teardown, so no ``atexit``
either); the probe wraps that function before the runtime's ``hostos`` takes it, and writes one line,
``TAG value``, to stderr just before the process ends.
"""


def at_end(tag: str, expression: str) -> str:
    """Python source (no ``os`` import, like the call itself) that writes ``tag`` and the value of
    ``expression``, evaluated when the call ends, as one line on stderr."""
    return ("import posix,sys\n_end=posix._exit\n"
            "def _probe(code):\n sys.stderr.write(%r+' '+(%s)+'\\n');sys.stderr.flush();_end(code)\n"
            "posix._exit=_probe\n" % (tag, expression))
