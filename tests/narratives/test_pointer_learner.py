"""The sprite learner (``narratives/pointer.py``) on a pointer moving over tissue-like texture."""

from __future__ import annotations

import numpy as np

from quilt_llava.narratives.pointer import SpriteConfig, SpriteLearner, template_from_sprite


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).normal(0, 1, (h, w)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (70 + 120 * smooth).astype(np.uint8)


def _sprite() -> tuple[np.ndarray, np.ndarray]:
    """A 22 x 30 arrow-like shape: dark fill, light outline (image, mask)."""
    import cv2

    mask = np.zeros((30, 22), np.uint8)
    outline = np.array([(1, 1), (1, 27), (8, 21), (13, 28), (17, 26), (12, 19), (20, 19)], np.int32)
    cv2.fillPoly(mask, [outline], 255)
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2)
    image = np.where(inner > 0, 30, 235).astype(np.uint8)
    return image, mask


def _moving_pointer_learned(learner: SpriteLearner, frames: int = 24) -> list:
    image, mask = _sprite()
    background = _texture(360, 640, seed=3)
    h, w = mask.shape
    learned = []
    last = None
    for i in range(frames):
        x, y = 60 + 11 * i, 80 + 5 * i
        frame = background.copy()
        view = frame[y : y + h, x : x + w]
        view[mask > 0] = image[mask > 0]
        box = (x, y, x + w, y + h)
        if last is not None:
            box = (min(box[0], last[0]), min(box[1], last[1]), max(box[2], last[2]), max(box[3], last[3]))
        last = (x, y, x + w, y + h)
        learned += learner.observe(i, frame, [box])
    return learned


def test_a_moving_pointer_is_learned_with_its_tip() -> None:
    learner = SpriteLearner(720)
    learned = _moving_pointer_learned(learner)
    assert len(learned) == 1
    hx, hy = learned[0].hotspot
    # The shape's tip is its top-left corner, one outline width in: (1, 1) of the drawn sprite,
    # wherever the learned crop starts (it is cropped to the pixels that moved).
    assert learned[0].image.shape[0] >= 26 and learned[0].image.shape[1] >= 18
    assert hx <= 3 and hy <= 3


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
