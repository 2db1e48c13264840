"""View stability: analysed frames in, still runs (spans of frames of one still view) out.

The stability detector says, frame by frame, whether the view moves (a pan, a zoom, a
cut). A still run is a maximal stretch of still frames, with its ends trimmed where the
view was still easing into or out of a pan: next to a detected pan (within
``StabilityConfig.boundary_s``, at least ``boundary_min_frames``), a finer test
(:meth:`CellDiffStability.drifting`) is applied to neighbouring frames at a resolution no
coarser than ``DRIFT_MAX_PX`` video pixels per pixel. When a run closes, its ends also lose the
frames of a cross-fade (:func:`fade_trimmed`): a fade changes each frame too little for the
detector until it is well under way, so the run would otherwise keep a blend of two views.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from quilt_llava.narratives.stability import PAN_CELL_MIN, CellDiffStability, Span, StabilityConfig, _blurred

# Coarsest video px per pixel at which easing next to a pan is judged: the small (320 px) frame
# up to 1280 px wide. At 8 (the tiny frame at 720p), the 2 px first step of a pan at 30 fps and
# CRF 35 was 0.27 px there, not seen, and a trace point fell on it (benchmark variant cuts30).
DRIFT_MAX_PX = 4
# How much more (grey levels, mean over the cells) a frame at a run's end must differ from the
# settled view than its neighbour one frame further in, to be taken for a frame of a fade.
FADE_STEP = 0.05
# How far (tiny px) beyond the view's own noise a frame at a run's end must be from the settled view
# for :func:`pan_trimmed` to take it for an eased step of a pan (still frames: about 0.01-0.08).
PAN_TRIM_PX = 0.1
# The least phase-correlation peak (0-1) at which that shift is believed (a shifted view: 0.95-0.99).
PAN_TRIM_PEAK = 0.5


def drift_image(small: np.ndarray, tiny: np.ndarray, scale: int) -> np.ndarray:
    """Which reduced frame the easing test uses: the tiny one while it has at most
    ``DRIFT_MAX_PX`` video px per pixel (below 640 px wide), else the small one."""
    return tiny if 2 * scale <= DRIFT_MAX_PX else small


def boundary_frames(config: StabilityConfig, fps: float) -> int:
    """Frames next to a pan the easing test may trim: ``boundary_s`` at ``fps``, rounded up, at
    least ``boundary_min_frames``."""
    return max(config.boundary_min_frames, 1, math.ceil(round(config.boundary_s * fps, 6)))


def _cell_diff(a: np.ndarray, b: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mean |a - b| per cell of ``grid`` (cells down, across)."""
    import cv2

    return cv2.resize(cv2.absdiff(a, b).astype(np.float32), grid, interpolation=cv2.INTER_AREA)


def _references(span: Span, frames: dict[int, np.ndarray], reach: int) -> tuple[int, int] | None:
    """The frames ``reach`` in from each end of ``span`` (its middle, for a run shorter than twice
    that) that a run's ends are compared with, or None where the run is too short or ``frames`` lacks
    them."""
    s, e = span.start, span.end
    if e - s < 2:
        return None
    mid = (s + e) // 2
    ref_start, ref_end = min(mid, s + reach), max(mid, e - reach)
    return (ref_start, ref_end) if ref_start in frames and ref_end in frames else None


def _trim_ends(span: Span, ref_start: int, ref_end: int, dropped: Callable[[int, int, int], bool]) -> Span:
    """``span`` without the frames at each end that ``dropped(i, toward, ref)`` takes out, one by one
    from the end inward (``toward``: the neighbour one frame nearer the reference ``ref``)."""
    s, e = span.start, span.end
    while e > ref_end and dropped(e, e - 1, ref_end):
        e -= 1
    while s < min(e, ref_start) and dropped(s, s + 1, ref_start):
        s += 1
    return Span(s, e)


def fade_trimmed(
    span: Span, frames: dict[int, np.ndarray], config: StabilityConfig, reach: int, ignore: np.ndarray | None = None
) -> Span:
    """``span`` without the frames at its ends that differ from the settled view as a cross-fade
    does (``StabilityConfig.settle_s``, ``fade_share``): ``frames`` holds the run's tiny frames
    by index (at least its first and last ``reach`` + 1 and, for a shorter run, all of them);
    ``reach``: how many frames in from an end the reference is taken. ``ignore``: cells left out.
    """
    refs = _references(span, frames, reach)
    if refs is None:
        return span
    ref_start, ref_end = refs
    grid = config.grid
    blurred: dict[int, np.ndarray] = {}

    def image(i: int) -> np.ndarray:
        if i not in blurred:
            blurred[i] = _blurred(frames[i])
        return blurred[i]

    keep = np.ones((grid[1], grid[0]), bool) if ignore is None else ~ignore
    cells = int(keep.sum())
    if cells == 0:
        return span
    bar = config.fade_threshold + 2.0 * _cell_diff(image(ref_start), image(ref_end), grid)

    diffs: dict[tuple[int, int], np.ndarray] = {}

    def diff(i: int, ref: int) -> np.ndarray:
        if (i, ref) not in diffs:
            diffs[i, ref] = _cell_diff(image(i), image(ref), grid)
        return diffs[i, ref]

    def faded(i: int, toward: int, ref: int) -> bool:
        """Frame ``i`` is part of a fade: unlike the reference in most cells, and more unlike it
        than its neighbour ``toward`` the reference (a fade changes every frame; a compression
        refresh changes the view once, and the frames before it are all alike)."""
        if i not in frames or toward not in frames:
            return False
        d = diff(i, ref)
        changed = (d > bar) & keep
        if int(changed.sum()) < config.fade_share * cells:
            return False
        return float(d[keep].mean()) > float(diff(toward, ref)[keep].mean()) + FADE_STEP

    return _trim_ends(span, ref_start, ref_end, faded)


def pan_trimmed(
    span: Span, frames: dict[int, np.ndarray], config: StabilityConfig, reach: int, ignore: np.ndarray | None = None
) -> Span:
    """``span`` without the frames at its ends that are the settled view shifted, further the nearer
    the end: the first and last eased steps of a slow pan (``StabilityConfig.pan_shift``), which the
    detector finds only once the shift has grown (``frames`` and ``reach`` as for
    :func:`fade_trimmed`). A frame is dropped while phase correlation puts it more than
    ``PAN_TRIM_PX`` tiny px (plus the shift between the run's two reference frames: the view's own
    noise) from the reference, further than its neighbour toward the reference, and it differs from
    the reference by ``PAN_CELL_MIN`` grey levels or more in over ``moving_fraction`` of the cells
    (a pointer moving over a flat view changes a few). A shift found with a correlation peak under
    ``PAN_TRIM_PEAK`` counts as none."""
    import cv2

    refs = None if config.pan_shift is None else _references(span, frames, reach)
    if refs is None:
        return span
    ref_start, ref_end = refs
    shape = frames[ref_start].shape
    window = cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_32F)
    keep = np.ones((config.grid[1], config.grid[0]), bool) if ignore is None else ~ignore
    cells = int(keep.sum())
    if cells == 0:
        return span
    shifts: dict[tuple[int, int], float] = {}

    def shift(i: int, ref: int) -> float:
        if (i, ref) not in shifts:
            (dx, dy), peak = cv2.phaseCorrelate(frames[ref].astype(np.float32), frames[i].astype(np.float32), window)
            # A weak peak is no shift (a cut-to view still sharpening, text lines): never trimmed.
            shifts[i, ref] = float(np.hypot(dx, dy)) if peak >= PAN_TRIM_PEAK else 0.0
        return shifts[i, ref]

    bar = PAN_TRIM_PX + shift(ref_start, ref_end)

    def panned(i: int, toward: int, ref: int) -> bool:
        if i not in frames or toward not in frames or frames[i].shape != shape:
            return False
        if shift(i, ref) <= max(bar, shift(toward, ref)):
            return False
        changed = (_cell_diff(frames[i], frames[ref], config.grid) > PAN_CELL_MIN) & keep
        return int(changed.sum()) > config.moving_fraction * cells

    return _trim_ends(span, ref_start, ref_end, panned)


@dataclass(frozen=True)
class ViewStep:
    """What one analysed frame did to the still runs."""

    closed: Span | None = None  # the still run that ended before this frame (its end trimmed)
    started: bool = False  # a still run starts at this frame (earlier samples of it are void)


class StillRuns:
    """Feeds a :class:`CellDiffStability` and turns its verdicts into still runs.

    Per frame: :meth:`moving` (before the frame is used elsewhere), then :meth:`step` with
    that verdict; at the end of the video :meth:`close` ends the run still open. ``fps``: the
    analysed frame rate (:meth:`set_frame_rate` once it is known)."""

    def __init__(self, config: StabilityConfig | None = None, fps: float = 25.0) -> None:
        self.config = config or StabilityConfig()
        self.detector = CellDiffStability(self.config)
        self.start: int | None = None  # first frame of the open still run
        # The first frame of the still view as the pointer locators see it: a frame moving for the
        # pan test alone (:attr:`shifted`) ends a run, not that view (None: the view changes).
        self.view_start: int | None = None
        self.shifted = False
        self.recent: deque[tuple[int, np.ndarray]] = deque()
        # Recent frames the detector left undecided (changed since the run's first frame in fine
        # detail only: compression, or the eased start of a pan, which the trim then finds).
        self.vetoed: deque[int] = deque()
        # The open run's tiny frames for the fade trim: its first ``settle`` + 1 and its last.
        self._tiny: np.ndarray | None = None  # the frame :meth:`moving` saw, for :meth:`step`
        self._head: list[tuple[int, np.ndarray]] = []
        self._tail: deque[tuple[int, np.ndarray]] = deque()
        self._ignore: np.ndarray | None = None
        self.set_frame_rate(fps)

    def set_frame_rate(self, fps: float) -> None:
        """The analysed frame rate: how many frames ``boundary_s`` spans (frames held so far stay)."""
        self.boundary = boundary_frames(self.config, fps)
        if hasattr(self.detector, "set_frame_rate"):
            self.detector.set_frame_rate(fps)
        self.recent = deque(self.recent, maxlen=2 * self.boundary + 2)
        self.vetoed = deque(self.vetoed, maxlen=2 * self.boundary + 2)
        settle = self.config.settle_s
        self.settle = 0 if settle is None else max(1, math.ceil(round(settle * fps, 6)))
        self._tail = deque(self._tail, maxlen=self._tail_len())

    def moving(self, tiny: np.ndarray, ignore: np.ndarray | None = None) -> bool:
        """Is the view moving at this frame (``ignore``: cells left out, a webcam)? Afterwards
        :attr:`shifted` says whether it is for the pan test alone (``StabilityConfig.pan_shift``):
        the frame of a slow pan then ends the still run, but the view goes on for what follows a
        pointer (it moves, it is learned, it rests: the pan carries it as before, and restarting the
        locators at each such frame lost pointers that arrived or were learned during the pan)."""
        self._tiny = tiny
        moving = self.detector.update(tiny, ignore)
        self.shifted = moving and bool(getattr(self.detector, "shifted", False))
        return moving

    def step(self, index: int, moving: bool, drift: np.ndarray, ignore: np.ndarray | None = None) -> ViewStep:
        """Frame ``index`` with its verdict and its :func:`drift_image`."""
        self.recent.append((index, drift))
        self._view_step(index, moving and not self.shifted, ignore)
        if getattr(self.detector, "vetoed", False):
            self.vetoed.append(index)
        boundary = self.boundary
        if moving:
            # Trim still frames just before the pan where the view had already begun to ease out
            # (within ``boundary`` frames of it, not counting undecided ones).
            last = index - 1
            if self.start is not None:
                drifts = dict(self.recent)
                reach = index
                while reach - 1 in self.vetoed:
                    reach -= 1
                while (
                    last > self.start
                    and last - 1 in drifts
                    and reach - last <= boundary
                    and self.detector.drifting(drifts[last], drifts[last - 1], ignore)
                ):
                    last -= 1
            return ViewStep(closed=self.close(last))
        started = False
        if self._eased_in(self.start, index, ignore):
            # The view was still easing in after the pan: the run starts here.
            self.start, started = index, True
        if self.start is None:
            self.start, started = index, True
        if started:
            self._head, self._tail = [], deque(maxlen=self._tail_len())
        if self.settle and self._tiny is not None:
            if len(self._head) <= self.settle:
                self._head.append((index, self._tiny))
            self._tail.append((index, self._tiny))
            self._ignore = ignore
        self._tiny = None
        return ViewStep(started=started)

    def _view_step(self, index: int, changing: bool, ignore: np.ndarray | None) -> None:
        """:attr:`view_start` at frame ``index`` (``changing``: moving, not for the pan test alone),
        started as a run's start is."""
        if changing:
            self.view_start = None
            return
        if self.view_start is None or self._eased_in(self.view_start, index, ignore):
            self.view_start = index

    def _eased_in(self, start: int | None, index: int, ignore: np.ndarray | None) -> bool:
        """Whether frame ``index``, the one after a view's first frame ``start``, still drifts from
        it (the view easing in after a pan): the view then starts at ``index``."""
        return (
            start is not None
            and index == start + 1
            and index - start <= self.boundary
            and len(self.recent) >= 2
            and self.detector.drifting(self.recent[-1][1], self.recent[-2][1], ignore)
        )

    def close(self, last: int) -> Span | None:
        """End the open run at frame ``last`` (None when no run is open)."""
        if self.start is None:
            return None
        span = Span(self.start, last)
        self.start = None
        if self.settle:
            frames = {i: f for i, f in (*self._head, *self._tail) if span.start <= i <= span.end}
            span = fade_trimmed(span, frames, self.config, self.settle, self._ignore)
            span = pan_trimmed(span, frames, self.config, self.settle, self._ignore)
        self._head, self._tail = [], deque(maxlen=self._tail_len())
        return span

    def _tail_len(self) -> int:
        # the last ``settle`` + 1 frames before a run's end, which the easing trim may move back
        return self.settle + 2 * self.boundary + 3 if self.settle else 0
