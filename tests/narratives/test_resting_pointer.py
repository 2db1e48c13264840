"""A pointer left in a segment image's median is found and taken out; views without one stay byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives.cursor import CursorConfig
from quilt_llava.narratives.pipeline import ExtractConfig, extract_video
from quilt_llava.narratives.pointer import template_from_sprite
from quilt_llava.narratives.resting_pointer import RestingPointerConfig
from quilt_llava.narratives.segment_images import PointerSearch, segment_job
from quilt_llava.narratives.synthetic import (
    SyntheticConfig,
    ViewSpec,
    draw_cursor,
    load_source_image,
    make_cursor_sprite,
    make_synthetic_video,
)
from quilt_llava.narratives.templates import make_templates
from quilt_llava.narratives.video import ColourSample

pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

W, H = 320, 240


def _tissue(offset: int) -> np.ndarray:
    """A 320x240 crop of the real IHC image (a different part for each offset)."""
    source = load_source_image(None)
    y, x = (37 * offset) % (source.shape[0] - H), (53 * offset) % (source.shape[1] - W)
    return np.ascontiguousarray(source[y : y + H, x : x + W])


def _samples(frames: list[np.ndarray], seed: int = 0) -> list[tuple[int, ColourSample]]:
    """4:2:0 samples as the decoder gives them, each with a little noise of its own (compression)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, rgb in enumerate(frames):
        noisy = np.clip(rgb.astype(int) + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
        out.append((i, ColourSample(cv2.cvtColor(noisy, cv2.COLOR_RGB2YUV_I420), "yuv420p")))
    return out


def _with_pointer(tissue: np.ndarray, sprite, tip: tuple[int, int]) -> np.ndarray:
    frame = tissue.copy()
    draw_cursor(frame, sprite, tip)
    return frame


def _box(sprite, tip: tuple[int, int], margin: int = 3) -> tuple[int, int, int, int]:
    h, w = sprite.alpha.shape[:2]
    x0, y0 = tip[0] - sprite.hotspot[0], tip[1] - sprite.hotspot[1]
    return x0 - margin, y0 - margin, x0 + w + margin, y0 + h + margin


def _learned(sprite) -> object:
    """The template the locator would learn from the sprite (its luma and mask, hotspot at the tip)."""
    luma = cv2.cvtColor(np.clip(sprite.rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    mask = ((sprite.alpha[..., 0] > 0.5) * 255).astype(np.uint8)
    return template_from_sprite(np.where(mask > 0, luma, 0).astype(np.uint8), mask, sprite.hotspot)


def _search(templates, whole: bool = True) -> PointerSearch:
    return PointerSearch(tuple(templates), RestingPointerConfig(), CursorConfig().min_contrast, whole)


def _job(samples, pointer, search):
    image, _box_used, png, _painted, removed = segment_job(samples, pointer, (0, 0, W, H), None, False, (), search)
    return image, png, removed


def _shape_left(rgb: np.ndarray, template, box) -> float:
    """How well the pointer's shape still matches around its spot (masked correlation)."""
    from quilt_llava.narratives.templates import match_in

    luma = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return match_in(luma, box, template)[0]


def _mad(a: np.ndarray, b: np.ndarray, box) -> float:
    x0, y0, x1, y1 = box
    return float(np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1].astype(int)).mean())


@pytest.mark.parametrize("style", ["arrow", "white"])
def test_a_pointer_resting_where_the_locator_missed_it_is_retaken_from_samples(style):
    """Resting at A in 5 of 7 samples (never found there), seen at B in the other two: the median
    keeps it at A; the two samples where the locator saw it elsewhere show A's tissue."""
    tissue = _tissue(1)
    sprite = make_cursor_sprite(style, 1.4)
    a, b = (200, 90), (60, 160)
    frames = [_with_pointer(tissue, sprite, a if i < 5 else b) for i in range(7)]
    samples = _samples(frames)
    pointer = {5: _box(sprite, b), 6: _box(sprite, b)}
    clean, _, _ = _job(_samples([tissue] * 7), {}, None)
    kept, _, _ = _job(samples, pointer, None)
    image, _, removed = _job(samples, pointer, _search([]))  # no shape known: the samples alone find it
    assert _mad(kept, clean, _box(sprite, a)) > 20  # the median alone keeps the pointer
    assert _mad(image, clean, _box(sprite, a)) < 3
    assert len(removed) == 1 and removed[0].fill == "samples"
    x0, y0, x1, y1 = removed[0].box
    assert x0 <= a[0] < x1 and y0 <= a[1] < y1
    outside = np.ones((H, W), bool)
    outside[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = False  # (a chroma sample reaches one pixel further)
    assert np.array_equal(image[outside], kept[outside])  # nothing else touched


@pytest.mark.parametrize("offset", [2, 5])
def test_a_pointer_that_never_moves_is_found_by_its_shape_and_inpainted(offset):
    """In every sample at one spot, never seen by the locator in this view: its shape, learned
    earlier in the video, finds it in the median; no sample shows the tissue, so it is inpainted."""
    tissue = _tissue(offset)
    sprite = make_cursor_sprite("arrow", 1.6)
    tip = (150, 100)
    samples = _samples([_with_pointer(tissue, sprite, tip)] * 7)
    clean, _, _ = _job(_samples([tissue] * 7), {}, None)
    kept, _, _ = _job(samples, {}, None)
    image, _, removed = _job(samples, {}, _search([_learned(sprite)]))
    box = _box(sprite, tip)
    assert _mad(kept, clean, box) > 25
    assert _mad(image, clean, box) < 0.5 * _mad(kept, clean, box)
    assert _shape_left(kept, _learned(sprite), box) > 0.95 and _shape_left(image, _learned(sprite), box) < 0.6
    assert [r.fill for r in removed] == ["inpaint"]
    # Not found by a shape it does not have, and not inpainted below the sure score.
    assert _job(samples, {}, _search([_learned(make_cursor_sprite("small", 3.0))]))[2] == ()


@pytest.mark.parametrize("offset", range(6))
def test_a_view_without_a_resting_pointer_is_unchanged_byte_for_byte(offset):
    """Real tissue, the arrow prior at every scale and a learned shape: no pointer in the median (it
    was seen moving in two samples only), nothing is taken out and the PNG is the same bytes."""
    tissue = _tissue(offset)
    sprite = make_cursor_sprite("arrow", 1.2)
    b = (80 + 20 * offset, 120)
    frames = [tissue if i < 5 else _with_pointer(tissue, sprite, (b[0] + 30 * (i - 5), b[1])) for i in range(7)]
    samples = _samples(frames, seed=offset)
    pointer = {i: _box(sprite, (b[0] + 30 * (i - 5), b[1])) for i in (5, 6)}
    templates = [*make_templates(CursorConfig().scales, 720), _learned(sprite)]
    plain_image, plain_png, _ = _job(samples, pointer, None)
    image, png, removed = _job(samples, pointer, _search(templates))
    assert removed == () and png == plain_png and np.array_equal(image, plain_image)


def _residue(tmp_path, views, remove: bool):
    cfg = SyntheticConfig(
        name="rest", width=640, height=360, fps=12.0, crf=23, views=views, pan_seconds=1.0, save_clean_views=True
    )
    video = make_synthetic_video(tmp_path / "video", cfg)
    extract = ExtractConfig(resting_pointer=RestingPointerConfig(remove=remove))
    out = tmp_path / ("on" if remove else "off")
    rows = extract_video(video.video, video.transcript, out, extract)
    return video, rows, out


def test_extract_a_never_moving_pointer_leaves_no_trace_and_a_hidden_one_changes_nothing(tmp_path):
    """End to end: in the second view the pointer rests on one spot the whole time (never moves);
    it is taken out of its segment image. The first view's pointer is hidden
    throughout: that image is the same bytes with or without the step."""
    views = [
        ViewSpec((0.35, 0.4), 1.0, 4.0, waypoints=[(0.0, 0.4, 0.4)], hidden=[(0.0, 4.0)]),
        ViewSpec((0.6, 0.55), 0.8, 4.0, waypoints=[(0.0, 0.55, 0.45), (4.0, 0.55, 0.45)]),
    ]
    video, rows_on, on = _residue(tmp_path, views, remove=True)
    _, rows_off, off = _residue(tmp_path, views, remove=False)
    assert len(rows_on) == len(rows_off) == 2
    assert (on / rows_on[0]["image"]).read_bytes() == (off / rows_off[0]["image"]).read_bytes()
    assert rows_on[0]["pointer_removed"] == []
    clean = cv2.imread(str(tmp_path / "video" / "rest.views" / "1.png"), cv2.IMREAD_GRAYSCALE)
    x0, y0, x1, y1 = rows_on[1]["content_box"]
    box = next(f["pointer_box"] for f in video.truth["frames"] if f["view"] == 1 and f["pointer_box"])
    inner = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
    residue = {}
    for name, out, rows in (("on", on, rows_on), ("off", off, rows_off)):
        seg = cv2.imread(str(out / rows[1]["image"]), cv2.IMREAD_GRAYSCALE)
        residue[name] = _mad(seg, clean[y0:y1, x0:x1], inner)
    # Inpainted (no sample shows the tissue under it): smooth, not the real texture, but no pointer.
    assert residue["off"] > 40 and residue["on"] < 0.35 * residue["off"], residue
    assert len(rows_on[1]["pointer_removed"]) == 1


@pytest.mark.parametrize("held", [0, 1])
def test_a_shape_learned_later_in_the_video_takes_the_pointer_out_of_earlier_views(tmp_path, held):
    """View 0's pointer never moved and its shape was unknown then; the locator learns it in a later
    view. At the end of the video view 0's image (in memory, or waiting on disk) is searched with it."""
    from quilt_llava.narratives.segment_images import SegmentImages
    from quilt_llava.narratives.segments import Segment
    from quilt_llava.narratives.stability import Span

    sprite = make_cursor_sprite("arrow", 1.6)
    tip = (150, 100)
    tissues = [_tissue(3), _tissue(4)]
    images = SegmentImages(held=held, spill_dir=tmp_path / "pending")
    segments = []
    for k, tissue in enumerate(tissues):  # the pointer rests in view 0; view 1 has none
        frames = [_with_pointer(tissue, sprite, tip) if k == 0 else tissue] * 7
        images.submit(_samples(frames), {}, (0, 0, W, H), refine=2, hide=(), search=_search([]))
        segments.append(Segment(Span(k, k), k, k + 1, np.empty(0), []))
        segments[-1].box = (0, 0, W, H)
    images.close()
    later = _learned(sprite)
    images.finish(segments, hide=(), shapes=(later,))
    assert [len(s.ready().removed) for s in segments] == [1, 0]
    clean, _, _ = _job(_samples([tissues[0]] * 7), {}, None)
    kept, _, _ = _job(_samples([_with_pointer(tissues[0], sprite, tip)] * 7), {}, None)
    box = _box(sprite, tip)
    assert _mad(segments[0].rgb(), clean, box) < 0.5 * _mad(kept, clean, box)
    assert _shape_left(kept, later, box) > 0.95 and _shape_left(segments[0].rgb(), later, box) < 0.6
    png = segments[0].png if segments[0].png is not None else segments[0].png_file.read_bytes()
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(decoded, segments[0].rgb())  # the PNG was made again


def test_a_pointer_found_by_a_later_shape_gives_its_never_moving_view_trace_points(tmp_path):
    """View 0's pointer never moved and the locator had no hit there; its shape, learned later, finds
    it in the view's image: every frame of the view gets a hit at its hotspot, before rows are built
    (``settle=False``: the image is finished at once). A view where the locator had a hit of its
    own keeps its hits alone (the DMZ-White arrow at CRF 40 resting through the first view of the
    independent corpus: 174 frames missed)."""
    from quilt_llava.narratives.cursor import CursorHit
    from quilt_llava.narratives.segment_images import SegmentImages
    from quilt_llava.narratives.segments import Segment, late_rest_hits
    from quilt_llava.narratives.stability import Span

    sprite = make_cursor_sprite("arrow", 1.6)
    tip = (150, 100)
    images = SegmentImages(held=1, spill_dir=tmp_path / "pending")
    segments = []
    for k, tissue in enumerate([_tissue(3), _tissue(4)]):  # the pointer rests in both views
        frames = [_with_pointer(tissue, sprite, tip)] * 7
        images.submit(_samples(frames), {}, (0, 0, W, H), refine=2, hide=(), search=_search([]))
        segments.append(Segment(Span(10 * k, 10 * k + 9), k, k + 1, np.empty(0), []))
        segments[-1].box = (0, 0, W, H)
    images.close()
    images.finish(segments, hide=(), settle=False, shapes=(_learned(sprite),))
    assert all(s.settle is None and len(s.removed) == 1 for s in segments)  # finished without ready()
    x, y = segments[0].removed[0].tip
    assert abs(x - tip[0]) <= 2 and abs(y - tip[1]) <= 2, (x, y)
    own = CursorHit(15, 40.0, 30.0, 0.9)  # view 1: the locator saw the pointer elsewhere once
    hits = {15: own}
    late_rest_hits(segments, hits)
    assert sorted(hits) == [*range(10), 15]
    assert all((h.x, h.y) == (x, y) for i, h in hits.items() if i < 10)
    assert hits[15] is own
