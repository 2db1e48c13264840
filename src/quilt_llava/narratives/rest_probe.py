"""Where a pointer rested before a track found it, told by its departure.

A learned sprite is seen while the pointer moves; where the pointer *rests* over other
tissue, a see-through or heavily compressed pointer may match that sprite too weakly to be
believed (a redglass arrow at CRF 36 scores 0.5-0.7 at rest, as tissue does). Its departure
settles it: once the pointer has moved away from the spot where its track began, that spot
shows the tissue it covered, and every earlier frame in which the pointer still rested there
differs from it *in the pointer's pattern* (see ``templates._shaped_diff``), whatever the tissue
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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np


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
    from quilt_llava.narratives.cursor import CursorHit, interpolated  # cursor imports this module

    found: list[tuple[int, float, float, float]] = []
    x, y = probe.x, probe.y
    gap: list[int] = []
    for index, luma, confirmed in sorted((h for h in history if h[0] < probe.index), key=lambda h: -h[0]):
        if confirmed or luma is None:
            break
        if luma.size == 0:
            gap.append(index)
            continue
        score, mx, my = match(luma, x, y)
        if score < floor or not differs(luma, mx, my):
            break
        if gap:
            if math.hypot(mx - x, my - y) > radius:
                break
            later = CursorHit(*found[-1]) if found else CursorHit(probe.index, probe.x, probe.y, score)
            found += [(h.index, h.x, h.y, h.score) for h in interpolated(gap, later, index, mx, my, score)]
            gap = []
        found.append((index, mx, my, score))
        x, y = mx, my
    return found[::-1]
