"""What flows into a cursor locator and out of it, and between its parts.

In: :class:`AnalysedFrame`, one decoded frame (its luma at full resolution, its motion image at
analysis scale, whether the view moves, the regions that must not produce candidates). Out:
:class:`CursorHit`, the pointer's hotspot in a frame (which may be earlier than the frame just
processed). Between the parts (:mod:`~quilt_llava.narratives.cursor` and the modules it
delegates to): a template's best match in a box (:data:`Match`), the one chosen as the pointer
(:data:`Choice`), the marker of a held frame whose pixels were dropped (:data:`THINNED`), and
:func:`interpolated` hits for the frames between two sightings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AnalysedFrame:
    index: int
    t: float
    luma: np.ndarray  # (H, W) uint8, full resolution
    motion: np.ndarray | None  # (h, w) uint8 |difference| to the previous frame at analysis scale, or None
    moving: bool  # the view itself is moving (pan, zoom, cut)
    ignore: np.ndarray | None = None  # (h, w) bool, regions that must not produce cursor candidates
    scale: int = 4  # full-resolution pixels per analysis pixel


@dataclass(frozen=True)
class CursorHit:
    index: int  # frame index the hit belongs to (may be earlier than the frame just processed)
    x: float  # tip, full-resolution pixels
    y: float
    score: float


def interpolated(gap: list[int], newer: CursorHit, index: int, x: float, y: float, score: float) -> list[CursorHit]:
    """Hits for the frames ``gap`` whose pixels were not kept (thinned), lying between a sighting at
    frame ``index`` ((x, y), ``score``) and a ``newer`` one: on the line between the two, at the
    lower score."""
    span = newer.index - index
    out = []
    for j in gap:
        w = (newer.index - j) / span
        out.append(CursorHit(j, newer.x + w * (x - newer.x), newer.y + w * (y - newer.y), min(score, newer.score)))
    return out


# A template's best match in a region: (score, tip x, tip y, template index, region index); and the one
# chosen as the pointer, with whether it was seen to differ from the background.
Match = tuple[float, float, float, int, int]
Choice = tuple[float, float, float, int, int, bool]

# Marks a history frame whose pixels were dropped (see ``CursorConfig.history_stride``).
THINNED = np.empty((0, 0), np.uint8)


def inside(mask: np.ndarray, x: float, y: float, scale: int) -> bool:
    """Is full-resolution (x, y) inside an analysis-scale boolean ``mask``?"""
    h, w = mask.shape
    return bool(mask[min(h - 1, max(0, int(y // scale))), min(w - 1, max(0, int(x // scale)))])
