"""A region too flat for any match to pass the fill/outline contrast test is not correlated
(``templates.match_in``): the same result, without the work."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives import templates
from quilt_llava.narratives.templates import Template, fill_ring_contrast, make_template, match_in

cv2 = pytest.importorskip("cv2")


def _as_before(luma: np.ndarray, box: tuple[int, int, int, int], t: Template, need: float) -> tuple[float, ...]:
    """``match_in`` as it was: the best match found first, then rejected when the fill and outline
    under it differ by less than ``need``."""
    score, x, y = match_in(luma, box, t, 0.0)
    if score == 0.0 and x == 0.0 and y == 0.0:
        return 0.0, 0.0, 0.0
    th, tw = t.image.shape
    x0, y0 = round(x) - t.hotspot[0], round(y) - t.hotspot[1]
    if fill_ring_contrast(luma[y0 : y0 + th, x0 : x0 + tw], t) < need:
        return 0.0, 0.0, 0.0
    return score, x, y


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the correlations ``match_in`` runs (OpenCV's and numpy's)."""
    calls: list[str] = []
    real_cv, real_np = cv2.matchTemplate, templates.masked_ncc

    def cv_counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("opencv")
        return real_cv(*args, **kwargs)

    def np_counted(roi: np.ndarray, t: Template) -> np.ndarray:
        calls.append("numpy")
        return real_np(roi, t)

    monkeypatch.setattr(cv2, "matchTemplate", cv_counted)
    monkeypatch.setattr(templates, "masked_ncc", np_counted)
    return calls


def test_a_flat_region_is_rejected_without_correlating(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    luma = (120 + rng.integers(0, 20, (120, 160))).astype(np.uint8)  # grey levels spanning 19 < 25
    t = make_template(1.0)
    calls = _counting(monkeypatch)
    for box in [(10, 10, 60, 50), (40, 30, 45, 35)]:  # a coarse pass first; the masked one alone
        calls.clear()
        assert match_in(luma, box, t, 25.0) == (0.0, 0.0, 0.0)
        assert calls == []
        assert _as_before(luma, box, t, 25.0) == (0.0, 0.0, 0.0)  # matched, then rejected
        assert calls


def test_a_sprite_with_its_own_lower_contrast_is_still_matched_there(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    luma = (120 + rng.integers(0, 20, (120, 160))).astype(np.uint8)
    t = make_template(1.0)
    t.min_contrast = 10.0  # (a learned sprite's): the span of 19 may hold a match
    calls = _counting(monkeypatch)
    match_in(luma, (10, 10, 60, 50), t, 25.0)
    assert calls


def test_a_template_without_an_outline_is_not_bounded_by_the_span(monkeypatch: pytest.MonkeyPatch) -> None:
    luma = np.full((80, 80), 200, np.uint8)
    luma[20:40, 20:40] = 190
    t = make_template(1.0)
    t.ring = np.zeros_like(t.ring)  # an empty mask's mean counts as 0: the contrast may exceed the span
    calls = _counting(monkeypatch)
    match_in(luma, (10, 10, 30, 30), t, 25.0)
    assert calls


@pytest.mark.parametrize("seed", range(6))
def test_results_are_those_of_matching_first(seed: int) -> None:
    """Regions of every kind (flat, faint, textured, a pointer drawn in), small and large, near the
    frame's edge: the same score and tip as finding the best match and then testing its contrast."""
    rng = np.random.default_rng(seed)
    H, W = 180, 240
    base = cv2.GaussianBlur(rng.integers(0, 256, (H, W)).astype(np.uint8), (0, 0), 1.5)
    spans = [4, 12, 24, 25, 26, 40, 255]
    for t in (make_template(0.8), make_template(1.25)):
        th, tw = t.image.shape
        for span in spans:
            lo = int(rng.integers(0, 256 - min(span, 255)))
            luma = (lo + (base.astype(np.float32) / 255 * span)).astype(np.uint8)
            if span == 255:  # a pointer over the texture
                x, y = int(rng.integers(10, W - 40)), int(rng.integers(10, H - 40))
                patch = luma[y : y + th, x : x + tw]
                patch[t.mask > 0] = t.image[t.mask > 0]
            for box in [(5, 5, 60, 60), (100, 80, 110, 90), (-10, -10, 20, 20), (W - 30, H - 30, W, H), (0, 0, W, H)]:
                for need in (25.0, 8.0):
                    assert match_in(luma, box, t, need) == _as_before(luma, box, t, need), (span, box, need)
