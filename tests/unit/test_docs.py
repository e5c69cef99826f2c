"""README.md and the guides in docs/: every relative link resolves, every guide can be reached, the README stays short.

Links are read as GitHub renders Markdown: `[text](target)` outside code, a target relative to the file
that holds it, `#anchor` matched against the target's headings slugged as GitHub slugs them (lower case,
punctuation other than `-` and `_` dropped, spaces to `-`, `-1`, `-2`... for repeated headings).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.paths import REPO

README_MAX_LINES = 300

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"(?<!\\)\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)


def doc_files() -> list:
    return [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))


def prose(text: str) -> str:
    """The Markdown without fenced code blocks and code spans, where nothing is a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's Markdown source."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # links and images: their text
    parts = re.split(r"(`+[^`]*`+)", text)                       # code spans keep <...> as text
    text = "".join(part.strip("`") if part.startswith("`") else re.sub(r"<[^>]+>", "", part) for part in parts)
    text = re.sub(r"(\*{1,3}|_{1,3})(\S.*?\S|\S)\1", r"\2", text)  # emphasis markers
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set:
    seen, found = {}, set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text())):
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else "%s-%d" % (base, n))
    return found


def links(path: Path) -> list:
    """(line number, target) of every link in the file's prose."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text())
    text = CODE_SPAN.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in LINK.finditer(text)]


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I))


def broken_links(path: Path) -> list:
    problems = []
    for line, target in links(path):
        if is_external(target):
            continue
        where = "%s:%d: %s" % (path.relative_to(REPO), line, target)
        file_part, anchor = (target.split("#", 1) + [""])[:2]
        dest = (path.parent / file_part).resolve() if file_part else path
        rel = dest.relative_to(REPO).as_posix() if dest.is_relative_to(REPO) else str(dest)
        if not dest.exists():
            problems.append(where + " (no such file)")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(where + " (no heading with anchor #%s in %s; there are %s)" % (anchor, rel, sorted(anchors(dest))))
    return problems


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_and_anchor_resolves(path):
    assert not broken_links(path), "\n".join(broken_links(path))


def test_every_guide_is_reachable_from_the_readme():
    reached, todo = set(), [REPO / "README.md"]
    while todo:
        path = todo.pop()
        if path in reached or not path.exists():
            continue
        reached.add(path)
        for target in [t for n, t in links(path)]:
            file_part = target.split("#", 1)[0]
            if file_part and not is_external(file_part) and file_part.endswith(".md"):
                todo.append((path.parent / file_part).resolve())
    unreached = [p.relative_to(REPO).as_posix() for p in doc_files() if p.resolve() not in reached]
    assert not unreached, "no link leads from README.md to: %s" % unreached


def test_readme_is_short():
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, "README.md has %d lines (at most %d): move detail into a guide under docs/" % (
        lines, README_MAX_LINES)


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Runtime configuration (`config.json`, format version 1)", "runtime-configuration-configjson-format-version-1"),
    ("Metrics (Prometheus)", "metrics-prometheus"),
    ("Runs from AWX / Automation Platform", "runs-from-awx--automation-platform"),
    ("The `virthooks` CLI", "the-virthooks-cli"),
    ("Any other hook at `hooks/<driver>`", "any-other-hook-at-hooksdriver"),
    ("**Bold** and [a link](x.md)", "bold-and-a-link"),
    ("`port_forward`", "port_forward"),
])
def test_slug_follows_github(heading, anchor):
    assert slug(heading) == anchor
