"""The narrator's webcam box: found while the video is decoded, painted out of segment images.

:class:`WebcamWatch` feeds :class:`content.ChangeFrequency` with the difference between each
still frame and a recent frame of the same view; the regions that keep changing are the
webcam. Its mask keeps cursor candidates out of the box and its cells out of the stability
test; :func:`hide_rects` paints the box in a segment image with the content's mean colour.
"""

from __future__ import annotations

import numpy as np

from quilt_llava.narratives.content import ChangeFrequency, snap_overlay

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (full-resolution pixels, end exclusive)

REFERENCE_FRAMES = 50  # a still view's reference frame is replaced after this many frames
REPAINT_TOLERANCE_PX = 3  # painted overlay rectangles this close to the final ones are left as they are


class WebcamWatch:
    """The webcam estimate, updated frame by frame (small luma frames at analysis scale)."""

    def __init__(self, grid: tuple[int, int]) -> None:
        self.grid = grid
        self.changes = ChangeFrequency()
        self.reference: np.ndarray | None = None  # small frame of the current still view
        self.reference_index = 0
        self._cells_for: np.ndarray | None = None  # the mask ``_cells`` was made from
        self._cells: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray | None:
        """(h, w) bool at analysis scale, or None while no webcam is known."""
        return self.changes.mask

    def ignore_cells(self) -> np.ndarray | None:
        """The stability grid's cells the webcam covers (grid[1], grid[0]) bool, or None."""
        import cv2

        if self.changes.mask is not self._cells_for:
            self._cells_for = self.changes.mask
            self._cells = (
                None
                if self._cells_for is None
                else cv2.resize(self._cells_for.astype(np.uint8), self.grid, interpolation=cv2.INTER_AREA) > 0
            )
        return self._cells

    def observe(self, index: int, small: np.ndarray, moving: bool) -> None:
        """Frame ``index``. The reference is at most ~2 s old: long enough to see a narrator
        move, short enough that a keyframe's re-quantisation passes quickly."""
        import cv2

        if moving:
            self.reference = None
        elif self.reference is None or index - self.reference_index >= REFERENCE_FRAMES:
            self.reference, self.reference_index = small, index
        elif index % 2 == 0 or self.changes.frames < 20:  # a frequency: every other frame is plenty, once started
            self.changes.add(cv2.absdiff(small, self.reference))

    def rects(self, scale: int, size: tuple[int, int]) -> tuple[Rect, ...]:
        """Full-resolution rectangles around the webcam as known now."""
        return mask_rects(self.changes.mask, scale, size)

    def covers(self, x: float, y: float, scale: int) -> bool:
        """Is full-resolution point (x, y) inside the webcam mask?"""
        busy = self.changes.mask
        if busy is None:
            return False
        return bool(busy[min(busy.shape[0] - 1, int(y // scale)), min(busy.shape[1] - 1, int(x // scale))])


def mask_rects(mask: np.ndarray | None, scale: int, size: tuple[int, int]) -> tuple[Rect, ...]:
    """Full-resolution rectangles (x0, y0, x1, y1) around the regions of an analysis-scale mask."""
    import cv2

    if mask is None:
        return ()
    width, height = size
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return tuple(
        (int(x) * scale, int(y) * scale, min(width, int(x + w) * scale), min(height, int(y + h) * scale))
        for x, y, w, h, _ in stats[1:]
    )


def overlay_rects(image: np.ndarray, rects: tuple[Rect, ...], box: Rect) -> tuple[Rect, ...]:
    """``rects`` (where a webcam changed) grown to the overlay frames around them in ``image``
    and clipped to the content ``box``: the rectangles :func:`hide_rects` paints."""
    import cv2

    if not rects:
        return ()
    x0, y0, x1, y1 = box
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    snapped = (snap_overlay(gray, r, within=box) for r in rects)  # the whole box, not only its changing part
    inside = ((max(x0, a), max(y0, b), min(x1, c), min(y1, d)) for a, b, c, d in snapped)
    return tuple((a, b, c, d) for a, b, c, d in inside if c > a and d > b)


def hide_rects(image: np.ndarray, rects: tuple[Rect, ...], box: Rect) -> tuple[Rect, ...]:
    """Paint ``rects`` (a narrator webcam) in ``image`` with the mean colour of the rest of the
    content box; returns the rectangles painted (see :func:`overlay_rects`)."""
    import cv2

    x0, y0, x1, y1 = box
    inside = overlay_rects(image, rects, box)
    if not inside:
        return ()
    keep = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    for a, b, c, d in inside:
        keep[b - y0 : d - y0, a - x0 : c - x0] = 0
    if not keep.any():
        return ()
    colour = np.array(cv2.mean(np.ascontiguousarray(image[y0:y1, x0:x1]), mask=keep)[:3]).round().astype(np.uint8)
    for a, b, c, d in inside:
        image[b:d, a:c] = colour
    return inside


def needs_repaint(image: np.ndarray, painted: tuple[Rect, ...], rects: tuple[Rect, ...], box: Rect) -> bool:
    """Would painting ``rects`` cover other pixels than ``painted`` did? The webcam estimate
    moves a little from one update to the next; the overlay frame it grows to does not."""
    wanted = overlay_rects(image, rects, box)
    return len(wanted) != len(painted) or any(
        max(abs(p - q) for p, q in zip(a, b)) > REPAINT_TOLERANCE_PX for a, b in zip(sorted(wanted), sorted(painted))
    )
