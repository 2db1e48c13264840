"""Learning a video's own pointer from the video: the small rigid sprite that moves over a
still view.

Real recordings show whatever pointer the narrator's system drew: an arrow of any theme,
colour and size (HiDPI 2x included), with or without a shadow, a pointing hand, a
crosshair, and the shape changes mid-video. No fixed template bank covers that, so the
locator learns each video's sprites from motion and then matches them like any template
(where the pointer rests too, before it first moves, and in later views where it never
moves):

1. **Where the pointer is now.** On a still view, the pixels of frame ``t`` that differ
   from *two* earlier frames of the same view (``t - near`` and ``t - far``) are the
   pointer's pixels at ``t``: where it was before, frame ``t`` shows the tissue again,
   which one of the two earlier frames shows as well (the pointer was elsewhere then).
   Compression noise rarely exceeds the threshold in both differences.
   A pointer that drifts slowly (under a pixel a frame: a laser dot held by hand) differs from
   those two frames only at its edge; where they give no candidate, frame ``t`` is compared
   with the median of the view's frames held every ``slow_stride`` frames (the spot as it was
   before the pointer came: it is elsewhere in most of them), in the motion blob's box grown
   by twice ``min_px``. Such a *slow* candidate is kept only where the pointer has moved at
   least its own size since the oldest of those frames (the cut, matched there, lies that far
   away): where it moved less, the median holds part of it and the cut is a piece. The median
   cut is used only while no sprite is known (a pointer seen moving has its shape from
   motion; cuts of it dwelling added worse ones: whiteglass-480p's crosshair, 10 px off), and
   only with ``slow_cut`` (off by default: see ``SpriteConfig.slow_cut``).
   A large pointer with a flat fill that moves less than its own size in ``far`` frames is the
   same in all three frames but for the edges it moved (slivers, crescents). Where the plain
   candidate learns nothing, the flat region of frame ``t`` (one luma within ``fill_tol``) that
   those edges bound is tried (``fill_grow``, :meth:`SpriteLearner._filled_candidate`): closed, of
   pointer size (at least ``fill_extent`` x ``min_px``), standing out from what lies around it,
   and not a shape the plain path saw whole lately or a known sprite's. One reaching into a known
   webcam is learned only where nothing but the pointer changed the webcam's region and its flat
   sightings cover most of it (:meth:`SpriteLearner._moved_alone`: a 64 px pointer circling one
   spot keeps it as busy as a webcam), the region then being the pointer's haunt (``claimed``).
   The plain path's sprite is not learned where a flat region of ``fill_gain`` times its
   sightings' area holds them (``fill_edges``): they are a moved edge of that region, a sliver
   rigid and moving with it that matches tissue anywhere; the region is tried instead.
   Its sprite keeps a band around it flattened to the band's median (a flat fill's shape is its
   edge against its surroundings), and such sightings are verified only among themselves.
   Heavy compression smears a small pointer while it moves, so that no two of its moving
   sightings agree, and codes it whole once it rests. While no sprite is known, a move that came
   to rest (``settle`` frames in which the learner was shown no motion, and the spot no longer
   changes) is cut again there, against the frames ``near`` and ``far`` before that move
   (:meth:`SpriteLearner._settled`); such sightings are kept in a pool of their own (they never
   push a plain sighting out) and verified against both pools, as the others are.
   A line one or two pixels wide drifting under a pixel a frame (an I-beam, a thin crosshair,
   at a low bit rate) changes from one frame to the next only in pieces, each a motion blob of
   its own (a serif, part of the stem), and the cut in a piece's box runs off it. Where a blob
   gives no candidate (and no flat fill), it is cut again in its box grown by ``piece_grow`` x
   ``min_px``; such sightings are kept and verified in a pool of their own, and a sprite from
   them is taken only where it is drawn in lines and points with its middle
   (:meth:`SpriteLearner._thin_whole`: a piece of an arrow or a hand points with a corner of the
   cut, a blob of a fill is solid).
2. **A candidate sprite** is the largest such region around a motion blob, of pointer
   size (``min_px``..``max_px``, scaled with the frame height), closed and hole-filled:
   its luma pixels and mask.
3. **Verified by motion and rigidity.** A candidate becomes a sprite only when a
   candidate from another frame, at least ``min_shift`` px away, has the same shape
   (masked correlation >= ``agree_score`` at the best small offset, similar area).
   A growing annotation stroke, a webcam and a re-sharpening view are not rigid.
   The distance that counts is the one between the two sightings as aligned, not between
   their boxes: a pointer that dwells (a hand's tremor of a pixel or two) gives sightings cut
   differently (each loses where it overlaps where it was, and keeps pixels the encoder
   changed around it), whose boxes lie ``min_shift`` apart while the shape lies on one spot,
   over the same tissue; what two such sightings share is a piece of the shape with tissue
   (a symmetric shape with one end lost, its hotspot put at the other).
   A see-through pointer shows other tissue through its fill at every sighting, so no two
   of its sightings may match that well: it is also verified where ``agree_many`` earlier
   sightings each match the candidate at ``agree_many_score`` (lower), the sprite being
   the part it shares with the best of them, provided that part spans most of both
   sightings (``extent_keep``; less is a fragment of the shape, seen cut on one side)
   and the sightings have ``agree_many_area`` mask pixels or more (over fewer, a tiny
   compressed pointer's fragments match each other at that score by chance).
   Two sightings lie at different sub-pixel positions: a line one or two pixels wide (a thin
   crosshair, an I-beam) falls on neighbouring pixels in the two, so where the shared part
   is short of both sightings' extent and the shape is drawn in thin lines (``thin_fill``),
   a pixel also agrees with the other sighting's pointer pixel next to it.
   Two sightings of a pointer dwelling in one spot, one of them slow, lose the same edge to
   the median (an arrow's tip), so where they lie less than the sighting's extent apart what
   they share must span ``slow_extent_keep`` (0.9) of both.
   **A piece is completed.** Two sightings of a pointer moving less than its own size between the
   frames compared both lose the part lying over where it just was, and what they share is the
   shape less that part; its sharpest extreme may then be a stub of the cut, not the tip (an
   arrow without its tail points with the end of its left edge). A sprite just learned from the
   plain path that does not point with its middle is checked against the frame cut against the
   median of the view's held frames (``SpriteLearner._completed``): where that cut holds the
   sighting and more, points more than ``complete_px`` from the sprite, and at a spot on the
   learned sprite's box (a tip on pixels neither sighting showed may be the tissue's), and
   where at least ``complete_seen`` (half) of what it adds to the sprite is there, moved with the
   sprite, in the frame of the sighting that verified it (what the cut took in from tissue stays
   where it was), the whole cut becomes the sprite.
   **Where the sightings point.** The sprite is what two sightings' luma agrees on; a thin part drawn
   only in outline (an arrow's tip, a finger) lies between pixels differently at each place, so the
   two disagree there and the sprite may lose it, its sharpest extreme then being another corner or
   the stub of an outline whose fill was lost. Each sighting's own mask keeps it, with errors of its
   own that differ from sighting to sighting. Where the whole cut leaves the sprite as it is, the
   held sightings that match the sprite each decide where they point (``SpriteLearner._voted``); a
   point at least two and half of them agree on, further than ``complete_px`` from the sprite's
   hotspot, becomes the hotspot (kept on the sprite's box).
   **A sprite singles out its place.** A view that pans a pixel a frame while the stability test
   holds it still (a drag) changes every edge of the tissue by a sliver, and two slivers of one
   kind of edge, cut in two frames at two places, agree as a rigid shape would. A sprite just
   learned is therefore matched around where it was seen (``SpriteLearner._singles_out``): where
   ``distinct_places`` other places there match it at ``distinct_score`` or more, it is tissue like
   its surroundings, not a pointer drawn over them, and it is not learned (off by default: see
   ``SpriteConfig.distinct_score``).
4. **Several sprites per video.** A sprite that matches one already known is not added
   again; a new shape (the arrow turning into a hand) is learned when it moves. A known sprite
   that is a small piece of the new one (under ``known_part`` of its mask) does not make it known.

**The hotspot of an unknown shape** (where the pointer points; `narratives.hotspot`) is decided from the
sprite's mask alone: a thin cross (a crosshair, gapped or not, a plus sign) points where
its arms meet; a shape that is symmetric (its mask turned by 180° and mirrored both
ways overlaps itself by ``symmetric_iou`` or more: the four-arrow move cursor, a dot or
ring) points at its centroid; so does a shape covering at most half its box that does so
about a point up to 1 px off its box's middle (a crosshair learned with one arm thicker than
the other, or a corner lost), at that point; so does a line drawing (its thickest stroke at most
half its box's narrow side) whose *outline* the half turn and both mirrors map to within a
pixel of itself (a thin crosshair or I-beam learned from two sub-pixel phases and compression:
a line a pixel off for part of its length, one arm longer), at the mirrors' axes; so does a
shape whose *luma* the half turn and both mirrors map onto itself (a dot or ring learned with a
ragged mask, :func:`_luma_symmetric_centre`), where the sprite's luma is given; any other
shape points with its
sharpest extreme: of the eight compass directions, the one whose outermost
``tip_depth`` of the mask holds the fewest pixels for how far that extreme reaches from
the shape's centroid (the arrow's tip, the pointing finger's tip, the point of a
left-pointing arrow; not the barbs of a wide arrow head), the hotspot being the mean of the
mask pixels at that extreme, moved one outline width (1.5 px per 24 px of size) inward. With
``blunt`` set (the chroma locator's learner, :mod:`.chroma_pointer`), a blunt shape, whose sharpest
extreme counts at least ``blunt`` of the median direction's (a dot, a ring learned filled with a
ragged edge), has no tip and points at its centroid; a large pointing hand is as blunt, so the
luma locator's learner leaves it off.
A sprite learned from a flat region (``fill_grow``) is the pointer's fill: it points with the fill's
own extreme, not one outline width further in.
Desktop pointers point up and to the left, so an extreme pointing right or down must be 2x
sharper (up-right, down-left: 1.5x) to win. A drop shadow lies behind the tip, so it does not
move it.
What this does not decide well: shapes whose declared hotspot is neither a tip nor the
centre (an open hand's palm) get their sharpest corner, and so does an arrow whose barbs are
sharper than its tip, and a symmetric shape learned with one end lost (an I-beam whose shared
part lacks a serif).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from quilt_llava.narratives.hotspot import (
    decide_hotspot,
    line_drawing,
    one_straight_stroke,
    symmetric_centre,
)
from quilt_llava.narratives.sprite_set import TWIN_SCORE
from quilt_llava.narratives.templates import Template, masked_ncc, twin_score
from quilt_llava.narratives.track_motion import differs_from_all

# A band around a sighting that matches the frame before, shifted, at under this share of its mean
# squared difference unshifted moved with the pointer: the view moved (``SpriteLearner._view_moved``),
# where that difference is over ``VIEW_NOISE`` grey levels (RMS; the encoder's noise on still tissue)
VIEW_MOVED = 0.5
VIEW_NOISE = 4.0


@dataclass
class SpriteConfig:
    threshold: int = 24  # grey levels a pointer pixel differs from the tissue it covers, in both frames
    near: int = 2  # the two earlier frames the current one is compared with (frames back)
    far: int = 6
    min_px: int = 10  # sprite extent (px at 720p, scaled with frame height): smaller is noise or a fragment
    max_px: int = 110  # larger is not a pointer (a 64 px HiDPI cursor at 1080p is ~64 px)
    min_area: int = 18  # mask pixels at 720p
    min_shift: float = 6.0  # px two candidates, aligned, must lie apart to show motion
    agree_score: float = 0.8  # masked correlation of two candidates that makes them one rigid sprite
    agree_offset: int = 3  # px of slack when the two candidates are aligned
    # ... or this many earlier sightings that each match it at ``agree_many_score`` (a see-through pointer),
    agree_many: int = 2
    agree_many_score: float = 0.72
    agree_many_area: int = 200  # mask px (not scaled: chance correlation depends on the pixel count) both have
    extent_keep: float = 0.75  # and what they share spans this share of both sightings' height and width
    same_score: float = 0.78  # a learned sprite that matches a known one (or a part of one) this well is not added
    # ... nor one that a known sprite with this share of its mask pixels or more is a part of (a smaller
    # known piece, a sliver learned first, does not stand for the pointer it is a piece of)
    known_part: float = 0.5
    symmetric_iou: float = 0.8  # mask against itself turned 180 degrees and mirrored both ways: all overlap this much
    tip_depth: float = 0.18  # share of the sprite's extent (at least 2 px) that counts as its extreme
    # a shape whose sharpest extreme (weighted pixel count, see ``decide_hotspot``) is at least this
    # share of the median direction's is blunt: no tip, it points at its centroid (classic arrows of
    # 10-36 px: 0.23-0.25; a disc 0.57; a ring learned filled from a chroma plane 0.47). Off (None)
    # for the luma locator: a large pointing hand is as blunt (handhelds' 64 px hand, draw 2: its
    # centroid 41 px from the fingertip); on for the chroma locator's sprites (``chroma_pointer``)
    blunt: float | None = None
    # the sprite two sightings share must itself reach ``min_px`` across, as each sighting must
    # (otherwise a shared piece of half the smaller sighting's pixels is learned whatever its size).
    # Off for the luma locator (its hits are unchanged); on for the chroma locator's sprites: on a
    # plane where a translucent ring stands out well, two sightings of it shared a 6 x 8 px piece of
    # its rim, learned and tracked 15 px off the ring's centre (draw 1's pale-window)
    shared_min_px: bool = False
    inset: float = 1.5  # px per 24 px of sprite size from the extreme pixels inward to the hotspot
    max_sprites: int = 12
    # A shape drawn in thin lines (a crosshair, an I-beam) covers at most this share of its box;
    # only such a shape's sightings are joined across a pixel (see ``common_sprite``); at 0.3 a
    # translucent red crosshair at CRF 36 (redglass-crf36) was joined with tissue and lost.
    thin_fill: float = 0.2
    candidates_kept: int = 12
    # A moving blob whose cut (its box grown by 4 px) gives no pointer-sized candidate is cut again in
    # its box grown by this x ``min_px`` (0: not): the frame-to-frame motion of a line one or two px
    # wide drifting under a pixel a frame falls apart into pieces (an I-beam's serifs and stem at
    # MPEG-4), each a blob of its own, and the cut in a piece's box runs off its edge.
    piece_grow: float = 2.0
    # A pointer that drifts slowly (under a pixel a frame: a laser dot held by hand) differs from
    # the frames ``near`` and ``far`` back only at its edge. Where that gives no candidate, the
    # candidate is cut against the median of frames held every ``slow_stride`` frames (up to
    # ``slow_frames`` of them, ``slow_min`` at least: the spot without the pointer once it has
    # drifted its own size), in the blob's box grown by ``slow_grow`` x ``min_px``.
    # Off by default: with it, a 16 px pointer resting at 480p CRF 33 before its first move was
    # lost (test_pointer.py's tiny-pointer test, view 0: 0.09) and a classic arrow lost its tip
    # in a held-out draw of the independent corpus (docs/BENCHMARKS.md, eleventh pass).
    slow_cut: bool = False
    slow_stride: int = 8
    slow_frames: int = 9
    slow_min: int = 5
    slow_grow: float = 2.0
    slow_extent_keep: float = 0.9  # what a slow sighting shares with one beside it spans this share of both
    # A sprite just learned is checked against the whole pointer (the frame cut against that median,
    # ``SpriteLearner._completed``): where the whole points more than this many px (at 720p) from
    # where the sprite does, the sprite was a piece of it (an end lost to its own overlap) and the
    # whole becomes the sprite.
    complete: bool = True
    complete_px: float = 4.0
    # ... with a median of this many held frames at least (``slow_min`` is the slow cut's): a pointer
    # that changed shape as a new view began is learned within its first ``slow_min`` x
    # ``slow_stride`` frames, from sightings that all lost the part it overlapped (draw 11's red
    # glass crosshair, learned from its top and right arms 31 frames into its view, tracked with
    # the top arm's end 12 px off for 137 frames). Three frames are the fewest whose median drops
    # a pointer that was in one of them.
    complete_min: int = 3
    # ... and only where this share of what the whole adds to the sprite is also there, moved with
    # the sprite, in the frame of the sighting that verified it (``SpriteLearner._seen_at_partner``):
    # the pointer's own pixels move with it, tissue the cut took in does not.
    complete_seen: float = 0.5
    # A sprite just learned from the plain path that the whole cut leaves as it is (``complete``) points
    # where most of the sightings that match it point, each decided on its own mask
    # (``SpriteLearner._voted``): the sprite is what two sightings' luma agrees on, and the edge pixels
    # of a thin tip, whose luma depends on where the pointer lies between pixels, seldom agree.
    tip_votes: bool = True
    # A flat-filled pointer moving less than its own size between the frames compared shows only
    # its moved edges (crescents, slivers): with ``fill_grow``, the candidate is the flat region
    # (within ``fill_tol`` grey levels of one value) those edges bound, where it holds the plain
    # candidate and has ``fill_gain`` times its area (see ``SpriteLearner._filled_candidate``).
    fill_grow: bool = True
    fill_tol: int = 12
    fill_gain: float = 1.5
    fill_known: float = 0.9  # share of a flat region a known sprite's mask holds: it is that sprite
    fill_seen: float = 0.5  # a plain sighting this share of a flat region's area: the plain path learns it
    fill_extent: float = 4.0  # x ``min_px``: the least extent of a flat region learned this way
    fill_band: float = 2.0  # px (at 720p) of what lies around a flat region kept with it, flattened
    # A sprite the plain path verified from sightings that a flat region of ``fill_gain`` times their
    # area holds (the moved edges of that region) is not learned: it is a sliver of a large flat-filled
    # pointer moving less than its size (the trailing edge of draw 12's 64 px handhelds hand, 5 x 12 px,
    # learned and tracked over tissue 60 px off); the flat region is tried instead.
    fill_edges: bool = True
    # A flat sighting reaching into an ignored region (a webcam's busy cells) is learned where nothing
    # but the pointer changed in that region (``SpriteLearner._moved_alone``), and the region is then the
    # pointer's haunt (``SpriteLearner.claimed``); off, it is never learned (a webcam's flat shapes move
    # rigidly too). A 64 px pointer circling over still tissue keeps its spot as busy as a webcam's.
    fill_haunts: bool = True
    # ... where the flat sightings kept cover this share of the region (between the webcam variants'
    # 0.35-0.48 and the independent corpus's circling arrow's 0.60-0.90: a thin margin)
    haunt_cover: float = 0.55
    # A pointer that comes to rest is cut again ``settle`` frames after its last move, where nothing
    # moved since, against the frames ``near`` and ``far`` before that move (``SpriteLearner._settled``):
    # heavy compression smears a small pointer while it moves (no two sightings agree) and codes it
    # whole once it rests. Only while no sprite is known; 0 turns it off.
    settle: int = 6
    # A sprite just learned must single out where it was seen: fewer than ``distinct_places`` other
    # places around the sighting may match it at ``distinct_score`` (``SpriteLearner._singles_out``).
    # A 16 px arrow at 480p CRF 33 has two such lookalikes near it; a 2 px sliver of tissue's edge,
    # eleven (draw 6's he-handhelds, cut where a slow drag moved the whole view). Off from the
    # fifteenth pass's merge to the seventeenth: it refused draw 6's sliver, but the hand learned
    # next then pointed with a corner (0.036); with the hotspot rules of the passes since, that hand
    # points with its finger (0.300), and the test also refuses draw 9's 9 x 8 px piece of an
    # arrow's edge, learned in a still view and tracked on tissue. None turns it off.
    distinct_score: float | None = 0.95
    distinct_places: int = 4
    # The last ``twin_reserve`` of the ``max_sprites`` places are kept for shapes of their own: once
    # ``max_sprites - twin_reserve`` sprites are learned, a shape learned again (a twin: ``twin_score``
    # at ``TWIN_SCORE`` or more with a learned sprite; a see-through pointer over other tissue) is
    # not learned. A red glass crosshair circling over H&E took all 12 places with its variants, and
    # the arrow shown next was never learned (draw 10's he-overlay-cross); a limit on twins in every
    # video cost the 64 px handhelds arrow its third variant (draw 8's he-handhelds 0.657 -> 0.529).
    # None: no reserve.
    twin_reserve: int | None = 4
    # A sprite that is one straight stroke (``one_straight_stroke``) and, where it was seen, matches as well
    # half its length further along (``SpriteLearner._piece_of_a_line``) is not learned: a piece of a
    # longer line (a 14 x 3 px piece of a drawn cross's arm, draw 13's he-overlay-cross, tracked 12-19
    # px off as it matched either arm) has no place of its own along that line.
    one_stroke: bool = True
    # ... nor one whose sighting the view around moved with (``SpriteLearner._view_moved``): tissue
    # in the first frames of a drag the stability test has not yet called moving.
    still_view: bool = True


@dataclass
class Candidate:
    index: int
    x: int  # top-left, video px
    y: int
    image: np.ndarray  # (h, w) uint8 luma
    mask: np.ndarray  # (h, w) uint8 0/255
    slow: bool = False  # cut against the median of the sparse held frames (``SpriteLearner._slow_candidate``)
    band: int = 0  # px of flattened surroundings kept around a flat region (``SpriteLearner._filled_candidate``)
    # (x0, y0, luma) of the frame around it, for ``SpriteLearner._seen_at_partner`` (plain sightings only)
    around: tuple[int, int, np.ndarray] | None = None


def template_from_sprite(image: np.ndarray, mask: np.ndarray, hotspot: tuple[int, int]) -> Template:
    """A :class:`Template` from a learned sprite: its luma and mask as seen in the video; its darker
    and lighter halves stand for the fill and outline of the contrast check."""
    import cv2

    h, w = image.shape
    inside = mask > 0
    lo, hi = np.percentile(image[inside], (10, 90))
    level = (float(lo) + float(hi)) / 2  # between its dark and light parts, however many of each
    fill = ((image <= level) & inside).astype(np.uint8) * 255
    ring = ((image > level) & inside).astype(np.uint8) * 255
    if not ring.any() or not fill.any():  # a flat sprite: no contrast of its own to ask for
        fill = inside.astype(np.uint8) * 255
        ring = fill
    mean = round(float(image[inside].mean()))
    flat = np.where(inside, image, mean).astype(np.uint8)
    half = cv2.resize(flat, (max(2, w // 2), max(2, h // 2)), interpolation=cv2.INTER_AREA)
    # A match must show at least half the contrast the sprite showed when it was learned.
    own = abs(float(image[fill > 0].mean()) - float(image[ring > 0].mean()))
    return Template(
        image.copy(),
        (inside * 255).astype(np.uint8),
        hotspot,
        half,
        flat,
        fill,
        ring,
        learned=True,
        min_contrast=max(8.0, 0.5 * own),
    )


def _align(a: Candidate, b: Candidate, slack: int, a_template: Template | None = None) -> tuple[float, int, int]:
    """Best masked correlation of ``a``'s sprite over ``b``'s patch, with ``a``'s top-left
    within ``slack`` px of ``b``'s (grown for a size difference): (score, dx, dy), where
    ``a``'s pixel (x, y) lies on ``b``'s pixel (x + dx, y + dy). ``a_template``: ``a``'s
    :func:`template_from_sprite`, when the caller aligns ``a`` with several others."""
    h, w = a.image.shape
    pad = slack + max(0, h - b.image.shape[0], w - b.image.shape[1])
    padded = np.pad(b.image, pad, mode="edge")
    t = a_template if a_template is not None else template_from_sprite(a.image, a.mask, (0, 0))
    res = np.abs(masked_ncc(padded, t))
    if res.size == 0:
        return 0.0, 0, 0
    y, x = np.unravel_index(int(np.argmax(res)), res.shape)
    return float(res[y, x]), int(x) - pad, int(y) - pad


def common_sprite(
    a: Candidate, b: Candidate, dx: int, dy: int, tolerance: int = 24, beside: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """The rigid part two sightings share, on ``a``'s grid: pixels in both masks whose luma agrees
    within ``tolerance`` (tissue caught in one mask, or a translucent shadow over other tissue,
    differs between the two), their largest connected piece. Returns (image, mask) cropped to
    the mask, or None if empty.

    ``beside``: a pixel of ``a``'s mask also agrees with a pixel of ``b``'s mask one pixel away
    (its 8 neighbours), and the pieces within 3 px of the largest are kept with it. Two sightings
    lie at different sub-pixel positions, so a line one or two pixels wide (a thin crosshair's
    arm, an I-beam's stem) falls on neighbouring pixels in the two, and asking for the same
    pixel breaks such a shape into pieces (a crosshair learned as three arms, its hotspot put at
    an arm's end). The caller asks for this only where the strict rule keeps a fragment: it
    also lets a pixel of tissue beside the pointer pass, which costs a tiny pointer's sprite."""
    import cv2

    h, w = a.image.shape
    bh, bw = b.image.shape
    ys, xs = np.mgrid[0:h, 0:w]
    a_img = a.image.astype(int)
    agree = np.zeros((h, w), bool)
    shifts = [(0, 0)] + ([(sx, sy) for sy in (-1, 0, 1) for sx in (-1, 0, 1) if sx or sy] if beside else [])
    off_b = np.ones((h, w), bool)  # where b's mask does not cover a's pixel itself
    for sx, sy in shifts:
        bx, by = xs + dx + sx, ys + dy + sy
        inside = (bx >= 0) & (by >= 0) & (bx < bw) & (by < bh)
        bxc, byc = np.clip(bx, 0, bw - 1), np.clip(by, 0, bh - 1)
        b_img, b_mask = b.image[byc, bxc], b.mask[byc, bxc]
        here = inside & (b_mask > 0)
        if sx == 0 and sy == 0:
            off_b = ~here
            agree |= here & (np.abs(a_img - b_img.astype(int)) <= tolerance)
        else:
            # only where b's line lies beside this pixel, not on it
            agree |= off_b & here & (np.abs(a_img - b_img.astype(int)) <= tolerance)
    agree &= a.mask > 0
    if not agree.any():
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(agree.astype(np.uint8), connectivity=8)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    keep = labels == k
    if beside:
        kx, ky, kw, kh, _ = stats[k]
        grow = 3
        for j in range(1, n):
            jx, jy, jw, jh, _ = stats[j]
            if jx <= kx + kw + grow and kx <= jx + jw + grow and jy <= ky + kh + grow and ky <= jy + jh + grow:
                keep |= labels == j
    mask = _fill_holes((keep * 255).astype(np.uint8))
    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return a.image[y0:y1, x0:x1].copy(), mask[y0:y1, x0:x1]


class SpriteLearner:
    """Watches a video's still frames and learns its pointer sprites (see the module docstring).

    ``observe(frame)`` returns the templates verified on this frame (usually none)."""

    def __init__(self, frame_height: int, config: SpriteConfig | None = None) -> None:
        self.config = config or SpriteConfig()
        unit = max(0.5, frame_height / 720)
        self.unit = unit
        # the sighting that verified the last sprite (``_verify``), aligned: (it, dx, dy)
        self._partner: tuple[Candidate, int, int] | None = None
        self.min_px = max(4, round(self.config.min_px * unit))
        self.max_px = round(self.config.max_px * unit)
        self.min_area = max(8, round(self.config.min_area * unit * unit))
        # (references, not copies; ``settle`` more for the frames before a move that came to rest)
        self.frames: deque[tuple[int, np.ndarray]] = deque(maxlen=self.config.far + 1 + self.config.settle)
        # the last frame whose moving blobs the learner was shown, and those blobs, while every
        # frame after it was seen to be quiet (``SpriteLearner._settled``)
        self.last_move: tuple[int, list[tuple[int, int, int, int]]] | None = None
        # every ``slow_stride``-th frame of the view (references, not copies), for a slow pointer
        self.slow: deque[np.ndarray] = deque(maxlen=self.config.slow_frames)
        self.candidates: deque[Candidate] = deque(maxlen=self.config.candidates_kept)
        # sightings of flat fills (``_filled_candidate``), verified among themselves
        self.filled: deque[Candidate] = deque(maxlen=self.config.candidates_kept)
        # sightings cut around a blob that gave none (``piece_grow``), verified among themselves
        self.pieces: deque[Candidate] = deque(maxlen=self.config.candidates_kept)
        # sightings cut where a move came to rest (``_settled``): verified against these and the
        # plain ones, kept apart so that they never push a plain sighting out of its pool
        self.settled: deque[Candidate] = deque(maxlen=self.config.candidates_kept)
        self.learned: list[Template] = []
        # the centres (full resolution) of the flat sightings learned in this frame that reach into an
        # ignored region whose change was the pointer's alone (``_moved_alone``): that region is its haunt
        self.claimed: list[tuple[float, float]] = []
        # (frame index, luma, box) where the sprite learned last was seen, in frames still held
        self.sightings: list[tuple[int, np.ndarray, tuple[int, int, int, int]]] = []

    def new_view(self) -> None:
        self.frames.clear()
        self.slow.clear()
        self.last_move = None

    def _held(self) -> dict[int, np.ndarray]:
        """The frames whose sightings are handed on with a sprite just learned (``sightings``): the
        last ``far`` + 1 (the older ones held for ``_settled`` are not)."""
        return dict(list(self.frames)[-(self.config.far + 1) :])

    def _pointer_sized(self, area: int, width: int, height: int) -> bool:
        """Whether a candidate of ``area`` px in a ``width`` x ``height`` box could be a pointer."""
        return area >= self.min_area and self.min_px <= max(width, height) <= self.max_px

    def observe(
        self,
        index: int,
        luma: np.ndarray,
        blobs: list[tuple[int, int, int, int]] | None,
        ignore: np.ndarray | None = None,
        scale: int = 1,
    ) -> list[Template]:
        """``blobs``: full-resolution boxes (x0, y0, x1, y1) where this frame changed from the last
        (None: not looked at); ``ignore``: where a webcam is (True, at 1 / ``scale`` of the frame), if known."""
        cfg = self.config
        self.claimed = []
        self.frames.append((index, luma))
        if index % cfg.slow_stride == 0:
            self.slow.append(luma)
        if blobs is None:
            self.last_move = None  # whether anything moved is not known: no rest can be told
            return []
        if not blobs:
            return self._settled(index, luma)
        self.last_move = (index, blobs[:2])
        if len(self.learned) >= cfg.max_sprites:
            return []
        older = {i: f for i, f in self.frames}
        near, far = older.get(index - cfg.near), older.get(index - cfg.far)
        if near is None or far is None:
            return []
        added = []
        for box in blobs[:2]:
            cand = self._candidate(index, luma, [near, far], box)
            if cand is None and cfg.slow_cut and not self.learned:
                # (only while no shape is known: a pointer seen moving has its sprite from motion,
                # and a slow cut of it dwelling can only add a worse one)
                cand = self._slow_candidate(index, luma, box)
            if cand is not None and not cand.slow and cfg.complete:
                cand.around = self._around(luma, cand)
            template = None
            if cand is not None:
                # (against the sightings cut at rests too, while there are any: see ``_settled``)
                template = self._verify(cand, deque([*self.candidates, *self.settled]) if self.settled else None)
                self.candidates.append(cand)
            pool = self.candidates
            whole: Candidate | None = None
            looked = False  # whether ``whole`` was looked for in this frame
            if template is not None and cand is not None and cfg.fill_grow and cfg.fill_edges:
                # Learned from the pixels that moved: are they only a moved edge of a flat fill
                # (a sliver of a large pointer, rigid and moving, but a piece that matches tissue)?
                whole, looked = self._filled_candidate(index, luma, [near, far], box), True
                if whole is not None and _holds(whole, cand, cfg.fill_gain):
                    template = None  # the fill is tried instead, as where nothing was learned
            if template is None and cfg.fill_grow:
                # Not learned from the pixels that moved: are they the moved edges of a flat fill?
                # Its sightings are kept and verified apart, so the plain ones stay as they were.
                if not looked:
                    whole = self._filled_candidate(index, luma, [near, far], box)
                if (
                    whole is not None
                    and (cand is None or _holds(whole, cand, cfg.fill_gain))
                    and not self._known_whole(whole)
                    and (cfg.fill_haunts or not _touches(whole, ignore, scale))
                    and not self._seen_whole(whole)
                ):
                    template = self._verify(whole, self.filled)
                    self.filled.append(whole)
                    pool = self.filled
                    if template is not None and _touches(whole, ignore, scale):
                        # Reaching into an ignored region (a webcam's busy cells): learned only where
                        # nothing but the pointer changed there (``_moved_alone``), the region then
                        # being the pointer's haunt (``claimed``).
                        if self._moved_alone(whole, luma, ignore, scale):
                            self.claimed.append((whole.x + whole.mask.shape[1] / 2, whole.y + whole.mask.shape[0] / 2))
                        else:
                            template = None
            if template is None and cand is None and cfg.piece_grow:
                # The blob may be a piece of a thin pointer (``piece_grow``): cut again around it.
                # Such sightings are kept and verified apart, so the plain ones stay as they were.
                whole = self._candidate(index, luma, [near, far], box, margin=round(cfg.piece_grow * self.min_px))
                if whole is not None and not _touches(whole, ignore, scale):
                    template = self._verify(whole, self.pieces)
                    self.pieces.append(whole)
                    pool = self.pieces
                    if template is not None and not self._thin_whole(template):
                        template = None
            if template is not None:
                if pool is self.candidates and cand is not None and not cand.slow and cfg.complete:
                    completed = self._completed(template, cand, luma)
                    if completed is template and cfg.tip_votes:
                        completed = self._voted(template)
                    template = completed
                seen = cand if pool is self.candidates else whole
                if seen is not None and not self._singles_out(template, luma, seen):
                    continue
                if cfg.one_stroke and seen is not None and self._piece_of_a_line(template, luma, seen):
                    continue  # no place of its own along the line it is a piece of
                flat = whole if pool is self.filled else None
                if cfg.still_view and flat is not None and self._view_moved(luma, near, flat, box):
                    continue  # the view began to move: the flat region its edges bound is tissue
                if self._twinned(template):
                    continue
                self._learn(template, pool, index)
                added.append(template)
                break
        return added

    def _learn(self, template: Template, pool: Iterable[Candidate], index: int) -> None:
        """Take ``template`` as a learned sprite; where it was seen moving in the frames still held
        (before the locator knew it: the sightings of ``pool`` other than frame ``index``'s) is
        handed on as ``sightings``, and the pools of sightings start again."""
        self.learned.append(template)
        held = self._held()
        self.sightings = [
            (c.index, held[c.index], (c.x, c.y, c.x + c.image.shape[1], c.y + c.image.shape[0]))
            for c in pool
            if c.index in held and c.index != index
        ]
        self.candidates.clear()
        self.filled.clear()
        self.pieces.clear()
        self.settled.clear()

    def _thin_whole(self, template: Template) -> bool:
        """May a sprite learned from sightings cut around a piece of motion (``piece_grow``) be taken?
        Only a line drawing (``line_drawing``) that points with its middle (``symmetric_centre``: an
        I-beam, a thin crosshair) and reaches ``min_px`` both ways: a piece of an arrow or a hand
        points with a corner of the cut, a blob of a hand's fill is symmetric but solid, and a
        straight sliver of an edge is symmetric but no wider than a line."""
        ys, xs = np.nonzero(template.mask)
        if xs.size == 0:
            return False
        box = template.mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] > 0
        if min(box.shape) < self.min_px or not line_drawing(box):
            return False
        return symmetric_centre(template.mask, self.config.symmetric_iou, template.image) is not None

    def _settled(self, index: int, luma: np.ndarray) -> list[Template]:
        """A quiet frame: where the last move came to rest ``settle`` frames ago (nothing moved
        since), the pointer is cut there again, now that the encoder has coded it at rest: the
        pixels of this frame in that move's blobs that differ from both frames compared then
        (``near`` and ``far`` before it, when the pointer was elsewhere). Such a sighting joins
        the others and is verified as they are (the same shape at another place)."""
        cfg = self.config
        if self.last_move is None or cfg.settle <= 0 or self.learned:
            return []
        moved, boxes = self.last_move
        if index - moved < cfg.settle:
            return []
        self.last_move = None
        older = dict(self.frames)
        near, far = older.get(moved - cfg.near), older.get(moved - cfg.far)
        recent = older.get(index - cfg.near)
        if near is None or far is None or recent is None:
            return []
        # A blob of what moved last is a part of the pointer (the half-resolution motion of a small
        # one): the region cut is grown as for a slow candidate (``slow_grow`` x ``min_px``).
        grow = round(cfg.slow_grow * self.min_px)
        cut: set[tuple[int, int, tuple[int, ...]]] = set()
        for box in boxes:
            cand = self._candidate(index, luma, [near, far], box, margin=grow)
            if cand is None or (cand.x, cand.y, cand.mask.shape) in cut:
                continue  # (two blobs of one pointer give the same cut)
            h, w = cand.mask.shape
            since = np.abs(cand.image.astype(int) - recent[cand.y : cand.y + h, cand.x : cand.x + w].astype(int))
            if np.count_nonzero((since > cfg.threshold) & (cand.mask > 0)) >= self.min_area:
                continue  # it still changes (a pointer drifting slower than the motion shows): not at rest
            cut.add((cand.x, cand.y, cand.mask.shape))
            pool = deque([*self.candidates, *self.settled])
            template = self._verify(cand, pool)
            self.settled.append(cand)
            if template is not None and self._singles_out(template, luma, cand):
                self._learn(template, pool, index)
                return [template]
        return []

    def _piece_of_a_line(self, template: Template, luma: np.ndarray, seen: Candidate) -> bool:
        """Is ``template`` one straight stroke (``one_straight_stroke``) that, in the frame where it was
        ``seen``, matches at ``agree_score`` half its length along the stroke from its best match
        (either way, a pixel of slack across)? Then it is a piece of a longer line (an arm of a drawn
        cross), with no place of its own along it; a whole stroke (an I-beam's stem that lost its
        serifs) ends where it ends, and half its length on lies tissue."""
        if not one_straight_stroke(template.mask):
            return False
        th, tw = template.image.shape
        along_x = tw >= th
        half = (tw if along_x else th) // 2
        h, w = seen.mask.shape
        H, W = luma.shape
        gx, gy = (half + 1, 2) if along_x else (2, half + 1)
        x0, y0 = max(0, seen.x - gx), max(0, seen.y - gy)
        x1, y1 = min(W, seen.x + max(w, tw) + gx), min(H, seen.y + max(h, th) + gy)
        if x1 - x0 < tw or y1 - y0 < th:
            return False
        res, (px, py) = _match_map(luma[y0:y1, x0:x1], template)
        for step in (-half, half):
            qx, qy = (px + step, py) if along_x else (px, py + step)
            a0, b0 = max(0, qx - 1), max(0, qy - 1)
            near = res[b0 : qy + 2, a0 : qx + 2]
            if near.size and float(near.max()) >= self.config.agree_score:
                return True
        return False

    def _view_moved(self, luma: np.ndarray, near: np.ndarray, seen: Candidate, blob: tuple[int, int, int, int]) -> bool:
        """Did the view around the sighting ``seen`` (its box grown by ``max_px``) move since the
        frame ``near`` before? A pointer moves over a still view; where the view itself began to
        move (a drag or pan the stability test has not yet called moving) every piece of tissue
        moves with it, and a dark nucleus is then seen moving rigidly like a flat pointer (draw 13's
        he-overlay-cross: a 58 x 36 px nucleus learned in the first frames of a drag, found again
        by the search in the next view and held there as a resting pointer for 138 frames). What
        lies around, the sighting and the moving ``blob`` (where the pointer was) left out with
        ``min_px`` more, matches the earlier frame shifted (up to ``min_px`` either way) at under
        ``VIEW_MOVED`` of its difference unshifted, and that difference is more than the encoder's
        noise (on a flat screen, a pointer drifting a pixel a frame is all that changed)."""
        import cv2

        g, m = self.min_px, self.max_px
        h, w = seen.mask.shape
        H, W = luma.shape
        x0, y0 = max(g, seen.x - m), max(g, seen.y - m)
        x1, y1 = min(W - g, seen.x + w + m), min(H - g, seen.y + h + m)
        if x1 - x0 < m or y1 - y0 < m:
            return False
        around = np.ones((y1 - y0, x1 - x0), np.float32)
        for bx0, by0, bx1, by1 in ((seen.x, seen.y, seen.x + w, seen.y + h), blob):
            around[max(0, by0 - g - y0) : max(0, by1 + g - y0), max(0, bx0 - g - x0) : max(0, bx1 + g - x0)] = 0.0
        n = float(around.sum())
        if n < 0.25 * around.size:
            return False
        now = luma[y0:y1, x0:x1].astype(np.float32)
        before = near[y0 - g : y1 + g, x0 - g : x1 + g].astype(np.float32)
        res = cv2.matchTemplate(before, now, cv2.TM_SQDIFF, mask=around)  # (2g + 1, 2g + 1)
        still = float(res[g, g]) / n  # mean squared difference where nothing moved
        if still <= VIEW_NOISE**2:
            return False
        return float(res.min()) / n < VIEW_MOVED * still

    def _twinned(self, template: Template) -> bool:
        """Is ``template`` a twin of a learned sprite (``TWIN_SCORE``) while only the places kept for
        shapes of their own are left (``twin_reserve``)?"""
        reserve = self.config.twin_reserve
        if reserve is None or len(self.learned) < self.config.max_sprites - reserve:
            return False
        return any(twin_score(t, template)[0] >= TWIN_SCORE for t in self.learned)

    def _singles_out(self, template: Template, luma: np.ndarray, seen: Candidate) -> bool:
        """Does the sprite just learned single out the place where it was seen in this frame? Around
        the sighting (grown by ``max_px``), away from the sprite's best match (its own place), fewer
        than ``distinct_places`` separate places may match it at ``distinct_score``: a pointer is
        drawn over tissue unlike it (a tiny one may have a lookalike or two), while a piece of the
        tissue cut where the view shifted a little (an edge a pixel or two wide seen in two places)
        matches every like edge near it as well as where it was cut."""
        import cv2

        limit = self.config.distinct_score
        if limit is None:
            return True
        th, tw = template.image.shape
        h, w = seen.mask.shape
        H, W = luma.shape
        g = self.max_px
        x0, y0 = max(0, seen.x - g), max(0, seen.y - g)
        x1, y1 = min(W, seen.x + w + g), min(H, seen.y + h + g)
        if x1 - x0 < tw or y1 - y0 < th:
            return True
        res, (px, py) = _match_map(luma[y0:y1, x0:x1], template)
        res[max(0, py - th) : py + th + 1, max(0, px - tw) : px + tw + 1] = 0.0
        places = cv2.connectedComponents((res >= limit).astype(np.uint8), connectivity=8)[0] - 1
        return places < self.config.distinct_places

    def _slow_candidate(
        self,
        index: int,
        luma: np.ndarray,
        box: tuple[int, int, int, int],
        left_behind: bool = True,
        least: int | None = None,
    ) -> Candidate | None:
        """A candidate cut against the median of the view's sparse held frames (see ``slow_stride``),
        in the blob's box grown by ``slow_grow`` x ``min_px``: a pointer drifting slowly shows only
        its edge as motion, and is absent from most held frames at the spot where it is now.
        ``left_behind``: kept only where the pointer moved its own size since the oldest of them
        (``_left_behind``; :meth:`_completed` checks the cut against a verified sighting instead).
        ``least``: the fewest held frames the median needs (``slow_min`` if None)."""
        if len(self.slow) < (self.config.slow_min if least is None else least):
            return None
        g = round(self.config.slow_grow * self.min_px)
        H, W = luma.shape
        x0, y0, x1, y1 = max(0, box[0] - g), max(0, box[1] - g), min(W, box[2] + g), min(H, box[3] + g)
        median = np.median(np.stack([f[y0:y1, x0:x1] for f in self.slow]), axis=0).astype(np.uint8)
        cand = self._candidate(index, luma, [median], (x0, y0, x1, y1), margin=0, origin=(x0, y0))
        if cand is None or (left_behind and not self._left_behind(cand, self.slow[0][y0:y1, x0:x1], (x0, y0))):
            return None
        cand.slow = True
        return cand

    def _completed(self, template: Template, cand: Candidate, luma: np.ndarray) -> Template:
        """The sprite just learned, or the whole pointer it is a piece of, where the two disagree on
        where the pointer points.

        Two sightings of a pointer moving less than its own size between the frames compared both
        lose the part that overlaps where it just was (for a pointer moving down, the end above),
        and what they share is the shape without that end: its sharpest extreme is then a corner
        of the cut, not the tip (an arrow learned without its tail points with the stub of its
        left edge). Frame ``t`` cut against the median of the view's sparse held frames (the spot
        without the pointer, where it has moved about: ``_slow_candidate``, which checks that it
        moved its own size) shows the whole pointer. Where that cut holds the sighting
        (``_holds``) and is larger, its hotspot is decided; if it lies more than ``complete_px``
        (scaled) from the learned one's, the whole cut is the sprite. Where the two agree, the
        verified sprite stays as it is."""
        cfg = self.config
        if symmetric_centre(template.mask, cfg.symmetric_iou, template.image) is not None:
            # It points with its middle: a piece cut on one side is no longer symmetric (the whole
            # cut, with whatever else changed beside it, may be less so).
            return template
        h, w = cand.mask.shape
        box = (cand.x, cand.y, cand.x + w, cand.y + h)
        whole = self._slow_candidate(cand.index, luma, box, left_behind=False, least=cfg.complete_min)
        if whole is None or not _holds(whole, cand, 1.0 + 1e-6):
            return template
        import cv2

        whole.mask = _largest_piece(whole.mask)
        hx, hy = decide_hotspot(whole.mask, cfg.symmetric_iou, cfg.tip_depth, cfg.inset, cfg.blunt, whole.image)

        # where the learned sprite (a crop of the sighting, ``common_sprite``) lies in the frame
        _, _, (ox, oy), _ = cv2.minMaxLoc(cv2.matchTemplate(cand.image, template.image, cv2.TM_SQDIFF))
        sx, sy = cand.x + ox, cand.y + oy
        tip_x, tip_y = sx + template.hotspot[0], sy + template.hotspot[1]
        wx, wy = whole.x + hx, whole.y + hy
        if math.hypot(wx - tip_x, wy - tip_y) <= cfg.complete_px * self.unit:
            return template
        th, tw = template.image.shape
        if not (sx - 1 <= wx <= sx + tw and sy - 1 <= wy <= sy + th):
            # The whole points at pixels neither sighting showed as the pointer's: what the cut
            # adds there may be the tissue's or the encoder's (a speck, a glass edge); only a tip
            # among the pixels both sightings agree on is taken from it.
            return template
        if not self._seen_at_partner(whole, template, cand, sx, sy):
            return template
        return template_from_sprite(whole.image, whole.mask, (hx, hy))

    def _voted(self, template: Template) -> Template:
        """The sprite just learned, pointing where most of its sightings point.

        The sprite is the part of two sightings whose luma agrees (``common_sprite``). A pointer's
        outline is drawn between pixels differently at every place, so where the shape is only
        outline (a thin tip, a finger) the two often disagree and the sprite loses it; its sharpest
        extreme is then another corner, or the stub of an outline whose fill was lost (an arrow
        pointing with its lower left corner). Each sighting's own mask (the pixels that differ from
        the frames before) keeps the tip, but with errors of its own (tissue the encoder re-coded
        beside it, the part over where it just was): those differ from sighting to sighting, while
        the tip lies at one place on a rigid pointer in every one. So the sightings held that match
        the sprite (``agree_score``, aligned as in ``_verify``) each decide where they point, mapped
        onto the sprite; where at least two, and half of them or more, agree within ``complete_px``
        (scaled) on a point that lies further than that from the sprite's hotspot, the sprite's
        hotspot moves there (kept on the sprite's box, as ``decide_hotspot`` keeps it). A sprite
        that points with its middle is left as it is (a piece of it is no longer symmetric)."""
        cfg = self.config
        if symmetric_centre(template.mask, cfg.symmetric_iou, template.image) is not None:
            return template
        sprite = Candidate(-1, 0, 0, template.image, template.mask)
        own = template_from_sprite(template.image, template.mask, (0, 0))
        votes = []
        for other in [*self.candidates, *self.settled]:
            score, dx, dy = _align(sprite, other, cfg.agree_offset, own)
            if score < cfg.agree_score:
                continue
            mask = _largest_piece(other.mask)
            if other.band:
                inner = _inner(mask, other.band)
                mask = inner if np.count_nonzero(inner) >= self.min_area else mask
            hx, hy = decide_hotspot(mask, cfg.symmetric_iou, cfg.tip_depth, cfg.inset, cfg.blunt, other.image)
            votes.append((hx - dx, hy - dy))  # the sighting's pixel (x + dx, y + dy) is the sprite's (x, y)
        if len(votes) < 2:
            return template
        near = cfg.complete_px * self.unit
        points = np.array(votes, float)
        close = np.hypot(points[:, None, 0] - points[None, :, 0], points[:, None, 1] - points[None, :, 1]) <= near
        best = int(np.argmax(close.sum(axis=1)))
        agreeing = close[best]
        if agreeing.sum() < 2 or 2 * agreeing.sum() < len(votes):
            return template
        x, y = points[agreeing].mean(axis=0)
        if math.hypot(x - template.hotspot[0], y - template.hotspot[1]) <= near:
            return template
        h, w = template.mask.shape
        return template_from_sprite(
            template.image, template.mask, (round(min(max(x, 0), w - 1)), round(min(max(y, 0), h - 1)))
        )

    def _around(self, luma: np.ndarray, cand: Candidate) -> tuple[int, int, np.ndarray]:
        """The frame around a sighting, as far as :meth:`_completed`'s cut reaches (``slow_grow`` x
        ``min_px``) and 4 px more (two sightings of one sprite differ that much in size)."""
        g = round(self.config.slow_grow * self.min_px) + 4
        h, w = cand.mask.shape
        H, W = luma.shape
        x0, y0 = max(0, cand.x - g), max(0, cand.y - g)
        return x0, y0, luma[y0 : min(H, cand.y + h + g), x0 : min(W, cand.x + w + g)].copy()

    def _seen_at_partner(self, whole: Candidate, template: Template, cand: Candidate, sx: int, sy: int) -> bool:
        """Is what the whole cut adds to the learned sprite (at ``sx``, ``sy`` in its frame) also
        there in the frame of the sighting that verified the sprite, moved with it? A part of the
        pointer moves with the pointer; tissue or a speck of the encoder the cut took in beside it
        stays where it was, so at the sprite's other place the frame shows other pixels there."""
        if self._partner is None:
            return False
        other, dx, dy = self._partner
        if other.around is None:
            return False
        ax, ay, frame = other.around
        h, w = whole.mask.shape
        # cand's pixel (x, y) lies on other's (x + dx, y + dy): the pointer moved by (ux, uy)
        ux, uy = other.x + dx - cand.x, other.y + dy - cand.y
        x0, y0 = whole.x + ux - ax, whole.y + uy - ay
        H, W = frame.shape
        if x0 < 0 or y0 < 0 or x0 + w > W or y0 + h > H:
            return False
        added = whole.mask > 0
        th, tw = template.mask.shape
        ox, oy = sx - whole.x, sy - whole.y
        a0, b0 = max(0, ox), max(0, oy)
        a1, b1 = min(w, ox + tw), min(h, oy + th)
        if a1 > a0 and b1 > b0:
            added[b0:b1, a0:a1] &= template.mask[b0 - oy : b1 - oy, a0 - ox : a1 - ox] == 0
        n = int(np.count_nonzero(added))
        if n == 0:
            return True
        diff = np.abs(frame[y0 : y0 + h, x0 : x0 + w].astype(np.int16) - whole.image.astype(np.int16))
        share = float(np.count_nonzero(diff[added] <= self.config.threshold)) / n
        return share >= self.config.complete_seen

    def _left_behind(self, cand: Candidate, oldest: np.ndarray, origin: tuple[int, int]) -> bool:
        """Did the pointer cut against the median drift at least its own size since the oldest held
        frame? Where it moved less, the median holds part of it and the cut is a piece (an arrow's
        outline without its tip): the cut, matched in that frame (``agree_many_score``), lies
        less than its extent from where it is now."""
        h, w = cand.mask.shape
        pad = max(h, w)  # (a pointer then partly outside the box is matched on its edge pixels)
        res = np.abs(masked_ncc(np.pad(oldest, pad, mode="edge"), template_from_sprite(cand.image, cand.mask, (0, 0))))
        if res.size == 0:
            return True
        y, x = np.unravel_index(int(np.argmax(res)), res.shape)
        if res[y, x] < self.config.agree_many_score:
            return True  # not there: it came from outside the box
        return math.hypot(x - pad - (cand.x - origin[0]), y - pad - (cand.y - origin[1])) >= pad

    def _candidate(
        self,
        index: int,
        luma: np.ndarray,
        earlier: list[np.ndarray],
        box: tuple[int, int, int, int],
        margin: int = 4,
        origin: tuple[int, int] = (0, 0),
    ) -> Candidate | None:
        """The pointer-sized region around ``box`` (grown by ``margin``) where ``luma`` differs from
        every one of ``earlier`` (full frames, or crops whose top-left lies at ``origin``)."""
        import cv2

        H, W = luma.shape
        m = margin
        x0, y0, x1, y1 = max(0, box[0] - m), max(0, box[1] - m), min(W, box[2] + m), min(H, box[3] + m)
        if x1 - x0 < self.min_px or y1 - y0 < self.min_px or (x1 - x0) * (y1 - y0) > 16 * self.max_px * self.max_px:
            return None
        now = luma[y0:y1, x0:x1]
        t = self.config.threshold
        ox, oy = origin
        changed = differs_from_all(now, [e[y0 - oy : y1 - oy, x0 - ox : x1 - ox] for e in earlier], t)
        changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
        if n < 2:
            return None
        # The biggest piece, with the pieces close to it (an outline broken where it matches the tissue).
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        bx, by, bw, bh, _ = stats[k]
        grow = 3
        keep = np.zeros_like(changed)
        for j in range(1, n):
            jx, jy, jw, jh, _ = stats[j]
            if jx <= bx + bw + grow and bx <= jx + jw + grow and jy <= by + bh + grow and by <= jy + jh + grow:
                keep[labels == j] = 255
        ys, xs = np.nonzero(keep)
        sx0, sx1, sy0, sy1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        if not self._pointer_sized(len(xs), sx1 - sx0, sy1 - sy0):
            return None
        if sx0 == 0 or sy0 == 0 or sx1 == x1 - x0 or sy1 == y1 - y0:
            return None  # runs off the changed area: not the whole of something
        mask = _fill_holes(keep[sy0:sy1, sx0:sx1])
        return Candidate(index, x0 + sx0, y0 + sy0, now[sy0:sy1, sx0:sx1].copy(), mask)

    def _filled_candidate(
        self, index: int, luma: np.ndarray, earlier: list[np.ndarray], box: tuple[int, int, int, int]
    ) -> Candidate | None:
        """The whole of a flat-filled pointer whose motion shows only its edges (see
        ``SpriteConfig.fill_grow``): the pieces of ``luma`` around ``box`` that differ from every
        one of ``earlier`` (as in :meth:`_candidate`) are the edges it moved; the pointer is the
        flat region of ``luma`` (within ``fill_tol`` of one value) that touches the most of them,
        with them, searched in ``box`` grown by ``max_px``. None where no such region is of pointer
        size and closed (it runs to the searched box's edge: tissue or a flat background)."""
        import cv2

        cfg = self.config
        H, W = luma.shape
        m = 4
        bx0, by0, bx1, by1 = max(0, box[0] - m), max(0, box[1] - m), min(W, box[2] + m), min(H, box[3] + m)
        if bx1 - bx0 < self.min_px or by1 - by0 < self.min_px or (bx1 - bx0) * (by1 - by0) > 16 * self.max_px**2:
            return None
        g = self.max_px
        x0, y0, x1, y1 = max(0, bx0 - g), max(0, by0 - g), min(W, bx1 + g), min(H, by1 + g)
        now = luma[y0:y1, x0:x1]
        changed = differs_from_all(now, [e[y0:y1, x0:x1] for e in earlier], cfg.threshold)
        changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        seeds = np.zeros_like(changed)
        seeds[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0] = changed[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0]
        if np.count_nonzero(seeds) < self.min_area:
            return None
        near_seeds = cv2.dilate(seeds, np.ones((5, 5), np.uint8))
        ys, xs = np.nonzero(near_seeds)
        values = now[ys, xs].astype(np.int32)
        h, w = now.shape
        best: tuple[int, int, np.ndarray] | None = None
        tried: list[int] = []
        for quantile in np.percentile(values, (10, 30, 50, 70, 90)):
            v = int(quantile)
            if any(abs(v - t) <= cfg.fill_tol // 2 for t in tried):
                continue
            tried.append(v)
            k = int(np.argmin(np.abs(values - v)))
            flood = np.zeros((h + 2, w + 2), np.uint8)
            flags = 8 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (255 << 8)
            # (the fill's pixel count and bounding box, as OpenCV returns them: no scan of the mask)
            filled, _, _, (rx, ry, rw, rh) = cv2.floodFill(
                now, flood, (int(xs[k]), int(ys[k])), 0, cfg.fill_tol, cfg.fill_tol, flags
            )
            if rx == 0 or ry == 0 or rx + rw == w or ry + rh == h or max(rw, rh) > self.max_px:
                continue  # runs to the edge of the searched box, or larger than a pointer: not closed
            region = flood[1:-1, 1:-1]
            touched = int(np.count_nonzero(seeds & cv2.dilate(region, np.ones((5, 5), np.uint8))))
            if best is None or (touched, filled) > best[:2]:
                best = (touched, filled, region)
        if best is None or best[0] < 0.5 * np.count_nonzero(seeds):
            return None  # the moved edges are not those of one flat region
        if best[1] < cfg.fill_gain * np.count_nonzero(seeds):
            return None  # no flat interior to speak of: the moved pixels are the sighting (``_candidate``)
        region = best[2]
        rys, rxs = np.nonzero(region)
        if max(rxs.max() - rxs.min(), rys.max() - rys.min()) + 1 < cfg.fill_extent * self.min_px:
            return None  # a small flat region: no crescent (the plain path sees it), and a blob matches tissue
        # The region with the moved pieces that touch it (its outline, a shadow's edge).
        _n, labels = cv2.connectedComponents(seeds, connectivity=8)
        near_region = cv2.dilate(region, np.ones((5, 5), np.uint8))
        touching = np.unique(labels[(near_region > 0) & (labels > 0)])
        keep = region.copy()
        keep[np.isin(labels, touching)] = 255
        keep = cv2.morphologyEx(keep, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        ys, xs = np.nonzero(keep)
        sx0, sx1, sy0, sy1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        if not self._pointer_sized(len(xs), sx1 - sx0, sy1 - sy0) or sx0 == 0 or sy0 == 0 or sx1 == w or sy1 == h:
            return None
        # A flat fill has no structure of its own to match: its shape is its edge against what lies
        # around it, so the sprite keeps a band of ``fill_band`` px around the region, flattened to
        # that band's median (the tissue there is not the pointer's: only its level is).
        r = max(1, round(cfg.fill_band * self.min_px / 10))
        sx0, sy0, sx1, sy1 = sx0 - r, sy0 - r, sx1 + r, sy1 + r
        if sx0 < 0 or sy0 < 0 or sx1 > w or sy1 > h:
            return None
        inner = np.zeros((sy1 - sy0, sx1 - sx0), np.uint8)
        inner[r:-r, r:-r] = _fill_holes(keep[sy0 + r : sy1 - r, sx0 + r : sx1 - r])
        mask = cv2.dilate(inner, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
        image = now[sy0:sy1, sx0:sx1].copy()
        band = (mask > 0) & (inner == 0)
        level = np.median(image[band])
        if abs(float(np.median(image[inner > 0])) - float(level)) <= cfg.threshold:
            # Its moved edges differ from the frames before by ``threshold``: so must the fill from
            # what lies around it (a patch of tissue shifting under a slow zoom does not).
            return None
        image[band] = np.uint8(level)
        return Candidate(index, x0 + sx0, y0 + sy0, image, mask, band=r)

    def _moved_alone(self, whole: Candidate, luma: np.ndarray, ignore: np.ndarray, scale: int) -> bool:
        """Is the ignored region the flat sighting ``whole`` reaches into the pointer's haunt: did
        nothing but the pointer change there? Two tests, on the connected regions of ``ignore`` its
        box (grown by a cell) reaches:

        - between the frame of the sighting that verified it (``_partner``, still held) and this one,
          the pixels of those regions that differ by ``threshold`` lie on the two sightings' places
          grown by ``min_px`` (the encoder's trail), but for fewer than ``min_area``;
        - the places of the flat sightings kept (this one's included), grown by ``min_px``, cover
          ``haunt_cover`` of those regions: they were marked busy where the pointer went.

        A webcam's picture changes beyond the shape that moves in it (a face's features, a body,
        light and sensor noise), and that shape covers a part of the box (0.35-0.48 on the
        benchmark's three webcam variants); a pointer circling over still tissue changes only where
        it is and was, and its haunt is as large as a small webcam box because it keeps coming back
        (0.60-0.90 covered, 0-3 px changed beyond, on the independent corpus's 64 px arrow)."""
        import cv2

        if self._partner is None:
            return False
        other = self._partner[0]
        then = dict(self.frames).get(other.index)
        if then is None:
            return False
        _n, labels = cv2.connectedComponents(ignore.astype(np.uint8), connectivity=8)
        reach = labels[_cells(whole, scale)]
        H, W = luma.shape
        regions = np.kron(np.isin(labels, np.unique(reach[reach > 0])), np.ones((scale, scale), bool))[:H, :W]
        regions = np.pad(regions, ((0, H - regions.shape[0]), (0, W - regions.shape[1])))
        grow = np.ones((2 * self.min_px + 1, 2 * self.min_px + 1), np.uint8)

        def places(sightings: Iterable[Candidate]) -> np.ndarray:
            """Where ``sightings`` lie (cut from frames of this size: inside it), grown by ``min_px``."""
            at = np.zeros((H, W), np.uint8)
            for c in sightings:
                ch, cw = c.mask.shape
                at[c.y : c.y + ch, c.x : c.x + cw] |= c.mask
            return cv2.dilate(at, grow) > 0

        changed = (cv2.absdiff(luma, then) > self.config.threshold) & regions
        if np.count_nonzero(changed & ~places((whole, other))) >= self.min_area:
            return False
        covered = np.count_nonzero(regions & places((whole, *self.filled)))
        return covered >= self.config.haunt_cover * np.count_nonzero(regions)

    def _seen_whole(self, whole: Candidate) -> bool:
        """Has the plain learner seen a pointer of the flat region's size lately: a sighting in its
        pool (``_candidate``) with ``fill_seen`` of the region's area (without its band)? Then its
        pixels that moved show a pointer whole (it moves its own size between the frames compared),
        and that path learns it, with the edges and tip the flat region may lack (a see-through
        pointer's fill is flat only roughly)."""
        inner = _inner(whole.mask, whole.band) if whole.band else whole.mask
        area = np.count_nonzero(inner)
        return any(np.count_nonzero(c.mask) >= self.config.fill_seen * area for c in self.candidates)

    def _known_whole(self, whole: Candidate) -> bool:
        """Is the flat region ``whole`` the shape of a sprite already known: does a known sprite's
        mask (grown by a pixel) hold ``fill_known`` of the region (without its band) at some offset,
        the region covering at least half of it? A see-through pointer learned from its moved pixels
        does not match its flat sighting by luma, but has its shape; a known piece of the region
        (a sliver learned earlier) is smaller than the region and does not count."""
        import cv2

        inner = _inner(whole.mask, whole.band) if whole.band else whole.mask
        region = (inner > 0).astype(np.float32)
        area = float(region.sum())
        h, w = region.shape
        for t in self.learned:
            known = cv2.dilate(t.mask, np.ones((3, 3), np.uint8))
            if area < 0.5 * np.count_nonzero(t.mask):
                continue
            padded = np.pad((known > 0).astype(np.float32), ((h, h), (w, w)))
            overlap = cv2.matchTemplate(padded, region, cv2.TM_CCORR)
            if float(overlap.max()) >= self.config.fill_known * area:
                return True
        return False

    def _verify(self, cand: Candidate, candidates: deque[Candidate] | None = None) -> Template | None:
        """A sprite from ``cand`` and an earlier sighting of the same rigid shape elsewhere: one
        that matches it at ``agree_score``, else, where ``agree_many`` sightings or more match it
        at ``agree_many_score`` (a see-through pointer shows other tissue through its fill at
        every sighting, so no two of its sightings match that well), the best of them."""
        cfg = self.config
        self._partner = None
        area = int(np.count_nonzero(cand.mask))
        own: Template | None = None  # the candidate as a template, made once for every sighting it is aligned with
        weaker: list[tuple[float, int, int, Candidate]] = []
        for other in reversed(self.candidates if candidates is None else candidates):
            if other.index >= cand.index - 1 or math.hypot(other.x - cand.x, other.y - cand.y) < cfg.min_shift:
                continue
            other_area = int(np.count_nonzero(other.mask))
            if not 0.6 <= area / max(1, other_area) <= 1.6:
                continue
            if (
                abs(other.image.shape[0] - cand.image.shape[0]) > 4
                or abs(other.image.shape[1] - cand.image.shape[1]) > 4
            ):
                continue
            if own is None:
                own = template_from_sprite(cand.image, cand.mask, (0, 0))
            score, dx, dy = _align(cand, other, cfg.agree_offset, own)
            if math.hypot(other.x + dx - cand.x, other.y + dy - cand.y) < cfg.min_shift:
                continue  # aligned, the two lie on the same spot: the pointer did not move between them
            if score >= cfg.agree_score:
                decided, template = self._shared(cand, other, dx, dy, whole=False)
                if decided:
                    self._partner = (other, dx, dy)
                    return template
            elif score >= cfg.agree_many_score and min(area, other_area) >= cfg.agree_many_area:
                weaker.append((score, dx, dy, other))
        if len(weaker) < cfg.agree_many:
            return None
        for _score, dx, dy, other in sorted(weaker, key=lambda w: -w[0]):
            decided, template = self._shared(cand, other, dx, dy, whole=True)
            if decided:
                self._partner = (other, dx, dy)
                return template
        return None

    def _shared(self, cand: Candidate, other: Candidate, dx: int, dy: int, whole: bool) -> tuple[bool, Template | None]:
        """The sprite two aligned sightings share: (True, it), (True, None) where it is a known
        sprite, (False, None) where they share only a fragment (other sightings may do better)."""
        cfg = self.config
        common = common_sprite(cand, other, dx, dy)
        if common is None:
            return False, None
        image, mask = common
        h = min(cand.image.shape[0], other.image.shape[0])
        w = min(cand.image.shape[1], other.image.shape[1])

        # A slow sighting is cut against a median that may hold an edge of the pointer's recent past,
        # and two of a pointer dwelling in one spot (less than the sighting's extent apart) lose the
        # same edge (an arrow's tip): what they share must then span nearly all of both
        # (``slow_extent_keep``). Sightings clear of each other do not share such a loss.
        dwelling = math.hypot(other.x - cand.x, other.y - cand.y) < max(cand.image.shape)
        keep = cfg.slow_extent_keep if (cand.slow or other.slow) and dwelling else cfg.extent_keep

        def spans(shared: np.ndarray) -> bool:
            """Does the shared part reach across ``keep`` of both sightings' extent?"""
            return shared.shape[0] >= keep * h and shared.shape[1] >= keep * w

        if not spans(image):
            # A piece of the shape only: thin lines at two sub-pixel phases (see common_sprite).
            wider = common_sprite(cand, other, dx, dy, beside=True)
            if wider is not None and spans(wider[0]) and np.count_nonzero(wider[1]) <= cfg.thin_fill * wider[1].size:
                image, mask = wider
        smaller = min(np.count_nonzero(cand.mask), np.count_nonzero(other.mask))
        if np.count_nonzero(mask) < max(self.min_area, 0.5 * smaller):
            return False, None  # the two sightings share only a fragment: not one rigid sprite seen twice
        if (whole or keep > cfg.extent_keep or cfg.shared_min_px) and not spans(image):
            return False, None  # a fragment, cut on one side: the sightings are not of one whole shape
        if cfg.shared_min_px and max(image.shape) < self.min_px:
            return False, None  # a fragment smaller than any sighting may be
        sprite = Candidate(cand.index, cand.x, cand.y, image, mask)
        if any(self._same(sprite, t) for t in self.learned):
            return True, None
        shape, inset = mask, cfg.inset
        if cand.band:
            # the band around a flat region is not the pointer's shape: its tip is decided without it
            inner = _inner(mask, cand.band)
            if np.count_nonzero(inner) >= self.min_area:
                # and the region is the pointer's fill: its extreme is the fill's point, where the
                # hotspot lies (the inset steps in from an outline's outermost pixels to that point)
                shape, inset = inner, 0.0
        hotspot = decide_hotspot(shape, cfg.symmetric_iou, cfg.tip_depth, inset, cfg.blunt, image)
        return True, template_from_sprite(image, mask, hotspot)

    def _same(self, cand: Candidate, t: Template) -> bool:
        """Is ``cand`` a known sprite, or a part of one (a sighting whose outline half matched
        the tissue), or a known one part of it that holds ``known_part`` of its mask pixels or more?"""
        known = Candidate(-1, 0, 0, t.image, t.mask)
        small, big = (cand, known) if cand.image.size <= known.image.size else (known, cand)
        if small.image.shape[0] > big.image.shape[0] + 4 or small.image.shape[1] > big.image.shape[1] + 4:
            return False
        if small is known and np.count_nonzero(known.mask) < self.config.known_part * np.count_nonzero(cand.mask):
            return False
        return _align(small, big, self.config.agree_offset)[0] >= self.config.same_score


def _match_map(region: np.ndarray, template: Template) -> tuple[np.ndarray, tuple[int, int]]:
    """|masked correlation| of ``template`` at every position in ``region`` (flat windows 0), and
    the position of the best."""
    import cv2

    res = cv2.matchTemplate(region, template.image, cv2.TM_CCOEFF_NORMED, mask=template.mask)
    res = np.abs(np.nan_to_num(res, nan=0.0, posinf=0.0, neginf=0.0))
    _, _, _, best = cv2.minMaxLoc(res)
    return res, best


def _touches(cand: Candidate, ignore: np.ndarray | None, scale: int) -> bool:
    """Does ``cand``'s box, grown by a cell, reach into the ignored region (a webcam: its flat
    shapes move too, and only its busiest pixels are marked)?"""
    if ignore is None:
        return False
    return bool(ignore[_cells(cand, scale)].any())


def _cells(cand: Candidate, scale: int) -> tuple[slice, slice]:
    """The cells (1 / ``scale`` of the frame) of ``cand``'s box, grown by a cell."""
    h, w = cand.mask.shape
    return (
        slice(max(0, cand.y // scale - 1), (cand.y + h) // scale + 2),
        slice(max(0, cand.x // scale - 1), (cand.x + w) // scale + 2),
    )


def _inner(mask: np.ndarray, band: int) -> np.ndarray:
    """``mask`` without the ``band`` px at its edge (the surroundings kept around a flat region)."""
    import cv2

    r = band
    return cv2.erode(np.pad(mask, r), np.ones((2 * r + 1, 2 * r + 1), np.uint8))[r:-r, r:-r]


def _holds(whole: Candidate, part: Candidate, gain: float) -> bool:
    """Does ``whole`` hold nearly all of ``part``'s mask and, without its band, have ``gain`` times
    its area (``part`` a crescent of it)?"""
    px0, py0 = part.x - whole.x, part.y - whole.y
    ph, pw = part.mask.shape
    wh, ww = whole.mask.shape
    x0, y0, x1, y1 = max(0, px0), max(0, py0), min(ww, px0 + pw), min(wh, py0 + ph)
    part_area = int(np.count_nonzero(part.mask))
    whole_area = np.count_nonzero(_inner(whole.mask, whole.band) if whole.band else whole.mask)
    if x1 <= x0 or y1 <= y0 or whole_area < gain * part_area:
        return False
    inside = np.count_nonzero(part.mask[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0] & whole.mask[y0:y1, x0:x1])
    return inside >= 0.8 * part_area


def _largest_piece(mask: np.ndarray) -> np.ndarray:
    """A sighting's mask as its largest 8-connected piece, holes filled, where it has several (specks
    the encoder changed beside it would be its sharpest extreme); else ``mask`` itself."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    return _fill_holes(((labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))) * 255).astype(np.uint8))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (uint8 0/255) with enclosed holes filled (a pointer's fill that matched the tissue)."""
    import cv2

    h, w = mask.shape
    flood = np.pad(mask, 1)
    seeds = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, seeds, (0, 0), 128)
    return np.where(flood[1:-1, 1:-1] == 128, 0, 255).astype(np.uint8)
