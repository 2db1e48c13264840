"""The narratives benchmark's ``--reuse-videos``: a video rendered by an earlier run is reused only
when its generator settings and the generator's source are the same and its files are all there."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest


@pytest.fixture()
def bench(benchmark_module):
    return benchmark_module("narratives_bench")


def test_rendered_reuses_only_the_same_settings(bench, tmp_path, monkeypatch):
    from quilt_llava.files import write_json
    from quilt_llava.narratives.synthetic import SyntheticVideo

    renders: list[int] = []

    def fake_render(out_dir, cfg):  # writes the files a real render writes, with the seed as truth
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        renders.append(cfg.seed)
        paths = [out_dir / f"{cfg.name}{ext}" for ext in (".mp4", ".transcript.json", ".truth.json")]
        paths[0].write_bytes(b"video")
        paths[1].write_text("{}")
        write_json(paths[2], {"seed": cfg.seed})
        (out_dir / f"{cfg.name}.views").mkdir(exist_ok=True)
        return SyntheticVideo(paths[0], paths[1], paths[2], {"seed": cfg.seed})

    monkeypatch.setattr(bench, "make_synthetic_video", fake_render)
    cfg = replace(bench.bench_config(7, quick=True), name="crf23", save_clean_views=True)
    videos = tmp_path / "videos"

    sv, reused = bench.rendered(videos, cfg, reuse=True)
    assert not reused and renders == [7]
    sv, reused = bench.rendered(videos, cfg, reuse=True)
    assert reused and renders == [7] and sv.truth == {"seed": 7}
    # not asked to reuse: rendered again
    assert bench.rendered(videos, cfg, reuse=False)[1] is False and renders == [7, 7]
    # other settings: rendered again, and the key follows them
    other = replace(cfg, seed=8)
    assert bench.render_key(other) != bench.render_key(cfg)
    sv, reused = bench.rendered(videos, other, reuse=True)
    assert not reused and sv.truth == {"seed": 8} and renders == [7, 7, 8]
    # a file missing (the pointer-free views): rendered again
    (videos / "crf23.views").rmdir()
    assert bench.rendered(videos, other, reuse=True)[1] is False and renders == [7, 7, 8, 8]


def _frames(plan: list[tuple[int | None, float | None]], fps: float = 10.0) -> list[dict]:
    return [{"t": i / fps, "view": v, "shift_px": s} for i, (v, s) in enumerate(plan)]


def _views(frames: list[dict], tissue: dict[int, bool] | None = None) -> list[dict]:
    views: list[dict] = []
    for f in frames:
        if f["view"] is None:
            continue
        if not views or views[-1]["view"] != f["view"]:
            views.append({"view": f["view"], "start": f["t"], "tissue": (tissue or {}).get(f["view"], True)})
        views[-1]["end"] = round(f["t"] + 0.1, 6)
    return views


def test_seen_views_joins_a_move_that_left_the_view_where_it_was(bench):
    """A drag at the slide's edge moves the pointer, not the slide: the truth's two views are one in
    the frames, so the boundary between them is not scored; a move of a few pixels, a cut, a change
    of tissue flag, or views with no frame between them keep their boundary."""
    still = [(0, 0.0)] * 5 + [(None, 0.0)] * 4 + [(1, 0.1)] + [(1, 0.0)] * 4
    joined = bench.seen_views(_views(_frames(still)), _frames(still))
    assert [(v["view"], v["start"], v["end"]) for v in joined] == [(0, 0.0, 1.4)]

    moved = [(0, 0.0)] * 5 + [(None, 1.0)] * 4 + [(1, 0.1)] + [(1, 0.0)] * 4
    assert len(bench.seen_views(_views(_frames(moved)), _frames(moved))) == 2

    cut = [(0, 0.0)] * 5 + [(1, None)] + [(1, 0.0)] * 4
    assert len(bench.seen_views(_views(_frames(cut)), _frames(cut))) == 2

    screen = _views(_frames(still), tissue={1: False})
    assert len(bench.seen_views(screen, _frames(still))) == 2

    apart = [
        {"view": 0, "start": 0.0, "end": 0.45, "tissue": True},
        {"view": 1, "start": 0.45, "end": 0.9, "tissue": True},
    ]
    assert len(bench.seen_views(apart, _frames(still))) == 2  # no frame at 0.45: nothing tells
