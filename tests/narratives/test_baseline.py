from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quilt_llava.errors import InputError
from quilt_llava.narratives.baseline import (
    BaselineConfig,
    cursor_from_difference,
    published_cursor_trace,
    run_published,
)
from quilt_llava.narratives.synthetic import SyntheticConfig, ViewSpec, make_synthetic_video

pytest.importorskip("av")


def test_cursor_from_difference_thresholds_noise() -> None:
    bg = np.full((40, 60), 120, np.uint8)
    frame = bg.copy()
    frame[5:9, 30:33] = 125  # compression-noise-sized change: ignored
    assert cursor_from_difference(frame, bg, threshold=20) is None
    frame[20, 44] = 10  # strong dark pixel: the strongest response
    frame[21, 44] = 60
    assert cursor_from_difference(frame, bg, threshold=20) == (44, 20)


def test_chunks_split_on_change_and_short_chunks_dropped() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (96, 96), dtype=np.uint8)
    b = rng.integers(0, 255, (96, 96), dtype=np.uint8)
    frames = []
    for i in range(40):  # 4 s of view a, 1 s of view b, 4 s of a with a moving bright bar
        frames.append((i / 10, a.copy()))
    for i in range(10):
        frames.append((4 + i / 10, b.copy()))
    for i in range(40):
        img = a.copy()
        img[40:44, 10 + i : 14 + i] = 255
        frames.append((5 + i / 10, img))
    res = run_published(frames, BaselineConfig(crop_size=96))  # whole-frame crop: deterministic
    assert res.segments == [pytest.approx((0.0, 4.0)), pytest.approx((5.0, 9.0))]
    assert all(c is None for c in res.cursor[:50])  # static, and the too-short chunk
    found = [c for c in res.cursor[50:] if c is not None]
    assert len(found) >= 35
    assert all(40 <= y < 44 for _, y in found)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    moving = [(t * 0.25, 0.2 + 0.15 * (i % 4), 0.3 + 0.1 * (i % 3)) for i, t in enumerate(range(15))]
    views = [
        ViewSpec(center=(0.35, 0.4), zoom=1.0, duration_s=3.5, waypoints=moving),
        ViewSpec(center=(0.6, 0.6), zoom=0.7, duration_s=3.5, waypoints=[(0.0, 0.5, 0.5)]),  # rests all along
    ]
    cfg = SyntheticConfig(name="clip", width=320, height=180, fps=10.0, views=views, pan_seconds=0.6, ui=False)
    return make_synthetic_video(tmp_path_factory.mktemp("base"), cfg)


def test_published_method_on_synthetic_clip(clip) -> None:
    # At 320x180 a random 64 px crop often holds the moving cursor and splits the chunk,
    # so keep chunks of 1 s or more here.
    res = published_cursor_trace(clip.video, BaselineConfig(min_segment_s=1.0))
    frames = clip.truth["frames"]
    assert len(res.times) == len(frames)
    assert res.seconds > 0
    # No kept chunk straddles the pan; most of each view is kept.
    views = clip.truth["segments"]
    for s, e in res.segments:
        assert any(v["start"] - 0.15 <= s and e <= v["end"] + 0.15 for v in views), (s, e)
    kept = [
        sum(min(e, v["end"]) - max(s, v["start"]) for s, e in res.segments if s < v["end"] and e > v["start"])
        for v in views
    ]
    assert kept[0] > 0  # the moving cursor splits view 0 into chunks, some are kept
    assert kept[1] >= 0.8 * (views[1]["end"] - views[1]["start"])  # nothing moves in view 1
    # A moving cursor is found near (not at) its tip: the strongest difference is on its body.
    errs = [
        np.hypot(c[0] - f["cursor"][0], c[1] - f["cursor"][1])
        for f, c in zip(frames, res.cursor)
        if f["view"] == 0 and f["cursor"] is not None and c is not None
    ]
    assert len(errs) >= 10
    assert np.median(errs) < 10
    # A cursor resting through the whole chunk is in the median: the method loses it.
    rest = [c for f, c in zip(frames, res.cursor) if f["view"] == 1]
    near = [c for c in rest if c is not None and np.hypot(c[0] - 160, c[1] - 90) < 10]
    assert len(near) < len(rest) // 2
    assert res.trace() and all(len(p) == 3 for p in res.trace())


def test_unreadable_video_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(InputError, match=r"broken\.mp4"):
        published_cursor_trace(bad)
