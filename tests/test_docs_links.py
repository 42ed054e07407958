"""The README and docs/ name only what exists: relative links (and their #anchors) and repository paths.

A renamed module, a moved doc or a deleted test leaves a sentence that sends a reader nowhere; this test
fails instead. It checks, outside fenced code blocks:

- every relative Markdown link or image (``[text](docs/x.md#anchor)``): the file exists, and the anchor
  is a heading of it (GitHub's slugs); URLs and ``mailto:`` are not followed;
- every backticked repository path (``plugins/…``, ``tests/…``, ``scripts/…``, ``docs/…``, ``bench/…``,
  ``include/…``, ``dags/…``, ``deploy/…``; ``clientify_sync/…`` under ``plugins/``; ``engine/…``,
  ``api/…``, ``hooks/…``, ``ui/…``, ``webhooks/…``, ``config/…`` under ``plugins/clientify_sync/``):
  it exists, with ``{a,b}`` expanded and ``*`` globbed. Spans with spaces, ``<placeholders>`` or ``…``
  are commands or elisions, not paths, and are left alone.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# Where a backticked path is read from, by its first segment.
FROM_ROOT = ("plugins/", "tests/", "scripts/", "docs/", "bench/", "include/", "dags/", "deploy/")
FROM_PLUGINS = ("clientify_sync/",)
FROM_PACKAGE = ("engine/", "api/", "hooks/", "ui/", "webhooks/", "config/")
PACKAGE = ROOT / "plugins" / "clientify_sync"


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown file, duplicates numbered as GitHub does (``-1``, ``-2``)."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def link_problem(doc: Path, target: str) -> str | None:
    """Why a link of ``doc`` leads nowhere, or None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
        return None
    path_part, _, anchor = target.partition("#")
    dest = (doc.parent / path_part).resolve() if path_part else doc
    if not dest.exists():
        return f"link to {target}: {path_part} does not exist"
    try:
        dest.relative_to(ROOT)
    except ValueError:
        return f"link to {target}: outside the repository"
    if anchor and dest.suffix == ".md" and anchor.lower() not in anchors(dest):
        return f"link to {target}: no heading #{anchor} in {dest.relative_to(ROOT)}"
    return None


def expand(span: str) -> list[str]:
    """``a/{b,c}.py`` as ``a/b.py`` and ``a/c.py`` (nested braces too)."""
    match = re.search(r"\{([^{}]*)\}", span)
    if not match:
        return [span]
    head, tail = span[: match.start()], span[match.end() :]
    return [x for option in match.group(1).split(",") for x in expand(head + option + tail)]


def base_of(span: str) -> Path | None:
    """Where a backticked span is read from, or None when it is not a repository path."""
    if span.startswith(FROM_ROOT):
        return ROOT
    if span.startswith(FROM_PLUGINS):
        return ROOT / "plugins"
    if span.startswith(FROM_PACKAGE):
        return PACKAGE
    return None


def path_problem(span: str) -> str | None:
    """Why a backticked path names nothing, or None (also when the span is no path)."""
    span = span.strip()
    if not span or any(mark in span for mark in (" ", "<", ">", "…", "...", "$", "=", "|")):
        return None
    span = re.split(r"::|:(?=\d)", span, maxsplit=1)[0]  # tests/x.py::test_y, path:12
    base = base_of(span)
    if base is None:
        return None
    for candidate in expand(span):
        if "*" in candidate or "?" in candidate:
            if not any(base.glob(candidate)):
                return f"`{span}`: nothing matches {candidate}"
        elif not (base / candidate).exists():
            return f"`{span}`: {(base / candidate).relative_to(ROOT)} does not exist"
    return None


def problems(doc: Path) -> list[str]:
    found = []
    for number, line in prose_lines(doc):
        for target in LINK.findall(line):
            problem = link_problem(doc, target)
            if problem:
                found.append(f"{doc.relative_to(ROOT)}:{number}: {problem}")
        for _, span in CODE.findall(line):
            problem = path_problem(span)
            if problem:
                found.append(f"{doc.relative_to(ROOT)}:{number}: {problem}")
    return found


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_link_and_named_path_exists(doc: Path) -> None:
    found = problems(doc)
    assert not found, "\n".join(found)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """A broken link, a missing anchor and a missing path are reported; URLs, commands and elisions not."""
    assert link_problem(ROOT / "README.md", "docs/no-such-page.md")
    assert link_problem(ROOT / "README.md", "docs/deploy.md#no-such-heading")
    assert link_problem(ROOT / "README.md", "docs/deploy.md#install") is None
    assert link_problem(ROOT / "README.md", "https://example.org/x") is None
    assert path_problem("plugins/clientify_sync/no_such_module.py")
    assert path_problem("engine/{planner,no_such}.py")
    assert path_problem("tests/engine/test_no_such_*.py")
    assert path_problem("engine/ledger/candidates.py") is None
    assert path_problem("clientify_sync/config/integrations.yaml") is None
    assert path_problem("tests/engine/test_planner.py::test_window_rules") is None
    assert path_problem("python -m clientify_sync.webhooks.register") is None
    assert path_problem("plugins/clientify_sync/...") is None
    assert slug("Ordering: estimates after their customers and products") == (
        "ordering-estimates-after-their-customers-and-products"
    )
    assert slug("A deployment: PostgreSQL, for Airflow and for the ledger") == (
        "a-deployment-postgresql-for-airflow-and-for-the-ledger"
    )
