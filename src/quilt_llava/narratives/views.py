"""View stability: analysed frames in, still runs (spans of frames of one still view) out.

The stability detector says, frame by frame, whether the view moves (a pan, a zoom, a
cut). A still run is a maximal stretch of still frames, with its ends trimmed where the
view was still easing into or out of a pan: next to a detected pan (within
``StabilityConfig.boundary_s``, at least ``boundary_min_frames``), a finer test
(:meth:`CellDiffStability.drifting`) is applied to neighbouring frames at a resolution no
coarser than ``DRIFT_MAX_PX`` video pixels per pixel.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from quilt_llava.narratives.stability import CellDiffStability, Span, StabilityConfig

# Coarsest video px per pixel at which easing next to a pan is judged: the small (320 px) frame
# up to 1280 px wide. At 8 (the tiny frame at 720p), the 2 px first step of a pan at 30 fps and
# CRF 35 was 0.27 px there, not seen, and a trace point fell on it (benchmark variant cuts30).
DRIFT_MAX_PX = 4


def drift_image(small: np.ndarray, tiny: np.ndarray, scale: int) -> np.ndarray:
    """Which reduced frame the easing test uses: the tiny one while it has at most
    ``DRIFT_MAX_PX`` video px per pixel (below 640 px wide), else the small one."""
    return tiny if 2 * scale <= DRIFT_MAX_PX else small


def boundary_frames(config: StabilityConfig, fps: float) -> int:
    """Frames next to a pan the easing test may trim: ``boundary_s`` at ``fps``, rounded up, at
    least ``boundary_min_frames``."""
    return max(config.boundary_min_frames, 1, math.ceil(round(config.boundary_s * fps, 6)))


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
        self.recent: deque[tuple[int, np.ndarray]] = deque()
        # Recent frames the detector left undecided (changed since the run's first frame in fine
        # detail only: compression, or the eased start of a pan, which the trim then finds).
        self.vetoed: deque[int] = deque()
        self.set_frame_rate(fps)

    def set_frame_rate(self, fps: float) -> None:
        """The analysed frame rate: how many frames ``boundary_s`` spans (frames held so far stay)."""
        self.boundary = boundary_frames(self.config, fps)
        self.recent = deque(self.recent, maxlen=2 * self.boundary + 2)
        self.vetoed = deque(self.vetoed, maxlen=2 * self.boundary + 2)

    def moving(self, tiny: np.ndarray, ignore: np.ndarray | None = None) -> bool:
        """Is the view moving at this frame (``ignore``: cells left out, a webcam)?"""
        return self.detector.update(tiny, ignore)

    def step(self, index: int, moving: bool, drift: np.ndarray, ignore: np.ndarray | None = None) -> ViewStep:
        """Frame ``index`` with its verdict and its :func:`drift_image`."""
        self.recent.append((index, drift))
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
        if (
            self.start is not None
            and index - self.start <= boundary
            and index == self.start + 1
            and self.detector.drifting(self.recent[-1][1], self.recent[-2][1], ignore)
        ):
            # The view was still easing in after the pan: the run starts here.
            self.start, started = index, True
        if self.start is None:
            self.start, started = index, True
        return ViewStep(started=started)

    def close(self, last: int) -> Span | None:
        """End the open run at frame ``last`` (None when no run is open)."""
        if self.start is None:
            return None
        span = Span(self.start, last)
        self.start = None
        return span
