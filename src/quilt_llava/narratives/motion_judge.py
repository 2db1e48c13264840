"""A frame's hits as shown, judged by the pointer's motion over several frames.

In: the hits the locator emits for a still frame (this frame's and earlier ones'), the template
of the track, the frame's moving-blob boxes, and a test of whether a pointer at a spot covers
something new there. Out: the hits as shown (:meth:`MotionJudge.shown`): a hit that lies off
what moves now in its frame (a compression ghost of where the pointer was), or that claims a
rest while a pointer-sized thing moved elsewhere, is left out; a frame without a hit of the
locator's own gets one from the pointer followed on its course, or from weak sightings that
move along one course for a few frames (:mod:`quilt_llava.narratives.track_motion` describes
the four judgements). The locator's own track is not changed by it: a hit of its own for the
frame, emitted later, replaces one from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from quilt_llava.narratives.box_matches import BoxMatcher
from quilt_llava.narratives.cursor_hits import AnalysedFrame, CursorHit, inside
from quilt_llava.narratives.sprite_set import SpriteSet
from quilt_llava.narratives.templates import patch_box
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

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig

# Does a pointer of template k with its tip at (x, y) cover something new in the frame?
NewThere = Callable[[AnalysedFrame, float, float, int], bool]


class MotionJudge:
    """Where the pointer was in a view's last frames, and what moved in them."""

    def __init__(self, sprites: SpriteSet, matcher: BoxMatcher, config: CursorConfig, motion: MotionConfig) -> None:
        self.sprites = sprites
        self.templates = sprites.templates
        self.matcher = matcher
        self.config = config
        self.motion = motion
        self.course = Course(motion)  # where the pointer was in the last frames
        self.chain = MotionChain(motion)  # weak sightings of a moving pointer no track holds
        self.recent = RecentFrames(motion)  # the view's last frames, to tell what moves in them
        self.moves: dict[int, list[tuple[int, int, int, int]]] = {}  # frame -> what moved in it

    def add(self, frame: AnalysedFrame) -> None:
        """A still frame arrived (before it is matched)."""
        self.recent.add(frame.index, frame.luma)

    def clear(self) -> None:
        """The view ended."""
        self.course.reset()
        self.chain.reset()
        self.recent.clear()
        self.moves.clear()

    def shown(
        self,
        frame: AnalysedFrame,
        out: list[CursorHit],
        k: int | None,
        blob_boxes: Callable[[], list[tuple[int, int, int, int]]],
        new_there: NewThere,
    ) -> list[CursorHit]:
        """The hits ``out`` of this frame as shown (``k``: the template of the track after this
        frame, None without one): this frame's own hit is left out where what moves now lies off
        it (a compression ghost of where the pointer was); where the frame has no hit, the
        pointer followed on its course at a lower shape score, or weak sightings in the moving
        blobs (``blob_boxes()``) that move along one course for a few frames, each where
        ``new_there`` says the pointer covers something new."""
        if k is not None:
            out = [h for h in out if not self._lags(h, k) and not self._elsewhere(h, k, frame)]
        mine = [h for h in out if h.index == frame.index]
        if mine:
            self.chain.reset()
            if k is not None:
                self.course.seen(frame.index, mine[-1].x, mine[-1].y, k)
            return out
        # What moves in a frame without a hit: a later hit for it (a backfill never walks past a
        # frame with one) is judged by it, and the chains' sightings are looked for in it.
        moved = (self.recent.now_box(frame.index, b) for b in blob_boxes())
        self.moves[frame.index] = [m for m in moved if m is not None]
        if len(self.moves) > self.config.backfill_frames:
            self.moves = {i: m for i, m in self.moves.items() if i > frame.index - self.config.backfill_frames}
        return out + self._coasted(frame, new_there)

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
                if not any(inside(frame.ignore, x, y, s) for x in (m[0], m[2] - 1) for y in (m[1], m[3] - 1))
            ]
        t = self.templates[k]
        return moved_elsewhere(patch_box(hit.x, hit.y, t), moves, max(t.image.shape))

    def _lags(self, hit: CursorHit, k: int) -> bool:
        """Does what moves in the hit's frame near ``hit`` (template ``k``) lie off it
        (:func:`track_motion.lags`)? False for a match beyond doubt (``sure_score``: what moves
        may also be the spot a pointer that rested has just left) and where the frames to tell
        are not held."""
        if hit.score >= self.config.sure_score:
            return False
        t = self.templates[k]
        x0, y0, x1, y1 = patch_box(hit.x, hit.y, t)
        m = max(t.image.shape)
        now = self.recent.now_box(hit.index, (x0 - m, y0 - m, x1 + m, y1 + m))
        return now is not None and lags((x0, y0, x1, y1), now)

    def _coasted(self, frame: AnalysedFrame, new_there: NewThere) -> list[CursorHit]:
        """Hits from the pointer's motion for a frame without one of the locator's own."""
        expect = self.course.expect(frame.index)
        if expect is not None:
            x, y, k = expect
            t = self.templates[k]
            found = continued(
                frame.luma,
                (x, y),
                lambda luma, box: self.matcher.match(luma, box, k),
                t.hotspot,
                lambda x, y: new_there(frame, x, y, k),
                self.motion,
            )
            if found is not None:
                self.course.seen(frame.index, found[1], found[2], k)
                return [CursorHit(frame.index, found[1], found[2], found[0])]
        links = self.chain.offer(frame.index, self._sightings(frame, new_there))
        if links is None:
            return []
        for s in links:
            self.course.seen(s.index, s.x, s.y, s.k)
        return [CursorHit(s.index, s.x, s.y, s.score) for s in links]

    def _sightings(self, frame: AnalysedFrame, new_there: NewThere) -> list[Sighting]:
        """Weak matches (``chain_floor`` and up) of the active shapes where something in a
        moving blob is now (:func:`track_motion.footprint_now`), each new where it lies."""
        found = []
        active = self.sprites.active()
        # The video's own sprites once there are some (the arrow prior finds a classic arrow beyond doubt).
        shapes = [k for k in active if k >= self.sprites.generic] or active
        for now in self.moves.get(frame.index, []):
            for k in shapes:
                box = placements(now, self.templates[k].image.shape, self.motion.slack)
                score, x, y = self.matcher.match(frame.luma, box, k)
                if score >= self.motion.chain_floor and new_there(frame, x, y, k):
                    found.append(Sighting(frame.index, x, y, k, score))
        return found
