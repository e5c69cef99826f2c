# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules of config.json: format, validation, matching, and the per-guest tree.

One implementation serves the Ansible modules (validation before anything is written), the
operator CLI and the dispatcher on every hook call, so this module imports nothing heavy
(no ``re``, no ``fnmatch``: globs are matched here).

config.json, format version 1::

    {
      "version": 1,
      "generator": "virthooks.libvirt 0.2.0",          # informational
      "log": {"file": "/var/log/libvirt/virthooks.jsonl", "max_bytes": 1048576,
              "backups": 3, "syslog": "failures", "output_bytes": 2048},
      "tree": {"enabled": true, "timeout": 30, "on_failure": "fail", "order": 50},
      "kill_grace": 2,
      "rules": [
        {"name": "pin-cpus", "driver": "qemu", "objects": ["win10", "db-*"],
         "operations": ["prepare"], "suboperations": ["begin"], "extras": ["*"],
         "daemons": ["*"], "xpath": null, "namespaces": {},
         "script": "scripts/pin-cpus", "timeout": 30, "on_failure": "fail",
         "order": 50, "enabled": true}
      ]
    }

Only ``version`` and, per rule, ``name`` and ``script`` are required; everything else has the
defaults shown. A relative ``script`` is relative to the virthooks directory
(``hooks/virthooks/``).

The installer adds an ``index`` (see ruleindex.py): which rules can apply to an event, by driver,
guest name and operation, so that the dispatcher validates and matches only those, and a call
costs the same with 500 rules as with one. It is only used while it belongs to the rules it was
built for (their count and a checksum of their content): a config without one, or with rules
edited by hand since, is read as before, every rule validated and matched.
"""

from .events import DRIVERS, EVENTS, GUEST_DRIVERS, canonical_operation, operation_names
from .layout import is_backup_name

CONFIG_VERSION = 1
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
NAME_MAX = 128
# "abortable": a failure fails the call only on an event libvirt aborts without killing a running
# guest (prepare/start/... begin); on reconnect/attach and on events libvirt cannot abort it is
# logged and ignored (the policy of adopted foreign hooks).
ON_FAILURE = ("fail", "ignore", "abortable")
SYSLOG_MODES = ("failures", "all", "none")
SUBOPERATIONS = ("begin", "end", "-")
TIMEOUT_MAX = 3600
PATH_COMPONENT_MAX = 255

RULE_DEFAULTS = {
    "driver": "qemu",
    "objects": ["*"],
    "operations": ["*"],
    "suboperations": ["*"],
    "extras": ["*"],
    "daemons": ["*"],
    "xpath": None,
    "namespaces": {},
    "timeout": 30,
    "on_failure": "fail",
    "order": 50,
    "enabled": True,
    "env": {},
}
LOG_DEFAULTS = {
    "file": "/var/log/libvirt/virthooks.jsonl",
    "max_bytes": 1048576,
    "backups": 3,
    "syslog": "failures",
    "output_bytes": 2048,
}
TREE_DEFAULTS = {"enabled": True, "timeout": 30, "on_failure": "fail", "order": 50}
TOP_KEYS = ("version", "generator", "log", "tree", "kill_grace", "rules", "index")
INDEX_MIN_BYTES = 16384     # a smaller config.json (some 60 rules) is read whole faster than through its index
RULE_KEYS = ("name", "script") + tuple(RULE_DEFAULTS)
ENV_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
ENV_VALUE_MAX = 32768
# Names a rule's env may not set: the runtime's own, and those that change how a program loads its
# code or reads its shell (a rule sets what the script reads, never what its interpreter runs).
ENV_RESERVED_PREFIXES = ("VIRTHOOKS_", "LIBVIRT_HOOK_", "LD_", "DYLD_")
ENV_RESERVED = frozenset((
    "PATH", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "CDPATH", "GLOBIGNORE",
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONINSPECT", "PERL5LIB", "PERLLIB",
    "PERL5OPT", "RUBYLIB", "RUBYOPT", "NODE_OPTIONS", "NODE_PATH", "GCONV_PATH", "GLIBC_TUNABLES",
    "HOSTALIASES", "LOCPATH", "NLSPATH", "RESOLV_HOST_CONF", "MALLOC_CHECK_", "TMPDIR"))
# ${VIRTHOOKS_FILES} and ${VIRTHOOKS_SECRETS} in an env value: the directories the dispatcher hands the
# script (a generation's path is not known when the value is written).
ENV_PLACEHOLDERS = ("VIRTHOOKS_FILES", "VIRTHOOKS_SECRETS")
# hooks/virthooks/rules.d/*.json: rules an admin adds on a host without Ansible (see load_dropins).
DROPIN_DIR = "rules.d"
DROPIN_SUFFIX = ".json"


class ConfigError(ValueError):
    """config.json (or a rule in it) is not valid; the message names what is wrong."""


# --- globs -------------------------------------------------------------------------------

def glob_match(pattern: str, text: str) -> bool:
    """Shell-style match of the whole text: ``*``, ``?``, ``[abc]``, ``[a-z]``, ``[!abc]``.

    Same semantics as fnmatch.fnmatchcase (and as POSIX sh ``case`` patterns), without re.
    """
    p = t = 0
    star_p = star_t = -1
    plen, tlen = len(pattern), len(text)
    while t < tlen:
        if p < plen:
            c = pattern[p]
            if c == "*":
                star_p, star_t = p, t
                p += 1
                continue
            if c == "?":
                p += 1
                t += 1
                continue
            if c == "[":
                end, matched = _match_class(pattern, p, text[t])
                if end is not None:
                    if matched:
                        p = end
                        t += 1
                        continue
                elif text[t] == "[":   # an unclosed [ is a literal
                    p += 1
                    t += 1
                    continue
            elif c == text[t]:
                p += 1
                t += 1
                continue
        if star_p < 0:
            return False
        star_t += 1
        p, t = star_p + 1, star_t
    while p < plen and pattern[p] == "*":
        p += 1
    return p == plen


def _match_class(pattern: str, start: int, ch: str):
    """Match ch against the bracket expression at pattern[start]; (index after it, matched)."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] == "!"
    if negate:
        i += 1
    first = i
    matched = False
    while i < len(pattern):
        c = pattern[i]
        if c == "]" and i > first:
            return i + 1, matched != negate
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            if c <= ch <= pattern[i + 2]:
                matched = True
            i += 3
            continue
        if c == ch:
            matched = True
        i += 1
    return None, False


def any_glob(patterns, text: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or glob_match(pattern, text):
            return True
    return False


# --- validation ----------------------------------------------------------------------------

def validate_name(name) -> str:
    """Script/rule names: 1-128 chars of [A-Za-z0-9_.-], not '.' or '..'. Returns an error or ''."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if len(name) > NAME_MAX:
        return "is longer than %d characters" % NAME_MAX
    bad = sorted(set(name) - NAME_CHARS)
    if bad:
        return "may only contain letters, digits, '_', '.' and '-' (found %s)" % " ".join(repr(c) for c in bad)
    if name in (".", "..") or name.startswith("."):
        return "must not start with '.'"
    return ""


def _string_list(value, field, errors, where):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        errors.append("%s: '%s' must be a non-empty list of non-empty strings" % (where, field))
        return ["*"]
    return value


def _number(value, field, errors, where, low, high, integer=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer:
        ok = isinstance(value, int)
    if not ok or not (low <= value <= high):
        errors.append("%s: '%s' must be a%s number between %s and %s (got %r)"
                      % (where, field, "n integer" if integer else "", low, high, value))
        return False
    return True


def _validate_operations(rule, where, errors, strict):
    driver = rule["driver"]
    ops = _string_list(rule["operations"], "operations", errors, where)
    if "*" in ops:
        rule["operations"] = ["*"]
    else:
        known = EVENTS.get(driver, {})
        canon = []
        for op in ops:
            name = canonical_operation(driver, op)
            if strict and name not in known:
                errors.append("%s: unknown operation %r for driver %r (valid: %s, or '*')"
                              % (where, op, driver, ", ".join(known)))
            if name not in canon:
                canon.append(name)
        rule["operations"] = canon
    subops = _string_list(rule["suboperations"], "suboperations", errors, where)
    if "*" in subops:
        rule["suboperations"] = ["*"]
    else:
        for sub in subops:
            if strict and sub not in SUBOPERATIONS:
                errors.append("%s: unknown sub-operation %r (valid: %s, or '*')"
                              % (where, sub, ", ".join(SUBOPERATIONS)))
        rule["suboperations"] = subops


def normalize_rule(raw, index: int, errors: list, strict: bool = True, where: str = "") -> dict:
    """A rule with every default filled in; problems are appended to errors, each starting with
    ``where`` (by default the rule's name and index in config.json)."""
    label = raw.get("name") if isinstance(raw, dict) else None
    if not where:
        where = "rule %r (rules[%d])" % (label, index) if isinstance(label, str) else "rules[%d]" % index
    if not isinstance(raw, dict):
        errors.append("%s: must be an object, got %s" % (where, type(raw).__name__))
        return {}
    rule = dict(RULE_DEFAULTS)
    rule.update(raw)
    for key in raw:
        if key not in RULE_KEYS:
            errors.append("%s: unknown field %r (valid: %s)" % (where, key, ", ".join(RULE_KEYS)))
    problem = validate_name(raw.get("name"))
    if problem:
        errors.append("%s: 'name' %s" % (where, problem))
    if not isinstance(raw.get("script"), str) or not raw.get("script"):
        errors.append("%s: 'script' must be a path (relative to the virthooks directory, or absolute)" % where)
    if rule["driver"] not in DRIVERS:
        errors.append("%s: unknown driver %r (valid: %s)" % (where, rule["driver"], ", ".join(DRIVERS)))
        rule["driver"] = "qemu"
    for field in ("objects", "extras", "daemons"):
        rule[field] = _string_list(rule[field], field, errors, where)
    _validate_operations(rule, where, errors, strict)
    _number(rule["timeout"], "timeout", errors, where, 0.001, TIMEOUT_MAX)
    _number(rule["order"], "order", errors, where, -1000000, 1000000, integer=True)
    if rule["on_failure"] not in ON_FAILURE:
        errors.append("%s: 'on_failure' must be one of %s (got %r)" % (where, ", ".join(ON_FAILURE), rule["on_failure"]))
    if not isinstance(rule["enabled"], bool):
        errors.append("%s: 'enabled' must be true or false" % where)
    if rule["xpath"] is not None and (not isinstance(rule["xpath"], str) or not rule["xpath"].strip()):
        errors.append("%s: 'xpath' must be a non-empty XPath expression or null" % where)
    if rule["xpath"] is not None and rule["driver"] == "daemon":
        errors.append("%s: 'xpath' needs XML on stdin, which the daemon driver does not get" % where)
    ns = rule["namespaces"]
    if not isinstance(ns, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ns.items()):
        errors.append("%s: 'namespaces' must map prefixes to namespace URIs" % where)
    if rule["daemons"] != ["*"] and rule["driver"] != "daemon":
        errors.append("%s: 'daemons' only applies to the daemon driver" % where)
    errors.extend("%s: %s" % (where, problem) for problem in env_problems(rule["env"]))
    return rule


def env_name_problem(name) -> str:
    """Why a name cannot be set by a rule's env ('' if it can)."""
    if not isinstance(name, str) or not name or name[0].isdigit() or not set(name) <= ENV_NAME_CHARS:
        return "env name %r must be upper-case letters, digits and '_', not starting with a digit" % (name,)
    if name in ENV_RESERVED or name.startswith(ENV_RESERVED_PREFIXES):
        return ("env name %s is reserved (the runtime's own VIRTHOOKS_*/LIBVIRT_HOOK_* variables, and those that "
                "change what an interpreter loads: PATH, LD_*, PYTHONPATH, BASH_ENV...)" % name)
    return ""


def env_problems(env) -> list:
    """Why a rule's env cannot be used; never shows a value. A value is a string, or
    {"secret": true}: the script's secret of that name (its file in the secrets directory)."""
    if not isinstance(env, dict):
        return ["'env' must map NAME to a string value"]
    problems = []
    for name, value in env.items():
        problem = env_name_problem(name)
        if problem:
            problems.append(problem)
        elif value == {"secret": True}:
            continue
        elif not isinstance(value, str):
            problems.append("env %s must be a string (quote numbers) or {secret: true}" % name)
        elif "\0" in value or len(value.encode("utf-8", "surrogateescape")) > ENV_VALUE_MAX:
            problems.append("env %s must be at most %d bytes without NUL" % (name, ENV_VALUE_MAX))
    return problems


def _section(raw, defaults, name, errors):
    if raw is None:
        return dict(defaults)
    if not isinstance(raw, dict):
        errors.append("'%s' must be an object" % name)
        return dict(defaults)
    section = dict(defaults)
    section.update(raw)
    for key in raw:
        if key not in defaults:
            errors.append("%s: unknown field %r (valid: %s)" % (name, key, ", ".join(defaults)))
    return section


def normalize_config(raw, strict: bool = True, only=None) -> dict:
    """Validate a parsed config.json and fill in defaults; raise ConfigError naming every problem.

    strict=False (the dispatcher) accepts operation names this version does not know, so a
    config written for a newer libvirt still dispatches. ``only``, (position, rule) pairs that
    an index that belongs to the rules picked, validates and keeps just those rules.
    """
    if not isinstance(raw, dict):
        raise ConfigError("config must be a JSON object")
    errors = []
    if raw.get("version") != CONFIG_VERSION:
        raise ConfigError("unsupported config version %r (this runtime reads version %d)"
                          % (raw.get("version"), CONFIG_VERSION))
    for key in raw:
        if key not in TOP_KEYS:
            errors.append("unknown top-level field %r (valid: %s)" % (key, ", ".join(TOP_KEYS)))
    log = _section(raw.get("log"), LOG_DEFAULTS, "log", errors)
    if log["file"] is not None and (not isinstance(log["file"], str) or not log["file"].startswith("/")):
        errors.append("log: 'file' must be an absolute path or null")
    _number(log["max_bytes"], "max_bytes", errors, "log", 0, 1 << 40, integer=True)
    _number(log["backups"], "backups", errors, "log", 1, 100, integer=True)
    _number(log["output_bytes"], "output_bytes", errors, "log", 0, 1 << 20, integer=True)
    if log["syslog"] not in SYSLOG_MODES:
        errors.append("log: 'syslog' must be one of %s" % ", ".join(SYSLOG_MODES))
    tree = _section(raw.get("tree"), TREE_DEFAULTS, "tree", errors)
    _number(tree["timeout"], "timeout", errors, "tree", 0.001, TIMEOUT_MAX)
    if tree["on_failure"] not in ON_FAILURE:
        errors.append("tree: 'on_failure' must be one of %s" % ", ".join(ON_FAILURE))
    grace = raw.get("kill_grace", 2)
    _number(grace, "kill_grace", errors, "config", 0, 60)
    if raw.get("index") is not None and not isinstance(raw["index"], dict):
        errors.append("'index' must be an object (the installer writes it; remove it when editing rules by hand)")
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        errors.append("'rules' must be a list")
        rules_raw = []
    picked = list(enumerate(rules_raw)) if only is None else only
    rules = [normalize_rule(r, i, errors, strict) for i, r in picked]
    positions = [i for i, _r in picked]
    seen = {}
    for i, rule in zip(positions, rules):
        name = rule.get("name")
        if isinstance(name, str):
            if name in seen:
                errors.append("rule %r (rules[%d]): duplicate name, also rules[%d]" % (name, i, seen[name]))
            seen[name] = i
    if errors:
        raise ConfigError("; ".join(errors))
    return {"version": CONFIG_VERSION, "generator": raw.get("generator", ""), "log": log,
            "tree": tree, "kill_grace": grace, "rules": rules}


def load_config(path: str, strict: bool = False, event=None, data: bytes = None, cache: bytes = None) -> dict:
    """Read, parse and validate config.json; raise ConfigError (or OSError) with the path.

    With an event, (driver, object, operation), and an index that belongs to the rules, the
    config holds only the rules the index gives for that event (a superset of those that match
    it), and only those are parsed and validated; else (or for a small file) every rule is.
    data: the file's bytes, when the caller read them (checked, bounded) itself. cache: the
    generation's config.marshal (configcache), used instead of parsing while it belongs to data.
    """
    if cache is not None and data is not None and not strict:
        from .configcache import load
        config = load(cache, data, event)
        if config is not None:
            return config
    from .minijson import JSONError, loads
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    raw = only = None
    indexed = event is not None and len(data) >= INDEX_MIN_BYTES
    if indexed:
        from .ruleindex import read_indexed
        raw, only = read_indexed(data, event)
    if raw is None:
        try:
            raw = loads(data)
        except JSONError as exc:
            raise ConfigError("%s is not valid JSON: %s" % (path, exc))
        if indexed:
            from .ruleindex import candidates
            only = candidates(raw, *event)
            only = None if only is None else [(i, raw["rules"][i]) for i in only]
    try:
        return normalize_config(raw, strict, only)
    except ConfigError as exc:
        raise ConfigError("%s: %s" % (path, exc))


# --- the index (ruleindex.py: imported only where it is used) -------------------------------

def index_rules(rules: list, raw_rules: list) -> dict:
    """The ``index`` the installer writes into config.json (see ruleindex.build_index)."""
    from .ruleindex import build_index
    return build_index(rules, raw_rules)


# --- matching --------------------------------------------------------------------------------

def rule_matches(rule: dict, driver: str, obj: str, operation: str, suboperation: str,
                 extra: str, daemon) -> bool:
    """Whether a (normalized) rule applies to an event, XPath condition aside."""
    if not rule["enabled"] or rule["driver"] != driver:
        return False
    ops = rule["operations"]
    if ops != ["*"] and canonical_operation(driver, operation) not in ops:
        return False
    subs = rule["suboperations"]
    if subs != ["*"] and suboperation not in subs:
        return False
    if not any_glob(rule["objects"], obj) or not any_glob(rule["extras"], extra):
        return False
    if rule["daemons"] != ["*"]:
        if daemon is None or not any_glob(rule["daemons"], daemon):
            return False
    return True


def needs_daemon_name(config: dict, driver: str) -> bool:
    return driver == "daemon" and any(r["driver"] == "daemon" and r["daemons"] != ["*"] for r in config["rules"])


def unsafe_path_component(name: str) -> str:
    """Why a name from libvirt's argv can't be a directory name in the tree ('' if it can)."""
    if not name or name in (".", ".."):
        return "empty, '.' or '..'"
    if "/" in name or "\0" in name or "\n" in name:
        return "contains '/', NUL or a newline"
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if len(raw) > PATH_COMPONENT_MAX:
        return "is longer than %d bytes" % PATH_COMPONENT_MAX
    return ""


def tree_dir(hooks_dir: str, driver: str, obj: str, operation: str, suboperation: str):
    """(directory, problem): the per-guest tree directory for an event, or why there is none.

    The layout of the widely used qemu hook helper: hooks/<driver>.d/<object>/<op>/<sub-op>/.
    Names come from libvirt's argv; any that could leave the tree is refused.
    """
    if driver not in GUEST_DRIVERS and driver != "network":
        return None, ""
    for label, value in (("object name", obj), ("operation", operation), ("sub-operation", suboperation)):
        problem = unsafe_path_component(value)
        if problem:
            return None, "%s %r %s; per-guest tree skipped" % (label, value, problem)
    return "%s/%s.d/%s/%s/%s" % (hooks_dir, driver, obj, operation, suboperation), ""


def tree_scripts(directory: str) -> list:
    """Executable regular files of a tree directory, in byte order of their names; or, as the
    helper does, the tree path itself when it is a file (executable or not: the helper runs it,
    and the trust check then says why it cannot run)."""
    from . import hostos as os
    try:
        entries = os.listdir(directory)
    except NotADirectoryError:
        return [directory] if os.path.isfile(directory) else []
    except OSError:
        return []
    found = []
    for name in sorted(entries, key=lambda n: n.encode("utf-8", "surrogateescape")):
        if is_backup_name(name):
            continue
        path = directory + "/" + name
        try:
            if os.path.isfile(path) and os.access(path, os.X_OK):
                found.append(path)
        except (OSError, ValueError):
            continue
    return found


class Step(object):
    """One script to run for an event."""

    __slots__ = ("name", "path", "timeout", "on_failure", "order", "xpath", "namespaces", "source", "env")

    def __init__(self, name, path, timeout, on_failure, order, xpath=None, namespaces=None, source="rule",
                 env=None):
        self.name = name
        self.path = path
        self.timeout = timeout
        self.on_failure = on_failure
        self.order = order
        self.xpath = xpath
        self.namespaces = namespaces or {}
        self.source = source            # "rule", "rules.d" (a host drop-in) or "tree"
        self.env = env or None          # the rule's env: {NAME: str or {"secret": True}}


def script_path(own_dir: str, script: str) -> str:
    return script if script.startswith("/") else own_dir + "/" + script


def steps_for_event(config: dict, hooks_dir: str, own_dir: str, driver: str, obj: str, operation: str,
                    suboperation: str, extra: str, daemon=None) -> tuple:
    """(steps in run order, notes): what runs for an event, XPath conditions not yet evaluated."""
    steps = []
    notes = []
    for rule in config["rules"]:
        if rule_matches(rule, driver, obj, operation, suboperation, extra, daemon):
            steps.append(Step(rule["name"], script_path(own_dir, rule["script"]), rule["timeout"],
                              rule["on_failure"], rule["order"], rule["xpath"], rule["namespaces"],
                              DROPIN_DIR if "origin" in rule else "rule", rule["env"]))
    tree = config["tree"]
    if tree["enabled"]:
        directory, problem = tree_dir(hooks_dir, driver, obj, operation, suboperation)
        if problem:
            notes.append(problem)
        elif directory:
            base = len(hooks_dir) + 1
            for path in tree_scripts(directory):
                steps.append(Step(path[base:], path, tree["timeout"], tree["on_failure"], tree["order"],
                                  source="tree"))
    steps.sort(key=lambda s: (s.order, s.name))
    return steps, notes


def operation_spellings(driver: str, ops) -> list:
    """Every name libvirt may pass for these operations (old aliases included)."""
    out = []
    for op in ops:
        for name in operation_names(driver, op):
            if name not in out:
                out.append(name)
    return out


# --- host drop-ins: hooks/virthooks/rules.d/*.json -------------------------------------------
#
# An admin without Ansible adds rules on one host: each file holds one rule object of config.json
# (or a list of them). They are read on every call that gets past the entry point's prefilter
# (which lets every event through while rules.d/ holds a *.json file), trusted as config.json is
# (the whole path root's alone), validated as the deployed rules are, and merged after them. A
# bad one is skipped with a syslog line (a guest start never fails for it) and fails
# `virthooks validate`, naming the file. A deploy never touches rules.d/.


def dropin_dir(hooks_dir: str) -> str:
    from .layout import OWN_DIR
    return "%s/%s/%s" % (hooks_dir, OWN_DIR, DROPIN_DIR)


def dropin_script(hooks_dir: str, script) -> tuple:
    """(absolute path, problem) of a drop-in's script: relative to rules.d/, or an absolute path in a
    subdirectory of the hooks directory (not an entry point, nor directly in a <driver>.d/ that
    libvirt runs itself), with no '.' or '..' part."""
    if not isinstance(script, str) or not script:
        return "", "'script' must be a path, relative to rules.d/ or absolute under %s/" % hooks_dir
    parts = script.split("/")
    if script.startswith("/"):
        parts = parts[1:]
    if any(p in ("", ".", "..") for p in parts):
        return "", "'script' %r must not have empty, '.' or '..' parts" % script
    if not script.startswith("/"):
        return dropin_dir(hooks_dir) + "/" + script, ""
    prefix = hooks_dir.rstrip("/") + "/"
    inside = script[len(prefix):].split("/") if script.startswith(prefix) else []
    if len(inside) < 2 or (len(inside) == 2 and inside[0].endswith(".d")):
        return "", ("'script' %s must be in a subdirectory of %s (AppArmor lets libvirt run hooks only there; "
                    "not an entry point, nor directly in a <driver>.d/ that libvirt runs itself)" % (script, prefix))
    return script, ""


def load_dropins(hooks_dir: str, trust=None, strict: bool = False) -> tuple:
    """(rules, problems) of rules.d/*.json, in byte order of the file names (dotfiles and backups
    left out). Each rule is normalized, its script made absolute, and marked with its ``origin``
    (rules.d/<file>); each problem names the file and skips what it is about."""
    from . import hostos as os
    directory = dropin_dir(hooks_dir)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], ["%s cannot be listed: %s" % (directory, exc.strerror or exc)]
    if trust is None:
        from .trust import TrustCheck
        trust = TrustCheck()
    rules, problems, seen = [], [], {}
    for name in sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape")):
        if not name.endswith(DROPIN_SUFFIX) or is_backup_name(name):
            continue
        path = directory + "/" + name
        found, problem = _dropin_file(hooks_dir, path, "%s/%s" % (DROPIN_DIR, name), trust, strict)
        if problem:
            problems.append(problem)
            continue
        for rule in found:
            if rule["name"] in seen:
                problems.append("%s: rule %r: duplicate name, also in %s (skipped)" % (path, rule["name"], seen[rule["name"]]))
                continue
            seen[rule["name"]] = rule["origin"]
            rules.append(rule)
    return rules, problems


def _dropin_file(hooks_dir: str, path: str, origin: str, trust, strict: bool) -> tuple:
    """(rules, '') of one drop-in file, or ([], the problem naming it): all of the file or none."""
    from .minijson import JSONError, loads
    from .trust import Untrusted
    try:
        raw = loads(trust.read_data(path))
    except Untrusted as exc:
        return [], "%s: refused: %s (skipped)" % (path, exc)
    except JSONError as exc:
        return [], "%s is not valid JSON: %s (skipped)" % (path, exc)
    items = raw if isinstance(raw, list) else [raw]
    rules, errors = [], []
    for i, item in enumerate(items):
        where = "%s%s" % (path, "[%d]" % i if isinstance(raw, list) else "")
        rule = normalize_rule(item, i, errors, strict, where=where)
        if not rule:
            continue
        if isinstance(item.get("name"), str):
            where = "%s: rule %r" % (where, item["name"])
        script, problem = dropin_script(hooks_dir, item.get("script"))
        if problem:
            errors.append("%s: %s" % (where, problem))
        if any(not isinstance(v, str) for v in rule["env"].values() if isinstance(rule["env"], dict)):
            errors.append("%s: env secrets are for deployed scripts; a drop-in's script reads a root-only file "
                          "of its own" % where)
        rule.update(script=script, origin=origin)
        rules.append(rule)
    if errors:
        return [], "; ".join(errors) + " (skipped)"
    return rules, ""


def merge_dropins(config: dict, hooks_dir: str, trust=None, strict: bool = False) -> list:
    """Append the host's drop-in rules to a loaded config (after the deployed rules); the problems,
    each naming its file. Never raises: a drop-in can only ever be skipped."""
    try:
        rules, problems = load_dropins(hooks_dir, trust, strict)
    except Exception as exc:  # a fault here must never fail a hook call
        return ["%s: cannot be read: %s: %s (skipped)" % (dropin_dir(hooks_dir), type(exc).__name__, exc)]
    if strict:      # `virthooks validate`: all deployed rules are loaded, and scripts are checked
        rules, more = _strict_dropin_checks(config["rules"], rules)
        problems.extend(more)
    if rules:
        config["rules"] = list(config["rules"]) + rules
    return problems


def dropin_rules_by_driver(rules: list) -> dict:
    """{(origin, driver): [rule names]} of the enabled drop-in rules among merged rules, in file order."""
    found = {}
    for rule in rules:
        if rule.get("origin") and rule["enabled"]:
            found.setdefault((rule["origin"], rule["driver"]), []).append(rule["name"])
    return found


def unreached_dropin(origin: str, driver: str, names: list, why: str) -> str:
    """The line that says a drop-in's rules never run: libvirt calls no entry point of their driver.

    Only the installer decides which drivers get one (the role's libvirt_hooks_drivers, the hook_runtime
    module's drivers): a drop-in cannot add one itself."""
    return ("%s: %s %s for the %s driver, which has no entry point (%s), so %s; list %s in "
            "libvirt_hooks_drivers (hook_runtime's drivers) and deploy again"
            % (origin, "rule" if len(names) == 1 else "rules", ", ".join(repr(n) for n in names), driver, why,
               "it never runs" if len(names) == 1 else "they never run", driver))


def _strict_dropin_checks(deployed: list, rules: list) -> tuple:
    """(rules kept, problems): a name a deployed rule has, and a script's syntax (as the deploy's gate)."""
    from .syntax import syntax_problem
    names = {r["name"] for r in deployed}
    kept, problems = [], []
    for rule in rules:
        if rule["name"] in names:
            problems.append("%s: rule %r: a deployed rule has this name (rename the drop-in)"
                            % (rule["origin"], rule["name"]))
            continue
        kept.append(rule)
        try:
            with open(rule["script"], "rb") as f:
                problem = syntax_problem(rule["name"], f.read())
        except OSError:
            continue                # validate says why the script cannot run
        if problem:
            problems.append("%s: %s" % (rule["origin"], problem))
    return kept, problems


# --- a script's environment (the dispatcher, for each script it spawns) ---------------------


def step_environment(env: dict, step, base: str, trust) -> str:
    """Add to a script's environment VIRTHOOKS_FILES (its files' directory in the generation, if it
    has one) and its rule's env: ${VIRTHOOKS_FILES}/${VIRTHOOKS_SECRETS} in a value replaced by those
    directories, a {"secret": true} value read from the script's secret of that name (checked as
    config.json is). Returns why the script cannot get its environment ('' when it can)."""
    from .layout import FILES_DIR, SCRIPTS_DIR, SECRETS_DIR
    env.pop("VIRTHOOKS_FILES", None)    # never one inherited from whoever ran the dispatcher
    scripts = "%s/%s/" % (base, SCRIPTS_DIR)
    own = step.path[len(scripts):] if step.source == "rule" and step.path.startswith(scripts) else ""
    if own:
        from . import hostos as os
        directory = "%s/%s/%s" % (base, FILES_DIR, own)
        if os.isdir(directory):
            env["VIRTHOOKS_FILES"] = directory
    for name, value in (step.env or {}).items():
        if isinstance(value, str):
            text = value
            for placeholder in ENV_PLACEHOLDERS:
                text = text.replace("${%s}" % placeholder, env.get(placeholder, ""))
            env[name] = text
            continue
        if not own:
            return "env %s is a secret, and only a deployed script has secrets" % name
        path = "%s/%s/%s/%s" % (base, SECRETS_DIR, own, name)
        try:
            env[name] = trust.read_data(path).decode("utf-8", "surrogateescape")
        except Exception as exc:  # Untrusted or OSError: named, never the value
            return "env %s: its secret cannot be read: %s" % (name, exc)
    return ""
