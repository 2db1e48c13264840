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
  track takes over a pointer appearing beside it only if its own spot changed, and not
  when another shape arrived over what it held (:meth:`TemplateCursorLocator._arrived_over`:
  a crosshair passing over an arrow-like spot; its hits are dropped); a
  verified track moves onto a match only if that match differs from the background (a
  pointer that vanished leaves tissue);
- among candidates, a verified one is preferred, and among those the most visible:
  compression leaves faint "ghosts" of a fast pointer that have its shape but not
  its contrast; where another learned sprite matches the chosen place as well (within
  ``SPRITE_TIE``) with the tip elsewhere, the verified track's sprite, else the one verified
  last, is taken (a sprite of one shape of the pointer matches another shape, its tip off);
- when the cursor is first acquired, earlier frames of the same view are searched
  backwards from that position (a cursor that rested before it first moved; the view's
  last 200 frames are held); only every fourth held frame keeps its pixels (holding
  every decoded frame costs more memory traffic than the rest of the search), positions in between are
  interpolated for a pointer that barely moved; the walk is cut where it reaches a spot that showed
  the same in a frame where the pointer was verified elsewhere (tissue that looks like a pointer,
  beside which the pointer arrives: :meth:`PointerEvidence.there_before`);
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
- where the hits shown stop for 2-48 frames of a still view and start again, with sure
  sightings on both sides, the pointer's faint trace across the frames between is followed from
  the one to the other (:mod:`quilt_llava.narratives.gap_track`, track before detect: the
  encoder erases most of a small moving pointer, not all of it); hits there score below
  ``min_score`` and any hit of the locator's own for the frame replaces them;
- regions the caller marks as ignored (a webcam box) produce no candidates;
- nothing is reported below ``min_score`` or ``min_contrast``, so a hidden cursor
  yields no points.

A :class:`CursorLocator` has one required method, ``process(frame)``.

:class:`TemplateCursorLocator` keeps the track (candidates gathered, one chosen, followed,
verified or held back, carried over while it rests) and hands the rest to small parts, each
named after what flows through it: :mod:`~quilt_llava.narratives.cursor_hits` (the frame in,
the hits out), :mod:`~quilt_llava.narratives.sprite_set` (the shapes matched now: lock,
retired prior, twins, footprint), :mod:`~quilt_llava.narratives.frame_motion` (motion mask and
blob boxes), :mod:`~quilt_llava.narratives.whole_frame_search` (peak boxes over the frame),
:mod:`~quilt_llava.narratives.box_matches` (boxes matched with templates, once per frame),
:mod:`~quilt_llava.narratives.background` and :mod:`~quilt_llava.narratives.pointer_evidence`
(does a match differ from what it covers, and is it new there),
:mod:`~quilt_llava.narratives.view_history` (held frames, backfill),
:mod:`~quilt_llava.narratives.earlier_rests` (where the pointer rested before),
:mod:`~quilt_llava.narratives.sprite_intake` (sprites learned from the video taken in),
:mod:`~quilt_llava.narratives.motion_judge` (the hits as shown, judged by motion) and
:mod:`~quilt_llava.narratives.gap_track` (a long gap between sure sightings, followed through).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from quilt_llava.narratives.background import PointerFreeBackground
from quilt_llava.narratives.box_matches import BoxMatcher
from quilt_llava.narratives.cursor_hits import (
    AnalysedFrame,
    Choice,
    CursorHit,
    Match,
    inside,
    interpolated,
)
from quilt_llava.narratives.cut_rests import CutRest
from quilt_llava.narratives.earlier_rests import EarlierRests
from quilt_llava.narratives.frame_motion import FrameMotion, view_shift
from quilt_llava.narratives.gap_track import GapTrackConfig, GapTracker
from quilt_llava.narratives.ignored_regions import IgnoredRegions
from quilt_llava.narratives.motion_judge import MotionJudge
from quilt_llava.narratives.pointer_evidence import PointerEvidence
from quilt_llava.narratives.rest_recovery import RestProbe
from quilt_llava.narratives.split_work import SplitRunner
from quilt_llava.narratives.sprite_intake import SpriteIntake
from quilt_llava.narratives.sprite_set import SpriteSet
from quilt_llava.narratives.templates import (
    box_around_tip,
    make_templates,
    match_in,
)
from quilt_llava.narratives.track_motion import GapBridge, MotionConfig
from quilt_llava.narratives.view_history import ViewHistory
from quilt_llava.narratives.whole_frame_search import WholeFrameSearch

if TYPE_CHECKING:
    import numpy as np

    from quilt_llava.narratives.pointer import SpriteConfig

__all__ = ["AnalysedFrame", "CursorConfig", "CursorHit", "CursorLocator", "TemplateCursorLocator", "interpolated"]


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
    # an ignored region (a webcam) that holds the track of a learned sprite when it is marked is the
    # pointer's haunt, not ignored (``ignored_regions``); off for the chroma locator (``chroma_pointer``)
    pointer_haunts: bool = True
    # threads matching a frame's (box, template) pairs: the locator's own and, with 2, a helper for
    # part of the templates (the same results; OpenCV releases the GIL while it correlates)
    match_threads: int = 2


# Two learned sprites whose matches at one place score within this of each other are tied (tiny
# sprites match each other's shapes at 0.58-0.78, so the higher score does not tell which shape shows).
SPRITE_TIE = 0.02
# Where the tissue ``VIEW_REACH`` px (at 720p) around a held track's spot shifted by one translation of
# ``VIEW_SHIFT_PX`` or more since the track's last frame, the view moves there: a change at the spot
# is not a pointer's (``_view_moves``)
VIEW_REACH = 64
VIEW_SHIFT_PX = 0.5
PRIOR_SETTLED_SCORE = 0.8  # an arrow-prior track matching this well is a classic arrow: no sprite is learned meanwhile
MOTION = MotionConfig()  # a moving pointer followed where its shape scores too low (``MotionJudge``)
GAPS = GapTrackConfig()  # a long gap between sure sightings followed through by the pointer's trace (``GapTracker``)


class TemplateCursorLocator:
    """Shape-based cursor tracker; see the module docstring."""

    def __init__(
        self, frame_height: int, config: CursorConfig | None = None, sprite_config: SpriteConfig | None = None
    ) -> None:
        self.config = config or CursorConfig()
        self.sprites = SpriteSet(make_templates(self.config.scales, frame_height), self.config)
        self.templates = self.sprites.templates  # the arrow prior, then the learned sprites (one list)
        self._split = SplitRunner(self.config.match_threads > 1)
        self.matcher = BoxMatcher(self.templates, self.config, self._split)
        self.search = WholeFrameSearch(self.sprites, self.config, self._split)
        self.motion = FrameMotion(self.config)
        self.background = PointerFreeBackground()
        self.history = ViewHistory(self.config)
        self.evidence = PointerEvidence(self.templates, self.background, self.history, self.config)
        self.learner = None
        self.intake: SpriteIntake | None = None  # feeds the learner, takes in what it learns
        if self.config.learn_sprites:
            from quilt_llava.narratives.pointer import SpriteLearner

            self.learner = SpriteLearner(frame_height, sprite_config)
            self.intake = SpriteIntake(self.learner, self.sprites, self.search, self.history, self.config)
        self.track: tuple[float, float, int] | None = None  # tip x, y and template index
        self.verified = False  # the current track was seen to differ from the background
        self.pending: list[CursorHit] = []  # hits of an unverified track
        self.dormant: list[CursorHit] = []  # unverified hits of the last track that ended
        self.last_score = 0.0
        self.last_changed = False
        self.just_learned = False  # a sprite was learned in this frame: a resting track is not carried blind
        self.last_hit = -1  # frame index of the last hit (emitted or pending) of the track
        self.seen_at: dict[int, int] = {}  # template index -> frame of its last verified hit
        self.new_view = True
        self.rests = EarlierRests(self.sprites, self.history, self.config)  # where the pointer rested before
        self.cut_rest = CutRest(self.templates, self.config)  # a track held back through a view's end (``CutRest``)
        self.judge = MotionJudge(self.sprites, self.matcher, self.config, MOTION)  # hits judged by motion
        self.bridge = GapBridge(MOTION)  # short gaps in the hits shown, on one course
        self.gaps = GapTracker(GAPS)  # long gaps between two pairs of sure sightings, followed through
        self.ignored = IgnoredRegions()  # the caller's ignored regions less the pointer's haunts
        self.last_frame: tuple[int, np.ndarray] | None = None  # the last still frame's index and luma

    def _blob_boxes(self, frame: AnalysedFrame) -> list[tuple[int, int, int, int]]:
        """Search boxes around this frame's moving blobs, for the templates matched now."""
        return self.motion.blob_boxes(frame, lambda: [self.templates[k].image.shape for k in self.sprites.active()])

    def _learn(self, frame: AnalysedFrame) -> list[CursorHit]:
        """Feed the sprite learner (:class:`SpriteIntake`); returns the hits of where a sprite just
        learned rested earlier in this view."""
        if self.intake is None:
            return []
        # Nothing to learn while a verified track holds the pointer: a learned sprite, or the arrow
        # prior matching well (a classic arrow keeps its exact template and tip).
        settled = (
            self.verified
            and self.track is not None
            and self.last_hit == frame.index - 1
            and (self.track[2] >= self.sprites.generic or self.last_score >= PRIOR_SETTLED_SCORE)
        )
        blobs = self.motion.largest_blobs(frame, 2)
        if settled:
            # ... unless something moves beyond the learner's largest pointer from the track: a
            # track verified on a still lookalike (a learned sprite of one shape matching tissue
            # while the pointer, now another shape, moves elsewhere) would otherwise keep the
            # learner from ever seeing that shape. (None where nothing moves away from the track:
            # the learner is not told whether anything moved.)
            blobs = self._away_from_track(blobs) or None
        known = len(self.templates)
        found = self.intake.observe(frame, blobs)
        self.just_learned = len(self.templates) > known
        return found

    def _away_from_track(self, blobs: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
        """The moving ``blobs`` (full-resolution boxes) that lie further than the learner's
        largest pointer (``SpriteLearner.max_px``) from the track's tip on every side."""
        assert self.track is not None and self.learner is not None
        x, y, _k = self.track
        reach = self.learner.max_px
        return [b for b in blobs if b[0] - x > reach or x - b[2] > reach or b[1] - y > reach or y - b[3] > reach]

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
            if self.track is not None and not self.verified and self.pending:
                # Held back as the view ends: it stayed put while the view changed, or it was not the pointer.
                self.cut_rest.park(self.track, self.pending, self.history.pixels_of(self.pending[-1].index))
            self.cut_rest.changing(frame.luma)
            out = self._end_track(view_ends=True)
            if self.learner is not None:
                self.learner.new_view()
            self.track = None
            self.new_view = True
            self.rests.clear()
            self.history.clear()
            self.judge.clear()
            self.bridge.reset()
            self.gaps.reset()
            self.background.clear()
            return out
        given = frame
        if self.config.pointer_haunts:
            frame = self.ignored.frame(frame, self._sprite_tip(frame))
        out = []
        if self.history.first is None:
            self.history.first = (frame.index, frame.luma)  # a reference: frames are not written to
            out = self.cut_rest.settle(frame.luma)  # the last view's held-back track, if it stayed put
        self.judge.add(frame)
        self.search.note_change(self.motion.moved(frame))
        out += self._learn(frame)
        if self.config.pointer_haunts and self.learner is not None and self.learner.claimed:
            # a flat sprite learned in an ignored region only the pointer changed: its haunt from now on
            self.ignored.claim(self.learner.claimed, frame.scale)
            frame = self.ignored.frame(given, None)
        out += self._process_still(frame)
        self.last_frame = (frame.index, frame.luma)  # (a reference: frames are not written to)
        # A short gap in the hits shown, on one course: the frames between (``GapBridge``).
        out += [CursorHit(i, x, y, s) for i, x, y, s in self.bridge.add(out, frame.index)]
        # A long one between two pairs of sure sightings: the pointer's faint trace followed (``GapTracker``).
        return out + self.gaps.add(frame.index, frame.luma, out, self.templates[self.sprites.generic :])

    def _sprite_tip(self, frame: AnalysedFrame) -> tuple[float, float] | None:
        """The tip of the track of a learned sprite in the frame before ``frame``, if any (a rigid
        shape seen moving: a region the caller marks as ignored that holds it is the pointer's)."""
        if self.track is not None and self.track[2] >= self.sprites.generic and self.last_hit == frame.index - 1:
            return self.track[0], self.track[1]
        return None

    def _process_still(self, frame: AnalysedFrame) -> list[CursorHit]:
        """One frame of a still view: a resting pointer is carried over; otherwise candidates are
        gathered, one is chosen, the track follows it, and the frame is kept for later steps."""
        rested = self.rests.vanished(frame, self.verified, self.track, lambda: self._blob_boxes(frame))
        if rested:
            self.track, self.pending, self.dormant = None, [], []  # the pointer was elsewhere
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
        out = self.rests.probe_rest(frame, self.track) + out
        shown = self.judge.shown(
            frame,
            out,
            None if self.track is None else self.track[2],
            lambda: self._blob_boxes(frame),
            self.evidence.new_there,
        )
        self._settle(frame, out, keep)
        return shown

    def _carry_still(self, frame: AnalysedFrame) -> list[CursorHit]:
        """Nothing changed around a resting pointer: it is where it was; no matching needed."""
        x, y, _k = self.track  # type: ignore[misc]
        hit = CursorHit(frame.index, x, y, self.last_score)
        self.last_hit = frame.index
        if not self.verified:
            self.pending.append(hit)
            self.history.remember(frame.index, frame.luma, False)
            return []
        self.history.remember(frame.index, frame.luma if frame.ignore is None else None, True)
        self.history.hits[frame.index] = (x, y)
        return [hit]

    def _gather(self, frame: AnalysedFrame) -> list[Match]:
        """Candidates of this frame (see :meth:`BoxMatcher.candidates`): in the moving blobs; unless one of
        them continues the verified track, also around the track's last position and at the peaks
        of a whole-frame search when one is due."""
        cfg = self.config
        active = self.sprites.active()
        if self.track is not None and self.track[2] not in active:
            active = [*active, self.track[2]]  # the shape tracked now, though the lock is on another
        blob_boxes = self._blob_boxes(frame)
        cands = self._allowed(frame, self.matcher.candidates(frame.luma, blob_boxes, active)) if blob_boxes else []
        if blob_boxes and not cands and self.sprites.locked is not None and self.sprites.learned_any:
            # Motion the locked sprite does not explain: the pointer may have changed shape.
            cands = self._allowed(frame, self.matcher.candidates(frame.luma, blob_boxes, self.sprites.unlocked()))
        if self._moved_on(frame, cands):
            return cands
        boxes: list[tuple[int, ...]] = []
        if self.track is not None:
            t = self.templates[self.track[2]]
            boxes.append(box_around_tip(self.track[0], self.track[1], cfg.track_radius, t))
        searched = False
        if (self.track is None or not self.verified) and self._search_due(frame):
            boxes.extend(self.search.peak_boxes(frame, self.new_view, None if self.track is None else self.track[2]))
            searched = True
        if boxes:
            cands = sorted(
                cands + self._allowed(frame, self.matcher.candidates(frame.luma, boxes, active)), reverse=True
            )
        boxes += blob_boxes
        if not cands and self.sprites.locked is not None and (searched or self.track is None) and boxes:
            # The locked size (or shape) may be wrong for this view (zoomed recording, a pointer
            # that changed shape); try every one.
            cands = self._allowed(frame, self.matcher.candidates(frame.luma, boxes, self.sprites.unlocked()))
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
            change = self.evidence.change(frame.luma, x, y, k)
            if change >= cfg.min_change and change > strongest and self._fresh(frame, x, y, k):
                chosen, strongest = (score, x, y, k, b, True), change
        if chosen is None and cands:
            # Nothing verified: rank by shape and by contrast. Pointers are drawn black on white
            # (or the reverse); tissue that happens to look like an arrow is far less contrasted.
            score, x, y, k, b = max(
                cands, key=lambda c: c[0] + 0.5 * min(1.0, self.evidence.contrast(frame.luma, c[1], c[2], c[3]) / 120)
            )
            chosen = (score, x, y, k, b, False)
        return self._tie_broken(frame, chosen)

    def _tie_broken(self, frame: AnalysedFrame, chosen: Choice | None) -> Choice | None:
        """A learned sprite's match, or another learned sprite's at the same place when that one scores
        within ``SPRITE_TIE`` of it and puts the tip elsewhere (a sprite of one shape of the pointer
        matches another shape too, its tip some px off): the sprite the verified track follows there,
        else the one verified last (the shape the pointer showed last; one verified more often may be
        an earlier shape). A rival that is not seen to differ where the chosen one is stays out."""
        if chosen is None or chosen[3] < self.sprites.generic:
            return chosen
        score, x, y, k, b, changed = chosen
        track_k = -1  # the verified track's sprite, where this match continues it
        if (
            self.verified
            and self.track is not None
            and self.last_hit == frame.index - 1
            and math.hypot(x - self.track[0], y - self.track[1]) <= self.config.max_step
        ):
            track_k = self.track[2]

        def rank(j: int) -> tuple[bool, int]:
            return j == track_k, self.seen_at.get(j, -1)

        best, best_rank = chosen, rank(k)
        for j in self.sprites.unlocked():
            if j == k or j < self.sprites.generic or rank(j) <= best_rank:
                continue  # (matched only where it would win the tie: most frames match none)
            t = self.templates[j]
            s, rx, ry = self.matcher.match(frame.luma, box_around_tip(x, y, self.config.track_radius, t), j)
            if s < score - SPRITE_TIE or math.hypot(rx - x, ry - y) <= 4:
                continue
            seen = self.evidence.change(frame.luma, rx, ry, j) >= self.config.min_change
            seen = seen and self._fresh(frame, rx, ry, j)
            if changed and not seen:
                continue
            best, best_rank = (s, rx, ry, j, b, seen), rank(j)
        return best

    def _fresh(self, frame: AnalysedFrame, x: float, y: float, k: int) -> bool:
        """May a candidate at (x, y) that differs from the background count as seen to differ? Yes
        where the verified track rests (within 4 px); else only when it is new there
        (:meth:`PointerEvidence.new_here`): the spot a pointer has just left differs from the last frame, and a track
        that moved onto it keeps the passing pointer in its background, so what lies there then
        differs from that background every frame."""
        if self.verified and self.track is not None and math.hypot(x - self.track[0], y - self.track[1]) <= 4:
            return True
        return self.evidence.new_here(frame, x, y, k)

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
        if continues and not self.verified and changed and self._arrived_over(frame, x, y, k):
            continues = False  # another shape passing over what the track held (a lookalike): not its hits
        if continues and not self.verified and changed and self.pending and self._view_moves(frame, x, y):
            changed = False  # the view begins to move around what the track held: no pointer seen
        if continues and self.verified and not changed and math.hypot(x - self.track[0], y - self.track[1]) > 4:
            # A pointer that moved differs from what it now covers; an unchanged match some way
            # off (tissue beside a pointer that vanished) starts a track of its own.
            continues = False
        if changed and not self._fresh(frame, x, y, k):
            changed = False  # a spot the pointer just passed over: what shows there now was there before
        if not continues:
            out.extend(self._end_track())
            self.pending = self.history.backfill(x, y, self.templates[k], frame.ignore, frame.scale)
            # Where the walk back went onto tissue that looked the same while the pointer was
            # verified elsewhere (a lookalike beside which the pointer arrives), it is not the pointer's.
            self.pending = self.pending[self.evidence.there_before(self.pending, k) :]
            if self.dormant and abs(self.dormant[-1].x - x) <= 4 and abs(self.dormant[-1].y - y) <= 4:
                # The same resting pointer, lost for a moment: its earlier hits rejoin this track.
                self.pending = [
                    h for h in self.dormant if h.index < (self.pending[0].index if self.pending else frame.index)
                ] + self.pending
            self.dormant = []
        hit = CursorHit(frame.index, x, y, score)
        if changed or (continues and self.verified):
            # Seen to differ from the background: this track is the pointer.
            if self.sprites.locked is None:
                self.sprites.vote(k)
            self.sprites.credit(k, moved=continues and math.hypot(x - self.track[0], y - self.track[1]) > 2)
            self.seen_at[k] = frame.index
            out.extend(self.rests.first_verified(frame, x, y, k, self.pending))  # where it rested before
            if not self.verified:  # where the track began: did the pointer rest there before? (``probe_rest``)
                first = self.pending[0] if self.pending else hit
                self.rests.probe = RestProbe(first.index, first.x, first.y, k)
                self.cut_rest.seen_elsewhere()
            out.extend(self.pending)
            self.history.replaced(self.pending)
            self.pending = []
            self.verified = True
            out.append(hit)
        else:
            self.pending.append(hit)
        self.track = (x, y, k)
        if k >= self.sprites.generic:
            self.sprites.last_learned = k
        self.last_score = score
        self.last_hit = frame.index
        # Only a pointer seen to differ from what it covers may be carried over unchanged frames.
        self.last_changed = changed or self.evidence.change(frame.luma, x, y, k) >= cfg.min_change
        return out

    def _settle(self, frame: AnalysedFrame, out: list[CursorHit], keep: list[tuple[float, float, int]]) -> None:
        """After a frame's matching: the pointer-free background, and the frame kept in the view's
        history (``keep``: where the pointer was before and is now)."""
        self.background.update(frame.luma, [(x, y, self.templates[k]) for x, y, k in keep])
        confirmed = bool(out) and out[-1].index == frame.index
        # Backfill never walks past a confirmed frame, so its pixels need not be kept, except
        # before a webcam is known: a hit there may turn out to be the webcam.
        keep_pixels = not confirmed or frame.ignore is None
        # Frames are not written to after decoding, so a reference is enough (no copy).
        self.history.remember(frame.index, frame.luma if keep_pixels else None, confirmed)
        self.history.hits[frame.index] = (out[-1].x, out[-1].y) if confirmed else None

    def _spot_changed(self, frame: AnalysedFrame) -> list[CursorHit]:
        """Did the spot of an unverified track change since the previous frame? Tissue under a
        still view does not change; a pointer that leaves or vanishes does. Then the track was
        a pointer: its held-back hits are returned and the track ends (what matches there now
        may be tissue)."""
        if self.track is None or self.verified or not self.pending or not self.history.frames:
            return []
        index, before, _ = self.history.frames[-1]
        if before is None or index != frame.index - 1 or self.pending[-1].index != index:
            return []
        diff = self.evidence.spot_diff(frame.luma, before, *self.track)
        if diff is None or diff < self.config.min_change or self._view_moves(frame, self.track[0], self.track[1]):
            return []  # (the view moving around the spot moves a lookalike too: no pointer left it)
        if self._other_shape_arrived(frame):
            # Not what the track held leaving: another shape of the pointer arriving on a lookalike.
            self.pending, self.track = [], None
            return []
        # Held on tissue that showed the same while the pointer was verified elsewhere: a lookalike.
        hits, self.pending = self.pending[self.evidence.there_before(self.pending, self.track[2]) :], []
        self.track = None
        # Unmistakable ones stand: a later track's backfill (tissue found once the pointer left) does not replace them.
        self.history.confirm([h for h in hits if h.score >= self.config.sure_score])
        return hits

    def _view_moves(self, frame: AnalysedFrame, x: float, y: float) -> bool:
        """Did the view itself move around (x, y) since the last frame, rather than a pointer come or go
        there? Yes where the tissue in four squares ``VIEW_REACH`` px around shifted by one translation
        of ``VIEW_SHIFT_PX`` or more (:func:`view_shift`): a pointer moves over still tissue, which
        shows no shift; a view that begins to move under a still-view verdict (a slow drag's first
        frames) shifts its texture, and any lookalike in it, all around. Asked only of a track of the
        arrow prior: a learned sprite is the pointer's own shape, and a drag carries the pointer with
        the view."""
        if self.track is None or self.track[2] >= self.sprites.generic:
            return False
        if self.last_frame is None or self.last_frame[0] != frame.index - 1:
            return False
        reach = round(VIEW_REACH * max(0.5, frame.luma.shape[0] / 720))
        shift = view_shift(self.last_frame[1], frame.luma, x, y, reach)
        return shift is not None and math.hypot(*shift) >= VIEW_SHIFT_PX

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
        before = self.history.pixels_of(last)
        if before is None or before.size == 0:
            return True  # no pixels kept to compare with
        diff = self.evidence.spot_diff(frame.luma, before, tx, ty, k)
        return diff is None or diff >= 0.5 * self.config.min_change

    def _other_shape_arrived(self, frame: AnalysedFrame) -> bool:
        """Did the held-back track's spot change because another shape of the pointer arrived on it,
        rather than because what the track held left? Yes where a learned sprite matches there now
        (``min_score``), differs from the background, and arrived over what was held
        (:meth:`_arrived_over`)."""
        assert self.track is not None
        cfg = self.config
        tx, ty, held = self.track
        for j in self.sprites.unlocked():
            if j == held or j < self.sprites.generic:
                continue
            t = self.templates[j]
            s, x, y = self.matcher.match(frame.luma, box_around_tip(tx, ty, cfg.track_radius, t), j)
            seen = s >= cfg.min_score and self.evidence.change(frame.luma, x, y, j) >= cfg.min_change
            if seen and self._arrived_over(frame, x, y, j):
                return True
        return False

    def _arrived_over(self, frame: AnalysedFrame, x: float, y: float, k: int) -> bool:
        """Is a match of template ``k`` at (x, y), on or beside the held-back track's spot, another
        shape that arrived over what the track held, rather than the held pointer itself (moved, or
        changed shape where it rested)? Yes when both hold, in the newest held frame with pixels of
        the track's hits: ``k`` does not match the track's spot there at ``min_score`` (tissue that
        looks like one shape does not look like another shape of the pointer; a pointer that rested
        there looks like itself, whichever template matched it then), and what the track's
        template covered there, outside the new shape, shows the same now (within half of
        ``min_change``: a lookalike stays where it is; a pointer that moved or changed shape leaves
        tissue behind). Where the new shape covers most of what was held (a hand over a small
        arrow), that is not told: the held hits are released as before (a pointer that changed
        shape where it rested keeps its rest). The track's own template is never taken for
        another shape."""
        assert self.track is not None
        cfg = self.config
        tx, ty, held = self.track
        if k == held or not self.pending:
            return False
        pixels = self.history.kept_pixels(self.pending[-1].index)
        if pixels is None:
            return False  # nothing kept to compare with
        t = self.templates[k]
        score, _, _ = match_in(pixels, box_around_tip(tx, ty, cfg.track_radius, t), t, cfg.min_contrast)
        if score >= cfg.min_score:
            return False
        diff = self.evidence.uncovered_diff(frame.luma, pixels, (tx, ty, held), (x, y, k))
        return diff is not None and diff < 0.5 * cfg.min_change  # (None: mostly covered, or off the frame)

    def _allowed(self, frame: AnalysedFrame, cands: list) -> list:
        """Nothing inside an ignored region (a webcam) is a pointer, a track that wandered there included."""
        if frame.ignore is None:
            return cands
        return [c for c in cands if not inside(frame.ignore, c[1], c[2], frame.scale)]

    def _moved_on(self, frame: AnalysedFrame, cands: list) -> bool:
        """Does a blob candidate continue the verified track, seen to differ from the background?"""
        if self.track is None or not self.verified or not cands:
            return False
        tx, ty, _ = self.track
        return any(
            math.hypot(x - tx, y - ty) <= self.config.max_step
            and score >= cands[0][0] - self.config.prefer_margin
            and self.evidence.change(frame.luma, x, y, k) >= self.config.min_change
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
        return frame.index - self.search.last_search >= every

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
        if frame.ignore is not None and inside(frame.ignore, x, y, frame.scale):
            return False  # the track sits in what is now known to be a webcam
        th, tw = self.templates[k].image.shape
        hx, hy = self.templates[k].hotspot
        s = frame.scale
        x0, y0 = max(0, int((x - hx) // s) - 1), max(0, int((y - hy) // s) - 1)
        x1, y1 = int((x - hx + tw) // s) + 2, int((y - hy + th) // s) + 2
        region = frame.motion[y0:y1, x0:x1]
        if region.size == 0 or int(region.max()) > self.config.still_threshold:
            return False
        if self.just_learned:
            return False  # a new shape's whole-frame search is due: it may find the pointer elsewhere
        if not self.verified:
            # An unverified track may be tissue that looks like a pointer: keep looking for
            # the real one (a whole-frame search when due, any moving blob) before resting.
            return not self._search_due(frame) and not self._blob_boxes(frame)
        return True

    def footprint(self, x: float, y: float, frame_size: tuple[int, int], margin: int = 3) -> tuple[int, int, int, int]:
        """Pixels a pointer with its tip at (x, y) covers (x0, y0, x1, y1), clipped to the frame
        (:meth:`SpriteSet.footprint`)."""
        return self.sprites.footprint(x, y, frame_size, margin)

    def finish(self) -> list[CursorHit]:
        """Call after the last frame: settles the open track (and ends the matching helper)."""
        self._split.close()
        return self._end_track(view_ends=True)
