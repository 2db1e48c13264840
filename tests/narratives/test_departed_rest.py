"""A sprite just learned: where its pointer rested before the learner saw it move, and where it
points when it is the same shape learned again (``sprite_intake.py``, ``pointer.agreed_hotspot``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from quilt_llava.narratives.cursor import CursorConfig
from quilt_llava.narratives.hotspot import agreed_hotspot, decide_hotspot
from quilt_llava.narratives.pointer import template_from_sprite
from quilt_llava.narratives.sprite_intake import SpriteIntake
from quilt_llava.narratives.sprite_set import SpriteSet
from quilt_llava.narratives.templates import make_template, patch_box
from quilt_llava.narratives.view_history import ViewHistory
from tests.narratives.scenes import texture

cv2 = pytest.importorskip("cv2")

H, W = 240, 320


def _glass(base: np.ndarray, tip: tuple[float, float], alpha: float) -> np.ndarray:
    """``base`` with a see-through arrow (its template's pixels blended at ``alpha``) at ``tip``."""
    t = make_template(1.0)
    out = base.astype(np.float32)
    x0, y0 = round(tip[0]) - t.hotspot[0], round(tip[1]) - t.hotspot[1]
    h, w = t.image.shape
    a = (t.mask > 0) * alpha
    out[y0 : y0 + h, x0 : x0 + w] = (1 - a) * out[y0 : y0 + h, x0 : x0 + w] + a * t.image
    return np.clip(out, 0, 255).astype(np.uint8)


def _intake(frames: list[tuple[int, np.ndarray]], sightings: list) -> tuple[SpriteIntake, int]:
    """An intake whose view history holds ``frames`` (every fourth keeps its pixels, as the
    locator's does) and whose learner handed on ``sightings`` with the arrow it just learned."""
    config = CursorConfig()
    history = ViewHistory(config)
    for index, luma in frames:
        history.remember(index, luma, False)
    sprites = SpriteSet([make_template(1.0)], config)
    k = sprites.add(make_template(1.0))
    learner = SimpleNamespace(sightings=sightings)
    return SpriteIntake(learner, sprites, None, history, config), k  # type: ignore[arg-type]


def _departure(alpha: float, lookalike: bool = False) -> tuple[SpriteIntake, int, np.ndarray, tuple[int, int]]:
    """A view whose pointer is hidden for 20 frames, appears at ``rest`` and stays there until frame
    47, then speeds up and leaves (3 px, then 4, 5, 6, 7, 8, 9 px a frame); the learner saw it
    moving in frames 52 and 53 (25 and 33 px from the rest) and learned it in frame 54 (``now``).
    With ``lookalike``, the tissue has an arrow-like spot at the rest instead, which never changes,
    and nothing rests there."""
    tissue = texture(H, W, 3)
    rest = (90, 80)
    path = {i: rest for i in range(20, 48)}
    for i, step in zip(range(48, 55), (3, 7, 12, 18, 25, 33, 42)):
        path[i] = (rest[0] + step, rest[1] + step // 2)
    if lookalike:
        tissue = _glass(tissue, rest, 0.6)
        path = {i: p for i, p in path.items() if i >= 48}
    frames = [(i, _glass(tissue, path[i], alpha) if i in path else tissue) for i in range(54)]
    t = make_template(1.0)
    sightings = [(i, frames[i][1], patch_box(*path[i], t)) for i in (52, 53)]
    intake, k = _intake(frames, sightings)
    return intake, k, _glass(tissue, path[54], alpha), rest


@pytest.mark.parametrize("alpha", [1.0, 0.55])
def test_a_sprite_just_learned_finds_the_rest_it_departed_from(alpha: float) -> None:
    """The pointer came to its rest after the view's oldest held frame (it appeared there) and sped
    up from it across thinned frames: neither the walk forward from the oldest frame nor the walk
    back from where it was learned reaches it. Matched around its first sighting, and told by the
    spot differing from the frame it was learned in, the rest is recovered (opaque, or see-through
    at 55 %) up to where it appeared, and those hits count as verified."""
    intake, k, now, rest = _departure(alpha)
    hits = [h for h in intake.recover_rest(k, now) if h.index < 48]
    assert [h.index for h in hits] == list(range(20, 48))
    # (the frames just before the first that moved lie between the rest and it)
    assert all(abs(h.x - rest[0]) <= 3 and abs(h.y - rest[1]) <= 3 for h in hits)
    assert intake.history.any_confirmed()


def test_a_still_lookalike_near_the_first_sighting_is_no_rest() -> None:
    """Tissue that looks like the pointer beside where it was first seen moving never differs from
    itself: no rest is recovered there."""
    intake, k, now, _rest = _departure(1.0, lookalike=True)
    assert intake.departed_rest(intake.templates[k], now) == []


def _with_trail(t) -> tuple[np.ndarray, np.ndarray]:
    """The arrow of ``t`` with a thin pale trail from its tail down and to the right (the encoder's
    smear behind a fast pointer), on a box 8 px taller and 5 px wider."""
    h, w = t.image.shape
    image = np.full((h + 8, w + 5), 128, np.uint8)
    mask = np.zeros_like(image)
    image[:h, :w] = np.where(t.mask > 0, t.image, 128)
    mask[:h, :w] = t.mask
    for i in range(h + 8 - int(0.6 * h)):
        y, x = int(0.6 * h) + i, int(0.45 * w) + i // 2
        image[y, x : x + 2] = 200
        mask[y, x : x + 2] = 255
    return image, mask


def test_a_twin_with_a_trail_points_where_the_known_sprite_does() -> None:
    """The same arrow learned again with a trail behind it: its own sharpest extreme is the trail's
    end, down and to the right; the known arrow, mapped onto it, points up and to the left, at
    its tip, and the twin takes that hotspot. Without a twin known, it keeps its own."""
    arrow = make_template(1.0)
    known = template_from_sprite(arrow.image, arrow.mask, arrow.hotspot)
    image, mask = _with_trail(arrow)
    own = decide_hotspot(mask)
    assert own[0] > arrow.image.shape[1] // 2 and own[1] > arrow.image.shape[0] // 2  # the trail's end
    twin = template_from_sprite(image, mask, own)
    assert agreed_hotspot(twin, [known], 4.0) == arrow.hotspot
    assert agreed_hotspot(twin, [], 4.0) == own


def test_a_twin_that_points_with_its_middle_keeps_its_own_hotspot() -> None:
    """A symmetric shape (a crosshair) points with its middle whatever a known twin says."""
    cross = np.zeros((21, 21), np.uint8)
    cross[9:12, :] = 255
    cross[:, 9:12] = 255
    image = np.where(cross > 0, 60, 128).astype(np.uint8)
    known = template_from_sprite(image, cross, (2, 10))  # (a piece's hotspot at an arm's end)
    new = template_from_sprite(image, cross, decide_hotspot(cross))
    assert agreed_hotspot(new, [known], 4.0) == new.hotspot == (10, 10)


def test_the_last_places_are_kept_for_shapes_of_their_own() -> None:
    """A see-through pointer over other tissue is learned again and again (twins). While places
    are left beyond ``twin_reserve``, a twin is learned; in the last ones only a shape of its own
    is: the learned sprites are few (``max_sprites``), and the next pointer shown needs one."""
    from quilt_llava.narratives.pointer import SpriteLearner

    arrow = make_template(1.0)
    rng = np.random.default_rng(0)

    def seen_again() -> object:
        noisy = np.clip(arrow.image.astype(int) + rng.integers(-25, 26, arrow.image.shape), 0, 255).astype(np.uint8)
        return template_from_sprite(noisy, arrow.mask, arrow.hotspot)

    cross = np.zeros((21, 21), np.uint8)
    cross[9:12, :] = 255
    cross[:, 9:12] = 255
    other = template_from_sprite(np.where(cross > 0, 60, 128).astype(np.uint8), cross, (10, 10))
    learner = SpriteLearner(720)
    cfg = learner.config
    learner.learned = [seen_again() for _ in range(cfg.max_sprites - cfg.twin_reserve - 1)]
    assert not learner._twinned(seen_again())  # a place beyond the reserve is left
    learner.learned.append(seen_again())
    assert learner._twinned(seen_again())
    assert not learner._twinned(other)
    learner.config.twin_reserve = None
    assert not learner._twinned(seen_again())


def _lookalike_away(rest_too: bool) -> tuple[SpriteIntake, int, np.ndarray]:
    """A view whose tissue has an arrow-like spot at (230, 60) that never changes, while the pointer
    moves along the bottom (the learner saw it in frames 52 and 53, and learned it in frame 54,
    ``now``). With ``rest_too``, the pointer itself rested at (230, 60) until frame 40 (over plain
    tissue) and then left."""
    tissue = texture(H, W, 3)
    spot = (230, 60)
    path = {i: (40 + 4 * (i - 40), 180) for i in range(40, 55)}
    if rest_too:
        path.update({i: spot for i in range(40)})
    else:
        tissue = _glass(tissue, spot, 1.0)
    frames = [(i, _glass(tissue, path[i], 1.0) if i in path else tissue) for i in range(54)]
    t = make_template(1.0)
    sightings = [(i, frames[i][1], patch_box(*path[i], t)) for i in (52, 53)]
    intake, k = _intake(frames, sightings)
    return intake, k, _glass(tissue, path[54], 1.0)


def test_a_still_lookalike_away_from_the_sightings_is_no_rest() -> None:
    """The walk forward from the view's oldest held frame finds the sprite beyond doubt wherever it
    matches best; a still lookalike away from where the pointer was seen moving (a 14 x 3 px sliver
    matched the edge of a toolbar's text in every frame of draw 13's first view, 77 far hits) is
    still there, unchanged, in the frame the sprite was learned in: no rest of the pointer, which
    was learned moving elsewhere. A rest the pointer left is recovered as before."""
    intake, k, now = _lookalike_away(rest_too=False)
    assert [h for h in intake.recover_rest(k, now) if h.index < 40] == []
    intake, k, now = _lookalike_away(rest_too=True)
    hits = [h for h in intake.recover_rest(k, now) if h.index < 40]
    assert len(hits) >= 30 and all(abs(h.x - 230) <= 1 and abs(h.y - 60) <= 1 for h in hits)
