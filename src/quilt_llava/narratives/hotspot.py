"""Where a learned pointer shape points, and what it is drawn as.

A shape that maps onto itself under the half turn and both mirrors (its mask, its outline for a
line drawing, or the luma it shows) points with its middle: a crosshair, a ring, an I-beam, a
laser dot. Any other shape points with its sharpest extreme, the one that also reaches furthest
from its middle, leaning to the up and left the way desktop pointers point (``DIRECTIONS``); a
blob with no extreme much sharper than the others points at its middle. The sprite learner
(``narratives.pointer``) decides each learned sprite's hotspot here, and a sprite learned again
as a twin of an earlier one keeps the earlier one's hotspot (``agreed_hotspot``). How this was
measured is in the module docstring of ``narratives.pointer`` and in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from quilt_llava.narratives.sprite_set import TWIN_SCORE
from quilt_llava.narratives.templates import Template, twin_score

# A shape whose thickest stroke (twice the largest distance from a mask pixel to the outside) is at
# most this share of its box's narrow side is drawn in lines (crosshairs and I-beams of the six
# Debian themes and as learned from the independent corpus: 0.07-0.47), and its centre is found by
# its outline's symmetry (``_outline_symmetric_centre``). Theme arrows and hands: 0.69-0.93 (the
# hands of handhelds and redglass, lens-shaped with outlines as symmetric: 0.80-0.86); learned
# arrows and hands 0.56-0.62.
LINE_STROKE = 0.5
# A shape this many times longer than its box's narrow side, whose narrow side is no wider than its
# thickest stroke and a pixel, is one straight stroke (``one_straight_stroke``): a piece of a longer line
# (an arm of a drawn cross, an edge) or a whole one (an I-beam's stem learned without its serifs).
STROKE_LENGTH = 3.0

# Share of a line drawing's outline pixels that must land within a pixel of its outline under each
# mirror for it to point with its middle (``_outline_symmetric_centre``): 0.9, and 0.85 where the
# shape's narrow side spans ``OUTLINE_WIDE`` px or more. An I-beam learned from two sightings of an
# MPEG-4 video, one serif ragged or cut short at one end, covers 0.89 under its worst mirror (the
# independent corpus, draws 2, 7 and 8: 16-20 px wide); the six line-drawn sprites there that point
# with an extreme cover 0.57 at most. On a shape a few pixels across, a pixel's slack is much of its
# width and anything covers that much (a 10 x 14 px hand of handhelds-480p covers 0.88).
OUTLINE_COVER = 0.9
OUTLINE_COVER_WIDE = 0.85
OUTLINE_WIDE = 12  # px: six times the axes' slack (2 px) of ``_outline_symmetric_centre``

# A shape whose luma the half turn and both mirrors map onto itself (``_luma_symmetric_centre``)
# points with its middle: masked correlation of the shared pixels at least ``LUMA_SYMMETRY_NCC``,
# over ``LUMA_SYMMETRY_COVER`` of the shape, with ``LUMA_SYMMETRY_SPREAD`` grey levels of spread
# (a flat patch correlates with anything), about a point up to ``LUMA_SYMMETRY_SLACK`` of the
# box's narrow side from its middle (a ragged mask moves the box, not the pointer's centre).
LUMA_SYMMETRY_NCC = 0.8
LUMA_SYMMETRY_COVER = 0.6
LUMA_SYMMETRY_SPREAD = 6.0
LUMA_SYMMETRY_SLACK = 0.15

# The eight compass directions (x right, y down) and how much sharper than an up/left extreme
# an extreme elsewhere must be to count as the tip: desktop pointers point up and to the left.
DIRECTIONS = [
    (math.cos(a), math.sin(a), w)
    for a, w in zip(np.deg2rad([225, 270, 180, 315, 135, 0, 90, 45]), (1.0, 1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 2.0))
]


def decide_hotspot(
    mask: np.ndarray,
    symmetric_iou: float = 0.8,
    tip_depth: float = 0.18,
    inset: float = 1.5,
    blunt: float | None = None,
    image: np.ndarray | None = None,
) -> tuple[int, int]:
    """Where an unknown pointer shape points (see the module docstring): its centre when it is
    point-symmetric (its mask or, given ``image``, the luma it shows), else the mean of its
    pixels at its sharpest extreme."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return 0, 0
    centre = symmetric_centre(mask, symmetric_iou, image)
    if centre is not None:
        return centre
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    extent = max(x1 - x0, y1 - y0) + 1
    depth = max(2.0, tip_depth * extent)
    inward = inset * max(1.0, extent / 24)
    best: tuple[float, float, float] | None = None
    cx, cy = xs.mean(), ys.mean()
    reach = float(np.hypot(xs - cx, ys - cy).max())
    counts = []
    for dx, dy, weight in DIRECTIONS:
        s = xs * dx + ys * dy
        top = s.max()
        ridge = s >= top - 1.0
        # An arrow's tip also reaches out furthest from the shape's middle; its barbs do not.
        far = float(np.hypot(xs[ridge].mean() - cx, ys[ridge].mean() - cy)) / max(reach, 1e-6)
        count = weight * int((s >= top - depth).sum()) / max(far, 0.25)
        counts.append(count)
        if best is None or count < best[0]:
            # Cursor files put the hotspot on the fill's point, about one outline width (1.5 px)
            # inside the outermost pixels.
            best = (count, float(xs[ridge].mean()) - inward * dx, float(ys[ridge].mean()) - inward * dy)
    assert best is not None
    if blunt is not None and best[0] >= blunt * float(np.median(counts)):
        # No extreme much sharper than the others: a blunt blob (a disc, a ring learned filled, a
        # round highlight with a ragged edge) has no tip; it points at its middle.
        return round(float(cx)), round(float(cy))
    return round(min(max(best[1], x0), x1)), round(min(max(best[2], y0), y1))


def agreed_hotspot(
    template: Template, known: Iterable[Template], slack: float, symmetric_iou: float = 0.8
) -> tuple[int, int]:
    """Where a sprite just learned points, given the sprites learned before it: its own hotspot,
    unless it is a twin of one of them (the same shape learned again: ``twin_score`` at
    ``TWIN_SCORE`` or more, the first such) that, mapped onto it, points more than ``slack`` px elsewhere, and points
    more the way desktop pointers do (up and to the left, ``DIRECTIONS``). Then it points there.

    One pointer has one hotspot. A see-through or fast pointer is learned again wherever its
    sightings no longer match the sprites known (over other tissue, with the encoder's trail behind
    it), and each time its sharpest extreme is decided afresh: a trail behind a moving arrow makes a
    sharp corner at its tail (draw 9's redglass arrow, tracked 42 px off). A sprite that points with
    its middle (``symmetric_centre``) keeps its own hotspot."""
    if symmetric_centre(template.mask, symmetric_iou, template.image) is not None:
        return template.hotspot
    h, w = template.image.shape
    for other in known:
        score, dx, dy = twin_score(other, template)
        if score < TWIN_SCORE:
            continue
        x, y = other.hotspot[0] - dx, other.hotspot[1] - dy  # the twin's hotspot on this sprite's grid
        own = template.hotspot
        if not (0 <= x < w and 0 <= y < h) or math.hypot(x - own[0], y - own[1]) <= slack:
            return own
        return (x, y) if _leaning(template.mask, (x, y)) <= _leaning(template.mask, own) else own
    return template.hotspot


def _leaning(mask: np.ndarray, point: tuple[int, int]) -> float:
    """The weight (``DIRECTIONS``) of the compass direction from the mask's centroid to ``point``:
    1 up or to the left, more elsewhere; 0 at the centroid itself."""
    ys, xs = np.nonzero(mask)
    vx, vy = point[0] - float(xs.mean()), point[1] - float(ys.mean())
    if math.hypot(vx, vy) < 1.0:
        return 0.0
    return max(DIRECTIONS, key=lambda d: d[0] * vx + d[1] * vy)[2]


def symmetric_centre(
    mask: np.ndarray, symmetric_iou: float = 0.8, image: np.ndarray | None = None
) -> tuple[int, int] | None:
    """Where a shape that points with its middle points (see the module docstring: a thin cross,
    a point-symmetric shape, one nearly so, a line drawing whose outline is symmetric and, given
    its luma ``image``, a shape whose luma is symmetric), or None for a shape that points with an
    extreme."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    box = mask[y0 : y1 + 1, x0 : x1 + 1] > 0
    cross = _cross_centre(box)
    if cross is not None:
        return int(x0 + cross[0]), int(y0 + cross[1])
    if min(_iou(box, box[::-1, ::-1]), _iou(box, box[::-1]), _iou(box, box[:, ::-1])) >= symmetric_iou:
        ys_c, xs_c = np.nonzero(box)
        return int(x0 + round(float(xs_c.mean()))), int(y0 + round(float(ys_c.mean())))
    near = _near_symmetric_centre(box, symmetric_iou) if box.mean() <= 0.5 else None
    if near is None:
        near = _outline_symmetric_centre(box)
    if near is None and image is not None:
        near = _luma_symmetric_centre(image[y0 : y1 + 1, x0 : x1 + 1], box)
    if near is not None:
        return round(x0 + near[0]), round(y0 + near[1])
    return None


def _cross_centre(box: np.ndarray) -> tuple[int, int] | None:
    """Where the arms of a thin cross (a crosshair, gapped or not, a plus sign) meet, or None
    when ``box`` (bool, cropped to the shape) is no such cross: the shape lies on a thin band of
    rows and one of columns, its fullest row and column each span most of the box, with a good
    part of each on both sides of the other (an arrow's widest row ends at its fullest column)."""
    h, w = box.shape
    if box.mean() > 0.4 or min(h, w) < 5:
        return None
    rows, cols = box.sum(axis=1), box.sum(axis=0)
    band_r, band_c = rows >= 0.5 * rows.max(), cols >= 0.5 * cols.max()
    if band_r.sum() > 0.3 * h or band_c.sum() > 0.3 * w:
        return None  # not thin arms: a solid shape (an arrow whose shaft spans it)
    if (box & (band_r[:, None] | band_c[None, :])).sum() < 0.85 * box.sum():
        return None  # much of the shape lies off its arms
    r = np.flatnonzero(rows >= rows.max() - 1)
    c = np.flatnonzero(cols >= cols.max() - 1)
    row = round(float(r.mean()))
    col = round(float(c.mean()))
    along_row = np.flatnonzero(box[r].any(axis=0))
    along_col = np.flatnonzero(box[:, c].any(axis=1))
    if along_row.size < 0.6 * w or along_col.size < 0.6 * h:
        return None
    left, right = (along_row < col).sum(), (along_row > col).sum()
    up, down = (along_col < row).sum(), (along_col > row).sum()
    if min(left, right) < 0.25 * along_row.size or min(up, down) < 0.25 * along_col.size:
        return None
    return col, row


def _near_symmetric_centre(box: np.ndarray, min_iou: float, slack: int = 1) -> tuple[float, float] | None:
    """The centre of a shape that a half turn and both mirrors map onto itself about a point up to
    ``slack`` px from its box's middle (a crosshair or I-beam as learned from a video: one arm or
    end a pixel thicker or longer than the other, a shadow's edge kept on one side), or None when
    any of the three, at its best such point, overlaps the shape by less than ``min_iou``."""
    h, w = box.shape
    pad = np.pad(box, slack)
    centre = [0.0, 0.0]
    for turned, axes in ((box[::-1, ::-1], (0, 1)), (box[::-1], (1,)), (box[:, ::-1], (0,))):
        best, where = 0.0, (0, 0)
        for sy in range(-slack, slack + 1):
            for sx in range(-slack, slack + 1):
                iou = _iou(pad[slack + sy : slack + sy + h, slack + sx : slack + sx + w], turned)
                if iou > best:
                    best, where = iou, (sx, sy)
        if best < min_iou:
            return None
        if axes == (0, 1):  # box(x + sx) = box(w - 1 - x): symmetric about x = (w - 1 + sx) / 2
            centre = [(w - 1 + where[0]) / 2, (h - 1 + where[1]) / 2]
    return centre[0], centre[1]


# A shape's three symmetries, each as (the flip, whether its axis is searched along x, along y):
# left-right, up-down and the half turn
_MIRRORS = (
    ((slice(None), slice(None, None, -1)), True, False),
    ((slice(None, None, -1), slice(None)), False, True),
    ((slice(None, None, -1), slice(None, None, -1)), True, True),
)


def _shifts(slack: int, along_x: bool, along_y: bool) -> list[tuple[int, int]]:
    """The shifts ``(sx, sy)`` a symmetry's axis is searched over, ``slack`` px either way along the
    axes it moves (y outer, x inner)."""
    ys = range(-slack, slack + 1) if along_y else (0,)
    xs = range(-slack, slack + 1) if along_x else (0,)
    return [(sx, sy) for sy in ys for sx in xs]


def line_drawing(box: np.ndarray) -> bool:
    """Is the mask ``box`` (cropped to its pixels) drawn in lines: 5 px or more both ways, its
    thickest stroke (twice the largest distance from a mask pixel to the outside) at most
    ``LINE_STROKE`` of its narrow side?"""
    import cv2

    h, w = box.shape
    b8 = np.pad(box.astype(np.uint8), 1)
    return min(h, w) >= 5 and 2 * float(cv2.distanceTransform(b8, cv2.DIST_L2, 3).max()) <= LINE_STROKE * min(h, w)


def one_straight_stroke(mask: np.ndarray) -> bool:
    """Is ``mask`` one straight stroke (``STROKE_LENGTH``): at least that many times longer than
    its box's narrow side, which is no wider than its thickest stroke (twice the largest distance
    from a mask pixel to the outside) and a pixel?"""
    import cv2

    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return False
    h, w = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
    if max(h, w) < STROKE_LENGTH * min(h, w):
        return False
    b8 = np.pad((mask > 0).astype(np.uint8), 1)
    return min(h, w) <= 2 * float(cv2.distanceTransform(b8, cv2.DIST_L2, 3).max()) + 1


def _outline_symmetric_centre(
    box: np.ndarray, min_cover: float | None = None, slack: int = 2
) -> tuple[float, float] | None:
    """The centre of a line drawing (a crosshair or I-beam as learned from a compressed video)
    whose *outline* a half turn and both mirrors map onto itself to within a pixel, or None.

    Two sightings at different sub-pixel phases and the encoder leave a thin line's mask ragged:
    an arm a pixel off its line for half its length, one arm two pixels longer, a serif a pixel
    wider on one side. The mask then overlaps its mirror images by far less than
    ``symmetric_iou`` (a 1 px line moved by a pixel does not overlap itself at all), yet every
    pixel of its outline lands within a pixel of the outline. Asked of the outline (not the
    area, which a solid blob's mirror image always mostly covers) and only of line drawings
    (``LINE_STROKE``): a lens-shaped hand's outline is as symmetric as that (``handhelds``), and
    it points with a finger. The axes are put where the mirrored mask
    overlaps the mask most, ``slack`` px either way of the box's middle (a piece of tissue or
    an arm's extra pixels on one side moves the box, not the shape's centre)."""
    import cv2

    h, w = box.shape
    if not line_drawing(box):
        return None  # too small to tell, or not a line drawing
    b8 = np.pad(box.astype(np.uint8), 1)
    if min_cover is None:
        min_cover = OUTLINE_COVER_WIDE if min(h, w) >= OUTLINE_WIDE else OUTLINE_COVER
    edge = box & ~(cv2.erode(b8, np.ones((3, 3), np.uint8))[1:-1, 1:-1] > 0)
    count = int(edge.sum())
    pad = slack + 1
    near_edge = cv2.dilate(np.pad(edge, pad).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    area = np.pad(box, pad)
    axes = []
    for flip, along_x, along_y in _MIRRORS:
        best, where = -1, (0, 0)  # the areas' overlap where the outline holds, and its shift
        for sx, sy in _shifts(slack, along_x, along_y):
            window = (slice(pad + sy, pad + sy + h), slice(pad + sx, pad + sx + w))
            if near_edge[window][edge[flip]].sum() < min_cover * count:
                continue
            overlap = int(area[window][box[flip]].sum())
            if overlap > best:
                best, where = overlap, (sx, sy)
        if best < 0:
            return None
        axes.append(where)
    # the left-right mirror's axis gives x, the up-down mirror's y; the half turn only has to hold
    return (w - 1 + axes[0][0]) / 2, (h - 1 + axes[1][1]) / 2


def _luma_symmetric_centre(image: np.ndarray, box: np.ndarray) -> tuple[float, float] | None:
    """The centre of a shape whose *luma* a half turn and both mirrors map onto itself (a dot with
    a glow, a ring, a target: a round pointer learned with a ragged mask, as the encoder and the
    tissue beside it cut it), or None.

    A round pointer's mask, cut where it differed from the frames before, loses a different
    piece of its soft edge at every sighting and is seldom symmetric enough for the mask rules;
    what it shows inside is (a bright core ringed by a darker glow, the same on every side).
    Under each of the three, about the point ``LUMA_SYMMETRY_SLACK`` of the box's narrow side
    either way of its middle where they agree best, the luma of the pixels the shape and its
    image share (``LUMA_SYMMETRY_COVER`` of the shape at least, with ``LUMA_SYMMETRY_SPREAD``
    grey levels of spread) must correlate at ``LUMA_SYMMETRY_NCC``. An arrow or a hand drawn
    in an outline and a fill is not symmetric so (1629 images of the cursors of the seven
    Debian themes, 24 and 32 px, over three greys: the rule holds for 266, all within 2 px of
    their declared hotspot but for cursors that point with their middle: watches, dots,
    move and resize arrows, I-beams)."""
    h, w = box.shape
    if min(h, w) < 5:
        return None
    img = image.astype(np.float32)
    n = int(box.sum())
    slack = max(1, round(LUMA_SYMMETRY_SLACK * min(h, w)))
    area, luma = np.pad(box, slack), np.pad(img, slack)
    axes = []
    for flip, along_x, along_y in _MIRRORS:
        turned, turned_box = img[flip], box[flip]
        best, where = LUMA_SYMMETRY_NCC, None
        for sx, sy in _shifts(slack, along_x, along_y):
            window = (slice(slack + sy, slack + sy + h), slice(slack + sx, slack + sx + w))
            both = area[window] & turned_box
            if both.sum() < LUMA_SYMMETRY_COVER * n:
                continue
            a, b = luma[window][both], turned[both]
            if a.std() < LUMA_SYMMETRY_SPREAD or b.std() < LUMA_SYMMETRY_SPREAD:
                continue
            ncc = float(np.corrcoef(a, b)[0, 1])
            if ncc >= best:
                best, where = ncc, (sx, sy)
        if where is None:
            return None
        axes.append(where)
    return (w - 1 + axes[0][0]) / 2, (h - 1 + axes[1][1]) / 2


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0
