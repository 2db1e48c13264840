"""A pointer's rest recovered from its departure: the spot it left shows what it covered.

A resting pointer is the hardest to believe by its shape alone: it never differs from the frame
before, and a see-through, small or heavily compressed one matches its sprite at rest about as
well as tissue elsewhere does. Once it has left, the spot it rested on differs from the frames
in which it was there, in the pointer's own pattern; tissue that merely looks like a pointer
never differs from itself. Two cases use this, both walking the locator's held frames back:

**A rest from the view's start** (:func:`rest_before_move`, :func:`since_first`).
The locator verifies a track once the pointer is seen to differ from what lay under it, which
happens when it moves. Its hits before that, while it rested, come from walking back from the
verified spot (:meth:`~quilt_llava.narratives.view_history.ViewHistory.backfill`), which
stops where the pointer moved fast across frames whose pixels were not kept, or from the
whole-frame search, whose best match for a small or weakly learned pointer is often tissue that
happens to look like it (a 16 px pointer at 480p matches its own sprite at 0.7-0.85 where it
rests, and tissue elsewhere as well).

The spot the pointer left is known from the frames alone: the view's oldest held frame and the
frame that verified the track differ where the pointer was then and where it is now, and
nowhere else (the view is still; a webcam is masked out). So, on the view's first verified
hit (and, while none is verified, on a quiet frame after something moved: a pointer that
rested and then vanished; see ``EarlierRests.vanished`` in ``earlier_rests.py``):

1. the pointer-sized places where the two frames differ, away from where the pointer is now;
2. at each, the pointer's shapes matched in the old frame (``min_score``, the shape's
   contrast), where the old frame must also differ from the new one under the shape, and the
   shape must match the new frame there less well (the pointer was there, and has left; a
   pointer that arrived on tissue that looks like it is the other way round);
3. from the newest held frame back, past the frames after it left, the pointer is followed at
   that spot (a few px of drift) while the shape still matches there and the spot still
   differs from the new frame; frames whose pixels were not kept are interpolated between two
   such sightings.

The view's first frame is kept too: a rest that began before the oldest held frame is taken
to have lasted from the view's start when the pointer is at the spot in the first frame as
well (the frames between are not held, so a pointer that left and came back in between is
not told apart).

What this does not find: a pointer that arrived at its resting spot after the view's oldest
held frame (it moved then, and the backfill covers it), and a rest whose first frame is still
settling from a pan (the first frame is then not matched, and the rest is found back to the
oldest held frame only).

**A rest before a verified track** (:class:`RestProbe`, :func:`rest_before`).
A learned sprite is seen while the pointer moves; where the pointer *rests* over other
tissue, a see-through or heavily compressed pointer may match that sprite too weakly to be
believed (a redglass arrow at CRF 36 scores 0.5-0.7 at rest, as tissue does). Its departure
settles it: once the pointer has moved away from the spot where its track began, that spot
shows the tissue it covered, and every earlier frame in which the pointer still rested there
differs from it *in the pointer's pattern* (see ``templates.shaped_diff``), whatever the tissue
and however translucent the pointer. Tissue that merely looks like a pointer never differs
from itself, so nothing is recovered where no pointer was.

:class:`RestProbe` is the spot a verified track began at; :func:`rest_before` walks the view's
held frames back from there while the template is found near the spot and the spot differs
from the frame after the departure. Frames whose pixels were not kept (thinned) in between two
sightings get the position interpolated; the walk stops at a frame that already has a
verified hit, at a frame without pixels, or where the pointer was not there.

What this does not recover: a rest whose spot the pointer came back to before the probe was
settled (the reference shows the pointer again), and rests older than the frames the locator
holds (``CursorConfig.backfill_frames``).

Both walks share :func:`_kept_back` (the held frames newest first, with the thinned frames
between them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from quilt_llava.narratives.cursor_hits import CursorHit, interpolated
from quilt_llava.narratives.templates import Template, match_in, spot_diff

MAX_SPOTS = 4  # places where the two frames differ that are matched, largest first
DRIFT_PX = 2  # px a resting pointer may drift between two kept frames and stay the same rest
MIN_SIGHTINGS = 2  # frames (kept or interpolated) a rest must span to be reported
# A rest before a sprite's first sighting (``rest_before_departure``): kept frames a run must count,
# and kept frames matched in the seed (the pointer speeding up, or not yet there) before giving up.
DEPARTURE_RUN = 2
DEPARTURE_TRIES = 4


def rest_spots(
    old: np.ndarray,
    new: np.ndarray,
    away: tuple[int, int, int, int],
    ignore: np.ndarray | None,
    threshold: float,
    size: tuple[int, int],
    min_area: int = 4,
) -> list[tuple[int, int, int, int]]:
    """Pointer-sized places (x0, y0, x1, y1, full resolution) where ``old`` and ``new`` differ by
    ``threshold`` grey levels, none touching ``away`` (where the pointer is now) nor an ignored
    region (``ignore``: at analysis scale), none under ``min_area`` changed pixels (compression
    noise); ``size``: (height, width) of the largest shape, which bounds a place's extent."""
    import cv2

    diff = cv2.threshold(cv2.absdiff(old, new), threshold, 255, cv2.THRESH_BINARY)[1]
    H, W = diff.shape
    ax0, ay0, ax1, ay1 = max(0, away[0]), max(0, away[1]), min(W, away[2]), min(H, away[3])
    diff[ay0:ay1, ax0:ax1] = 0
    if ignore is not None:
        diff[cv2.resize(ignore.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST) > 0] = 0
    diff = cv2.morphologyEx(diff, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    # Outlines, not labelled components: labelling a whole frame costs ~12 ms at 720p, tracing the
    # few changed places' outlines a fraction of a millisecond.
    contours, _ = cv2.findContours(diff, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    th, tw = size
    found = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        if w > 2 * tw or h > 2 * th:
            continue  # larger than a pointer: the view changed there (or compression did)
        area = cv2.countNonZero(diff[y : y + h, x : x + w])
        if area >= min_area:  # else a speck of compression noise
            found.append((-area, y, x, w, h))
    spots = [(x, y, x + w, y + h) for _, y, x, w, h in sorted(found)[:MAX_SPOTS]]
    return spots


def rest_before_move(
    history: Iterable[tuple[int, np.ndarray | None, bool]],
    new: np.ndarray,
    away: tuple[int, int, int, int],
    templates: Sequence[Template],
    shapes: Sequence[int],
    ignore: np.ndarray | None,
    min_score: float,
    min_contrast: float,
    min_change: float,
    first: tuple[int, np.ndarray] | None = None,
) -> list[CursorHit]:
    """Hits of a pointer that rested from the view's oldest held frame on, at a spot it has left
    by the frame ``new`` (see the module docstring). ``history``: (index, luma, verified hit
    emitted) of the view's frames, oldest first, luma None or empty where not kept; ``away``:
    the box the pointer covers in ``new``; ``shapes``: indices of ``templates`` to try;
    ``first``: (index, luma) of the view's first frame, when it is older than the held ones: a
    pointer followed back to the oldest held frame that also rested there in the first frame is
    taken to have rested in between (no pixels are held to check the frames between; a pointer
    that left and came back to the same spot is the one case this gets wrong)."""
    held = list(history)
    start = next((j for j, (_, luma, _) in enumerate(held) if luma is not None and luma.size), None)
    if start is None or not shapes:
        return []
    old = held[start][1]
    assert old is not None
    if first is not None and first[0] >= held[start][0]:
        first = None
    size = (max(templates[k].image.shape[0] for k in shapes), max(templates[k].image.shape[1] for k in shapes))
    # A spot the pointer left differs under a good part of its shape (a quarter of the smallest one's pixels).
    least = min(int(np.count_nonzero(templates[k].mask)) for k in shapes)
    spots = rest_spots(old, new, away, ignore, 0.5 * min_change, size, max(4, least // 4))
    best: tuple[float, float, float, int] | None = None
    for k in shapes:  # the first shape that explains a spot: the one verified now comes first
        t = templates[k]
        th, tw = t.image.shape
        for x0, y0, x1, y1 in spots:
            box = _covering(x0, y0, x1, y1, tw, th)
            score, x, y = match_in(old, box, t, min_contrast)
            if score < min_score or (best is not None and score <= best[0]) or not _left(old, new, x, y, t, min_change):
                continue
            if match_in(new, box, t, min_contrast)[0] >= score:
                continue  # the shape is as clear there now: a pointer that arrived, not one that left
            best = (score, x, y, k)
        if best is not None:
            break
    if best is None:
        return []
    _, x, y, k = best
    t = templates[k]
    # Newest first: skip the frames after it left, then follow it back while it stays.
    hits: list[CursorHit] = []
    for index, luma, gap in _kept_back(reversed(held[start:])):
        hx, hy = t.hotspot
        box = (
            round(x) - hx - DRIFT_PX,
            round(y) - hy - DRIFT_PX,
            round(x) - hx + DRIFT_PX + 1,
            round(y) - hy + DRIFT_PX + 1,
        )
        score, bx, by = match_in(luma, box, t, min_contrast)
        if score < min_score or not _left(luma, new, bx, by, t, min_change):
            if hits:
                break
            continue
        if gap and hits:
            hits += interpolated(gap, hits[-1], index, bx, by, score)
        hits.append(CursorHit(index, bx, by, score))
        x, y = bx, by
    if first is not None and hits and hits[-1].index == held[start][0]:
        hits += since_first(first, hits[-1], t, new, min_score, min_contrast, min_change)
    return hits[::-1] if len(hits) >= MIN_SIGHTINGS else []


def since_first(
    first: tuple[int, np.ndarray],
    oldest: CursorHit,
    t: Template,
    new: np.ndarray | None,
    min_score: float,
    min_contrast: float,
    min_change: float,
) -> list[CursorHit]:
    """The frames from the view's first one up to the oldest held sighting ``oldest`` of shape
    ``t``, newest first, when the pointer was at that spot in the first frame too (and, with
    ``new``, not in ``new``); else none."""
    index, luma = first
    if index >= oldest.index:
        return []
    hx, hy = t.hotspot
    x, y = round(oldest.x) - hx, round(oldest.y) - hy
    score, bx, by = match_in(luma, (x - DRIFT_PX, y - DRIFT_PX, x + DRIFT_PX + 1, y + DRIFT_PX + 1), t, min_contrast)
    if score < min_score or (new is not None and not _left(luma, new, bx, by, t, min_change)):
        return []
    return interpolated(list(range(oldest.index - 1, index - 1, -1)), oldest, index, bx, by, score)


def _covering(x0: int, y0: int, x1: int, y1: int, tw: int, th: int, slack: int = 4) -> tuple[int, int, int, int]:
    """Top-left positions (a box) from which a ``tw`` x ``th`` shape covers the place (x0, y0, x1, y1),
    or lies inside it, give or take ``slack`` px: a small box, so the match is exact (masked)."""
    return (
        min(x0, x1 - tw) - slack,
        min(y0, y1 - th) - slack,
        max(x0, x1 - tw) + slack + 1,
        max(y0, y1 - th) + slack + 1,
    )


def _left(old: np.ndarray, new: np.ndarray, x: float, y: float, t: Template, min_change: float) -> bool:
    """Does ``old`` differ from ``new`` under shape ``t`` with its hotspot at (x, y) (the pointer
    was there in ``old`` and is not in ``new``)? Half of ``min_change`` suffices: part of a
    small pointer's mask is its faint outline."""
    diff = spot_diff(old, new, x, y, t)
    return diff is not None and diff >= 0.5 * min_change


def departed(ref: np.ndarray, t: Template, min_change: float) -> Callable[[np.ndarray, float, float], bool]:
    """The ``differs`` test of :func:`rest_before` and :func:`rest_before_departure`: does a held
    frame differ from ``ref`` (a frame after the pointer left) with shape ``t``'s hotspot at (x, y),
    in the shape's pattern (:func:`~quilt_llava.narratives.templates.shaped_diff`), by at least
    ``min_change``?"""

    def differs(luma: np.ndarray, x: float, y: float) -> bool:
        diff = spot_diff(luma, ref, x, y, t, True)
        return diff is not None and diff >= min_change

    return differs


@dataclass(frozen=True)
class RestProbe:
    index: int  # frame of the track's first hit
    x: float  # its hotspot, full resolution
    y: float
    k: int  # template index


# (index, luma or None (pixels not kept) or an empty array (thinned), has a verified hit)
History = Iterable[tuple[int, "np.ndarray | None", bool]]


def rest_before(
    probe: RestProbe,
    history: History,
    match: Callable[[np.ndarray, float, float], tuple[float, float, float]],
    differs: Callable[[np.ndarray, float, float], bool],
    floor: float,
    radius: float,
) -> list[tuple[int, float, float, float]]:
    """Frames before ``probe.index`` where the pointer rested near the probe's spot, newest first
    walked, returned oldest first: (index, x, y, score).

    ``match(luma, x, y)``: the template's best match near (x, y) in a held frame, (score, x, y);
    ``differs(luma, x, y)``: does that frame differ from the frame after the departure at (x, y)
    in the template's pattern? A frame counts when its match scores at least ``floor`` and
    differs; thinned frames between two that count are interpolated when the pointer moved at
    most ``radius`` px across them."""
    found: list[tuple[int, float, float, float]] = []
    x, y = probe.x, probe.y
    for index, luma, gap in _kept_back(sorted((h for h in history if h[0] < probe.index), key=lambda h: -h[0])):
        score, mx, my = match(luma, x, y)
        if score < floor or not differs(luma, mx, my):
            break
        if gap:
            if math.hypot(mx - x, my - y) > radius:
                break
            later = CursorHit(*found[-1]) if found else CursorHit(probe.index, probe.x, probe.y, score)
            found += [(h.index, h.x, h.y, h.score) for h in interpolated(gap, later, index, mx, my, score)]
        found.append((index, mx, my, score))
        x, y = mx, my
    return found[::-1]


def rest_before_departure(
    history: History,
    before: int,
    seed: tuple[int, int, int, int],
    match: Callable[[np.ndarray, tuple[int, int, int, int]], tuple[float, float, float]],
    near: Callable[[float, float], tuple[int, int, int, int]],
    differs: Callable[[np.ndarray, float, float], bool],
    floor: float,
    radius: float,
    tries: int = DEPARTURE_TRIES,
) -> list[CursorHit]:
    """Frames before ``before`` (the learner's first sighting of a sprite just learned) where the
    pointer rested before it departed, walked newest first, returned oldest first.

    The pointer's rest lies near where it was first seen moving, but not within a step of the walk
    back (``radius``): it sped up from rest over frames whose pixels were thinned. So the first
    frames are matched in ``seed`` (tip positions around that sighting, ``match(luma, box)``), and
    a frame counts when its match scores at least ``floor`` and ``differs`` (from the frame the sprite
    was learned in, in the pointer's pattern: the pointer has left that spot since; tissue that
    merely looks like it never differs from itself). Later frames are matched ``near`` the last
    one counted, within ``radius``. A run of one frame (the pointer still speeding up there) is
    dropped and the seed matched again, in up to ``tries`` frames; a run of two or more ends where
    the next frame does not count. Thinned frames inside a run are interpolated."""
    run: list[CursorHit] = []
    counted = missed = 0  # kept frames in the run; frames matched in the seed that did not start one
    for index, luma, gap in _kept_back(sorted((h for h in history if h[0] < before), key=lambda h: -h[0])):
        score, x, y = match(luma, near(run[-1].x, run[-1].y) if run else seed)
        if score >= floor and differs(luma, x, y):
            if run and gap:
                run += interpolated(gap, run[-1], index, x, y, score)
            run.append(CursorHit(index, x, y, score))
            counted += 1
            continue
        if counted >= DEPARTURE_RUN:
            break
        run, counted = [], 0
        missed += 1
        if missed >= tries:
            break
    return run[::-1] if counted >= DEPARTURE_RUN else []


def _kept_back(
    held_newest_first: Iterable[tuple[int, np.ndarray | None, bool]],
) -> Iterator[tuple[int, np.ndarray, list[int]]]:
    """The held frames that kept their pixels, newest first, each with the indices of the thinned
    frames (pixels not kept) between it and the one yielded before (newest first); stops at a frame
    that already has a verified hit or that holds no pixels at all (None)."""
    gap: list[int] = []
    for index, luma, confirmed in held_newest_first:
        if confirmed or luma is None:
            return
        if not luma.size:
            gap.append(index)
            continue
        yield index, luma, gap
        gap = []
