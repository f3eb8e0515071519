"""Text blocks that report.md and report.html lay out alike: a paragraph or a table.

A section built as blocks (:mod:`reproduce.studytrials`, :mod:`reproduce.likeforlike`) is
written once: :func:`to_markdown` lays it out for report.md and for the terminal, and
report.html's template loops over the same blocks (``kind`` "para" or "table"), so the two
reports cannot show different numbers. Cells are preformatted strings.
"""

from __future__ import annotations

import textwrap

__all__ = ["WIDTH", "para", "table", "to_markdown"]

WIDTH = 80  # columns a paragraph is wrapped to in Markdown


def para(text: str) -> dict:
    """A paragraph: ``{"kind": "para", "text"}``."""
    return {"kind": "para", "text": text}


def table(header: list[str], right: list[bool], rows: list[list[str]]) -> dict:
    """A table: ``{"kind": "table", "header", "right" (per column: right-aligned, as numbers
    are), "rows"}``.

    Raises:
        ValueError: a row or ``right`` of another length than ``header``.
    """
    if len(right) != len(header) or any(len(r) != len(header) for r in rows):
        raise ValueError(f"a table of {len(header)} columns needs rows of {len(header)} cells")
    return {"kind": "table", "header": list(header), "right": list(right), "rows": rows}


def to_markdown(blocks: list[dict], width: int = WIDTH) -> str:
    """The blocks as Markdown: paragraphs wrapped to ``width`` columns (never at a hyphen),
    tables as pipe tables, one blank line between blocks, a final newline."""
    out: list[str] = []
    for block in blocks:
        if out:
            out.append("")
        if block["kind"] == "para":
            out += textwrap.wrap(block["text"], width, break_on_hyphens=False)
        else:
            align = ["---:" if r else "---" for r in block["right"]]
            out.append("| " + " | ".join(block["header"]) + " |")
            out.append("|" + "|".join(align) + "|")
            out += ["| " + " | ".join(row) + " |" for row in block["rows"]]
    return "\n".join(out) + "\n"
