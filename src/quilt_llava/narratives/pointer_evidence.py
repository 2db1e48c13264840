"""Is a match at a spot the pointer? What the frames say beyond its shape.

In: a frame, a hotspot (x, y) and a template index; the pointer-free background
(:class:`~quilt_llava.narratives.background.PointerFreeBackground`) and the view's held frames
(:class:`~quilt_llava.narratives.view_history.ViewHistory`). Out: the evidence the locator
weighs, each a number or a yes/no:

- :meth:`PointerEvidence.change`: how much the spot differs from the background under the
  template (a pointer differs from what it covers; tissue that looks like a pointer does not);
- :meth:`PointerEvidence.new_here`: whether it also differs from the view a few frames back in
  the template's pattern (the spot a pointer has just left differs from the last frame too, but
  shows what it showed before the pointer passed);
- :meth:`PointerEvidence.new_there`: both, outside ignored regions;
- :meth:`PointerEvidence.there_before`: how much of a walk back, or of a held-back track's hits,
  lies on a spot that showed the same in an earlier frame where the pointer was verified
  somewhere else (then it is the tissue);
- :meth:`PointerEvidence.spot_diff`: the spot compared with any other frame;
- :meth:`PointerEvidence.uncovered_diff`: the same over the part of one shape's spot another
  shape placed beside it does not cover (does what lay there still show?);
- :meth:`PointerEvidence.contrast`: the fill/outline contrast there (pointers are drawn black
  on white or the reverse; tissue is far less contrasted).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.background import PointerFreeBackground
from quilt_llava.narratives.cursor_hits import AnalysedFrame, CursorHit, inside
from quilt_llava.narratives.templates import Template, fill_ring_contrast, masked_mean_diff, patch_box, spot_diff
from quilt_llava.narratives.view_history import ViewHistory

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig


class PointerEvidence:
    """Tests of a match against the background and the view's held frames."""

    def __init__(
        self, templates: list[Template], background: PointerFreeBackground, history: ViewHistory, config: CursorConfig
    ) -> None:
        self.templates = templates
        self.background = background
        self.history = history
        self.config = config

    def change(self, luma: np.ndarray, x: float, y: float, k: int) -> float:
        """Mean |frame - background| over the arrow's pixels at (x, y): a pointer differs from what it covers."""
        return self.background.change(luma, x, y, self.templates[k])

    def new_there(self, frame: AnalysedFrame, x: float, y: float, k: int) -> bool:
        """Does a pointer of shape ``k`` with its tip at (x, y) cover something new: it differs from
        the background, and from the view some frames back in the template's pattern?"""
        if frame.ignore is not None and inside(frame.ignore, x, y, frame.scale):
            return False
        return self.change(frame.luma, x, y, k) >= self.config.min_change and self.new_here(frame, x, y, k)

    def new_here(self, frame: AnalysedFrame, x: float, y: float, k: int, back: int = 8) -> bool:
        """Is what matches at (x, y) new there? A spot differs from the background (the last frame)
        both where the pointer arrives and where it has just left; in the second case the spot
        shows what it showed before the pointer passed. So a match that would verify a track must
        also differ from the view's oldest held frame at most ``back`` frames earlier (True when
        none). A pointer that took longer than that to pass over the spot is not caught (the
        view's oldest frame would catch it, but also refuses a pointer returning to where it
        was: recall on redglass-crf36 0.522 -> 0.508)."""
        older = self.history.older(frame.index, back)
        if older is None:
            return True
        diff = self.spot_diff(frame.luma, older, x, y, k, shaped=True)
        return diff is None or diff >= 0.5 * self.config.min_change

    def there_before(self, hits: list[CursorHit], k: int) -> int:
        """How many of the oldest of ``hits`` (a walk back from a new track, or the held-back hits of
        an unverified track released because its spot changed; oldest first, shape ``k``) lie on
        a spot that showed the same (within half of ``min_change``) in the latest earlier frame
        held with its pixels that had a verified hit, that hit lying clear of the spot (farther
        than the shape's size)? The pointer cannot be in two places: what matched there then is
        the tissue (a lookalike beside which the pointer arrives), and the hits from the newest
        of them back are not the pointer's. 0 when no such frame is held."""
        if not hits:
            return 0
        pixels = {i: luma for i, luma, _ in self.history.frames if luma is not None and luma.size}
        ref = next(
            (i for i, _, confirmed in reversed(self.history.frames) if confirmed and i < hits[0].index and i in pixels),
            None,
        )
        pos = None if ref is None else self.history.hits.get(ref)
        if ref not in pixels or pos is None:
            return 0
        reach = max(self.templates[k].image.shape)
        for n in range(len(hits), 0, -1):
            h = hits[n - 1]
            now = pixels.get(h.index)
            if now is None or math.hypot(pos[0] - h.x, pos[1] - h.y) <= reach:
                continue
            diff = self.spot_diff(now, pixels[ref], h.x, h.y, k)
            if diff is not None and diff < 0.5 * self.config.min_change:
                return n
        return 0

    def uncovered_diff(
        self,
        luma: np.ndarray,
        other: np.ndarray,
        was: tuple[float, float, int],
        now: tuple[float, float, int],
        grow: int = 2,
    ) -> float | None:
        """Mean |luma - other| over the pixels template ``was[2]`` covers with its tip at ``was[:2]``
        that template ``now[2]`` at ``now[:2]`` (grown by ``grow`` px: its compression halo) does not
        cover: does what lay there in ``other`` still show beside what is there now? None when the
        first does not fit in the frame or less than a quarter of it is left uncovered."""
        import cv2

        t_was, t_now = self.templates[was[2]], self.templates[now[2]]
        x0, y0, x1, y1 = patch_box(was[0], was[1], t_was)
        H, W = luma.shape
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            return None
        left = (t_was.mask > 0).astype(np.uint8)
        nx0, ny0, nx1, ny1 = patch_box(now[0], now[1], t_now)
        cover = np.zeros((y1 - y0 + 2 * grow, x1 - x0 + 2 * grow), np.uint8)  # the patch, grown on each side
        ox, oy = nx0 - x0 + grow, ny0 - y0 + grow  # the new template's top-left in ``cover``
        ch, cw = cover.shape
        sx0, sy0, sx1, sy1 = max(0, ox), max(0, oy), min(cw, ox + nx1 - nx0), min(ch, oy + ny1 - ny0)
        if sx0 < sx1 and sy0 < sy1:
            cover[sy0:sy1, sx0:sx1] = t_now.mask[sy0 - oy : sy1 - oy, sx0 - ox : sx1 - ox] > 0
            cover = cv2.dilate(cover, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
        left &= 1 - cover[grow : grow + y1 - y0, grow : grow + x1 - x0]
        if left.sum() < 0.25 * (t_was.mask > 0).sum():
            return None
        return masked_mean_diff(luma[y0:y1, x0:x1], other[y0:y1, x0:x1], left * 255)

    def spot_diff(
        self, luma: np.ndarray, other: np.ndarray, x: float, y: float, k: int, shaped: bool = False
    ) -> float | None:
        """:func:`~quilt_llava.narratives.templates.spot_diff` of template ``k``."""
        return spot_diff(luma, other, x, y, self.templates[k], shaped)

    def contrast(self, luma: np.ndarray, x: float, y: float, k: int) -> float:
        """|mean(fill) - mean(outline)| of the arrow with its tip at (x, y)."""
        t = self.templates[k]
        x0, y0, x1, y1 = patch_box(x, y, t)
        H, W = luma.shape
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            return 0.0
        return fill_ring_contrast(luma[y0:y1, x0:x1], t)
