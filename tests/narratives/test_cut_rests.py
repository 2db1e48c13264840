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


def _screen(level: int = 40) -> np.ndarray:
    """A flat screen with a few broad bands (a camera or title shown between two views)."""
    out = np.full((H, W), level, np.uint8)
    out[H // 8 : H // 4] = level + 60
    return cv2.GaussianBlur(out, (0, 0), 3.0)


def _hidden_scene(first: np.ndarray, third: np.ndarray, loc: TemplateCursorLocator, back: bool = True):
    """30 still frames of ``first`` with the arrow resting at ``REST``, a cut to a screen without it
    for 20 frames, a cut to ``third`` with the arrow back at ``REST`` (``back``) for 5 frames, then
    moving off."""
    frames = [(_with_arrow(first, REST, loc, 0.7), False)] * 30
    screen = _screen()
    frames.append((screen, True))
    frames += [(screen, False)] * 20
    for j in range(13):
        tip = REST if j < 5 else (REST[0] + 60 + 4 * j, REST[1] + 40)
        frames.append((_with_arrow(third, tip, loc, 0.7) if back else cv2.GaussianBlur(third, (0, 0), 1.0), j == 0))
    return frames


def _rest_hits(hits: dict[int, tuple[float, float]]) -> list[int]:
    return [i for i in range(30) if i in hits and abs(hits[i][0] - REST[0]) <= 2 and abs(hits[i][1] - REST[1]) <= 2]


def test_a_pointer_hidden_by_a_screen_between_two_views_is_found_where_it_comes_back():
    """A softened arrow rests through a whole view; the recording cuts to a screen that does not
    show it (a full-screen camera), then to other tissue, where the arrow is drawn again at the same
    spot before it moves off. The first view's held-back track is the pointer's: every frame of the
    view gets its hit (main drops it when the screen shows nothing at the spot)."""
    loc = _locator()
    hits = _run(loc, _hidden_scene(_tissue(1), _tissue(2, 130.0), loc))
    rest = _rest_hits(hits)
    assert len(rest) >= 28
    assert not [i for i in range(30) if i in hits and i not in rest]


def test_a_lookalike_gone_with_its_view_gives_nothing_when_the_next_view_has_none_there():
    """The same, but nothing is at the spot when the third view comes (a lookalike in the first
    view's tissue, gone with it): no hits for the first view."""
    loc = _locator()
    hits = _run(loc, _hidden_scene(_tissue(1), _tissue(2, 130.0), loc, back=False))
    assert not [i for i in range(30) if i in hits]


def test_a_hidden_rest_waits_through_one_screen_only_and_not_past_a_pointer_seen_in_it():
    """The arrow comes back at the spot only after a second screen, or the screen between shows the
    pointer moving: the first view's held-back track gives nothing."""
    loc = _locator()
    frames = _hidden_scene(_tissue(1), _tissue(2, 130.0), loc)
    screen2 = _screen(70)
    frames = frames[:51] + [(screen2, True)] + [(screen2, False)] * 20 + frames[51:]
    hits = _run(loc, frames)
    assert not [i for i in range(30) if i in hits]
    loc = _locator()
    frames = _hidden_scene(_tissue(1), _tissue(2, 130.0), loc)
    screen = frames[31][0]
    for j in range(32, 51):  # the arrow crosses the screen
        frames[j] = (_with_arrow(screen, (40 + 10 * (j - 32), 60 + 5 * (j - 32)), loc, 0.7), False)
    hits = _run(loc, frames)
    assert not [i for i in range(30) if i in hits]


def test_a_shape_drawn_again_with_its_pixels_re_coded_still_counts_as_the_same():
    """A small pointer drawn again over a re-coded frame at a cut keeps its pattern only roughly: its
    pixels before and after correlate 0.75-0.8 (a 16 px arrow at CRF 40, drawn 0.8 px off: 0.80).
    With the view changed all around and the shape still matching there, it stayed (main asks 0.8)."""
    from quilt_llava.narratives.cut_rests import CutRest, Parked, spot_change

    loc = _locator()
    t = loc.templates[K]
    before = _with_arrow(_tissue(1), REST, loc, 0.35)
    clean = _with_arrow(_tissue(2, 130.0), REST, loc, 0.35)
    hx, hy = t.hotspot
    h, w = t.image.shape
    x0, y0 = REST[0] - hx, REST[1] - hy
    on = t.mask > 0
    noise = np.random.default_rng(5).normal(0, 1, size=(h, w))
    chosen = None
    for scale in np.arange(2.0, 40.0, 0.5):  # the re-coding's noise, grown until the pattern correlates under 0.8
        after = clean.copy()
        patch = after[y0 : y0 + h, x0 : x0 + w].astype(np.float64)
        patch[on] += scale * noise[on]
        after[y0 : y0 + h, x0 : x0 + w] = np.clip(patch, 0, 255).astype(np.uint8)
        # ``stayed`` takes the best of the shape a pixel either way (a sub-pixel redraw)
        shifts = [spot_change(before, after, REST[0], REST[1], t, dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        c = max((c for c in shifts if c is not None), key=lambda c: c.same)
        if c.same < 0.8:
            chosen = (after, c)
            break
    assert chosen is not None
    after, c = chosen
    assert 0.75 <= c.same < 0.8 and c.inner < c.ring
    parked = Parked([], float(REST[0]), float(REST[1]), K, before)
    assert CutRest(loc.templates, loc.config).stayed(parked, after)


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) px, sub-pixel (a view dragged slowly), edges replicated."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(
        image, m, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _fine_tissue(seed: int) -> np.ndarray:
    """Tissue with detail a few px across (nuclei, fibres): a sub-pixel shift changes it all over."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, size=(H // 2, W // 2)).astype(np.float32)
    tex = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(120 + 60 * tex / (np.abs(tex).max() + 1e-6), 0, 255).astype(np.uint8)


def _drag_start(view: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """30 still frames of ``view``, then a drag that starts slowly (the first frames still judged
    still: under a pixel a frame, the stability test's verdict lagging) and is then seen moving."""
    frames = [(view, False)] * 30
    shift = 0.0
    for step in (0.06, 0.33, 0.6, 0.82, 1.0, 1.1):
        shift += step
        frames.append((_shifted(view, shift, -shift), False))
    for _ in range(4):
        shift += 1.5
        frames.append((_shifted(view, shift, -shift), True))
    return frames


def test_a_lookalike_held_through_a_view_is_not_taken_when_the_view_begins_to_move():
    """An arrow-like spot of the tissue (a match under ``sure_score``, so its track is held back all
    view long) moves with the whole view as a drag begins, before the view is judged moving: the
    spot then differs from the background as a pointer would, but so does everything around it,
    so the held hits are not released (main took the whole view's hits: draw 13's dark-rests)."""
    loc = _locator()
    view = _with_arrow(_fine_tissue(3), REST, loc, 0.6)
    grain = np.random.default_rng(4).normal(0, 14, view.shape)  # (its match stays under ``sure_score``)
    view = np.clip(view + grain, 0, 255).astype(np.uint8)
    hits = _run(loc, _drag_start(view))
    assert not [i for i in range(36) if i in hits]


def test_a_resting_pointer_that_moves_a_few_px_is_still_taken():
    """The pointer itself rests on still tissue (held back: never seen to differ from the view's
    first frame) and then moves 3 px while the tissue stays: its rest is still released."""
    loc = _locator()
    base = cv2.GaussianBlur(_tissue(3), (0, 0), 1.0)
    frames = [(_with_arrow(_tissue(3), REST, loc, 0.7), False)] * 30
    frames += [(_with_arrow(_tissue(3), (REST[0] + 3, REST[1] + 1), loc, 0.7), False)] * 3
    frames += [(base, False)] * 3
    hits = _run(loc, frames)
    rest = [i for i in range(30) if i in hits and abs(hits[i][0] - REST[0]) <= 2 and abs(hits[i][1] - REST[1]) <= 2]
    assert len(rest) >= 28
