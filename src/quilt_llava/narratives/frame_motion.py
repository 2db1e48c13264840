"""What moved in a frame, for the cursor locator's parts that read it.

In: an :class:`~quilt_llava.narratives.cursor_hits.AnalysedFrame` (its motion image: the
|difference| to the previous frame at analysis scale, and the ignored regions). Out, made once
per frame and shared (never written to): the motion pixels outside ignored regions
(:meth:`FrameMotion.moved`), their connected components (:meth:`FrameMotion.components`) and
the search boxes of the moving blobs (:meth:`FrameMotion.blob_boxes`: top-left positions, full
resolution, from which a template of the sizes given overlaps a changed area). The change
record of the whole-frame search, the blob candidates and the sprite learner all read them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig
    from quilt_llava.narratives.cursor_hits import AnalysedFrame


SHIFT_RESPONSE = 0.3  # phase correlation peak of a square of tissue that shifted as one (``view_shift``)
SHIFT_AGREE = 1.5  # px a square's shift may lie from the squares' median: one translation


class FrameMotion:
    """Per-frame caches of the motion mask, its components and its blob boxes."""

    def __init__(self, config: CursorConfig) -> None:
        self.config = config
        self._blobs_of = -1  # frame index the cached blob boxes belong to
        self._blobs: list[tuple[int, int, int, int]] = []
        self._ignore_key: np.ndarray | None = None
        self._ignore_keep: np.ndarray | None = None
        self._moved_of = -1
        self._moved_mask: np.ndarray | None = None
        self._components_of = -1
        self._component_stats: np.ndarray | None = None
        self._bounds_of = -1
        self._bounds = (0, 0, 0, 0)

    def blob_boxes(
        self, frame: AnalysedFrame, sizes: Callable[[], list[tuple[int, ...]]]
    ) -> list[tuple[int, int, int, int]]:
        """Search boxes around this frame's moving blobs (made once per frame); ``sizes``: the
        (height, width) of the templates matched now, asked for when the boxes are made."""
        if self._blobs_of != frame.index:
            self._blobs_of, self._blobs = frame.index, self._find_blobs(frame, sizes)
        return self._blobs

    def moved(self, frame: AnalysedFrame) -> np.ndarray | None:
        """This frame's motion pixels (1) outside ignored regions, at analysis scale (None without a
        motion image); made once per frame, never written to."""
        import cv2

        if self._moved_of != frame.index:
            moved = None
            if frame.motion is not None:
                _, moved = cv2.threshold(frame.motion, self.config.motion_threshold, 1, cv2.THRESH_BINARY)
                if frame.ignore is not None:
                    if self._ignore_key is not frame.ignore:
                        self._ignore_keep = (~frame.ignore).astype(np.uint8)
                        self._ignore_key = frame.ignore
                    moved = cv2.bitwise_and(moved, self._ignore_keep)
            self._moved_of, self._moved_mask = frame.index, moved
        return self._moved_mask

    def bounds(self, frame: AnalysedFrame, moved: np.ndarray) -> tuple[int, int, int, int]:
        """``cv2.boundingRect`` of this frame's :meth:`moved` (x, y, w, h), made once per frame."""
        import cv2

        if self._bounds_of != frame.index:
            self._bounds_of, self._bounds = frame.index, cv2.boundingRect(moved)
        return self._bounds

    def components(self, frame: AnalysedFrame, moved: np.ndarray) -> np.ndarray:
        """``cv2.connectedComponentsWithStats`` stats of this frame's :meth:`moved` (8-connected),
        labelled within the box around its motion pixels (the same components, in the same
        order: both scan rows top-down); rows 1 on are in frame coordinates, row 0 (background)
        describes the box only."""
        import cv2

        if self._components_of != frame.index:
            self._components_of = frame.index
            x, y, w, h = self.bounds(frame, moved)
            if w and h:
                stats = cv2.connectedComponentsWithStats(moved[y : y + h, x : x + w], connectivity=8)[2]
                stats[1:, cv2.CC_STAT_LEFT] += x
                stats[1:, cv2.CC_STAT_TOP] += y
            else:
                stats = cv2.connectedComponentsWithStats(moved, connectivity=8)[2]
            self._component_stats = stats
        assert self._component_stats is not None
        return self._component_stats

    def _find_blobs(
        self, frame: AnalysedFrame, template_sizes: Callable[[], list[tuple[int, ...]]]
    ) -> list[tuple[int, int, int, int]]:
        import cv2

        moved = self.moved(frame)
        if moved is None or cv2.countNonZero(moved) == 0:
            return []
        cfg = self.config
        s = frame.scale
        sizes = template_sizes()
        th, tw = max(h for h, _ in sizes), max(w for _, w in sizes)
        bx, by, bw, bh = self.bounds(frame, moved)
        if bw * s <= 3 * tw and bh * s <= 3 * th:
            # One compact change (the usual moving pointer): no need to label components.
            return [(bx * s - tw, by * s - th, (bx + bw) * s + 1, (by + bh) * s + 1)]
        stats = self.components(frame, moved)
        order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[: cfg.max_blobs * 3] + 1
        boxes = []
        for i in order:
            x, y, w, h, area = stats[i]
            if area > cfg.max_blob_area:
                continue
            # Any top-left from which the template overlaps the changed area.
            boxes.append((x * s - tw, y * s - th, (x + w) * s + 1, (y + h) * s + 1))
            if len(boxes) >= cfg.max_blobs:
                break
        return boxes

    def largest_blobs(self, frame: AnalysedFrame, n: int) -> list[tuple[int, int, int, int]]:
        """The ``n`` largest moving blobs of this frame no larger than ``max_blob_area`` (x0, y0,
        x1, y1, full resolution): what the sprite learner looks at."""
        import cv2

        moved = self.moved(frame)
        if moved is None or not cv2.countNonZero(moved):
            return []
        stats = self.components(frame, moved)
        s = frame.scale
        order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:n] + 1
        return [
            (
                int(stats[i, 0]) * s,
                int(stats[i, 1]) * s,
                int(stats[i, 0] + stats[i, 2]) * s,
                int(stats[i, 1] + stats[i, 3]) * s,
            )
            for i in order
            if stats[i, cv2.CC_STAT_AREA] <= self.config.max_blob_area
        ]


def view_shift(before: np.ndarray, after: np.ndarray, x: float, y: float, reach: int) -> tuple[float, float] | None:
    """How the view moved between ``before`` and ``after`` (luma) around (x, y), or None where that is
    not one clear shift: the tissue in four squares diagonally ``reach`` px from (x, y) (``reach``
    wide, down to a multiple of 16) is phase-correlated square by square; the median shift (dx, dy)
    of those with a clear peak (``SHIFT_RESPONSE``) is returned where at least three of them lie
    within ``SHIFT_AGREE`` px of it. A pointer, however large its glow, reaches into one square at
    most, and still tissue shows no shift; a view that moves (a drag's first frames) shifts the
    squares alike (one may hold still chrome at the viewer's edge). Squares cut by the frame's edge
    are left out."""
    import cv2

    H, W = after.shape
    if before.shape != after.shape:
        return None
    # (a side that is a multiple of 16: at some other sides, 42-44 px, OpenCV's phase correlation of
    # two equal squares gives a shift of half a pixel each way)
    half = max(8, reach // 16 * 8)
    shifts = []
    for sx, sy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
        cx, cy = round(x) + sx * reach, round(y) + sy * reach
        x0, y0, x1, y1 = cx - half, cy - half, cx + half, cy + half
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            continue
        a = before[y0:y1, x0:x1].astype(np.float32)
        b = after[y0:y1, x0:x1].astype(np.float32)
        window = cv2.createHanningWindow((x1 - x0, y1 - y0), cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(a, b, window)
        if response >= SHIFT_RESPONSE:  # (NaN on a flat square)
            shifts.append((float(dx), float(dy)))
    if len(shifts) < 3:
        return None
    mx, my = float(np.median([d[0] for d in shifts])), float(np.median([d[1] for d in shifts]))
    agree = sum(abs(dx - mx) <= SHIFT_AGREE and abs(dy - my) <= SHIFT_AGREE for dx, dy in shifts)
    return (mx, my) if agree >= 3 else None
