"""A pointer that rested through a whole view, told by staying put while the view changed under it.

A pointer that never moves in a view is never seen to differ from what it covers, so the
locator holds its track back (unverified) and drops it when the view ends. What does tell it
from tissue that looks like a pointer is the change of view itself: at a cut to another slide
or region the tissue under the spot changes, and a lookalike in the tissue goes with it, while
the pointer stays where it was on the screen, drawn over whatever is shown. Chrome that looks
like a pointer stays too, but so does what lies around it.

:class:`CutRest` keeps (:meth:`CutRest.park`) the held-back track of a view that ends, with the
pixels of its last held frame. The change is judged (:meth:`CutRest.check`) on the frame that
changed, when the change took that one frame (a cut: nothing fades or pans through it), and on
the first still frame after it. On such a frame the parked hits are the pointer's when, with the
track's shape at its spot (or a pixel off: the pointer is drawn again at another sub-pixel
phase over a re-coded frame),

- the pixels around the shape (a ring half the shape's size wide, off its dilated mask) changed
  by at least ``RING_CHANGE`` of ``min_change``: the view did change there;
- the shape's own pixels changed less than that ring did, by at most ``SAME_LEVELS`` of
  ``min_change``, and still correlate with what they showed (``SAME_SHAPE``): the same thing
  is drawn there (a cross-fade or a brightness change moves a lookalike's pixels as much as
  the tissue around it);
- the shape still matches there at ``REST_FLOOR`` (the floor the earlier-rest probe uses where
  the spot's change verifies the hits).

A recording may also cut to something that does not show the pointer at all (a full-screen
camera, a title) and then back to tissue, with the pointer drawn again where it rested: the
screen between hid it, it did not move. A parked track whose shape is *gone* from its spot on
the first still frame after the change (it matches there under ``REST_FLOOR``, and the view
changed all around the spot) waits through the view that begins (:attr:`CutRest.hidden`), and is
judged by the same tests, against the pixels it was parked with, at the next change. It waits
through one view only, and not past a verified track anywhere (the pointer was seen, so it was
not hidden at the spot). A lookalike in the tissue leaves with its view and would have to come
back, in the same shape and to the pixel, on other tissue.

Nothing here names a shape, colour or size: the tests use the track's own template and the
locator's ``min_change``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.cursor_hits import CursorHit
from quilt_llava.narratives.earlier_rests import REST_FLOOR
from quilt_llava.narratives.templates import Template, box_around_tip, match_in, patch_box

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig

# Correlation of the shape's pixels before and after the change: the same thing drawn (a 16 px arrow drawn
# again 0.8 px off over a frame re-coded at CRF 40 correlates 0.80 with itself; a lookalike that left
# with its tissue, 0.46 at most at the cuts of draw 1's ten videos; chrome keeps its ring, see ``RING_CHANGE``).
SAME_SHAPE = 0.75
SAME_LEVELS = 1.5  # x min_change: most mean |after - before| over the shape's pixels
RING_CHANGE = 0.5  # x min_change: least mean |after - before| around the shape (the view changed there)
GROW = 2  # px the shape's mask is dilated before the ring around it is taken (compression halo)


@dataclass
class Parked:
    hits: list[CursorHit]
    x: float
    y: float
    k: int
    pixels: np.ndarray  # the luma of the track's last held frame
    changed: int = 0  # frames of the change seen so far
    at_cut: bool = False  # the first frame of the change passed the test


@dataclass(frozen=True)
class SpotChange:
    same: float  # correlation of the shape's pixels before and after
    inner: float  # mean |after - before| over the shape's pixels
    ring: float  # the same around them
    side: float  # the least of that over the ring's four sides


def spot_change(
    before: np.ndarray, after: np.ndarray, x: float, y: float, t: Template, dx: int = 0, dy: int = 0
) -> SpotChange | None:
    """How template ``t``'s pixels with its hotspot at (x, y) in ``before`` and at (x + dx, y + dy) in
    ``after`` compare, and a ring around them (half the shape's size wide, off its mask dilated by
    ``GROW`` px); None where the box does not fit in the frame."""
    import cv2

    x0, y0, x1, y1 = patch_box(x, y, t)
    th, tw = t.image.shape
    m = max(3, min(th, tw) // 2 + GROW)
    H, W = before.shape
    bx0, by0, bx1, by1 = x0 - m, y0 - m, x1 + m, y1 + m
    if before.shape != after.shape or min(bx0, by0, bx0 + dx, by0 + dy) < 0:
        return None
    if max(bx1, bx1 + dx) > W or max(by1, by1 + dy) > H:
        return None
    a = before[by0:by1, bx0:bx1]
    b = after[by0 + dy : by1 + dy, bx0 + dx : bx1 + dx]
    diff = cv2.absdiff(a, b)
    mask = np.zeros(diff.shape, np.uint8)
    mask[m : m + th, m : m + tw] = t.mask
    on = mask > 0
    av, bv = a[on].astype(np.float32), b[on].astype(np.float32)
    av, bv = av - av.mean(), bv - bv.mean()
    norm = float(np.sqrt(float((av * av).sum()) * float((bv * bv).sum())))
    same = float((av * bv).sum()) / norm if norm > 0 else 0.0
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GROW + 1, 2 * GROW + 1)))
    off = cv2.bitwise_not(grown)
    # The ring's four sides (bands above, below, left and right of the shape's box): the least changed one
    # counts, so the view must have changed all around the spot (not only on the side away from a
    # fixed border, frame edge or overlay that a lookalike lies against).
    sides = []
    for band in (
        (slice(0, m), slice(None)),
        (slice(m + th, None), slice(None)),
        (slice(None), slice(0, m)),
        (slice(None), slice(m + tw, None)),
    ):
        sides.append(float(cv2.mean(diff[band], mask=off[band])[0]))
    inner, ring = float(cv2.mean(diff, mask=mask)[0]), float(cv2.mean(diff, mask=off)[0])
    return SpotChange(same, inner, ring, min(sides))


class CutRest:
    """The held-back track of the view that ended, until the change is over; and one whose shape was
    gone from its spot after the change (:attr:`hidden`), until the next change is over."""

    def __init__(self, templates: list[Template], config: CursorConfig) -> None:
        self.templates = templates
        self.config = config
        self.parked: Parked | None = None
        self.hidden: Parked | None = None

    def seen_elsewhere(self) -> None:
        """The pointer was seen (a verified track) while a hidden one waited: it was not hidden there."""
        self.hidden = None

    def park(self, track: tuple[float, float, int] | None, pending: list[CursorHit], pixels: np.ndarray | None) -> None:
        """A view ends while ``track`` is held back with ``pending`` hits (``pixels``: the luma of
        its last hit's frame); nothing is kept without them."""
        if track is None or not pending or pixels is None or pixels.size == 0:
            return
        x, y, k = track
        self.parked = Parked(list(pending), x, y, k, pixels)

    def changing(self, luma: np.ndarray) -> None:
        """A frame of the change (the view is moving): the first one is judged, and counts if it
        turns out to be the whole change."""
        for parked in (self.parked, self.hidden):
            if parked is None:
                continue
            parked.changed += 1
            if parked.changed == 1:
                parked.at_cut = self.stayed(parked, luma)

    def settle(self, luma: np.ndarray) -> list[CursorHit]:
        """The first still frame after the change: the parked hits, when the pointer stayed through a
        one-frame change (a cut) or is still there now (see the module docstring); else none.

        A parked track whose shape is not at its spot at all now, where the view changed around it,
        waits through the view that begins (:attr:`hidden`): a pointer hidden by what the recording
        showed in between (a full-screen camera) is drawn again where it rested when the next view
        comes, and is judged then as at a cut (against the pixels it was parked with). It is
        dropped at that change whatever the judgement, and as soon as a verified track shows the
        pointer anywhere meanwhile."""
        out: list[CursorHit] = []
        hidden, self.hidden = self.hidden, None
        if hidden is not None and ((hidden.changed == 1 and hidden.at_cut) or self.stayed(hidden, luma)):
            out = hidden.hits
        parked, self.parked = self.parked, None
        if parked is None:
            return out
        if (parked.changed == 1 and parked.at_cut) or self.stayed(parked, luma):
            return out + parked.hits
        if self.gone(parked, luma):
            parked.changed, parked.at_cut = 0, False
            self.hidden = parked
        return out

    def gone(self, parked: Parked, luma: np.ndarray) -> bool:
        """Is the parked shape missing from its spot in ``luma``, the view changed all around it?"""
        cfg = self.config
        t = self.templates[parked.k]
        c = spot_change(parked.pixels, luma, parked.x, parked.y, t)
        if c is None or c.side < RING_CHANGE * cfg.min_change:
            return False
        return not self.shown(parked, luma)

    def stayed(self, parked: Parked, luma: np.ndarray) -> bool:
        """Does ``luma`` show the parked shape where it was while the view around it changed?"""
        cfg = self.config
        t = self.templates[parked.k]
        found = [
            c
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (c := spot_change(parked.pixels, luma, parked.x, parked.y, t, dx, dy)) is not None
        ]
        if not found:
            return False
        c = max(found, key=lambda c: c.same)
        if c.same < SAME_SHAPE or c.side < RING_CHANGE * cfg.min_change:
            return False
        if c.inner >= c.ring or c.inner > SAME_LEVELS * cfg.min_change:
            return False
        return self.shown(parked, luma)

    def shown(self, parked: Parked, luma: np.ndarray) -> bool:
        """Does the parked shape still match at its spot in ``luma`` (``REST_FLOOR``, a pixel of slack)?"""
        t = self.templates[parked.k]
        score, _, _ = match_in(luma, box_around_tip(parked.x, parked.y, 1, t), t, self.config.min_contrast)
        return score >= REST_FLOOR
