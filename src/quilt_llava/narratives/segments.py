"""Segments: the still views of a video, with their images and cursor traces (the analysis result)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quilt_llava.narratives.cursor import CursorHit
from quilt_llava.narratives.resting_pointer import RemovedPointer
from quilt_llava.narratives.stability import Span

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (full-resolution pixels, end exclusive)


@dataclass
class Segment:
    span: Span
    start: float
    end: float
    image: np.ndarray  # (H, W, 3) uint8 full frame median
    trace: list[tuple[float, float, float]]  # (t, x_px, y_px) full-resolution video pixels
    png: bytes | None = None  # the segment image cropped to the content box, PNG-encoded
    settle: Callable[[], None] | None = None  # set while image and png are still being made; call to wait
    # Set instead of ``image`` / ``png`` for a segment whose image waited on disk (see ``held_segments``).
    image_file: Path | None = None  # .npy of the full frame median
    png_file: Path | None = None  # the PNG, ready to be moved into place
    box: Rect | None = None  # the view's content (tissue) area; the PNG holds only this crop
    tissue: float = 1.0  # tissue score of the view (see ``tissue.tissue_score``)
    is_tissue: bool = True  # the score reaches the configured threshold
    removed: tuple[RemovedPointer, ...] = ()  # pointers left in the median and taken out of the image

    def ready(self) -> Segment:
        """Wait until ``image`` and ``png`` are made (see ``analyse(settle=False)``)."""
        if self.settle is not None:
            self.settle()
        return self

    def rgb(self) -> np.ndarray:
        """The full-frame segment image, from memory or from its file."""
        self.ready()
        if self.image.size == 0 and self.image_file is not None:
            return np.load(self.image_file)
        return self.image


@dataclass
class Analysis:
    width: int
    height: int
    duration: float
    content_box: Rect
    times: np.ndarray
    moving: np.ndarray
    hits: dict[int, CursorHit]
    segments: list[Segment]


def late_rest_hits(segments: list[Segment], hits: dict[int, CursorHit]) -> None:
    """Hits for the frames of views where the locator had none, and a shape it learned only after
    the view was found in the view's image (:func:`.segment_images.remove_late_pointer`): a pointer
    that never moved while the view lasted (nothing moved there to learn it from, and no shape
    known then matched it), at rest where the median shows it, at that match's score. A view with
    a hit of its own keeps its hits alone (the pointer was seen to be elsewhere there)."""
    for seg in segments:
        found = [r for r in seg.removed if r.tip is not None]
        frames = range(seg.span.start, seg.span.end + 1)
        if not found or any(i in hits for i in frames):
            continue
        x, y = found[0].tip
        score = found[0].score or 0.0
        for i in frames:
            hits[i] = CursorHit(i, x, y, score)


def assign_traces(
    segments: list[Segment],
    hits: dict[int, CursorHit],
    times: list[float],
    box: Rect,
    excluded: Callable[[float, float], bool] | None = None,
) -> None:
    """Append to each segment's trace the hits of its frames that lie inside its box (``box``
    for a segment without one) and are not ``excluded`` (inside the webcam, say: hits made
    before it was recognised are dropped here)."""
    for seg in segments:
        x0, y0, x1, y1 = seg.box or box
        for i in range(seg.span.start, seg.span.end + 1):
            hit = hits.get(i)
            if hit is None or (excluded is not None and excluded(hit.x, hit.y)):
                continue
            if x0 <= hit.x < x1 and y0 <= hit.y < y1:
                seg.trace.append((times[i], hit.x, hit.y))
