"""Where the pointer rested earlier in a view, looked for at the moments the locator can tell.

In: the locator's still frames with its track (where the pointer is now, and whether it is
verified), the view's held frames (:class:`~quilt_llava.narratives.view_history.ViewHistory`)
and the shapes (:class:`~quilt_llava.narratives.sprite_set.SpriteSet`). Out: hits for earlier
frames, which the history then counts as verified. Three moments, each walking the held frames
with :mod:`quilt_llava.narratives.rest_recovery`:

- the view's first verified hit (:meth:`EarlierRests.first_verified`): where did the pointer
  rest since the view's oldest held frame before it moved here (the spot it left)?
- while nothing is verified, a quiet frame after something moved, at most every
  ``REST_CHECK_EVERY`` frames (:meth:`EarlierRests.vanished`): a pointer that rested and then
  vanished;
- once the pointer has left the spot where its verified track began (:attr:`EarlierRests.probe`,
  :meth:`EarlierRests.probe_rest`): the frames before the track where it rested there, told by
  the spot differing from the frame after the departure in the pointer's pattern.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.cursor_hits import AnalysedFrame, CursorHit
from quilt_llava.narratives.rest_recovery import RestProbe, departed, rest_before, rest_before_move
from quilt_llava.narratives.sprite_set import SpriteSet
from quilt_llava.narratives.templates import box_around_tip, match_in
from quilt_llava.narratives.view_history import ViewHistory

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig

REST_CHECK_EVERY = 8  # frames between looks for a spot a resting pointer left, while none is verified in a view
# A verified track's start is probed for an earlier rest (``probe_rest``) no sooner than this many frames
# later, and only frames whose match scores at least ``REST_FLOOR`` count (the departure verifies them).
REST_PROBE_WAIT = 3
REST_FLOOR = 0.45

Track = tuple[float, float, int]  # tip x, y and template index


class EarlierRests:
    """When a view's earlier rests were looked for, and the spot of the last verified track's start."""

    def __init__(self, sprites: SpriteSet, history: ViewHistory, config: CursorConfig) -> None:
        self.sprites = sprites
        self.templates = sprites.templates
        self.history = history
        self.config = config
        self.sought = False  # the view's first verified hit looked for where the pointer rested before
        self.tried = -(10**9)  # frame index of the last such look while nothing was verified
        self.moved = False  # a frame since that look had motion
        self.probe: RestProbe | None = None  # where the last verified track began, until its rest is settled

    def clear(self) -> None:
        """The view ended."""
        self.sought = self.moved = False
        self.probe = None

    def first_verified(
        self, frame: AnalysedFrame, x: float, y: float, k: int, pending: list[CursorHit]
    ) -> list[CursorHit]:
        """A track is verified at (x, y) with template ``k``: on the view's first verified hit,
        where the pointer rested before (:meth:`before`; ``pending``: the track's held-back hits)."""
        if self.sought:
            return []
        self.sought = True
        return self.before(frame, x, y, k, None, pending)

    def vanished(
        self,
        frame: AnalysedFrame,
        verified: bool,
        track: Track | None,
        blob_boxes: Callable[[], list[tuple[int, int, int, int]]],
    ) -> list[CursorHit]:
        """While no pointer is verified in a view and nothing moves, after something moved (at most
        every ``REST_CHECK_EVERY`` frames): hits of a pointer that rested since the view's start and
        then vanished, found by the spot it left (:meth:`before`). One that moved on is verified
        soon, and its first verified hit looks for that spot with its own shape. Hits here mean
        the pointer was elsewhere: what the unverified ``track`` held is not it."""
        if self.sought or verified or frame.motion is None:
            return []
        if blob_boxes():
            self.moved = True  # something changed since the last look: look again once it is quiet
            return []
        if not self.moved or frame.index - self.tried < REST_CHECK_EVERY:
            return []
        self.tried, self.moved = frame.index, False
        rested = self.before(frame, 0.0, 0.0, -1, track, [])
        if rested:
            self.sought = True
            self.history.guessed(rested)  # a verified track that matches better there replaces them
        return rested

    def before(
        self, frame: AnalysedFrame, x: float, y: float, k: int, track: Track | None, pending: list[CursorHit]
    ) -> list[CursorHit]:
        """Hits of where the pointer, verified at (x, y) now with template ``k`` (-1: not found,
        the current ``track`` if any is left out), rested since the view's oldest held frame and has
        left (:mod:`quilt_llava.narratives.rest_recovery`), before the hits this track already holds
        (``pending``)."""
        if self.history.any_confirmed():
            return []
        cfg = self.config
        sprites = self.sprites
        # The verified shape first, then the shape tracked last, the learned ones, the prior.
        order = [
            k,
            sprites.last_learned,
            *range(len(self.templates) - 1, sprites.generic - 1, -1),
            *range(sprites.generic),
        ]
        unlocked = set(sprites.unlocked())
        shapes = [j for j in dict.fromkeys(order) if j in unlocked]
        size = (frame.luma.shape[1], frame.luma.shape[0])
        if k >= 0:
            away = sprites.footprint(x, y, size)
        elif track is not None:
            away = sprites.footprint(track[0], track[1], size)
        else:
            away = (0, 0, 0, 0)
        hits = rest_before_move(
            self.history.frames,
            frame.luma,
            away,
            self.templates,
            shapes,
            frame.ignore,
            cfg.min_score,
            cfg.min_contrast,
            cfg.min_change,
            self.history.first,
        )
        first = min([h.index for h in pending if k >= 0] + [frame.index])  # the verified track's own come first
        hits = [h for h in hits if h.index < first]
        self.history.confirm(hits)
        return hits

    def probe_rest(self, frame: AnalysedFrame, track: Track | None) -> list[CursorHit]:
        """Once the pointer has left the spot where its verified track began (the ``track`` is more
        than the template's size away, or gone for ``REST_PROBE_WAIT`` frames), the frames before the
        track where it rested there (:func:`rest_recovery.rest_before`): the template matched near the
        spot at ``REST_FLOOR`` or better, and the spot differing from this frame in the pointer's
        pattern. Those frames get hits and count as verified."""
        probe = self.probe
        if probe is None or frame.index < probe.index + REST_PROBE_WAIT:
            return []
        t = self.templates[probe.k]
        if (
            track is not None
            and math.hypot(track[0] - probe.x, track[1] - probe.y) <= max(t.image.shape) + self.config.backfill_radius
        ):
            if self.history.frames and self.history.frames[0][0] >= probe.index - 1:
                self.probe = None  # no frame before it is held any more: no rest left to find
            return []
        self.probe = None
        radius = self.config.backfill_radius
        ref = frame.luma

        def match(luma: np.ndarray, x: float, y: float) -> tuple[float, float, float]:
            return match_in(luma, box_around_tip(x, y, radius, t), t)

        differs = departed(ref, t, self.config.min_change)
        found = rest_before(probe, self.history.frames, match, differs, REST_FLOOR, radius)
        if not found:
            return []
        hits = [CursorHit(i, x, y, score) for i, x, y, score in found]
        self.history.confirm(hits)
        return hits
