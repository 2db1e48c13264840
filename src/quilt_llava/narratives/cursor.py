"""Cursor localisation by the pointer's shape, not by "whatever changed most".

The published method subtracts a chunk's median frame and takes the strongest
response. That fails for a cursor that rests (it is part of the median), reports
webcam motion and compression noise as the cursor, and gives the centre of the
change rather than the tip. Here the cursor is found by masked normalised
cross-correlation with templates (:mod:`quilt_llava.narratives.templates`), and the
reported point is the template's hotspot:

- the templates are the video's own pointer sprites, learned from motion as the
  video plays (:mod:`quilt_llava.narratives.pointer`: any theme, colour, size or
  shape, several per video as the shape changes; their hotspot decided from the
  shape), and, until one is learned, a generic prior: arrow templates (dark fill /
  light outline; the absolute correlation also catches the inverted, white-filled
  pointer) at a few scales, hotspot at the tip. The prior stays matched beside the
  learned sprites (a classic arrow keeps its exact template and tip) until learned
  sprites have found the pointer 30 times: then each size of the prior that has not
  found it once since the first sprite was learned is retired (a pointer keeps its
  size through a recording); a sprite just learned is looked for where it rested
  earlier in the view, and learned sprites find a pointer that never moves in later views;
- while one sprite is locked (enough verified hits agree on it), motion it does not
  explain and every whole-frame search still try every learned shape, so a pointer
  that turns into a hand stays tracked;

- candidate regions come from blobs in the frame-to-frame difference (a moving or
  reappearing cursor), from the last position, and from a whole-frame search when a
  view starts or nothing is being tracked; each is matched as :mod:`templates` describes
  (masked correlation, a cheap unmasked pass first in large regions);
- the whole-frame search runs at half resolution, its many peaks rescored at full
  resolution: for the prior, and for a learned sprite that survives it (24 px or more,
  or found there where the learner saw it; a sprite with little structure of its own
  is searched at full resolution, 30-100 ms at 720p). A shape learned twice (sprites
  that look alike, ``TWIN_SCORE``) is searched once and its peaks checked with both.
  A repeat search redoes only the tiles near what changed since the last one, and
  none at all when nothing changed;
- a track is *verified* once the pointer is seen to differ from a pointer-free
  background (the last frame, except under the pointer, where the pixels from before
  it arrived are kept). Tissue that merely looks like an arrow never differs from
  itself, so an unverified track is held back: its hits are emitted when it is
  verified (the resting pointer starts to move) and dropped otherwise. A spot the
  pointer has just left differs from the last frame too, so verifying, and a verified
  track moving on, also need a difference from a frame ~8 back *in the template's
  pattern* (heavy compression re-codes the block a pointer passed, which then differs
  from before until the next keyframe, but not in the pointer's shape); a held-back
  track takes over a pointer appearing beside it only if its own spot changed; a
  verified track moves onto a match only if that match differs from the background (a
  pointer that vanished leaves tissue);
- among candidates, a verified one is preferred, and among those the most visible:
  compression leaves faint "ghosts" of a fast pointer that have its shape but not
  its contrast;
- when the cursor is first acquired, earlier frames of the same view are searched
  backwards from that position (a cursor that rested before it first moved; the view's
  last 200 frames are held); only every fourth held frame keeps its pixels (holding
  every decoded frame costs more memory traffic than the rest of the search), positions in between are
  interpolated for a pointer that barely moved;
- a pointer that rested from a view's start and then left (moved away fast, or vanished)
  is found from the spot it left (:mod:`quilt_llava.narratives.rest_recovery`): the view's
  oldest held frame and a later one differ where it was; looked for at the view's first
  verified hit, and, while none is verified, on quiet frames after something moved;
- once the pointer has left the spot where a verified track began, the frames before the
  track in which it rested there are found by its departure (:mod:`rest_recovery`): the spot
  differs from the frame after it in the pointer's pattern. A see-through or heavily
  compressed pointer matches its sprite at rest too weakly to be believed by shape alone;
- where nothing changed around a resting pointer, it is carried over without matching;
- the pointer's motion is judged over several frames (:mod:`track_motion`): where the locator
  has no hit of its own, a moving pointer is followed on its course, or found by weak matches
  that move along one course for a few frames; a hit that lies off what moves now in its frame
  (a compression ghost of where the pointer was), or that claims a rest while a pointer-sized
  thing moved elsewhere, is left out. The locator's own state is not changed by it;
- regions the caller marks as ignored (a webcam box) produce no candidates;
- nothing is reported below ``min_score`` or ``min_contrast``, so a hidden cursor
  yields no points.

A :class:`CursorLocator` has one required method, ``process(frame)``.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from quilt_llava.narratives.rest_recovery import RestProbe, rest_before, rest_before_move, since_first
from quilt_llava.narratives.split_work import SplitRunner
from quilt_llava.narratives.templates import (
    LEARNED_HALF_SEARCH,
    SMALL_SEARCH_FACTOR,
    Template,
    correlation_peaks,
    fill_ring_contrast,
    halved,
    in_opencv,
    learned_peaks,
    make_templates,
    masked_mean_diff,
    match_in,
    rescored,
    same_region,
    spot_diff,
    twin_score,
)
from quilt_llava.narratives.track_motion import (
    Course,
    MotionChain,
    MotionConfig,
    RecentFrames,
    Sighting,
    continued,
    lags,
    moved_elsewhere,
    placements,
)


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


class CursorLocator(Protocol):
    def process(self, frame: AnalysedFrame) -> list[CursorHit]:
        """Consume the next frame; return cursor hits (for this frame and possibly earlier ones)."""
        ...


@dataclass
class CursorConfig:
    scales: tuple[float, ...] = (0.6, 0.8, 1.0, 1.25, 1.6)  # template sizes, x the 720p arrow
    min_score: float = 0.62  # masked NCC below this is "no cursor"
    min_contrast: float = 25.0  # grey levels between the arrow's fill and its outline
    track_radius: int = 14  # px searched around the last position, per frame
    motion_threshold: int = 14  # grey levels of frame difference that count as motion
    max_blobs: int = 4
    max_blob_area: int = 900  # analysis px; bigger changes are not a cursor
    search_every: int = 25  # frames between whole-frame searches while nothing is tracked
    search_peaks: int = 16  # peaks of the coarse whole-frame search checked at full resolution
    # how far back a fresh acquisition is propagated, and a rest looked for (frames held; every
    # ``history_stride``-th keeps its pixels: 50 luma frames, ~46 MB at 720p, ~100 MB at 1080p)
    backfill_frames: int = 200
    backfill_radius: int = 8  # px searched per step when propagating backwards
    history_stride: int = 4  # of the frames held for backfill, every n-th keeps its pixels (1: all)
    lock_after: int = 15  # verified hits agreeing on one template size before it is locked
    # mean |frame - background| under the arrow that proves a pointer (CRF 35 re-sharpening after a pan: 11-13)
    min_change: float = 20.0
    sure_score: float = 0.9  # an unverified track is kept only at this shape score
    prefer_margin: float = 0.12  # how much shape score a verified candidate may give up
    max_step: float = 90.0  # px a pointer may move between frames and stay the same track
    still_threshold: int = 2  # max frame difference around a resting pointer that skips re-matching
    learn_sprites: bool = True  # learn the video's own pointer sprites from motion (see ``pointer.py``)
    # threads matching a frame's (box, template) pairs: the locator's own and, with 2, a helper for
    # part of the templates (the same results; OpenCV releases the GIL while it correlates)
    match_threads: int = 2


# A template's best match in a region: (score, tip x, tip y, template index, region index); and the one
# chosen as the pointer, with whether it was seen to differ from the background.
Match = tuple[float, float, float, int, int]
Choice = tuple[float, float, float, int, int, bool]

# Marks a history frame whose pixels were dropped (see ``CursorConfig.history_stride``).
_THINNED = np.empty((0, 0), np.uint8)

MIN_SEARCH_HEIGHT = 10  # px a template keeps at half resolution for the whole-frame search
PRIOR_SETTLED_SCORE = 0.8  # an arrow-prior track matching this well is a classic arrow: no sprite is learned meanwhile
# Learned sprites that look this alike (``twin_score``) are one shape learned twice (a translucent or tiny
# pointer seen over different tissue): the whole-frame search runs for the first one only, and its peaks
# are checked with each of them. An arrow, a hand and a crosshair of one theme score < 0.5.
TWIN_SCORE = 0.65
PARTIAL_SEARCH_SHARE = 0.3  # a repeat search redoes only the changed regions while they cover at most this share
PARTIAL_SEARCH_TILE = 16  # analysis px: changed regions are whole tiles of this size
# A template whose half-resolution peaks are rescored redoes at most this many changed regions; more
# cost more than its whole-frame search (about 2.5 ms a region against 7-9 ms a frame at 720p).
PATCH_RESCORED_REGIONS = 3
PARTIAL_SEARCH_MARGIN = 12  # px around a changed region beyond the largest template (peak windows, rescoring)
COARSE_TRIALS = 3  # sightings a small learned sprite must be found in at half resolution to be searched there
# Verified hits of learned sprites after which the sizes of the arrow prior that gave none since the
# first sprite was learned are no longer matched: the video's own sprites explain its pointer.
PRIOR_RETIRE_AFTER = 30
REST_CHECK_EVERY = 8  # frames between looks for a spot a resting pointer left, while none is verified in a view
# A verified track's start is probed for an earlier rest (``_probe_rest``) no sooner than this many frames
# later, and only frames whose match scores at least ``REST_FLOOR`` count (the departure verifies them).
REST_PROBE_WAIT = 3
REST_FLOOR = 0.45
MOTION = MotionConfig()  # a moving pointer followed where its shape scores too low (``_coast``)
# A frame's matches are shared with the helper thread (``CursorConfig.match_threads``) only from this
# many (box, template) pairs: handing a few over (~0.1 ms each time) costs more than it saves.
SPLIT_MIN_PAIRS = 6


class TemplateCursorLocator:
    """Shape-based cursor tracker; see the module docstring."""

    def __init__(self, frame_height: int, config: CursorConfig | None = None) -> None:
        self.config = config or CursorConfig()
        self.templates = make_templates(self.config.scales, frame_height)
        self.generic = len(self.templates)  # the first ``generic`` templates are the arrow prior; learned ones follow
        self.last_learned = -1  # template index of the learned sprite last tracked
        self.learner = None
        if self.config.learn_sprites:
            from quilt_llava.narratives.pointer import SpriteLearner

            self.learner = SpriteLearner(frame_height)
        self._split = SplitRunner(self.config.match_threads > 1)
        self.track: tuple[float, float, int] | None = None  # tip x, y and template index
        self.verified = False  # the current track was seen to differ from the background
        self.pending: list[CursorHit] = []  # hits of an unverified track
        self.dormant: list[CursorHit] = []  # unverified hits of the last track that ended
        self.bg_frame: np.ndarray | None = None  # the last frame (a reference, never written to)
        self.bg_patches: list[tuple[int, int, int, int, np.ndarray]] = []  # pointer-free pixels kept from before
        self.last_score = 0.0
        self.last_changed = False
        self.last_hit = -1  # frame index of the last hit (emitted or pending) of the track
        self._blobs_of = -1  # frame index the cached blob boxes belong to
        self._blobs: list[tuple[int, int, int, int]] = []
        # This frame's matches so far, (box, template index) -> match_in's result (see ``_match``).
        self._matched_luma: np.ndarray | None = None
        self._matched: dict[tuple[int, int, int, int, int], tuple[float, float, float]] = {}
        # The matches of the last frame matched before this one: a (box, template) pair whose pixels
        # are the same in this frame (a still view often decodes to identical pixels) has the same result.
        self._earlier_luma: np.ndarray | None = None
        self._earlier: dict[tuple[int, int, int, int, int], tuple[float, float, float]] = {}
        self._ignore_key: np.ndarray | None = None
        self._ignore_keep: np.ndarray | None = None
        # This frame's motion mask and its connected components (see ``_moved``, ``_components``):
        # the change record, the blob boxes and the sprite learner all read them.
        self._moved_of = -1
        self._moved_mask: np.ndarray | None = None
        self._components_of = -1
        self._component_stats: np.ndarray | None = None
        self.locked: int | None = None
        self.votes = np.zeros(len(self.templates), dtype=int)
        # Verified hits of each template since the first sprite was learned.
        self.wins: list[int] = []
        self.last_search = -(10**9)
        # The last whole-frame search's peak boxes, with the template lock and ignore mask it ran
        # under; reused while every frame since has been quiet (no motion pixel): a repeat
        # search of the same pixels finds the same peaks.
        self._peaks: tuple[int | None, np.ndarray | None, list[tuple[int, ...]]] | None = None
        # Where frames of this view changed since the last search (analysis scale, 1: motion), and
        # each template's peaks then (score, top-left x, y): a repeat search (also one for a new lock
        # or a sprite just learned) redoes only the changed regions (``PARTIAL_SEARCH_SHARE``) for
        # the templates it has peaks of; the rest of the frame has the same peaks.
        self._dirty: np.ndarray | None = None
        self._dirty_known = False  # False: a frame came without a motion image since that search
        self._raw: dict[int, list[tuple[float, int, int]]] = {}
        self._raw_ignore: np.ndarray | None = None  # the ignore mask they were found under
        self._twins_of = -1  # number of templates the twin map below was made for
        self._twin_map: dict[int, tuple[int, int, int]] = {}
        self.new_view = True
        self.rest_sought = False  # the view's first verified hit looked for where the pointer rested before
        self.rest_tried = -(10**9)  # frame index of the last such look while nothing was verified
        self.rest_moved = False  # a frame since that look had motion
        self.view_first: tuple[int, np.ndarray] | None = None  # (index, luma) of the view's first still frame
        # (index, luma, verified hit emitted) of this view's recent frames
        self.history: deque[tuple[int, np.ndarray | None, bool]] = deque(maxlen=self.config.backfill_frames)
        self.history_hits: dict[int, tuple[float, float] | None] = {}
        self.probe: RestProbe | None = None  # where the last verified track began, until its rest is settled
        self.course = Course(MOTION)  # where the pointer was in the last frames (see ``_coast``)
        self.chain = MotionChain(MOTION)  # weak sightings of a moving pointer no track holds
        self.recent = RecentFrames(MOTION)  # the view's last frames, to tell what moves in them
        self.moves: dict[int, list[tuple[int, int, int, int]]] = {}  # frame -> what moved in it (``_coast``)

    # -- candidate regions (top-left search boxes, full resolution) ----------------------

    def _box_around_tip(self, x: float, y: float, radius: int, t: Template) -> tuple[int, int, int, int]:
        hx, hy = t.hotspot
        return int(x - hx - radius), int(y - hy - radius), int(x - hx + radius + 1), int(y - hy + radius + 1)

    def _blob_boxes(self, frame: AnalysedFrame) -> list[tuple[int, int, int, int]]:
        if self._blobs_of != frame.index:
            self._blobs_of, self._blobs = frame.index, self._find_blobs(frame)
        return self._blobs

    def _moved(self, frame: AnalysedFrame) -> np.ndarray | None:
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

    def _components(self, frame: AnalysedFrame, moved: np.ndarray) -> np.ndarray:
        """``cv2.connectedComponentsWithStats`` stats of this frame's :meth:`_moved` (8-connected)."""
        import cv2

        if self._components_of != frame.index:
            self._components_of = frame.index
            self._component_stats = cv2.connectedComponentsWithStats(moved, connectivity=8)[2]
        assert self._component_stats is not None
        return self._component_stats

    def _find_blobs(self, frame: AnalysedFrame) -> list[tuple[int, int, int, int]]:
        import cv2

        moved = self._moved(frame)
        if moved is None or cv2.countNonZero(moved) == 0:
            return []
        cfg = self.config
        s = frame.scale
        sizes = [self.templates[k].image.shape for k in self._active()]
        th, tw = max(h for h, _ in sizes), max(w for _, w in sizes)
        bx, by, bw, bh = cv2.boundingRect(moved)
        if bw * s <= 3 * tw and bh * s <= 3 * th:
            # One compact change (the usual moving pointer): no need to label components.
            return [(bx * s - tw, by * s - th, (bx + bw) * s + 1, (by + bh) * s + 1)]
        stats = self._components(frame, moved)
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

    def _search_peaks(self, frame: AnalysedFrame) -> list[tuple[int, ...]]:
        """Whole-frame search (half resolution for pointers big enough to survive it); boxes
        around the best peaks, which are then scored at full resolution."""
        cfg = self.config
        luma = frame.luma
        half = None
        peaks: list[tuple[float, int, int]] = []  # (score, top-left x, y) at full resolution
        learned_peaks: list[tuple[float, int, int, int]] = []  # (score, x, y, template index)
        # Every learned shape, not only a locked one: the pointer may have changed shape while resting.
        active = self._unlocked() if len(self.templates) > self.generic else self._active()
        if self.track is not None and self.track[2] in active:  # the shape seen last is the likeliest
            active.remove(self.track[2])
            active.insert(0, self.track[2])
        elif self.last_learned in active:
            active.remove(self.last_learned)
            active.insert(0, self.last_learned)
        twins = self._twins()
        regions = self._search_regions(frame)
        raw: dict[int, list[tuple[float, int, int]]] = {}
        searched: set[int] = set()
        # Each shape's peaks are found up front, shared between this thread and the helper (they do
        # not depend on each other); the loop below reads them in order, as it would have made them.
        order = list(dict.fromkeys(twins[k][0] if k in twins else k for k in active))
        if order:
            half = halved(luma)
        made = dict(zip(order, self._all_peaks(order, luma, half, frame, regions)))
        for k in active:
            if learned_peaks and learned_peaks[0][0] >= cfg.sure_score:
                break  # a learned sprite found beyond doubt: the other shapes need no search
            k = twins[k][0] if k in twins else k  # a shape learned twice is searched once
            if k in searched:
                continue
            searched.add(k)
            found = made[k]
            raw[k] = found
            if self.templates[k].learned:
                learned_peaks += [(score, x, y, k) for score, x, y in found]
                learned_peaks.sort(reverse=True)
            else:
                peaks += found
        self._raw, self._raw_ignore = raw, frame.ignore
        self._dirty, self._dirty_known = None, True
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
        return [(x - r, y - r, x + r, y + r) for _, x, y in peaks[: cfg.search_peaks]] + [
            (x + dx - r, y + dy - r, x + dx + r, y + dy + r, j)
            for _, x, y, k in learned_peaks
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
        """The peaks of each template in ``order`` (see :meth:`_search_peaks`): a whole-frame search,
        or the last one's peaks with the changed ``regions`` redone; templates shared between this
        thread and the helper (``CursorConfig.match_threads``)."""
        assert half is not None or not order

        def peaks_of(k: int) -> list[tuple[float, int, int]]:
            assert half is not None
            if regions is None or k not in self._raw or not self._patch_pays(k, regions):
                return self._template_peaks(k, luma, half, frame.ignore)
            return self._patched_peaks(k, luma, half, frame, regions)

        # A learned sprite searched at full resolution costs several half-resolution searches.
        costs = [6.0 if self.templates[k].learned and not self.templates[k].coarse else 1.0 for k in order]
        return [found for (found,) in self._split.run([[functools.partial(peaks_of, k)] for k in order], costs)]

    def _template_peaks(
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

    def _patch_pays(self, k: int, regions: list[tuple[int, int, int, int]]) -> bool:
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
            for score, x, y in self._raw[k]
            if not any(x0 <= x <= x1 - tw and y0 <= y <= y1 - th for x0, y0, x1, y1 in regions)
        }
        for x0, y0, x1, y1 in regions:
            if x1 - x0 < tw or y1 - y0 < th:
                continue
            crop, half_crop = luma[y0:y1, x0:x1], half[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
            for score, x, y in self._template_peaks(k, crop, half_crop, None):
                x, y = int(x0 + x), int(y0 + y)  # regions overlap: a peak may be found twice
                ignored = frame.ignore is not None and _inside(frame.ignore, x, y, frame.scale)
                if not ignored and score > found.get((x, y), -1.0):
                    found[x, y] = score
        return sorted(((score, x, y) for (x, y), score in found.items()), reverse=True)[: self.config.search_peaks]

    def _note_change(self, frame: AnalysedFrame) -> None:
        """Add this still frame's motion (outside ignored regions) to what changed since the last search."""
        import cv2

        moved = self._moved(frame)
        if moved is None:
            self._dirty_known = False  # no previous frame to compare with: the next search covers the frame
            return
        if self._dirty is None or self._dirty.shape != moved.shape:
            self._dirty = moved.copy()  # (the frame's mask is shared: never written to)
        else:
            cv2.bitwise_or(self._dirty, moved, dst=self._dirty)

    def _search_stale(self, frame: AnalysedFrame) -> bool:
        """Must a due whole-frame search run again, or do the last one's peaks stand (nothing changed
        since, under the same lock and ignored regions)?"""
        import cv2

        return (
            self.new_view
            or self._peaks is None
            or self._peaks[0] != self.locked
            or self._peaks[1] is not frame.ignore
            or not self._dirty_known
            or (self._dirty is not None and cv2.countNonZero(self._dirty) > 0)
        )

    def _search_regions(self, frame: AnalysedFrame) -> list[tuple[int, int, int, int]] | None:
        """The regions (full resolution, x0, y0, x1, y1) a repeat search must redo: runs of tiles
        where frames changed since the last search (compression flicker scatters changes), grown
        by the largest template and a margin; None when the whole frame must be searched (a new
        view, another ignore mask, change near more than ``PARTIAL_SEARCH_SHARE`` of the frame)."""
        if self.new_view or not self._dirty_known or not self._raw or self._raw_ignore is not frame.ignore:
            return None
        if self._dirty is None:
            return []
        import cv2

        T = PARTIAL_SEARCH_TILE
        h, w = self._dirty.shape
        tiles = np.pad(self._dirty, ((0, -h % T), (0, -w % T)))
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

    def _twins(self) -> dict[int, tuple[int, int, int]]:
        """Learned sprites that are twins of an earlier one (``TWIN_SCORE``): index -> (that sprite's
        index, where this one's top-left lies from its top-left)."""
        if self._twins_of != len(self.templates):
            self._twins_of, self._twin_map = len(self.templates), {}
            firsts: list[int] = []
            for k in range(self.generic, len(self.templates)):
                for first in firsts:
                    score, dx, dy = twin_score(self.templates[first], self.templates[k])
                    if score >= TWIN_SCORE:
                        self._twin_map[k] = (first, dx, dy)
                        break
                else:
                    firsts.append(k)
        return self._twin_map

    # -- matching ------------------------------------------------------------------------

    def _candidates(
        self, luma: np.ndarray, boxes: list[tuple[int, ...]], templates: list[int]
    ) -> list[tuple[float, float, float, int, int]]:
        """Best match per box: (score, x, y, template, box index), strongest first. A box with
        a fifth entry (a learned sprite's search peak) is matched with that template alone
        when it is among ``templates``."""
        pairs = [(box, k) for box in boxes for k in self._box_templates(box, templates)]
        self._match_all(luma, pairs)
        found = []
        for b, box in enumerate(boxes):
            best = (0.0, 0.0, 0.0, -1, b)
            for k in self._box_templates(box, templates):
                score, x, y = self._match(luma, box, k)
                if score > best[0]:
                    best = (score, x, y, k, b)
            if best[0] >= self.config.min_score:
                found.append(best)
        return sorted(found, reverse=True)

    @staticmethod
    def _box_templates(box: tuple[int, ...], templates: list[int]) -> tuple[int, ...] | list[int]:
        """The templates a box is matched with: a search peak's own (fifth entry) when it is among
        ``templates``, else all of them."""
        own = box[4] if len(box) > 4 else -1
        return (own,) if own in templates else templates

    def _known_match(self, luma: np.ndarray, box: tuple[int, ...], k: int) -> tuple[float, float, float] | None:
        """``match_in`` of template ``k`` in ``box`` when already known: matched in this frame, or in
        the frame matched before with the same pixels there (then recorded for this frame)."""
        if self._matched_luma is not luma:
            if self._matched_luma is not None:
                self._earlier_luma, self._earlier = self._matched_luma, self._matched
            self._matched_luma, self._matched = luma, {}
        key = (box[0], box[1], box[2], box[3], k)
        found = self._matched.get(key)
        if found is None:
            found = self._earlier.get(key)
            if found is None or not same_region(luma, self._earlier_luma, box, self.templates[k]):
                return None
            self._matched[key] = found
        return found

    def _match(self, luma: np.ndarray, box: tuple[int, ...], k: int) -> tuple[float, float, float]:
        """``match_in`` of template ``k`` in ``box``, each pair matched once per frame: a frame's
        candidates are gathered in several rounds (the active templates, then every one; the blobs,
        then the tracking window and search peaks with the blobs again) that share boxes."""
        found = self._known_match(luma, box, k)
        if found is None:
            found = self._matched[box[0], box[1], box[2], box[3], k] = match_in(
                luma, box, self.templates[k], self.config.min_contrast
            )
        return found

    def _match_all(self, luma: np.ndarray, pairs: list[tuple[tuple[int, ...], int]]) -> None:
        """Match every (box, template) pair not yet known (see :meth:`_match`) whose match runs mostly
        in OpenCV (:func:`in_opencv`), the templates shared between this thread and a helper
        (``CursorConfig.match_threads``): each template's pairs on one thread (a template builds
        caches as it matches), results recorded as :meth:`_match` would. The others (a few dozen
        positions, correlated with numpy in small steps that hold the GIL) are matched as they are
        read: shared, they cost more CPU than they save time."""
        todo: dict[int, list[tuple[int, ...]]] = {}
        for box, k in pairs:
            if (
                in_opencv(luma.shape, box, self.templates[k])
                and self._known_match(luma, box, k) is None
                and box[:4] not in todo.setdefault(k, [])
            ):
                todo[k].append(box[:4])
        todo = {k: boxes for k, boxes in todo.items() if boxes}
        if len(todo) < 2 or sum(map(len, todo.values())) < SPLIT_MIN_PAIRS:
            return  # one template, or a few pairs (handing over costs more): matched as they are read
        min_contrast = self.config.min_contrast
        groups = [
            [functools.partial(match_in, luma, box, self.templates[k], min_contrast) for box in boxes]
            for k, boxes in todo.items()
        ]
        costs = [len(boxes) * self.templates[k].image.size for k, boxes in todo.items()]
        for (k, boxes), results in zip(todo.items(), self._split.run(groups, costs)):
            for box, found in zip(boxes, results):
                self._matched[(*box, k)] = found

    def _unlocked(self) -> list[int]:
        """Every template the lock may have left out: the arrow prior and the learned sprites
        (a classic arrow keeps matching its exact template, with its exact tip), less the
        prior's sizes that are retired (see :meth:`_retired`)."""
        retired = self._retired()
        return [k for k in range(len(self.templates)) if k not in retired]

    def _retired(self) -> set[int]:
        """Arrow-prior templates no longer matched: once learned sprites have given
        ``PRIOR_RETIRE_AFTER`` verified hits, every size of the prior that has given none since
        the first sprite was learned (a pointer keeps its size through a recording; the video's
        own sprites explain it, and matching the whole prior beside them costs more than all of
        them together). A size that keeps finding the pointer (a classic arrow) stays."""
        if sum(self.wins[self.generic :]) < PRIOR_RETIRE_AFTER:
            return set()
        return {k for k in range(self.generic) if self.wins[k] == 0}

    def _credit(self, k: int) -> None:
        """Count a verified hit of template ``k`` once a sprite is learned (see :meth:`_retired`)."""
        if len(self.templates) > self.generic:
            self.wins += [0] * (len(self.templates) - len(self.wins))
            self.wins[k] += 1

    def _active(self) -> list[int]:
        """Templates matched now: the locked one, else every template (the arrow prior and the
        learned sprites, see :meth:`_unlocked`)."""
        if self.locked is not None:
            return [self.locked]
        return self._unlocked()

    def _learn(self, frame: AnalysedFrame) -> list[CursorHit]:
        """Feed the sprite learner; a newly learned sprite joins the templates and unlocks them.
        Returns the hits of where it rested earlier in this view (see :meth:`_recover_rest`)."""
        if self.learner is None:
            return []
        import cv2

        blobs: list[tuple[int, int, int, int]] = []
        # Nothing to learn while a verified track holds the pointer: a learned sprite, or the arrow
        # prior matching well (a classic arrow keeps its exact template and tip).
        settled = (
            self.verified
            and self.track is not None
            and self.last_hit == frame.index - 1
            and (self.track[2] >= self.generic or self.last_score >= PRIOR_SETTLED_SCORE)
        )
        moved = self._moved(frame) if not settled else None
        if moved is not None and cv2.countNonZero(moved):
            stats = self._components(frame, moved)
            s = frame.scale
            order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:2] + 1
            blobs = [
                (
                    int(stats[i, 0]) * s,
                    int(stats[i, 1]) * s,
                    int(stats[i, 0] + stats[i, 2]) * s,
                    int(stats[i, 1] + stats[i, 3]) * s,
                )
                for i in order
                if stats[i, cv2.CC_STAT_AREA] <= self.config.max_blob_area
            ]
        found: list[CursorHit] = []
        for template in self.learner.observe(frame.index, frame.luma, blobs):
            template.coarse = min(template.image.shape) >= LEARNED_HALF_SEARCH or self._coarse_finds(template)
            self.templates.append(template)
            self.votes = np.zeros(len(self.templates), dtype=int)  # a new shape: the lock is earned afresh
            self.locked = None
            self._peaks = None
            self.last_search = -(10**9)
            found = self._recover_rest(len(self.templates) - 1)
        return found

    def _coarse_finds(self, t: Template) -> bool:
        """Does the half-resolution whole-frame search find a small sprite just learned where the
        learner saw it (``COARSE_TRIALS`` sightings, the latest)? A sprite with little structure of
        its own (a white fill whose outline was not learned, a 12 px hand) blurs into the tissue
        there and is searched at full resolution."""
        assert self.learner is not None
        cfg = self.config
        th, tw = t.image.shape
        tried = 0
        for _index, luma, (x0, y0, x1, y1) in self.learner.sightings[-COARSE_TRIALS:]:
            score, x, y = match_in(luma, (x0 - tw, y0 - th, x1, y1), t, cfg.min_contrast)
            if score < cfg.min_score:
                continue
            tx, ty = x - t.hotspot[0], y - t.hotspot[1]
            peaks = learned_peaks(luma, halved(luma), t, None, cfg.search_peaks, coarse=True)
            if not any(abs(px - tx) <= 2 and abs(py - ty) <= 2 for _, px, py in peaks):
                return False
            tried += 1
        return tried > 0

    def _recover_rest(self, k: int) -> list[CursorHit]:
        """A sprite just learned from motion: where did it rest before it first moved? From the
        view's oldest held frame (searched whole) forward, while the sprite is found beyond
        doubt (``sure_score``) near where it was; thinned frames between two sightings of a
        pointer that stayed within ``backfill_radius`` are interpolated. Then the frames where
        the learner saw it move, before it was known."""
        import cv2

        cfg = self.config
        t = self.templates[k]
        hits: list[CursorHit] = []
        gap: list[int] = []
        for index, luma, confirmed in self.history:
            if confirmed or luma is None:
                break
            if luma is _THINNED:
                gap.append(index)
                continue
            if not hits:
                res = np.abs(cv2.matchTemplate(luma, t.flat, cv2.TM_CCOEFF_NORMED))
                cv2.patchNaNs(res, 0.0)
                _, _, _, (px, py) = cv2.minMaxLoc(res)
                box = (px - 2, py - 2, px + 3, py + 3)
            else:
                box = self._box_around_tip(hits[-1].x, hits[-1].y, cfg.backfill_radius, t)
            score, x, y = match_in(luma, box, t, cfg.min_contrast)
            if score < cfg.sure_score:
                break
            if gap and hits:
                last = hits[-1]
                if math.hypot(x - last.x, y - last.y) > cfg.backfill_radius:
                    break
                hits += interpolated(gap, CursorHit(index, x, y, score), last.index, last.x, last.y, last.score)
            gap = []
            hits.append(CursorHit(index, x, y, score))
        # Then where the learner saw it moving, in frames it still holds.
        done = {h.index for h in hits} | {i for i, _, c in self.history if c}
        assert self.learner is not None
        for index, luma, (x0, y0, x1, y1) in self.learner.sightings:
            if index in done or (hits and index < hits[-1].index):
                continue
            th, tw = t.image.shape
            score, x, y = match_in(luma, (x0 - tw, y0 - th, x1, y1), t, cfg.min_contrast)
            if score >= cfg.min_score:
                hits.append(CursorHit(index, x, y, score))
        return sorted(hits, key=lambda h: h.index)

    def _rest_before(self, frame: AnalysedFrame, x: float, y: float, k: int) -> list[CursorHit]:
        """Hits of where the pointer, verified at (x, y) now with template ``k`` (-1: not found,
        the current track if any is left out), rested since the view's oldest held frame and has
        left (:mod:`quilt_llava.narratives.rest_recovery`), before the hits this track already holds."""
        if any(confirmed for _, _, confirmed in self.history):
            return []
        cfg = self.config
        # The verified shape first, then the shape tracked last, the learned ones, the prior.
        order = [k, self.last_learned, *range(len(self.templates) - 1, self.generic - 1, -1), *range(self.generic)]
        unlocked = set(self._unlocked())
        shapes = [j for j in dict.fromkeys(order) if j in unlocked]
        size = (frame.luma.shape[1], frame.luma.shape[0])
        if k >= 0:
            away = self.footprint(x, y, size)
        elif self.track is not None:
            away = self.footprint(self.track[0], self.track[1], size)
        else:
            away = (0, 0, 0, 0)
        hits = rest_before_move(
            self.history,
            frame.luma,
            away,
            self.templates,
            shapes,
            frame.ignore,
            cfg.min_score,
            cfg.min_contrast,
            cfg.min_change,
            self.view_first,
        )
        first = min([h.index for h in self.pending if k >= 0] + [frame.index])  # the verified track's own come first
        hits = [h for h in hits if h.index < first]
        self._confirm(hits)
        return hits

    def _confirm(self, hits: list[CursorHit]) -> None:
        """Mark the held frames of hits emitted for earlier frames as verified, so that a later
        track's backfill does not walk over them."""
        done = {h.index: (h.x, h.y) for h in hits}
        if done:
            self.history = deque(
                ((i, luma, confirmed or i in done) for i, luma, confirmed in self.history), maxlen=self.history.maxlen
            )
            self.history_hits.update(done)

    def _patch_box(self, x: float, y: float, t: Template) -> tuple[int, int, int, int]:
        th, tw = t.image.shape
        x0, y0 = round(x) - t.hotspot[0], round(y) - t.hotspot[1]
        return x0, y0, x0 + tw, y0 + th

    def _background_region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """The background in a region: the last frame, with the kept pointer-free patches on top."""
        assert self.bg_frame is not None
        region = self.bg_frame[y0:y1, x0:x1].copy()
        for px0, py0, px1, py1, patch in self.bg_patches:
            ix0, iy0, ix1, iy1 = max(x0, px0), max(y0, py0), min(x1, px1), min(y1, py1)
            if ix1 > ix0 and iy1 > iy0:
                region[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = patch[iy0 - py0 : iy1 - py0, ix0 - px0 : ix1 - px0]
        return region

    def _change(self, luma: np.ndarray, x: float, y: float, k: int) -> float:
        """Mean |frame - background| over the arrow's pixels at (x, y): a pointer differs from what it covers."""
        if self.bg_frame is None:
            return 0.0
        t = self.templates[k]
        x0, y0, x1, y1 = self._patch_box(x, y, t)
        H, W = luma.shape
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            return 0.0
        return masked_mean_diff(luma[y0:y1, x0:x1], self._background_region(x0, y0, x1, y1), t.mask)

    def _update_background(self, luma: np.ndarray, keep: list[tuple[float, float, int]]) -> None:
        """Background = this frame, except under the pointer (kept from before it arrived).

        Held as a reference to the frame plus small patches, so nothing full-size is copied."""
        if self.bg_frame is None:
            self.bg_frame, self.bg_patches = luma, []
            return
        H, W = luma.shape
        patches = []
        for x, y, k in keep:
            x0, y0, x1, y1 = self._patch_box(x, y, self.templates[k])
            x0, y0, x1, y1 = max(0, x0 - 2), max(0, y0 - 2), min(W, x1 + 2), min(H, y1 + 2)
            if x1 > x0 and y1 > y0:
                patches.append((x0, y0, x1, y1, self._background_region(x0, y0, x1, y1)))
        self.bg_frame, self.bg_patches = luma, patches

    def _end_track(self, view_ends: bool = False) -> list[CursorHit]:
        """A track ends. Its unverified hits wait (dormant) for the same spot to be re-acquired and
        verified; when the view ends they survive only if the shape match is unmistakable."""
        kept: list[CursorHit] = []
        if self.pending:
            self.dormant = self.pending
        self.pending = []
        self.verified = False
        if view_ends:
            kept = [h for h in self.dormant if h.score >= self.config.sure_score]
            self.dormant = []
        return kept

    def process(self, frame: AnalysedFrame) -> list[CursorHit]:
        if frame.moving:
            out = self._end_track(view_ends=True)
            if self.learner is not None:
                self.learner.new_view()
            self.track = None
            self.new_view = True
            self.rest_sought = self.rest_moved = False
            self.view_first = None
            self.history.clear()
            self.probe = None
            self.course.reset()
            self.chain.reset()
            self.recent.clear()
            self.moves.clear()
            self.history_hits.clear()
            self.bg_frame, self.bg_patches = None, []
            return out
        if self.view_first is None:
            self.view_first = (frame.index, frame.luma)  # a reference: frames are not written to
        self.recent.add(frame.index, frame.luma)
        self._note_change(frame)
        recovered = self._learn(frame)
        if recovered:
            return recovered + self._process_still(frame)
        return self._process_still(frame)

    def _process_still(self, frame: AnalysedFrame) -> list[CursorHit]:
        """One frame of a still view: a resting pointer is carried over; otherwise candidates are
        gathered, one is chosen, the track follows it, and the frame is kept for later steps."""
        rested = self._vanished(frame)
        if self._still_pointer(frame):
            return rested + self._carry_still(frame)
        out: list[CursorHit] = rested + self._spot_changed(frame)
        cands = self._gather(frame)
        self.new_view = False
        chosen = self._choose(frame, cands)
        keep: list[tuple[float, float, int]] = [] if self.track is None else [self.track]
        out += self._follow(frame, chosen)
        if self.track is not None and chosen is not None:
            keep.append(self.track)
        out = self._probe_rest(frame) + out
        shown = self._coast(frame, out)
        self._settle(frame, out, keep)
        return shown

    def _vanished(self, frame: AnalysedFrame) -> list[CursorHit]:
        """While no pointer is verified in a view and nothing moves, after something moved (at most
        every ``REST_CHECK_EVERY`` frames): hits of a pointer that rested since the view's start and
        then vanished, found by the spot it left (:meth:`_rest_before`). One that moved on is
        verified soon, and its first verified hit looks for that spot with its own shape."""
        if self.rest_sought or self.verified or frame.motion is None:
            return []
        if self._blob_boxes(frame):
            self.rest_moved = True  # something changed since the last look: look again once it is quiet
            return []
        if not self.rest_moved or frame.index - self.rest_tried < REST_CHECK_EVERY:
            return []
        self.rest_tried, self.rest_moved = frame.index, False
        rested = self._rest_before(frame, 0.0, 0.0, -1)
        if rested:
            # The pointer was elsewhere: what the unverified track held is not it.
            self.rest_sought = True
            self.track, self.pending, self.dormant = None, [], []
        return rested

    def _probe_rest(self, frame: AnalysedFrame) -> list[CursorHit]:
        """Once the pointer has left the spot where its verified track began (the track is more than
        the template's size away, or gone for ``REST_PROBE_WAIT`` frames), the frames before the
        track where it rested there (:func:`rest_recovery.rest_before`): the template matched near the
        spot at ``REST_FLOOR`` or better, and the spot differing from this frame in the pointer's
        pattern. Those frames get hits and count as verified."""
        probe = self.probe
        if probe is None or frame.index < probe.index + REST_PROBE_WAIT:
            return []
        t = self.templates[probe.k]
        if (
            self.track is not None
            and math.hypot(self.track[0] - probe.x, self.track[1] - probe.y)
            <= max(t.image.shape) + self.config.backfill_radius
        ):
            if self.history and self.history[0][0] >= probe.index - 1:
                self.probe = None  # no frame before it is held any more: no rest left to find
            return []
        self.probe = None
        radius = self.config.backfill_radius
        ref = frame.luma

        def match(luma: np.ndarray, x: float, y: float) -> tuple[float, float, float]:
            return match_in(luma, self._box_around_tip(x, y, radius, t), t)

        def differs(luma: np.ndarray, x: float, y: float) -> bool:
            diff = self._spot_diff(luma, ref, x, y, probe.k, shaped=True)
            return diff is not None and diff >= self.config.min_change

        found = rest_before(probe, self.history, match, differs, REST_FLOOR, radius)
        if not found:
            return []
        done = {i for i, *_ in found}
        self.history = deque(
            ((i, luma, confirmed or i in done) for i, luma, confirmed in self.history), maxlen=self.history.maxlen
        )
        for i, x, y, _score in found:
            self.history_hits[i] = (x, y)
        return [CursorHit(i, x, y, score) for i, x, y, score in found]

    def _carry_still(self, frame: AnalysedFrame) -> list[CursorHit]:
        """Nothing changed around a resting pointer: it is where it was; no matching needed."""
        x, y, _k = self.track  # type: ignore[misc]
        hit = CursorHit(frame.index, x, y, self.last_score)
        self.last_hit = frame.index
        if not self.verified:
            self.pending.append(hit)
            self._remember(frame.index, frame.luma, False)
            return []
        self._remember(frame.index, frame.luma if frame.ignore is None else None, True)
        self.history_hits[frame.index] = (x, y)
        return [hit]

    def _gather(self, frame: AnalysedFrame) -> list[Match]:
        """Candidates of this frame (see :meth:`_candidates`): in the moving blobs; unless one of
        them continues the verified track, also around the track's last position and at the peaks
        of a whole-frame search when one is due."""
        cfg = self.config
        active = self._active()
        if self.track is not None and self.track[2] not in active:
            active = [*active, self.track[2]]  # the shape tracked now, though the lock is on another
        blob_boxes = self._blob_boxes(frame)
        cands = self._allowed(frame, self._candidates(frame.luma, blob_boxes, active)) if blob_boxes else []
        if blob_boxes and not cands and self.locked is not None and len(self.templates) > self.generic:
            # Motion the locked sprite does not explain: the pointer may have changed shape.
            cands = self._allowed(frame, self._candidates(frame.luma, blob_boxes, self._unlocked()))
        if self._moved_on(frame, cands):
            return cands
        boxes: list[tuple[int, ...]] = []
        if self.track is not None:
            t = self.templates[self.track[2]]
            boxes.append(self._box_around_tip(self.track[0], self.track[1], cfg.track_radius, t))
        searched = False
        if (self.track is None or not self.verified) and self._search_due(frame):
            if self._search_stale(frame):
                self._peaks = (self.locked, frame.ignore, self._search_peaks(frame))
            boxes.extend(self._peaks[2])
            self.last_search = frame.index
            searched = True
        if boxes:
            cands = sorted(cands + self._allowed(frame, self._candidates(frame.luma, boxes, active)), reverse=True)
        boxes += blob_boxes
        if not cands and self.locked is not None and (searched or self.track is None) and boxes:
            # The locked size (or shape) may be wrong for this view (zoomed recording, a pointer
            # that changed shape); try every one.
            cands = self._allowed(frame, self._candidates(frame.luma, boxes, self._unlocked()))
        return cands

    def _choose(self, frame: AnalysedFrame, cands: list[Match]) -> Choice | None:
        """The candidate taken as the pointer, and whether it was seen to differ from the background."""
        cfg = self.config
        chosen = None
        strongest = 0.0
        for score, x, y, k, b in cands:
            # A candidate seen to differ from the background wins unless a clearly better shape
            # exists; among those, the most visible one (a compression ghost of the moving
            # pointer has the shape but not the contrast).
            if score < cands[0][0] - cfg.prefer_margin:
                break
            change = self._change(frame.luma, x, y, k)
            if change >= cfg.min_change and change > strongest and self._fresh(frame, x, y, k):
                chosen, strongest = (score, x, y, k, b, True), change
        if chosen is None and cands:
            # Nothing verified: rank by shape and by contrast. Pointers are drawn black on white
            # (or the reverse); tissue that happens to look like an arrow is far less contrasted.
            score, x, y, k, b = max(
                cands, key=lambda c: c[0] + 0.5 * min(1.0, self._contrast(frame.luma, c[1], c[2], c[3]) / 120)
            )
            chosen = (score, x, y, k, b, False)
        return chosen

    def _coast(self, frame: AnalysedFrame, out: list[CursorHit]) -> list[CursorHit]:
        """The hits ``out`` of this frame as shown, judged by the pointer's motion
        (:mod:`quilt_llava.narratives.track_motion`): this frame's own hit is left out where what
        moves now lies off it (a compression ghost of where the pointer was); where the frame has
        no hit, the pointer followed on its course at a lower shape score, or weak sightings in the
        moving blobs that move along one course for a few frames. The locator's state is left as
        it is (a hit of its own for the frame, emitted later, replaces one from here)."""
        if self.track is not None:
            k = self.track[2]
            out = [h for h in out if not self._lags(h, k) and not self._elsewhere(h, k, frame)]
        mine = [h for h in out if h.index == frame.index]
        if mine:
            self.chain.reset()
            if self.track is not None:
                self.course.seen(frame.index, mine[-1].x, mine[-1].y, self.track[2])
            return out
        # What moves in a frame without a hit: a later hit for it (a backfill never walks past a
        # frame with one) is judged by it, and the chains' sightings are looked for in it.
        moved = (self.recent.now_box(frame.index, b) for b in self._blob_boxes(frame))
        self.moves[frame.index] = [m for m in moved if m is not None]
        if len(self.moves) > self.config.backfill_frames:
            self.moves = {i: m for i, m in self.moves.items() if i > frame.index - self.config.backfill_frames}
        return out + self._coasted(frame)

    def _elsewhere(self, hit: CursorHit, k: int, frame: AnalysedFrame) -> bool:
        """Was the pointer moving elsewhere in the frame of a hit emitted for it later (a held-back
        track's hits, a backfill): something of a pointer's size moved in that frame, all of it
        away from the hit (:func:`track_motion.moved_elsewhere`), not touching what is now known to
        be a webcam? A pointer does not rest at one spot while it moves at another."""
        if hit.index >= frame.index:
            return False
        moves = self.moves.get(hit.index, [])
        if frame.ignore is not None:
            s = frame.scale
            moves = [
                m
                for m in moves
                if not any(_inside(frame.ignore, x, y, s) for x in (m[0], m[2] - 1) for y in (m[1], m[3] - 1))
            ]
        t = self.templates[k]
        return moved_elsewhere(self._patch_box(hit.x, hit.y, t), moves, max(t.image.shape))

    def _lags(self, hit: CursorHit, k: int) -> bool:
        """Does what moves in the hit's frame near ``hit`` (template ``k``) lie off it
        (:func:`track_motion.lags`)? False for a match beyond doubt (``sure_score``: what moves
        may also be the spot a pointer that rested has just left) and where the frames to tell
        are not held."""
        if hit.score >= self.config.sure_score:
            return False
        t = self.templates[k]
        x0, y0, x1, y1 = self._patch_box(hit.x, hit.y, t)
        m = max(t.image.shape)
        now = self.recent.now_box(hit.index, (x0 - m, y0 - m, x1 + m, y1 + m))
        return now is not None and lags((x0, y0, x1, y1), now)

    def _coasted(self, frame: AnalysedFrame) -> list[CursorHit]:
        """Hits from the pointer's motion for a frame without one of the locator's own."""
        expect = self.course.expect(frame.index)
        if expect is not None:
            x, y, k = expect
            t = self.templates[k]
            found = continued(
                frame.luma,
                (x, y),
                lambda luma, box: self._match(luma, box, k),
                t.hotspot,
                lambda x, y: self._new_there(frame, x, y, k),
                MOTION,
            )
            if found is not None:
                self.course.seen(frame.index, found[1], found[2], k)
                return [CursorHit(frame.index, found[1], found[2], found[0])]
        links = self.chain.offer(frame.index, self._sightings(frame))
        if links is None:
            return []
        for s in links:
            self.course.seen(s.index, s.x, s.y, s.k)
        return [CursorHit(s.index, s.x, s.y, s.score) for s in links]

    def _new_there(self, frame: AnalysedFrame, x: float, y: float, k: int) -> bool:
        """Does a pointer of shape ``k`` with its tip at (x, y) cover something new: it differs from
        the background, and from the view some frames back in the template's pattern?"""
        if frame.ignore is not None and _inside(frame.ignore, x, y, frame.scale):
            return False
        return self._change(frame.luma, x, y, k) >= self.config.min_change and self._new_here(frame, x, y, k)

    def _sightings(self, frame: AnalysedFrame) -> list[Sighting]:
        """Weak matches (``MOTION.chain_floor`` and up) of the active shapes where something in a
        moving blob is now (:func:`track_motion.footprint_now`), each new where it lies."""
        found = []
        active = self._active()
        # The video's own sprites once there are some (the arrow prior finds a classic arrow beyond doubt).
        shapes = [k for k in active if k >= self.generic] or active
        for now in self.moves.get(frame.index, []):
            for k in shapes:
                box = placements(now, self.templates[k].image.shape, MOTION.slack)
                score, x, y = self._match(frame.luma, box, k)
                if score >= MOTION.chain_floor and self._new_there(frame, x, y, k):
                    found.append(Sighting(frame.index, x, y, k, score))
        return found

    def _fresh(self, frame: AnalysedFrame, x: float, y: float, k: int) -> bool:
        """May a candidate at (x, y) that differs from the background count as seen to differ? Yes
        where the verified track rests (within 4 px); else only when it is new there
        (``_new_here``): the spot a pointer has just left differs from the last frame, and a track
        that moved onto it keeps the passing pointer in its background, so what lies there then
        differs from that background every frame."""
        if self.verified and self.track is not None and math.hypot(x - self.track[0], y - self.track[1]) <= 4:
            return True
        return self._new_here(frame, x, y, k)

    def _follow(self, frame: AnalysedFrame, chosen: Choice | None) -> list[CursorHit]:
        """The track follows the chosen candidate (or ends without one); returns the hits it emits:
        a verified track's hit, with the held-back ones of the track before it was verified."""
        cfg = self.config
        out: list[CursorHit] = []
        if chosen is None:
            out.extend(self._end_track())
            self.track = None
            return out
        score, x, y, k, _b, changed = chosen
        # Consecutive hits this close belong to one pointer, even when a blob rather than the
        # tracking window found it (a pointer that starts to move fast).
        continues = self.track is not None and math.hypot(x - self.track[0], y - self.track[1]) <= cfg.max_step
        if continues and not self.verified and not self._track_left(frame, x, y):
            continues = False  # what the unverified track held is still there: not this pointer
        if continues and self.verified and not changed and math.hypot(x - self.track[0], y - self.track[1]) > 4:
            # A pointer that moved differs from what it now covers; an unchanged match some way
            # off (tissue beside a pointer that vanished) starts a track of its own.
            continues = False
        if changed and not self._fresh(frame, x, y, k):
            changed = False  # a spot the pointer just passed over: what shows there now was there before
        if not continues:
            out.extend(self._end_track())
            self.pending = self._backfill(x, y, k, frame.ignore, frame.scale)
            if self.dormant and abs(self.dormant[-1].x - x) <= 4 and abs(self.dormant[-1].y - y) <= 4:
                # The same resting pointer, lost for a moment: its earlier hits rejoin this track.
                self.pending = [
                    h for h in self.dormant if h.index < (self.pending[0].index if self.pending else frame.index)
                ] + self.pending
            self.dormant = []
        hit = CursorHit(frame.index, x, y, score)
        if changed or (continues and self.verified):
            # Seen to differ from the background: this track is the pointer.
            if self.locked is None:
                self._vote(k)
            self._credit(k)
            if not self.rest_sought:  # the view's first verified hit: where did the pointer rest before?
                self.rest_sought = True
                out.extend(self._rest_before(frame, x, y, k))
            if not self.verified:  # where the track began: did the pointer rest there before? (see ``_probe_rest``)
                first = self.pending[0] if self.pending else hit
                self.probe = RestProbe(first.index, first.x, first.y, k)
            out.extend(self.pending)
            self.pending = []
            self.verified = True
            out.append(hit)
        else:
            self.pending.append(hit)
        self.track = (x, y, k)
        if k >= self.generic:
            self.last_learned = k
        self.last_score = score
        self.last_hit = frame.index
        # Only a pointer seen to differ from what it covers may be carried over unchanged frames.
        self.last_changed = changed or self._change(frame.luma, x, y, k) >= cfg.min_change
        return out

    def _settle(self, frame: AnalysedFrame, out: list[CursorHit], keep: list[tuple[float, float, int]]) -> None:
        """After a frame's matching: the pointer-free background, and the frame kept in the view's
        history (``keep``: where the pointer was before and is now)."""
        self._update_background(frame.luma, keep)
        confirmed = bool(out) and out[-1].index == frame.index
        # Backfill never walks past a confirmed frame, so its pixels need not be kept, except
        # before a webcam is known: a hit there may turn out to be the webcam.
        keep_pixels = not confirmed or frame.ignore is None
        # Frames are not written to after decoding, so a reference is enough (no copy).
        self._remember(frame.index, frame.luma if keep_pixels else None, confirmed)
        self.history_hits[frame.index] = (out[-1].x, out[-1].y) if confirmed else None

    def _spot_changed(self, frame: AnalysedFrame) -> list[CursorHit]:
        """Did the spot of an unverified track change since the previous frame? Tissue under a
        still view does not change; a pointer that leaves or vanishes does. Then the track was
        a pointer: its held-back hits are returned and the track ends (what matches there now
        may be tissue)."""
        if self.track is None or self.verified or not self.pending or not self.history:
            return []
        index, before, _ = self.history[-1]
        if before is None or index != frame.index - 1 or self.pending[-1].index != index:
            return []
        diff = self._spot_diff(frame.luma, before, *self.track)
        if diff is None or diff < self.config.min_change:
            return []
        hits, self.pending = self.pending, []
        self.track = None
        # Unmistakable ones stand: a later track's backfill (tissue found once the pointer left) does not replace them.
        self._confirm([h for h in hits if h.score >= self.config.sure_score])
        return hits

    def _track_left(self, frame: AnalysedFrame, x: float, y: float) -> bool:
        """May a hit at (x, y) continue the unverified track? Only if it lies on the track's spot,
        or that spot changed since the track's last hit (the resting pointer moved away from
        it): tissue that looks like a pointer stays where it is when the real pointer appears
        nearby, and its held-back hits must not be taken for the pointer's."""
        assert self.track is not None
        tx, ty, k = self.track
        if math.hypot(x - tx, y - ty) <= 4 or not self.pending:
            return True
        last = self.pending[-1].index
        before = next((luma for i, luma, _ in reversed(self.history) if i == last), None)
        if before is None or before.size == 0:
            return True  # no pixels kept to compare with
        diff = self._spot_diff(frame.luma, before, tx, ty, k)
        return diff is None or diff >= 0.5 * self.config.min_change

    def _new_here(self, frame: AnalysedFrame, x: float, y: float, k: int, back: int = 8) -> bool:
        """Is what matches at (x, y) new there? A spot differs from the background (the last frame)
        both where the pointer arrives and where it has just left; in the second case the spot
        shows what it showed before the pointer passed. So a match that would verify a track must
        also differ from the view's oldest held frame at most ``back`` frames earlier (True when
        none). A pointer that took longer than that to pass over the spot is not caught (the
        view's oldest frame would catch it, but also refuses a pointer returning to where it
        was: recall on redglass-crf36 0.522 -> 0.508)."""
        older = newest = None  # the oldest held frame within ``back``, else the newest held one
        for i, luma, _ in reversed(self.history):
            if luma is None or not luma.size:
                continue
            newest = luma if newest is None else newest
            if i < frame.index - back:
                break
            older = luma
        older = newest if older is None else older
        if older is None:
            return True
        diff = self._spot_diff(frame.luma, older, x, y, k, shaped=True)
        return diff is None or diff >= 0.5 * self.config.min_change

    def _spot_diff(
        self, luma: np.ndarray, other: np.ndarray, x: float, y: float, k: int, shaped: bool = False
    ) -> float | None:
        """:func:`spot_diff` of template ``k``."""
        return spot_diff(luma, other, x, y, self.templates[k], shaped)

    def _contrast(self, luma: np.ndarray, x: float, y: float, k: int) -> float:
        """|mean(fill) - mean(outline)| of the arrow with its tip at (x, y)."""
        t = self.templates[k]
        x0, y0, x1, y1 = self._patch_box(x, y, t)
        H, W = luma.shape
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            return 0.0
        return fill_ring_contrast(luma[y0:y1, x0:x1], t)

    def _allowed(self, frame: AnalysedFrame, cands: list) -> list:
        """Nothing inside an ignored region (a webcam) is a pointer, a track that wandered there included."""
        if frame.ignore is None:
            return cands
        return [c for c in cands if not _inside(frame.ignore, c[1], c[2], frame.scale)]

    def _moved_on(self, frame: AnalysedFrame, cands: list) -> bool:
        """Does a blob candidate continue the verified track, seen to differ from the background?"""
        if self.track is None or not self.verified or not cands:
            return False
        tx, ty, _ = self.track
        return any(
            math.hypot(x - tx, y - ty) <= self.config.max_step
            and score >= cands[0][0] - self.config.prefer_margin
            and self._change(frame.luma, x, y, k) >= self.config.min_change
            for score, x, y, k, _ in cands
        )

    def _search_due(self, frame: AnalysedFrame) -> bool:
        """A whole-frame search runs when a view starts, then every ``search_every`` frames while
        nothing is tracked, and half as often while an unverified candidate is held, unless that
        one matches the pointer's shape beyond doubt (``sure_score``)."""
        if self.new_view:
            return True
        if self.track is not None and self.last_score >= self.config.sure_score:
            return False
        every = self.config.search_every * (1 if self.track is None else 2)
        return frame.index - self.last_search >= every

    def _still_pointer(self, frame: AnalysedFrame) -> bool:
        # A verified pointer must have been seen to differ from its background (not a ghost
        # left on static tissue); an unverified one stays pending either way.
        if (
            self.track is None
            or (self.verified and not self.last_changed)
            or frame.motion is None
            or self.last_hit != frame.index - 1
        ):
            return False
        x, y, k = self.track
        if frame.ignore is not None and _inside(frame.ignore, x, y, frame.scale):
            return False  # the track sits in what is now known to be a webcam
        th, tw = self.templates[k].image.shape
        hx, hy = self.templates[k].hotspot
        s = frame.scale
        x0, y0 = max(0, int((x - hx) // s) - 1), max(0, int((y - hy) // s) - 1)
        x1, y1 = int((x - hx + tw) // s) + 2, int((y - hy + th) // s) + 2
        region = frame.motion[y0:y1, x0:x1]
        if region.size == 0 or int(region.max()) > self.config.still_threshold:
            return False
        if not self.verified:
            # An unverified track may be tissue that looks like a pointer: keep looking for
            # the real one (a whole-frame search when due, any moving blob) before resting.
            return not self._search_due(frame) and not self._blob_boxes(frame)
        return True

    def footprint(self, x: float, y: float, frame_size: tuple[int, int], margin: int = 3) -> tuple[int, int, int, int]:
        """Pixels a pointer with its tip at (x, y) covers (x0, y0, x1, y1), clipped to the frame: the
        union of every template's box (retired sizes of the prior and unlocked shapes included: a
        learned sprite may miss a shadow or a translucent edge that the wider union still covers)."""
        boxes = [self._patch_box(x, y, t) for t in self.templates]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        w, h = frame_size
        return max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)

    def finish(self) -> list[CursorHit]:
        """Call after the last frame: settles the open track (and ends the matching helper)."""
        self._split.close()
        return self._end_track(view_ends=True)

    def _vote(self, k: int) -> None:
        """Lock the template size once verified pointer hits agree on it."""
        self.votes[k] += 1
        best = int(np.argmax(self.votes))
        if self.votes[best] >= self.config.lock_after and self.votes[best] >= 0.75 * self.votes.sum():
            self.locked = best

    def _backfill(
        self, x: float, y: float, k: int, ignore: np.ndarray | None = None, scale: int = 4
    ) -> list[CursorHit]:
        """Walk back through this view's earlier frames while the cursor is found near (x, y).

        Frames whose pixels were thinned out (see ``history_stride``) get the position
        interpolated between the kept frames around them, when the pointer moved no more
        than ``backfill_radius`` across the gap; otherwise the walk stops there."""
        hits: list[CursorHit] = []
        t = self.templates[k]
        th, tw = t.image.shape
        radius = self.config.backfill_radius
        last: tuple[tuple[int, int, int, int], np.ndarray, tuple[float, float, float]] | None = None
        gap: list[int] = []  # thinned frames passed since the last match (newest first)
        for index, luma, confirmed in reversed(self.history):
            if luma is None:
                break
            if confirmed:  # never overwrite a verified hit, unless it lies in what is now known to be a webcam
                pos = self.history_hits.get(index)
                if ignore is None or pos is None or not _inside(ignore, pos[0], pos[1], scale):
                    break
            if luma is _THINNED:
                gap.append(index)
                continue
            box = self._box_around_tip(x, y, radius, t)
            # A resting pointer over a still view: the pixels match_in reads are often exactly those
            # of the frame after, and then so is its result.
            region = (slice(max(0, box[1]), max(0, box[3] + th)), slice(max(0, box[0]), max(0, box[2] + tw)))
            if last is not None and last[0] == box and np.array_equal(last[1][region], luma[region]):
                score, bx, by = last[2]
            else:
                score, bx, by = match_in(luma, box, t, self.config.min_contrast)
            last = (box, luma, (score, bx, by))
            if score < self.config.min_score:
                break
            if gap:
                if not hits or math.hypot(bx - x, by - y) > radius:
                    break  # moved (or vanished) while no pixels were kept: stop short of the gap
                hits += interpolated(gap, hits[-1], index, bx, by, score)
                gap = []
            hits.append(CursorHit(index, bx, by, score))
            x, y = bx, by
        else:
            if hits and self.view_first is not None and len(self.history) == self.history.maxlen:
                # Walked back past every held frame: a rest longer than they span began at the view's start
                # if the pointer is there in its first frame.
                cfg = self.config
                hits += since_first(self.view_first, hits[-1], t, None, cfg.min_score, cfg.min_contrast, cfg.min_change)
        return hits[::-1]

    def _remember(self, index: int, luma: np.ndarray | None, confirmed: bool) -> None:
        """Add a frame to the view's history; the previous frame's pixels are dropped unless it
        falls on the ``history_stride`` (holding fewer decoded frames keeps memory traffic down)."""
        stride = self.config.history_stride
        if stride > 1 and self.history:
            i, before, was_confirmed = self.history[-1]
            if before is not None and i % stride != 0:
                self.history[-1] = (i, _THINNED, was_confirmed)
        self.history.append((index, luma, confirmed))


def _inside(mask: np.ndarray, x: float, y: float, scale: int) -> bool:
    """Is full-resolution (x, y) inside an analysis-scale boolean ``mask``?"""
    h, w = mask.shape
    return bool(mask[min(h - 1, max(0, int(y // scale))), min(w - 1, max(0, int(x // scale)))])
