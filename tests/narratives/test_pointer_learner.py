"""The sprite learner (``narratives/pointer.py``) on a pointer moving over tissue-like texture."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from quilt_llava.narratives.pointer import Candidate, SpriteConfig, SpriteLearner, template_from_sprite
from quilt_llava.narratives.templates import Template, masked_ncc


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).normal(0, 1, (h, w)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (70 + 120 * smooth).astype(np.uint8)


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) covering boxes ``a`` and ``b``: where a pointer moving from one to the
    other changed the frame."""
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _pointed_at(frame: np.ndarray, template: Template) -> tuple[int, int]:
    """Where ``template`` points in ``frame``: its hotspot at its best match (masked NCC)."""
    res = masked_ncc(frame, template)
    y, x = np.unravel_index(int(np.argmax(res)), res.shape)
    return int(x) + template.hotspot[0], int(y) + template.hotspot[1]


def _learned_along(
    learner: SpriteLearner,
    background: np.ndarray,
    mask: np.ndarray,
    frames: int,
    place: Callable[[int], tuple[int, int]],
    look: Callable[[int], np.ndarray],
    moves_from: int = 0,
    paint: Callable[[int, np.ndarray], None] | None = None,
) -> list[tuple[int, int, int]]:
    """Feed ``learner`` a pointer (``look(i)``'s grey levels on ``mask``) drawn at ``place(i)`` (its
    top-left) over ``background`` (``paint(i, frame)`` first, where given), with the box it changed
    as a motion blob from frame ``moves_from`` on; returns (frame, where each learned sprite points
    from the pointer's top-left, x and y)."""
    h, w = mask.shape
    found, last = [], None
    for i in range(frames):
        x, y = place(i)
        frame = background.copy()
        if paint is not None:
            paint(i, frame)
        frame[y : y + h, x : x + w][mask] = look(i)[mask]
        box = (x, y, x + w, y + h)
        blobs = [] if i < moves_from else [box if last is None else _union(box, last)]
        last = box
        for t in learner.observe(i, frame, blobs):
            tip_x, tip_y = _pointed_at(frame, t)
            found.append((i, tip_x - x, tip_y - y))
    return found


def _sprite() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 20 x 28 arrow-like shape, its tip at (0, 0): (mask, fill, outline) as bool arrays."""
    import cv2

    mask = np.zeros((28, 20), np.uint8)
    cv2.fillPoly(mask, [np.array([(0, 0), (0, 26), (7, 20), (12, 27), (16, 25), (11, 18), (19, 18)], np.int32)], 255)
    fill = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2) > 0
    return mask > 0, fill, (mask > 0) & ~fill


def _moving_pointer_learned(learner: SpriteLearner, frames: int = 24) -> list:
    """Feed ``learner`` an opaque pointer (dark fill, light outline) moving 12 px a frame over
    tissue-like texture; returns the sprites it learned."""
    mask, fill, _ = _sprite()
    background = _texture(360, 640, seed=3)
    h, w = mask.shape
    learned = []
    last = None
    for i in range(frames):
        x, y = 60 + 11 * i, 80 + 5 * i
        frame = background.copy()
        view = frame[y : y + h, x : x + w]
        view[mask] = np.where(fill, 30, 235)[mask]
        box = (x, y, x + w, y + h)
        if last is not None:
            box = _union(box, last)
        last = (x, y, x + w, y + h)
        learned += learner.observe(i, frame, [box])
    return learned


def test_a_moving_pointer_is_learned_with_its_tip() -> None:
    learned = _moving_pointer_learned(SpriteLearner(720))
    assert len(learned) == 1
    # The tip is the top-left corner (one outline width in, at most), wherever the learned crop
    # starts (it is cropped to the pixels that moved).
    assert learned[0].image.shape[0] >= 26 and learned[0].image.shape[1] >= 18
    assert max(learned[0].hotspot) <= 3


def test_a_new_shape_is_learned_after_many_sprites_of_one_translucent_pointer() -> None:
    """A translucent pointer seen over dark and light tissue is learned as several sprites
    (they do not match each other well enough to be one); the shape it turns into later
    must still be learned (handhelds-480p: its hand, after eight arrows and crosshairs)."""
    learner = SpriteLearner(720)
    rng = np.random.default_rng(5)
    for _ in range(9):  # nine earlier sprites, none like the new shape
        patch = rng.integers(0, 256, (20, 16)).astype(np.uint8)
        learner.learned.append(template_from_sprite(patch, np.full(patch.shape, 255, np.uint8), (0, 0)))
    assert len(_moving_pointer_learned(learner)) == 1


def test_the_cap_on_sprites_still_holds() -> None:
    learner = SpriteLearner(720, SpriteConfig(max_sprites=2))
    patch = np.random.default_rng(1).integers(0, 256, (20, 16)).astype(np.uint8)
    learner.learned += [template_from_sprite(patch, np.full(patch.shape, 255, np.uint8), (0, 0))] * 2
    assert _moving_pointer_learned(learner) == []


def _see_through_sightings(n: int, seed: int, rigid: bool = True) -> list[Candidate]:
    """``n`` sightings of a see-through pointer (half of the tissue shows through its fill, 40 %
    through its outline, with compression-like noise) over different tissue, 3 frames and 70+ px
    apart; with ``rigid`` False, each sighting a different random blotch of the same outline."""
    mask, fill, _ = _sprite()
    rng = np.random.default_rng(seed)
    tissue = _texture(400, 400, seed=seed)
    image = np.where(fill, 120.0, 50.0)
    alpha = np.where(fill, 0.5, 0.6)
    sightings = []
    for j in range(n):
        x, y = 30 + 70 * j, 40 + 60 * j
        under = tissue[y : y + 28, x : x + 20].astype(np.float32)
        seen = under * (1 - alpha) + (image if rigid else rng.uniform(40, 200, image.shape)) * alpha
        seen = np.clip(np.round(seen + rng.normal(0, 10, seen.shape)), 0, 255).astype(np.uint8)
        sightings.append(
            Candidate(10 + 3 * j, x, y, np.where(mask, seen, under.astype(np.uint8)), mask * np.uint8(255))
        )
    return sightings


@pytest.mark.parametrize("seed", [4, 9, 17])
def test_a_see_through_pointer_is_verified_by_several_weaker_sightings(seed: int) -> None:
    """Over different tissue, no two sightings of a see-through pointer match at ``agree_score``
    (0.8), but the newest matches each of the earlier ones at 0.72 or better: it is learned now,
    with its tip (redglass-crf36's arrow: learned 12 frames sooner, arrow recall 0.78 -> 0.93)."""
    *earlier, newest = _see_through_sightings(4, seed)
    learner = SpriteLearner(720)
    learner.candidates.extend(earlier)
    template = learner._verify(newest)
    assert template is not None
    assert max(template.hotspot) <= 2
    # Not by the pair rule alone: the weaker sightings are what verify it.
    strict = SpriteLearner(720, SpriteConfig(agree_many=99))
    strict.candidates.extend(earlier)
    assert strict._verify(newest) is None


def test_one_weaker_sighting_or_changing_content_is_not_a_sprite() -> None:
    *earlier, newest = _see_through_sightings(4, 4)
    learner = SpriteLearner(720)
    learner.candidates.append(earlier[-1])  # one sighting at 0.72-0.8: not enough
    assert learner._verify(newest) is None
    *earlier, newest = _see_through_sightings(4, 4, rigid=False)  # an outline whose content changes
    learner = SpriteLearner(720)
    learner.candidates.extend(earlier)
    assert learner._verify(newest) is None


def _drawn_crosshair(arm: int, width: float, fx: float, fy: float) -> tuple[np.ndarray, np.ndarray]:
    """A thin black crosshair (arms ``arm`` px from its centre, ``width`` px wide, anti-aliased,
    a 3 px gap around a dot at the centre) with its centre at (arm + 2 + fx, arm + 2 + fy):
    (alpha 0-1, grey level) images."""
    import cv2

    n = 2 * arm + 5
    k = 8  # drawn 8x finer, then averaged down: sub-pixel position and anti-aliasing
    big = np.zeros((n * k, n * k), np.float32)
    cx, cy = (arm + 2 + fx) * k + k / 2, (arm + 2 + fy) * k + k / 2
    half, gap = width * k / 2, 3 * k

    def bar(x0: float, y0: float, x1: float, y1: float) -> None:
        big[round(y0) : round(y1), round(x0) : round(x1)] = 1

    bar(cx - arm * k, cy - half, cx - gap, cy + half)
    bar(cx + gap, cy - half, cx + arm * k, cy + half)
    bar(cx - half, cy - arm * k, cx + half, cy - gap)
    bar(cx - half, cy + gap, cx + half, cy + arm * k)
    bar(cx - k, cy - k, cx + k, cy + k)  # the centre dot
    alpha = cv2.resize(big, (n, n), interpolation=cv2.INTER_AREA)
    return alpha, np.full((n, n), 15.0, np.float32)


def _theme_sprite_at(theme: str, shape: str, size: int, fx: float, fy: float) -> tuple[np.ndarray, np.ndarray, tuple]:
    """An installed theme's cursor shifted by (fx, fy) px (bilinear, as a scaled recording shows
    it): (alpha, grey, hotspot of the shifted image, integer part)."""
    import cv2

    from quilt_llava.narratives.synthetic import theme_sprite

    s = theme_sprite(theme, shape, size)
    grey = s.rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    alpha = s.alpha[..., 0].astype(np.float32)
    h, w = alpha.shape
    m = np.float32([[1, 0, 1 + fx], [0, 1, 1 + fy]])
    pre = cv2.warpAffine(grey * alpha, m, (w + 3, h + 3), flags=cv2.INTER_LINEAR)
    a = cv2.warpAffine(alpha, m, (w + 3, h + 3), flags=cv2.INTER_LINEAR)
    return a, np.where(a > 1e-3, pre / np.maximum(a, 1e-3), 0), (s.hotspot[0] + 1, s.hotspot[1] + 1)


def _learn_sub_pixel(
    draw,
    centre: tuple[float, float],
    frames: int = 30,
    step: tuple[float, float] = (9.3, 4.6),
    level: tuple[float, float] = (70.0, 1.0),
    config: SpriteConfig | None = None,
) -> list:
    """Feed a learner a pointer moving ``step`` px a frame (9.3 right, 4.6 down) over tissue-like
    texture (quarter-pixel positions, so each frame shows it at another sub-pixel phase);
    ``draw(fx, fy)`` gives (alpha, grey) for the pointer with ``centre`` shifted by (fx, fy).
    ``level``: the texture's grey levels are ``level[0] + level[1] * (v - 70)`` (70-190 as made).
    Returns the learned templates with where their hotspot fell in the frame it was learned on."""
    background = level[0] + level[1] * (_texture(360, 640, seed=11).astype(np.float32) - 70)
    learner = SpriteLearner(720, config)
    found, last = [], None
    for i in range(frames):
        px, py = 40 + step[0] * i, 30 + step[1] * i
        ix, iy = int(px), int(py)
        alpha, grey = draw(round((px - ix) * 4) / 4, round((py - iy) * 4) / 4)
        h, w = alpha.shape
        frame = background.copy()
        frame[iy : iy + h, ix : ix + w] = (1 - alpha) * frame[iy : iy + h, ix : ix + w] + alpha * grey
        luma = np.clip(np.round(frame), 0, 255).astype(np.uint8)
        box = (ix, iy, ix + w, iy + h)
        if last is not None:
            box = _union(box, last)
        last = (ix, iy, ix + w, iy + h)
        for t in learner.observe(i, luma, [box]):
            # Where the learned sprite (cropped to its mask) lies: match it on the frame.
            found.append((t, _pointed_at(luma, t), (centre[0] + px, centre[1] + py)))
    return found


@pytest.mark.parametrize("width", [1.0, 2.0])
def test_a_thin_crosshair_at_sub_pixel_positions_is_learned_whole_with_its_centre(width: float) -> None:
    """Two sightings of a 1-2 px crosshair at different sub-pixel phases put its arms on
    neighbouring pixels: the sprite they share must still be the whole cross, and its hotspot
    its centre (the independent corpus's thin crosshair: before, three arms were learned and the
    hotspot put at an arm's end, 15 px off; recall 0.016)."""
    arm = 19
    found = _learn_sub_pixel(lambda fx, fy: _drawn_crosshair(arm, width, fx, fy), (arm + 2, arm + 2))
    assert found, "the crosshair was never learned"
    t, hot, truth = found[0]
    assert min(t.mask.shape) >= 2 * arm - 2, t.mask.shape  # all four arms
    assert np.hypot(hot[0] - truth[0], hot[1] - truth[1]) <= 2.0, (hot, truth)


@pytest.mark.parametrize(
    ("theme", "shape", "size", "tolerance"),
    [("DMZ-Black", "crosshair", 32, 3.0), ("Adwaita", "crosshair", 32, 3.0), ("DMZ-White", "arrow", 24, 5.0)],
)
def test_theme_cursors_at_sub_pixel_positions_keep_their_hotspot(
    theme: str, shape: str, size: int, tolerance: float
) -> None:
    """Real cursor-theme sprites moving at sub-pixel positions are learned with their hotspot:
    a crosshair's centre within 3 px (Adwaita's was put at its top end, 12.5 px off, before the
    near-symmetric rule: the learned mask's arms are 8 and 6 px thick); the arrow's tip within
    5 px (it lands 4.2 px off: the learned mask loses the thin outline at the tip; not fixed)."""
    from quilt_llava.narratives.xcursor import installed_themes

    if theme not in installed_themes():
        pytest.skip(f"cursor theme {theme} not installed")
    hot0 = _theme_sprite_at(theme, shape, size, 0, 0)[2]
    found = _learn_sub_pixel(lambda fx, fy: _theme_sprite_at(theme, shape, size, fx, fy)[:2], hot0)
    assert found, "never learned"
    _t, hot, truth = found[0]
    assert np.hypot(hot[0] - truth[0], hot[1] - truth[1]) <= tolerance, (hot, truth)


def _glowing_dot(cx: float, cy: float, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """A laser-pointer dot centred at (cx, cy) of a (2 size, 2 size) patch: a solid red core and a
    soft glow (``alpha``, ``grey``), as screen recorders draw a presenter's laser."""
    yy, xx = np.mgrid[0 : 2 * size, 0 : 2 * size].astype(np.float32)
    r = np.hypot(xx - cx, yy - cy) / size
    core = np.clip((0.16 - r) / 0.04 + 0.5, 0, 1)
    alpha = np.clip(core + 0.55 * np.exp(-((r / 0.3) ** 2)) * (1 - core), 0, 1)
    return alpha, np.full(alpha.shape, 100.0, np.float32) + 120 * core * np.exp(-((r / 0.08) ** 2))


def _moved_box(small: np.ndarray, previous: np.ndarray | None) -> list[tuple[int, int, int, int]]:
    """The box (full-size px, a quarter-size frame) around what changed by more than 8 grey levels."""
    if previous is None:
        return []
    ys, xs = np.nonzero(np.abs(small - previous) > 8)
    if not xs.size:
        return []
    return [(4 * int(xs.min()), 4 * int(ys.min()), 4 * int(xs.max()) + 4, 4 * int(ys.max()) + 4)]


def _drifting(
    draw,
    speed: float,
    frames: int,
    config: SpriteConfig | None = None,
    known: list | None = None,
    slope: float = 0.7,
    ignore: np.ndarray | None = None,
) -> list:
    """Feed a learner a pointer drifting ``speed`` px a frame (right and ``slope`` x that down, at
    sub-pixel positions) over pale tissue-like texture, with the frame-to-frame blobs the locator would pass
    (the box of what changed by more than 8 grey levels at a quarter of the size: the
    locator's motion image, with a little compression noise); ``draw(fx, fy)`` gives (alpha, grey)
    with the hotspot at (fx, fy) of the patch. Returns (learned template, where its hotspot fell,
    where the pointer's hotspot was) for each sprite learned. ``ignore``: a webcam's cells (at a
    quarter of the frame), passed on to the learner."""
    import cv2

    background = (_texture(240, 320, seed=7).astype(np.float32) * 0.4 + 130).astype(np.float32)
    learner = SpriteLearner(720, config)
    learner.learned += known or []  # shapes learned before
    found, previous = [], None
    for i in range(frames):
        px, py = 100 + speed * i, 80 + slope * speed * i
        alpha, grey = draw(px - int(px) + 30, py - int(py) + 30)
        h, w = alpha.shape
        frame = background.copy()
        x0, y0 = int(px) - 30, int(py) - 30
        frame[y0 : y0 + h, x0 : x0 + w] = (1 - alpha) * frame[y0 : y0 + h, x0 : x0 + w] + alpha * grey
        luma = np.clip(np.round(frame), 0, 255).astype(np.uint8)
        small = cv2.resize(luma, (80, 60), interpolation=cv2.INTER_AREA).astype(int)
        blobs, previous = _moved_box(small, previous), small
        learned = learner.observe(i, luma, blobs) if ignore is None else learner.observe(i, luma, blobs, ignore, 4)
        for t in learned:
            found.append((t, _pointed_at(luma, t), (px, py)))
    return found


def test_a_slowly_drifting_glowing_dot_is_learned_with_its_centre() -> None:
    """A laser dot held by hand drifts under a pixel a frame: against the frames 2 and 6 back only
    its edge differs, so no sighting was whole and it was never learned (the independent corpus's
    laser over pale tissue: recall 0.04). Cut against the median of the view's sparse held frames
    it is whole, and learned with its centre as the hotspot."""
    found = _drifting(_glowing_dot, 0.4, 120, SpriteConfig(slow_cut=True))
    assert found, "the drifting dot was never learned"
    _t, hot, truth = found[0]
    assert np.hypot(hot[0] - truth[0], hot[1] - truth[1]) <= 2.0, (hot, truth)
    # Without the median cut (off by default), nothing is learned.
    assert _drifting(_glowing_dot, 0.4, 120) == []


def test_the_median_cut_is_used_only_while_no_shape_is_known() -> None:
    """Once a sprite is learned from motion, a slow cut of the pointer dwelling could only add a
    worse one (whiteglass-480p's crosshair learned again from such cuts, its hotspot 10 px off:
    recall 0.997 -> 0.720), so the median cut stops."""
    known = template_from_sprite(np.full((12, 12), 90, np.uint8), np.full((12, 12), 255, np.uint8), (0, 0))
    assert _drifting(_glowing_dot, 0.4, 120, SpriteConfig(slow_cut=True), known=[known]) == []


def test_an_arrow_that_barely_drifts_is_not_learned_as_a_piece() -> None:
    """An arrow that drifts less than its own size over the frames held is in most of them at
    nearly the same place, so their median keeps part of it and the cut is a piece of the arrow
    (its outline without the tip; he-full-mac-720p lost its tip, recall 0.997 -> 0.070). Such a
    cut is not a sighting: whatever is learned points at the arrow's tip."""
    mask, fill, _ = _sprite()

    def arrow(fx: float, fy: float) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        alpha = np.zeros((60, 60), np.float32)
        grey = np.zeros((60, 60), np.float32)
        alpha[: mask.shape[0], : mask.shape[1]] = mask
        grey[: mask.shape[0], : mask.shape[1]] = np.where(fill, 30, 235)
        m = np.float32([[1, 0, fx], [0, 1, fy]])
        a = cv2.warpAffine(alpha, m, (60, 60), flags=cv2.INTER_LINEAR)
        g = cv2.warpAffine(grey * alpha, m, (60, 60), flags=cv2.INTER_LINEAR)
        return a, np.where(a > 1e-3, g / np.maximum(a, 1e-3), 0)

    for _t, hot, truth in _drifting(arrow, 0.2, 150, SpriteConfig(slow_cut=True)):
        assert np.hypot(hot[0] - truth[0], hot[1] - truth[1]) <= 4.0, (hot, truth)


@pytest.mark.parametrize(("apart", "learned"), [(6, False), (40, True)])
def test_a_slow_sighting_beside_another_must_share_nearly_all_of_it(apart: int, learned: bool) -> None:
    """Two sightings of a pointer dwelling in one spot, one cut against the median of the held
    frames (slow), lose the same edge to it (he-full-mac-720p draw 2: an arrow learned without its
    tip, its hotspot put at its tail; recall 0.997 -> 0.861): beside each other (less than their
    extent apart) they must share 0.9 of both; sightings clear of each other, 0.75 as before."""
    mask, fill, _ = _sprite()
    image = _texture(28, 20, seed=2)
    image[mask] = np.where(fill, 30, 235)[mask]
    whole = np.where(mask, 255, 0).astype(np.uint8)
    cut = whole.copy()
    cut[:, :3] = 0  # the tip's side lost to the median
    learner = SpriteLearner(720)
    slow = Candidate(50, 100, 100, image, cut, slow=True)
    other = Candidate(30, 100 + apart, 100, image.copy(), whole)
    decided, template = learner._shared(slow, other, 0, 0, whole=False)
    assert decided == learned and (template is not None) == learned


def _flat_arrow(fx: float, fy: float, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A flat-filled arrow pointing left, ``size`` px long, with no outline (one grey level over
    all of it), its tip at (fx, fy) of a (size + 40, size + 40) patch: (alpha, grey)."""
    import cv2

    s = size / 64
    poly = np.array([(0, 20), (26, 0), (26, 12), (64, 12), (64, 28), (26, 28), (26, 40)], np.float32) * s
    n = size + 40
    alpha = np.zeros((n, n), np.float32)
    cv2.fillPoly(alpha, [np.round(poly * 8).astype(np.int32)], 1.0, shift=3)
    m = np.float32([[1, 0, fx], [0, 1, fy - 20 * s]])
    a = cv2.warpAffine(alpha, m, (n, n), flags=cv2.INTER_LINEAR)
    return a, np.full((n, n), 80.0, np.float32)


def test_a_slowly_moving_flat_filled_pointer_is_learned_whole_with_its_tip() -> None:
    """A large pointer with a flat fill moving 2 px a frame along its length overlaps its own place
    in the frames 2 and 6 back, so only its moved edges across the motion differ from both (the
    independent corpus's 64 px handhelds theme: learned as 5-22 px slivers, recall 0.002). The flat
    region those edges bound is the pointer: it is learned whole, and points with its tip."""
    found = _drifting(_flat_arrow, 2.0, 50, slope=0.0)
    assert found, "the flat-filled arrow was never learned"
    t, hot, truth = found[0]
    h, w = t.image.shape
    assert w >= 64 and h >= 40, (w, h)
    assert np.hypot(hot[0] - truth[0], hot[1] - truth[1]) <= 3.0, (hot, truth)
    # Without it, the sprites learned are slivers of the arrow pointing well away from its tip.
    for t, hot, truth in _drifting(_flat_arrow, 2.0, 50, SpriteConfig(fill_grow=False), slope=0.0):
        assert t.image.shape[1] < 32 and np.hypot(hot[0] - truth[0], hot[1] - truth[1]) > 10


def test_the_moved_edge_of_a_flat_area_larger_than_a_pointer_is_not_a_sprite() -> None:
    """The flat region the moved edges bound must be closed and of pointer size: the edge of a large
    flat panel sliding over the tissue bounds a region larger than any pointer."""
    found = _drifting(lambda fx, fy: _flat_arrow(fx, fy, size=150), 2.0, 30, slope=0.0)
    assert all(max(t.image.shape) <= SpriteLearner(720).max_px for t, _h, _tr in found)


def test_a_flat_filled_pointer_is_learned_once_and_not_beside_a_webcam() -> None:
    """Learned whole, the flat pointer is learned once over a long drift (later flat sightings are
    the known sprite); and a flat region whose box reaches into the known webcam region is not
    learned at all (a synthetic webcam's flat shapes move rigidly too, and only its busiest cells
    are marked): what is learned then is the plain path's slivers."""
    found = _drifting(_flat_arrow, 2.0, 70, slope=0.0)
    assert len(found) == 1, [t.image.shape for t, _h, _tr in found]

    ignore = np.zeros((60, 80), bool)
    ignore[14, 20:76] = True  # busy cells of a webcam's edge just above the pointer's path
    learned = [t for t, _h, _tr in _drifting(_flat_arrow, 2.0, 50, slope=0.0, ignore=ignore)]
    assert all(t.image.shape[1] < 32 for t in learned), [t.image.shape for t in learned]


def test_a_moved_edge_of_a_flat_pointer_is_not_learned_as_its_sprite() -> None:
    """Where the flat region cannot be learned (here: it reaches into a webcam's cells), the plain
    path's sightings of a flat arrow moving less than its size are its moved edges, rigid and moving
    as the arrow does: slivers a few px wide, learned on main and tracked over tissue (draw 12's
    he-handhelds: a 5 x 12 px trailing edge of the 64 px hand, 60 px off, recall 0.006). A flat region
    of ``fill_gain`` times their area holds them, so they are not learned (``fill_edges``)."""
    ignore = np.zeros((60, 80), bool)
    ignore[14, 20:76] = True  # busy cells of a webcam's edge just above the pointer's path
    assert _drifting(_flat_arrow, 2.0, 50, slope=0.0, ignore=ignore) == []
    # Without the check, the slivers are learned (as before it), pointing well away from the tip.
    slivers = _drifting(_flat_arrow, 2.0, 50, SpriteConfig(fill_edges=False), slope=0.0, ignore=ignore)
    assert slivers
    for t, hot, truth in slivers:
        assert t.image.shape[1] < 32 and np.hypot(hot[0] - truth[0], hot[1] - truth[1]) > 10
    # A pointer seen whole by its moved pixels (moving more than its size) is not held by a flat
    # region larger than it, and is learned as without the check.
    small = lambda fx, fy: _flat_arrow(fx, fy, size=20)  # noqa: E731
    found = [(t.image.shape, hot) for t, hot, _tr in _drifting(small, 6.0, 30, slope=0.0)]
    assert found and found == [
        (t.image.shape, hot) for t, hot, _tr in _drifting(small, 6.0, 30, SpriteConfig(fill_edges=False), slope=0.0)
    ]


def test_a_flat_pointer_in_its_own_busy_haunt_is_learned_and_the_haunt_claimed() -> None:
    """A 64 px pointer moving about one spot keeps that spot as busy as a webcam, and the caller marks
    it ignored (draw 12's he-handhelds, from frame 10: its flat sightings all refused, view 0 lost).
    Where only the pointer changed the region and its sightings cover most of it, its flat sighting
    is learned there and the region is claimed as its haunt (``fill_haunts``); off, it is not learned."""
    haunt = np.zeros((60, 80), bool)
    haunt[14:27, 24:58] = True  # the cells the arrow's first frames kept busy (quarter scale)
    found = _drifting(_flat_arrow, 2.0, 40, slope=0.0, ignore=haunt)
    assert found, "the flat arrow in its haunt was never learned"
    t, hot, truth = found[0]
    assert t.image.shape[1] >= 64 and np.hypot(hot[0] - truth[0], hot[1] - truth[1]) <= 3.0, (t.image.shape, hot)
    assert _drifting(_flat_arrow, 2.0, 40, SpriteConfig(fill_haunts=False), slope=0.0, ignore=haunt) == []


def test_a_webcam_shape_is_not_learned_in_the_webcam() -> None:
    """A synthetic webcam (a bobbing head over a moving gradient with sensor noise) marked ignored:
    its head is a flat shape moving rigidly (its flat sightings there verify dozens of times), but
    the picture changes beyond it and the head covers a part of the box only, so no flat sprite is
    learned there and nothing is claimed (``SpriteLearner._moved_alone``): what is learned is what
    the learner learns with ``fill_haunts`` off (the plain path's sightings, which a webcam does not
    stop)."""
    import cv2

    from quilt_llava.narratives.synthetic import draw_webcam

    background = (_texture(360, 480, seed=3).astype(np.float32) * 0.4 + 130).astype(np.uint8)
    box = (300, 220, 460, 340)
    ignore = np.zeros((90, 120), bool)
    ignore[box[1] // 4 : box[3] // 4, box[0] // 4 : box[2] // 4] = True

    def learned(config: SpriteConfig) -> tuple[list, list]:
        learner, previous, shapes, claimed = SpriteLearner(720, config), None, [], []
        for i in range(150):
            frame = cv2.cvtColor(background, cv2.COLOR_GRAY2BGR)
            draw_webcam(frame, box, i / 30, seed=1)
            luma = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            small = cv2.resize(luma, (120, 90), interpolation=cv2.INTER_AREA).astype(int)
            blobs, previous = _moved_box(small, previous), small
            shapes += [(i, t.image.shape) for t in learner.observe(i, luma, blobs, ignore, 4)]
            claimed += learner.claimed
        return shapes, claimed

    shapes, claimed = learned(SpriteConfig())
    assert claimed == [] and shapes == learned(SpriteConfig(fill_haunts=False))[0], shapes


def _barred_line() -> tuple[np.ndarray, np.ndarray]:
    """A symmetric line drawing 41 x 19 (a bar with a shorter bar across each end, drawn dark in a
    light outline): (mask, dark) as bool arrays. Its hotspot is its centre, (9, 20)."""
    mask = np.zeros((41, 19), bool)
    mask[:, 6:13] = True
    mask[:6, :] = mask[-6:, :] = True
    dark = np.zeros_like(mask)
    dark[1:-1, 8:11] = True
    dark[1:5, 1:-1] = dark[-5:-1, 1:-1] = True
    return mask, dark


def _barred_sighting(tissue: np.ndarray, index: int, x: int, y: int, moved: np.ndarray) -> Candidate:
    """A sighting of ``_barred_line`` drawn at (x, y) over ``tissue``, its mask ``moved`` (the pixels
    that differed from the frames before, in the frame's coordinates), cropped to that mask."""
    mask, dark = _barred_line()
    frame = tissue.copy()
    frame[y : y + 41, x : x + 19][mask] = np.where(dark, 20, 235)[mask]
    ys, xs = np.nonzero(moved)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    return Candidate(index, x0, y0, frame[y0:y1, x0:x1].copy(), moved[y0:y1, x0:x1].astype(np.uint8) * 255)


def test_two_sightings_on_one_spot_are_not_motion() -> None:
    """A pointer that dwells loses different parts of itself in the pixels that differ from the
    frames before (where it overlaps where it was, nothing changed: an end of a symmetric shape),
    and keeps pieces of the tissue it uncovered. Two such sightings of one spot have boxes
    ``min_shift`` apart, yet aligned they lie on the same spot, over the same tissue: their shared
    part is a piece of the shape with tissue, learned with its hotspot at the whole end (the
    independent corpus's 48 px I-beam over procedural tissue at MPEG-4: recall 0.00-0.01, the
    hotspot 18-20 px off). They do not verify each other; a sighting that moved does."""
    tissue = _texture(240, 320, seed=4)
    shape, _ = _barred_line()

    def moved(x: int, y: int, lost_top: int = 0, piece: bool = False) -> np.ndarray:
        m = np.zeros(tissue.shape, bool)
        m[y + lost_top : y + 41, x : x + 19] = shape[lost_top:]
        if piece:  # tissue it uncovered, beside it and below
            m[y + 10 : y + 14, x - 4 : x] = True
            m[y + 41 : y + 43, x + 4 : x + 15] = True
        return m

    cut = _barred_sighting(tissue, 10, 100, 60, moved(100, 60, lost_top=6, piece=True))
    whole = _barred_sighting(tissue, 20, 100, 60, moved(100, 60))
    assert np.hypot(cut.x - whole.x, cut.y - whole.y) >= SpriteConfig().min_shift  # boxes apart
    learner = SpriteLearner(720)
    learner.candidates.append(cut)
    assert learner._verify(whole) is None
    learner.candidates.append(whole)
    elsewhere = _barred_sighting(tissue, 30, 160, 90, moved(160, 90))
    template = learner._verify(elsewhere)
    assert template is not None
    assert template.mask.shape == shape.shape
    assert np.hypot(template.hotspot[0] - 9, template.hotspot[1] - 20) <= 1.5, template.hotspot


def _smeared_then_resting(learner: SpriteLearner, rests: list[tuple[int, int]], rest_frames: int = 12) -> list:
    """Feed ``learner`` a pointer that moves 12 px a frame as heavy compression shows it (every
    pixel of its shape a new random grey each frame: no two moving sightings alike) and rests,
    coded whole (dark fill, light outline), at each of ``rests`` (top-left) for ``rest_frames``
    frames; returns the sprites it learned. Moving frames get the changed boxes as blobs, resting
    ones none (nothing moved)."""
    mask, fill, _ = _sprite()
    background = _texture(360, 640, seed=3)
    rng = np.random.default_rng(11)
    h, w = mask.shape
    steps: list[tuple[int, int, bool]] = []
    x, y = 20, 20
    for rx, ry in rests:
        n = max(1, round(max(abs(rx - x), abs(ry - y)) / 12))
        steps += [(round(x + (rx - x) * j / n), round(y + (ry - y) * j / n), True) for j in range(1, n + 1)]
        steps += [(rx, ry, False)] * rest_frames
        x, y = rx, ry
    learned, last = [], None
    for i, (x, y, moving) in enumerate(steps):
        frame = background.copy()
        view = frame[y : y + h, x : x + w]
        view[mask] = rng.integers(0, 256, int(mask.sum())) if moving else np.where(fill, 30, 235)[mask]
        box = (x, y, x + w, y + h)
        blobs = []
        if last is not None and last != box:
            blobs = [_union(box, last)]
        last = box
        learned += learner.observe(i, frame, blobs)
    return learned


def test_a_pointer_smeared_while_it_moves_is_learned_where_it_comes_to_rest() -> None:
    """Heavy compression smears a small pointer while it moves (dark-rests-dmzwhite-crf40: a 12 px
    arrow at CRF 40, no sprite learned in three of four draws) and codes it whole once it rests.
    Cut again ``settle`` frames after its last move, against the frames before that move, its
    rests at two places are two sightings of one rigid shape: it is learned, with its tip."""
    rests = [(140, 100), (260, 160)]
    learned = _smeared_then_resting(SpriteLearner(720), rests)
    assert len(learned) == 1
    assert learned[0].image.shape[0] >= 26 and learned[0].image.shape[1] >= 18
    assert max(learned[0].hotspot) <= 3
    # Without the second cut, the smeared sightings verify nothing.
    assert _smeared_then_resting(SpriteLearner(720, SpriteConfig(settle=0)), rests) == []


def test_a_rest_is_not_cut_where_the_learner_was_not_told_what_moved() -> None:
    """While a verified track holds the pointer the locator shows the learner no blobs (None):
    those frames are not quiet, and no rest is cut from them."""
    learner = SpriteLearner(720)
    frame = _texture(360, 640, seed=3)
    assert learner.observe(0, frame, [(100, 100, 120, 128)]) == []
    for i in range(1, 12):
        assert learner.observe(i, frame, None) == []
    assert learner.last_move is None and not learner.candidates


def test_a_sprite_learned_without_its_tail_is_completed_from_the_held_frames() -> None:
    """A pointer moving less than its own size between the frames compared (2 px a frame, up and
    to the right) overlaps where it just was: both sightings lose the part over its own dark fill
    (the tail), and what they share is the arrow whose left edge ends in a stub, its sharpest
    extreme: on main the hotspot fell 20 px down the left edge (draw 7's mac arrow: every point
    13 px off). The frame cut against the median of the view's held frames (the pointer was
    elsewhere in them) shows the whole arrow, and that points at the tip, which both sightings
    showed."""
    mask, fill, _ = _sprite()
    found = _learned_along(
        SpriteLearner(720),
        _texture(360, 640, seed=5),
        mask,
        100,
        # first resting far off (nothing moves where it will be), then moving 2 px a frame
        lambda i: (420 + (i % 10) * 3, 250) if i < 60 else (200 + 2 * (i - 60), 200 - 2 * (i - 60)),
        lambda i: np.where(fill, 30, 235),
        moves_from=60,
    )
    assert len(found) == 1
    assert np.hypot(*found[0][1:]) <= 3.0, found  # the tip is the shape's (0, 0)


def test_a_whole_cut_that_took_in_tissue_does_not_replace_the_sprite() -> None:
    """The whole cut (the frame against the median of the held frames) also takes in tissue that
    changed since those frames (here a bright sliver touching the pointer's left side, appearing a
    few frames before the sprite is learned, as an encoder's re-coding does). With it the cut's
    sharpest extreme is the sliver's point, 9 px from the fingertip, on the learned sprite's box:
    the branch's earlier form (3fed0c1) replaced the right sprite with it (tinted-blue-crf36 0.920
    -> 0.655). The sliver does not move with the pointer: at the verifying sighting's place the
    frame shows other pixels there, so the cut is not taken."""
    import cv2

    shape = np.zeros((24, 20), np.uint8)
    cv2.rectangle(shape, (7, 0), (11, 10), 255, -1)  # a finger
    cv2.rectangle(shape, (0, 9), (19, 23), 255, -1)  # the palm
    mask = shape > 0
    fill = cv2.erode(shape, np.ones((3, 3), np.uint8)) > 0

    def sliver(i: int, frame: np.ndarray) -> None:
        if i >= 55:  # where the pointer is when the sprite is learned (frame 62), left of its palm
            cv2.fillPoly(frame, [np.array([(84, 99), (83, 91), (88, 99)], np.int32)], 250)

    found = _learned_along(
        SpriteLearner(720),
        _texture(360, 640, seed=3),
        mask,
        90,
        # first resting far off (the held frames), then moving 13 px a frame
        lambda i: (500 + (i % 10) * 3, 300) if i < 60 else (60 + 12 * (i - 60), 80 + 5 * (i - 60)),
        lambda i: np.where(fill, 30, 235),
        moves_from=60,
        paint=sliver,
    )
    assert [f[0] for f in found] == [62]  # the sliver is where the pointer is then
    assert np.hypot(found[0][1] - 9, found[0][2] - 1) <= 2.0, found  # the fingertip, not the sliver's point


def test_a_sprite_that_lost_its_tip_points_where_its_sightings_point() -> None:
    """The sprite is what two sightings' luma agrees on. Here the tip's outline (its top 5 rows)
    shows other grey levels from frame to frame (as a thin outline drawn between pixels does at
    each sub-pixel phase), so the two sightings disagree there and the sprite loses it; its
    sharpest extreme is then the lower left corner, and main put the hotspot there, 24 px below
    the tip. Each sighting's own mask keeps the tip, and the sightings that match the sprite all
    point at it: the hotspot goes to the sprite's top row (the box it is kept on), above the tip's
    column, 5 px from the tip."""
    mask, fill, _ = _sprite()
    tip = np.zeros_like(mask)
    tip[:5] = True
    tip &= mask

    def look(i: int) -> np.ndarray:
        grey = np.where(fill, 30, 235)
        grey[tip] = 235 if i % 4 < 2 else 150  # frames 2 apart show the tip differently
        return grey

    background = _texture(360, 640, seed=3)
    for votes in (True, False):
        learner = SpriteLearner(720, SpriteConfig() if votes else SpriteConfig(tip_votes=False))
        found = _learned_along(learner, background, mask, 24, lambda i: (60 + 11 * i, 80 + 5 * i), look)
        assert len(found) == 1
        if votes:
            assert np.hypot(*found[0][1:]) <= 6.0, found  # the tip is the shape's (0, 0)
        else:  # as on main (and the test's premise): the lower left corner
            assert np.hypot(*found[0][1:]) >= 20.0, found


@pytest.mark.parametrize(("theme", "shape"), [("DMZ-Black", "hand"), ("DMZ-Black", "arrow")])
def test_a_dark_theme_cursor_on_dark_tissue_is_learned_with_its_tip(theme: str, shape: str) -> None:
    """A 16 px black cursor moving slowly (3.2 px right, 1.1 px down a frame, at quarter-pixel
    phases) over dark tissue (levels 60-96), as the independent corpus's dark-panel video shows
    it: the thin outline at the fingertip or the arrow's tip is where the sightings' luma
    disagrees, and main learned the hand pointing with a knuckle (8.2 px off) and the arrow's
    second sprite pointing with its lower left corner (9.6 px off); every sprite learned points
    within 3 px of the hotspot."""
    from quilt_llava.narratives.xcursor import installed_themes

    if theme not in installed_themes():
        pytest.skip(f"cursor theme {theme} not installed")
    hot0 = _theme_sprite_at(theme, shape, 16, 0, 0)[2]
    found = _learn_sub_pixel(
        lambda fx, fy: _theme_sprite_at(theme, shape, 16, fx, fy)[:2], hot0, step=(3.2, 1.1), level=(60.0, 0.3)
    )
    assert found, "never learned"
    errors = [round(float(np.hypot(hot[0] - truth[0], hot[1] - truth[1])), 1) for _t, hot, truth in found]
    assert max(errors) <= 3.0, errors


def _panning_dashes(shift: int) -> np.ndarray:
    """Tissue-like texture with short dark dashes 2 px wide, each shaded the same way along its length
    (the edges of one kind of fibre), moved ``shift`` px to the right: a view panning a pixel a frame,
    too slowly for the stability test to call it moving."""
    tissue = _texture(240, 320, seed=11)
    frame = np.roll(tissue, shift, axis=1)
    shade = np.linspace(20, 90, 14).astype(np.uint8)[:, None]
    for k in range(12):
        x, y = 40 + 19 * k + shift, 60 + (37 * k) % 90
        frame[y : y + 14, x : x + 2] = shade
    return frame


def _sliver_sprites(config: SpriteConfig | None = None) -> list:
    """Feed a learner ``_panning_dashes`` with two dashes 19 px apart cut where they moved (frames 8
    and 12); returns the sprites it learned."""
    learner = SpriteLearner(720, config)
    learned = []
    for i in range(14):
        blobs = None
        if i in (8, 12):
            k = 3 if i == 8 else 4
            x, y = 40 + 19 * k + i, 60 + (37 * k) % 90
            blobs = [(x - 2, y, x + 2, y + 14)]
        learned += learner.observe(i, _panning_dashes(i), blobs)
    return learned


def test_the_distinct_check_refuses_a_sliver_of_panning_tissue_that_matches_its_like() -> None:
    """A view panning a pixel a frame (a drag the stability test holds still) changes every edge of the
    tissue by a sliver; two slivers of one kind of edge cut in two frames are one rigid shape seen
    at two places, and were learned (the independent corpus's draw 6 ``he-handhelds``: a 2 x 11 px
    sliver, tracked on the frame's border and the scale bar, recall 0.186). A pointer is unlike the
    tissue around it; such a sliver matches every like edge near where it was cut as well as it
    matches itself, and the check (``distinct_score``, on by default since the seventeenth pass)
    refuses it."""
    assert _sliver_sprites() == []
    # Without the check (``distinct_score`` None, main's default from the fifteenth pass's merge to
    # the seventeenth) and the twentieth pass's two (a straight stroke, a view that moved), the
    # sliver is learned.
    found = _sliver_sprites(SpriteConfig(distinct_score=None, one_stroke=False, still_view=False))
    assert len(found) == 1 and found[0].image.shape[1] <= 4, [t.image.shape for t in found]


def test_a_small_known_piece_does_not_stand_for_a_larger_sighting() -> None:
    """A known sprite that is a small piece of a new sighting (a sliver learned first) does not make the
    new shape known: the pointer it is a piece of would never be learned (draw 6 ``he-handhelds``:
    its hand and arrow refused as the known 2 x 11 px sliver). A known piece of half the sighting or
    more (an arrow learned without its tail) still stands for it."""
    mask, fill, _ = _sprite()
    image = np.where(fill, 30, 235).astype(np.uint8)
    whole = Candidate(10, 100, 100, image, mask.astype(np.uint8) * 255)
    learner = SpriteLearner(720)
    sliver = template_from_sprite(image[2:16, 0:3].copy(), mask[2:16, 0:3].astype(np.uint8) * 255, (1, 0))
    assert not learner._same(whole, sliver)
    head = template_from_sprite(image[:19].copy(), mask[:19].astype(np.uint8) * 255, (0, 0))
    assert learner._same(whole, head)


def test_a_flat_region_points_with_its_own_extreme() -> None:
    """A sprite learned from a flat region (``fill_grow``) is the pointer's fill, with a band of its
    surroundings: its hotspot is the fill's point itself, not one outline width (1.5 px per 24 px of
    size) further in, as for a shape cut with its outline (the independent corpus's 64 px
    ``handhelds`` arrow, its tip blurred by the encoder: learned 5-8 px inside the tip, recall 0.10
    in draw 7)."""
    import cv2

    inner = np.zeros((60, 40), np.uint8)
    cv2.fillPoly(inner, [np.array([(2, 2), (2, 50), (14, 40), (22, 57), (30, 53), (22, 37), (37, 37)], np.int32)], 255)
    band = 2
    mask = cv2.dilate(inner, np.ones((2 * band + 1, 2 * band + 1), np.uint8))
    image = np.where(inner > 0, 60, 170).astype(np.uint8)
    a = Candidate(20, 100, 100, image, mask, band=band)
    b = Candidate(12, 60, 80, image.copy(), mask.copy(), band=band)
    decided, template = SpriteLearner(720)._shared(a, b, 0, 0, whole=False)
    assert decided and template is not None
    assert np.hypot(template.hotspot[0] - 2, template.hotspot[1] - 2) <= 1.5, template.hotspot


@pytest.mark.parametrize("shared_min_px", [False, True])
def test_a_piece_of_two_sightings_is_no_sprite_where_wholes_are_asked_for(shared_min_px: bool) -> None:
    """Two sightings sharing only a piece of a shape (a translucent ring cut from the chroma plane
    as the crescent it moved by): with ``shared_min_px`` (the chroma locator's), what they share
    must span both (``extent_keep``) and reach ``min_px``; without it (the luma locator's) the piece
    is learned as before."""
    mask, fill, _ = _sprite()
    image = _texture(28, 20, seed=2)
    image[mask] = np.where(fill, 30, 235)[mask]
    whole = np.where(mask, 255, 0).astype(np.uint8)
    cut = whole.copy()
    cut[:, :7] = 0  # one side of the shape lost in one sighting
    learner = SpriteLearner(720, SpriteConfig(shared_min_px=shared_min_px))
    a = Candidate(50, 100, 100, image, cut)
    b = Candidate(30, 160, 100, image.copy(), whole)
    template = learner._shared(a, b, 0, 0, whole=False)[1]
    assert (template is None) == shared_min_px
    small = (np.arange(9 * 7).reshape(7, 9) * 3 % 200).astype(np.uint8)  # 9 px across: under min_px (10)
    piece = np.full((7, 9), 255, np.uint8)
    c, d = Candidate(50, 100, 100, small, piece), Candidate(30, 160, 100, small.copy(), piece.copy())
    assert (learner._shared(c, d, 0, 0, whole=False)[1] is None) == shared_min_px


def _ibeam(height: int = 36, serif: int = 11) -> np.ndarray:
    """A drawn I-beam one pixel wide: a stem and a serif at each end (bool mask)."""
    mask = np.zeros((height, serif), bool)
    mask[:, serif // 2] = True
    mask[0, :] = mask[-1, :] = True
    return mask


def _thin_pointer_seen_in_pieces(learner: SpriteLearner, mask: np.ndarray, frames: int = 20) -> list[tuple[int, int]]:
    """Feed ``learner`` a dark line drawing moving 1 px right and down a frame over tissue-like
    texture, the motion it is shown being only a piece of it (the middle third of its stem, as the
    frame-to-frame motion of a thin line at MPEG-4 falls apart); returns where each learned sprite
    points, from the drawing's top-left."""
    background = _texture(360, 640, seed=11)
    h, w = mask.shape
    found = []
    for i in range(frames):
        x, y = 200 + i, 120 + i
        frame = background.copy()
        frame[y : y + h, x : x + w][mask] = 25
        stem = (x + w // 2 - 1, y + h // 3, x + w // 2 + 2, y + 2 * h // 3)  # a piece, with the step it made
        for t in learner.observe(i, frame, [stem]):
            tip_x, tip_y = _pointed_at(frame, t)
            found.append((tip_x - x, tip_y - y))
    return found


def test_a_thin_pointer_whose_motion_shows_in_pieces_is_learned_whole_with_its_centre() -> None:
    """The motion of an I-beam one or two px wide drifting slowly falls apart into pieces (its
    serifs, part of its stem): the cut in a piece's box runs off it, so no sighting was cut and
    the I-beam was never learned (the independent corpus's proc-ibeam, draw 9: found on 0.02 of
    its frames). Cut again around the piece, it is learned whole and points at its middle."""
    mask = _ibeam()
    found = _thin_pointer_seen_in_pieces(SpriteLearner(720), mask)
    assert found, "the I-beam was never learned"
    h, w = mask.shape
    assert np.hypot(found[0][0] - w // 2, found[0][1] - h // 2) <= 2.0, found[0]


def test_a_piece_cut_around_is_not_learned_where_it_points_with_a_corner() -> None:
    """An arrow-like line drawing seen only in pieces is not learned from sightings cut around
    them: a sprite from such sightings is taken only where it points with its middle (a piece of
    an arrow or a hand points with a corner of the cut); ``piece_grow`` 0 cuts no such sightings."""
    mask = np.zeros((30, 20), bool)
    mask[:, 0] = True
    for j in range(20):
        mask[min(29, j), j] = True  # an open arrow-like outline: not symmetric
    assert _thin_pointer_seen_in_pieces(SpriteLearner(720), mask) == []
    assert _thin_pointer_seen_in_pieces(SpriteLearner(720, SpriteConfig(piece_grow=0)), _ibeam()) == []


def _line_piece_seen(length: int) -> bool:
    """Is an 18 x 3 px piece of a dark straight line 3 px wide and ``length`` px long (light edges, a
    dark middle, as a drawn cross's arm is anti-aliased) over tissue-like texture, seen at the
    line's middle, a piece of a longer line to the learner (``_piece_of_a_line``)?"""
    noise = np.random.default_rng(7).integers(-3, 4, (3, length))
    look = (np.array([70, 25, 70])[:, None] + noise).astype(np.uint8)
    frame = _texture(360, 640, seed=4)
    x, y = 200, 150
    frame[y : y + 3, x : x + length] = look
    a = x + (length - 18) // 2
    piece = frame[y : y + 3, a : a + 18].copy()
    mask = np.full(piece.shape, 255, np.uint8)
    template = template_from_sprite(piece, mask, (9, 1))
    learner = SpriteLearner(720)
    return learner._piece_of_a_line(template, frame, Candidate(0, a, y, piece, mask))


def test_a_piece_of_a_longer_line_is_no_sprite() -> None:
    """A straight piece of a longer line has no place of its own along it: a 14 x 3 px piece of a
    drawn cross's arm, learned while the cross dwelt, matched either arm and was tracked 12-19 px
    off (draw 13's he-overlay-cross, its drawn cross 0.54). Where it was seen, it matches as well
    half its length further along the line: the learner does not take it (``one_stroke``). A
    whole stroke (an I-beam's stem that lost its serifs) ends where it ends: it may be taken."""
    assert _line_piece_seen(60)
    assert not _line_piece_seen(18)


def _blob_with_the_view(config: SpriteConfig | None = None) -> list[tuple[int, int, int]]:
    """Feed a learner a flat dark oval 60 x 36 px (a nucleus) that is part of the tissue while the
    whole view moves 4 px a frame (a drag not yet called moving), the oval's moved box as the
    motion blob; returns what it learned."""
    import cv2

    mask = np.zeros((36, 60), np.uint8)
    cv2.ellipse(mask, (30, 18), (29, 17), 0, 0, 360, 255, -1)
    # faint tissue: moved, it changes by less than the learner's threshold, so what it cuts is the oval
    tissue = (130 + 0.3 * (_texture(360, 640, seed=6).astype(np.float32) - 130)).astype(np.uint8)

    def paint(i: int, frame: np.ndarray) -> None:
        frame[:] = np.roll(tissue, 4 * i, axis=0)

    return _learned_along(
        SpriteLearner(720, config),
        tissue,
        mask > 0,
        24,
        lambda i: (300, 60 + 4 * i),
        lambda i: np.full(mask.shape, 40, np.uint8),
        paint=paint,
    )


def test_what_moved_with_the_view_is_not_learned() -> None:
    """In the first frames of a drag (the stability test has not yet called the view moving) a
    dark nucleus moves rigidly like a flat pointer; draw 13's he-overlay-cross learned one (58 x 36
    px), and the search found it again in the next view and held it there for 138 frames. The
    tissue around it moved as much (the frame before, shifted, matches it): it is not learned.
    Without the test it is."""
    assert _blob_with_the_view() == []
    assert _blob_with_the_view(SpriteConfig(still_view=False)) != []


def test_a_crosshair_learned_early_in_a_view_is_completed_from_three_held_frames() -> None:
    """A crosshair (27 px, arms 5 px wide) that starts to move 4 px a frame up and to the right 20
    frames into a view overlaps where it just was: both sightings lose a piece of its left and
    bottom arms, and what they share is its top and right arms, whose sharpest extreme is the top
    arm's end, 12 px from the centre (draw 11's red glass crosshair, learned so 31 frames into its
    view and tracked 12 px off for 137 frames). It is learned before the view holds the five sparse
    frames the slow cut asks for (``slow_min``); three (``complete_min``) give the whole crosshair,
    which points at its centre."""
    n, arm = 27, 5
    c = n // 2
    mask = np.zeros((n, n), bool)
    mask[c - arm // 2 : c + arm // 2 + 1, :] = True
    mask[:, c - arm // 2 : c + arm // 2 + 1] = True
    yy, xx = np.mgrid[:n, :n]
    look = (30 + 2 * (xx + yy)).astype(np.uint8)  # shaded, as a see-through pointer over tissue is
    found = _learned_along(
        SpriteLearner(720),
        _texture(360, 640, seed=5),
        mask,
        50,
        lambda i: (420 + (i % 10) * 3, 250) if i < 20 else (200 + 4 * (i - 20), 250 - 4 * (i - 20)),
        lambda i: look,
        moves_from=20,
    )
    assert len(found) == 1 and found[0][0] < 32, found  # learned with fewer than five held frames
    assert np.hypot(found[0][1] - c, found[0][2] - c) <= 2.0, found
