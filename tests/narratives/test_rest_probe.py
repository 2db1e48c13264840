"""The rest of a pointer before its track began, told by its departure (``narratives/rest_recovery.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives.cursor import AnalysedFrame, CursorConfig, TemplateCursorLocator
from quilt_llava.narratives.rest_recovery import RestProbe, rest_before
from quilt_llava.narratives.templates import make_template, match_in, shaped_diff

cv2 = pytest.importorskip("cv2")

H, W = 240, 320
THINNED = np.empty((0, 0), np.uint8)


def _tissue(seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, size=(H // 4, W // 4)).astype(np.float32)
    tex = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(170 + 35 * tex / (np.abs(tex).max() + 1e-6), 0, 255).astype(np.uint8)


def _with_glass_arrow(base: np.ndarray, tip: tuple[int, int], scale: float, alpha: float) -> np.ndarray:
    """``base`` with a see-through arrow (its template's pixels blended at ``alpha``) at ``tip``."""
    t = make_template(scale)
    out = base.astype(np.float32)
    x0, y0 = tip[0] - t.hotspot[0], tip[1] - t.hotspot[1]
    h, w = t.image.shape
    a = (t.mask > 0) * alpha
    out[y0 : y0 + h, x0 : x0 + w] = (1 - a) * out[y0 : y0 + h, x0 : x0 + w] + a * t.image
    return np.clip(out, 0, 255).astype(np.uint8)


def _walk(history, ref, probe, t, floor=0.45, min_change=20.0):
    def match(luma, x, y):
        hx, hy = t.hotspot
        return match_in(luma, (int(x - hx - 8), int(y - hy - 8), int(x - hx + 9), int(y - hy + 9)), t)

    def differs(luma, x, y):
        x0, y0 = round(x) - t.hotspot[0], round(y) - t.hotspot[1]
        h, w = t.image.shape
        return shaped_diff(luma[y0 : y0 + h, x0 : x0 + w], ref[y0 : y0 + h, x0 : x0 + w], t) >= min_change

    return rest_before(probe, history, match, differs, floor, 8)


@pytest.mark.parametrize("alpha", [1.0, 0.55])
def test_rest_before_finds_a_see_through_pointer_by_its_departure(alpha):
    """A pointer rested at one spot (opaque, or see-through at 55 %), then its track began there
    and it moved away: every held frame of the rest is found (thinned ones interpolated), and
    the walk stops where it had not yet arrived."""
    tissue = _tissue()
    rest = (150, 100)
    t = make_template(1.0)
    frames = [tissue] * 3 + [_with_glass_arrow(tissue, rest, 1.0, alpha)] * 12  # arrives at frame 3
    history = [(i, luma if i % 4 == 0 or i == 14 else THINNED, False) for i, luma in enumerate(frames)]
    found = _walk(history, _with_glass_arrow(tissue, (260, 190), 1.0, alpha), RestProbe(15, *rest, 0), t)
    assert [i for i, *_ in found] == list(range(4, 15))  # frame 3 is thinned, and 0-2 show no pointer
    assert all(abs(x - rest[0]) <= 1 and abs(y - rest[1]) <= 1 for _, x, y, _ in found)


def test_rest_before_finds_nothing_on_a_still_lookalike_or_past_a_verified_frame():
    """Tissue that looks like a pointer never differs from itself, so a track that began on it
    recovers no rest; and a frame that already has a verified hit ends the walk."""
    tissue = _with_glass_arrow(_tissue(), (150, 100), 1.0, 0.6)  # an arrow-like spot of the tissue
    t = make_template(1.0)
    history = [(i, tissue, False) for i in range(10)]
    assert _walk(history, tissue, RestProbe(10, 150, 100, 0), t) == []
    moved = _with_glass_arrow(_tissue(), (260, 190), 1.0, 1.0)
    rested = _with_glass_arrow(_tissue(), (150, 100), 1.0, 1.0)
    history = [(i, rested, i == 6) for i in range(10)]
    assert [i for i, *_ in _walk(history, moved, RestProbe(10, 150, 100, 0), t)] == [7, 8, 9]


@pytest.mark.parametrize("rest_frames", [12, 150])
def test_locator_reports_the_rest_once_the_pointer_left_the_spot(rest_frames):
    """The locator's side: a track verified after a rest keeps the spot as a probe; once the
    pointer is far from it, the frames of the rest get hits and count as verified, a rest of
    6 s at 25 fps (150 frames) whole."""
    tissue = _tissue()
    rest, away = (150, 100), (280, 200)
    loc = TemplateCursorLocator(H, CursorConfig(learn_sprites=False))
    k = 2  # the prior's 720p-size arrow, drawn see-through below
    scale = loc.templates[k].image.shape[0] / make_template(1.0).image.shape[0]
    rested = _with_glass_arrow(tissue, rest, scale, 0.55)
    for i in range(rest_frames):
        loc.history.remember(i, rested, False)
    loc.rests.probe = RestProbe(rest_frames, *rest, k)
    loc.track = (float(away[0]), float(away[1]), k)
    frame = AnalysedFrame(rest_frames + 4, 0.0, _with_glass_arrow(tissue, away, scale, 0.55), None, False)
    hits = loc.rests.probe_rest(frame, loc.track)
    assert [h.index for h in hits] == list(range(0, rest_frames))
    assert all(abs(h.x - rest[0]) <= 1 and abs(h.y - rest[1]) <= 1 for h in hits)
    assert loc.rests.probe is None and all(confirmed for _, _, confirmed in loc.history.frames)


def test_both_rest_walks_see_the_kept_frames_with_the_thinned_ones_between():
    """``_kept_back`` (shared by ``rest_before`` and ``rest_before_move``): kept frames newest first,
    each with the thinned frames since the one before; it stops at a verified frame or one without
    pixels, and thinned frames after the last kept one are not reported."""
    from quilt_llava.narratives.rest_recovery import _kept_back

    kept, thinned = np.zeros((2, 2), np.uint8), np.empty((0, 0), np.uint8)
    held = [(9, kept, False), (8, thinned, False), (7, thinned, False), (6, kept, False), (5, kept, False)]
    walk = [(i, gap) for i, _, gap in _kept_back([*held, (4, thinned, False), (3, kept, True), (2, kept, False)])]
    assert walk == [(9, []), (6, [8, 7]), (5, [])]
    assert [i for i, _, _ in _kept_back([*held[:3], (6, None, False), (5, kept, False)])] == [9]
    assert list(_kept_back([])) == []
