"""View stability on slow pans: a frame that is the run's first frame shifted is moving (it ends the
still run), but only for the runs: the pointer locators' view goes on through it.

A slow pan changes each frame by a fraction of a pixel: far under the cell test against the previous
frame. Against the run's first frame a view of fine grain changes in fine detail only, which the
blur veto takes for compression, and a pale view changes each cell by less than the cell threshold.
The views here are smoothed noise drawn in the test, not the corpus's renders."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives.stability import CellDiffStability, Span, StabilityConfig

cv2 = pytest.importorskip("cv2")

H, W = 96, 160  # the tiny frame the detector sees


def _grain(seed: int, sigma: float, spread: float, mean: float = 128.0) -> np.ndarray:
    """A field of smoothed noise (``sigma`` px) with a luma spread of ``spread`` grey levels, larger
    than the frame so that it can be panned across."""
    noise = cv2.GaussianBlur(
        np.random.default_rng(seed).standard_normal((H + 40, W + 40)).astype(np.float32), (0, 0), sigma
    )
    return mean + spread * noise / noise.std()


def _view(field: np.ndarray, x: float, y: float = 0.0) -> np.ndarray:
    """The frame-sized window of ``field`` at (20 + x, 20 + y), sub-pixel shifts interpolated."""
    m = np.float32([[1, 0, -(20 + x)], [0, 1, -(20 + y)]])
    return cv2.warpAffine(field, m, (W, H), flags=cv2.INTER_LINEAR)


def _pan(field: np.ndarray, still: int, pan: int, dx: float, seed: int, chrome: bool = False) -> list[np.ndarray]:
    """``still`` frames, a pan of ``dx`` px over ``pan`` frames (eased in and out), ``still``
    frames; each with a compression-like flicker of under a grey level."""
    rng = np.random.default_rng(seed)
    xs = [0.0] * still + [dx * (1 - np.cos(np.pi * k / pan)) / 2 for k in range(1, pan)] + [dx] * still
    frames = []
    for x in xs:
        f = _view(field, x) + rng.normal(0, 0.4, (H, W))
        if chrome:  # dark window chrome around the view: it does not move
            f[:12], f[-12:], f[:, :16], f[:, -16:] = 40, 40, 40, 40
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames


def _runs(frames: list[np.ndarray], config: StabilityConfig | None = None, fps: float = 30.0) -> list[Span]:
    from quilt_llava.narratives.views import StillRuns

    runs = StillRuns(config or StabilityConfig(), fps=fps)
    spans = [runs.step(i, runs.moving(f), f).closed for i, f in enumerate(frames)]
    return [s for s in [*spans, runs.close(len(frames) - 1)] if s is not None and s.end - s.start >= fps]


ON = StabilityConfig(pan_shift=0.5)  # the default (see StabilityConfig.pan_shift)
OFF = StabilityConfig(pan_shift=None)


@pytest.mark.parametrize("sigma,spread,dx", [(2.0, 4.0, 3.0), (2.0, 4.0, 8.0), (1.5, 5.0, 4.0), (1.5, 5.0, 6.0)])
def test_a_slow_pan_of_a_pale_view_splits_the_views_on_either_side(sigma, spread, dx):
    """A pale view in dark chrome (the chrome keeps the view from counting as faint): 45 still
    frames, a pan of a few px over 1.5 s (30 fps), 45 still frames. Two runs, each ending in the
    pan's first or last half; without the pan test, one run over both views."""
    frames = _pan(_grain(1, sigma, spread, 200.0), 45, 45, dx, 2, chrome=True)
    runs = _runs(frames)
    assert len(runs) == 2, runs
    first, second = runs
    assert first.start == 0 and 44 <= first.end <= 44 + 22
    assert 89 - 22 <= second.start <= 89 + 3 and second.end == len(frames) - 1
    assert _runs(frames, OFF) == [Span(0, len(frames) - 1)]  # the two views taken for one


def test_a_pointer_moving_fast_over_a_still_view_with_flicker_is_not_a_pan():
    """A pointer crossing a pale still view (a few cells change, each a lot) over per-frame
    compression flicker: the view stays still, one run."""
    rng = np.random.default_rng(3)
    field = _view(_grain(4, 2.0, 3.0, 200.0), 0.0)
    frames = []
    for i in range(90):
        f = field + rng.normal(0, 0.6, (H, W))
        x = 10 + (i * 5) % (W - 30)
        f[40:56, x : x + 10] = 20  # a dark arrow-sized pointer, moving 5 px a frame
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    det = CellDiffStability(ON)
    assert not any(det.update(f) for f in frames)


def test_a_view_that_settled_before_its_run_began_is_not_split():
    """A run whose first frame is the last eased step of a pan (1.5 px off the settled view): the
    later frames are that frame shifted, but the shift no longer grows, so the run stays whole, keyframe
    refreshes included."""
    field = _grain(5, 0.8, 14.0)
    rng = np.random.default_rng(6)
    frames = [np.clip(_view(field, 0.0) + rng.normal(0, 0.4, (H, W)), 0, 255).astype(np.uint8)]
    for i in range(1, 90):
        f = _view(field, 1.5)
        if i >= 45:  # a keyframe re-sharpens the view from here on
            f = f + 0.3 * (f - cv2.GaussianBlur(f, (0, 0), 1.0))
        frames.append(np.clip(f + rng.normal(0, 0.4, (H, W)), 0, 255).astype(np.uint8))
    det = CellDiffStability(ON)
    flags = [det.update(f) for f in frames]
    assert not any(flags[3:]), [i for i, m in enumerate(flags) if m]


@pytest.mark.parametrize("sigma,spread", [(1.0, 12.0), (0.8, 14.0)])
def test_a_run_ending_in_the_slow_start_of_a_pan_loses_those_frames(sigma, spread):
    """45 still frames, then 12 frames of a pan's eased start (0.004 to 0.6 px off the view, too
    little for the detector), then a cut: the run loses the eased frames shifted 0.1 px or more
    (frames 49 on; main keeps up to frame 52, where the easing trim reaches back 0.1 s)."""
    field = _grain(7, sigma, spread, 128.0)
    rng = np.random.default_rng(8)
    xs = [0.0] * 45 + [0.6 * (k / 12) ** 2 for k in range(1, 13)]
    frames = []
    for x in xs:
        frames.append(np.clip(_view(field, x) + rng.normal(0, 0.4, (H, W)), 0, 255).astype(np.uint8))
    frames += [np.clip(_view(_grain(9, 2.0, 20.0), 0.0), 0, 255).astype(np.uint8)] * 40  # a cut to another view
    runs = _runs(frames)
    assert runs[0].start == 0 and 44 <= runs[0].end <= 49, runs
    assert runs[-1] == Span(58, len(frames) - 1)  # (frame 57, the cut, is moving)


def test_the_pan_test_is_on_by_default():
    assert StabilityConfig().pan_shift == ON.pan_shift


@pytest.mark.parametrize("dx,still,pan", [(4.0, 45, 45), (8.0, 45, 45), (40.0, 30, 20)])
def test_the_cell_verdicts_are_those_without_the_pan_test(dx, still, pan):
    """The pan test keeps its own anchor: the frames it does not call moving alone get the verdicts the
    detector gives without it, through slow and fast pans (a shared anchor, re-anchored inside the
    pan, called other pan frames still or moving)."""
    frames = _pan(_grain(1, 2.0, 4.0, 200.0), still, pan, dx, 2, chrome=True)
    frames += _pan(_grain(11, 1.0, 14.0), still, pan, dx, 12)
    on, off = CellDiffStability(ON), CellDiffStability(OFF)
    flags = [(on.update(f), on.shifted, off.update(f)) for f in frames]
    assert [m and not s for m, s, _ in flags] == [o for _, _, o in flags]
    assert not any(s for _, s, o in flags if o)  # (shifted: moving for the pan test alone)
    if dx < 10:
        assert any(s for _, s, _ in flags)


def test_a_slow_pan_ends_the_run_but_not_the_pointer_view():
    """Through a slow pan the still runs end and start again, but :attr:`StillRuns.view_start` (the
    view as the pointer locators see it) stays at the first frame: every moving verdict is the pan
    test's alone."""
    from quilt_llava.narratives.views import StillRuns

    frames = _pan(_grain(1, 2.0, 4.0, 200.0), 45, 45, 6.0, 2, chrome=True)
    runs = StillRuns(StabilityConfig(), fps=30.0)
    closed, starts, shifted = [], set(), []
    for i, f in enumerate(frames):
        moving = runs.moving(f)
        shifted.append(runs.shifted)
        assert runs.shifted == moving  # (no other moving frame here)
        step = runs.step(i, moving, f)
        closed += [step.closed] if step.closed else []
        starts.add(runs.view_start)
    assert any(shifted) and closed
    assert starts == {0}


def test_the_analyser_splits_a_slow_pan_without_restarting_the_pointer_locator(monkeypatch):
    """A whole video through the analyser: the slow pan splits the views on either side into two
    segments, and the pointer locator is never told the view moved (it restarted at each such frame
    and lost pointers that arrived, or were learned, during the pan)."""
    from quilt_llava.narratives import cursor
    from quilt_llava.narratives.pipeline import Analyser, ExtractConfig
    from quilt_llava.narratives.video import ArraySource

    told: list[bool] = []
    process = cursor.TemplateCursorLocator.process

    def recorded(self, frame):
        told.append(frame.moving)
        return process(self, frame)

    monkeypatch.setattr(cursor.TemplateCursorLocator, "process", recorded)
    tiny = _pan(_grain(1, 2.0, 4.0, 200.0), 45, 45, 6.0, 2, chrome=True)
    video = np.stack([cv2.resize(f, (4 * W, 4 * H), interpolation=cv2.INTER_LINEAR) for f in tiny])
    analyser = Analyser(ExtractConfig(min_segment_s=1.0))
    analysis = analyser.run(ArraySource(video, fps=30.0))
    assert len(analysis.segments) == 2, [s.span for s in analysis.segments]
    assert any(analysis.moving) and len(told) == len(video) and not any(told)


def test_a_view_split_by_a_slow_pan_is_judged_sparse_as_a_whole():
    """The chroma locators' hits fill views the luma hits leave sparse. A view a slow pan split into
    two segments is judged as the one view the locators followed: hits on the first part keep the
    second from counting as sparse alone (which filled it with colour hits the luma locator, holding
    its pointer in that view, never needed). Segments of other views are judged alone."""
    from quilt_llava.narratives.cursor_hits import CursorHit
    from quilt_llava.narratives.pipeline import Analyser, ExtractConfig
    from quilt_llava.narratives.segments import Segment

    analyser = Analyser(ExtractConfig())
    first, second = (Segment(Span(a, b), a / 30, b / 30, np.empty(0), []) for a, b in ((0, 49), (60, 109)))
    analyser.segments = [first, second]
    analyser.hits = {i: CursorHit(i, 10.0, 10.0, 0.9) for i in range(41)}
    analyser.segment_views = [0, 0]  # one pointer view, split by a pan
    assert analyser._sparse_views() == []
    analyser.segment_views = [0, 55]  # two views
    (sparse,) = analyser._sparse_views()
    assert sparse is second


@pytest.mark.parametrize("step", [0.25, 0.3])
def test_a_view_settled_off_its_anchor_is_not_split_by_a_small_step(step):
    """A run whose anchor is the pan's last eased step, 0.4 px off the view that settles after it; 2 s
    on, the view steps ``step`` px further (a stand-in for a keyframe that moves phase correlation's
    estimate so far). From the first anchor that is over ``pan_shift`` and grown by ``pan_growth``:
    without re-anchoring on the settled view, the run was split there (on a tuning video, a 4.9 s
    view became two runs, each under a segment's 3 s)."""
    field = _grain(13, 1.0, 14.0)
    rng = np.random.default_rng(14)
    xs = [0.0] + [0.4] * 60 + [0.4 + step] * 30
    frames = [np.clip(_view(field, x) + rng.normal(0, 0.4, (H, W)), 0, 255).astype(np.uint8) for x in xs]
    det = CellDiffStability(StabilityConfig())
    det.set_frame_rate(30.0)
    flags = [det.update(f) for f in frames]
    assert not any(flags), [i for i, m in enumerate(flags) if m]
