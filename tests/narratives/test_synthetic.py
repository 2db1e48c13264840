from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quilt_llava.errors import ConfigError
from quilt_llava.narratives.synthetic import (
    SyntheticConfig,
    ViewSpec,
    cursor_at,
    make_cursor_sprite,
    make_synthetic_video,
)

av = pytest.importorskip("av")

VIEWS = [
    ViewSpec(
        center=(0.4, 0.4),
        zoom=1.0,
        duration_s=2.0,
        waypoints=[(0.0, 0.3, 0.3), (0.8, 0.3, 0.3), (1.2, 0.7, 0.6), (2.0, 0.7, 0.6)],
        hidden=[(1.5, 2.0)],
        utterances=[(0.1, 1.4, "look at these brown nuclei here")],
    ),
    ViewSpec(
        center=(0.6, 0.55),
        zoom=0.5,
        duration_s=1.5,
        waypoints=[(0.0, 0.5, 0.5), (1.5, 0.5, 0.5)],
        utterances=[(0.2, 1.2, "and a zoomed out view")],
    ),
]


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synth")
    cfg = SyntheticConfig(
        name="small",
        width=320,
        height=180,
        fps=10.0,
        crf=23,
        views=VIEWS,
        pan_seconds=0.5,
        webcam=True,
    )
    return make_synthetic_video(out, cfg)


def test_truth_is_consistent(small_video) -> None:
    truth = small_video.truth
    frames = truth["frames"]
    assert len(frames) == round((2.0 + 0.5 + 1.5) * 10)
    assert [f["t"] for f in frames] == pytest.approx([i / 10 for i in range(len(frames))])
    x0, y0, x1, y1 = truth["content_box"]
    assert 0 < x0 < x1 < 320 and 0 < y0 < y1 < 180  # UI border and toolbar excluded
    for f in frames:
        if f["cursor"] is not None:
            assert f["stable"]
            assert x0 <= f["cursor"][0] < x1 and y0 <= f["cursor"][1] < y1
        if not f["stable"]:
            assert f["cursor"] is None and f["view"] is None
    pans = [f for f in frames if not f["stable"]]
    assert len(pans) == 5  # 0.5 s at 10 fps
    assert all(p["pointer"] is not None for p in pans)  # the cursor is drawn while dragging
    assert truth["segments"] == [
        {"start": 0.0, "end": 2.0, "view": 0, "tissue": True},
        {"start": 2.5, "end": 4.0, "view": 1, "tissue": True},
    ]
    # hidden span of view 0: 1.5 s to 2.0 s
    assert [f["cursor"] for f in frames if 1.5 <= f["t"] < 2.0] == [None] * 5
    # rest: the cursor is still for the first 0.8 s
    assert len({tuple(f["cursor"]) for f in frames[:8]}) == 1


def test_transcript_words_spread_over_utterances(small_video) -> None:
    tr = json.loads(small_video.transcript.read_text())
    assert [s["text"] for s in tr["segments"]] == [
        "look at these brown nuclei here",
        "and a zoomed out view",
    ]
    seg = tr["segments"][1]
    assert seg["start"] == pytest.approx(2.7) and seg["end"] == pytest.approx(3.7)
    words = seg["words"]
    assert [w["word"].strip() for w in words] == seg["text"].split()
    assert words[0]["start"] == pytest.approx(seg["start"])
    assert seg["end"] - 0.2 <= words[-1]["end"] <= seg["end"]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert small_video.truth["utterances"][1] == {
        "start": 2.7,
        "end": 3.7,
        "text": "and a zoomed out view",
    }


def test_video_round_trip(small_video) -> None:
    truth = small_video.truth
    with av.open(str(small_video.video)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 180)
        decoded = [(float(f.pts * f.time_base), f.to_ndarray(format="gray")) for f in container.decode(stream)]
    assert [t for t, _ in decoded] == pytest.approx([f["t"] for f in truth["frames"]], abs=1e-3)
    # The black arrow is visible just below-right of the tip while the cursor rests,
    # and gone at the same place once it is hidden (same view, same background).
    x, y = truth["frames"][0]["cursor"]
    visible = decoded[2][1][y + 2 : y + 8, x + 1 : x + 4].astype(float).mean()
    bx, by = truth["frames"][14]["pointer"] or truth["frames"][14]["cursor"] or (x, y)
    assert truth["frames"][16]["cursor"] is None
    hidden_same_place = decoded[16][1][y + 2 : y + 8, x + 1 : x + 4].astype(float).mean()
    assert (bx, by) != (x, y)
    assert hidden_same_place - visible > 40


def test_random_tour_defaults(tmp_path: Path) -> None:
    cfg = SyntheticConfig(
        name="tour",
        width=256,
        height=144,
        fps=8.0,
        n_views=2,
        view_seconds=(3.0, 3.5),
        pan_seconds=0.5,
        cursor_style="small",
        annotations=True,
        seed=3,
    )
    sv = make_synthetic_video(tmp_path, cfg)
    truth = sv.truth
    assert len(truth["segments"]) == 2
    assert truth["utterances"], "a random tour has speech"
    cursors = [f["cursor"] for f in truth["frames"] if f["cursor"]]
    assert len({tuple(c) for c in cursors}) > 3  # it moves
    assert any(f["stable"] and f["cursor"] is None for f in truth["frames"])  # a hidden span
    assert json.loads(sv.truth_path.read_text())["frames"] == truth["frames"]


def test_cursor_at_rest_and_hidden() -> None:
    v = ViewSpec(
        center=(0.5, 0.5),
        zoom=1,
        duration_s=4,
        waypoints=[(0, 0.2, 0.2), (1, 0.2, 0.2), (2, 0.8, 0.4)],
        hidden=[(3, 3.5)],
    )
    assert cursor_at(v, 0.5) == (0.2, 0.2)
    x, y = cursor_at(v, 1.5)
    assert 0.2 < x < 0.8 and 0.2 < y < 0.4
    assert cursor_at(v, 3.2) is None
    assert cursor_at(v, 3.9) == (0.8, 0.4)


@pytest.mark.parametrize("style", ["arrow", "white", "small"])
def test_sprite_hotspot_is_the_tip(style: str) -> None:
    sprite = make_cursor_sprite(style)
    hx, hy = sprite.hotspot
    a = sprite.alpha[..., 0]
    assert a[hy + 1, hx] > 0.5  # the arrow starts at the hotspot
    assert a[: hy - 1, :].max() < 0.2  # nothing more than the 1 px outline above the tip
    assert a[:, : hx - 1].max() < 0.2  # nor left of it
    assert a.shape[0] > a.shape[1]  # an arrow is taller than wide


def test_bad_config_lists_all_problems() -> None:
    cfg = SyntheticConfig(
        width=101,
        crf=70,
        cursor_style="hand",
        views=[ViewSpec(center=(0.5, 0.5), zoom=0, duration_s=-1)],
    )
    with pytest.raises(ConfigError) as exc:
        cfg.validate()
    text = str(exc.value)
    for needle in ("width/height", "crf", "cursor_style", "zoom", "duration_s"):
        assert needle in text


def test_white_cursor_renders_bright(tmp_path: Path) -> None:
    v = ViewSpec(center=(0.5, 0.5), zoom=1.0, duration_s=0.4, waypoints=[(0, 0.5, 0.5)])
    sv = make_synthetic_video(
        tmp_path,
        SyntheticConfig(name="w", width=160, height=96, fps=5, crf=10, views=[v], cursor_style="white", ui=False),
    )
    x, y = sv.truth["frames"][0]["cursor"]
    with av.open(str(sv.video)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert frame[y + 4 : y + 9, x + 1 : x + 3].mean() > 200
    assert np.array_equal(sv.truth["content_box"], [0, 0, 160, 96])


def test_stable_view_changes_only_in_webcam_and_cursor(small_video) -> None:
    truth = small_video.truth
    with av.open(str(small_video.video)) as container:
        luma = [f.to_ndarray(format="gray").astype(int) for f in container.decode(video=0)]
    view1 = [i for i, f in enumerate(truth["frames"]) if f["view"] == 1]
    a, b = luma[view1[2]], luma[view1[-1]]
    wx0, wy0, wx1, wy1 = truth["webcam_box"]
    mask = np.ones_like(a, bool)
    mask[wy0:wy1, wx0:wx1] = False
    x, y = truth["frames"][view1[2]]["cursor"]
    mask[max(0, y - 4) : y + 16, max(0, x - 4) : x + 12] = False  # the (resting) cursor sprite
    assert np.abs(a - b)[mask].mean() < 2.0  # the slide does not move: compression noise only
    assert np.abs(a - b)[wy0:wy1, wx0:wx1].mean() > 5.0  # the narrator box is animated
    pan = [i for i, f in enumerate(truth["frames"]) if not f["stable"]]
    assert np.abs(luma[pan[1]] - luma[pan[3]])[mask].mean() > 5.0  # during the pan it does


def test_same_seed_same_video_truth(tmp_path: Path) -> None:
    cfg = SyntheticConfig(
        name="a",
        width=128,
        height=96,
        fps=5.0,
        n_views=2,
        view_seconds=(2.0, 2.5),
        pan_seconds=0.4,
        seed=11,
    )
    one = make_synthetic_video(tmp_path / "one", cfg).truth
    two = make_synthetic_video(tmp_path / "two", cfg).truth
    other = make_synthetic_video(tmp_path / "three", SyntheticConfig(**{**cfg.__dict__, "seed": 12})).truth
    assert one["frames"] == two["frames"] and one["utterances"] == two["utterances"]
    assert one["frames"] != other["frames"]


def test_shift_px_measures_view_motion(small_video) -> None:
    frames = small_video.truth["frames"]
    assert all(f["shift_px"] == 0 for f in frames if f["stable"])
    pan = [f["shift_px"] for f in frames if not f["stable"]]
    assert min(pan) > 0 and max(pan) > 20  # a zoom from 1.0 to 0.5 moves the corners a lot
    assert pan[len(pan) // 2] == max(pan)  # eased: fastest away from both views mid-way


def test_cuts_to_screens_have_tissue_truth_and_leave_the_tour_alone(tmp_path: Path) -> None:
    """A tour with cuts: the same tissue views as without, screens in between with no
    transition, ``tissue`` false on their frames and segments and no truth cursor there."""
    base = SyntheticConfig(
        name="plain", width=160, height=96, fps=5.0, n_views=3, view_seconds=(2.0, 2.5), pan_seconds=0.4, seed=3
    )
    plain = make_synthetic_video(tmp_path / "plain", base).truth
    cut = make_synthetic_video(
        tmp_path / "cut",
        SyntheticConfig(**{**base.__dict__, "name": "cut", "cuts": ("text", "presenter", "desktop", "blank")}),
    ).truth
    screens = [v["screen"] for v in cut["views"]]
    assert sorted(s for s in screens if s) == ["blank", "desktop", "presenter", "text"] and screens[0] is None
    tissue_views = [v for v in cut["views"] if v["screen"] is None]
    assert [(v["center"], v["zoom"], v["waypoints"]) for v in tissue_views] == [
        (v["center"], v["zoom"], v["waypoints"]) for v in plain["views"]
    ]
    for seg, view in zip(cut["segments"], cut["views"]):
        assert seg["tissue"] == (view["screen"] is None)
    for a, b in zip(cut["segments"], cut["segments"][1:]):  # a cut has no transition, a pan has one
        gap = round(b["start"] - a["end"], 6)
        assert gap == (0.4 if a["tissue"] and b["tissue"] else 0.0)
    on_screens = [f for f in cut["frames"] if f["view"] is not None and not f["tissue"]]
    assert on_screens and all(f["cursor"] is None for f in on_screens)
    assert any(f["pointer"] is not None for f in on_screens)  # the pointer still moves over the slides


def test_screen_views_render_as_described(tmp_path: Path) -> None:
    """Still screens do not change; the presenter moves a little, never the whole frame."""
    from quilt_llava.narratives.synthetic import ScreenRenderer

    renderer = ScreenRenderer((320, 180), seed=0)
    for k, screen in enumerate(("text", "desktop", "blank")):
        view = ViewSpec(center=(0.5, 0.5), zoom=1.0, duration_s=2.0, screen=screen)
        assert np.array_equal(renderer.frame(k, view, 0.0), renderer.frame(k, view, 1.5))
    presenter = ViewSpec(center=(0.5, 0.5), zoom=1.0, duration_s=2.0, screen="presenter")
    a, b = renderer.frame(9, presenter, 0.0).astype(int), renderer.frame(9, presenter, 1.0).astype(int)
    changed = np.abs(a - b).max(axis=2) > 20
    assert 0.005 < changed.mean() < 0.3
    with pytest.raises(ConfigError, match="screen"):
        SyntheticConfig(views=[ViewSpec(center=(0.5, 0.5), zoom=1.0, duration_s=1.0, screen="poster")]).validate()
    with pytest.raises(ConfigError, match="cuts"):
        SyntheticConfig(cuts=("movie",)).validate()
