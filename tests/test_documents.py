"""The documents: short where users read them, and no dead relative link (inside the zip for the shipped ones)."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DOCS = ("README.md", "weights/MODEL_CARD.md")  # inside the extension zip
REPO_DOCS = ("CHANGELOG.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")))
MAX_LINES = {"README.md": 200, "weights/MODEL_CARD.md": 150}
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HISTORY = re.compile(r"\b(previously|formerly|used to|no longer|was fixed|now fixed|we tried)\b", re.IGNORECASE)


def _package_files() -> set[str]:
    spec = importlib.util.spec_from_file_location("package_extension", ROOT / "scripts" / "package_extension.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return set(module.package_files(ROOT, include_weights=True))


def relative_links(text: str) -> list[str]:
    """Link targets that are paths (no scheme, no bare #anchor), outside code blocks and code spans."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = [t.split("#", 1)[0] for t in LINK.findall(text)]
    return [t for t in targets if t and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", t)]


def test_link_finder_sees_links_and_skips_urls_and_code():
    text = ("![pic](docs/a.png) [card](weights/MODEL_CARD.md#limits) [web](https://example.org/x)\n"
            "[anchor](#top) `[not](a/link.md)`\n```\n[nor](this.md)\n```\n[up](../README.md \"title\")")
    assert relative_links(text) == ["docs/a.png", "weights/MODEL_CARD.md", "../README.md"]


@pytest.mark.parametrize("doc", sorted(MAX_LINES))
def test_user_documents_are_short(doc):
    lines = (ROOT / doc).read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES[doc], f"{doc}: {lines} lines, at most {MAX_LINES[doc]}"


@pytest.mark.parametrize("doc", SHIPPED_DOCS)
def test_shipped_documents_link_only_to_shipped_files(doc):
    shipped = _package_files()
    assert doc in shipped
    base = Path(doc).parent
    links = relative_links((ROOT / doc).read_text(encoding="utf-8"))
    dead = [t for t in links if Path(os.path.normpath(base / t)).as_posix() not in shipped]
    assert dead == [], f"{doc}: links to files the zip does not hold: {dead}"


@pytest.mark.parametrize("doc", REPO_DOCS)
def test_repository_documents_have_no_dead_link(doc):
    path = ROOT / doc
    dead = [t for t in relative_links(path.read_text(encoding="utf-8")) if not (path.parent / t).exists()]
    assert dead == [], f"{doc}: dead links {dead}"


@pytest.mark.parametrize("doc", (*SHIPPED_DOCS, "CHANGELOG.md"))
def test_documents_describe_the_product_not_its_history(doc):
    hits = [m.group(0) for m in HISTORY.finditer((ROOT / doc).read_text(encoding="utf-8"))]
    assert hits == [], f"{doc}: {hits}"
