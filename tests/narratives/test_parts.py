"""The pipeline's parts, each alone: frame reduction, still runs, the webcam watch, segment
images, traces, rows, the cursor thread and folder batches."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from quilt_llava.narratives.cursor import AnalysedFrame, CursorHit
from quilt_llava.narratives.stability import Span, StabilityConfig

cv2 = pytest.importorskip("cv2")


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w), dtype=np.uint8), (0, 0), 2.0)


# --------------------------------------------------------------------------- frames


def test_sampled_frames_keep_one_per_tick_at_any_rate():
    from quilt_llava.narratives.frames import sampled_frames
    from quilt_llava.narratives.video import Frame

    frames = [Frame(i, i / 30.0, np.zeros((4, 4), np.uint8)) for i in range(90)]  # 3 s at 30 fps
    assert len(list(sampled_frames(iter(frames), None))) == 90
    kept = [f.t for f in sampled_frames(iter(frames), 4.0)]
    assert len(kept) == 12 and kept[0] == 0.0
    assert all(0.2 <= b - a <= 0.3 + 1e-9 for a, b in itertools.pairwise(kept))
    gappy = [
        Frame(i, t, np.zeros((4, 4), np.uint8)) for i, t in enumerate((0.0, 0.1, 1.7, 1.8, 2.0))
    ]  # a gap longer than a tick
    assert [f.t for f in sampled_frames(iter(gappy), 2.0)] == [0.0, 1.7]  # ticks restart from the late frame


@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (1920, 1080), (330, 200)])
def test_reduce_luma_sizes(size):
    from quilt_llava.narratives.frames import analysis_scale, reduce_luma

    w, h = size
    luma = _texture(h, w)
    small, tiny = reduce_luma(luma, 320)
    scale = analysis_scale(w, 320)
    assert small.shape == (h // scale, w // scale) and tiny.shape == (small.shape[0] // 2, small.shape[1] // 2)
    assert abs(float(small.mean()) - float(luma.mean())) < 2


# --------------------------------------------------------------------------- still runs


def _shifted(base: np.ndarray, dx: int) -> np.ndarray:
    return np.roll(base, dx, axis=1)


def test_stability_blurs_a_runs_anchor_once(monkeypatch):
    """Frames that keep differing from the run's first frame in fine detail only are compared with
    it blurred: the anchor is blurred once per run, with the verdicts of blurring it every time."""
    from quilt_llava.narratives import stability
    from quilt_llava.narratives.stability import CellDiffStability

    base = _texture(90, 160, 4).astype(np.int16)
    checker = (np.indices(base.shape).sum(axis=0) % 2) * 2 - 1  # finest detail: gone once blurred
    # A still view re-sharpening a little each frame (as compression does), a pan, a still view.
    frames = [np.clip(base + 3 * k * checker, 0, 255).astype(np.uint8) for k in range(12)]
    frames += [np.roll(frames[-1], 20 * k, axis=1) for k in range(1, 4)] + [np.roll(frames[-1], 60, axis=1)] * 5
    real = stability._blurred
    calls = []
    monkeypatch.setattr(stability, "_blurred", lambda img: calls.append(1) or real(img))
    cached = CellDiffStability()
    got = [(cached.update(f), cached.vetoed) for f in frames]
    blurred_once = len(calls)
    monkeypatch.setattr(CellDiffStability, "_blurred_anchor", lambda self: stability._blurred(self.anchor))
    again = CellDiffStability()
    assert [(again.update(f), again.vetoed) for f in frames] == got
    compared = blurred_once - 1  # one run's anchor, blurred once
    assert compared >= 5 and sum(v for _, v in got) >= 5  # frames undecided by the blurred comparison
    assert len(calls) - blurred_once == 2 * compared  # blurring the anchor each time: twice the blurs


def test_still_runs_close_at_a_pan_and_at_the_end():
    from quilt_llava.narratives.views import StillRuns

    base = _texture(90, 160, 1)
    frames = [base] * 10 + [_shifted(base, 12 * k) for k in range(1, 5)] + [_shifted(base, 48)] * 8
    runs = StillRuns(StabilityConfig())
    closed, starts = [], []
    for i, tiny in enumerate(frames):
        moving = runs.moving(tiny)
        step = runs.step(i, moving, tiny)
        if step.closed is not None:
            closed.append(step.closed)
        if step.started:
            starts.append(i)
    closed.append(runs.close(len(frames) - 1))
    assert closed == [Span(0, 9), Span(14, 21)]
    assert starts == [0, 14]
    assert runs.close(30) is None  # nothing open any more


def test_still_runs_start_after_the_easing():
    """A 1 px ease after a pan moves the run's start on by one frame, or two: against the last eased
    frame the settled view is shifted 1 px, which the pan test calls moving (the eased frame is left
    as a one-frame run)."""
    from quilt_llava.narratives.views import StillRuns

    base = _texture(90, 160, 2)
    frames = [base] * 6 + [_shifted(base, 20), _shifted(base, 40), _shifted(base, 41)] + [_shifted(base, 42)] * 6
    runs = StillRuns(StabilityConfig())
    starts, closed = [], []
    for i, tiny in enumerate(frames):
        moving = runs.moving(tiny)
        step = runs.step(i, moving, tiny)
        starts += [i] if step.started else []
        closed += [step.closed] if step.closed else []
    assert closed[0] == Span(0, 5) and all(s.end - s.start < 1 for s in closed[1:])
    assert starts[0] == 0 and 8 < starts[-1] <= 10  # the eased frames are not part of the second run
    assert runs.close(len(frames) - 1).start == starts[-1]


@pytest.mark.parametrize("fps,trimmed", [(10.0, 3), (24.0, 3), (25.0, 3), (30.0, 3), (29.97, 3), (50.0, 5), (60.0, 6)])
def test_the_easing_trim_spans_the_same_time_at_any_frame_rate(fps, trimmed):
    """Where every frame before a pan still eases, the trim reaches back 0.1 s, at least 3 frames:
    3 at up to 30 fps (as when it was set in frames), 6 at 60 fps; the analyser passes the rate on."""
    from quilt_llava.narratives.views import StillRuns

    runs = StillRuns(StabilityConfig(), fps=fps)
    # Frames 20-29 ease toward the pan (each differs finely from the one before); earlier ones are still.
    runs.detector.drifting = lambda now, before, *_: int(now[0, 0]) >= 20  # type: ignore[method-assign]
    closed = [runs.step(i, i == 30, np.full((4, 4), i, np.uint8)).closed for i in range(31)]
    assert closed[-1] == Span(0, 29 - trimmed) and not any(closed[:-1])


def _still_runs(frames: list[np.ndarray], config: StabilityConfig | None = None, fps: float = 30.0) -> list[Span]:
    from quilt_llava.narratives.views import StillRuns

    runs = StillRuns(config or StabilityConfig(), fps=fps)
    spans = [runs.step(i, runs.moving(tiny), tiny).closed for i, tiny in enumerate(frames)]
    return [s for s in [*spans, runs.close(len(frames) - 1)] if s is not None]


def _blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return np.round(a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w).astype(np.uint8)


def _frames_of(spans: list[Span]) -> set[int]:
    return {i for s in spans for i in range(s.start, s.end + 1)}


@pytest.mark.parametrize("fps,fade_s", [(30.0, 0.7), (25.0, 1.0), (60.0, 0.5)])
def test_a_cross_fade_between_views_is_left_out_of_both_runs(fps, fade_s):
    """A cross-fade changes each frame too little for the detector until it is well under way:
    without the fade trim, the runs on either side keep blends of the two views."""
    a, b = _texture(90, 160, 3), _texture(90, 160, 4)
    n = round(fade_s * fps)
    still = round(1.5 * fps)
    frames = [a] * still + [_blend(a, b, k / (n + 1)) for k in range(1, n + 1)] + [b] * still
    blended = set(range(still + round(0.2 * n), still + n - round(0.2 * n)))  # 20-80 % of the way
    # (runs shorter than a second inside the fade are left out: far under the shortest segment)
    spans = [s for s in _still_runs(frames, fps=fps) if s.end - s.start >= fps]
    assert spans[0].start == 0 and spans[-1].end == len(frames) - 1
    assert not _frames_of(spans) & blended
    plain = [s for s in _still_runs(frames, StabilityConfig(settle_s=None), fps=fps) if s.end - s.start >= fps]
    assert _frames_of(plain) & blended


def test_the_fade_trim_keeps_a_view_where_a_pointer_moves_or_compression_flickers():
    """A pointer moving over the view's last second and per-frame noise of a few grey levels
    change a few cells or every cell a little: neither is a fade, the run keeps all its frames."""
    rng = np.random.default_rng(5)
    a = _texture(90, 160, 6)
    frames = []
    for i in range(90):
        f = cv2.add(a, rng.integers(0, 4, a.shape, dtype=np.uint8))  # compression-like flicker
        if i >= 60:  # a 12 px bright pointer crossing the view
            x = 10 + 4 * (i - 60)
            f[40:52, x : x + 8] = 250
        frames.append(f)
    assert _still_runs(frames) == [Span(0, 89)]


def test_the_fade_trim_keeps_a_view_that_compression_refreshes_once():
    """A keyframe re-sharpens a view: every cell changes a little, once. The frames before it are
    alike, not a fade: the run keeps them."""
    sharp = _texture(90, 160, 7)
    soft = cv2.add(cv2.GaussianBlur(sharp, (0, 0), 1.0), 1)  # softer and a grey level brighter
    frames = [soft] * 20 + [sharp] * 70
    assert _still_runs(frames) == [Span(0, 89)]


@pytest.mark.parametrize("fps", [25.0, 60.0])
def test_the_analyser_tells_the_still_runs_its_frame_rate(fps):
    from quilt_llava.narratives.pipeline import Analyser, ExtractConfig
    from quilt_llava.narratives.video import ArraySource

    analyser = Analyser(ExtractConfig(min_segment_s=1.0))
    analyser.run(ArraySource(np.zeros((12, 72, 128), np.uint8), fps=fps))
    assert analyser.views.boundary == (6 if fps == 60.0 else 3)


# --------------------------------------------------------------------------- webcam


def test_webcam_watch_finds_a_box_that_keeps_changing():
    from quilt_llava.narratives.webcam import WebcamWatch

    rng = np.random.default_rng(0)
    base = _texture(90, 160, 3)
    watch = WebcamWatch(grid=(12, 8))
    assert watch.ignore_cells() is None and watch.rects(4, (640, 360)) == ()
    for i in range(80):
        small = base.copy()
        small[60:85, 120:155] = rng.integers(0, 256, (25, 35), dtype=np.uint8)  # the narrator moves
        watch.observe(i, small, moving=False)
    assert watch.mask is not None
    ((x0, y0, x1, y1),) = watch.rects(4, (640, 360))
    assert x0 <= 120 * 4 and y0 <= 60 * 4 and x1 >= 155 * 4 - 4 and y1 >= 85 * 4 - 4
    assert (x1 - x0) * (y1 - y0) < 0.2 * 640 * 360
    assert watch.covers(137 * 4, 72 * 4, 4) and not watch.covers(20 * 4, 20 * 4, 4)
    cells = watch.ignore_cells()
    assert cells.shape == (8, 12) and cells[-1, -1] and not cells[0, 0]
    assert watch.ignore_cells() is cells  # made once per mask


def test_hide_rects_paints_the_overlay_with_the_content_mean():
    from quilt_llava.narratives.webcam import hide_rects, needs_repaint

    image = np.full((100, 160, 3), 200, np.uint8)
    image[60:90, 110:150] = 30  # an overlay box, a straight frame
    box = (0, 0, 160, 100)
    original = image.copy()
    painted = hide_rects(image, ((115, 65, 145, 85),), box)
    assert painted and image[60:90, 110:150].std() == 0 and abs(int(image[70, 120, 0]) - 200) <= 30
    assert not needs_repaint(original, painted, ((116, 66, 146, 86),), box)  # the same overlay frame
    assert needs_repaint(original, painted, ((10, 10, 40, 30),), box)  # elsewhere


# --------------------------------------------------------------------------- segment images


def test_run_samples_thin_and_pick():
    from quilt_llava.narratives.segment_images import RunSamples
    from quilt_llava.narratives.video import ColourSample

    samples = RunSamples(keep=3, stride=2)
    for i in range(40):
        samples.offer(i, lambda i=i: ColourSample(np.full((2, 2, 3), i, np.uint8)))
    assert len(samples.frames) <= 6 and samples.stride > 2
    picked = samples.pick(0, 39)
    assert len(picked) == 3 and picked[0][0] == samples.frames[0][0] and picked[-1][0] == samples.frames[-1][0]
    assert samples.pick(100, 200) == []
    samples.reset()
    assert samples.frames == [] and samples.stride == 2


def test_segment_images_spill_and_bring_up_to_date(tmp_path):
    """Images beyond ``held`` go to disk; a final box that differs from the one used re-encodes
    the PNG (from memory and from disk alike); a view that is not tissue keeps its own box."""
    from PIL import Image

    from quilt_llava.narratives.segment_images import SegmentImages
    from quilt_llava.narratives.segments import Segment
    from quilt_llava.narratives.video import ColourSample

    rng = np.random.default_rng(5)
    images = SegmentImages(held=1, spill_dir=tmp_path / "pending")
    segments = []
    for k in range(3):
        frame = np.zeros((60, 80, 3), np.uint8)
        frame[10:50, 10:70] = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
        chosen = [(i, ColourSample(frame)) for i in range(3)]
        tissue = k > 0  # the first view is not tissue: the second one is the reference
        images.submit(chosen, {}, (10, 10, 70, 50) if tissue else (0, 0, 80, 60), refine=3, hide=(), tissue=tissue)
        segments.append(Segment(Span(k, k), k, k + 1, np.empty(0), [], is_tissue=tissue))
    images.close()
    assert sorted(images.spilled) == [0, 1] and images.reference == 1
    box = images.final_box((12, 12, 68, 48), refine=3)
    assert box == (10, 10, 70, 50)  # snapped to the content's edges in the reference image
    for seg in segments:
        seg.box = (20, 20, 60, 40) if seg.is_tissue else (0, 0, 80, 60)
    images.finish(segments, hide=())
    for seg in segments:
        seg.ready()
    assert segments[1].png_file is not None and segments[2].png is not None
    assert Image.open(segments[1].png_file).size == (40, 20)  # re-encoded to the final box
    assert Image.open(segments[0].png_file).size == (80, 60)  # its own box
    assert segments[0].rgb().shape == (60, 80, 3)


# --------------------------------------------------------------------------- traces and rows


def test_assign_traces_keeps_hits_of_the_segment_inside_the_box():
    from quilt_llava.narratives.segments import Segment, assign_traces

    hits = {i: CursorHit(i, 10.0 + i, 20.0, 0.9) for i in range(10)}
    hits[3] = CursorHit(3, 500.0, 20.0, 0.9)  # outside the box
    segs = [Segment(Span(1, 4), 0.1, 0.5, np.empty(0), []), Segment(Span(6, 8), 0.6, 0.9, np.empty(0), [])]
    times = [i / 10 for i in range(10)]
    assign_traces(segs, hits, times, (0, 0, 100, 100), excluded=lambda x, y: x == 17.0)
    assert [p[1] for p in segs[0].trace] == [11.0, 12.0, 14.0]
    assert [p[1] for p in segs[1].trace] == [16.0, 18.0]  # 17 was excluded (a webcam)


def test_build_rows_normalises_to_the_content_box():
    from quilt_llava.narratives.rows import build_rows, segment_utterances
    from quilt_llava.narratives.segments import Analysis, Segment
    from quilt_llava.narratives.transcript import Transcript, Utterance, Word

    words = (Word(0.5, 0.9, "brown"), Word(1.0, 1.4, "nuclei"), Word(2.2, 2.6, "stroma"))
    transcript = Transcript([Utterance(0.5, 2.6, "brown nuclei stroma", words)])
    seg = Segment(Span(0, 19), 0.0, 2.0, np.empty(0), [(0.5 + k * 0.1, 110.0 + k, 60.0) for k in range(8)])
    analysis = Analysis(640, 360, 3.0, (100, 50, 300, 150), np.arange(30) / 10, np.zeros(30, bool), {}, [seg])
    (row,) = build_rows(analysis, "vid", transcript, "spatiotemporal")
    assert row["segment_id"] == "vid_000" and row["image"] == "vid/frames/vid_000.png"
    assert (row["width"], row["height"], row["content_box"]) == (200, 100, [100, 50, 300, 150])
    assert row["trace"][0] == [0.5, 0.05, 0.1]
    assert [u["text"] for u in row["utterances"]] == ["brown nuclei"]  # "stroma" is spoken after the segment
    assert [u.text for u in segment_utterances(transcript, 2.0, 3.0)] == ["stroma"]


# --------------------------------------------------------------------------- cursor thread


class _Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.seen: list[int] = []
        self.threads: set[str] = set()
        self.fail_at = fail_at

    def process(self, frame: AnalysedFrame) -> list[CursorHit]:
        if frame.index == self.fail_at:
            raise RuntimeError("locator broke")
        self.seen.append(frame.index)
        self.threads.add(threading.current_thread().name)
        return [CursorHit(frame.index - 1, 1.0, 2.0, 0.8)] if frame.index else []


@pytest.mark.parametrize("depth", [0, 3])
def test_cursor_thread_keeps_order_and_reraises(depth):
    from quilt_llava.narratives.cursor_thread import CursorThread

    recorder, hits = _Recorder(), {}
    thread = CursorThread(recorder, hits, depth)
    for i in range(20):
        thread.submit(AnalysedFrame(i, i / 10, np.zeros((4, 4), np.uint8), None, False))
    thread.wait()
    assert recorder.seen == list(range(20)) and sorted(hits) == list(range(19))
    assert recorder.threads == ({"cursor-locator"} if depth else {threading.current_thread().name})
    thread.close()
    broken = CursorThread(_Recorder(fail_at=2), {}, depth)
    with pytest.raises(RuntimeError, match="locator broke"):
        for i in range(10):
            broken.submit(AnalysedFrame(i, i / 10, np.zeros((4, 4), np.uint8), None, False))
        broken.wait()
    broken.close(check=False)


@pytest.mark.parametrize("depth", [0, 2, 48])
def test_cursor_thread_call_sees_the_state_after_the_frames_before_it(depth):
    """A function handed to ``call`` runs once the frames submitted before it are processed (on the
    locator's thread when there is one) and sees what ``wait`` would, without the caller waiting."""
    from quilt_llava.narratives.cursor_thread import CursorThread

    recorder, hits = _Recorder(), {}
    thread = CursorThread(recorder, hits, depth)
    seen = []
    for i in range(30):
        thread.submit(AnalysedFrame(i, i / 10, np.zeros((4, 4), np.uint8), None, False))
        if i % 7 == 3:
            seen.append((i, thread.call(lambda: (list(recorder.seen), sorted(hits), threading.current_thread().name))))
    thread.close()
    for i, future in seen:
        frames, hit_frames, name = future.result()
        assert frames == list(range(i + 1)) and hit_frames == list(range(i))
        assert name == ("cursor-locator" if depth else threading.current_thread().name)
    if depth:  # a call queued behind a frame the locator failed on is not run on the broken locator
        broken = CursorThread(_Recorder(fail_at=2), {}, depth)
        for i in range(3):
            broken.submit(AnalysedFrame(i, i / 10, np.zeros((4, 4), np.uint8), None, False))
        try:
            late = broken.call(lambda: "read after a failure")
        except RuntimeError:
            late = None  # the failure was already seen
        with pytest.raises(RuntimeError, match="locator broke"):
            broken.wait()
        broken.close(check=False)
        if late is not None:
            with pytest.raises(RuntimeError, match="locator broke"):
                late.result(timeout=5)


# --------------------------------------------------------------------------- batches


def test_run_one_reports_a_bad_video_without_raising(tmp_path):
    from quilt_llava.narratives.batch import run_one
    from quilt_llava.narratives.pipeline import ExtractConfig

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    video, n, error = run_one((bad, None, tmp_path / "out", ExtractConfig()))
    assert video == str(bad) and n is None and "broken.mp4" in error


# --------------------------------------------------------------------------- content per view


def test_content_stats_merge_keeps_the_tissue_area_of_the_views_merged():
    """Statistics kept per view: the tissue views merged give the viewer's tissue area; a
    full-frame slide merged in as well would widen it to the whole frame."""
    from quilt_llava.narratives.content import ContentStats

    h, w = 90, 160
    chrome = np.full((h, w), 60, np.uint8)

    def view(seed: int) -> np.ndarray:
        frame = chrome.copy()
        frame[10:80, 5:155] = _texture(70, 150, seed)
        return frame

    tissue = ContentStats()
    for seed in (1, 2):
        one = ContentStats()
        one.add(view(seed))
        tissue.merge(one)

    def near(box, truth=(20, 40, 620, 320)):  # the texture window reaches 2 analysis px past an edge
        return all(abs(a - b) <= 8 for a, b in zip(box, truth))

    assert near(tissue.box(4, (640, 360)))
    slide = ContentStats()
    slide.add(_texture(h, w, 9))  # a full-frame screen
    everything = ContentStats()
    everything.merge(tissue)
    everything.merge(slide)
    assert everything.box(4, (640, 360)) == (0, 0, 640, 360)
    assert near(tissue.box(4, (640, 360)))  # merging copies, the parts stay as they were
    empty = ContentStats()
    empty.merge(ContentStats())
    assert empty.texture is None and empty.box(4, (640, 360)) == (0, 0, 640, 360)


def test_build_rows_seeds_the_clusterer(monkeypatch):
    """ExtractConfig.seed reaches the KMeans of the clusterer (it used to stop at the config)."""
    from quilt_llava.narratives import rows as rows_module
    from quilt_llava.narratives.pipeline import ExtractConfig
    from quilt_llava.narratives.segments import Analysis

    seen = []
    real = rows_module.make_clusterer
    monkeypatch.setattr(rows_module, "make_clusterer", lambda method, seed=0: seen.append(seed) or real(method, seed))
    analysis = Analysis(640, 360, 3.0, (0, 0, 640, 360), np.arange(3) / 10, np.zeros(3, bool), {}, [])
    rows_module.build_rows(analysis, "vid", None, ExtractConfig().clustering, seed=7)
    assert seen == [7]
    assert rows_module.make_clusterer("spatiotemporal", seed=7).seed == 7
