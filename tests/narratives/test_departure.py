"""Where a pointer rested before it moved or vanished, found from the spot it left
(``narratives/rest_recovery.py``), on textured frames with exact truth."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives.rest_recovery import rest_before_move
from quilt_llava.narratives.templates import make_template

cv2 = pytest.importorskip("cv2")

REST = (60, 50)  # tip of the resting pointer
STRIDE = 4  # every 4th held frame keeps its pixels, as the locator holds them


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (160, 200)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    return np.clip(150 + 40 * smooth / smooth.std(), 0, 255).astype(np.uint8)


def _with_pointer(base: np.ndarray, tip: tuple[int, int] | None, t) -> np.ndarray:
    """``base`` with template ``t`` drawn (its mask's pixels) with its hotspot at ``tip``."""
    frame = base.copy()
    if tip is not None:
        x0, y0 = tip[0] - t.hotspot[0], tip[1] - t.hotspot[1]
        th, tw = t.image.shape
        patch = frame[y0 : y0 + th, x0 : x0 + tw]
        patch[t.mask > 0] = t.image[t.mask > 0]
    return frame


def _history(frames: list[np.ndarray]) -> list[tuple[int, np.ndarray, bool]]:
    empty = np.empty((0, 0), np.uint8)
    return [(i, f if i % STRIDE == 0 else empty, False) for i, f in enumerate(frames)]


def _find(frames: list[np.ndarray], new: np.ndarray, templates) -> dict[int, tuple[float, float]]:
    hits = rest_before_move(
        _history(frames), new, (0, 0, 0, 0), templates, list(range(len(templates))), None, 0.62, 25.0, 20.0
    )
    return {h.index: (h.x, h.y) for h in hits}


def test_pointer_that_rested_then_vanished_is_found_in_every_frame_it_rested():
    t = make_template(1.0)
    base = _texture()
    frames = [_with_pointer(base, REST, t) for _ in range(21)] + [base.copy() for _ in range(9)]
    found = _find(frames, base.copy(), [t])
    assert sorted(found) == list(range(21))  # thinned frames interpolated, none after it vanished
    assert all(abs(x - REST[0]) <= 1 and abs(y - REST[1]) <= 1 for x, y in found.values())


def test_pointer_that_rested_then_moved_away_is_found_where_it_rested():
    t = make_template(1.0)
    base = _texture(1)
    now = (150, 110)
    frames = [_with_pointer(base, REST, t) for _ in range(17)] + [_with_pointer(base, now, t) for _ in range(3)]
    hits = rest_before_move(
        _history(frames),
        _with_pointer(base, now, t),
        (now[0] - 5, now[1] - 5, now[0] + 20, now[1] + 25),  # where the pointer is now is left out
        [t],
        [0],
        None,
        0.62,
        25.0,
        20.0,
    )
    assert [h.index for h in hits] == list(range(17))


def test_pointer_that_arrived_on_a_lookalike_is_not_taken_for_one_that_left():
    """A pointer appearing on tissue that looks like it (the same shape at a third of its
    contrast): the spot differs, but the shape is clearer there now than before, so the
    lookalike is not reported as a pointer that rested."""
    t = make_template(1.0)
    base = _texture(2)
    faint = t.image.astype(np.float32) / 3 + 100
    x0, y0 = REST[0] - t.hotspot[0], REST[1] - t.hotspot[1]
    th, tw = t.image.shape
    patch = base[y0 : y0 + th, x0 : x0 + tw]
    patch[t.mask > 0] = faint[t.mask > 0].astype(np.uint8)
    frames = [base.copy() for _ in range(20)] + [_with_pointer(base, REST, t) for _ in range(4)]
    assert _find(frames, _with_pointer(base, REST, t), [t]) == {}


def test_still_frames_give_nothing():
    t = make_template(1.0)
    base = _texture(3)
    assert _find([base.copy() for _ in range(20)], base.copy(), [t]) == {}


def test_change_larger_than_a_pointer_is_not_a_spot():
    """A region that changed (an annotation, a panel) much larger than any pointer shape."""
    t = make_template(1.0)
    base = _texture(4)
    later = base.copy()
    later[20:120, 30:150] = 255 - later[20:120, 30:150]
    assert _find([base.copy() for _ in range(12)], later, [t]) == {}


def test_rest_longer_than_the_held_frames_reaches_back_to_the_view_start():
    """Only the last frames are held; the view's first frame is kept too. A pointer at the spot
    in both rested in between (frames 0-40 here, of which 20-40 are held)."""
    t = make_template(1.0)
    base = _texture(5)
    frames = [_with_pointer(base, REST, t) for _ in range(41)] + [base.copy() for _ in range(4)]
    held = _history(frames)[20:]
    hits = rest_before_move(held, base.copy(), (0, 0, 0, 0), [t], [0], None, 0.62, 25.0, 20.0, first=(0, frames[0]))
    assert [h.index for h in hits] == list(range(41))
    without_first = rest_before_move(held, base.copy(), (0, 0, 0, 0), [t], [0], None, 0.62, 25.0, 20.0)
    assert [h.index for h in without_first] == list(range(20, 41))


def test_view_start_without_the_pointer_is_not_joined_to_a_later_rest():
    """The pointer arrived after the view's first frame: the rest starts at the held frames."""
    t = make_template(1.0)
    base = _texture(6)
    frames = [base.copy() for _ in range(10)] + [_with_pointer(base, REST, t) for _ in range(31)] + [base.copy()] * 4
    held = _history(frames)[20:]
    hits = rest_before_move(held, base.copy(), (0, 0, 0, 0), [t], [0], None, 0.62, 25.0, 20.0, first=(0, frames[0]))
    assert [h.index for h in hits] == list(range(20, 41))
