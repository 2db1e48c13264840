"""The frames a still view has held so far, and the walk back through them from a new track.

In: each still frame after matching (:meth:`ViewHistory.remember`: its luma, whether it got a
verified hit) and hits emitted later for earlier frames (:meth:`ViewHistory.confirm`). Out: the
held frames for the parts that look back (rest recovery, the "is this new here" test), and the
hits of a pointer first acquired now in the frames before it (:meth:`ViewHistory.backfill`).

The view's last ``backfill_frames`` frames are held; only every ``history_stride``-th keeps its
pixels (holding every decoded frame costs more memory traffic than the rest of the search; the
others are marked :data:`~quilt_llava.narratives.cursor_hits.THINNED` and positions there are
interpolated), and a frame with a verified hit keeps none once a webcam is known. The view's
first still frame is kept too (a rest longer than the held frames began at the view's start if
the pointer is there in its first frame).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.cursor_hits import THINNED, CursorHit, inside, interpolated
from quilt_llava.narratives.rest_recovery import since_first
from quilt_llava.narratives.templates import Template, box_around_tip, match_in

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig


class ViewHistory:
    """A still view's held frames, the positions of their verified hits, and its first frame."""

    def __init__(self, config: CursorConfig) -> None:
        self.config = config
        # (index, luma, verified hit emitted) of this view's recent frames
        self.frames: deque[tuple[int, np.ndarray | None, bool]] = deque(maxlen=config.backfill_frames)
        self.hits: dict[int, tuple[float, float] | None] = {}
        self.first: tuple[int, np.ndarray] | None = None  # (index, luma) of the view's first still frame
        # frame -> score of a hit given while no pointer was verified (a guess, see ``guessed``)
        self.guesses: dict[int, float] = {}

    def clear(self) -> None:
        """The view ended."""
        self.first = None
        self.frames.clear()
        self.hits.clear()
        self.guesses.clear()

    def remember(self, index: int, luma: np.ndarray | None, confirmed: bool) -> None:
        """Add a frame to the view's history; the previous frame's pixels are dropped unless it
        falls on the ``history_stride`` (holding fewer decoded frames keeps memory traffic down)."""
        stride = self.config.history_stride
        if stride > 1 and self.frames:
            i, before, was_confirmed = self.frames[-1]
            if before is not None and i % stride != 0:
                self.frames[-1] = (i, THINNED, was_confirmed)
        self.frames.append((index, luma, confirmed))

    def confirm(self, hits: list[CursorHit]) -> None:
        """Mark the held frames of hits emitted for earlier frames as verified, so that a later
        track's backfill does not walk over them."""
        done = {h.index: (h.x, h.y) for h in hits}
        if done:
            self.frames = deque(
                ((i, luma, confirmed or i in done) for i, luma, confirmed in self.frames), maxlen=self.frames.maxlen
            )
            self.hits.update(done)

    def guessed(self, hits: list[CursorHit]) -> None:
        """Hits emitted while no pointer was verified (a rest found by the spot something left):
        :meth:`backfill` of a verified track walks over them where it matches better."""
        self.guesses.update((h.index, h.score) for h in hits)

    def replaced(self, hits: list[CursorHit]) -> None:
        """A verified track emitted ``hits``: where they replace guesses (:meth:`guessed`), the
        frames' verified positions are theirs now, and no longer guesses to walk over."""
        for h in hits:
            if self.guesses.pop(h.index, None) is not None:
                self.hits[h.index] = (h.x, h.y)

    def any_confirmed(self) -> bool:
        return any(confirmed for _, _, confirmed in self.frames)

    def pixels_of(self, index: int) -> np.ndarray | None:
        """The held pixels of frame ``index`` (None: not held or not kept; empty: thinned)."""
        return next((luma for i, luma, _ in reversed(self.frames) if i == index), None)

    def kept_pixels(self, index: int) -> np.ndarray | None:
        """The pixels of the newest held frame at or before frame ``index`` that kept them (None: none)."""
        kept = (luma for i, luma, _ in reversed(self.frames) if i <= index and luma is not None and luma.size)
        return next(kept, None)

    def older(self, index: int, back: int) -> np.ndarray | None:
        """The oldest held frame with pixels at most ``back`` frames before frame ``index``, else
        the newest held one with pixels (None: none)."""
        older = newest = None
        for i, luma, _ in reversed(self.frames):
            if luma is None or not luma.size:
                continue
            newest = luma if newest is None else newest
            if i < index - back:
                break
            older = luma
        return newest if older is None else older

    def backfill(
        self, x: float, y: float, t: Template, ignore: np.ndarray | None = None, scale: int = 4
    ) -> list[CursorHit]:
        """Walk back through this view's earlier frames while the cursor (template ``t``) is found
        near (x, y).

        Frames whose pixels were thinned out (see ``history_stride``) get the position
        interpolated between the kept frames around them, when the pointer moved no more
        than ``backfill_radius`` across the gap; otherwise the walk stops there."""
        hits: list[CursorHit] = []
        th, tw = t.image.shape
        radius = self.config.backfill_radius
        last: tuple[tuple[int, int, int, int], np.ndarray, tuple[float, float, float]] | None = None
        gap: list[int] = []  # thinned frames passed since the last match (newest first)
        for index, luma, confirmed in reversed(self.frames):
            if luma is None:
                break
            # Never overwrite a verified hit, unless it lies in what is now known to be a webcam
            # (or was a guess this match beats, below).
            guess = self.guesses.get(index)
            if confirmed and guess is None:
                pos = self.hits.get(index)
                if ignore is None or pos is None or not inside(ignore, pos[0], pos[1], scale):
                    break
            if luma is THINNED:
                gap.append(index)
                continue
            box = box_around_tip(x, y, radius, t)
            # A resting pointer over a still view: the pixels match_in reads are often exactly those
            # of the frame after, and then so is its result.
            region = (slice(max(0, box[1]), max(0, box[3] + th)), slice(max(0, box[0]), max(0, box[2] + tw)))
            if last is not None and last[0] == box and np.array_equal(last[1][region], luma[region]):
                score, bx, by = last[2]
            else:
                score, bx, by = match_in(luma, box, t, self.config.min_contrast)
            last = (box, luma, (score, bx, by))
            if score < self.config.min_score or (guess is not None and score <= guess):
                break
            if gap:
                if not hits or math.hypot(bx - x, by - y) > radius:
                    break  # moved (or vanished) while no pixels were kept: stop short of the gap
                hits += interpolated(gap, hits[-1], index, bx, by, score)
                gap = []
            hits.append(CursorHit(index, bx, by, score))
            x, y = bx, by
        else:
            if hits and self.first is not None and len(self.frames) == self.frames.maxlen:
                # Walked back past every held frame: a rest longer than they span began at the view's start
                # if the pointer is there in its first frame.
                cfg = self.config
                hits += since_first(self.first, hits[-1], t, None, cfg.min_score, cfg.min_contrast, cfg.min_change)
        return hits[::-1]
