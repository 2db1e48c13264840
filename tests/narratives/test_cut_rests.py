"""A pointer that rested through a whole view (``narratives/cut_rests.py``), and the whole-frame
search's boxes for each size of the arrow prior (``narratives/whole_frame_search.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives.cursor import AnalysedFrame, CursorConfig, TemplateCursorLocator
from tests.narratives.scenes import located

cv2 = pytest.importorskip("cv2")

H, W = 240, 320
K = 2  # the prior's 720p-size arrow
REST = (150, 110)


def _tissue(seed: int, level: float = 90.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, size=(H // 6, W // 6)).astype(np.float32)
    tex = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(level + 40 * tex / (np.abs(tex).max() + 1e-6), 0, 255).astype(np.uint8)


def _with_arrow(base: np.ndarray, tip: tuple[int, int], loc: TemplateCursorLocator, alpha: float) -> np.ndarray:
    """``base`` with the prior's arrow ``K`` blended at ``alpha`` with its tip at ``tip``, the frame
    blurred (a pointer the encoder softened: its match, about 0.83, stays under ``sure_score``)."""
    t = loc.templates[K]
    out = base.astype(np.float32)
    x0, y0 = tip[0] - t.hotspot[0], tip[1] - t.hotspot[1]
    h, w = t.image.shape
    a = (t.mask > 0) * alpha
    out[y0 : y0 + h, x0 : x0 + w] = (1 - a) * out[y0 : y0 + h, x0 : x0 + w] + a * t.image
    return cv2.GaussianBlur(np.clip(out, 0, 255).astype(np.uint8), (0, 0), 1.0)


def _run(loc: TemplateCursorLocator, frames: list[tuple[np.ndarray, bool]]) -> dict[int, tuple[float, float]]:
    """Every hit of ``loc`` fed ``frames`` ((luma, the view moving))."""
    return located(loc, frames)


def _locator() -> TemplateCursorLocator:
    return TemplateCursorLocator(H, CursorConfig(learn_sprites=False, match_threads=1))


def _scene(first: np.ndarray, second: np.ndarray, loc: TemplateCursorLocator, away: bool = True):
    """30 still frames of ``first``, a one-frame cut to ``second``, 12 still frames of it; the
    pointer rests at ``REST`` until the cut and (``away``) moves off 4 frames after it."""
    frames = [(_with_arrow(first, REST, loc, 0.7), False)] * 30
    frames.append((_with_arrow(second, REST, loc, 0.7), True))
    for j in range(12):
        tip = REST if j < 4 or not away else (REST[0] + 60 + 4 * j, REST[1] + 40)
        frames.append((_with_arrow(second, tip, loc, 0.7), False))
    return frames


def test_a_pointer_that_never_moved_in_a_view_is_found_by_staying_put_at_the_cut():
    """A softened arrow rests through a whole view (never seen to differ from what it covers, so
    its track is held back) and stays where it is as the recording cuts to other tissue: every
    frame of the view gets its hit (main drops the held-back track at the view's end)."""
    loc = _locator()
    hits = _run(loc, _scene(_tissue(1), _tissue(2, 130.0), loc))
    rest = [i for i in range(30) if i in hits and abs(hits[i][0] - REST[0]) <= 2 and abs(hits[i][1] - REST[1]) <= 2]
    assert len(rest) >= 28
    assert not [i for i in range(30) if i in hits and i not in rest]


def test_a_lookalike_in_the_tissue_leaves_with_it_at_the_cut():
    """The same, but the arrow-like spot is part of the first view's tissue: after the cut it is
    gone, so the held-back track there gives no hits."""
    loc = _locator()
    first = _with_arrow(_tissue(1), REST, loc, 0.7)
    second = cv2.GaussianBlur(_tissue(2, 130.0), (0, 0), 1.0)
    frames = [(first, False)] * 30 + [(second, True)] + [(second, False)] * 12
    hits = _run(loc, frames)
    assert not [i for i in range(30) if i in hits]


def test_a_lookalike_on_chrome_that_does_not_change_is_not_taken():
    """An arrow-like icon on a patch that stays as it is while the rest of the frame cuts to other
    tissue (chrome): what lies around it did not change, so its held-back track gives no hits."""
    loc = _locator()
    first, second = _tissue(1), _tissue(2, 130.0)
    second[REST[1] - 30 : REST[1] + 40, REST[0] - 30 : REST[0] + 40] = first[
        REST[1] - 30 : REST[1] + 40, REST[0] - 30 : REST[0] + 40
    ]
    hits = _run(loc, _scene(first, second, loc, away=False))
    assert not [i for i in range(30) if i in hits]


def test_each_size_of_the_prior_keeps_its_own_best_peak(monkeypatch):
    """The prior's sizes are searched apart and their peaks pooled for the best ``search_peaks``;
    their scores are not comparable (a small size's peaks are rescored at full resolution, a big
    one's are half-resolution correlations). A size whose best peak scores below every pooled one
    of the others still gets a box there (main leaves it out)."""
    loc = _locator()
    search = loc.search
    n = loc.config.search_peaks

    def peaks(k, luma, half, ignore):
        if k == 0:
            return [(0.6, 100, 100), (0.5, 40, 40)]
        return [(0.7 - 0.001 * j, 10 + 8 * j, 20 * k) for j in range(n)]

    monkeypatch.setattr(search, "template_peaks", peaks)
    luma = _tissue(3)
    boxes = search.search(AnalysedFrame(0, 0.0, luma, None, False), True)
    corners = {(b[0], b[1]) for b in boxes}
    assert (100 - 6, 100 - 6) in corners and (40 - 6, 40 - 6) in corners
    assert len(boxes) == n + 2
