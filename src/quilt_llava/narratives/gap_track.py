"""A moving pointer followed through a long gap between two sure sightings (track before detect).

In: each still frame's luma and the hits shown for it (:meth:`GapTracker.add`). Out: hits for the
frames of a gap that the pointer's faint trace across them supports.

A small pointer at heavy compression is largely erased by the encoder while it moves: in most
frames of a move, under a fifth of its box differs from the tissue by more than 24 grey levels,
so no template matches it there, and the locator's hits stop for 5-45 frames and start again
where the move ends. Each such frame still holds a trace of the pointer: many pixels that differ
by less (a mean of 10-45 grey levels under its mask on the two hardest benchmark videos). Where
the hits shown stop at frame ``a`` (tip A) and start again at frame ``b`` (tip B) in one still
view, each a sure sighting with another within ``NEXT`` frames beyond it (the speed seen), the
pointer went from A to B over the frames between, and:

- the view's pixels without the pointer are the per-pixel median of frames spread over the gap
  (a moving pointer covers any one pixel in few of them), in a crop of the corridor the pointer
  can have crossed (:func:`corridor_box`: the speed seen bounds the course's length);
- the sprite looked for is, at each end, the learned sprite that covers the most difference at
  the sighting's tip (no sprite learned yet: no gap is followed);
- in each frame, the evidence of the pointer with its tip at p is the mean |frame - background|
  under the sprite's mask placed there, less its mean over a ring around the mask
  (:func:`evidence`, a matched filter);
- each sighting must itself stand out of the view without the pointer under the sprite (a
  lookalike taken for the pointer does not, and no course is drawn to it);
- the most likely course from A to B is found by dynamic programming (:func:`course`, a Viterbi
  pass over a grid of positions): a step costs its departure from the mean step (B - A) / n,
  squared, may depart from it by no more than the speed allows, and no position lies further
  from A or B than that speed allows;
- a frame gets a hit only where the evidence on the course, refined at full resolution, stands
  out of the frame's noise (``min_levels`` grey levels and ``min_z`` spreads above the
  corridor's median), no position of the corridor further than a sprite's size from it scores
  as high, and the course does not step aside for that one frame: a course drawn through noise
  is not emitted. Its hits score ``score`` (below the locator's ``min_score``); a hit the
  locator emits later for the same frame replaces it.

What this does not do: fill a gap without a sure sighting on each side (the pointer's first
appearance, a view's end, a pointer that vanished: unanchored, a course there is a guess), a
gap whose sighting at one end is alone (no other within ``NEXT`` frames), a gap across a view
change (the frames held are dropped when the view moves), a gap longer than ``max_gap`` frames,
or a pointer that rests inside the gap for more than a few frames (its spot is then part of the
median, and no evidence shows there: those frames get no hit). The frames of an open gap are
held (references to the decoded frames, at most ``max_gap`` + 3: about 100 MB at 1080p).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from quilt_llava.narratives.cursor_hits import CursorHit
from quilt_llava.narratives.templates import Template

NEG = -1e9  # a position the course cannot take
BACKGROUND_FRAMES = 9  # frames of a gap whose median is the view without the pointer
RING_PX = 2  # width of the ring around a sprite's mask that its evidence is taken against
NEXT = 5  # frames within which a sure sighting's neighbour (its step: the speed seen) is looked for


@dataclass(frozen=True)
class GapTrackConfig:
    min_gap: int = 2  # frames; a single missing frame is left to ``GapBridge``
    max_gap: int = 48  # longer gaps are not filled (and no frames beyond these are held)
    anchor_score: float = 0.45  # hits scoring less are not sure sightings (the motion judge's ``floor``)
    step_px: int = 2  # grid of tip positions the course is found on (full-resolution px), at least
    cells: int = 20000  # at most about this many grid cells: a larger corridor gets a coarser grid
    slack: float = 6.0  # px a step may differ from the mean step at a cost of ``min_levels`` of evidence
    speed_margin: float = 1.5  # the fastest step allowed, x the speed seen at the anchors
    min_z: float = 4.0  # noise spreads the evidence on the course must stand above the corridor's median
    min_levels: float = 8.0  # grey levels it must stand above it
    # grey levels of evidence counted at most per frame (one bright blotch does not pull the course)
    clip_levels: float = 40.0
    score: float = 0.4  # score of the hits given here (below the locator's own)


# A frame's evidence at full resolution, on the course's grid, its median and spread over the corridor,
# and the grid cells where the course can lie in it.
Scored = tuple[np.ndarray, np.ndarray, float, float, np.ndarray]


@dataclass(frozen=True)
class Anchor:
    index: int
    x: float
    y: float


def corridor_box(
    a: tuple[float, float], b: tuple[float, float], reach: float, templates: list[Template], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Pixels (x0, y0, x1, y1) the pointer can have covered between tips ``a`` and ``b`` when its course
    is at most ``reach`` px long: the ellipse with foci ``a``, ``b`` and that length, its box grown by
    the sprites' extents around their hotspots, clipped to the frame ``size`` (w, h)."""
    d = math.dist(a, b)
    half_major = max(reach, d) / 2
    half_minor = math.sqrt(max(0.0, half_major**2 - (d / 2) ** 2))
    cx, cy = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    if d > 0:
        ux, uy = (b[0] - a[0]) / d, (b[1] - a[1]) / d
    else:
        ux, uy = 1.0, 0.0
    ex = math.hypot(half_major * ux, half_minor * uy)
    ey = math.hypot(half_major * uy, half_minor * ux)
    left = max(t.hotspot[0] for t in templates)
    up = max(t.hotspot[1] for t in templates)
    right = max(t.image.shape[1] - t.hotspot[0] for t in templates)
    down = max(t.image.shape[0] - t.hotspot[1] for t in templates)
    w, h = size
    return (
        max(0, int(cx - ex) - left - 1),
        max(0, int(cy - ey) - up - 1),
        min(w, math.ceil(cx + ex) + right + 2),
        min(h, math.ceil(cy + ey) + down + 2),
    )


def evidence(diff: np.ndarray, t: Template) -> np.ndarray:
    """Mean of ``diff`` over ``t``'s mask placed with its hotspot at each pixel, less its mean over a
    ring 2 px wide around the mask (same shape as ``diff``): the trace of a moving pointer spreads
    past its sprite (the encoder smears it, a ghost of where it was lingers), and the mask's plain
    mean peaks at the middle of the spread; less the ring, where the sprite's outline fits it."""
    import cv2

    kernel, anchor = _evidence_kernel(t)
    return cv2.filter2D(diff, cv2.CV_32F, kernel, anchor=anchor, borderType=cv2.BORDER_REPLICATE)


# The last few sprites' evidence kernels (id -> (sprite, kernel, anchor)): a gap's every frame uses the same.
_KERNELS: dict[int, tuple[Template, np.ndarray, tuple[int, int]]] = {}
KERNELS_KEPT = 16


def _evidence_kernel(t: Template) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`evidence`'s kernel for sprite ``t`` (the mask's mean less the ring's) and its anchor,
    made once per sprite (sprites are not changed once made)."""
    import cv2

    kept = _KERNELS.get(id(t))
    if kept is not None and kept[0] is t:
        return kept[1], kept[2]
    pad = RING_PX
    mask = np.pad((t.mask > 0).astype(np.uint8), pad)
    grown = cv2.dilate(mask, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8))
    ring = ((grown > 0) & (mask == 0)).astype(np.float32)
    inner = mask.astype(np.float32)
    kernel = inner / max(1.0, float(inner.sum())) - ring / max(1.0, float(ring.sum()))
    anchor = (t.hotspot[0] + pad, t.hotspot[1] + pad)
    if len(_KERNELS) >= KERNELS_KEPT:
        _KERNELS.clear()  # (no iteration: locators on other threads may add theirs meanwhile)
    _KERNELS[id(t)] = (t, kernel, anchor)
    return kernel, anchor


def course(
    z: np.ndarray, start: tuple[int, int], end: tuple[int, int], mean_step: tuple[float, float], reach: int, cost: float
) -> list[tuple[int, int]] | None:
    """The best course over a grid: ``z`` (n + 1, h, w) is each frame's evidence per cell (frame 0 is
    the start's, frame n the end's; ``NEG`` where the course cannot be), ``start`` and ``end`` cells
    (row, col). A step from cell q to p costs ``cost`` x |p - q - mean_step|^2 (cells) and may not
    exceed ``reach`` cells from q + mean_step in either direction. Returns the cell of each frame, or
    None when the end cannot be reached. (The cost is separable, so each frame's best predecessors
    are two passes of ``2 reach + 1`` shifts, one per axis.)"""
    n = z.shape[0] - 1
    totals = np.full(z.shape, NEG, np.float32)
    totals[0][start] = 0.0
    shifts = [
        (
            round((j + 1) * mean_step[0]) - round(j * mean_step[0]),
            round((j + 1) * mean_step[1]) - round(j * mean_step[1]),
        )
        for j in range(n)
    ]
    back_r = np.zeros(z.shape, np.int8)  # per frame and cell: the row offset of the best predecessor
    back_c = np.zeros(z.shape, np.int8)  # and, in the row pass's source, its column offset
    live = z > NEG / 2  # (n + 1, h, w): where the course can be in each frame
    for j in range(n):
        # Only the cells the course can come from or go to, and those within a step of them, are worked on.
        rs, cs = np.nonzero(live[j] | live[j + 1])
        pad = reach + max(abs(shifts[j][0]), abs(shifts[j][1])) + 1
        r0, r1 = max(0, int(rs.min()) - pad), min(z.shape[1], int(rs.max()) + pad + 1)
        c0, c1 = max(0, int(cs.min()) - pad), min(z.shape[2], int(cs.max()) + pad + 1)
        moved = _shifted(totals[j, r0:r1, c0:c1], *shifts[j])
        across, back_c[j + 1, r0:r1, c0:c1] = _max_plus(moved, reach, cost, axis=1)
        best, back_r[j + 1, r0:r1, c0:c1] = _max_plus(across, reach, cost, axis=0)
        best[best < NEG / 2] = NEG
        zj = z[j + 1, r0:r1, c0:c1]
        totals[j + 1, r0:r1, c0:c1] = np.where(zj > NEG / 2, best + zj, NEG)
    if totals[n][end] < NEG / 2:
        return None
    cells = [end]
    for j in range(n, 0, -1):
        r, c = cells[-1]
        r -= int(back_r[j][r, c])
        c -= int(back_c[j][r, c])
        cells.append((r - shifts[j - 1][0], c - shifts[j - 1][1]))
    return cells[::-1]


def _max_plus(a: np.ndarray, reach: int, cost: float, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Along ``axis``: out[i] = max over |d| <= reach of a[i - d] - cost d^2, and the d taken."""
    out = a.copy()
    arg = np.zeros(a.shape, np.int8)
    size = a.shape[axis]
    for d in range(-reach, reach + 1):
        if d == 0 or abs(d) >= size:
            continue
        src = [slice(None), slice(None)]
        dst = [slice(None), slice(None)]
        src[axis] = slice(max(0, -d), size - max(0, d))
        dst[axis] = slice(max(0, d), size - max(0, -d))
        cand = a[tuple(src)] - cost * d * d
        view = out[tuple(dst)]
        better = cand > view
        # (in place, where better: as ``view[better] = cand[better]``, without gathering either)
        np.copyto(view, cand, where=better)
        np.copyto(arg[tuple(dst)], d, where=better)
    return out, arg


def _shifted(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``a`` moved by (dr, dc) cells, ``NEG`` where nothing moved in."""
    out = np.full_like(a, NEG)
    h, w = a.shape
    if abs(dr) >= h or abs(dc) >= w:
        return out
    out[max(0, dr) : h + min(0, dr), max(0, dc) : w + min(0, dc)] = a[
        max(0, -dr) : h - max(0, dr), max(0, -dc) : w - max(0, dc)
    ]
    return out


def track_gap(
    frames: list[np.ndarray],
    first: tuple[Anchor, Anchor],
    last: tuple[Anchor, Anchor],
    sprites: list[Template],
    config: GapTrackConfig,
) -> list[tuple[int, float, float]]:
    """Hits (frame, x, y) for the frames strictly between ``first[1]`` and ``last[0]``: ``frames`` are
    the full-resolution lumas of frames ``first[1].index`` .. ``last[0].index``; ``first`` a sure
    sighting shortly before the gap and its last one, ``last`` its first one after it and one shortly
    after that; ``sprites`` the pointer's sprites learned from the video. See the module docstring."""
    (a0, a), (b, b1) = first, last
    n = b.index - a.index
    if n < 2 or not sprites or len(frames) != n + 1:
        return []  # no sprite learned yet: the pointer's shape is not known
    mean = ((b.x - a.x) / n, (b.y - a.y) / n)
    seen = max(
        math.hypot(a.x - a0.x, a.y - a0.y) / (a.index - a0.index),
        math.hypot(b1.x - b.x, b1.y - b.y) / (b1.index - b.index),
        math.hypot(*mean),
    )
    vmax = config.speed_margin * seen + config.step_px
    reach = min(vmax * n, math.dist((a.x, a.y), (b.x, b.y)) + 2 * vmax * math.sqrt(n))
    h, w = frames[0].shape
    x0, y0, x1, y1 = corridor_box((a.x, a.y), (b.x, b.y), reach, sprites, (w, h))
    import cv2

    crops = [f[y0:y1, x0:x1] for f in frames]  # views, no copies
    # The view without the pointer: the median of up to ``BACKGROUND_FRAMES`` frames spread over the gap
    # (a moving pointer covers a pixel in few of them).
    picked = np.unique(np.linspace(0, n, min(n + 1, BACKGROUND_FRAMES)).round().astype(int))
    background = median_frames([crops[i] for i in picked])
    # The trace is looked for with the sprites that fit the two sightings best: placed at each one's tip,
    # the most of what differs there from the view without the pointer lies under its mask.
    templates = list(
        {
            id(t): t
            for t in (
                _fitting(crops[0], background, a, sprites, (x0, y0)),
                _fitting(crops[n], background, b, sprites, (x0, y0)),
            )
        }.values()
    )
    # The course's grid: cells of ``step_px``, or larger where the corridor is large (a long or fast gap),
    # each holding the best evidence inside it; the tip is then found at full resolution.
    g = max(config.step_px, math.ceil(math.sqrt((x1 - x0) * (y1 - y0) / config.cells)))
    rows = y0 + np.arange(math.ceil((y1 - y0) / g), dtype=np.float32) * g + (g - 1) / 2
    cols = x0 + np.arange(math.ceil((x1 - x0) / g), dtype=np.float32) * g + (g - 1) / 2
    ys, xs = np.meshgrid(rows, cols, indexing="ij")
    start = (int((a.y - y0) // g), int((a.x - x0) // g))
    end = (int((b.y - y0) // g), int((b.x - x0) // g))
    if not (
        0 <= start[0] < len(rows) and 0 <= start[1] < len(cols) and 0 <= end[0] < len(rows) and 0 <= end[1] < len(cols)
    ):
        return []
    z = np.full((n + 1, len(rows), len(cols)), NEG, np.float32)
    origin = (x0, y0, xs, ys, g)
    # the corridor: where the course can lie at all; its evidence in a frame is that frame's noise
    from_a, from_b = np.hypot(xs - a.x, ys - a.y), np.hypot(xs - b.x, ys - b.y)
    corridor = from_a + from_b <= max(reach, math.dist((a.x, a.y), (b.x, b.y))) + g
    margin = max(max(t.image.shape) for t in templates) + RING_PX + 1
    scored: dict[int, Scored] = {}
    # The anchors' frames first: a gap whose anchor does not stand out (below) is given up before the
    # evidence of the frames between is worked out (each frame's evidence is its own: the same either way).
    for j in (0, n, *range(1, n)):
        allowed = (from_a <= vmax * max(j, 1) + g) & (from_b <= vmax * max(n - j, 1) + g)
        if not allowed.any():
            return []
        # Evidence where this frame's course can lie (the whole corridor in an anchor's frame, whose
        # noise is taken from it): the rest stays 0, never looked at.
        where = corridor if j in (0, n) else allowed
        rs, cs = np.nonzero(where)
        py0, py1 = int(rs.min()) * g, int(rs.max()) * g + 1
        px0, px1 = int(cs.min()) * g, int(cs.max()) * g + 1
        sy0, sx0 = max(0, py0 - margin), max(0, px0 - margin)
        sy1, sx1 = py1 + margin, px1 + margin
        diff = cv2.absdiff(crops[j][sy0:sy1, sx0:sx1], background[sy0:sy1, sx0:sx1])
        ev = np.zeros(background.shape, np.float32)
        ev[py0:py1, px0:px1] = np.max([evidence(diff, t) for t in templates], axis=0)[
            py0 - sy0 : py1 - sy0, px0 - sx0 : px1 - sx0
        ]
        grid = _pooled(ev, g, xs.shape)
        vals = grid[where][::4]  # the noise's median and spread: every fourth cell tells them
        med = float(np.median(vals))
        spread = max(0.5, 1.4826 * float(np.median(np.abs(vals - med))))
        z[j] = np.where(allowed, np.clip(grid - med, -config.clip_levels, config.clip_levels), NEG)
        scored[j] = (ev, grid, med, spread, allowed)
        # Each anchor must stand out in its own frame as the gap's frames do: a sure sighting that does
        # not differ from the view without the pointer is a lookalike, and a course to it is wrong.
        if j == n and not (
            _stands(scored[0], (a.x, a.y), origin, config) and _stands(scored[n], (b.x, b.y), origin, config)
        ):
            return []
    z[0] = NEG
    z[n] = NEG
    z[0][start] = 0.0
    z[n][end] = 0.0
    # a step off the mean by ``slack`` px, or by the speed seen where faster, costs ``min_levels`` of evidence
    cost = config.min_levels * (g / max(config.slack, seen)) ** 2
    cells = course(z, start, end, (mean[1] / g, mean[0] / g), max(1, math.ceil(vmax / g)), cost)
    if cells is None:
        return []
    out = []
    near = max(max(t.image.shape) for t in templates)
    at = [(float(cols[c]), float(rows[r])) for r, c in cells]
    at[0], at[n] = (a.x, a.y), (b.x, b.y)
    for j in range(1, n):
        # A course that steps aside for one frame and back (a blotch of noise it passed) is not followed there.
        mid = ((at[j - 1][0] + at[j + 1][0]) / 2, (at[j - 1][1] + at[j + 1][1]) / 2)
        if math.dist(at[j], mid) > config.slack:
            continue
        tip = _standing(scored[j], at[j], origin, near, config)
        if tip is not None:
            out.append((a.index + j, *tip))
    return out


def median_frames(frames: list[np.ndarray]) -> np.ndarray:
    """The per-pixel median of uint8 frames of one shape, as ``np.median(np.stack(frames), axis=0)``
    cast to uint8 gives it (of an even count, the two middle values' mean rounded down), by an
    odd-even transposition sort of whole frames (elementwise minima and maxima: exact, and tens of
    times faster than ``np.median`` along the stacked axis for the few frames a gap takes)."""
    s = [np.array(f) for f in frames]  # copies: sorted in place
    k = len(s)
    for p in range(k):  # k passes sort k values
        for i in range(p % 2, k - 1, 2):
            lo = np.minimum(s[i], s[i + 1])
            np.maximum(s[i], s[i + 1], out=s[i + 1])
            s[i] = lo
    if k % 2:
        return s[k // 2]
    return ((s[k // 2 - 1].astype(np.uint16) + s[k // 2]) // 2).astype(np.uint8)


def _pooled(ev: np.ndarray, g: int, cells: tuple[int, int]) -> np.ndarray:
    """The highest of ``ev`` in each g x g cell of a grid ``cells`` (rows, cols) over it."""
    import cv2

    if g == 1:
        return ev
    rows, cols = cells
    full = np.full((rows * g, cols * g), NEG, np.float32)
    full[: ev.shape[0], : ev.shape[1]] = ev
    return cv2.dilate(full, np.ones((g, g), np.uint8), anchor=(0, 0))[::g, ::g]


def _fitting(
    crop: np.ndarray, background: np.ndarray, at: Anchor, sprites: list[Template], origin: tuple[int, int]
) -> Template:
    """The sprite whose mask, with its hotspot on the sighting's tip, covers the most difference from
    the background there."""
    import cv2

    diff = cv2.absdiff(crop, background)
    x, y = round(at.x) - origin[0], round(at.y) - origin[1]
    h, w = diff.shape

    def covered(t: Template) -> float:
        hx, hy = t.hotspot
        th, tw = t.mask.shape
        ys0, xs0 = y - hy, x - hx
        cy0, cx0 = max(0, ys0), max(0, xs0)
        cy1, cx1 = min(h, ys0 + th), min(w, xs0 + tw)
        if cy1 <= cy0 or cx1 <= cx0:
            return -1.0
        m = t.mask[cy0 - ys0 : cy1 - ys0, cx0 - xs0 : cx1 - xs0] > 0
        return float(diff[cy0:cy1, cx0:cx1][m].mean()) if m.any() else -1.0  # (uint8 mean: no overflow)

    return max(sprites, key=covered)


def _bar(spread: float, config: GapTrackConfig) -> float:
    """How far above a frame's noise median evidence must stand: ``min_levels`` grey levels and
    ``min_z`` noise spreads."""
    return max(config.min_levels, config.min_z * spread)


def _stands(
    scored: Scored,
    at: tuple[float, float],
    origin: tuple[int, int, np.ndarray, np.ndarray, int],
    config: GapTrackConfig,
) -> bool:
    """Does the evidence within ``step_px`` of ``at`` stand out of the frame's noise? (A sighting the
    locator made is as precise as its matches: a few px.)"""
    ev, _, med, spread, _ = scored
    x0, y0, _, _, _ = origin
    r = config.step_px
    xx, yy = round(at[0]) - x0, round(at[1]) - y0
    win = ev[max(0, yy - r) : yy + r + 1, max(0, xx - r) : xx + r + 1]
    return win.size > 0 and float(win.max()) - med >= _bar(spread, config)


def _standing(
    scored: Scored,
    at: tuple[float, float],
    origin: tuple[int, int, np.ndarray, np.ndarray, int],
    near: float,
    config: GapTrackConfig,
) -> tuple[float, float] | None:
    """The tip near ``at`` (the strongest evidence within one grid step) where it stands out of the
    frame's noise (``min_z`` spreads, ``min_levels`` grey levels) and no position of the corridor
    further than ``near`` px from it (a sprite's size: the trace a moving pointer leaves spreads over
    about that) scores as high; None otherwise."""
    ev, grid, med, spread, allowed = scored
    x0, y0, xs, ys, g = origin
    xx, yy = round(at[0]) - x0, round(at[1]) - y0
    h, w = ev.shape
    if not (0 <= xx < w and 0 <= yy < h):
        return None
    wy0, wx0 = max(0, yy - g), max(0, xx - g)
    win = ev[wy0 : yy + g + 1, wx0 : xx + g + 1]
    dy, dx = np.unravel_index(int(np.argmax(win)), win.shape)
    py, px = wy0 + int(dy), wx0 + int(dx)
    value = float(ev[py, px])
    if value - med < _bar(spread, config):
        return None
    far = allowed & (np.hypot(xs - (px + x0), ys - (py + y0)) > near)
    if far.any() and float(grid[far].max()) >= value:
        return None
    return float(px + x0), float(py + y0)


class GapTracker:
    """The frames of a still view since a gap may have begun, and the hits shown; a gap between two
    sure sightings, each with another shortly beyond it, is followed through (see the module
    docstring)."""

    def __init__(self, config: GapTrackConfig | None = None) -> None:
        self.config = config or GapTrackConfig()
        self.frames: dict[int, np.ndarray] = {}  # frame -> luma (references; frames are not written to)
        self.sure: dict[int, Anchor] = {}  # frame -> a sure sighting shown for it
        self.shown: set[int] = set()  # frames with any hit shown
        self.done: set[tuple[int, int]] = set()  # gaps (a, b) already followed
        self.begins = -1  # the last sure sighting with another shortly before it: where a gap may begin

    def reset(self) -> None:
        """The view moved: nothing held carries over."""
        self.frames.clear()
        self.sure.clear()
        self.shown.clear()
        self.done.clear()
        self.begins = -1

    def add(self, index: int, luma: np.ndarray, hits: list[CursorHit], sprites: list[Template]) -> list[CursorHit]:
        """Frame ``index``'s luma and the hits shown now (``sprites``: the pointer's sprites learned so
        far); returns hits for the frames of a gap closed by them."""
        cfg = self.config
        self.frames[index] = luma
        new = []
        for h in hits:
            self.shown.add(h.index)
            if h.score >= cfg.anchor_score:
                self.sure[h.index] = Anchor(h.index, h.x, h.y)
                new.append(h.index)
                for k in range(-NEXT, NEXT + 1):
                    if k and h.index + k in self.sure:
                        self.begins = max(self.begins, h.index, h.index + k)
        out: list[CursorHit] = []
        for first, last in self._closed(new):
            frames = [self.frames[j] for j in range(first[1].index, last[0].index + 1)]
            for j, x, y in track_gap(frames, first, last, sprites, cfg):
                if j not in self.shown:
                    out.append(CursorHit(j, x, y, cfg.score))
        self._prune(index)
        return out

    def _closed(self, new: list[int]) -> list[tuple[tuple[Anchor, Anchor], tuple[Anchor, Anchor]]]:
        """Gaps that the sure sightings ``new`` close: no hit shown strictly between two sure sightings
        ``a`` and ``b``, each with another sure sighting at most ``NEXT`` frames beyond it (before
        ``a``, after ``b``), every frame held. Only gaps ``new`` can end or border are looked at: one
        it ends, one whose sighting after it is one of them, one a late sighting begins."""
        cfg = self.config
        ends: set[int] = set()
        for i in new:
            ends.add(i)
            ends.update(j for j in range(i - NEXT, i) if j in self.sure)
            ends.update(itertools.islice((j for j in range(i + 1, i + cfg.max_gap + 2) if j in self.sure), 1))
        out = []
        for b in sorted(ends):
            if b - 1 in self.shown:
                continue  # no gap ends at b
            a = next((j for j in range(b - 1, b - cfg.max_gap - 2, -1) if j in self.sure), None)
            if a is None or b - a < cfg.min_gap + 1 or (a, b) in self.done:
                continue
            before = next((self.sure[i] for i in range(a - 1, a - NEXT - 1, -1) if i in self.sure), None)
            after = next((self.sure[i] for i in range(b + 1, b + NEXT + 1) if i in self.sure), None)
            if before is None or after is None:
                continue
            self.done.add((a, b))
            if any(j in self.shown for j in range(a + 1, b)) or not all(j in self.frames for j in range(a, b + 1)):
                continue
            out.append(((before, self.sure[a]), (self.sure[b], after)))
        return out

    def _prune(self, now: int) -> None:
        """Frames are held from the last sure sighting with another just before it on (where a gap may
        begin), at most ``max_gap`` + 3 of them."""
        keep_from = max(self.begins, now - self.config.max_gap - 2)
        for j in [j for j in self.frames if j < keep_from]:
            del self.frames[j]
        if len(self.sure) > 4 * self.config.max_gap:
            old = now - 2 * self.config.max_gap
            self.sure = {i: v for i, v in self.sure.items() if i >= old}
            self.shown = {i for i in self.shown if i >= old}
            self.done = {d for d in self.done if d[1] >= old}
