"""The pointer-free background of a still view, and how much a match differs from it.

In: each still frame after matching, with where the pointer was before and is now
(:meth:`PointerFreeBackground.update`). Out: the mean |frame - background| under a template at a
given hotspot (:meth:`PointerFreeBackground.change`): a pointer differs from what it covers,
tissue that merely looks like a pointer does not.

The background is the last frame, except under the pointer, where the pixels from before it
arrived are kept. It is held as a reference to the frame plus small patches, so nothing
full-size is copied (decoded frames are never written to).
"""

from __future__ import annotations

import numpy as np

from quilt_llava.narratives.templates import Template, masked_mean_diff, patch_box


class PointerFreeBackground:
    """The last frame with the pointer-free patches kept from before the pointer arrived."""

    def __init__(self) -> None:
        self.frame: np.ndarray | None = None  # the last frame (a reference, never written to)
        self.patches: list[tuple[int, int, int, int, np.ndarray]] = []  # pointer-free pixels kept from before

    def clear(self) -> None:
        self.frame, self.patches = None, []

    def region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """The background in a region: the last frame, with the kept pointer-free patches on top."""
        assert self.frame is not None
        region = self.frame[y0:y1, x0:x1].copy()
        for px0, py0, px1, py1, patch in self.patches:
            ix0, iy0, ix1, iy1 = max(x0, px0), max(y0, py0), min(x1, px1), min(y1, py1)
            if ix1 > ix0 and iy1 > iy0:
                region[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = patch[iy0 - py0 : iy1 - py0, ix0 - px0 : ix1 - px0]
        return region

    def change(self, luma: np.ndarray, x: float, y: float, t: Template) -> float:
        """Mean |frame - background| over the template's pixels with its hotspot at (x, y); 0 with
        no background yet or where the template leaves the frame."""
        if self.frame is None:
            return 0.0
        x0, y0, x1, y1 = patch_box(x, y, t)
        H, W = luma.shape
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            return 0.0
        return masked_mean_diff(luma[y0:y1, x0:x1], self.region(x0, y0, x1, y1), t.mask)

    def update(self, luma: np.ndarray, keep: list[tuple[float, float, Template]]) -> None:
        """Background = this frame, except under the pointer (``keep``: hotspots and templates of
        where it was before and is now; the pixels there are kept from before it arrived)."""
        if self.frame is None:
            self.frame, self.patches = luma, []
            return
        H, W = luma.shape
        patches = []
        for x, y, t in keep:
            x0, y0, x1, y1 = patch_box(x, y, t)
            x0, y0, x1, y1 = max(0, x0 - 2), max(0, y0 - 2), min(W, x1 + 2), min(H, y1 + 2)
            if x1 > x0 and y1 > y0:
                patches.append((x0, y0, x1, y1, self.region(x0, y0, x1, y1)))
        self.frame, self.patches = luma, patches
