"""A pointer left in a segment image, found in the median and taken out.

The median of a still view erases a pointer that moves, and the pointer's boxes from the
locator's hits let :func:`~quilt_llava.narratives.segment_images.segment_median` retake it
without the samples where the pointer rested. A pointer the locator never found, resting in
most of the view's samples, survives both; so does one the locator found but that never
left its spot (no sample shows the tissue under it). This step looks for the video's
pointer in the median image itself, with the shapes the locator holds when the view ends
(its arrow prior and the sprites it learned from the video so far) and, at the end of the
video, the sprites learned after the view (:func:`find_resting_pointer`), and removes it:

- where at least two of the view's samples differ from the median under the shape and
  agree with each other (the spot changed in a still view: only a pointer does that), the
  median is retaken from those samples; a shape match of ``moved_score`` is then enough;
- where none does (the pointer never moved while the view lasted), only a match of
  ``sure_score``, or of ``moved_score`` with a pointer's fill/outline contrast
  (``sure_contrast``), counts, and the shape, dilated by ``grow`` px, is inpainted (OpenCV's
  Telea method) from the tissue around it.

Before any shape is matched, :func:`leftover_spots` finds a resting pointer of any shape
from the samples alone: where every sample in which the locator saw the pointer elsewhere
shows something other than the median.

A median keeps the pointer where it rested longest, so little is removed per image: at most
``max_spots`` spots and one shape match. What it does not do: a pointer whose shape the locator never held (not
an arrow, never seen moving) stays; inpainting over a pointer that never moved invents
the few pixels under it from their surroundings (smooth, not the real texture).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from quilt_llava.narratives.templates import Template, correlation_peaks, fill_ring_contrast, halved, match_in
from quilt_llava.narratives.video import ColourSample
from quilt_llava.narratives.webcam import Rect

HALF_SEARCH_PX = 24  # templates at least this tall and wide are searched at half resolution first


@dataclass
class RestingPointerConfig:
    remove: bool = True  # look for a pointer left in each segment image and take it out
    moved_score: float = 0.8  # masked NCC that suffices where some samples show the spot uncovered
    sure_score: float = 0.9  # masked NCC a pointer that never left its spot must reach (then inpainted) ...
    sure_contrast: float = 100.0  # ... or moved_score with this fill/outline contrast (pointers are drawn
    # black on white; tissue that matches the arrow prior at 0.77-0.83 shows 30-70 grey levels)
    uncovered: float = 20.0  # mean |sample - median| under the shape that shows a sample without the pointer
    peaks: int = 6  # correlation peaks per template rescored with the masked correlation
    grow: int = 2  # px the shape's mask is dilated before inpainting (compression rings around it)
    min_side: int = 8  # px: a shape thinner than this is not looked for (a thin sprite matches tissue edges)
    # A spot where every sample with the pointer seen elsewhere differs from the median (see
    # :func:`leftover_spots`): its size range (px at 720p, scaled with the frame height) and most spots per image.
    spot_min_px: int = 8
    spot_max_px: int = 110
    max_spots: int = 2


@dataclass(frozen=True)
class RemovedPointer:
    """A pointer taken out of a segment image: the box it covered (video px), its shape match
    and how it was filled ("samples": retaken from samples without it; "inpaint")."""

    box: Rect
    score: float | None  # the shape match; None for a spot found by the samples alone
    fill: str
    # Where a pointer found by a shape learned after its view points (the shape's hotspot, video
    # px): it never moved while the view lasted (see ``segments.late_rest_hits``); None otherwise.
    tip: tuple[float, float] | None = None


@dataclass(frozen=True)
class Found:
    score: float
    x0: int  # top-left of the template, video px
    y0: int
    template: Template
    contrast: float  # grey levels between the shape's fill and outline pixels in the image

    @property
    def box(self) -> Rect:
        th, tw = self.template.image.shape
        return self.x0, self.y0, self.x0 + tw, self.y0 + th


def _peaks(image: np.ndarray, template: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Top-left positions of the ``limit`` best local maxima of |unmasked NCC| (within 5 px, above 0.3)."""
    th, tw = template.shape
    if image.shape[0] < th or image.shape[1] < tw:
        return []
    return [(x, y) for _, x, y in correlation_peaks(image, template, None, 5, 0.3, limit)]


def find_resting_pointer(
    luma: np.ndarray,
    templates: tuple[Template, ...],
    region: Rect,
    config: RestingPointerConfig,
    floor: float,
    min_contrast: float,
) -> Found | None:
    """The best match of any of ``templates`` in ``region`` of ``luma`` (the median's grey
    image) at ``floor`` or above: unmasked correlation peaks (at half resolution for big
    shapes), each scored with the masked correlation and the fill/outline contrast check
    (``min_contrast`` grey levels for the arrow prior, a learned sprite's own otherwise)."""

    x0, y0, x1, y1 = region
    roi = luma[y0:y1, x0:x1]
    best: Found | None = None
    half = None
    for t in templates:
        th, tw = t.image.shape
        if min(th, tw) < config.min_side:
            continue
        if min(th, tw) >= HALF_SEARCH_PX:
            if half is None:
                half = halved(roi)
            spots = [(2 * x, 2 * y, 3) for x, y in _peaks(half, t.half, config.peaks)]
        else:
            spots = [(x, y, 1) for x, y in _peaks(roi, t.flat, config.peaks)]
        for x, y, r in spots:
            box = (x0 + x - r, y0 + y - r, x0 + x + r, y0 + y + r)
            score, tip_x, tip_y = match_in(luma, box, t, min_contrast)
            if score >= floor and (best is None or score > best.score):
                fx, fy = round(tip_x) - t.hotspot[0], round(tip_y) - t.hotspot[1]
                patch = luma[max(0, fy) : fy + th, max(0, fx) : fx + tw]
                contrast = fill_ring_contrast(patch, t) if patch.shape == t.fill.shape else 0.0
                best = Found(score, fx, fy, t, contrast)
    return best


def fill_for(found: Found, uncovered: list[ColourSample], located: bool, config: RestingPointerConfig) -> str | None:
    """How a found shape is taken out: "samples" (retaken from ``uncovered``, the samples that show
    the spot without it: two or more that agree, or one for a sure match), "inpaint" (a pointer
    that never moved: a sure match, or one the locator ``located`` there), or None (left alone)."""
    sure = found.score >= config.sure_score or found.contrast >= config.sure_contrast
    if len(uncovered) >= 2 or (uncovered and sure):
        return "samples"
    if not uncovered and (sure or located):
        return "inpaint"
    return None


def _luma_patch(sample: ColourSample, box: Rect) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = box
    plane = sample.planes()[0]
    if sample.i420:
        return plane[y0:y1, x0:x1]
    return cv2.cvtColor(np.ascontiguousarray(plane[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)


def median_luma(image: ColourSample) -> np.ndarray:
    """The grey image a template is matched on: the Y plane of a 4:2:0 sample, else RGB to grey."""
    import cv2

    return image.planes()[0] if image.i420 else cv2.cvtColor(image.data, cv2.COLOR_RGB2GRAY)


def uncovered_samples(
    image: ColourSample, samples: list[tuple[ColourSample, Rect | None]], found: Found, config: RestingPointerConfig
) -> list[ColourSample]:
    """The samples whose pixels under the found shape differ from the median's (the pointer was
    elsewhere). ``samples``: (sample, the box the locator saw the pointer cover in it, or None);
    one whose pointer overlaps the found shape is no evidence (it may show the pointer there)."""
    import cv2

    box = found.box
    mask = found.template.mask
    here = _luma_patch(image, box)
    if here.shape != mask.shape:
        return []
    away = [
        (s, _luma_patch(s, box))
        for s, seen in samples
        if s.data.shape == image.data.shape and (seen is None or not _overlaps(seen, box))
    ]
    away = [(s, p) for s, p in away if cv2.mean(cv2.absdiff(p, here), mask=mask)[0] >= config.uncovered]
    if any(
        cv2.mean(cv2.absdiff(a, b), mask=mask)[0] >= config.uncovered for (_, a), (_, b) in itertools.pairwise(away)
    ):
        return []  # they do not show one and the same thing there: a pointer passing, not the tissue
    return [s for s, _ in away]


def grown_mask(found: Found, size: tuple[int, int], grow: int) -> tuple[Rect, np.ndarray]:
    """The found shape's mask dilated by ``grow`` px, on a box clipped to the frame ``size`` (w, h)."""
    import cv2

    x0, y0, x1, y1 = found.box
    w, h = size
    mask = np.pad(found.template.mask, grow)
    if grow:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    bx0, by0, bx1, by1 = x0 - grow, y0 - grow, x1 + grow, y1 + grow
    cx0, cy0, cx1, cy1 = max(0, bx0), max(0, by0), min(w, bx1), min(h, by1)
    return (cx0, cy0, cx1, cy1), mask[cy0 - by0 : cy1 - by0, cx0 - bx0 : cx1 - bx0]


def inpaint(rgb: np.ndarray, box: Rect, mask: np.ndarray) -> None:
    """Inpaint ``mask`` (on ``box``) of ``rgb`` in place from the pixels around it."""
    import cv2

    x0, y0, x1, y1 = box
    m = 8  # context around the shape the inpainting reads
    H, W = rgb.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0 - m), max(0, y0 - m), min(W, x1 + m), min(H, y1 + m)
    full = np.zeros((cy1 - cy0, cx1 - cx0), np.uint8)
    full[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = mask
    crop = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1])
    rgb[cy0:cy1, cx0:cx1] = cv2.inpaint(crop, full, 3, cv2.INPAINT_TELEA)


def leftover_spots(
    median: ColourSample,
    free: list[tuple[ColourSample, Rect]],
    region: Rect,
    config: RestingPointerConfig,
    avoid: tuple[Rect, ...] = (),
) -> list[Rect]:
    """Pointer-sized spots in ``region`` where the median holds something that samples known to
    be pointer-free there do not show. ``free``: samples in which the locator saw the pointer,
    with the box it covered; elsewhere such a sample shows the view as it is. A still view's
    tissue does not change, so where every one of them (at least two) differs from the median
    by ``uncovered`` grey levels or more (twice that in a core of some pixels: a compression
    refresh changes fine detail by 20-40 levels), and they agree with each other, the median
    kept a pointer that rested there (or something else that came and went: the size range keeps
    out annotation strokes and cuts). Spots overlapping ``avoid`` (a webcam) are left alone.
    Returns spot boxes (video px), grown by ``grow`` px, biggest first."""
    import cv2

    if len(free) < 2:
        return []
    x0, y0, x1, y1 = region
    here = median_luma(median)[y0:y1, x0:x1]
    lumas = [_luma_patch(s, region) for s, _ in free]
    changed = np.full(here.shape, 255, np.uint8)
    strong = changed.copy()  # pixels twice as different: a pointer's, not a compression refresh's
    for luma, (_, (px0, py0, px1, py1)) in zip(lumas, free):
        diff = cv2.absdiff(luma, here)
        g = 2 * config.grow  # the sample's own pointer is no evidence either way
        diff[max(0, py0 - y0 - g) : max(0, py1 - y0 + g), max(0, px0 - x0 - g) : max(0, px1 - x0 + g)] = 0
        changed = cv2.bitwise_and(changed, cv2.threshold(diff, config.uncovered - 1, 255, cv2.THRESH_BINARY)[1])
        strong = cv2.bitwise_and(strong, cv2.threshold(diff, 2 * config.uncovered - 1, 255, cv2.THRESH_BINARY)[1])
    for a, b in itertools.pairwise(lumas):  # the pointer-free samples must show the same thing there
        changed[cv2.absdiff(a, b) >= config.uncovered] = 0
    changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    _n, _, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    unit = max(0.5, median.size()[1] / 720)
    lo, hi = max(4, round(config.spot_min_px * unit)), round(config.spot_max_px * unit)
    w, h = median.size()
    spots = []
    for k in np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1:
        sx, sy, sw, sh, area = (int(v) for v in stats[k])
        if not lo <= max(sw, sh) <= hi or area < lo * lo / 4:
            continue
        if cv2.countNonZero(strong[sy : sy + sh, sx : sx + sw]) < max(8, lo * lo / 4):
            continue  # a keyframe refresh changes fine detail by 20-40 levels; a pointer covers tissue
        g = config.grow
        box = (max(0, x0 + sx - g), max(0, y0 + sy - g), min(w, x0 + sx + sw + g), min(h, y0 + sy + sh + g))
        if any(_overlaps(box, a) for a in avoid):
            continue
        spots.append(box)
        if len(spots) >= config.max_spots:
            break
    return spots


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
