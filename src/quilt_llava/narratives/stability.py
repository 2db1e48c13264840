"""Stable-view detection on small luma frames.

A :class:`StabilityDetector` has one required method, ``update(small)``, which takes
the next downscaled luma frame and says whether the view is moving. The default
splits the frame into a grid of cells and calls the view moving when a large share
of the informative cells changed, against the previous frame (fast pans, cuts,
zooms) or against the first frame of the current still run (slow drifts). A cursor
or a webcam box changes only a few cells, so they never end a segment; cells the
caller marks as ignored (a webcam) are left out of the count.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class StabilityDetector(Protocol):
    def update(self, small: np.ndarray, ignore: np.ndarray | None = None) -> bool:
        """Consume the next (h, w) uint8 frame; return True when the view is moving."""
        ...


@dataclass
class StabilityConfig:
    grid: tuple[int, int] = (12, 8)  # cells across, down
    cell_threshold: float = 6.0  # mean |difference| (grey levels) that marks a cell changed;
    # a keyframe refresh at CRF 35 gives ~2-4, a pan 15+
    moving_fraction: float = 0.3  # share of informative cells that must change
    texture_threshold: float = 2.0  # a cell with less spatial spread carries no motion information
    fine_threshold: float = 1.5  # near a pan, a cell this different means the view is still easing
    drift_fraction: float = 0.2  # share of informative cells that must differ that finely (still
    # frames: under 0.03 but for keyframe refreshes; a 3 px step at the start of a 30 fps pan: 0.26)
    # How far next to a pan the fine test may trim: ceil(boundary_s x the analysed frame rate)
    # frames, at least boundary_min_frames (3 at up to 30 fps, 5 at 50, 6 at 60): a pan eases over
    # about the same time at any rate; at low rates (10 fps) its eased steps still span 2-3 frames.
    boundary_s: float = 0.1
    boundary_min_frames: int = 3
    # A faint view (an empty grey field, a washed-out grey scan at a high CRF: its textured cells
    # spread a few grey levels) changes each cell by about its spread when it moves, under
    # ``cell_threshold``: when the 75th percentile of the textured cells' spread (in either frame)
    # is under ``faint_spread``, the cell threshold is scaled by it over ``faint_spread``, down to
    # ``faint_floor`` (still frames of such a view differ by 0-2 grey levels). On the tiny frames
    # the detector sees, most tissue views of the tuning videos spread well over 12 grey levels;
    # some 720p H&E views spread 9-11 (their threshold drops to 4.5-5.5), the grey corpus video 4-9.
    faint_spread: float = 12.0
    faint_floor: float = 2.5
    # A cross-fade between two views changes every frame by a fraction of their difference (under
    # half a grey level a frame in a 0.7 s fade), too little for either test above until it is well
    # under way. When a still run ends, each end is compared with a frame of the run ``settle_s``
    # further in (its middle, for a run shorter than twice that): the end loses the frames that
    # differ from it, blurred, in at least ``fade_share`` of all cells by more than
    # ``fade_threshold`` plus twice the cell's difference between the run's two reference frames
    # (the view's own noise: compression, a pointer). A pointer changes a few cells; a fade all of
    # them. None: no trim.
    settle_s: float | None = 1.0
    fade_share: float = 0.3
    fade_threshold: float = 0.75
    # A slow pan changes each frame too little for the test against the previous frame, and against
    # the run's first frame it may change fine detail only (the blur veto keeps it still) or change
    # a pale view's cells by less than ``cell_threshold``. But such a frame is the anchor shifted,
    # which neither compression nor a pointer makes: a still frame is moving where phase correlation
    # puts it and the frame before it ``pan_shift`` tiny px or more from the anchor, each
    # ``pan_growth`` further than at any frame of the ``pan_window_s`` before it (the view moves now:
    # a view that settled before the run's anchor was taken stays put, and a keyframe moves the
    # estimate by a fraction of that; one frame's estimate alone can jump that far), and shifting the
    # anchor by that much explains the difference (leaves at most ``PAN_EXPLAINED`` of it) in over
    # ``moving_fraction`` of the informative cells; :func:`~quilt_llava.narratives.views.pan_trimmed`
    # then trims a run's eased ends. None: neither. The test keeps its own anchor, so the cell tests
    # (and ``CellDiffStability.shifted``) give the verdicts they give without it; a frame it alone
    # calls moving ends a still run but is no change of view to the pointer locators (see
    # ``StillRuns.moving``).
    pan_shift: float | None = 0.5
    pan_growth: float = 0.2
    pan_window_s: float = 0.3


# Blur (px of the compared frame) before a change against the run's first frame, with none
# against the previous frame, counts as motion.
BLUR_SIGMA = 1.5
# The pan test (``StabilityConfig.pan_shift``): the share of a cell's difference from the anchor
# that the shifted anchor may leave for the shift to explain it; the least difference (grey levels)
# of a cell it may explain.
PAN_EXPLAINED = 0.5
PAN_CELL_MIN = 1.0
# A window of shifts within this share of ``pan_growth`` of each other: the view has settled, and the
# pan test re-anchors on it.
PAN_SETTLED = 0.5
_MOVED = object()  # marks "the last frame was moving" (no shortcut for the next one)


class CellDiffStability:
    """Grid-of-cells frame differencing against the previous frame and the run's anchor."""

    def __init__(self, config: StabilityConfig | None = None) -> None:
        self.config = config or StabilityConfig()
        self.prev: np.ndarray | None = None
        self.anchor: np.ndarray | None = None
        self._anchor_blurred: tuple[np.ndarray, np.ndarray] | None = None  # (anchor, it blurred): made once a run
        self._spreads: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._still_with: object = _MOVED
        self.vetoed = False  # the last frame changed since the run's first frame in fine detail only
        # The pan test's anchor: the first frame since the last moving one, of either test (the cell
        # tests' ``anchor`` stays where it was through a slow pan, so their verdicts are unchanged).
        self.pan_anchor: np.ndarray | None = None
        self.shifted = False  # the last frame was moving for the pan test alone
        self._shifts: deque[float] = deque()  # the last frames' shift from the pan anchor (px)
        self._grew = False  # the last frame's shift was far enough, and grown enough, for the pan test
        self.set_frame_rate(25.0)
        self._window: np.ndarray | None = None  # phase correlation's Hann window, made once per frame size

    def set_frame_rate(self, fps: float) -> None:
        """The analysed frame rate: how many frames ``pan_window_s`` spans."""
        frames = max(1, math.ceil(round(self.config.pan_window_s * fps, 6)))
        self._shifts = deque(self._shifts, maxlen=frames)

    def _spread(self, img: np.ndarray) -> np.ndarray:
        # Frames are compared with the previous one and the anchor: remember each frame's cell spread.
        key = id(img)
        if key not in self._spreads:
            self._spreads[key] = (img, _cell_spread(img, self.config.grid))
            if len(self._spreads) > 8:
                anchors = (self.anchor, self.pan_anchor, self._anchor_blurred[1] if self._anchor_blurred else None)
                kept = (img, self.prev, *anchors)
                live = {id(x) for x in kept if x is not None}
                self._spreads = {k: v for k, v in self._spreads.items() if k in live}
        return self._spreads[key][1]

    def _changed(
        self, a: np.ndarray, b: np.ndarray, ignore: np.ndarray | None, threshold: float | None = None
    ) -> float:
        """Share of informative cells whose mean |a - b| exceeds ``threshold`` (default: the config's)."""
        import cv2

        cfg = self.config
        threshold = cfg.cell_threshold if threshold is None else threshold
        diff = cv2.resize(cv2.absdiff(a, b).astype(np.float32), cfg.grid, interpolation=cv2.INTER_AREA)
        # Informative cells: textured in either frame, or changed at all.
        spread = np.maximum(self._spread(a), self._spread(b))
        textured = spread > cfg.texture_threshold
        if threshold > cfg.faint_floor and textured.any():
            spreads = spread[textured]
            # The 75th percentile is at least the sorted value at floor(0.75 (n - 1)): where that one
            # is already ``faint_spread`` or more (most views), the view is not faint and the
            # percentile (about 0.1 ms a frame pair) is not needed.
            lower = int(0.75 * (spreads.size - 1))
            if np.count_nonzero(spreads >= cfg.faint_spread) < spreads.size - lower:
                faint = float(np.percentile(spreads, 75))
                if faint < cfg.faint_spread:  # a faint view: its motion is judged against its own contrast
                    threshold = max(cfg.faint_floor, threshold * faint / cfg.faint_spread)
        informative = textured | (diff > threshold)
        if ignore is not None:
            informative &= ~ignore
        n = int(informative.sum())
        if n == 0:
            return 0.0
        return float(((diff > threshold) & informative).sum()) / n

    def drifting(self, a: np.ndarray, b: np.ndarray, ignore: np.ndarray | None = None) -> bool:
        """A finer test used only next to a detected pan: is the view still easing in or out?"""
        return (
            self._changed(self._crop(a), self._crop(b), ignore, self.config.fine_threshold) > self.config.drift_fraction
        )

    def _crop(self, img: np.ndarray) -> np.ndarray:
        """Crop to whole cells: cell means are then an exact, fast integer-factor reduction."""
        gx, gy = self.config.grid
        h, w = img.shape
        return img[: h - h % gy, : w - w % gx] if h >= gy and w >= gx else img

    def _blurred_anchor(self) -> np.ndarray:
        """The run's anchor blurred (see :func:`_blurred`), made once per anchor: a run whose frames
        keep differing from it in fine detail only compares each of them with it blurred."""
        assert self.anchor is not None
        if self._anchor_blurred is None or self._anchor_blurred[0] is not self.anchor:
            self._anchor_blurred = (self.anchor, _blurred(self.anchor))
        return self._anchor_blurred[1]

    def update(self, small: np.ndarray, ignore: np.ndarray | None = None) -> bool:
        import cv2

        small = self._crop(small)
        self.shifted = False
        if self.prev is None:
            self.prev = self.anchor = self.pan_anchor = small
            self._still_with = ignore
            return False
        if (
            self._still_with is ignore
            and ignore is not _MOVED
            and small.shape == self.prev.shape
            and cv2.norm(small, self.prev, cv2.NORM_INF) == 0
        ):
            # The same pixels as the previous still frame (a static screen decodes to identical
            # frames): against it nothing changed, against the anchor as much as before, so the
            # cell tests' verdict and veto stand. The pan test keeps a record of shifts over time,
            # so it runs as on any other frame (below).
            moving = False
        else:
            self.vetoed = False
            moving = self._changed(small, self.prev, ignore) > self.config.moving_fraction
            if (
                not moving
                and self.anchor is not None
                and self._changed(small, self.anchor, ignore) > self.config.moving_fraction
            ):
                # Changed since the run's first frame, not since the last one: a slow drift, or
                # compression alone (the view re-sharpening over the seconds after a pan, then a
                # keyframe refresh). That changes fine detail; a drift moves the coarse structure
                # too, which survives a blur.
                moving = self._changed(_blurred(small), self._blurred_anchor(), ignore) > self.config.moving_fraction
                # Undecided either way: the first, eased steps of a pan change fine detail only too.
                # :class:`~quilt_llava.narratives.views.StillRuns` trims such frames next to a pan.
                self.vetoed = not moving
        if not moving and self.pan_anchor is not None and self.config.pan_shift is not None:
            self.shifted = self._panned(small, ignore)
            self.vetoed = self.vetoed and not self.shifted
        self.prev = small
        ended = moving or self.shifted
        if ended or self.pan_anchor is None:
            self._shifts.clear()
            self._grew = False
        # A moving frame re-anchors: the next still run is compared with its own first frame. A frame
        # the pan test alone calls moving re-anchors that test only.
        self.anchor = None if moving else (self.anchor if self.anchor is not None else small)
        self.pan_anchor = None if ended else (self.pan_anchor if self.pan_anchor is not None else small)
        self._still_with = _MOVED if moving else ignore  # the ignore mask of the last still frame
        return ended

    def _panned(self, small: np.ndarray, ignore: np.ndarray | None) -> bool:
        """Is this still-looking frame the pan anchor shifted, further than a few frames ago (see
        ``StabilityConfig.pan_shift``)? Records the frame's shift from that anchor."""
        import cv2

        cfg = self.config
        anchor = self.pan_anchor
        assert anchor is not None and cfg.pan_shift is not None
        earlier = min(self._shifts, default=0.0)
        fine = cfg.fine_threshold
        if small.shape != anchor.shape or self._changed(small, anchor, ignore, fine) <= cfg.moving_fraction:
            self._shifts.append(0.0)  # (too alike to tell a shift)
            self._grew = False
            return False
        a, b = anchor.astype(np.float32), small.astype(np.float32)
        h, w = a.shape
        if self._window is None or self._window.shape != (h, w):
            self._window = cv2.createHanningWindow((w, h), cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(a, b, self._window)
        shift = float(np.hypot(dx, dy))
        self._shifts.append(shift)
        if (
            len(self._shifts) == self._shifts.maxlen
            and max(self._shifts) - min(self._shifts) < PAN_SETTLED * cfg.pan_growth
        ):
            # The view stayed put for a whole window: it is the anchor from here on. An anchor taken on
            # a pan's last eased step lies a fraction of a px off the settled view, and a keyframe that
            # moves the estimate by a fraction of the growth bar then reaches both bars.
            self.pan_anchor = small
            self._shifts.clear()
            self._grew = False
            return False
        # Both this frame and the one before: a pan goes on moving, while one frame's estimate can jump
        # by the growth bar (0.36-0.45 px, then 0.57 on one frame, on a view settled 0.4 px off an
        # anchor taken on the pan's last eased step).
        grew, self._grew = self._grew, shift >= cfg.pan_shift and shift - earlier >= cfg.pan_growth
        if not (grew and self._grew):
            return False
        moved = cv2.warpAffine(a, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REPLICATE)
        # Left out: the border the shift brings in (no anchor pixels there).
        inside = np.zeros((h, w), np.float32)
        mx, my = int(np.ceil(abs(dx))) + 1, int(np.ceil(abs(dy))) + 1
        inside[my : h - my, mx : w - mx] = 1.0
        before = cv2.resize(cv2.absdiff(b, a) * inside, cfg.grid, interpolation=cv2.INTER_AREA)
        after = cv2.resize(cv2.absdiff(b, moved) * inside, cfg.grid, interpolation=cv2.INTER_AREA)
        informative = np.maximum(self._spread(small), self._spread(anchor)) > cfg.texture_threshold
        if ignore is not None:
            informative &= ~ignore
        n = int(informative.sum())
        explained = (before > PAN_CELL_MIN) & (after <= PAN_EXPLAINED * before) & informative
        return n > 0 and int(explained.sum()) > cfg.moving_fraction * n


def _blurred(img: np.ndarray) -> np.ndarray:
    """``img`` without its finest detail (what compression changes on a still view)."""
    import cv2

    return cv2.GaussianBlur(img, (0, 0), BLUR_SIGMA)


def _cell_spread(img: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Per-cell standard deviation of ``img`` (grid[1], grid[0])."""
    import cv2

    f = img.astype(np.float32)
    mean = cv2.resize(f, grid, interpolation=cv2.INTER_AREA)
    mean_sq = cv2.resize(f * f, grid, interpolation=cv2.INTER_AREA)
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))


@dataclass(frozen=True)
class Span:
    start: int  # first frame index (inclusive)
    end: int  # last frame index (inclusive)


def still_runs(moving: np.ndarray, times: np.ndarray, min_duration: float, frame_interval: float) -> list[Span]:
    """Maximal runs of still frames lasting at least ``min_duration`` seconds."""
    spans = []
    i, n = 0, len(moving)
    while i < n:
        if moving[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and not moving[j + 1]:
            j += 1
        if times[j] - times[i] + frame_interval >= min_duration:
            spans.append(Span(i, j))
        i = j + 1
    return spans


STABILITY_DETECTORS: dict[str, type] = {"cells": CellDiffStability}
