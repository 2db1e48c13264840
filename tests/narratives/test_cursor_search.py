"""What the cursor locator's whole-frame search costs and what it still finds: learned sprites at
half resolution, a shape learned twice searched once, the arrow prior retired."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives import box_matches, templates, whole_frame_search
from quilt_llava.narratives.cursor import AnalysedFrame, TemplateCursorLocator
from quilt_llava.narratives.sprite_set import PRIOR_RETIRE_AFTER, TWIN_SCORE
from quilt_llava.narratives.templates import twin_score

from .test_cursor import _slide

cv2 = pytest.importorskip("cv2")
H, W = 360, 640


def _tissue() -> np.ndarray:
    return cv2.cvtColor(cv2.resize(_slide(), (W, H), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)


def _hand(size: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """A small pointer drawn here (not by the extractor): a dark glove with a light outline."""
    img = np.full((size, size), 250, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    cv2.rectangle(mask, (3, 0), (6, size - 1), 255, -1)  # the finger
    cv2.rectangle(mask, (1, size // 2), (size - 2, size - 1), 255, -1)  # the palm
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8))
    img[inner > 0] = 20
    return img, mask


def _learned(locator: TemplateCursorLocator, image: np.ndarray, mask: np.ndarray, coarse: bool) -> int:
    from quilt_llava.narratives.pointer import template_from_sprite

    t = template_from_sprite(image, mask, (4, 0))
    t.coarse = coarse
    locator.templates.append(t)
    return len(locator.templates) - 1


def _paste(luma: np.ndarray, image: np.ndarray, mask: np.ndarray, x: int, y: int) -> np.ndarray:
    out = luma.copy()
    h, w = image.shape
    region = out[y : y + h, x : x + w]
    region[mask > 0] = image[mask > 0]
    return out


def test_small_sprite_found_at_half_resolution():
    """A 14 px learned sprite with an outline of its own: the half-resolution search (its peaks
    rescored at full resolution) finds it where the full-resolution search does."""
    image, mask = _hand()
    luma = _paste(_tissue(), image, mask, 301, 157)
    locator = TemplateCursorLocator(H)
    k = _learned(locator, image, mask, coarse=True)
    half = templates.halved(luma)
    n = locator.config.search_peaks
    coarse = templates.learned_peaks(luma, half, locator.templates[k], None, n)
    full = templates.learned_peaks(luma, half, locator.templates[k], None, n, coarse=False)
    assert coarse[0][1:] == full[0][1:] == (301, 157)


def test_sprite_without_structure_stays_at_full_resolution():
    """Where the learner saw it, the half-resolution search must find a small sprite, or it is
    searched at full resolution: a white fill whose outline was not learned blurs into bright
    tissue at half resolution; a sprite with its outline does not."""
    tissue = _tissue()
    locator = TemplateCursorLocator(H)
    assert locator.learner is not None
    image, mask = _hand()
    hand = _learned(locator, image, mask, coarse=False)
    fill = cv2.erode(mask, np.ones((3, 3), np.uint8))
    bright = int(np.percentile(tissue, 95))
    plain = _learned(locator, np.where(fill > 0, bright, 0).astype(np.uint8), fill, coarse=False)
    results = {}
    for k in (hand, plain):
        t = locator.templates[k]
        sightings = []
        for i, (x, y) in enumerate([(120, 80), (400, 200), (520, 60)]):
            luma = _paste(tissue, t.image, t.mask, x, y)
            th, tw = t.image.shape
            sightings.append((i, luma, (x, y, x + tw, y + th)))
        locator.learner.sightings = sightings
        results[k] = locator.intake.coarse_finds(t)
    assert results == {hand: True, plain: False}
    locator.learner.sightings = []
    assert not locator.intake.coarse_finds(locator.templates[hand])  # never seen: full resolution


def test_shape_learned_twice_is_searched_once(monkeypatch):
    """Two learned sprites of one shape (the second a pixel smaller, its contrast lower: the same
    pointer seen over other tissue) are twins: one whole-frame search, whose peaks are checked
    with both; another shape keeps its own search."""
    image, mask = _hand()
    other = cv2.addWeighted(image[1:, 1:], 0.8, np.full_like(image[1:, 1:], 128), 0.2, 0)
    cross = np.full((15, 15), 250, np.uint8)
    cross_mask = np.zeros((15, 15), np.uint8)
    cross_mask[6:9, :] = cross_mask[:, 6:9] = 255
    cross[7, :] = cross[:, 7] = 10
    luma = _paste(_tissue(), other, mask[1:, 1:], 211, 95)
    locator = TemplateCursorLocator(H)
    locator.config.sure_score = 1.01  # search every shape (none found "beyond doubt" ends the search)
    first = _learned(locator, image, mask, coarse=True)
    twin = _learned(locator, other, mask[1:, 1:], coarse=True)
    crosshair = _learned(locator, cross, cross_mask, coarse=True)
    assert twin_score(locator.templates[first], locator.templates[twin])[0] >= TWIN_SCORE
    assert twin_score(locator.templates[first], locator.templates[crosshair])[0] < TWIN_SCORE
    assert locator.sprites.twins() == {twin: (first, 1, 1)}  # its top-left lies 1 px right and down of the first's
    searched = []
    real = whole_frame_search.learned_peaks
    monkeypatch.setattr(whole_frame_search, "learned_peaks", lambda *a, **kw: searched.append(a[2]) or real(*a, **kw))
    boxes = locator.search.search(AnalysedFrame(0, 0.0, luma, None, False), locator.new_view)
    # (the shapes are searched on two threads: in either order)
    assert sorted(map(id, searched)) == sorted([id(locator.templates[first]), id(locator.templates[crosshair])])
    tags = [b[4] for b in boxes if len(b) > 4]
    assert tags.count(first) == tags.count(twin) > 0
    found = locator.matcher.candidates(luma, boxes, locator.sprites.unlocked())
    assert found[0][3] == twin and abs(found[0][1] - (211 + 4)) <= 1 and abs(found[0][2] - 95) <= 1


def test_arrow_prior_retired_once_learned_sprites_explain_the_pointer():
    """Once learned sprites have found the pointer ``PRIOR_RETIRE_AFTER`` times, the sizes of the
    arrow prior that found it not once since the first sprite was learned are no longer matched;
    a size that did (a classic arrow beside a learned hand) stays."""
    locator = TemplateCursorLocator(H)
    prior = list(range(locator.sprites.generic))
    locator.sprites.credit(0)  # before any sprite is learned: not counted
    image, mask = _hand()
    k = _learned(locator, image, mask, coarse=True)
    for _ in range(PRIOR_RETIRE_AFTER - 1):
        locator.sprites.credit(k)
    assert locator.sprites.unlocked() == [*prior, k]
    locator.sprites.credit(k)
    assert locator.sprites.unlocked() == [k]  # the video's own sprite explains its pointer
    kept = TemplateCursorLocator(H)
    k = _learned(kept, image, mask, coarse=True)
    kept.sprites.credit(2)  # the prior's middle size found the pointer once since
    for _ in range(2 * PRIOR_RETIRE_AFTER):
        kept.sprites.credit(k)
    assert kept.sprites.unlocked() == [2, k]


def _searched_once(
    tissue: np.ndarray, image: np.ndarray, mask: np.ndarray, scale: int
) -> tuple[TemplateCursorLocator, int]:
    """A locator with a learned sprite (searched at half resolution) after a new view's whole-frame search."""
    located = TemplateCursorLocator(H)
    k = _learned(located, image, mask, coarse=True)
    first = AnalysedFrame(0, 0.0, tissue, None, False, scale=scale)
    located.search.note_change(located.motion.moved(first))
    located.search.peaks = (None, None, located.search.search(first, located.new_view))  # a new view: the whole frame
    located.new_view = False
    return located, k


def test_repeat_search_redoes_only_where_the_frame_changed(monkeypatch):
    """A repeat whole-frame search in a still view correlates only the tiles around what changed
    since the last one (a pointer that appeared there), keeps the last search's peaks elsewhere,
    and finds the same peaks as a search of the whole frame."""
    image, mask = _hand()
    tissue = _tissue()
    scale = 4
    located, k = _searched_once(tissue, image, mask, scale)
    x, y = 402, 198
    luma = _paste(tissue, image, mask, x, y)
    motion = np.zeros((H // scale, W // scale), np.uint8)
    motion[y // scale : (y + 14) // scale + 1, x // scale : (x + 14) // scale + 1] = 90
    later = AnalysedFrame(1, 0.1, luma, motion, False, scale=scale)
    located.search.note_change(located.motion.moved(later))
    assert located.search.stale(later, located.new_view)
    regions = located.search.regions(later, located.new_view)
    assert regions and sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in regions) < 0.3 * H * W
    shapes = []
    real = whole_frame_search.learned_peaks
    monkeypatch.setattr(
        whole_frame_search, "learned_peaks", lambda *a, **kw: shapes.append(a[0].shape) or real(*a, **kw)
    )
    located.search.search(later, located.new_view)
    assert shapes and all(s[0] * s[1] < 0.3 * H * W for s in shapes)  # crops, not the frame
    fresh = TemplateCursorLocator(H)
    fresh.templates.append(located.templates[k])
    monkeypatch.setattr(whole_frame_search, "learned_peaks", real)
    fresh.search.search(later, fresh.new_view)
    assert located.search.raw[k][0][1:] == fresh.search.raw[k][0][1:] == (x, y)
    # The same peaks (scores equal to float rounding: a crop is correlated apart from the frame).
    assert [p[1:] for p in located.search.raw[k]] == [p[1:] for p in fresh.search.raw[k]]
    assert np.allclose([p[0] for p in located.search.raw[k]], [p[0] for p in fresh.search.raw[k]], atol=1e-4)
    located.search.note_change(
        located.motion.moved(AnalysedFrame(2, 0.2, luma, np.zeros_like(motion), False, scale=scale))
    )
    assert not located.search.stale(later, located.new_view)  # nothing changed since: the peaks stand


def test_retired_prior_still_widens_the_pointer_footprint():
    """What segment images retake around a found pointer does not shrink when the prior is no
    longer matched: a learned sprite may miss a shadow the prior's wider boxes cover."""
    locator = TemplateCursorLocator(H)
    image, mask = _hand()
    k = _learned(locator, image, mask, coarse=True)
    before = locator.footprint(300.0, 200.0, (W, H))
    for _ in range(PRIOR_RETIRE_AFTER):
        locator.sprites.credit(k)
    assert locator.sprites.unlocked() == [k]
    assert locator.footprint(300.0, 200.0, (W, H)) == before


def test_masked_ncc_window_cache_gives_the_same_scores():
    """The cached window indices (``Template.window_index``) change nothing: region shapes beyond the
    cache's size, and ones seen again after being dropped, score exactly as a fresh template does."""
    from quilt_llava.narratives.templates import WINDOW_CACHE, make_template, masked_ncc

    rng = np.random.default_rng(3)
    t = make_template(1.0)
    th, tw = t.image.shape
    shapes = [(th + 1 + i % 5, tw + 1 + i) for i in range(WINDOW_CACHE + 3)] * 2
    for h, w in shapes:
        roi = rng.integers(0, 256, (h + 3, w + 2), dtype=np.uint8)[2 : 2 + h, 1 : 1 + w]  # a strided view
        fresh = make_template(1.0)
        assert np.array_equal(masked_ncc(roi, t), masked_ncc(roi, fresh))
    assert len(t._windows) <= WINDOW_CACHE


def test_masked_ncc_gives_the_very_bits_of_the_plain_formula():
    """``masked_ncc`` sums a window's grey levels and their squares by products with ones (whole
    numbers: exact in any order) and skips the flat-window passes where none is flat: the scores are
    bit for bit those of the plain formula (gathered as uint8, ``sum``, ``einsum``), flat windows 0."""
    from quilt_llava.narratives.templates import make_template, masked_ncc

    def plain(roi, t):
        th, tw = t.image.shape
        h, w = roi.shape
        ny, nx = h - th + 1, w - tw + 1
        _offsets, centred, norm = t.masked_pixels(w)
        windows = np.ascontiguousarray(roi).ravel()[t.window_index(w, ny, nx)].astype(np.float64)
        n = centred.size
        sums = windows.sum(axis=1)
        spread = np.einsum("ij,ij->i", windows, windows) - sums * sums / n
        flat = spread <= 1e-6 * n
        res = (windows @ centred) / (np.sqrt(np.where(flat, 1.0, spread)) * max(norm, 1e-12))
        res[flat] = 0.0
        return res.reshape(ny, nx).astype(np.float32)

    rng = np.random.default_rng(5)
    for scale in (0.5, 1.0, 2.2, 3.3):
        t = make_template(scale)
        th, tw = t.image.shape
        for k in range(30):
            big = rng.integers(0, 256, (th + 12, tw + 12), dtype=np.uint8)
            if k % 3 == 0:
                big[: th + 3, :] = 200  # flat windows among textured ones
            y, x, dh, dw = rng.integers(0, 6, 4)
            roi = big[y : y + th + dh, x : x + tw + dw]
            assert masked_ncc(roi, t).tobytes() == plain(roi, t).tobytes(), (scale, k)


def _counting_matches(monkeypatch):
    """``box_matches.match_in`` replaced by one that records each call: (calls, the real one, the counting one)."""
    calls = []
    real = box_matches.match_in

    def counting(luma, box, template, min_contrast=0.0):
        calls.append((tuple(box), id(template)))
        return real(luma, box, template, min_contrast)

    monkeypatch.setattr(box_matches, "match_in", counting)
    return calls, real, counting


def test_box_matched_once_per_frame(monkeypatch):
    """A frame's candidate rounds share boxes: each (box, template) pair is matched once per frame,
    with the very result a fresh match gives; a new frame is matched afresh."""
    loc = TemplateCursorLocator(H)
    calls, real, counting = _counting_matches(monkeypatch)
    image, mask = _hand(20)
    luma = _paste(_tissue(), image, mask, 200, 120)
    boxes = [(180, 100, 215, 135), (400, 200, 420, 220)]
    every = list(range(len(loc.templates)))
    first = loc.matcher.candidates(luma, boxes, every[:2])
    assert len(calls) == 2 * 2
    again = loc.matcher.candidates(luma, boxes, every)
    assert len(calls) == 2 * len(every)  # only the templates not matched yet
    assert first == loc.matcher.candidates(luma, boxes, every[:2]) and len(calls) == 2 * len(every)
    fresh = TemplateCursorLocator(H)
    monkeypatch.setattr(box_matches, "match_in", real)
    assert again and again == fresh.matcher.candidates(luma, boxes, every)
    monkeypatch.setattr(box_matches, "match_in", counting)
    loc.matcher.candidates(luma.copy(), boxes, every)  # another frame, the same pixels: nothing matched again
    assert len(calls) == 2 * len(every)
    moved = _paste(_tissue(), image, mask, 203, 121)  # the pointer moved within the first box only
    after = loc.matcher.candidates(moved, boxes, every)
    assert len(calls) == 3 * len(every)  # the second box's pixels are those of the frame before
    monkeypatch.setattr(box_matches, "match_in", real)
    assert after == TemplateCursorLocator(H).matcher.candidates(moved, boxes, every)


def test_box_match_kept_for_later_frames_with_the_same_pixels(monkeypatch):
    """A pair's result is reused in a later frame (not only the next one) whose pixels in its region
    are those it was matched on, up to ``EARLIER_FRAMES`` matched frames on; pixels that differ in
    the region by one grey level, or a result that old, are matched afresh; every result is what a
    fresh matcher gives."""
    from quilt_llava.narratives.box_matches import EARLIER_FRAMES

    loc = TemplateCursorLocator(H)
    calls, real, _ = _counting_matches(monkeypatch)
    image, mask = _hand(20)
    base = _paste(_tissue(), image, mask, 200, 120)
    box, other = (180, 100, 215, 135), (400, 200, 420, 220)
    every = list(range(len(loc.templates)))
    first = loc.matcher.candidates(base, [box], every)
    assert len(calls) == len(every)
    rng = np.random.default_rng(11)
    for _ in range(EARLIER_FRAMES // 2):  # frames in between match another box only, its pixels new each time
        frame = base.copy()
        frame[190:260, 380:460] = rng.integers(0, 256, (70, 80), dtype=np.uint8)
        loc.matcher.candidates(frame, [other], every)
    n = len(calls)
    assert loc.matcher.candidates(base.copy(), [box], every) == first and len(calls) == n  # reused
    changed = base.copy()
    changed[box[1] + 5, box[0] + 5] ^= 1  # one grey level, inside what the box's matches read
    after = loc.matcher.candidates(changed, [box], every)
    assert len(calls) == n + len(every)
    for _ in range(2 * EARLIER_FRAMES + 1):  # the box is not matched: its result grows old and is dropped
        loc.matcher.candidates(base.copy(), [other], every[:1])
    n = len(calls)
    loc.matcher.candidates(changed.copy(), [box], every)
    assert len(calls) == n + len(every)
    monkeypatch.setattr(box_matches, "match_in", real)
    assert after == TemplateCursorLocator(H).matcher.candidates(changed, [box], every)


def test_correlation_peaks_are_those_of_a_plain_reading():
    """The whole-frame search's peaks: local maxima of |NCC| within ``window`` above ``floor``, best
    first, computed here with numpy from the definition (ties and flat, NaN windows included)."""
    from quilt_llava.narratives.templates import correlation_peaks, make_template

    rng = np.random.default_rng(5)
    for trial in range(6):
        image = cv2.GaussianBlur(rng.integers(0, 256, (120, 200), dtype=np.uint8), (0, 0), 0.8 + 0.4 * trial)
        image[80:, : 40 * trial + 10] = 128  # a flat area: windows there have no correlation
        t = make_template(0.6 + 0.2 * trial)
        res = np.abs(cv2.matchTemplate(image, t.half, cv2.TM_CCOEFF_NORMED))
        res[~np.isfinite(res)] = 0
        pad = np.pad(res, 4, constant_values=-1)
        window_max = np.max(
            [pad[dy : dy + res.shape[0], dx : dx + res.shape[1]] for dy in range(9) for dx in range(9)], 0
        )
        ys, xs = np.nonzero((res == window_max) & (res > 0.3))
        expected = sorted(zip(-res[ys, xs], ys, xs))[:16]
        found = correlation_peaks(image, t.half, None, 9, 0.3, 16)
        assert len(found) == len(expected) > 0
        assert [(x, y) for _, x, y in found] == [(int(x), int(y)) for _, y, x in expected]
        assert np.allclose([score for score, _, _ in found], [-float(s) for s, _, _ in expected])


def test_repeat_search_over_many_changed_regions_searches_the_whole_frame(monkeypatch):
    """A learned sprite searched at half resolution rescores as many peaks per changed region as
    over the whole frame: with changes scattered over more than ``PATCH_RESCORED_REGIONS`` tile rows
    (compression flicker) the repeat search is one whole-frame search, which finds the same peaks;
    a sprite searched at full resolution, or the big prior sizes, still redo the regions alone."""
    from quilt_llava.narratives.whole_frame_search import PATCH_RESCORED_REGIONS

    image, mask = _hand()
    tissue = _tissue()
    scale = 4
    located, k = _searched_once(tissue, image, mask, scale)
    x, y = 402, 198
    luma = _paste(tissue, image, mask, x, y)
    motion = np.zeros((H // scale, W // scale), np.uint8)
    for row in range(PATCH_RESCORED_REGIONS + 1):  # flicker spots on rows of tiles far apart
        motion[row * 22 + 1, 3] = 90
    later = AnalysedFrame(1, 0.1, luma, motion, False, scale=scale)
    located.search.note_change(located.motion.moved(later))
    regions = located.search.regions(later, located.new_view)
    assert regions is not None and len(regions) > PATCH_RESCORED_REGIONS
    assert not located.search.patch_pays(k, regions) and located.search.patch_pays(k, regions[:PATCH_RESCORED_REGIONS])
    assert located.search.patch_pays(4, regions)  # the biggest prior size: half resolution, nothing rescored
    shapes = []
    real = whole_frame_search.learned_peaks
    monkeypatch.setattr(
        whole_frame_search, "learned_peaks", lambda *a, **kw: shapes.append(a[0].shape) or real(*a, **kw)
    )
    located.search.search(later, located.new_view)
    assert shapes == [(H, W)]  # one whole-frame search
    fresh = TemplateCursorLocator(H)
    fresh.templates.append(located.templates[k])
    fresh.search.search(later, fresh.new_view)
    assert located.search.raw[k] == fresh.search.raw[k] and located.search.raw[k][0][1:] == (x, y)
