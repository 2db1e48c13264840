"""Content-area detection: where on screen the tissue view is.

Statistics are gathered while the video is decoded (at analysis resolution): the
spatial texture of sampled frames and the per-pixel range over time. Viewer chrome
(borders, toolbars, status bars) is flat and never changes; the tissue view is
textured and changes whenever the narrator pans. A row or column belongs to the
content when most of its pixels are textured or changing; the content box is the
longest run of such rows by the longest run of such columns, joined across gaps to
further long runs. Three things make that judgement relative to the view itself:

- what counts as texture is scaled by the view's own strongest texture (its 90th
  percentile of local spread): a pale or faded stain has fainter texture in proportion,
  and at the absolute spread of stained tissue at full contrast its rows and columns
  fell apart into pieces of the view (or the whole frame, chrome and all);
- empty glass between tissue fragments is flat too, so rows and columns crossing a large
  piece of glass fall below the share that makes them content and split the view; a run
  beyond such a gap joins the box when it is at least as long as the gap and a tenth of
  the frame. Chrome bars (toolbars, title and status bars) are thinner than that, so a
  textured bar beyond a flat gap stays out;
- chrome right beside the view can be half content too (a side panel's overview thumbnail
  and text, a toolbar's buttons crossed by the pointer's path): the run's end lines are
  dropped while their share is under ``edge_fraction`` of the run's median share (the
  view's own lines are fuller than that, glass and all).

Statistics are kept per
still view and merged over the views that are tissue (see ``pipeline``), so a cut to a
full-screen slide or camera does not widen the tissue area; a pixel is content there when it
was content in at least a third of those views (chrome that follows the view, an overview
thumbnail's view rectangle, is content in one view here and in the next there, and changes with
every pan as the tissue does). The box is snapped to the
steps of a full-resolution image (:func:`refine_edges`). A webcam box inside the view
is handled separately (see :class:`ChangeFrequency`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ContentConfig:
    texture_threshold: float = 3.0  # local std (grey levels) that counts as texture, at most
    # ... and at least this share of the view's strong texture (90th percentile of the local std over
    # the frame: ~15-45 grey levels for stained tissue at full contrast, ~11 for pale H&E), never under
    # ``min_texture_threshold`` (flat chrome and glass under compression stay under 1)
    relative_texture: float = 0.1
    min_texture_threshold: float = 1.0
    range_threshold: float = 20.0  # temporal max-min that counts as changing content
    line_fraction: float = 0.5  # share of a row/column that must be content
    join_run: float = 0.1  # a run of content lines beyond a gap joins the box when this share of the frame long
    edge_fraction: float = 0.6  # the box's end lines hold at least this share of its median line's content
    # a pixel is content of merged views when content in this share of them (a third: two of four or
    # five views; one of two or three)
    merge_share: float = 1 / 3


class ContentStats:
    """Accumulates texture and temporal range of sampled analysis frames (one view's), and the
    content of views merged in (:meth:`merge`)."""

    def __init__(self, config: ContentConfig | None = None) -> None:
        self.config = config or ContentConfig()
        self.texture: np.ndarray | None = None
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None
        self.votes: np.ndarray | None = None  # per pixel, in how many of the views merged in it was content
        self.voters = 0  # views merged in

    def add(self, small: np.ndarray) -> None:
        import cv2

        f = small.astype(np.float32)
        mean = cv2.blur(f, (5, 5))
        var = cv2.subtract(cv2.blur(cv2.multiply(f, f), (5, 5)), cv2.multiply(mean, mean))
        std = cv2.sqrt(cv2.max(var, 0.0))
        if self.texture is None:
            self.texture, self.lo, self.hi = std, small.copy(), small.copy()
        else:
            np.maximum(self.texture, std, out=self.texture)
            np.minimum(self.lo, small, out=self.lo)
            np.maximum(self.hi, small, out=self.hi)

    def merge(self, other: ContentStats) -> None:
        """Add another view to these statistics (one vote; views merged in ``other`` count as one):
        a pixel is content of the merged views where it was content in ``merge_share`` of them.
        Chrome that follows the view (an overview thumbnail's view rectangle, the pointer's path
        over a toolbar) is content in one view here and in the next one there, and changes from
        one view to the next as the tissue does; tissue is content wherever it shows, and empty
        glass in one view is tissue in another."""
        cmap = other.content_map()
        if cmap is None:
            return
        if self.votes is None:
            self.votes = np.zeros(cmap.shape, np.float32)
        self.votes += cmap
        self.voters += 1

    def content_map(self) -> np.ndarray | None:
        cfg = self.config
        own = None
        if self.texture is not None and self.lo is not None and self.hi is not None:
            changing = (self.hi.astype(np.int16) - self.lo.astype(np.int16)) > cfg.range_threshold
            own = (self.texture > self.texture_threshold()) | changing
        if self.votes is None:
            return own
        merged = self.votes >= cfg.merge_share * self.voters - 1e-6
        return merged if own is None else merged | own

    def texture_threshold(self) -> float:
        """The local spread that counts as texture in this view: ``relative_texture`` of its strong
        texture, between ``min_texture_threshold`` and ``texture_threshold``."""
        cfg = self.config
        if self.texture is None:
            return cfg.texture_threshold
        strong = float(np.percentile(self.texture, 90))
        return min(cfg.texture_threshold, max(cfg.min_texture_threshold, cfg.relative_texture * strong))

    def box(self, scale: float, frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """Content box (x0, y0, x1, y1) in full-resolution pixels; the whole frame when undecidable."""
        width, height = frame_size
        cmap = self.content_map()
        if cmap is None:
            return (0, 0, width, height)
        rows = _line_span(cmap.mean(axis=1), self.config)
        cols = _line_span(cmap.mean(axis=0), self.config)
        if rows is None or cols is None:
            return (0, 0, width, height)
        x0, x1 = round(cols[0] * scale), min(width, round((cols[1] + 1) * scale))
        y0, y1 = round(rows[0] * scale), min(height, round((rows[1] + 1) * scale))
        if (x1 - x0) * (y1 - y0) < 0.1 * width * height:
            return (0, 0, width, height)
        return (x0, y0, x1, y1)


def _line_span(shares: np.ndarray, cfg: ContentConfig) -> tuple[int, int] | None:
    """First and last content line (by each line's share of content pixels): the joined run of
    lines over ``line_fraction``, less end lines under ``edge_fraction`` of its median share."""
    run = _joined_run(shares >= cfg.line_fraction, cfg.join_run)
    if run is None:
        return None
    first, last = run
    least = cfg.edge_fraction * float(np.median(shares[first : last + 1]))
    while first < last and shares[first] < least:
        first += 1
    while last > first and shares[last] < least:
        last -= 1
    return first, last


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of true ``flags``, in order."""
    runs, start = [], None
    for i, f in enumerate([*list(flags), False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def _joined_run(flags: np.ndarray, join: float) -> tuple[int, int] | None:
    """The longest run of true ``flags`` (the first of equal ones), joined with the runs beyond
    each end while the next one is at least as long as the gap before it and ``join`` of all lines
    (a view split by empty glass, not a chrome bar beyond a gap)."""
    runs = _runs(flags)
    if not runs:
        return None
    lo = hi = max(range(len(runs)), key=lambda k: (runs[k][1] - runs[k][0], -k))
    least = join * len(flags)

    def joins(run: tuple[int, int], gap: int) -> bool:
        return run[1] - run[0] + 1 >= max(gap, least)

    while True:
        if lo > 0 and joins(runs[lo - 1], runs[lo][0] - runs[lo - 1][1] - 1):
            lo -= 1
        elif hi < len(runs) - 1 and joins(runs[hi + 1], runs[hi + 1][0] - runs[hi][1] - 1):
            hi += 1
        else:
            return runs[lo][0], runs[hi][1]


def refine_edges(image: np.ndarray, box: tuple[int, int, int, int], search: int = 6) -> tuple[int, int, int, int]:
    """Snap each edge of ``box`` to the strongest step in a full-resolution luma ``image`` within
    ``search`` px. An edge on the frame's border moves only to a step that crosses at least half of
    the box (a chrome border along it): an overlay inside the view near the border (an overview
    thumbnail in its corner) steps across a part of it only, and the frame's border is the view's."""
    x0, y0, x1, y1 = box
    img = image.astype(np.float32)
    h, w = img.shape

    def snap(profile: np.ndarray, pos: int, cover: np.ndarray | None) -> int:
        lo, hi = max(1, pos - search), min(len(profile) - 1, pos + search)
        if hi <= lo:
            return pos
        steps = np.abs(np.diff(profile))[lo - 1 : hi]
        if cover is not None:  # on the frame's border: steps along the box's whole side only
            steps = np.where(cover[lo - 1 : hi] >= 0.5, steps, 0.0)
        if steps.size == 0 or steps.max() < 8:
            return pos
        return lo + int(np.argmax(steps))

    band_x = img[y0:y1] if y1 > y0 else img  # the box's rows (for its left and right edges)
    band_y = img[:, x0:x1] if x1 > x0 else img
    rows, cols = band_x.mean(axis=0), band_y.mean(axis=1)

    def cover(band: np.ndarray, axis: int) -> np.ndarray:
        """Per step along ``axis``, the share of the band's lines that step by 8 grey levels or more."""
        return (np.abs(np.diff(band, axis=axis)) >= 8).mean(axis=1 - axis)

    cover_x = cover(band_x, 1) if x0 <= 0 or x1 >= w else None
    cover_y = cover(band_y, 0) if y0 <= 0 or y1 >= h else None
    nx0 = snap(rows, x0, cover_x if x0 <= 0 else None)
    nx1 = snap(rows, x1, cover_x if x1 >= w else None)
    ny0 = snap(cols, y0, cover_y if y0 <= 0 else None)
    ny1 = snap(cols, y1, cover_y if y1 >= h else None)
    if nx1 - nx0 < (x1 - x0) // 2 or ny1 - ny0 < (y1 - y0) // 2:
        return box
    return (nx0, ny0, min(w, nx1), min(h, ny1))


def snap_overlay(
    image: np.ndarray,
    rect: tuple[int, int, int, int],
    min_step: float = 8.0,
    within: tuple[int, int, int, int] | None = None,
) -> tuple[int, int, int, int]:
    """Grow or shrink each side of ``rect`` (x0, y0, x1, y1) to the outermost straight edge near it
    in a full-resolution luma ``image``: the frame of an overlay (a webcam box) whose changing
    part is only what ``rect`` was found from. A straight edge is a column (row) where most of
    the rect's rows (columns) step by ``min_step`` or more; tissue edges are not straight.
    Edges are looked for up to half the rect's larger size away, inside ``within`` (the content
    box) but not on its own border; a side with no such edge stays where it is."""
    x0, y0, x1, y1 = rect
    h, w = image.shape
    bx0, by0, bx1, by1 = within if within is not None else (0, 0, w, h)
    reach = max(8, max(x1 - x0, y1 - y0) // 2)
    img = image.astype(np.int16)

    def cover(band: np.ndarray) -> np.ndarray:
        """For each column i of ``band``, the share of rows stepping between columns i - 1 and i."""
        return (np.abs(np.diff(band, axis=1)) >= min_step).mean(axis=0)

    def outermost(lo: int, hi: int, rows: slice, outward: int, transpose: bool) -> int | None:
        """Index in [lo, hi) of the outermost straight edge (a step between index - 1 and index)."""
        lo, hi = max(lo, 1), hi
        if hi - lo < 1:
            return None
        band = img[rows, lo - 1 : hi] if not transpose else img[lo - 1 : hi, rows].T
        straight = np.flatnonzero(cover(band) >= 0.6)
        if straight.size == 0:
            return None
        return lo + int(straight[0] if outward < 0 else straight[-1])

    rows = slice(max(0, y0), min(h, y1))
    cols = slice(max(0, x0), min(w, x1))
    margin = 3  # the content box's own border is not the overlay's
    left = outermost(max(bx0 + margin, x0 - reach), min(x1, x0 + reach), rows, -1, False)
    right = outermost(max(x0, x1 - reach), min(bx1 - margin, x1 + reach), rows, +1, False)
    top = outermost(max(by0 + margin, y0 - reach), min(y1, y0 + reach), cols, -1, True)
    bottom = outermost(max(y0, y1 - reach), min(by1 - margin, y1 + reach), cols, +1, True)
    # A step at i lies between i - 1 and i: keep one more pixel on the outside (the frame's line).
    nx0 = max(0, left - 1) if left is not None else x0
    ny0 = max(0, top - 1) if top is not None else y0
    nx1 = min(w, right + 1) if right is not None else x1
    ny1 = min(h, bottom + 1) if bottom is not None else y1
    if nx1 <= nx0 or ny1 <= ny0:
        return rect
    return (nx0, ny0, nx1, ny1)


class ChangeFrequency:
    """How often each analysis pixel differs from a recent frame of its still view.

    Tissue under a still view never changes; a cursor visits a spot for a while; a
    webcam box keeps changing for the whole video. Large compact regions that differ
    in most still frames are masked as "busy" (a webcam) for cursor search.
    """

    def __init__(self, threshold: int = 8, frequency: float = 0.5, min_frames: int = 10, min_area: int = 150) -> None:
        self.threshold = threshold
        self.frequency = frequency
        self.min_frames = min_frames
        self.min_area = min_area  # analysis px; far larger than a pointer
        self.counts: np.ndarray | None = None
        self.frames = 0
        self.mask: np.ndarray | None = None

    def add(self, diff: np.ndarray) -> None:
        """``diff``: (h, w) uint8 |frame - a recent frame of the current still view| at analysis scale."""
        import cv2

        if self.counts is None:
            self.counts = np.zeros(diff.shape, np.float32)  # whole numbers, exact up to 2**24 frames
        _, changed = cv2.threshold(diff, self.threshold, 1, cv2.THRESH_BINARY)  # 1 where diff > threshold
        cv2.accumulate(changed, self.counts)
        self.frames += 1
        if self.frames == self.min_frames or self.frames % 25 == 0:
            self._update_mask()

    def _update_mask(self) -> None:
        import cv2

        busy = (self.counts > self.frequency * self.frames).astype(np.uint8)
        busy = cv2.morphologyEx(busy, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(busy, connectivity=8)
        keep = np.zeros(n, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= self.min_area
        if not keep.any():
            self.mask = None
            return
        # Grown a little so the box edges are covered.
        self.mask = cv2.dilate(keep[labels].astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
