"""The independent corpus (``benchmarks/independent_videos.py``) and its scorer
(``benchmarks/independent_bench.py``): the truth says what the frames show, and the scorer
gives a perfect answer full marks and a wrong one none."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from quilt_llava.errors import ConfigError


@pytest.fixture()
def iv(benchmark_module):
    return benchmark_module("independent_videos")


@pytest.fixture()
def bench(iv, benchmark_module):
    return benchmark_module("independent_bench")


def small(iv, **kw):
    """A short 320x240 video with every kind of shot."""
    base = iv.VideoConfig(
        name="t",
        seed=5,
        width=320,
        height=240,
        fps=10.0,
        toolbar="top",
        panel="left",
        overview="panel",
        scale_bar=True,
        pointers=("drawn:mac", "drawn:laser"),
        shape_change=True,
        plan=("drag", "text", "zoom", "fade", "camera", "pan", "cut", "desktop", "blank"),
        view_seconds=(3.5, 4.0),
        screen_seconds=(1.0, 1.5),
    )
    return replace(base, **kw)


def drawn_pointers(iv):
    specs = [f"drawn:{n}" for n in iv.DRAWN]
    from quilt_llava.narratives.xcursor import installed_themes

    themes = installed_themes()
    if themes:
        specs += [
            f"x11:{themes[0]}:{role}"
            for role in iv.X11_ROLES
            if iv.pointer_spec_problem(f"x11:{themes[0]}:{role}") is None
        ]
    return specs


def test_pointer_pixels_cover_the_hotspot_at_sub_pixel_positions(iv):
    for spec in drawn_pointers(iv):
        for size in (16, 32, 64):
            try:
                sprite = iv.load_sprite(spec, size)
            except ConfigError:  # a theme without this role
                continue
            centroids = []
            for x, y in ((100.0, 90.0), (100.5, 90.0), (100.0, 90.25)):
                frame = np.full((200, 220, 3), 128, np.uint8)
                iv.composite(frame, sprite, x, y)
                ys, xs = np.nonzero(np.abs(frame.astype(int) - 128).max(axis=-1) > 8)
                assert len(xs), (spec, size)
                near = np.hypot(xs - x, ys - y).min()
                reach = 0.42 * size + 2 if spec.endswith("ring") else 2.5
                assert near <= reach, (spec, size, near)
                over = [np.full((200, 220, 3), v, np.uint8) for v in (0, 255)]  # coverage from black and white
                for canvas in over:
                    iv.composite(canvas, sprite, x, y)
                w = 1 - (over[1].astype(float) - over[0]).mean(axis=-1) / 255
                yy, xx = np.mgrid[: w.shape[0], : w.shape[1]]
                centroids.append(((w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()))
            # half and quarter pixel moves of the hotspot move the drawing with it
            assert 0.2 <= centroids[1][0] - centroids[0][0] <= 0.8, (spec, size, centroids)
            assert 0.05 <= centroids[2][1] - centroids[0][1] <= 0.45, (spec, size, centroids)


def test_symmetric_pointers_are_centred_on_their_hotspot(iv):
    """The laser dot, ring and I-beam are symmetric about their hotspot: their coverage's centroid must
    lie on it, at any quarter-pixel position (a half-pixel bias of the drawing would show here)."""
    yy, xx = np.mgrid[:100, :100]
    for name in ("laser", "ring", "ibeam", "cross"):
        sprite = iv.load_sprite(f"drawn:{name}", 24)
        for x, y in ((50.0, 40.0), (50.25, 40.5), (50.75, 40.25)):
            over = [np.full((100, 100, 3), v, np.uint8) for v in (0, 255)]
            for canvas in over:
                iv.composite(canvas, sprite, x, y)
            w = 1 - (over[1].astype(float) - over[0]).mean(axis=-1) / 255
            centre = ((w * xx).sum() / w.sum(), (w * yy).sum() / w.sum())
            assert np.hypot(centre[0] - x, centre[1] - y) < 0.15, (name, x, y, centre)


def test_still_views_are_identical_but_for_the_pointer(iv):
    director = iv.Director(small(iv))
    plans = director.build()
    painter = iv.Painter(director)
    firsts: dict[int, np.ndarray] = {}
    checked = 0
    for i, p in enumerate(plans):
        if p.view is None or p.background == ("screen", "camera"):
            continue
        clean = painter.background(p, i)
        firsts.setdefault(p.view, clean)
        assert np.array_equal(clean, firsts[p.view]), f"frame {i} of view {p.view} differs without its pointer"
        drawn = painter.paint(p, i)
        changed = np.argwhere(np.any(drawn != clean, axis=-1))
        if p.pointer is None:
            assert not len(changed)
        elif len(changed):  # only near the hotspot (a pointer pushed off the frame may draw nothing)
            assert np.hypot(changed[:, 1] - p.pointer[0], changed[:, 0] - p.pointer[1]).max() < 2 * 24 + 4
            checked += 1
    assert checked > 50


def test_truth_flags_cuts_screens_and_moves(iv):
    cfg = small(iv)
    director = iv.Director(cfg)
    plans = director.build()
    truth = iv.truth_of(cfg, director, plans)
    frames, segments = truth["frames"], truth["segments"]
    screens = [s["screen"] for s in segments if not s["tissue"]]
    assert screens == ["text", "camera", "desktop", "blank"]
    assert sum(s["tissue"] for s in segments) == len(cfg.plan) + 1  # every shot is followed by a still tissue view
    for f in frames:
        if f["view"] is None:  # a drag, zoom, pan or cross-fade
            assert not f["stable"] and f["tissue"]
        seg = next((s for s in segments if s["view"] == f["view"]), None)
        if seg is not None and seg["screen"]:
            assert not f["tissue"] and not f["on_content"]
    # a drag moves the pointer with the slide; the pan hides it
    assert any(f["motion"] == "drag" and f["cursor"] for f in frames)
    assert all(f["cursor"] is None for f in frames if f["motion"] == "pan")
    for s in segments:
        assert s["end"] - s["start"] >= (cfg.view_seconds[0] if s["tissue"] else cfg.screen_seconds[0]) - 1e-6
    x0, y0, x1, y1 = truth["content_box"]
    on = [f for f in frames if f["on_content"]]
    assert on and all(x0 <= f["cursor"][0] < x1 and y0 <= f["cursor"][1] < y1 for f in on)


def test_render_encodes_every_planned_frame(iv, tmp_path):
    import av

    cfg = small(iv, plan=("cut",), fps=29.97, codec="mpeg4", bitrate_kbps=400)
    made = iv.render(cfg, tmp_path)
    with av.open(str(made.video)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert len(times) == len(made.truth["frames"])
    assert np.allclose(times, [f["t"] for f in made.truth["frames"]], atol=1e-3)
    again = iv.render(cfg, tmp_path)
    assert again.reused and again.truth["frames"] == made.truth["frames"]


def test_bad_config_lists_every_problem(iv):
    cfg = small(
        iv, width=321, codec="h265", tissue="plasma", pointers=("drawn:star", "x11:NoTheme:arrow"), plan=("jump",)
    )
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    text = str(err.value)
    for part in ("321", "h265", "plasma", "drawn:star", "NoTheme", "jump"):
        assert part in text
    with pytest.raises(ConfigError, match="side panel"):
        small(iv, panel="none").validate()


def _rows_from_truth(truth, dx=0.0):
    """Rows a perfect extractor would write (every tissue view, the pointer on every frame), moved by dx px."""
    x0, y0, x1, y1 = truth["content_box"]
    rows = []
    for seg in truth["segments"]:
        if not seg["tissue"]:
            continue
        trace = [
            [f["t"], (f["cursor"][0] + dx - x0) / (x1 - x0), (f["cursor"][1] - y0) / (y1 - y0)]
            for f in truth["frames"]
            if f["view"] == seg["view"] and f["on_content"]
        ]
        rows.append({"start": seg["start"], "end": seg["end"], "content_box": [x0, y0, x1, y1], "trace": trace})
    return rows


def test_scorer_full_marks_for_the_truth_and_none_20px_off(iv, bench):
    cfg = small(iv, height=480, width=640)
    director = iv.Director(cfg)
    truth = iv.truth_of(cfg, director, director.build())
    perfect, misses = bench.score_video(truth, _rows_from_truth(truth))
    assert perfect["recall"] == 1.0 and perfect["precision"] == 1.0 and perfect["median_err_px"] < 1e-6
    assert perfect["seg_err_max_s"] < 1e-6 and perfect["tissue_views_lost"] == 0 and perfect["non_tissue_rows"] == 0
    assert perfect["box_err_px"] == 0 and perfect["pan_points"] == 0 and not misses
    off, misses = bench.score_video(truth, _rows_from_truth(truth, dx=20 * 480 / 720 * 1.7))  # beyond 16 px at 720p
    assert off["recall"] == 0.0 and off["precision"] == 0.0 and len(misses) == perfect["eligible_frames"]
    assert off["median_err_px"] == pytest.approx(34.0, abs=0.01)
    # a row over the text slide, a lost view, a point on a moving frame
    rows = _rows_from_truth(truth)
    text = next(s for s in truth["segments"] if s["screen"] == "text")
    moving = next(f for f in truth["frames"] if f["view"] is None)
    rows[0]["trace"].append([moving["t"], 0.5, 0.5])
    rows = [*rows[:-1], {"start": text["start"], "end": text["end"], "content_box": [0, 0, 640, 480], "trace": []}]
    worse, _ = bench.score_video(truth, rows)
    assert worse["non_tissue_rows"] == 1 and worse["tissue_views_lost"] == 1 and worse["pan_points"] == 1
    assert worse["recall"] < 1.0 and worse["precision"] < 1.0
    assert worse["recall_kept"] == 1.0  # every view that gave a row has its pointer
    assert [v["view"] for v in worse["lost_views"]] == [truth["segments"][-1]["view"]]


def test_hand_strokes_tremor_and_circles(iv):
    rng = np.random.default_rng(3)
    hand = iv.Hand(rng, 50.0, 1.0, (0, 0, 1280, 720), [], (200.0, 200.0))
    path = np.array(hand.stroke(np.array([600.0, 400.0])))
    assert np.allclose(path[-1], (600, 400)) and np.all(np.diff(path[:, 0]) >= 0)  # min-jerk: no going back
    speed = np.hypot(*np.diff(path, axis=0).T)
    assert speed.argmax() in range(len(speed) // 4, 3 * len(speed) // 4 + 1)  # fastest mid-stroke
    rest = np.array(hand.dwell(2.0))
    wobble = np.hypot(*(rest - rest.mean(axis=0)).T)
    assert 0.1 < wobble.max() <= 1.6 and np.allclose(rest.mean(axis=0), (600, 400), atol=0.5)
    assert np.ptp(np.array(hand.still(1.0)), axis=0).max() == 0  # a hand off the mouse: no tremor
    ring = np.array(hand.circle())
    centre = ring.mean(axis=0)
    assert np.hypot(*(ring[-20:] - centre).T).min() > 5  # it goes round, not through, the spot


def test_bench_runs_the_extractor_on_a_small_video(iv, bench, tmp_path):
    """End to end through the real extractor: a 320x240 video with a cut to a text slide."""
    cfg = small(iv, name="e2e", plan=("text", "drag"), pointers=("drawn:mac",), shape_change=False, fps=15.0)
    scores, misses = bench.run_video(cfg, tmp_path, reuse=False)
    assert scores["tissue_views"] == 3 and scores["frames"] == len(iv.render(cfg, tmp_path / "videos").truth["frames"])
    assert scores["non_tissue_rows"] == 0  # the text slide gives no row
    assert scores["speed_ratio"] > 0 and scores["eligible_frames"] > 0
    assert len(misses) == round((1 - scores["recall"]) * scores["eligible_frames"])
    residue = scores["residue"]
    assert residue["rows"] and all("ptr_mad" in r for r in residue["rows"])  # images are crops of the content box
    assert 0 <= residue["ctrl_mad"] < 6  # compression alone, away from the pointer
