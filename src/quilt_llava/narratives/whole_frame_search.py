"""The whole-frame search for the pointer: each shape's best peaks over a frame, as search boxes.

In: a still frame (:class:`~quilt_llava.narratives.cursor_hits.AnalysedFrame`), the shapes to
search (:class:`~quilt_llava.narratives.sprite_set.SpriteSet`), the shape seen last, and each
frame's motion since the last search (:meth:`WholeFrameSearch.note_change`). Out: boxes around
the best peaks (:meth:`WholeFrameSearch.peak_boxes`), which the locator then matches at full
resolution; a learned sprite's peak box carries the sprite's index as a fifth entry.

- The search runs at half resolution, its many peaks rescored at full resolution: for the arrow
  prior, and for a learned sprite that survives it (``Template.coarse``); a sprite with little
  structure of its own is searched at full resolution. A shape learned twice (twins) is searched
  once and its peaks checked with both. Each shape's peaks are found up front, shared between
  the calling thread and a helper (:class:`~quilt_llava.narratives.split_work.SplitRunner`).
- Boxes: the best ``search_peaks`` peaks of the prior's sizes together, and each size's own best
  ``PRIOR_OWN_PEAKS`` (the sizes' scores are not comparable); each learned sprite's own peaks.
- A repeat search redoes only the tiles near what changed since the last one
  (``PARTIAL_SEARCH_SHARE``, ``PARTIAL_SEARCH_TILE``), and none at all when nothing changed under
  the same lock and ignored regions (the last peak boxes stand).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.cursor_hits import inside
from quilt_llava.narratives.split_work import SplitRunner
from quilt_llava.narratives.sprite_set import SpriteSet
from quilt_llava.narratives.templates import SMALL_SEARCH_FACTOR, correlation_peaks, halved, learned_peaks, rescored

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig
    from quilt_llava.narratives.cursor_hits import AnalysedFrame

MIN_SEARCH_HEIGHT = 10  # px a template keeps at half resolution for the whole-frame search
PARTIAL_SEARCH_SHARE = 0.3  # a repeat search redoes only the changed regions while they cover at most this share
PARTIAL_SEARCH_TILE = 16  # analysis px: changed regions are whole tiles of this size
# A template whose half-resolution peaks are rescored redoes at most this many changed regions; more
# cost more than its whole-frame search (about 2.5 ms a region against 7-9 ms a frame at 720p).
PATCH_RESCORED_REGIONS = 3
# Each size of the arrow prior keeps this many of its own best peaks beside the best ``search_peaks`` of
# all sizes together: the sizes' scores are not comparable (a small size's peaks are rescored at full
# resolution, a big one's are half-resolution correlations, which blur lifts on smooth tissue), and a
# small pointer that is its own size's best peak must not be crowded out by the big sizes' tissue.
PRIOR_OWN_PEAKS = 2
PARTIAL_SEARCH_MARGIN = 12  # px around a changed region beyond the largest template (peak windows, rescoring)


class WholeFrameSearch:
    """Whole-frame searches of one locator, with what changed since the last one."""

    def __init__(self, sprites: SpriteSet, config: CursorConfig, split: SplitRunner) -> None:
        self.sprites = sprites
        self.templates = sprites.templates
        self.config = config
        self._split = split
        self.last_search = -(10**9)
        # The last whole-frame search's peak boxes, with the template lock and ignore mask it ran
        # under; reused while every frame since has been quiet (no motion pixel): a repeat
        # search of the same pixels finds the same peaks.
        self.peaks: tuple[int | None, np.ndarray | None, list[tuple[int, ...]]] | None = None
        # Where frames of this view changed since the last search (analysis scale, 1: motion), and
        # each template's peaks then (score, top-left x, y): a repeat search (also one for a new lock
        # or a sprite just learned) redoes only the changed regions (``PARTIAL_SEARCH_SHARE``) for
        # the templates it has peaks of; the rest of the frame has the same peaks.
        self.dirty: np.ndarray | None = None
        self.dirty_known = False  # False: a frame came without a motion image since that search
        self.raw: dict[int, list[tuple[float, int, int]]] = {}
        self._raw_ignore: np.ndarray | None = None  # the ignore mask they were found under

    def forget(self) -> None:
        """A sprite was just learned: the next search is due now and runs afresh."""
        self.peaks = None
        self.last_search = -(10**9)

    def peak_boxes(self, frame: AnalysedFrame, new_view: bool, shape_now: int | None) -> list[tuple[int, ...]]:
        """The peak boxes of a search of this frame (the last search's where they stand, see
        :meth:`stale`); ``shape_now``: the template of the track, if any (searched first)."""
        if self.stale(frame, new_view):
            self.peaks = (self.sprites.locked, frame.ignore, self.search(frame, new_view, shape_now))
        assert self.peaks is not None
        self.last_search = frame.index
        return self.peaks[2]

    def search(self, frame: AnalysedFrame, new_view: bool, shape_now: int | None = None) -> list[tuple[int, ...]]:
        """Whole-frame search (half resolution for pointers big enough to survive it); boxes
        around the best peaks, which are then scored at full resolution."""
        cfg = self.config
        sprites = self.sprites
        luma = frame.luma
        half = None
        peaks: list[tuple[float, int, int]] = []  # (score, top-left x, y) at full resolution
        sprite_peaks: list[tuple[float, int, int, int]] = []  # (score, x, y, template index)
        # Every learned shape, not only a locked one: the pointer may have changed shape while resting.
        active = sprites.unlocked() if sprites.learned_any else sprites.active()
        if shape_now is not None and shape_now in active:  # the shape seen last is the likeliest
            active.remove(shape_now)
            active.insert(0, shape_now)
        elif sprites.last_learned in active:
            active.remove(sprites.last_learned)
            active.insert(0, sprites.last_learned)
        twins = sprites.twins()
        regions = self.regions(frame, new_view)
        raw: dict[int, list[tuple[float, int, int]]] = {}
        searched: set[int] = set()
        # Each shape's peaks are found up front, shared between this thread and the helper (they do
        # not depend on each other); the loop below reads them in order, as it would have made them.
        order = list(dict.fromkeys(twins[k][0] if k in twins else k for k in active))
        if order:
            half = halved(luma)
        made = dict(zip(order, self._all_peaks(order, luma, half, frame, regions)))
        for k in active:
            if sprite_peaks and sprite_peaks[0][0] >= cfg.sure_score:
                break  # a learned sprite found beyond doubt: the other shapes need no search
            k = twins[k][0] if k in twins else k  # a shape learned twice is searched once
            if k in searched:
                continue
            searched.add(k)
            found = made[k]
            raw[k] = found
            if self.templates[k].learned:
                sprite_peaks += [(score, x, y, k) for score, x, y in found]
                sprite_peaks.sort(reverse=True)
            else:
                peaks += found
        self.raw, self._raw_ignore = raw, frame.ignore
        self.dirty, self.dirty_known = None, True
        peaks.sort(reverse=True)
        r = 6
        # Each learned sprite keeps its own best peaks: one that matches tissue loosely everywhere
        # must not crowd out the others. A learned sprite's peak box carries the sprite's index:
        # it is matched with that sprite only (the other shapes have peaks of their own), which
        # divides the cost of checking the peaks by the number of shapes.
        # A twin's peaks are its first sprite's, moved by where the two align.
        members: dict[int, list[tuple[int, int, int]]] = {k: [(k, 0, 0)] for k in searched}
        for k, (first, dx, dy) in twins.items():
            if first in members and k in active:
                members[first].append((k, dx, dy))
        pooled = [(x, y) for _, x, y in peaks[: cfg.search_peaks]]
        own = dict.fromkeys(
            (x, y)
            for k in searched
            if not self.templates[k].learned
            for _, x, y in raw[k][:PRIOR_OWN_PEAKS]
            if (x, y) not in pooled
        )
        return [(x - r, y - r, x + r, y + r) for x, y in [*pooled, *own]] + [
            (x + dx - r, y + dy - r, x + dx + r, y + dy + r, j)
            for _, x, y, k in sprite_peaks
            for j, dx, dy in members[k]
        ]

    def _all_peaks(
        self,
        order: list[int],
        luma: np.ndarray,
        half: np.ndarray | None,
        frame: AnalysedFrame,
        regions: list[tuple[int, int, int, int]] | None,
    ) -> list[list[tuple[float, int, int]]]:
        """The peaks of each template in ``order`` (see :meth:`search`): a whole-frame search,
        or the last one's peaks with the changed ``regions`` redone; templates shared between this
        thread and the helper (``CursorConfig.match_threads``)."""
        assert half is not None or not order

        def peaks_of(k: int) -> list[tuple[float, int, int]]:
            assert half is not None
            if regions is None or k not in self.raw or not self.patch_pays(k, regions):
                return self.template_peaks(k, luma, half, frame.ignore)
            return self._patched_peaks(k, luma, half, frame, regions)

        # A learned sprite searched at full resolution costs several half-resolution searches.
        costs = [6.0 if self.templates[k].learned and not self.templates[k].coarse else 1.0 for k in order]
        return [found for (found,) in self._split.run([[functools.partial(peaks_of, k)] for k in order], costs)]

    def template_peaks(
        self, k: int, luma: np.ndarray, half: np.ndarray, ignore: np.ndarray | None
    ) -> list[tuple[float, int, int]]:
        """The best whole-frame peaks of template ``k`` in ``luma`` (``half``: it at half resolution):
        (score, top-left x, y) at full resolution, best first."""
        t = self.templates[k]
        n = self.config.search_peaks
        if t.learned:
            return learned_peaks(luma, half, t, ignore, n)
        if t.image.shape[0] >= 2 * MIN_SEARCH_HEIGHT:
            return [(score, 2 * x, 2 * y) for score, x, y in correlation_peaks(half, t.half, ignore, 9, 0.3, n)]
        # A small pointer blurs at half resolution: many half-resolution peaks are rescored with the
        # full-resolution template around them (far cheaper than a full-resolution search of the whole frame).
        return rescored(luma, t, correlation_peaks(half, t.half, ignore, 9, 0.3, SMALL_SEARCH_FACTOR * n), n, 0.3)

    def patch_pays(self, k: int, regions: list[tuple[int, int, int, int]]) -> bool:
        """Is redoing ``regions`` cheaper than a whole-frame search for template ``k``? Not for a
        template whose half-resolution peaks are rescored at full resolution (a small prior size, a
        learned sprite searched at half resolution) in more than ``PATCH_RESCORED_REGIONS`` regions:
        each region rescores up to as many peaks as the whole frame does."""
        t = self.templates[k]
        by_rescoring = t.coarse if t.learned else t.image.shape[0] < 2 * MIN_SEARCH_HEIGHT
        return not by_rescoring or len(regions) <= PATCH_RESCORED_REGIONS

    def _patched_peaks(
        self,
        k: int,
        luma: np.ndarray,
        half: np.ndarray,
        frame: AnalysedFrame,
        regions: list[tuple[int, int, int, int]],
    ) -> list[tuple[float, int, int]]:
        """Template ``k``'s peaks of the last search where nothing changed since, with those of a
        search of each changed region (x0, y0, x1, y1; even x0 and y0) in their place."""
        th, tw = self.templates[k].image.shape
        found = {
            (x, y): score
            for score, x, y in self.raw[k]
            if not any(x0 <= x <= x1 - tw and y0 <= y <= y1 - th for x0, y0, x1, y1 in regions)
        }
        for x0, y0, x1, y1 in regions:
            if x1 - x0 < tw or y1 - y0 < th:
                continue
            crop, half_crop = luma[y0:y1, x0:x1], half[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
            for score, x, y in self.template_peaks(k, crop, half_crop, None):
                x, y = int(x0 + x), int(y0 + y)  # regions overlap: a peak may be found twice
                ignored = frame.ignore is not None and inside(frame.ignore, x, y, frame.scale)
                if not ignored and score > found.get((x, y), -1.0):
                    found[x, y] = score
        return sorted(((score, x, y) for (x, y), score in found.items()), reverse=True)[: self.config.search_peaks]

    def note_change(self, moved: np.ndarray | None) -> None:
        """Add a still frame's motion (``moved``: its motion pixels outside ignored regions, None
        without a motion image) to what changed since the last search."""
        import cv2

        if moved is None:
            self.dirty_known = False  # no previous frame to compare with: the next search covers the frame
            return
        if self.dirty is None or self.dirty.shape != moved.shape:
            self.dirty = moved.copy()  # (the frame's mask is shared: never written to)
        else:
            cv2.bitwise_or(self.dirty, moved, dst=self.dirty)

    def stale(self, frame: AnalysedFrame, new_view: bool) -> bool:
        """Must a due whole-frame search run again, or do the last one's peaks stand (nothing changed
        since, under the same lock and ignored regions)?"""
        import cv2

        return (
            new_view
            or self.peaks is None
            or self.peaks[0] != self.sprites.locked
            or self.peaks[1] is not frame.ignore
            or not self.dirty_known
            or (self.dirty is not None and cv2.countNonZero(self.dirty) > 0)
        )

    def regions(self, frame: AnalysedFrame, new_view: bool) -> list[tuple[int, int, int, int]] | None:
        """The regions (full resolution, x0, y0, x1, y1) a repeat search must redo: runs of tiles
        where frames changed since the last search (compression flicker scatters changes), grown
        by the largest template and a margin; None when the whole frame must be searched (a new
        view, another ignore mask, change near more than ``PARTIAL_SEARCH_SHARE`` of the frame)."""
        if new_view or not self.dirty_known or not self.raw or self._raw_ignore is not frame.ignore:
            return None
        if self.dirty is None:
            return []
        import cv2

        T = PARTIAL_SEARCH_TILE
        h, w = self.dirty.shape
        tiles = np.pad(self.dirty, ((0, -h % T), (0, -w % T)))
        tiles = tiles.reshape(tiles.shape[0] // T, T, tiles.shape[1] // T, T).max(axis=(1, 3))
        H, W = frame.luma.shape
        side = T * frame.scale  # full-resolution px of a tile
        size = max(max(t.image.shape) for t in self.templates)
        grow = -(-(size + PARTIAL_SEARCH_MARGIN) // side)  # tiles around a change a template may overlap it from
        tiles = cv2.dilate(tiles, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
        if tiles.mean() > PARTIAL_SEARCH_SHARE:
            return None
        regions = []
        for row, cols in enumerate(tiles):
            on = np.flatnonzero(np.diff(np.concatenate(([0], cols > 0, [0])).astype(np.int8)))
            for c0, c1 in zip(on[::2], on[1::2]):
                # A tile row's top-left positions, with room below and right for the template.
                regions.append((c0 * side, row * side, min(W, c1 * side + size), min(H, (row + 1) * side + size)))
        return regions
