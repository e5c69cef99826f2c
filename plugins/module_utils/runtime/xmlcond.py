# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""XPath conditions on the XML libvirt passes on stdin.

lxml is used when it is installed (full XPath 1.0) and imported only when a rule with a
condition is actually evaluated. Without lxml, the standard library's ElementTree handles
the subset it can do: absolute location paths with simple predicates, such as
``/domain/devices/hostdev[@type='pci']`` or ``//interface[@type='bridge']``.
"""

import math

ENGINE_LXML = "lxml"
ENGINE_ETREE = "etree"
_FUNCTION_HINTS = ("(", " and ", " or ", "|", "::", "!=", "<", ">", "..")


class ConditionError(ValueError):
    """The expression cannot be evaluated (bad syntax, or needs lxml where there is none)."""


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


def _etree_path(expr: str) -> str:
    """The ElementPath, relative to a wrapper around the root element, for an absolute XPath."""
    expr = expr.strip()
    for hint in _FUNCTION_HINTS:
        if hint in expr.replace("last()", "").replace("text()", ""):
            raise ConditionError(
                "xpath %r needs lxml (python3-lxml), which is not installed here; the standard "
                "library only handles simple paths such as /domain/devices/hostdev[@type='pci']" % expr)
    if not expr.startswith("/"):
        raise ConditionError("xpath %r: without lxml only absolute paths (starting with '/') are supported" % expr)
    return "." + expr


def check(expr: str, namespaces: dict, engine: str = "") -> str:
    """Validate an expression for this host; return the engine that will evaluate it."""
    if engine != ENGINE_ETREE:
        etree = _lxml()
        if etree is not None:
            try:
                etree.XPath(expr, namespaces=namespaces or None)
            except Exception as exc:
                raise ConditionError("xpath %r is not valid XPath: %s" % (expr, exc))
            return ENGINE_LXML
    path = _etree_path(expr)
    import xml.etree.ElementTree as ET
    try:
        ET.fromstring("<x/>").findall(path, namespaces or None)
    except (SyntaxError, KeyError) as exc:
        raise ConditionError("xpath %r is not supported by the standard library: %s" % (expr, exc))
    return ENGINE_ETREE


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
        etree = _lxml()
        if etree is not None:
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
        path = _etree_path(expr)
        import xml.etree.ElementTree as ET
        if ENGINE_ETREE not in self._parsed:
            try:
                wrapper = ET.Element("virthooks-document")
                wrapper.append(ET.fromstring(self.data))
            except ET.ParseError as exc:
                raise ConditionError("stdin is not well-formed XML: %s" % exc)
            self._parsed[ENGINE_ETREE] = wrapper
        try:
            return self._parsed[ENGINE_ETREE].find(path, namespaces or None) is not None
        except (SyntaxError, KeyError) as exc:
            raise ConditionError("xpath %r failed: %s" % (expr, exc))
