"""Grounded caption strings in the published format.

Each cluster's text is followed by its box, rounded to two decimals and clipped to
[0, 1]; clusters are joined with ", ":
``text of cluster one [0.43, 0.63, 0.84, 0.69], text of cluster two [0.0, 0.0, 0.83, 0.66]``.
With no cluster the plain caption (the segment's speech) is returned.
"""

from __future__ import annotations

from collections.abc import Sequence


def format_box(box: Sequence[float]) -> str:
    values = [round(min(1.0, max(0.0, float(v))), 2) for v in box]
    # "+ 0.0" turns a rounded -0.0 into 0.0.
    return "[" + ", ".join(repr(v + 0.0) for v in values) + "]"


def grounded_caption(clusters: Sequence[tuple[str, Sequence[float]]], plain_caption: str) -> str:
    """``clusters`` are (text, box) pairs in time order; ``plain_caption`` is used when none has text."""
    parts = [f"{text.strip()} {format_box(box)}" for text, box in clusters if text.strip()]
    return ", ".join(parts) if parts else plain_caption.strip()
