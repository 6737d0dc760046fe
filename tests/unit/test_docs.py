"""The README and the docs render as meant: every table row has its
header's cells (a stray blank line or `|` breaks a table into a paragraph),
and every relative link points at a file of this repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def cells(line: str) -> int:
    """The cells of a table row as written: ``|`` outside code spans and not escaped."""
    count, code, prev = 0, False, ""
    for ch in line.strip().strip("|"):
        if ch == "`":
            code = not code
        elif ch == "|" and not code and prev != "\\":
            count += 1
        prev = ch
    return count + 1


def tables(text: str) -> list[list[int]]:
    """Each table's cell count per row as written (header first; the parser finds
    the tables, since it pads short rows and drops extra cells silently)."""
    lines = text.splitlines()
    out = []
    for tok in MarkdownIt("commonmark").enable("table").parse(text):
        if tok.type == "table_open" and tok.map:
            rows = [ln for ln in lines[tok.map[0]:tok.map[1]] if not set(ln.strip()) <= set("|-: ")]
            out.append([cells(ln) for ln in rows])
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_table_row_has_the_headers_cells(page: Path):
    text = page.read_text(encoding="utf-8")
    for i, rows in enumerate(tables(text)):
        assert rows and all(n == rows[0] for n in rows), f"{page.name}: table {i + 1} rows have {rows} cells"
    # A line that starts with `|` outside any table: a table broken by a blank line.
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    assert "<p>|" not in rendered, f"{page.name}: a table row rendered as a paragraph"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_inside_the_repository(page: Path):
    tokens = MarkdownIt("commonmark").enable("table").parse(page.read_text(encoding="utf-8"))
    for tok in tokens:
        for child in tok.children or []:
            href = child.attrGet("href") if child.type == "link_open" else None
            if not href or "://" in href or href.startswith(("#", "mailto:")):
                continue
            target = (page.parent / href.split("#")[0]).resolve()
            assert target.is_relative_to(ROOT) and target.exists(), f"{page.name}: link {href} leads nowhere here"
