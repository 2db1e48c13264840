"""Judging a moving pointer over several frames, where its shape alone scores too low.

A moving pointer looks less like its learned sprite than a resting one: compression smears
it, and a see-through pointer shows different tissue through its fill in every frame, so its
sprite matches it at 0.45-0.6 where the same sprite finds it at rest at 0.7-0.9. Judged one
frame at a time against ``min_score``, such a pointer drops out for most of its motion, and a
lookalike on still tissue or a compression ghost of where it was is taken instead. The
locator (:meth:`~quilt_llava.narratives.motion_judge.MotionJudge.shown`) adds four
judgements from the pointer's motion to its own; it leaves its own state as it is and only
changes which hits are shown:

- **On its course.** A pointer seen in the two frames before (by the locator or here) and
  moving is looked for, with the shape it was seen with, near where its last step leads
  (:func:`predicted`, :func:`continued`); a match counts at ``floor`` when the spot is *new*:
  it differs from the pointer-free background (the pointer covers it now) and from the view a
  few frames back in the template's pattern (a spot the pointer has just left shows the same
  tissue as before it came, so it fails this). A lookalike on still tissue never differs from
  itself, so neither test passes there, however well its shape matches.
- **A chain of weak sightings** (:class:`MotionChain`) starts one: where something in a
  moving blob is *now* (:func:`footprint_now`: pixels differing from two earlier frames, as
  the sprite learner finds a moving pointer; a see-through pointer's outline differs from
  what it covers, whatever shows through its fill), the sprites are matched around it; matches
  at ``chain_floor`` or better, new where they lie, on ``chain_length`` frames along one course
  are the pointer.
- **Ghosts** (:func:`lags`): a hit whose box does not hold what moves now in its frame lies
  where the pointer was (a heavily compressed block keeps a ghost of a fast pointer for a
  frame or two) or is another shape laid across part of it; it is left out.
- **Elsewhere** (:func:`moved_elsewhere`): a hit emitted later for an earlier frame (a
  held-back track's hits, a backfill) is left out where something of a pointer's size moved
  in that frame away from it: a pointer does not rest at one spot while it moves at another.
- **A short gap on one course** (:class:`GapBridge`): where the hits shown stop for one to
  ``bridge`` frames and start again, and the step into the gap and the step out of it each lead
  to the other side (within ``slack`` px a frame), the pointer went straight through: the frames
  between get hits on the line, at the lower score. A small pointer at heavy compression is
  largely erased by the encoder in some frames of its motion (on handhelds-480p a third of the
  frames missed show less than a tenth of the pointer's box); no shape is found there.

What this does not do: follow a pointer that jumps further from its course than ``slack`` px
a frame, judge a shape it was not seen with (a pointer turning into a hand mid-move is found
by the hand's own sprite), or tell a pointer from anything else of its size that moves in a
still view outside a known webcam (an annotation being drawn, a video playing in a slide).
Where the sprite itself is wrong (a thin see-through crosshair learned late, a sprite whose
decided hotspot lies off the pointer's), none of this helps.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

OVERLAP = 0.5  # share of a hit's box or of what moves now that the two must share (``lags``)
FOOTPRINT_SPAN = 2.0  # what moves now spans more than this many times a hit's box: ``lags`` cannot tell
FOOTPRINT_LEAST = 0.25  # less than this share of a hit's box is flicker, not a pointer (``moved_elsewhere``)
SPECK_PX = 3  # changed pieces smaller than this are compression noise, not a pointer's part


@dataclass(frozen=True)
class MotionConfig:
    floor: float = 0.45  # shape score a continued track's match needs (``min_score`` otherwise)
    chain_floor: float = 0.5  # shape score of each sighting in a chain that starts a track
    chain_length: int = 3  # consecutive frames a chain of weak sightings must move along one course
    chains: int = 4  # chains started per frame (the best sightings)
    # What moves now (``footprint_now``): pixels of a frame that differ by ``threshold`` grey levels from
    # each of the frames this many back (as the sprite learner finds a moving pointer, from 2 and 6 back;
    # with the frame just before, the spot a pointer that rested until then has left is not counted).
    back: tuple[int, ...] = (1, 2, 6)
    threshold: int = 24
    held: int = 16  # recent frames held for it (references): hits up to ``held - max(back)`` frames back are judged
    slack: int = 6  # px searched around the predicted position (the step may change this much)
    max_speed: float = 90.0  # px a frame; a longer last step is not a course to predict from
    # Frames without a hit between two pairs of hits on one course that are filled in (``GapBridge``): as
    # many as the locator's held history interpolates between the frames it keeps (``history_stride`` - 1).
    bridge: int = 3


def predicted(
    hits: dict[int, tuple[float, float] | None], index: int, max_speed: float, min_step: float = 1.0
) -> tuple[float, float] | None:
    """Where the moving pointer should be at frame ``index``, from the track's verified positions
    in the two frames before (``hits``: frame index -> (x, y), None where none was verified): the
    last position plus the last step. None unless both are known and the track moved between
    them (at least ``min_step``, at most ``max_speed`` px): a resting pointer that stops
    matching has vanished or changed shape, it does not carry on."""
    last, before = hits.get(index - 1), hits.get(index - 2)
    if last is None or before is None:
        return None
    vx, vy = last[0] - before[0], last[1] - before[1]
    if not min_step <= math.hypot(vx, vy) <= max_speed:
        return None
    return last[0] + vx, last[1] + vy


def continued(
    luma: np.ndarray,
    at: tuple[float, float],
    match: Callable[[np.ndarray, tuple[int, int, int, int]], tuple[float, float, float]],
    hotspot: tuple[int, int],
    new_there: Callable[[float, float], bool],
    config: MotionConfig,
) -> tuple[float, float, float] | None:
    """The continued track's match around the predicted tip ``at``: (score, x, y), or None.

    ``match(luma, box)`` scores the tracked template with its top-left anywhere in ``box``
    (x0, y0, x1, y1) and returns (score, tip x, tip y); ``hotspot`` is the template's; and
    ``new_there(x, y)`` says whether the spot with the tip at (x, y) is new (see the module
    docstring)."""
    r = config.slack
    x0, y0 = round(at[0]) - hotspot[0] - r, round(at[1]) - hotspot[1] - r
    score, x, y = match(luma, (x0, y0, x0 + 2 * r + 1, y0 + 2 * r + 1))
    if score < config.floor or not new_there(x, y):
        return None
    return score, x, y


@dataclass(frozen=True)
class Sighting:
    index: int  # frame
    x: float  # tip, video px
    y: float
    k: int  # template
    score: float


class MotionChain:
    """Weak sightings of a moving pointer on consecutive frames, judged together.

    Before a track is verified, a moving see-through or blurred pointer may match its sprite
    only at ``chain_floor``..``min_score`` on every frame, below a lookalike on still tissue.
    Each such sighting that is new where it lies (see the module docstring) is offered here. A
    chain is extended by a sighting that lies where its last step predicts (within ``slack``
    px a frame; the second one anywhere from 1 to ``max_speed`` px a frame away), also after
    one frame without a fitting sighting; among the sightings that fit, one of the sprite the
    chain's last link was seen with is taken (another sprite only where none of it fits: a
    pointer that changes shape, a hand whose pieces were learned apart); every sighting also
    starts a chain of its own, so a compression ghost beside the pointer does not break the
    pointer's.
    ``chain_length`` links in a row moving along one course, each new where it lies: that is
    the pointer, and the chain is returned. Tissue does not differ from itself, and the trail a
    pointer leaves does not move on."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self.chains: list[list[Sighting]] = []

    def reset(self) -> None:
        self.chains = []

    def offer(self, index: int, sightings: list[Sighting]) -> list[Sighting] | None:
        """Frame ``index``'s weak sightings (each new where it lies). Returns a chain once one is
        ``chain_length`` long (and starts afresh). A chain may skip one frame (the pointer
        matched too weakly there): it is then extended where two of its steps lead."""
        cfg = self.config
        grown: list[list[Sighting]] = []
        for links in self.chains:
            last = links[-1]
            gap = index - last.index
            fits: list[tuple[float, Sighting]] = []
            for s in sightings:
                if len(links) >= 2:
                    before = links[-2]
                    step = (
                        (last.x - before.x) / (last.index - before.index),
                        (last.y - before.y) / (last.index - before.index),
                    )
                    d = math.hypot(s.x - (last.x + gap * step[0]), s.y - (last.y + gap * step[1]))
                    ok = d <= cfg.slack * gap
                else:
                    d = math.hypot(s.x - last.x, s.y - last.y)
                    ok = 1.0 <= d <= cfg.max_speed * gap  # the second link must have moved
                if ok:
                    fits.append((d - s.score, s))
            if fits:
                # A sighting of the sprite the chain was last seen with, where one fits: sprites
                # put their tips at different places of the pointer (another shape's sprite may
                # match a part of it), so a switch of sprite moves the tip off the course.
                fits = [f for f in fits if f[1].k == last.k] or fits
                chain = [*links, min(fits, key=lambda f: f[0])[1]]
                if len(chain) >= cfg.chain_length:
                    self.chains = []
                    return chain
                grown.append(chain)
            elif gap < 2:
                grown.append(links)  # may skip this frame
        starts = sorted(sightings, key=lambda s: -s.score)[: cfg.chains]
        self.chains = (grown + [[s] for s in starts])[: 2 * cfg.chains]
        return None


def differs_from_all(now: np.ndarray, earlier: list[np.ndarray], threshold: int) -> np.ndarray | None:
    """255 where ``now`` differs by more than ``threshold`` grey levels from every one of the
    ``earlier`` crops of the same place, 0 elsewhere; None without earlier crops. Where a moving
    pointer was before, the frame shows what one of the earlier frames shows too, so only where
    it is now stays."""
    import cv2

    changed = None
    for other in earlier:
        differs = cv2.threshold(cv2.absdiff(now, other), threshold, 255, cv2.THRESH_BINARY)[1]
        changed = differs if changed is None else cv2.bitwise_and(changed, differs)
    return changed


def footprint_now(
    luma: np.ndarray, earlier: list[np.ndarray], box: tuple[int, int, int, int], threshold: int
) -> tuple[int, int, int, int] | None:
    """Where inside ``box`` (x0, y0, x1, y1) something moving is *now*: the pixels that differ by
    more than ``threshold`` from every one of some ``earlier`` frames (where the pointer was
    before, this frame shows the tissue again, which one of the earlier frames shows as well;
    with the frame just before among them, also where it rested until a frame ago), as their
    bounding box in video px; None when there are none. A see-through pointer's outline
    differs from what it covers, whatever shows through its fill."""
    import cv2

    H, W = luma.shape
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(W, box[2]), min(H, box[3])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    changed = differs_from_all(luma[y0:y1, x0:x1], [other[y0:y1, x0:x1] for other in earlier], threshold)
    if changed is None:
        return None
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    pieces = stats[1:][stats[1:, cv2.CC_STAT_AREA] >= SPECK_PX]  # not single pixels of compression noise
    if n < 2 or not len(pieces):
        return None
    bx0, by0 = int(pieces[:, 0].min()), int(pieces[:, 1].min())
    bx1, by1 = int((pieces[:, 0] + pieces[:, 2]).max()), int((pieces[:, 1] + pieces[:, 3]).max())
    return x0 + bx0, y0 + by0, x0 + bx1, y0 + by1


def placements(footprint: tuple[int, int, int, int], size: tuple[int, int], margin: int) -> tuple[int, int, int, int]:
    """Top-left positions (x0, y0, x1, y1, as ``match_in`` takes them) of a template of ``size``
    (h, w) that covers the ``footprint`` box, or lies on it where the footprint is the larger
    (a smeared pointer), give or take ``margin`` px."""
    fx0, fy0, fx1, fy1 = footprint
    th, tw = size
    lo_x, hi_x = sorted((fx0, fx1 - tw))
    lo_y, hi_y = sorted((fy0, fy1 - th))
    return lo_x - margin, lo_y - margin, hi_x + margin + 1, hi_y + margin + 1


class Course:
    """Where the pointer was in the last frames (from the locator's own hits and from hits
    continued here), to predict where it moves next."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self.known: dict[int, tuple[float, float, int]] = {}  # frame -> tip x, y and template

    def reset(self) -> None:
        self.known.clear()

    def seen(self, index: int, x: float, y: float, k: int) -> None:
        self.known[index] = (x, y, k)
        for old in [i for i in self.known if i < index - 2]:
            del self.known[old]

    def expect(self, index: int) -> tuple[float, float, int] | None:
        """Predicted tip and the template it was seen with at frame ``index`` (see :func:`predicted`)."""
        last = self.known.get(index - 1)
        if last is None:
            return None
        positions = {i: (x, y) for i, (x, y, _k) in self.known.items()}
        at = predicted(positions, index, self.config.max_speed)
        return None if at is None else (at[0], at[1], last[2])


def lags(box: tuple[int, int, int, int], now: tuple[int, int, int, int]) -> bool:
    """Does what moves ``now`` (:func:`footprint_now` around a hit) lie off the hit's template
    ``box``: the two share less than half of either? Then the pointer has moved on and the hit
    lies where it was (at heavy compression the block a fast pointer just left keeps a ghost of
    it for a frame or two, which has its shape and differs from the frame before), or the hit is
    another shape laid across part of the pointer. A template smaller than the pointer lies
    mostly inside its footprint; a pointer smeared beyond its template covers most of it. Where
    more moves than one pointer (the footprint spans over ``FOOTPRINT_SPAN`` times the box: the
    spot a pointer that rested until a frame ago has just left is in it too), nothing is
    decided."""
    box_area, now_area = (box[2] - box[0]) * (box[3] - box[1]), (now[2] - now[0]) * (now[3] - now[1])
    if now_area > FOOTPRINT_SPAN * box_area:
        return False  # more moves than one pointer (and a spot it just left): nothing to tell by
    inter = max(0, min(box[2], now[2]) - max(box[0], now[0])) * max(0, min(box[3], now[3]) - max(box[1], now[1]))
    return inter < OVERLAP * box_area and inter < OVERLAP * now_area


def moved_elsewhere(box: tuple[int, int, int, int], moves: list[tuple[int, int, int, int]], margin: int) -> bool:
    """Did something of a pointer's size move in a frame (``moves``: :func:`footprint_now` boxes),
    all of it more than ``margin`` px away from a hit's template ``box``? (Larger changes are
    not a pointer, smaller ones and slivers are flicker at an edge; they tell nothing.)"""
    area = (box[2] - box[0]) * (box[3] - box[1])
    least = 0.5 * min(box[2] - box[0], box[3] - box[1])  # a sliver (an edge flickering) is no pointer either
    sized = [
        m
        for m in moves
        if FOOTPRINT_LEAST * area <= (m[2] - m[0]) * (m[3] - m[1]) <= FOOTPRINT_SPAN * area
        and min(m[2] - m[0], m[3] - m[1]) >= least
    ]
    near = [
        m
        for m in sized
        if m[0] < box[2] + margin and box[0] - margin < m[2] and m[1] < box[3] + margin and box[1] - margin < m[3]
    ]
    return bool(sized) and not near


class RecentFrames:
    """The view's last few frames (references, never written to), to find what moves in them."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self.frames: deque[tuple[int, np.ndarray]] = deque(maxlen=config.held)

    def add(self, index: int, luma: np.ndarray) -> None:
        self.frames.append((index, luma))

    def clear(self) -> None:
        self.frames.clear()

    def now_box(self, index: int, region: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
        """:func:`footprint_now` of frame ``index`` in ``region`` against the frames ``config.back``
        before it; None when it or they are not held."""
        back = self.config.back
        if not self.frames or index - max(back) < self.frames[0][0]:
            return None
        held = dict(self.frames)
        luma, earlier = held.get(index), [held.get(index - b) for b in back]
        if luma is None or any(e is None for e in earlier):
            return None
        return footprint_now(luma, earlier, region, self.config.threshold)


class GapBridge:
    """The hits shown in a view's last frames; a short gap between two pairs of them that agree on
    one course is filled (see the module docstring)."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self.shown: dict[int, tuple[float, float, float]] = {}  # frame -> (x, y, score) shown last
        self.filled: set[int] = set()  # frames given a hit here

    def reset(self) -> None:
        self.shown.clear()
        self.filled.clear()

    def add(self, hits: list, now: int) -> list[tuple[int, float, float, float]]:
        """Note ``hits`` (objects with ``index``, ``x``, ``y``, ``score``) shown at frame ``now``;
        returns (frame, x, y, score) for the frames of each gap they close."""
        for h in hits:
            self.shown[h.index] = (h.x, h.y, h.score)
            self.filled.discard(h.index)
        keep = now - 4 * (self.config.bridge + 3)
        if len(self.shown) > 2 * (self.config.bridge + 3):
            self.shown = {i: v for i, v in self.shown.items() if i >= keep}
            self.filled = {i for i in self.filled if i >= keep}
        out: list[tuple[int, float, float, float]] = []
        ends = sorted(i for i in self.shown if i not in self.filled)
        for a, b in itertools.pairwise(ends):
            n = b - a
            if not 2 <= n <= self.config.bridge + 1 or a - 1 not in self.shown or b + 1 not in self.shown:
                continue
            if any(j in self.filled for j in range(a + 1, b)):
                continue
            out.extend(self._across(a, b))
        return out

    def _across(self, a: int, b: int) -> list[tuple[int, float, float, float]]:
        """Hits for the frames between ``a`` and ``b`` where the steps into and out of the gap each
        lead to its other side within ``slack`` px a frame; none otherwise."""
        (xa0, ya0, _), (xa, ya, sa) = self.shown[a - 1], self.shown[a]
        (xb, yb, sb), (xb1, yb1, _) = self.shown[b], self.shown[b + 1]
        n = b - a
        room = self.config.slack * n
        if math.hypot(xa + (xa - xa0) * n - xb, ya + (ya - ya0) * n - yb) > room:
            return []
        if math.hypot(xb - (xb1 - xb) * n - xa, yb - (yb1 - yb) * n - ya) > room:
            return []
        out = []
        for j in range(a + 1, b):
            w = (j - a) / n
            out.append((j, xa + w * (xb - xa), ya + w * (yb - ya), min(sa, sb)))
            self.filled.add(j)
        return out
