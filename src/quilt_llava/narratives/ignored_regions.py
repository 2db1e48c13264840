"""The regions a cursor locator ignores: the caller's (a webcam), less those that hold the pointer.

In: each frame's ignored regions as the caller marks them (:attr:`AnalysedFrame.ignore`, analysis
scale: the places that kept changing through the view, :class:`~quilt_llava.narratives.webcam.WebcamWatch`)
and where the locator's verified track of a learned sprite lies. Out: the regions the locator and
its sprite learner ignore in that frame.

A pointer that keeps moving about one spot (circling, drifting, dwelling with a tremor) changes that
spot in most frames, as a webcam does; the larger the pointer, the larger the spot, and a 64 px
pointer's spot is as large as a small webcam box. Ignored, it hides the pointer itself: its candidates
are dropped and the learner refuses its sightings there. A webcam's picture is not one rigid shape
moving, while a learned sprite is exactly that (two sightings of one shape, apart). So a region that,
when the caller first marks it (or marks it anew), holds the verified track of a learned sprite is the
pointer's haunt: it is not ignored, nor is any region marked later that overlaps it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from quilt_llava.narratives.cursor_hits import AnalysedFrame


class IgnoredRegions:
    """The caller's ignored regions as the locator uses them (see the module docstring)."""

    def __init__(self) -> None:
        self._given: np.ndarray | None = None  # the caller's mask last seen (the same object while unchanged)
        self._used: np.ndarray | None = None  # what is ignored of it
        self.haunt: np.ndarray | None = None  # regions found to be the pointer's (analysis scale)

    def frame(self, frame: AnalysedFrame, pointer: tuple[float, float] | None) -> AnalysedFrame:
        """``frame`` with the regions it marks as ignored less the pointer's haunts; ``pointer``: the
        tip (full resolution) of the locator's verified track of a learned sprite in the frame before,
        if there is one."""
        if frame.ignore is None:
            return frame
        if frame.ignore is not self._given:
            self._given = frame.ignore
            self._used = self._without_haunts(frame.ignore, pointer, frame.scale)
        if self._used is frame.ignore:
            return frame
        return replace(frame, ignore=self._used)

    def claim(self, points: list[tuple[float, float]], scale: int) -> None:
        """The regions of the mask last seen that hold ``points`` (full resolution: where the sprite
        learner learned a sprite it saw alone changing them, ``SpriteLearner.claimed``) are haunts
        from now on."""
        if self._given is None:
            return
        for point in points:
            self._used = self._without_haunts(self._given, point, scale)

    def _without_haunts(self, given: np.ndarray, pointer: tuple[float, float] | None, scale: int) -> np.ndarray | None:
        """``given`` less its connected regions that hold ``pointer`` or overlap a known haunt."""
        import cv2

        _n, labels = cv2.connectedComponents(given.astype(np.uint8), connectivity=8)
        haunts: set[int] = set()
        if pointer is not None:
            h, w = given.shape
            row, col = min(h - 1, max(0, int(pointer[1] // scale))), min(w - 1, max(0, int(pointer[0] // scale)))
            label = int(labels[row, col])
            if label:
                haunts.add(label)
        if self.haunt is not None and self.haunt.shape == given.shape:
            haunts.update(int(j) for j in np.unique(labels[self.haunt]) if j)
        if not haunts:
            return given
        found = np.isin(labels, sorted(haunts))
        self.haunt = found if self.haunt is None or self.haunt.shape != found.shape else self.haunt | found
        used = given & ~found
        return used if used.any() else None
