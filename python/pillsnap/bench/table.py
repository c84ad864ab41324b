"""Benchmark output: a Markdown table that pastes straight into docs/benchmarks.md."""

from __future__ import annotations

from collections.abc import Iterable


def markdown_table(rows: Iterable[tuple[str, ...]]) -> str:
    """The first row is the header; every cell is already formatted text."""
    rows = list(rows)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
