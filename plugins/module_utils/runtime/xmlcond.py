# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""XPath conditions on the XML libvirt passes on stdin.

The usual conditions are location paths, which a small evaluator on ``pyexpat`` (a C module,
cheap to import: the dispatcher sits on every guest start) answers exactly as XPath 1.0 does:

- absolute paths, ``/`` and ``//`` between steps: ``/domain/devices/hostdev``, ``//interface``;
- name tests: ``name``, ``prefix:name`` (prefixes from the rule's ``namespaces``, plus ``xml``),
  ``*``, ``prefix:*``; as in XPath, an unprefixed name is in no namespace;
- any number of predicates per step: ``[@attr]``, ``[@attr='v']``, ``[name]``, ``[name='v']``
  (a child whose text is v), ``[.='v']`` (its own text), ``[3]``, ``[last()]``.

Everything else (functions, ``and``/``or``, comparisons, axes, ``..``) needs lxml, which is then
imported only when such a rule is actually evaluated; without lxml such a rule is refused at
deploy time (``check``).
"""

ENGINE_LXML = "lxml"
ENGINE_SUBSET = "subset"        # the pyexpat evaluator below
XML_NS = "http://www.w3.org/XML/1998/namespace"
_SEP = " "                      # between namespace URI and local name in expat's names
_NAME_PUNCT = "_.-"


class ConditionError(ValueError):
    """The expression cannot be evaluated (bad syntax, or needs lxml where there is none)."""


class NotInSubset(ValueError):
    """The expression is outside what the pyexpat evaluator handles."""


def _lxml():
    """lxml.etree, or None. The dispatcher runs with -S, so look in site-packages on demand."""
    try:
        from lxml import etree
        return etree
    except ImportError:
        pass
    try:
        import site
        site.main()
        from lxml import etree
        return etree
    except Exception:
        return None


# --- the subset: parsing -------------------------------------------------------------------

def _name_start(c: str) -> bool:
    return c == "_" or (c.isalpha() and (c.isascii() or c.isidentifier()))


def _name_char(c: str) -> bool:
    return c in _NAME_PUNCT or c.isdigit() and c.isascii() or _name_start(c)


class _Parser(object):
    def __init__(self, expr: str, namespaces: dict):
        self.s = expr
        self.i = 0
        self.namespaces = namespaces

    def fail(self, what: str = ""):
        raise NotInSubset(what or "unexpected %r at %d" % (self.s[self.i:self.i + 10], self.i))

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self, text: str) -> bool:
        self.ws()
        return self.s.startswith(text, self.i)

    def take(self, text: str) -> bool:
        if self.peek(text):
            self.i += len(text)
            return True
        return False

    def ncname(self) -> str:
        self.ws()
        start = self.i
        if self.i < len(self.s) and _name_start(self.s[self.i]):
            self.i += 1
            while self.i < len(self.s) and _name_char(self.s[self.i]):
                self.i += 1
        if start == self.i:
            self.fail()
        return self.s[start:self.i]

    def qname(self, star: bool):
        """(namespace URI or None for any, local name or None for any)."""
        self.ws()
        if star and self.take("*"):
            return None, None
        first = self.ncname()
        if self.s.startswith(":", self.i) and not self.s.startswith("::", self.i):
            self.i += 1
            uri = XML_NS if first == "xml" else self.namespaces.get(first)
            if uri is None:
                raise ConditionError("namespace prefix %r is not declared (add it to the rule's namespaces)" % first)
            if not uri:
                self.fail("prefix %r is bound to the empty namespace" % first)
            if star and self.s.startswith("*", self.i):
                self.i += 1
                return uri, None
            return uri, self.ncname_here()
        if self.s.startswith("(", self.i) or self.s.startswith("::", self.i):
            self.fail()         # a function, node type or axis
        return "", first

    def ncname_here(self) -> str:
        if self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.fail()
        return self.ncname()

    def literal(self) -> str:
        self.ws()
        quote = self.s[self.i:self.i + 1]
        if quote not in ("'", '"'):
            self.fail()
        end = self.s.find(quote, self.i + 1)
        if end < 0:
            self.fail()
        value = self.s[self.i + 1:end]
        self.i = end + 1
        return value

    def predicate(self):
        self.ws()
        if self.take("@"):
            name = self.qname(False)
            if self.take("="):
                return ("attr=", name, self.literal())
            return ("attr", name)
        if self.peek(".") and not self.peek(".."):
            self.i += 1
            if not self.take("="):
                self.fail()
            return ("self=", self.literal())
        if self.peek("last()"):
            self.i += len("last()")
            return ("last",)
        start = self.i
        while self.i < len(self.s) and self.s[self.i].isdigit() and self.s[self.i].isascii():
            self.i += 1
        if self.i > start:
            if self.s.startswith(".", self.i):
                self.fail()
            return ("pos", int(self.s[start:self.i]))
        test = self.qname(True)
        if self.take("="):
            return ("child=", test, self.literal())
        return ("child", test)

    def parse(self) -> list:
        steps = []
        self.ws()
        if not self.s.startswith("/", self.i):
            self.fail("not an absolute location path")
        while True:
            if self.take("//"):
                deep = True
            elif self.take("/"):
                deep = False
            else:
                break
            test = self.qname(True)
            predicates = []
            while self.take("["):
                predicates.append(self.predicate())
                if not self.take("]"):
                    self.fail()
            steps.append((deep, test, predicates))
        self.ws()
        if self.i != len(self.s):
            self.fail()
        return steps


def compile_subset(expr: str, namespaces=None) -> list:
    """The steps of an expression in the subset; NotInSubset if it is not, ConditionError if it
    uses a prefix that namespaces does not declare."""
    if not isinstance(expr, str):
        raise NotInSubset("not a string")
    return _Parser(expr, namespaces or {}).parse()


# --- the subset: the document and evaluation ----------------------------------------------------

class _Node(object):
    __slots__ = ("name", "attrs", "kids", "content")

    def __init__(self, name, attrs):
        self.name = name            # "uri local", or "local" when in no namespace
        self.attrs = attrs
        self.kids = []              # child elements
        self.content = []           # text and child elements, in document order


class _Doctype(Exception):
    pass


def parse_document(data: bytes) -> _Node:
    """The document node of the XML (its one kid is the root element). ConditionError if the
    XML is not well-formed; _Doctype if it has a DOCTYPE (never from libvirt)."""
    import pyexpat
    parser = pyexpat.ParserCreate(None, _SEP)
    parser.buffer_text = True
    document = _Node("", {})
    stack = [document]

    def start(name, attrs):
        node = _Node(name, attrs)
        parent = stack[-1]
        parent.kids.append(node)
        parent.content.append(node)
        stack.append(node)

    def end(_name):
        stack.pop()

    def text(data):
        stack[-1].content.append(data)

    def doctype(*_args):
        raise _Doctype()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(data, True)
    except pyexpat.ExpatError as exc:
        raise ConditionError("stdin is not well-formed XML: %s" % exc)
    document.content = list(document.kids)     # text outside the root element is not in XPath's model
    return document


def _matches(node: _Node, test) -> bool:
    uri, local = test
    name = node.name
    if uri is None:
        return True
    sep = name.rfind(_SEP)
    if local is None:
        return sep >= 0 and name[:sep] == uri
    if not uri:
        return sep < 0 and name == local
    return sep >= 0 and name[sep + 1:] == local and name[:sep] == uri


def _attr_key(test) -> str:
    uri, local = test
    return uri + _SEP + local if uri else local


def string_value(node: _Node) -> str:
    parts = []
    stack = [iter(node.content)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, str):
                parts.append(item)
            else:
                stack.append(iter(item.content))
                break
        else:
            stack.pop()
    return "".join(parts)


def _keep(node: _Node, predicate, position: int, size: int) -> bool:
    kind = predicate[0]
    if kind == "attr":
        return _attr_key(predicate[1]) in node.attrs
    if kind == "attr=":
        return node.attrs.get(_attr_key(predicate[1])) == predicate[2]
    if kind == "pos":
        return position == predicate[1]
    if kind == "last":
        return position == size
    if kind == "self=":
        return string_value(node) == predicate[1]
    if kind == "child":
        return any(_matches(k, predicate[1]) for k in node.kids)
    return any(_matches(k, predicate[1]) and string_value(k) == predicate[2] for k in node.kids)


def _self_and_descendants(node: _Node):
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.kids))


def select(document: _Node, steps) -> list:
    """The elements the location path selects (document order is not kept)."""
    context = [document]
    for deep, test, predicates in steps:
        if deep:
            seen = set()
            parents = []
            for node in context:
                for parent in _self_and_descendants(node):
                    if id(parent) not in seen:
                        seen.add(id(parent))
                        parents.append(parent)
        else:
            parents = context
        found = {}
        for parent in parents:
            candidates = [k for k in parent.kids if _matches(k, test)]
            for predicate in predicates:
                size = len(candidates)
                candidates = [k for i, k in enumerate(candidates, 1) if _keep(k, predicate, i, size)]
            for node in candidates:
                found[id(node)] = node
        context = list(found.values())
        if not context:
            break
    return context


# --- the entry points ----------------------------------------------------------------------------

def _needs_lxml(expr: str, why) -> ConditionError:
    return ConditionError(
        "xpath %r needs lxml (python3-lxml), which is not installed here: without it only location "
        "paths such as /domain/devices/hostdev[@type='pci'] or //interface[@type='bridge'] are evaluated "
        "(%s)" % (expr, why))


def check(expr: str, namespaces: dict, engine: str = "") -> str:
    """Validate an expression for this host; return the engine that will evaluate it
    (engine=ENGINE_SUBSET: as on a host without lxml)."""
    try:
        compile_subset(expr, namespaces)
        return ENGINE_SUBSET
    except NotInSubset as exc:
        outside = exc
    etree = _lxml() if engine != ENGINE_SUBSET else None
    if etree is None:
        raise _needs_lxml(expr, outside)
    try:
        etree.XPath(expr, namespaces=namespaces or None)
    except Exception as exc:
        raise ConditionError("xpath %r is not valid XPath: %s" % (expr, exc))
    return ENGINE_LXML


def rule_problems(rules) -> list:
    """'rule NAME: why' for each rule whose XPath condition this host cannot evaluate.

    One check for the installer (before anything is written) and ``virthooks validate``.
    """
    problems = []
    for rule in rules:
        if rule.get("xpath"):
            try:
                check(rule["xpath"], rule.get("namespaces") or {})
            except ConditionError as exc:
                problems.append("rule %r: %s" % (rule["name"], exc))
    return problems


def _truth(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        import math             # only lxml answers with numbers
        return not math.isnan(value) and value != 0.0
    if isinstance(value, (list, str, bytes)):
        return len(value) > 0
    return bool(value)


class Document(object):
    """The stdin XML, parsed at most once per engine."""

    def __init__(self, data: bytes):
        self.data = data
        self._parsed = {}

    def evaluate(self, expr: str, namespaces: dict) -> bool:
        try:
            steps = compile_subset(expr, namespaces)
        except NotInSubset as exc:
            return self._lxml_evaluate(expr, namespaces, exc)
        if ENGINE_SUBSET not in self._parsed:
            try:
                self._parsed[ENGINE_SUBSET] = parse_document(self.data)
            except _Doctype:
                self._parsed[ENGINE_SUBSET] = None
        if self._parsed[ENGINE_SUBSET] is None:     # a DOCTYPE may declare entities: lxml's business
            return self._lxml_evaluate(expr, namespaces, "the XML has a DOCTYPE")
        return bool(select(self._parsed[ENGINE_SUBSET], steps))

    def _lxml_evaluate(self, expr: str, namespaces: dict, why) -> bool:
        etree = _lxml()
        if etree is None:
            raise _needs_lxml(expr, why)
        if ENGINE_LXML not in self._parsed:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
            try:
                self._parsed[ENGINE_LXML] = etree.fromstring(self.data, parser)
            except Exception as exc:
                raise ConditionError("stdin is not well-formed XML: %s" % exc)
        try:
            return _truth(self._parsed[ENGINE_LXML].xpath(expr, namespaces=namespaces or None))
        except Exception as exc:
            raise ConditionError("xpath %r failed: %s" % (expr, exc))
