"""A long gap in a moving pointer's hits, followed through by its faint trace (``gap_track.py``)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import quilt_llava.narratives.cursor as cursor
from quilt_llava.narratives.cursor_hits import CursorHit
from quilt_llava.narratives.gap_track import NEG, GapTrackConfig, GapTracker, corridor_box, course
from quilt_llava.narratives.templates import make_template
from quilt_llava.narratives.xcursor import installed_themes
from tests.narratives.scenes import texture, with_cursor
from tests.narratives.test_cursor import _locate

H, W = 240, 320
SPRITE = make_template(1.0)


def _course(n: int = 30) -> list[tuple[int, int]]:
    """A curved course of 5-7 px a frame (turning as it goes)."""
    return [(40 + 7 * i, int(60 + 3 * i + 25 * math.sin(i / 5))) for i in range(n)]


def _drawn(base: np.ndarray, tip: tuple[int, int], levels: float) -> np.ndarray:
    """``base`` with ``SPRITE`` drawn at ``tip``: its dark fill ``levels`` grey levels darker than the
    tissue under it, its outline that much lighter (a pointer the encoder faded to that contrast)."""
    out = base.astype(np.float32)
    th, tw = SPRITE.image.shape
    x0, y0 = tip[0] - SPRITE.hotspot[0], tip[1] - SPRITE.hotspot[1]
    sign = np.where(SPRITE.fill > 0, -1.0, 1.0) * (SPRITE.mask > 0)
    out[y0 : y0 + th, x0 : x0 + tw] += levels * sign
    return out


def _video(tips, faded: set[int], levels: float, seed: int = 0, base: np.ndarray | None = None) -> list[np.ndarray]:
    """Frames of the course: clear (80 levels) except ``faded`` ones; compression-like noise on every
    frame (an 8x8 block re-coded here and there, a grey level or two of flicker)."""
    rng = np.random.default_rng(seed)
    base = texture(H, W, 3).astype(np.float32) if base is None else base.astype(np.float32)
    frames = []
    for i, tip in enumerate(tips):
        f = _drawn(base, tip, levels if i in faded else 80.0) if tip is not None else base.copy()
        f += rng.normal(0, 1.0, f.shape)
        for _ in range(12):  # blocks re-coded: a few grey levels off over 8x8
            by, bx = rng.integers(0, H // 8) * 8, rng.integers(0, W // 8) * 8
            f[by : by + 8, bx : bx + 8] += rng.normal(0, 3.0)
        frames.append(np.clip(np.round(f), 0, 255).astype(np.uint8))
    return frames


def _run(frames, sure: dict[int, tuple[float, float]], reset_at: int | None = None) -> dict[int, tuple[float, float]]:
    """Feed ``frames`` to a tracker with the hits ``sure`` shown as they come; the hits it gives."""
    gaps = GapTracker(GapTrackConfig())
    found = {}
    for i, luma in enumerate(frames):
        if i == reset_at:
            gaps.reset()  # the view moved here (the locator resets on a moving frame)
            continue
        shown = [CursorHit(i, *sure[i], 0.8)] if i in sure else []
        for h in gaps.add(i, luma, shown, [SPRITE]):
            found[h.index] = (h.x, h.y)
    return found


@pytest.mark.parametrize("levels", [12.0, 18.0, 30.0])
def test_a_faded_pointer_between_two_clear_sightings_is_found_on_its_course(levels):
    tips = _course()
    faded = set(range(6, 26))
    sure = {i: tips[i] for i in range(len(tips)) if i not in faded}
    found = _run(_video(tips, faded, levels), sure)
    on = {j for j, p in found.items() if math.dist(p, tips[j]) <= 3}
    assert set(found) <= faded
    assert len(on) >= 0.8 * len(faded), (sorted(on), found)
    assert on == set(found), {j: (found[j], tips[j]) for j in found if j not in on}


def test_a_gap_without_evidence_is_not_filled():
    tips = _course()
    gone = set(range(6, 26))  # the pointer leaves no trace at all in these frames
    frames = _video([None if i in gone else t for i, t in enumerate(tips)], set(), 0.0)
    sure = {i: tips[i] for i in range(len(tips)) if i not in gone}
    assert _run(frames, sure) == {}


def test_a_gap_across_a_view_change_is_not_filled():
    tips = _course()
    faded = set(range(6, 26))
    sure = {i: tips[i] for i in range(len(tips)) if i not in faded}
    assert _run(_video(tips, faded, 30.0), sure, reset_at=15) == {}


def test_an_unanchored_run_is_not_filled():
    """The pointer's first appearance (no sure sighting before the faint frames), a view's end (none
    after them), and a gap with one lone sighting at an end (no step there) get no hits."""
    tips = _course()
    frames = _video(tips, set(range(0, 20)), 30.0)
    assert _run(frames, {i: tips[i] for i in range(20, 30)}) == {}
    frames = _video(tips, set(range(10, 30)), 30.0)
    assert _run(frames, {i: tips[i] for i in range(10)}) == {}
    frames = _video(tips, set(range(6, 26)), 30.0)
    assert _run(frames, {**{i: tips[i] for i in range(6)}, 26: tips[26]}) == {}


def _lookalike_gap():
    """A pointer faded from frame 6 on, whose sightings after the gap are a lookalike drawn into
    the tissue: (the video, its sure sightings)."""
    tips = _course()
    base = texture(H, W, 3)
    look = (tips[26][0] + 30, tips[26][1] - 20)
    base = _drawn(base, look, 80.0)
    sure = {i: tips[i] for i in range(6)} | {26: look, 27: (look[0] + 1, look[1])}
    return _video(tips, set(range(6, 30)), 30.0, base=base), sure


def test_a_gap_to_a_lookalike_is_not_filled():
    """Where the sighting after the gap is tissue that looks like the pointer (it shows the same in
    every frame, it does not stand out of the view without the pointer), no course is drawn to it."""
    assert _run(*_lookalike_gap()) == {}


def test_lookalike_texture_and_noise_beside_the_course_give_no_hits_off_it():
    """Tissue strewn with pointer-like shapes (still: not in the difference) and blotches re-coded by
    the encoder beside the course: every hit given lies on the course."""
    rng = np.random.default_rng(5)
    base = texture(H, W, 7).astype(np.float32)
    tips = _course()
    for _ in range(25):
        base = _drawn(base, (int(rng.integers(10, W - 30)), int(rng.integers(10, H - 40))), 60.0)
    faded = set(range(6, 26))
    frames = _video(tips, faded, 12.0, seed=3, base=np.clip(base, 0, 255))
    for i in sorted(faded)[::3]:  # a bright re-coded blotch near the course, off it
        x, y = tips[i][0] + 18, tips[i][1] + 16
        frames[i] = frames[i].copy()
        frames[i][y : y + 6, x : x + 6] = np.clip(frames[i][y : y + 6, x : x + 6].astype(int) + 25, 0, 255)
    sure = {i: tips[i] for i in range(len(tips)) if i not in faded}
    found = _run(frames, sure)
    assert found
    assert all(math.dist(p, tips[j]) <= 4 for j, p in found.items()), found


def test_corridor_holds_the_course_and_the_sprite_around_it():
    box = corridor_box((100.0, 100.0), (200.0, 100.0), 140.0, [SPRITE], (W, H))
    x0, y0, x1, y1 = box
    th, tw = SPRITE.image.shape
    # the ellipse: 140 px long between tips 100 px apart is ~49 px to each side of the line
    hx, hy = SPRITE.hotspot
    assert x0 <= 100 - 20 - hx and x1 >= 200 + 20 + tw - hx and y0 <= 100 - 49 - hy and y1 >= 100 + 49 + th - hy
    assert (x1 - x0) * (y1 - y0) < W * H


@pytest.mark.skipif(
    "Adwaita" not in installed_themes(),
    reason="cursor themes missing: run scripts/install_cursor_themes.sh (make test does)",
)
def test_a_real_cursor_faded_mid_course_is_followed_through_by_the_locator(monkeypatch):
    """Adwaita's arrow moving 7-8 px a frame over tissue, faded to a tenth of its contrast for 12
    frames of its course (a small pointer at heavy compression): the locator, which learns the
    arrow as it first moves, gives those frames hits on the course; with no gap tracking, not."""
    tips = [(30 + 7 * i, 60 + 3 * i) for i in range(34)]
    faded = set(range(16, 28))
    base = texture(H, W, 4)
    rng = np.random.default_rng(1)
    frames = []
    for i, tip in enumerate(tips):
        drawn = with_cursor(base, "Adwaita", "arrow", 24, tip).astype(np.float32)
        f = base + (0.1 if i in faded else 1.0) * (drawn - base) + rng.normal(0, 1.5, base.shape)
        frames.append(np.clip(np.round(f), 0, 255).astype(np.uint8))
    monkeypatch.setattr(cursor, "GAPS", GapTrackConfig(max_gap=0))
    alone = {i for i, p in _locate(frames).items() if i in faded and math.dist(p, tips[i]) <= 6}
    monkeypatch.setattr(cursor, "GAPS", GapTrackConfig())
    hits = _locate(frames)
    near = {i for i, p in hits.items() if i in faded and math.dist(p, tips[i]) <= 6}
    assert len(near) >= len(alone) + 6, (sorted(near), sorted(alone))
    assert all(math.dist(hits[i], tips[i]) <= 6 for i in faded if i in hits)


def test_course_is_the_best_path_a_brute_force_finds():
    """The Viterbi course (two separable passes per frame) against every path on a small grid, scored
    by the stated rule: evidence summed, less cost x |step - mean step|^2, steps within ``reach`` on
    each axis of the mean step."""
    rng = np.random.default_rng(4)
    n, h, w, reach, cost = 4, 4, 5, 2, 0.7
    z = rng.normal(0, 3, (n + 1, h, w)).astype(np.float32)
    z[:, 0, 4] = NEG  # a cell the course cannot take
    z[0] = NEG
    z[n] = NEG
    start, end = (0, 0), (3, 4)
    z[0][start] = 0.0
    z[n][end] = 0.0
    mean = ((end[0] - start[0]) / n, (end[1] - start[1]) / n)
    shifts = [
        (round((j + 1) * mean[0]) - round(j * mean[0]), round((j + 1) * mean[1]) - round(j * mean[1])) for j in range(n)
    ]

    def score(path):
        total = 0.0
        for j in range(1, n + 1):
            dr = path[j][0] - path[j - 1][0] - shifts[j - 1][0]
            dc = path[j][1] - path[j - 1][1] - shifts[j - 1][1]
            if abs(dr) > reach or abs(dc) > reach or z[j][path[j]] < NEG / 2:
                return None
            total += float(z[j][path[j]]) - cost * (dr * dr + dc * dc)
        return total

    cells = [(r, c) for r in range(h) for c in range(w)]
    best = max(
        (v, p)
        for mid in itertools.product(cells, repeat=n - 1)
        if (v := score([start, *mid, end])) is not None
        for p in [[start, *mid, end]]
    )
    found = course(z, start, end, mean, reach, cost)
    assert found is not None
    assert score(found) == pytest.approx(best[0], abs=1e-3)


def test_a_gap_to_a_lookalike_is_given_up_before_the_frames_between_are_scored(monkeypatch):
    """The anchors' frames are scored first: where an anchor does not stand out (a lookalike), the
    evidence of the frames between is never worked out (the answer is the same: no hits)."""
    import quilt_llava.narratives.gap_track as gap_track

    frames, sure = _lookalike_gap()
    scored = []
    original = gap_track.evidence
    monkeypatch.setattr(gap_track, "evidence", lambda diff, t: scored.append(diff.shape) or original(diff, t))
    assert _run(frames, sure) == {}
    assert len(scored) == 2  # the two anchors' frames (one sprite), not all 22, frames 5 to 26


def test_max_plus_is_the_brute_force_maximum_with_the_first_shift_on_ties():
    """The in-place max-plus pass: out[i] = max over |d| <= reach of a[i - d] - cost d^2, the shift
    taken the first one (from -reach up, 0 first of all) that scores strictly higher."""
    from quilt_llava.narratives.gap_track import _max_plus

    rng = np.random.default_rng(2)
    a = rng.integers(-3, 4, (6, 7)).astype(np.float32)  # whole numbers: many ties
    a[2, 3] = NEG
    reach, cost = 2, 0.5
    for axis in (0, 1):
        out, arg = _max_plus(a, reach, cost, axis)
        size = a.shape[axis]
        for i, j in np.ndindex(a.shape):
            best, taken = a[i, j], 0
            for d in range(-reach, reach + 1):
                k = (i - d, j) if axis == 0 else (i, j - d)
                if d == 0 or not 0 <= k[axis] < size:
                    continue
                cand = np.float32(a[k] - np.float32(cost * d * d))
                if cand > best:
                    best, taken = cand, d
            assert out[i, j] == best and arg[i, j] == taken, (axis, i, j)


@pytest.mark.parametrize("count", range(1, 10))
def test_median_frames_is_numpys_median_cast_to_grey_levels(count):
    """The gap's view without the pointer: the sorting-network median of 1-9 frames (strided crops)
    equals ``np.median`` along the stacked axis cast to uint8, for odd and even counts."""
    from quilt_llava.narratives.gap_track import median_frames

    rng = np.random.default_rng(count)
    for _ in range(3):
        frames = [rng.integers(0, 256, (40, 50), dtype=np.uint8)[2:37, 3:45] for _ in range(count)]
        frames[0][:5] = 255  # ties and extremes
        expected = np.median(np.stack(frames), axis=0).astype(np.uint8)
        before = [f.copy() for f in frames]
        got = median_frames(frames)
        assert got.dtype == np.uint8 and np.array_equal(got, expected)
        assert all(np.array_equal(f, b) for f, b in zip(frames, before))  # the frames are not written to


def test_evidence_kernel_is_made_once_per_sprite_and_is_the_masks_mean_less_the_rings():
    """A gap's frames share their sprite's evidence kernel (made once, not per frame); it sums to 0
    (the mask's mean less the ring's), and a sprite made afresh gets its own."""
    from quilt_llava.narratives.gap_track import _evidence_kernel

    kernel, anchor = _evidence_kernel(SPRITE)
    again, _ = _evidence_kernel(SPRITE)
    assert again is kernel
    assert anchor == (SPRITE.hotspot[0] + 2, SPRITE.hotspot[1] + 2)
    assert abs(float(kernel.sum())) < 1e-5 and kernel.max() > 0 > kernel.min()
    other = make_template(1.0)
    assert _evidence_kernel(other)[0] is not kernel
    assert np.array_equal(_evidence_kernel(other)[0], kernel)
