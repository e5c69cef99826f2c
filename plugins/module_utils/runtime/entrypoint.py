# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files libvirt executes: ``hooks/<driver>`` entry points, and the CLI launcher.

An entry point is a few lines of POSIX sh. Most libvirt events match no rule, and those must
not pay for a Python start: the entry point carries a prefilter built from the rules at
deploy time, nested ``case`` statements on the operation, the sub-operation and the object.
It lets through a superset of the events the rules match, for any UTF-8 object name (the
dispatcher decides exactly, with rules.glob_match), plus any event for which a per-guest tree
path exists (a directory, or the helper's file form), and any event while a host drop-in rule
(hooks/virthooks/rules.d/*.json) exists. Everything else exits 0 at once. No name makes it slow: an object pattern
has at most one star that can backtrack (see sh_glob).
"""

import sys

from .events import (EVENTS, GUEST_DRIVERS, GUEST_KILLING_OPERATIONS, USER_FAILURE_EXIT, is_abortable,
                     kills_running_guest, operation_names)
from .layout import ENTRY_POINT_MARKER, LIB_CURRENT, LIB_DIR, OWN_DIR, RUNTIME_PACKAGE
from .rules import DROPIN_DIR, DROPIN_SUFFIX, operation_spellings

SAFE_PATTERN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-+,:@%=")
PYTHON_FLAGS = "-IS"   # isolated (no env, no user site), no site import: fast and predictable


def sh_quote(value: str) -> str:
    """Single-quote a string for POSIX sh."""
    return "'" + value.replace("'", "'\\''") + "'"


def sh_literal(text: str) -> str:
    """A sh ``case`` pattern that matches exactly this text."""
    return "".join(_sh_char(ch) for ch in text)


def _sh_char(ch: str) -> str:
    """One character of a sh pattern, matching itself."""
    if ch in SAFE_PATTERN_CHARS or not ch.isascii():
        return ch                   # bytes >= 0x80 are never special to sh
    if ch == "\n":
        return "'\n'"               # a backslash-newline would be a line continuation
    return "\\" + ch


# --- object globs --------------------------------------------------------------------------
#
# The dispatcher's globs (rules.glob_match) work on characters, a sh ``case`` pattern in
# the C locale (libvirt runs hooks with LC_ALL=C; dash is byte-oriented in any locale) on
# bytes, and a non-ASCII character is 2 to 4 bytes in UTF-8. So a pattern element that
# matches exactly one ASCII byte (a literal, a bracket expression of ASCII characters) keeps
# its meaning, while one that may match a non-ASCII character (``?``, ``[!...]``, a bracket
# expression with a non-ASCII member) becomes "its first byte, then anything": ``?*``,
# ``[!abc]*``. The first byte of a multi-byte character is >= 0xC2, never in an ASCII set,
# and in a UTF-8 locale the same element matches the whole character and ``*`` nothing.
#
# Matching time: sh backtracks, and with k stars a case pattern costs up to n**k steps for
# a name of n bytes (with operations ``*``, objects ``*-*-*-*-prod`` took 17 s in dash for a
# name of 600 dashes). So the pattern keeps at most one star, plus one at its very end (once
# reached, a trailing star matches, so it adds no backtracking): ``A*B*C*D`` is widened to
# ``A*D``, ``A*B*C*`` to ``A*B*`` (B the longest of the middle parts). Both still match every
# name the glob does, and cost O(n * pattern length) for any name. Exact names and patterns
# with one star (the usual ``db-*``, ``*-prod``) stay as they are, unless one of their
# elements is widened.

STAR = None


def _bracket(glob: str, start: int):
    """Parse the bracket expression at glob[start] exactly as rules._match_class reads it.

    Returns (index after it, negated, [(low, high), ...]), or None if it is unclosed
    (then the ``[`` is a literal).
    """
    i = start + 1
    negate = i < len(glob) and glob[i] == "!"
    if negate:
        i += 1
    first = i
    items = []
    while i < len(glob):
        c = glob[i]
        if c == "]" and i > first:
            return i + 1, negate, items
        if i + 2 < len(glob) and glob[i + 1] == "-" and glob[i + 2] != "]":
            items.append((c, glob[i + 2]))
            i += 3
            continue
        items.append((c, c))
        i += 1
    return None


CLASS_RUNS = ("0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _sh_bracket(chars, negate: bool) -> str:
    """A sh bracket expression for a set of ASCII characters, or '?' when some are awkward.

    Only letters, digits and ``_ . -`` are written out (ranges within one of 0-9, A-Z, a-z,
    ``-`` last), so that every sh reads it the same way in any locale.
    """
    if not chars or not all(c.isalnum() or c in "_.-" for c in chars):
        return "?"
    out = []
    for run in CLASS_RUNS:
        members = [c for c in run if c in chars]
        j = 0
        while j < len(members):
            k = j
            while k + 1 < len(members) and ord(members[k + 1]) == ord(members[k]) + 1:
                k += 1
            out.append(members[j] + "-" + members[k] if k - j >= 2 else "".join(members[j:k + 1]))
            j = k + 1
    out.extend(c for c in "_." if c in chars)
    if "-" in chars:
        out.append("-")
    return "[" + ("!" if negate else "") + "".join(out) + "]"


def _class_piece(negate: bool, items):
    """(sh pattern, one byte?) for a bracket expression; None if it can match nothing."""
    ascii_members = frozenset(chr(b) for b in range(128) if any(lo <= chr(b) <= hi for lo, hi in items))
    non_ascii = any(lo <= hi and hi > "\x7f" for lo, hi in items)
    if not negate:
        if non_ascii:
            return "?", False       # maybe a multi-byte character
        if not ascii_members:
            return None             # only reversed ranges: it matches no character
        return _sh_bracket(ascii_members, False), True
    if non_ascii:
        return "?", False           # a byte of a non-member could be a byte of a member
    return _sh_bracket(ascii_members, True), False    # no ASCII member, and any byte >= 0x80


def _glob_pieces(glob: str):
    """The glob as a list of sh pattern pieces and STARs, each element widened to bytes.

    None if the glob can match nothing.
    """
    pieces = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        bracket = _bracket(glob, i) if ch == "[" else None
        i += 1
        if ch == "*":
            pieces.append(STAR)
        elif ch == "?":
            pieces.extend(["?", STAR])
        elif bracket is not None:
            i, negate, items = bracket
            piece = _class_piece(negate, items)
            if piece is None:
                return None
            pattern, one_byte = piece
            pieces.extend([pattern] if one_byte else [pattern, STAR])
        else:
            pieces.append(_sh_char(ch))
    return pieces


def sh_glob(glob: str):
    """A sh ``case`` pattern matching (at least) every name the rule glob matches, quickly.

    Literal characters are quoted; ``*`` and ASCII bracket expressions keep their meaning;
    elements that may match a multi-byte character are widened (``?`` to ``?*``); a pattern
    with several stars is widened to one star (plus a trailing one). Returns None for a glob
    that matches nothing (e.g. ``[z-a]``).
    """
    pieces = _glob_pieces(glob)
    if pieces is None:
        return None
    parts = [[]]                    # the fixed parts between stars: P0 * P1 * ... * Pk
    for piece in pieces:
        if piece is STAR:
            parts.append([])
        else:
            parts[-1].append(piece)
    if len(parts) == 1:
        return "".join(parts[0])
    parts = [parts[0]] + [p for p in parts[1:-1] if p] + [parts[-1]]     # ** is *
    if len(parts) > 2:
        if parts[-1]:
            parts = [parts[0], parts[-1]]                      # A*B*C -> A*C
        else:
            parts = [parts[0], max(parts[1:-1], key=len), []]  # A*B*C* -> A*B* (or A*C*)
    return "*".join("".join(p) for p in parts)


# --- the prefilter ---------------------------------------------------------------------------

def prefilter_specs(driver: str, rules) -> list:
    """What the prefilter lets through: [(operations, sub-operations, object patterns)].

    Operations (every spelling libvirt may pass) and sub-operations are literal strings, as
    the dispatcher compares them; object patterns are sh patterns (sh_glob). None is 'any'.
    """
    specs = []
    for rule in rules:
        if rule.get("driver") != driver or not rule.get("enabled", True):
            continue
        ops = rule.get("operations", ["*"])
        ops = None if "*" in ops else tuple(operation_spellings(driver, ops))
        subs = rule.get("suboperations", ["*"])
        subs = None if "*" in subs else tuple(subs)
        objects = rule.get("objects", ["*"])
        if "*" in objects:
            objects = None
        else:
            objects = tuple(p for p in (sh_glob(o) for o in objects) if p is not None)
            if not objects:
                continue            # no object can match
            if "*" in objects:
                objects = None
        spec = (ops, subs, objects)
        if spec not in specs:
            specs.append(spec)
    return specs


CASE_FIELDS = ('"$2"', '"$3"', '"$1"')      # operation, sub-operation, object


def prefilter_case(specs, fallback: str, level: int) -> list:
    """The sh lines that run ``fallback`` for the events no spec matches ([]: none), from field ``level`` on
    (prefilter_lines builds the outermost level, the operation, and calls this for the ones inside).

    One ``case`` per field, nested: operation and sub-operation as literal strings (first
    match wins, so each literal's branch holds every spec that accepts it and ``*)`` those
    that accept anything), then the object against the union of the remaining object
    patterns. Matching each field on its own keeps the stars of one field from multiplying
    the backtracking in another (and a '/' in a name from posing as a separator): the
    operation and sub-operation cases compare strings, the object case costs
    O(length of the name) per pattern (sh_glob).
    """
    if not specs:
        return [fallback]
    if level == len(CASE_FIELDS) - 1:
        if any(objects is None for _ops, _subs, objects in specs):
            return []
        patterns = _union(objects for _ops, _subs, objects in specs)
        return _case(CASE_FIELDS[level], [(patterns, [])], [fallback])
    branches, default = _branches(specs, fallback, level)
    if not branches:
        return default
    return _case(CASE_FIELDS[level], branches, default)


def prefilter_lines(specs, fallback: str) -> list:
    """prefilter_case with its outer case, on the operation, split into one ``case`` statement per
    operation branch and a last one for the other operations (which lists the literals before it as
    doing nothing). The same events pass; but sh parses a whole compound command before it runs any of
    it, so an event now parses the branches up to its own operation's, not the names of every other
    operation (the whole prefilter was most of what an event no rule matches cost dash)."""
    if not specs:
        return [fallback]
    branches, default = _branches(specs, fallback, 0)
    if not branches:
        return default
    lines = []
    for patterns, body in branches:
        if body:
            lines.extend(_case(CASE_FIELDS[0], [(patterns, body)], []))
    if default:
        lines.extend(_case(CASE_FIELDS[0], [([p for patterns, _body in branches for p in patterns], [])], default))
    return lines


def _branches(specs, fallback: str, level: int) -> tuple:
    """([(patterns, lines)], default lines) of one level's case: literals with the same lines merged,
    and those whose lines are the default's left to ``*)``."""
    literals = _union(spec[level] or () for spec in specs)
    default = prefilter_case([s for s in specs if s[level] is None], fallback, level + 1)
    branches = []
    for value in literals:
        lines = prefilter_case([s for s in specs if s[level] is None or value in s[level]], fallback, level + 1)
        if lines == default:
            continue                # '*)' does the same
        for patterns, other in branches:
            if other == lines:
                patterns.append(sh_literal(value))
                break
        else:
            branches.append(([sh_literal(value)], lines))
    return branches, default


def _union(lists) -> list:
    out = []
    for values in lists:
        for value in values:
            if value not in out:
                out.append(value)
    return out


def _case(subject: str, branches, default) -> list:
    """The lines of a case statement; branches: [(patterns, body lines)], default: '*)' body."""
    lines = ["case %s in" % subject]
    if default:
        branches = list(branches) + [(["*"], default)]
    for patterns, body in branches:
        head = "(%s)" % "|".join(patterns)      # '(': a pattern 'esac' is not the end
        if not body:
            lines.append(head + " ;;")
        elif len(body) == 1:
            lines.append("%s %s ;;" % (head, body[0]))
        else:
            lines.append(head)
            lines.extend("  " + line for line in body[:-1])
            lines.append("  %s ;;" % body[-1])
    lines.append("esac")
    return lines


# The runtime's own files are checked before Python imports any of them, by code in the entry point
# itself (it cannot come from lib/, which it checks), as trust.TrustCheck checks a script: the
# package directory's real path (chdir + getcwd: every symlink on the way resolved by the kernel)
# is then imported from, and every directory of it from / must be root's and not writable by group
# or others (a sticky one such as /tmp excepted on the way, never the package or its __pycache__),
# and so must every entry of the package and of its __pycache__ that a dispatcher call can import
# (DISPATCH_MODULES: a stray .so, package or .pyc of such a module too), regular files only. A
# missing package is left to the import to report.
#
# It is compiled on every call that gets past the prefilter, and compiling is most of what it costs
# (a cold compile of 1.6 KB was ~0.4 ms of a 9 ms call): so the code that runs on every call is
# only the walk and the listing, one lstat per path; what to say about a path that fails (FAIL) is a
# string, compiled only then. trust.TrustCheck.tree_problems is the same check of the whole package,
# for `virthooks validate`.
DISPATCH_MODULES = ("__init__", "__pycache__", "configcache", "current", "dispatch", "events", "fileops", "generations",
                    "hostos", "layout", "minijson", "proctree", "ruleindex", "rules", "runlog", "syntax", "trust",
                    "xmlcond")
# The operator CLI (root runs it too) checks the same way what it can import before it imports it; its
# subcommands' folder, commands/, is checked by cli.main before it imports them (as library/ by its launcher).
CLI_MODULES = ("__init__", "__pycache__", "cli", "configcache", "entrypoint", "events", "fileops", "generations",
               "hostos", "importers", "layout", "logmetrics", "logread", "minijson", "rollback", "ruleindex",
               "rules", "runlog", "syntax", "trust", "xmlcond")
LIB_CHECK = r"""import sys,posix as o
p=HOOKS+LIB;r=p+'/PKG';u=0,o.geteuid();L=o.lstat;b=c=''
try:
 o.chdir(r);r=o.getcwd();o.chdir('/');c=r+'/__pycache__';q=''
 for x in r.split('/'):
  q+=x and'/'+x;s=L(q or'/')
  if s.st_uid not in u or s.st_mode>>12!=4 or s.st_mode&18 and(q==r or not s.st_mode&512):b=q or'/';break
 else:
  n=o.listdir(r)
  for d,l in(r,n),(c,o.listdir(c)if'__pycache__'in n else()):
   for x in l:
    if x.partition('.')[0]in MODS:
     q=d+'/'+x;s=L(q)
     if s.st_uid not in u or s.st_mode&61458!=(16384 if q==c else 32768):b=q;break
   if b:break
except FileNotFoundError:pass
except OSError as x:b=x
"""
# Why the runtime cannot be trusted (e): b is the path that failed (s its lstat) or the OSError that
# stopped the check.
WHY = r"""if b.__class__ is str:
 d=b==c or not b.startswith(r+'/');w='directory '*d+b
 if s.st_mode>>12!=(4 if d else 8):e=b+(' is not a directory'if d else' is not a regular file')
 elif s.st_uid not in u:e='%s is owned by uid %d, not root'%(w,s.st_uid)
 else:e='%s is writable by group or others (mode %04o)'%(w,s.st_mode&4095)
else:e='it cannot be checked: %s'%b
"""
# The hook's way out: one stderr line and exit 1 where libvirt aborts the operation; syslog and
# exit 0 on the events it cannot abort or where a failure kills a running guest (SPARED).
FAIL = WHY + r"""m='virthooks: refusing to run the hooks: the runtime in %s cannot be trusted: %s'%(p,e)
import syslog;syslog.openlog('virthooks',syslog.LOG_PID,syslog.LOG_DAEMON);syslog.syslog(syslog.LOG_ERR,m)
sys.exit(0 if sys.argv[4:5] and sys.argv[4] in SPARED else m)"""


def lib_check(hooks: str, modules) -> str:
    """LIB_CHECK for the runtime under the hooks directory the expression hooks gives, checking the
    entries named like modules (and the directories on the way)."""
    return (LIB_CHECK.replace("MODS", "(%s)" % ",".join(repr(m) for m in modules))
            .replace("LIB", repr("/%s/%s/%s" % (OWN_DIR, LIB_DIR, LIB_CURRENT))).replace("PKG", RUNTIME_PACKAGE)
            .replace("HOOKS", hooks))     # last: a hooks directory may hold any text


# The modules every dispatcher call imports, each after those it imports at module level (a test checks the
# order). Importing a module through importlib costs ~0.4M instructions of its Python-level machinery (finders,
# specs, stats, the .pyc's validation), ten times over a call: so the bootstrap loads these itself, from the
# .pyc files Python wrote in __pycache__ (the check above just passed them), validated as importlib validates
# them (this Python's magic number, a timestamp .pyc of the .py's mtime and size), and executed in this order
# as modules of the package. The first one that is missing or stale ends the preload: the rest is imported as
# usual (which writes the .pyc for the next call).
PRELOADED = ("hostos", "events", "layout", "current", "minijson", "runlog", "trust", "rules", "configcache", "dispatch")
PRELOAD = r"""import marshal,PKG as P
g=sys.modules['_frozen_importlib'];t='.'+sys.implementation.cache_tag+'.pyc'
k=sys.modules['_frozen_importlib_external'].MAGIC_NUMBER+bytes(4)
for x in HOT:
 try:
  s=L(r+'/'+x+'.py');f=c+'/'+x+t;d=o.open(f,o.O_RDONLY|o.O_CLOEXEC)
  try:h=o.read(d,1<<24)
  finally:o.close(d)
  if h[:16]!=k+((int(s.st_mtime)&4294967295)|(s.st_size&4294967295)<<32).to_bytes(8,'little'):break
  y=marshal.loads(h[16:])
 except (OSError,ValueError,EOFError,TypeError):break
 m=type(sys)('PKG.'+x);m.__file__=r+'/'+x+'.py';m.__cached__=f;m.__package__='PKG'
 m.__spec__=g.ModuleSpec(m.__name__,None,origin=m.__file__);sys.modules[m.__name__]=m
 try:exec(y,m.__dict__)
 except BaseException:del sys.modules[m.__name__];raise
 setattr(P,x,m)
"""

# After the check: refuse a runtime root may not import, else import it from its real path and dispatch.
BOOTSTRAP = (lib_check("sys.argv[1]", DISPATCH_MODULES) + "if b:exec(FAIL)\nsys.path[:0]=[r.rpartition('/')[0]]\ntry:\n"
             + "".join(" " + line + "\n" for line in PRELOAD.replace("HOT", repr(PRELOADED)).splitlines())
             + r""" from PKG.dispatch import main
except Exception as e:sys.exit('virthooks: cannot load the runtime from %s: %s: %s'%(sys.path[0],type(e).__name__,e))
main()""").replace("PKG", RUNTIME_PACKAGE)


def spared_operations(driver: str) -> tuple:
    """The operations (every spelling) whose hook failure libvirt does not act on, or where it would
    kill a running guest: an error of ours exits 0 there."""
    names = []
    for operation in sorted(EVENTS.get(driver, {})):
        if not is_abortable(driver, operation) or kills_running_guest(driver, operation):
            names.extend(operation_names(driver, operation))
    return tuple(names)


# The bootstrap (~1.9 KB of source) is not on the command line: Python decodes and copies its argv
# several times at start-up, ~0.2 us a character, so a 10 KB -c program (the bootstrap with its
# bytecode as a bytes literal) cost a quarter of a millisecond before any of it ran. The entry point
# runs a short LOADER instead, which reads the bootstrap from the entry point itself: three lines after
# its last command (sh never gets there), in hex (bytes.fromhex: no escapes to parse, no import):
# the bytecode version (magic number) and bytecode of the very Python that runs it (compiled at
# deploy time, marshal format 2: no back-references, the same bytes on every render), and the
# source, run when that Python has another magic (an upgrade since the deploy) or none could be
# compiled. The entry point is what libvirt runs as root: reading it trusts nothing more.
BOOT_MARK = "\n#:"
BOOT_COMMENT = ("# The dispatcher's bootstrap, read from this file by the Python above (sh stops before): its\n"
                "# bytecode version and bytecode, compiled by that Python at deploy time, and its source, in hex.")
LOADER = ("import sys,marshal\n"
          "try:\n f=open(sys.argv[1]+'/'+sys.argv[2],'rb');m,c,s=f.read().rsplit(%r,3)[1:];f.close()\n"
          "except Exception as e:sys.exit('virthooks: cannot read the bootstrap from %%s/%%s: %%s'%%(*sys.argv[1:3],e))\n"
          "try:c=marshal.loads(bytes.fromhex(c.decode()))if bytes.fromhex(m.decode())=="
          "sys.modules['_frozen_importlib_external'].MAGIC_NUMBER else''\n"
          "except Exception:c=''\n"
          "exec(c or bytes.fromhex(s.decode()).decode())") % BOOT_MARK.encode()
COMPILER = ("import sys,marshal;c=compile(sys.stdin.read(),'<virthooks>','exec');"
            "sys.stdout.buffer.write(b'VH'+sys.modules['_frozen_importlib_external'].MAGIC_NUMBER+marshal.dumps(c,2))")
_COMPILED = {}


def compiled(source: str, python: str):
    """(magic number, marshalled code) of source compiled by the given Python, or None if it cannot
    be run (or is not a Python that answers as expected). Remembered for the process.

    When that Python is the very interpreter running this code (the same file once every symlink is
    resolved: the module's Python is usually the hooks' Python), it is compiled here, as COMPILER would
    compile it there (no inherited flags, no optimization, marshal format 2, which has no references
    between objects, so the bytes depend on the code alone); otherwise that Python is run to compile it."""
    key = (python, source)
    if key not in _COMPILED:
        _COMPILED[key] = _compiled_here(source) if _is_this_interpreter(python) else _compiled_by(source, python)
    return _COMPILED[key]


def _is_this_interpreter(python: str) -> bool:
    import os
    here = sys.executable
    return bool(here) and os.path.realpath(here) == os.path.realpath(python) and sys.flags.optimize == 0


def _compiled_here(source: str) -> tuple:
    import marshal
    from importlib.util import MAGIC_NUMBER
    code = compile(source, "<virthooks>", "exec", dont_inherit=True, optimize=0)
    return MAGIC_NUMBER, marshal.dumps(code, 2)


def _compiled_by(source: str, python: str):
    import subprocess
    try:
        proc = subprocess.run([python, PYTHON_FLAGS, "-c", COMPILER], input=source.encode(), capture_output=True,
                              timeout=60, check=False)
        out = proc.stdout if proc.returncode == 0 else b""
    except (OSError, subprocess.SubprocessError):
        out = b""
    # CPython's magic numbers end in CR LF; anything else did not come from COMPILER.
    return (out[2:6], out[6:]) if out[:2] == b"VH" and out[4:6] == b"\r\n" and len(out) > 6 else None


# The three lines at the end of an entry point (BOOT_MARK, then hex): version, bytecode, source. One
# pattern for the two views of them below.
BOOT_LINES = (BOOT_MARK + "([0-9a-f]*)") * 3 + "\n?\\Z"


def boot_lines(source: str, code) -> list:
    """The entry point's last lines: the bootstrap for LOADER (code: compiled(), or None)."""
    magic, blob = code or (b"", b"")
    mark = BOOT_MARK.lstrip("\n")
    return [BOOT_COMMENT, mark + magic.hex(), mark + blob.hex(), mark + source.encode().hex()]


def readable(text: str) -> str:
    """An entry point as people read it (a diff): the bootstrap's bytecode shown as its size and digest,
    its source as text."""
    import hashlib
    import re

    def summary(match):
        blob = bytes.fromhex(match.group(2))
        source = bytes.fromhex(match.group(3)).decode("utf-8", "replace")
        return "\n#: bytecode version %s\n#: bytecode of the source below: %d bytes, sha256 %s\n%s\n" % (
            match.group(1) or "none", len(blob), hashlib.sha256(blob).hexdigest()[:16],
            "\n".join("#| " + line for line in source.splitlines()))
    return re.sub(BOOT_LINES, summary, text)


def comparable(data: bytes) -> bytes:
    """An entry point with its compiled bootstrap (and the bytecode version it is for) taken out: what peers
    compare (drift), as the bytecode differs between Python versions for the same source that follows it."""
    import re
    return re.sub(BOOT_LINES.encode(), lambda m: b"\n#:<compiled>\n#:" + m.group(3) + b"\n", data)


def bootstrap_source(driver: str) -> str:
    """The dispatcher's bootstrap for one driver's entry point: check the runtime, import it, dispatch."""
    return BOOTSTRAP.replace("FAIL", repr(FAIL.replace("SPARED", repr(spared_operations(driver)))))


def bootstrap(driver: str, python: str = "") -> tuple:
    """(source, compiled by python when given, else or if it cannot, None) of a driver's bootstrap."""
    source = bootstrap_source(driver)
    return source, (compiled(source, python) if python else None)


def dispatcher_argv(hooks_dir: str, python: str, driver: str) -> list:
    """The dispatcher's command line, self-contained (the bootstrap's source as its -c program, for
    `virthooks simulate`; libvirt's four arguments follow); the installed runtime is found under
    hooks_dir and checked before it is imported, and one that cannot be trusted or imported is one
    line on stderr, no traceback."""
    return [python, PYTHON_FLAGS, "-c", bootstrap_source(driver), hooks_dir, driver]


def dispatcher_command(hooks_dir: str, python: str, driver: str) -> str:
    """The sh line of an entry point that execs the dispatcher (LOADER reads the bootstrap from the
    entry point's last lines, boot_lines)."""
    argv = [python, PYTHON_FLAGS, "-c", LOADER, hooks_dir, driver]
    return "exec %s \"$@\"" % " ".join(sh_quote(a) for a in argv)


def render_entry_point(driver: str, hooks_dir: str, python: str, rules, tree: bool = True) -> str:
    """The text of hooks/<driver> (the same for the installer and ``virthooks rollback``)."""
    from . import VERSION
    lines = [
        "#!/bin/sh",
        ENTRY_POINT_MARKER,
        "# libvirt runs this for every %s hook event (argv: object operation sub-operation extra)." % driver,
        "# Events that no virthooks rule can match end here without starting Python; the others",
        "# go to the virthooks dispatcher (virthooks.libvirt %s), which reads the rules of the current"
        % VERSION,
        "# generation, %s/%s/current/config.json." % (hooks_dir, OWN_DIR),
    ]
    # Host drop-ins (rules.d/*.json, added without a deploy) let every event through while there is
    # one: a glob, so a host without rules.d/ pays one failed opendir.
    dropins = "for f in %s*%s; do [ -e \"$f\" ] || exit 0; break; done" % (
        sh_quote("%s/%s/%s/" % (hooks_dir, OWN_DIR, DROPIN_DIR)), DROPIN_SUFFIX)
    if tree and (driver in GUEST_DRIVERS or driver == "network"):
        fallback = "[ -e %s\"$1/$2/$3\" ] || %s" % (sh_quote("%s/%s.d/" % (hooks_dir, driver)), dropins)
    else:
        fallback = dropins
    lines.extend(prefilter_lines(prefilter_specs(driver, rules), fallback))
    lines.extend(launch_lines(hooks_dir, python, driver))
    return "\n".join(lines) + "\n"


def launch_lines(hooks_dir: str, python: str, driver: str) -> list:
    """The lines that hand the event to the dispatcher, and the bootstrap it reads from them.

    Where a failed hook makes libvirt kill a running guest (reconnect, attach), the
    dispatcher is waited for and only its USER_FAILURE_EXIT fails the hook: Python missing or
    crashing before our code runs is never a reason to kill a guest. Elsewhere it is exec'd.
    """
    command = dispatcher_command(hooks_dir, python, driver)
    lines = []
    guarded = [op for op in GUEST_KILLING_OPERATIONS if kills_running_guest(driver, op)]
    if guarded:
        # In the background with libvirt's stdin given explicitly, so that a stop signal to this
        # shell reaches the dispatcher, which stops its scripts.
        lines += _case('"$2"', [(list(guarded), [
            "trap 'kill -s TERM $! 2>/dev/null' TERM INT HUP",
            "exec 3<&0",            # sh applies </dev/null to '&' before any explicit redirection
            command[len("exec "):] + " <&3 3<&- &",
            "while :; do wait $!; rc=$?; kill -0 $! 2>/dev/null || break; done",
            "[ $rc -ne %d ] || exit 1" % USER_FAILURE_EXIT,
            "exit 0"])], [])
    lines.append("[ -x %s ] || { echo %s >&2; exit 1; }" % (sh_quote(python), sh_quote(
        "virthooks: %s is missing or not executable: hooks/%s cannot run its scripts" % (python, driver))))
    lines.append(command)
    lines.append("exit 1")
    return lines + boot_lines(*bootstrap(driver, python))


def render_cli(hooks_dir: str, python: str) -> str:
    """The text of hooks/virthooks/virthooks, the operator CLI launcher: the runtime is checked as the
    entry points check it (the CLI's modules) before it is imported, the working directory kept."""
    code = ("import posix;h=posix.open('.',0)\n" + lib_check(repr(hooks_dir), CLI_MODULES)
            + "posix.fchdir(h);posix.close(h)\n"
            + "if b:exec(%r);sys.exit('virthooks: refusing to run: the runtime in %%s cannot be trusted: %%s'%%(p,e))\n"
            % WHY
            + "sys.path[:0]=[r.rpartition('/')[0]]\nfrom %s.cli import main\nmain(%r)" % (RUNTIME_PACKAGE, hooks_dir))
    return "\n".join([
        "#!/bin/sh",
        "# virthooks operator CLI (managed by Ansible, virthooks.libvirt): list, simulate, validate, log.",
        "exec %s -I -c %s \"$@\"" % (sh_quote(python), sh_quote(code)),
    ]) + "\n"
