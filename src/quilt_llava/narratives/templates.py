"""The pointer templates and how one is matched against a frame.

A :class:`Template` is a pointer's picture (grey levels), the mask of its pixels and its
hotspot (the pixel it points with). Two kinds are used by the locator
(:mod:`quilt_llava.narratives.cursor`): the video's own sprites, learned from motion
(:mod:`quilt_llava.narratives.pointer`), and a generic prior, an arrow with a dark fill and a light
outline drawn at a few sizes (:func:`make_templates`; the absolute correlation also finds the
inverted, white-filled arrow).

Matching is masked normalised cross-correlation: only the template's own pixels count, so the
tissue around a pointer does not. :func:`match_in` returns the best match in a region, as the
hotspot's position and a score in [0, 1]; a region with many candidate positions is first scanned
with a cheap unmasked correlation and the masked one is computed only around that peak. Small
regions are correlated by :func:`masked_ncc` (gathering each window's masked pixels with numpy),
larger ones by OpenCV, whichever is cheaper (``DIRECT_WORK``). A match whose fill and outline
differ by too little contrast is rejected, since correlation alone ignores contrast; a region (or
the coarse peak's neighbourhood) whose grey levels span less than that contrast is rejected
before it is correlated, since no match there could pass (20-30 % of the matches on a flat
letterbox, a pale window or a gain-stretched chroma plane).

The whole-frame search (:func:`correlation_peaks`, :func:`learned_peaks`) lists the best local
maxima of the unmasked correlation; at half resolution its peaks are rescored at full resolution
around each (:func:`rescored`). :func:`twin_score` tells two learned sprites that are one shape
learned twice.

Patch tests used to verify a pointer: :func:`spot_diff` (how much a frame differs from another
under a template placed at a point; with ``shaped``, only a difference in the template's own
pattern counts, see :func:`shaped_diff`).

Not handled: a pointer drawn rotated, or scaled other than at the template sizes given; a flat
(single-grey) template matches nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# A classic arrow pointer, tip at (0, 0), about 19 px tall at scale 1.
ARROW_POLYGON = np.array(
    [(0.0, 0.0), (0.0, 16.5), (4.0, 12.8), (6.9, 19.2), (9.3, 18.2), (6.4, 12.0), (11.6, 12.0)], dtype=np.float64
)

# Prior templates shorter than ``whole_frame_search.MIN_SEARCH_HEIGHT`` at half resolution, and learned
# sprites searched there: this many times more half-resolution peaks are rescored (twice that for a
# sprite under ``LEARNED_HALF_SEARCH``)
SMALL_SEARCH_FACTOR = 4
SMALL_SEARCH_REFINE = 3  # px around each, at full resolution
COARSE_POSITIONS = 400  # regions with more candidate positions get a coarse unmasked pass first
COARSE_REFINE = 2  # px around the coarse peak scored with the masked correlation
# Regions whose positions x masked template pixels are at most this are correlated by masked_ncc, larger
# ones by OpenCV (whose cost hardly grows with the template; break-even measured at 35-45 thousand).
DIRECT_WORK = 32_000
WINDOW_CACHE = 8  # region shapes per template whose window indices are kept (see ``Template.window_index``)
LEARNED_HALF_SEARCH = 24  # px: learned sprites at least this tall and wide are searched at half resolution
# A spot that would verify a track must differ from the view some frames back in the template's pattern
# (the locator's ``_new_here``, ``shaped_diff``): the signed difference correlates with the template at least this
# much. Measured: 0.2-0.98 where a pointer arrived (redglass-crf36, handhelds-480p), 0.05 on a block
# that CRF 36 re-coded where the pointer had passed (it keeps that look until the next keyframe).
SHAPED_CHANGE = 0.15


@dataclass
class Template:
    image: np.ndarray  # (th, tw) uint8, dark fill, light outline, on a masked-out background
    mask: np.ndarray  # (th, tw) uint8 0/255
    hotspot: tuple[int, int]  # (x, y) of the tip pixel
    half: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((1, 1), np.uint8))  # half-resolution image
    flat: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((1, 1), np.uint8))  # unmasked version
    fill: np.ndarray = field(
        repr=False, default_factory=lambda: np.zeros((1, 1), np.uint8)
    )  # 255: pixels inside the arrow
    ring: np.ndarray = field(
        repr=False, default_factory=lambda: np.zeros((1, 1), np.uint8)
    )  # 255: pixels of its outline
    learned: bool = False  # learned from the video (see ``pointer.py``)
    # a learned sprite the whole-frame search finds at half resolution (see ``SpriteIntake.coarse_finds``)
    coarse: bool = False
    min_contrast: float | None = (
        None  # fill/outline contrast a match needs (None: the config's); a learned sprite's own
    )
    _masked: dict[int, tuple[np.ndarray, np.ndarray, float]] = field(repr=False, default_factory=dict)
    _windows: dict[tuple[int, int, int], np.ndarray] = field(repr=False, default_factory=dict)
    _ones: np.ndarray | None = field(repr=False, default=None)
    _bounded: bool | None = field(repr=False, default=None)

    def contrast_bounded(self) -> bool:
        """Do both the fill and the outline have pixels? Then the fill/outline contrast of any patch
        (:func:`fill_ring_contrast`) is at most the patch's span of grey levels (an empty mask's mean
        counts as 0, which no span bounds)."""
        found = self._bounded
        if found is None:
            found = self._bounded = bool(self.fill.any()) and bool(self.ring.any())
        return found

    def masked_pixels(self, row_width: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Offsets of the masked pixels in a region ``row_width`` wide, their centred template
        values (float64) and the norm of those: what a masked correlation needs."""
        found = self._masked.get(row_width)
        if found is None:
            ys, xs = np.nonzero(self.mask)
            values = self.image[ys, xs].astype(np.float64)
            centred = values - values.mean()
            found = self._masked[row_width] = (ys * row_width + xs, centred, float(np.sqrt(centred @ centred)))
        return found

    def ones(self, n: int) -> np.ndarray:
        """``n`` ones (float64), kept: what :func:`masked_ncc` sums a window's pixels with."""
        found = self._ones
        if found is None or found.size != n:
            found = self._ones = np.ones(n)
        return found

    def window_index(self, row_width: int, ny: int, nx: int) -> np.ndarray:
        """Flat indices of the masked pixels of every window (one row per top-left, ``ny`` by ``nx``
        of them) in a region ``row_width`` wide: what :func:`masked_ncc` gathers. Kept for the last
        ``WINDOW_CACHE`` region shapes (a refined match always has the same one), so repeat matches
        skip building it."""
        key = (row_width, ny, nx)
        found = self._windows.get(key)
        if found is None:
            offsets = self.masked_pixels(row_width)[0]
            starts = (np.arange(ny) * row_width)[:, None] + np.arange(nx)
            found = starts.reshape(-1, 1) + offsets
            if len(self._windows) >= WINDOW_CACHE:
                # the oldest shape (pop: a segment-image worker may match this template meanwhile)
                self._windows.pop(next(iter(self._windows)), None)
            self._windows[key] = found
        return found


def make_template(scale: float, outline: float = 1.0, supersample: int = 8) -> Template:
    import cv2

    pad = 2
    pts = ARROW_POLYGON * scale
    w = math.ceil(pts[:, 0].max()) + 2 * pad + 1
    h = math.ceil(pts[:, 1].max()) + 2 * pad + 1
    ss = supersample
    fill = np.zeros((h * ss, w * ss), np.uint8)
    cv2.fillPoly(fill, [np.round((pts + pad + 0.5) * ss).astype(np.int32)], 255, cv2.LINE_AA)
    radius = max(1, round(outline * ss))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    outer = cv2.dilate(fill, kernel)
    a_fill = cv2.resize(fill, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    a_out = cv2.resize(outer, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    # Dark fill, light outline: 0 inside, 255 on the ring.
    image = np.clip(255 * (a_out - a_fill) / np.maximum(a_out, 1e-6), 0, 255).astype(np.uint8)
    mask = ((a_out > 0.35) * 255).astype(np.uint8)
    half = cv2.resize(
        np.where(mask > 0, image, 128).astype(np.uint8), (max(2, w // 2), max(2, h // 2)), interpolation=cv2.INTER_AREA
    )
    fill_px = (((a_fill > 0.9) & (mask > 0)) * 255).astype(np.uint8)
    ring_px = (((a_fill < 0.1) & (a_out > 0.6)) * 255).astype(np.uint8)
    # Outside the mask, the template's own mean: those pixels then add nothing to the correlation.
    flat = np.where(mask > 0, image, round(float(image[mask > 0].mean()))).astype(np.uint8)
    return Template(image, mask, (pad, pad), half, flat, fill_px, ring_px)


def make_templates(scales: tuple[float, ...], frame_height: int) -> list[Template]:
    # Pointers keep their screen size when a recording is downscaled only so far: below
    # 360p a cursor is rarely drawn smaller than half its 720p size.
    unit = max(0.5, frame_height / 720)
    return [make_template(s * unit) for s in scales]


def _flat_peak(luma: np.ndarray, t: Template, x: int, y: int, r: int) -> tuple[float, int, int]:
    """Best |unmasked NCC| of ``t`` with its top-left within ``r`` px of (x, y): (score, x, y)."""
    import cv2

    th, tw = t.flat.shape
    H, W = luma.shape
    x0, y0 = max(0, x - r), max(0, y - r)
    x1, y1 = min(W, x + r + tw + 1), min(H, y + r + th + 1)
    if x1 - x0 < tw or y1 - y0 < th:
        return 0.0, x, y
    res = np.abs(cv2.matchTemplate(luma[y0:y1, x0:x1], t.flat, cv2.TM_CCOEFF_NORMED))
    cv2.patchNaNs(res, 0.0)
    _, hi, _, loc = cv2.minMaxLoc(res)
    return float(hi), x0 + loc[0], y0 + loc[1]


def correlation_peaks(
    image: np.ndarray, template: np.ndarray, ignore: np.ndarray | None, window: int, floor: float, limit: int
) -> list[tuple[float, int, int]]:
    """The ``limit`` best local maxima (within ``window`` px, above ``floor``) of the |unmasked
    NCC| of ``template`` over ``image``, none with its top-left in an ``ignore`` region
    (analysis scale, resized to ``image``): (score, top-left x, y), best first."""
    import cv2

    res = np.abs(cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED))
    cv2.patchNaNs(res, 0.0)
    if ignore is not None:
        ign = cv2.resize(ignore.astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        res[ign[: res.shape[0], : res.shape[1]] > 0] = 0
    # Local maxima first (few), then the floor on those only: the same peaks, in the same (row-major,
    # then by score) order as testing both over the whole map with numpy, several times faster
    # (``np.nonzero`` of a 640x360 map alone takes longer than all of this).
    local = cv2.findNonZero(cv2.compare(res, cv2.dilate(res, np.ones((window, window), np.uint8)), cv2.CMP_EQ))
    if local is None:
        return []
    xs, ys = local.reshape(-1, 2).T
    values = res[ys, xs]
    above = values > floor
    ys, xs, values = ys[above], xs[above], values[above]
    top = np.argsort(-values)[:limit]
    return [(float(values[i]), int(xs[i]), int(ys[i])) for i in top]


def rescored(
    luma: np.ndarray, t: Template, half_peaks: list[tuple[float, int, int]], limit: int, floor: float
) -> list[tuple[float, int, int]]:
    """Half-resolution peaks rescored at full resolution (best |unmasked NCC| within
    ``SMALL_SEARCH_REFINE`` px): the ``limit`` best above ``floor``, best first."""
    fine: dict[tuple[int, int], float] = {}
    for _, x, y in half_peaks:
        score, fx, fy = _flat_peak(luma, t, 2 * x, 2 * y, SMALL_SEARCH_REFINE)
        if score > floor:
            fine[fx, fy] = score
    return sorted(((score, fx, fy) for (fx, fy), score in fine.items()), reverse=True)[:limit]


def learned_peaks(
    luma: np.ndarray, half: np.ndarray, t: Template, ignore: np.ndarray | None, n: int, coarse: bool | None = None
) -> list[tuple[float, int, int]]:
    """The ``n`` best whole-frame peaks of a learned sprite: (score, top-left x, y), best first.

    A sprite that survives half resolution (``t.coarse``: big enough, or found there where it
    was seen; ``coarse`` overrides it) is searched at half resolution, the sprite downscaled the
    same way; many peaks there, each rescored by the unmasked correlation at full resolution around
    it (a small sprite keeps more: it ranks lower among tissue there). Any other, by the unmasked
    correlation at full resolution (30-100 ms at 720p against a few ms)."""
    if not (t.coarse if coarse is None else coarse):
        return correlation_peaks(luma, t.flat, ignore, 9, 0.3, n)
    factor = SMALL_SEARCH_FACTOR * (1 if min(t.image.shape) >= LEARNED_HALF_SEARCH else 2)
    return rescored(luma, t, correlation_peaks(half, t.half, ignore, 5, 0.2, factor * n), n, 0.0)


def halved(luma: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(luma, (luma.shape[1] // 2, luma.shape[0] // 2), interpolation=cv2.INTER_AREA)


def masked_ncc(roi: np.ndarray, t: Template) -> np.ndarray:
    """Masked normalised cross-correlation of ``t`` at every position in ``roi`` (uint8 grey levels; what
    ``cv2.matchTemplate(..., TM_CCOEFF_NORMED, mask=...)`` computes, flat windows 0), by
    gathering the masked pixels of each window: for a few dozen positions several times
    cheaper than OpenCV's, which sets up whole-region correlations for any size."""
    th, tw = t.image.shape
    h, w = roi.shape
    ny, nx = h - th + 1, w - tw + 1
    _offsets, centred, norm = t.masked_pixels(w)
    # The region in float64 first, then gathered (the same values, one small conversion instead of
    # one per gathered pixel; ``np.take`` gathers faster than indexing). Window sums and sums of
    # squares are of whole grey levels: exact in float64 in any order of adding, so a product with
    # ones (faster than ``sum``/``einsum``) gives the very same values.
    windows = np.take(roi.astype(np.float64).ravel(), t.window_index(w, ny, nx))
    n = centred.size
    ones = t.ones(n)
    sums = windows @ ones
    spread = (windows * windows) @ ones - sums * sums / n  # n * variance of each window
    flat = spread <= 1e-6 * n
    any_flat = bool(flat.any())  # (rare: the passes over the mask are skipped without one)
    if any_flat:
        spread = np.where(flat, 1.0, spread)
    res = (windows @ centred) / (np.sqrt(spread) * max(norm, 1e-12))
    if any_flat:
        res[flat] = 0.0
    return res.reshape(ny, nx).astype(np.float32)


def twin_score(a: Template, b: Template, slack: int = 3) -> tuple[float, int, int]:
    """How alike two sprites look: the best |masked NCC| of the smaller over the larger (padded by
    ``slack`` px), and where ``b``'s top-left then lies from ``a``'s (dx, dy); score 0 when their
    sizes differ by more than a quarter."""
    small, big = (a, b) if a.image.size <= b.image.size else (b, a)
    (sh, sw), (bh, bw) = small.image.shape, big.image.shape
    if sh < 0.75 * bh or sw < 0.75 * bw or sh > bh + slack or sw > bw + slack:
        return 0.0, 0, 0
    pad = slack + max(0, sh - bh, sw - bw)
    res = np.abs(masked_ncc(np.pad(big.image, pad, mode="edge"), small))
    if res.size == 0:
        return 0.0, 0, 0
    y, x = np.unravel_index(int(np.argmax(res)), res.shape)
    dx, dy = int(x) - pad, int(y) - pad  # the small one's top-left on the big one's grid
    if small is a:
        dx, dy = -dx, -dy
    return float(res[y, x]), dx, dy


def in_opencv(shape: tuple[int, ...], box: tuple[int, ...], template: Template) -> bool:
    """Does :func:`match_in` of ``template`` in ``box`` (on a frame of ``shape``) correlate with
    OpenCV (a large region's coarse pass, or a masked correlation too big for :func:`masked_ncc`),
    which releases the GIL, rather than with numpy in small steps?"""
    th, tw = template.image.shape
    H, W = shape[:2]
    # (conditionals rather than ``min``/``max``: the same ints, this is called for every pair)
    x0, y0, x1, y1 = box[0], box[1], box[2] + tw, box[3] + th
    nx = (x1 if x1 < W else W) - (x0 if x0 > 0 else 0) - tw + 1
    ny = (y1 if y1 < H else H) - (y0 if y0 > 0 else 0) - th + 1
    if nx < 1 or ny < 1:
        return False
    return nx * ny > COARSE_POSITIONS or nx * ny * template.masked_pixels(tw)[0].size > DIRECT_WORK


def match_in(
    luma: np.ndarray, box: tuple[int, int, int, int], template: Template, min_contrast: float = 0.0
) -> tuple[float, float, float]:
    """Best |masked NCC| of ``template`` with its top-left inside ``box`` (x0, y0, x1, y1).

    Returns (score, tip_x, tip_y); score 0 when the region is too small, or when the
    fill and outline at the best match differ by less than ``min_contrast`` grey
    levels (correlation ignores contrast, so faint texture could otherwise match); a
    template with its own ``min_contrast`` (a learned sprite) uses that instead."""
    import cv2

    th, tw = template.image.shape
    H, W = luma.shape
    x0, y0, x1, y1 = box[0], box[1], box[2] + tw, box[3] + th
    x0, y0 = (x0 if x0 > 0 else 0), (y0 if y0 > 0 else 0)  # (as ``max``/``min``: the same ints, faster)
    x1, y1 = (x1 if x1 < W else W), (y1 if y1 < H else H)
    if x1 - x0 < tw or y1 - y0 < th:
        return 0.0, 0.0, 0.0
    need = None  # the fill/outline contrast a match needs (None: not tested)
    if min_contrast > 0:
        need = min_contrast if template.min_contrast is None else template.min_contrast
        if _too_flat(luma[y0:y1, x0:x1], template, need):
            return 0.0, 0.0, 0.0
    if (x1 - x0 - tw + 1) * (y1 - y0 - th + 1) > COARSE_POSITIONS:
        # Large region: find the spot with the (3x cheaper) unmasked correlation, then score
        # it, and its neighbours, with the masked one.
        res = cv2.matchTemplate(luma[y0:y1, x0:x1], template.flat, cv2.TM_CCOEFF_NORMED)
        cv2.patchNaNs(res, 0.0)
        lo, hi, lo_loc, hi_loc = cv2.minMaxLoc(res)
        cx, cy = hi_loc if hi >= -lo else lo_loc
        r = COARSE_REFINE
        x0, y0 = x0 + max(0, cx - r), y0 + max(0, cy - r)
        x1, y1 = min(x1, x0 + 2 * r + tw + 1), min(y1, y0 + 2 * r + th + 1)
        if need is not None and _too_flat(luma[y0:y1, x0:x1], template, need):
            return 0.0, 0.0, 0.0
    roi = luma[y0:y1, x0:x1]
    if (x1 - x0 - tw + 1) * (y1 - y0 - th + 1) * template.masked_pixels(tw)[0].size <= DIRECT_WORK:
        res = masked_ncc(roi, template)
    else:
        res = cv2.matchTemplate(roi, template.image, cv2.TM_CCOEFF_NORMED, mask=template.mask)
        cv2.patchNaNs(res, 0.0)  # flat windows give NaN
    lo, hi, lo_loc, hi_loc = cv2.minMaxLoc(res)
    best, loc = (hi, hi_loc) if hi >= -lo else (-lo, lo_loc)
    if need is not None:
        patch = roi[loc[1] : loc[1] + th, loc[0] : loc[0] + tw]
        if fill_ring_contrast(patch, template) < need:
            return 0.0, 0.0, 0.0
    return float(best), float(x0 + loc[0] + template.hotspot[0]), float(y0 + loc[1] + template.hotspot[1])


def _too_flat(region: np.ndarray, template: Template, need: float) -> bool:
    """Is the fill/outline contrast of every template-sized patch of ``region`` surely under
    ``need``? Yes when the region's grey levels span less than that (each mean lies within the
    span), for a template with both a fill and an outline (see :meth:`Template.contrast_bounded`):
    :func:`match_in` then rejects whatever match it would find, and need not look for it."""
    import cv2

    if not template.contrast_bounded():
        return False
    lo, hi, _, _ = cv2.minMaxLoc(region)
    return hi - lo + 1e-9 < need


def box_around_tip(x: float, y: float, radius: int, t: Template) -> tuple[int, int, int, int]:
    """Top-left positions (x0, y0, x1, y1) from which template ``t`` puts its hotspot within
    ``radius`` px of (x, y): the box :func:`match_in` searches for a pointer near there."""
    hx, hy = t.hotspot
    return int(x - hx - radius), int(y - hy - radius), int(x - hx + radius + 1), int(y - hy + radius + 1)


def patch_box(x: float, y: float, t: Template) -> tuple[int, int, int, int]:
    """Pixels (x0, y0, x1, y1) template ``t`` covers with its hotspot at (x, y)."""
    th, tw = t.image.shape
    x0, y0 = round(x) - t.hotspot[0], round(y) - t.hotspot[1]
    return x0, y0, x0 + tw, y0 + th


def spot_diff(
    luma: np.ndarray, other: np.ndarray, x: float, y: float, t: Template, shaped: bool = False
) -> float | None:
    """Mean |luma - other| over template ``t``'s pixels with its hotspot at (x, y) (``shaped``: 0
    unless the difference has the template's pattern, see :func:`shaped_diff`); None when the
    template does not fit in the frame there."""
    x0, y0, x1, y1 = patch_box(x, y, t)
    H, W = luma.shape
    if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
        return None
    if shaped:
        return shaped_diff(luma[y0:y1, x0:x1], other[y0:y1, x0:x1], t)
    return masked_mean_diff(luma[y0:y1, x0:x1], other[y0:y1, x0:x1], t.mask)


def fill_ring_contrast(patch: np.ndarray, t: Template) -> float:
    """|mean(fill) - mean(outline)| of a template-sized patch."""
    import cv2

    return abs(cv2.mean(patch, mask=t.fill)[0] - cv2.mean(patch, mask=t.ring)[0])


def masked_mean_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean |a - b| over the pixels where ``mask`` (uint8) is set."""
    import cv2

    return float(cv2.mean(cv2.absdiff(a, b), mask=mask)[0])


def shaped_diff(patch: np.ndarray, background: np.ndarray, t: Template) -> float:
    """Mean |patch - background| over ``t``'s pixels, or 0 when that difference does not have the
    template's shape (|correlation| of the signed difference with the template's pixels under
    ``SHAPED_CHANGE``): a pointer over any tissue, see-through or not, changes the pixels it covers
    in its own pattern; a heavily compressed block re-coded where the pointer passed changes them
    in a pattern of its own (a "ghost" that stays until the next keyframe)."""
    m = t.mask > 0
    d = patch[m].astype(np.float32) - background[m].astype(np.float32)
    mean = float(np.abs(d).mean()) if d.size else 0.0
    if mean == 0.0:
        return 0.0
    _offsets, centred, norm = t.masked_pixels(t.image.shape[1])
    d -= d.mean()
    spread = float(np.sqrt(d @ d))
    if norm <= 1e-6 or spread <= 1e-6:
        return mean  # a flat template or an even shift: nothing to tell the shape by
    return mean if abs(float(d @ centred.astype(np.float32))) / (spread * norm) >= SHAPED_CHANGE else 0.0
