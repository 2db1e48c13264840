"""View stability on faint views: motion judged against the view's own contrast.

A view whose content spans a few grey levels (an empty grey field, a washed-out grey scan at a high
CRF) changes each cell by about its own spread when it moves or is cut away from: under the cell
threshold set for views of ordinary contrast (6 grey levels). The fields here are smoothed noise
drawn in the test, not the corpus's renders."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives.stability import CellDiffStability, StabilityConfig

cv2 = pytest.importorskip("cv2")


def _field(seed: int, spread: float, size: tuple[int, int] = (480, 270)) -> np.ndarray:
    """A smoothed-noise grey field with a luma spread of ``spread`` grey levels around mid-grey."""
    noise = cv2.GaussianBlur(np.random.default_rng(seed).standard_normal(size[::-1]).astype(np.float32), (0, 0), 4)
    return (110 + spread * noise / noise.std()).astype(np.float32)


def _frames(field: np.ndarray, n: int, seed: int, dx: int = 0) -> list[np.ndarray]:
    """``n`` frames of the left 320 x 180 px of ``field`` shifted by ``dx`` px, each with its own
    compression-like flicker (under one grey level)."""
    rng = np.random.default_rng(seed)
    view = field[:180, dx : dx + 320]
    return [np.clip(view + rng.normal(0, 0.4, view.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def _flags(frames: list[np.ndarray], config: StabilityConfig | None = None) -> list[bool]:
    det = CellDiffStability(config)
    return [det.update(f) for f in frames]


def test_a_cut_between_two_faint_views_is_motion():
    frames = _frames(_field(0, 3.0), 20, 1) + _frames(_field(1, 3.0), 20, 2)
    flags = _flags(frames)
    assert flags[20] and not any(flags[:20]) and not any(flags[21:])
    assert not any(_flags(frames, StabilityConfig(faint_spread=0.0)))  # the absolute threshold: no motion seen


def test_a_faint_view_moved_across_is_motion():
    field = _field(2, 3.0)
    frames = _frames(field, 15, 3) + _frames(field, 15, 4, dx=40)
    assert _flags(frames)[15]


@pytest.mark.parametrize("spread", [2.5, 4.0, 8.0])
def test_a_faint_still_view_with_flicker_stays_still(spread):
    assert not any(_flags(_frames(_field(5, spread), 60, 6)))


def test_views_of_ordinary_contrast_are_compared_as_before():
    """Content spreading more than ``faint_spread`` grey levels: the same flags with the faint-view
    threshold as without it (a cut, a small shift, a still run with flicker)."""
    field, other = _field(7, 30.0), _field(8, 30.0)
    frames = _frames(field, 10, 9) + _frames(field, 5, 10, dx=2) + _frames(other, 10, 11)
    assert _flags(frames) == _flags(frames, StabilityConfig(faint_spread=0.0))
