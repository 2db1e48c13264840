"""Sprites the learner finds in the video, taken into the locator's shapes, with where they rested.

In: each still frame's largest moving blobs, fed to the sprite learner
(:class:`~quilt_llava.narratives.pointer.SpriteLearner`), and the view's held frames
(:class:`~quilt_llava.narratives.view_history.ViewHistory`). Out: each sprite just learned
joins the :class:`~quilt_llava.narratives.sprite_set.SpriteSet` (unlocking it; the next
whole-frame search is due at once), marked ``coarse`` when the half-resolution search finds it
(``COARSE_TRIALS``); and the hits of where it was before it was known
(:meth:`SpriteIntake.observe`): where it rested from the view's oldest held frame forward while
it is found beyond doubt (``sure_score``), then where the learner saw it move (on the sighting's
box, :func:`on_sighting`: a smeared sighting can match the sprite half its size off), or, where
it came to its rest later (it appeared there, or changed shape in place) and sped away from it,
the rest it departed from (:meth:`SpriteIntake.departed_rest`). A sprite that is the same shape
learned again (a twin) points where the known one does when that is more the way desktop pointers
point (:func:`~quilt_llava.narratives.pointer.agreed_hotspot`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.cursor_hits import THINNED, AnalysedFrame, CursorHit, interpolated
from quilt_llava.narratives.earlier_rests import REST_FLOOR
from quilt_llava.narratives.hotspot import agreed_hotspot
from quilt_llava.narratives.rest_recovery import departed, rest_before_departure
from quilt_llava.narratives.sprite_set import SpriteSet
from quilt_llava.narratives.templates import (
    LEARNED_HALF_SEARCH,
    Template,
    box_around_tip,
    halved,
    learned_peaks,
    match_in,
)
from quilt_llava.narratives.view_history import ViewHistory
from quilt_llava.narratives.whole_frame_search import WholeFrameSearch

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig
    from quilt_llava.narratives.pointer import SpriteLearner

# how far (a share of the sprite's width and height) a hit recovered where the learner saw the
# pointer move may lie from that sighting's centre (``on_sighting``)
SIGHTING_AGREE = 0.25
COARSE_TRIALS = 3  # sightings a small learned sprite must be found in at half resolution to be searched there


class SpriteIntake:
    """Feeds the sprite learner and takes what it learns into the locator's shapes."""

    def __init__(
        self,
        learner: SpriteLearner,
        sprites: SpriteSet,
        search: WholeFrameSearch,
        history: ViewHistory,
        config: CursorConfig,
    ) -> None:
        self.learner = learner
        self.sprites = sprites
        self.templates = sprites.templates
        self.search = search
        self.history = history
        self.config = config

    def observe(self, frame: AnalysedFrame, blobs: list[tuple[int, int, int, int]] | None) -> list[CursorHit]:
        """Feed the learner this frame's moving ``blobs`` (None: not looked at); a newly learned sprite joins the
        templates and unlocks them. Returns the hits of where it rested earlier in this view
        (see :meth:`recover_rest`)."""
        found: list[CursorHit] = []
        for template in self.learner.observe(frame.index, frame.luma, blobs, frame.ignore, frame.scale):
            # one pointer, one hotspot: a twin of a known sprite points where that one does (``agreed_hotspot``)
            template.hotspot = agreed_hotspot(
                template,
                self.templates[self.sprites.generic :],
                self.learner.config.complete_px * self.learner.unit,
                self.learner.config.symmetric_iou,
            )
            template.coarse = min(template.image.shape) >= LEARNED_HALF_SEARCH or self.coarse_finds(template)
            k = self.sprites.add(template)  # a new shape: the lock is earned afresh
            self.search.forget()
            found = self.recover_rest(k, frame.luma)
        return found

    def coarse_finds(self, t: Template) -> bool:
        """Does the half-resolution whole-frame search find a small sprite just learned where the
        learner saw it (``COARSE_TRIALS`` sightings, the latest)? A sprite with little structure of
        its own (a white fill whose outline was not learned, a 12 px hand) blurs into the tissue
        there and is searched at full resolution."""
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

    def recover_rest(self, k: int, now: np.ndarray | None = None) -> list[CursorHit]:
        """A sprite just learned from motion: where did it rest before it first moved? From the
        view's oldest held frame (searched whole) forward, while the sprite is found beyond
        doubt (``sure_score``) near where it was; thinned frames between two sightings of a
        pointer that stayed within ``backfill_radius`` are interpolated. Then the frames where
        the learner saw it move, before it was known: the best match around the sighting
        where it is beyond doubt or lies on the sighting (:func:`on_sighting`), else the best
        match on the sighting. Where no rest was found from the oldest held frame and ``now`` (the
        frame the sprite was learned in) is given, the rest it departed from near its first
        sighting (:meth:`departed_rest`)."""
        import cv2

        cfg = self.config
        t = self.templates[k]
        hits: list[CursorHit] = []
        gap: list[int] = []
        last_luma: np.ndarray | None = None  # the frame of the walk's last hit
        for index, luma, confirmed in self.history.frames:
            if confirmed or luma is None:
                break
            if luma is THINNED:
                gap.append(index)
                continue
            if not hits:
                res = np.abs(cv2.matchTemplate(luma, t.flat, cv2.TM_CCOEFF_NORMED))
                cv2.patchNaNs(res, 0.0)
                _, _, _, (px, py) = cv2.minMaxLoc(res)
                box = (px - 2, py - 2, px + 3, py + 3)
            else:
                box = box_around_tip(hits[-1].x, hits[-1].y, cfg.backfill_radius, t)
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
            last_luma = luma
        if hits and now is not None and last_luma is not None and self.still_there(t, hits[-1], last_luma, now):
            hits = []  # a still lookalike, not where the pointer rested
        rested = bool(hits)
        # Then where the learner saw it moving, in frames it still holds.
        done = {h.index for h in hits} | {i for i, _, c in self.history.frames if c}
        for index, luma, box in self.learner.sightings:
            if index in done or (hits and index < hits[-1].index):
                continue
            th, tw = t.image.shape
            x0, y0, x1, y1 = box
            score, x, y = match_in(luma, (x0 - tw, y0 - th, x1, y1), t, cfg.min_contrast)
            if score < cfg.sure_score and not on_sighting(x, y, t, box):
                # Not beyond doubt and off where the learner saw it (a smeared sighting matched
                # at an offset): the best match that lies on the sighting, if any. Where nothing
                # there has the sprite's contrast, the box says nothing of where it lies (a part
                # of the pointer that moved, a fragment), and the match around it stands.
                on = match_in(luma, sighting_box(t, box), t, cfg.min_contrast)
                if on[0] > 0.0:
                    score, x, y = on
            if score >= cfg.min_score:
                hits.append(CursorHit(index, x, y, score))
        if now is not None and not rested:
            hits += self.departed_rest(t, now)
        return sorted(hits, key=lambda h: h.index)

    def still_there(self, t: Template, last: CursorHit, luma: np.ndarray, now: np.ndarray) -> bool:
        """Is the rest the walk from the view's oldest held frame found (``last``: its last hit, in
        frame ``luma``) a still lookalike of sprite ``t``: away from every place the learner saw the
        pointer move (a sprite's size and more from each sighting), and no different in ``now`` (the
        frame ``t`` was learned in) in the sprite's pattern? The pointer was learned moving
        elsewhere, so a rest of its own has been left by then; tissue or a toolbar's glyph that looks
        like it stays (a 14 x 3 px sliver of a drawn cross matched the edge of a toolbar's text at
        ``sure_score`` in every frame of draw 13's first view, 77 far hits)."""
        th, tw = t.image.shape
        for _index, _luma, (x0, y0, x1, y1) in self.learner.sightings:
            if x0 - tw <= last.x <= x1 + tw and y0 - th <= last.y <= y1 + th:
                return False
        return not departed(now, t, self.config.min_change)(luma, last.x, last.y)

    def departed_rest(self, t: Template, now: np.ndarray) -> list[CursorHit]:
        """Where the pointer of sprite ``t``, just learned in frame ``now``, rested before the learner
        first saw it move, when it came there after the view's oldest held frame (it appeared there,
        or changed shape in place): around that sighting, frames where ``t`` matches at
        ``REST_FLOOR`` and the spot differs from ``now`` in the sprite's pattern (the pointer has
        left it; :func:`~quilt_llava.narratives.rest_recovery.rest_before_departure`). A see-through
        pointer at rest over tissue matches its sprite too weakly to be sure of by shape alone
        (a red glass crosshair: 0.55-0.8), and the walk back from where it was learned
        (:meth:`ViewHistory.backfill`) cannot follow it as it sped up from rest. The hits count as
        verified."""
        if not self.learner.sightings:
            return []
        cfg = self.config
        first, _luma, (x0, y0, x1, y1) = min(self.learner.sightings, key=lambda s: s[0])
        th, tw = t.image.shape
        # top-left positions from which the sprite covers the sighting, and a sprite's size beyond
        seed = (x0 - 2 * tw, y0 - 2 * th, x1 + tw, y1 + th)

        hits = rest_before_departure(
            self.history.frames,
            first,
            seed,
            lambda luma, box: match_in(luma, box, t, cfg.min_contrast),
            lambda x, y: box_around_tip(x, y, cfg.backfill_radius, t),
            departed(now, t, cfg.min_change),
            REST_FLOOR,
            cfg.backfill_radius,
        )
        self.history.confirm(hits)
        return hits


def sighting_box(t: Template, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Top-left positions (for :func:`match_in`) that put template ``t`` on the sighting ``box``
    (:func:`on_sighting`)."""
    th, tw = t.image.shape
    ax, ay = max(2, int(SIGHTING_AGREE * tw)), max(2, int(SIGHTING_AGREE * th))
    x, y = round((box[0] + box[2] - tw) / 2), round((box[1] + box[3] - th) / 2)
    return x - ax, y - ay, x + ax, y + ay


def on_sighting(x: float, y: float, t: Template, box: tuple[int, int, int, int]) -> bool:
    """Does template ``t`` with its hotspot at (x, y) lie where the learner saw the pointer (``box``:
    the part of that frame that differed from the frames before and after)? Its centre must be
    within ``SIGHTING_AGREE`` of the sprite's width and height from the box's centre. The search
    around a sighting spans a whole sprite on every side; a pointer smeared by motion (or by
    compression) can match its sprite there at an offset of half its size, off the pointer."""
    th, tw = t.image.shape
    cx, cy = x - t.hotspot[0] + tw / 2, y - t.hotspot[1] + th / 2
    bx, by = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return abs(cx - bx) <= max(2.0, SIGHTING_AGREE * tw) and abs(cy - by) <= max(2.0, SIGHTING_AGREE * th)
