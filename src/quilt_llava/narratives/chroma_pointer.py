"""A pointer whose contrast lies in colour, not brightness, found on a chroma plane.

The locator (:mod:`.cursor`), the sprite learner (:mod:`.pointer`) and the motion blobs read the
decoded luma plane alone. A pointer drawn in a colour of about the brightness of the tissue it
covers (a translucent coloured highlight, a coloured circle or marker) changes the luma there by
less than the learner's threshold, and is never seen moving. Its chroma changes more: each
pixel's distance from neutral grey (``|U - 128| + |V - 128|``, :meth:`.video.Frame.chroma`,
scaled by ``gain``) is a plane on which such a pointer moves over a still background like any
other pointer over tissue.

:class:`ChromaPointer` runs a second, unchanged :class:`.cursor.TemplateCursorLocator` on that
plane (at full resolution, so sizes, scales and hotspot rules are the luma locator's), on its
own thread, with its own hits. Its hits are taken only for still views where the luma locator
has hits on few frames (under ``sparse_share``; :func:`sparse_views`), after the late-rest search
(:func:`.segments.late_rest_hits`), only on frames without a luma hit, and only runs of them that
travel ``min_travel`` or more, or ``drift_travel`` over ``drift_s`` or longer (:func:`runs`,
:func:`travel`: a colour plane's static structure can match a shape for a whole view), or, of a
run that does neither, the hits the other chroma locator confirms (``still_agree``): a view
where the luma locator tracked the pointer keeps its hits alone, so a pointer the luma locator
tracks is traced as before. The chroma plane sees luma pointers too (a dark arrow over coloured
tissue hides the tissue's colour); in a view the luma locator left empty it may find them where
luma failed, with the same rules of shape, motion and verification.

A second :class:`ChromaPointer` (``dominant``) runs the same way on each pixel's chroma distance
from the still view's own colour (``ChromaConfig.dominant``): a translucent highlight over stained
tissue can pull the colour toward grey as much as away from it, and vanish from the plane from
grey, while its distance from the tissue's colour always grows. Its hits fill the same sparse
views after the first locator's, on the frames still without a hit.

Its hits cannot be used in a view the luma locator tracks, so it does not run there
(:class:`LumaGate`): in each still view it runs until the luma locator has hits on ``hold_share``
of the view's frames so far (over ``hold_s`` or more, known ``gate_lag`` frames later), and then
skips the rest of the view. It does not run on a view's first frames as they come either: they
are held (their chroma distance at the U and V planes' size, :meth:`.video.Frame.chroma_distance`)
until the gate closes the view (dropped: the locator never sees that view) or the view has
lasted ``release_s`` or ends (run then, in order, with the motion they had; the rest of the
view as it comes). The plane itself is made only for the frames it runs on, on the locator's
thread (:meth:`ChromaPointer.offer`): a view's held frames go there in one piece, and the
analysing thread goes on while the locator works through them. A view where the luma locator
has few hits is searched on every frame, as before. The second locator (``dominant``) holds a
view's frames until the view ends, whatever ``release_s`` says
(``ChromaConfig.dominant_holds_view``): it runs only in the views the gate never closes.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.cursor import CursorConfig, CursorHit, TemplateCursorLocator
from quilt_llava.narratives.cursor_hits import AnalysedFrame
from quilt_llava.narratives.cursor_thread import CursorThread
from quilt_llava.narratives.frames import analysis_scale
from quilt_llava.narratives.pointer import SpriteConfig
from quilt_llava.narratives.segments import Segment
from quilt_llava.narratives.video import NEUTRAL, full_size

if TYPE_CHECKING:
    from quilt_llava.narratives.video import Frame

_NO_PLANE = np.zeros((0, 0), np.uint8)  # what a moving frame carries: the locator only resets on it


@dataclass
class ChromaConfig:
    enabled: bool = True  # run the chroma locator beside the luma one (one more locator thread)
    # the chroma distance (|U - 128| + |V - 128|) is multiplied by a whole gain that brings its
    # 99th percentile in the video's first frame to about ``span`` grey levels (at most ``max_gain``,
    # at least 1): a translucent highlight changes the distance by 12-39 levels over tissue, under
    # the locator's thresholds (learner 24, ``min_change`` 20 as a mean over the shape) unless
    # stretched; stretched by a fixed gain, H&E's colour (distance 50-73) saturates
    span: int = 160
    max_gain: int = 8
    # a still view whose frames have luma hits on fewer than this share takes the chroma locator's
    # hits on its other frames (a few luma hits where a colour-only pointer first moved, 2-3 % of a
    # view; a view the luma locator tracks has hits on most frames)
    sparse_share: float = 0.2
    # a run of a view's chroma hits (``runs``) is taken only where it travels at least this far (px
    # at 720p, scaled with the frame height): motion is what shows a pointer, and a colour plane's
    # static structure can match a shape for a whole view (a hit that never moved, at 0.91, for 170
    # frames of a view where the luma locator had few)
    min_travel: float = 20.0
    # ... or at least ``drift_travel`` over ``drift_s`` seconds or more: a ring or dot held by hand
    # drifts or dwells, its hits spanning 10-18 px over a view (the independent corpus's ring and
    # laser dot, draws 1 and 8: 169-191 frames, every one within tolerance), while a still match
    # of the plane's own structure spans 0-4 px; a brief run of that span is no evidence either
    # way (8 frames, 18 px, seven of them 90 px off the pointer: draw 9's dark-rests)
    drift_travel: float = 8.0
    drift_s: float = 0.5
    # ... and of a run that does neither, the hits where the other chroma locator (on the other
    # plane, with sprites of its own) has one within ``still_agree`` px (at 720p): a ring or dot
    # resting, or dwelling within a pixel or two, found on both planes (draw 2's he-laser-ring:
    # the dot rests through two views, 175 frames, found by both within 2 px of each other). The
    # still matches of a plane's own structure seen in the tuning draws were each on one plane
    still_agree: float = 8.0
    # the learner's, with blunt shapes pointing at their centroid (a colour-only pointer is a
    # highlight, a dot or a marker far more often than a hand; see ``SpriteConfig.blunt``). Without
    # ``distinct_score``: a colour plane is smooth, so a sprite cut from it matches smooth colour
    # around it (a piece of a drawn crosshair's arm, refused, cost draw 8's he-overlay-cross 0.791
    # -> 0.691); and without ``known_part`` (with it, draw 8's pale-window 0.518 -> 0.509). The
    # locator on the distance from the view's colour (``dominant``) learns with ``shared_min_px``.
    # Nor are sightings cut around a piece of motion (``piece_grow``): without ``distinct_score``
    # nothing would refuse a piece of smooth colour so cut, and the thin pointers it is for are
    # the luma locator's (the same figures on draws 1, 6 and 9 with it on)
    sprite: SpriteConfig = field(
        default_factory=lambda: SpriteConfig(
            blunt=0.4, distinct_score=None, known_part=0.0, piece_grow=0.0, fill_haunts=False
        )
    )
    # the locator stops for the rest of a still view once the luma locator has hits on at least
    # ``hold_share`` of the view's frames so far, over ``hold_s`` seconds or more: such a view is
    # not left sparse (``sparse_share``) unless it goes on more than twice as long without a luma
    # hit. The luma hits are counted every ``gate_every`` frames on the luma locator's thread and
    # read ``gate_lag`` frames later (a multiple of ``gate_every``): the answer does not depend on
    # timing, and the analysis waits on that thread only where it is further behind than that
    hold_share: float = 0.5
    hold_s: float = 1.0
    gate_every: int = 8
    gate_lag: int = 24
    # a still view's frames are held, not run (their chroma distance kept, a quarter of the
    # plane's pixels for 4:2:0), until the gate closes the view (they are dropped: the locator
    # never runs there) or the view has lasted ``release_s`` (they are run, and the view's other
    # frames as they come, until the gate closes it) or ends. The luma locator holds a pointer
    # resting where a view begins back until it moves (often 3-6 s), and the gate counts only
    # the hits it shows or holds at ``sure_score``. ``held_bytes``: the most held at once (MB);
    # past it the held frames are run, as after ``release_s``. 2 s, not longer: held longer (8 s), a
    # ring view of the tuning draws lost what the locator learned from its first seconds (draw 2
    # pale-window 0.843 -> 0.800); at 2 s draws 2 and 6 are main's and draw 1's ring view gains
    # (docs/BENCHMARKS.md, s14-speed)
    release_s: float = 2.0
    held_mb: float = 64.0
    # a second locator, the same, on each pixel's chroma distance from the still view's dominant
    # colour (the median U and V of the first frame it is offered in the view,
    # :meth:`.video.Frame.chroma_centre`), its hits taken after the first's (on frames left
    # without one). A translucent highlight pulls the colour under it toward its own: away from
    # grey over glass, but over stained tissue it may pull it toward grey as much as away (a
    # yellow ring over H&E changed the distance from grey by -12..+4 levels at the median, times
    # the gain, on the two tuning videos where it was never found, and its sign flipped between
    # views), while its distance from the tissue's own colour grows (3-10 times that contrast, one
    # sign). The plane from grey is kept: a dark or white pointer over coloured tissue hides the
    # tissue's colour, and moves a pixel's distance from grey more than from the tissue's colour
    # (on the new plane alone, draw 7's he-overlay-cross lost 0.798 -> 0.697)
    dominant: bool = True
    # the second locator (``dominant``) holds a still view's frames until the view ends (run then,
    # in order, with the motion they had) or the gate closes it (dropped), not only for
    # ``release_s``: its hits are taken only after the first's, in views the luma locator leaves
    # sparse, and a view the gate closes after ``release_s`` is one the luma locator tracks (hits
    # on half its frames so far). Run as they came, such views cost it 513 of ``small``'s 1108
    # frames for no hit (the luma locator confirms its track 2-6 s into each view), about a fifth
    # of that video's analysis CPU. In a view the gate leaves open it runs the same frames as
    # before; what it learned in the views it no longer sees is lost to later views (the ring
    # videos of the tuning draws: 7 of 14 the same, 3 up, 3 down; docs/BENCHMARKS.md, s17-speed)
    dominant_holds_view: bool = True


def chroma_gain(chroma: np.ndarray, config: ChromaConfig) -> int:
    """The gain for a video whose first frame's chroma distance is ``chroma`` (see ``ChromaConfig.span``)."""
    top = float(np.percentile(chroma[::4, ::4], 99))
    return int(max(1, min(config.max_gain, config.span // max(top, 1.0))))


def chroma_plane(chroma: np.ndarray, gain: int) -> np.ndarray:
    """``chroma`` (uint8 distance from neutral) times ``gain``, saturating at 255."""
    import cv2

    return chroma if gain == 1 else cv2.multiply(chroma, gain)


RUN, HOLD, SKIP = "run", "hold", "skip"  # what :meth:`LumaGate.wanted` says of a frame


class LumaGate:
    """Is the chroma locator still wanted in the open still view? (See ``ChromaConfig.hold_share``.)

    ``count(start, j)`` returns a future of (frames of ``start..j`` with a luma hit, frames), run
    once the luma locator has processed frame ``j`` (``CursorThread.call``): what it sees does not
    depend on timing, and it is read ``gate_lag`` frames later (mostly done by then; the caller
    waits for it where the luma locator is further behind)."""

    def __init__(self, config: ChromaConfig, count: Callable[[int, int], Future[tuple[int, int]]]) -> None:
        self.config = config
        self.count = count
        self.start: int | None = None  # the open still view's first frame
        self.closed = False  # the rest of the view is skipped
        self.decided = False  # the open view has lasted ``release_s`` without being closed
        self.asked: deque[tuple[int, Future[tuple[int, int]]]] = deque()

    def wanted(self, index: int, start: int | None, frame_interval: float) -> str:
        """Frame ``index``, in the still view that began at ``start`` (None: the view moves):
        ``RUN`` (a moving frame, or a view that has lasted ``release_s`` unclosed), ``HOLD``
        (a still view's frame before that: the gate may yet close the view) or ``SKIP`` (the
        view is closed)."""
        cfg = self.config
        if start != self.start:
            self.start, self.closed, self.decided = start, False, False
            self.asked.clear()
        if start is None:
            return RUN  # a moving frame: the locator ends its view there
        if self.closed:
            return SKIP
        if (index - start) % cfg.gate_every == 0:
            self.asked.append((index, self.count(start, index)))
        while self.asked and self.asked[0][0] <= index - cfg.gate_lag:
            _, answer = self.asked.popleft()
            hits, frames = answer.result()
            if frames * frame_interval >= cfg.hold_s and hits >= cfg.hold_share * frames:
                self.closed = True
                self.asked.clear()
                return SKIP
        if (index - start) * frame_interval >= cfg.release_s:
            self.decided = True
        return RUN if self.decided else HOLD


@dataclass
class _Held:
    """A still frame the chroma locator may yet run on (``HOLD``), or is to run on: its chroma
    distance at the U and V planes' size (None: no colour) and, for a frame whose motion comes
    from the frame before it, that frame's; the frame's (height, width). ``fresh``: no frame with
    colour ran just before it (its motion starts afresh), set when it is handed to the locator."""

    index: int
    t: float
    dist: np.ndarray | None
    before: np.ndarray | None
    ignore: np.ndarray | None
    scale: int
    shape: tuple[int, int]
    fresh: bool = False


class ChromaPointer:
    """The chroma plane's locator, on its own thread (see the module docstring)."""

    def __init__(
        self,
        frame_height: int,
        config: ChromaConfig,
        cursor: CursorConfig,
        queue_depth: int,
        gain: int = 1,
        analysis_width: int = 640,
        dominant: bool = False,
        hold_view: bool = False,
    ) -> None:
        """``cursor``: the luma locator's settings, used as they are (thresholds in grey levels of
        the stretched plane, see ``ChromaConfig.span``); ``gain``: the plane's (:func:`chroma_gain`
        on the video's first frame); ``analysis_width``: the extraction's (the plane reduced to it
        gives the locator its motion); ``dominant``: the plane is the distance from each still
        view's own colour, not from grey (``ChromaConfig.dominant``); ``hold_view``: a still view's
        frames are held until the view ends or the gate closes it, whatever ``release_s`` says
        (``ChromaConfig.dominant_holds_view``)."""
        self.config = config
        self.dominant = dominant
        self.hold_view = hold_view
        self.gain = gain
        self.analysis_width = analysis_width
        self.last: tuple[int, Frame] | None = None  # the frame offered before, its plane not made
        # the last frame handed to the locator had colour (its reduced plane is the next one's motion
        # reference on the locator's thread, ``prev_small``)
        self.chained = False
        self.batch: Future[None] | None = None  # the last frames run in one piece, until they have run
        self.held: list[_Held] = []  # the open view's frames not run yet (``HOLD``)
        self.held_view: int | None = None  # the view they belong to
        self.held_bytes = 0
        self.spilled: int | None = None  # a view whose frames were too many to hold (see ``offer``)
        self.travel = config.min_travel * frame_height / 720
        self.drift = config.drift_travel * frame_height / 720
        self.agree = config.still_agree * frame_height / 720
        self.step = cursor.max_step  # px one track moves between frames at most
        self.hits: dict[int, CursorHit] = {}
        # On the plane from the view's colour a ring stands out well enough that two sightings of it
        # shared a piece of its rim, learned and tracked off its centre (``SpriteConfig.shared_min_px``)
        sprite = replace(config.sprite, shared_min_px=True) if dominant else config.sprite
        # (a webcam region it would find the pointer in is left to the luma locator: ``pointer_haunts``)
        self.locator = TemplateCursorLocator(frame_height, replace(cursor, pointer_haunts=False), sprite)
        self.thread = CursorThread(self.locator, self.hits, queue_depth)
        self.prev_small: np.ndarray | None = None  # (the locator's thread's)
        self.centre: tuple[int, int] = NEUTRAL  # the colour the plane's distances are from (``dominant``)
        self.centre_view: int | None = None  # the still view it was taken in

    def submit(
        self,
        index: int,
        t: float,
        plane: np.ndarray,
        small: np.ndarray,
        moving: bool,
        ignore: np.ndarray | None,
        scale: int,
    ) -> None:
        """One analysed frame: its chroma ``plane`` (full resolution) and that plane reduced to the
        analysis scale (``small``), whether the view moves, the webcam's cells; processed now, on
        the locator's thread (made there, :meth:`_run`)."""
        import cv2

        motion = cv2.absdiff(small, self.prev_small) if self.prev_small is not None else None
        self.prev_small = small
        self.thread.process(AnalysedFrame(index, t, plane, motion, moving, ignore, scale))

    def _plane(self, dist: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        return chroma_plane(full_size(dist, shape), self.gain)

    def _small(self, plane: np.ndarray) -> np.ndarray:
        """``plane`` at the analysis scale (the small image of :func:`.frames.reduce_luma`)."""
        import cv2

        h, w = plane.shape
        scale = analysis_scale(w, self.analysis_width)
        return cv2.resize(plane, (w // scale, h // scale), interpolation=cv2.INTER_LINEAR)

    def offer(
        self,
        index: int,
        frame: Frame,
        moving: bool,
        ignore: np.ndarray | None,
        scale: int,
        verdict: str,
        view: int | None = None,
    ) -> None:
        """One analysed frame, in the still view that began at ``view``, with the gate's
        ``verdict`` (:meth:`LumaGate.wanted`): ``RUN``: its plane made and submitted (after the
        frames held); ``HOLD``: kept (its chroma distance, a quarter of the plane's pixels for
        4:2:0), to be run once the gate says ``RUN``, the view ends unclosed, or more than
        ``held_mb`` is held (the rest of that view then runs as it comes); ``SKIP``: not run, and
        the frames held in its view dropped. A moving frame is submitted without a plane (the
        locator ends its view on it). The motion of a frame run after one that was not is made
        from that one's plane, made then. So the locator sees the frames, and the motion, it saw
        when each frame of a view ran as it came until the gate closed the view, but for the
        views the gate closes while their frames are held: it sees none of those.

        The planes are made on the locator's thread (:meth:`_hand`), not on the caller's: frames
        held and then run go there in one piece, which takes one place in the queue, so the caller
        goes on with the next view while the locator works through them (one such piece at most
        waits or runs at a time: the next waits for it)."""
        if verdict == RUN and self.hold_view and not moving:
            verdict = HOLD  # until the view ends (``hold_view``)
        if moving or verdict == SKIP:
            if moving:
                self._release()  # a view that ended unclosed: its frames run, as they always did
                self.thread.submit(AnalysedFrame(index, frame.t, _NO_PLANE, None, True, ignore, scale))
            else:
                self._drop()
            self.last, self.chained = (index, frame), False
            return
        if self.held and self.held_view != view:
            self._release()
        if self.dominant and view != self.centre_view:
            self.centre = frame.chroma_centre() or NEUTRAL
            self.centre_view = view
        dist = frame.chroma_distance(self.centre)
        before = None
        follows = not self.held and not self.chained and self.last is not None and self.last[0] == index - 1
        if dist is not None and follows:
            assert self.last is not None
            before = self.last[1].chroma_distance(self.centre)
        self.last = None
        held = _Held(index, frame.t, dist, before, ignore, scale, frame.luma.shape[:2])
        size = sum(a.nbytes for a in (dist, before) if a is not None)
        if verdict == HOLD and view != self.spilled and self.held_bytes + size <= self.config.held_mb * 2**20:
            self.held.append(held)
            self.held_view = view
            self.held_bytes += size
            return
        if verdict == HOLD:
            self.spilled = view  # too much to hold: this view runs as it comes
        self._release()
        self._hand([held])

    def _release(self) -> None:
        """Run the frames held so far, in order."""
        self._hand(self.held)
        self._drop()

    def _drop(self) -> None:
        self.held = []  # (a new list: the one handed to the locator is read on its thread)
        self.held_bytes = 0

    def _hand(self, frames: list[_Held]) -> None:
        """Run ``frames`` (in order) on the locator's thread, their planes made there (:meth:`_run`):
        several frames as one piece of work, once the piece before it has run (what is handed over
        but not run yet stays within one view's held frames and the queue's depth)."""
        if not frames:
            return
        for held in frames:
            held.fresh = not self.chained
            self.chained = held.dist is not None
        if len(frames) == 1:
            self.thread.run_here(functools.partial(self._run, frames[0]))
            return
        if self.batch is not None:
            self.batch.result()
        self.batch = self.thread.run_here(functools.partial(self._run_all, frames))

    def _run_all(self, frames: list[_Held]) -> None:
        for held in frames:
            self._run(held)

    def _run(self, held: _Held) -> None:
        """One frame's plane and motion made, and the frame processed (on the locator's thread)."""
        if held.fresh:
            self.prev_small = None
        if held.dist is None:  # a frame without colour
            self.prev_small = None
            return
        if self.prev_small is None and held.before is not None:
            self.prev_small = self._small(self._plane(held.before, held.shape))
        plane = self._plane(held.dist, held.shape)
        self.submit(held.index, held.t, plane, self._small(plane), False, held.ignore, held.scale)

    def close(self, check: bool = True) -> None:
        if check:
            self._release()  # the last view, unclosed
        self._drop()
        self.thread.close(check=check)
        if check:
            for hit in self.locator.finish():
                self.hits[hit.index] = hit

    def fill(
        self,
        segments: list[Segment],
        hits: dict[int, CursorHit],
        sparse: list[Segment] | None = None,
        others: list[dict[int, CursorHit]] | None = None,
    ) -> int:
        """Add this locator's hits to ``hits`` in the segments where ``hits`` covers fewer than
        ``sparse_share`` of the frames (:func:`sparse_views`; ``sparse``: those segments, found
        before another chroma locator's hits were added), on the frames without a hit of their
        own, run by run (:func:`runs`): a run whose hits stay within ``min_travel`` of each other
        is left out, unless they span ``drift_travel`` over ``drift_s`` or longer (a pointer
        drifting); of a run left out, the hits where one of ``others`` (the other chroma locators'
        hits) has a hit within ``still_agree`` are taken (a pointer resting, seen on both planes).
        Returns how many hits were added."""
        added = 0
        for seg in sparse_views(segments, hits, self.config.sparse_share) if sparse is None else sparse:
            own = [self.hits[i] for i in range(seg.span.start, seg.span.end + 1) if i in self.hits]
            interval = (seg.end - seg.start) / max(1, seg.span.end - seg.span.start + 1)
            for run in runs(own, self.step):
                spread = travel(run)
                drifts = spread >= self.drift and (run[-1].index - run[0].index) * interval >= self.config.drift_s
                still = spread < self.travel and not drifts
                for hit in run:
                    if still and not any(_near(other.get(hit.index), hit, self.agree) for other in others or ()):
                        continue
                    if hit.index not in hits:
                        hits[hit.index] = hit
                        added += 1
        return added


def _near(other: CursorHit | None, hit: CursorHit, within: float) -> bool:
    return other is not None and math.hypot(other.x - hit.x, other.y - hit.y) <= within


def runs(hits: list[CursorHit], step: float) -> list[list[CursorHit]]:
    """``hits`` (in frame order) cut where a hit lies more than ``step`` px from the one before:
    each piece one track of one thing (frames without a hit between two hits do not cut it: a
    pointer rests, is lost for a while, and is found again where it went)."""
    out: list[list[CursorHit]] = []
    for h in hits:
        if out and math.hypot(h.x - out[-1][-1].x, h.y - out[-1][-1].y) <= step:
            out[-1].append(h)
        else:
            out.append([h])
    return out


def travel(hits: list[CursorHit]) -> float:
    """How far ``hits`` spread (their bounding box's diagonal)."""
    if not hits:
        return 0.0
    xs, ys = [h.x for h in hits], [h.y for h in hits]
    return float(math.hypot(max(xs) - min(xs), max(ys) - min(ys)))


def sparse_views(segments: list[Segment], hits: dict[int, CursorHit], share: float) -> list[Segment]:
    """The segments fewer than ``share`` of whose frames have a hit in ``hits``."""
    out = []
    for s in segments:
        frames = range(s.span.start, s.span.end + 1)
        if sum(i in hits for i in frames) < share * len(frames):
            out.append(s)
    return out
