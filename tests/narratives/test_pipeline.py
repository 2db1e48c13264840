"""End-to-end extraction on small synthetic videos, bad inputs, resumability and the CLI."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import InputError
from quilt_llava.files import read_jsonl
from quilt_llava.narratives.batch import extract_folder
from quilt_llava.narratives.pipeline import ExtractConfig, extract_video
from quilt_llava.narratives.segment_images import median_u8
from quilt_llava.narratives.synthetic import SyntheticConfig, ViewSpec, make_synthetic_video
from quilt_llava.narratives.video import Frame, prefetch

av = pytest.importorskip("av")

VIEWS = [
    ViewSpec(
        center=(0.35, 0.4),
        zoom=1.0,
        duration_s=4.0,
        waypoints=[
            (0.0, 0.3, 0.3),
            (1.5, 0.3, 0.3),
            (2.3, 0.7, 0.6),
            (3.2, 0.7, 0.6),
            (3.6, 0.5, 0.4),
            (4.0, 0.5, 0.4),
        ],
        utterances=[(0.2, 1.6, "look at these brown nuclei"), (2.0, 3.8, "and the loose stroma over here")],
    ),
    ViewSpec(
        center=(0.6, 0.55),
        zoom=0.6,
        duration_s=4.0,
        waypoints=[(0.0, 0.6, 0.5), (1.0, 0.6, 0.5), (2.0, 0.2, 0.3), (4.0, 0.2, 0.3)],
        hidden=[(2.5, 3.2)],
        utterances=[(0.3, 3.5, "a zoomed out view of the whole field with many glands")],
    ),
]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("videos")
    cfg = SyntheticConfig(
        name="tour", width=640, height=360, fps=12.0, crf=28, views=VIEWS, pan_seconds=1.0, webcam=True
    )
    return make_synthetic_video(out, cfg)


def _points(rows):
    pts = {}
    for row in rows:
        x0, y0, x1, y1 = row["content_box"]
        for t, x, y in row["trace"]:
            pts[round(t, 3)] = (x0 + x * (x1 - x0), y0 + y * (y1 - y0))
    return pts


def test_extract_video_quality_and_layout(video, tmp_path):
    rows = extract_video(video.video, video.transcript, tmp_path)
    truth = video.truth
    assert len(rows) == 2
    for row, seg in zip(rows, truth["segments"]):
        assert abs(row["start"] - seg["start"]) <= 0.5 and abs(row["end"] - seg["end"]) <= 0.5
        assert row["content_box"] == pytest.approx(truth["content_box"], abs=2)
        image = tmp_path / row["image"]
        assert image.is_file()
        from PIL import Image

        assert Image.open(image).size == (row["width"], row["height"])
    assert read_jsonl(tmp_path / "narratives.jsonl") == rows
    # Cursor: visible frames found within 5 px, (almost) nothing reported when hidden or panning.
    pts = _points(rows)
    hit = miss = false = 0
    for f in truth["frames"]:
        p = pts.get(round(f["t"], 3))
        if f["cursor"] is None:
            false += p is not None
        elif p is not None and np.hypot(p[0] - f["cursor"][0], p[1] - f["cursor"][1]) <= 5:
            hit += 1
        else:
            miss += 1
    assert hit / (hit + false) >= 0.98
    assert hit / (hit + miss) >= 0.93
    # Speech lands in the right segment, and the caption is grounded.
    assert "brown nuclei" in rows[0]["grounded_caption"] and "zoomed out" in rows[1]["grounded_caption"]
    assert any("[" in r["grounded_caption"] for r in rows)


def test_published_clustering_option(video, tmp_path):
    rows = extract_video(video.video, video.transcript, tmp_path, ExtractConfig(clustering="published", sample_fps=6.0))
    assert len(rows) == 2
    ts = [p[0] for p in rows[0]["trace"]]
    assert len(ts) > 5 and min(np.diff(ts)) >= 1 / 6.0 - 0.002


def test_transcript_longer_than_video(video, tmp_path):
    long = tmp_path / "long.json"
    long.write_text(json.dumps([{"start": 0, "end": 1, "text": "a"}, {"start": 60, "end": 61, "text": "b"}]))
    with pytest.raises(InputError, match=r"long\.json.*transcript runs to 61\.0 s"):
        extract_video(video.video, long, tmp_path / "out")


def _bad_inputs(folder: Path, video) -> None:
    shutil.copy(video.video, folder / "good.mp4")
    shutil.copy(video.transcript, folder / "good.transcript.json")
    data = video.video.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (folder / "garbage.mp4").write_bytes(b"this is not a video" * 100)
    (folder / "empty.mp4").write_bytes(b"")
    with av.open(str(folder / "audio.mkv"), "w") as container:  # a file with no video stream
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_folder_bad_inputs_and_resume(video, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _bad_inputs(folder, video)
    out = tmp_path / "out"
    result = extract_folder(folder, out)
    assert result.done == ["good"]
    failed = {Path(k).name: v for k, v in result.failed.items()}
    assert set(failed) == {"truncated.mp4", "garbage.mp4", "empty.mp4", "audio.mkv"}
    for name, message in failed.items():
        assert name in message
    assert "no video stream" in failed["audio.mkv"]
    assert result.rows == 2 and len(read_jsonl(out / "narratives.jsonl")) == 2
    # A re-run skips the finished video and still reports the broken ones.
    again = extract_folder(folder, out)
    assert again.skipped == ["good"] and again.done == [] and len(again.failed) == 4
    assert again.rows == 2


def test_cli_extract_folder_workers_and_show(video, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        shutil.copy(video.video, folder / f"{name}.mp4")
        shutil.copy(video.transcript, folder / f"{name}.json")
    (folder / "broken.mp4").write_bytes(b"\x00" * 1000)
    out = tmp_path / "out"
    app = make_app()
    result = CliRunner().invoke(
        app, ["narratives", "extract", str(folder), "--out", str(out), "--workers", "2", "--json", "--sample-fps", "4"]
    )
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(summary["done"]) == ["a", "b"] and summary["rows"] == 4
    assert any("broken.mp4" in k for k in summary["failed"])
    result = CliRunner().invoke(app, ["narratives", "show", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.stdout)["html"]).is_file()


def test_cli_single_video(video, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        make_app(),
        [
            "narratives",
            "extract",
            str(video.video),
            "--transcript",
            str(video.transcript),
            "--out",
            str(out),
            "--sample-fps",
            "4",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(out / "narratives.jsonl")) == 2
    bad = CliRunner().invoke(
        make_app(), ["narratives", "extract", str(video.video), "--out", str(out), "--clustering", "nope"]
    )
    assert bad.exit_code != 0


def test_cli_keep_webcam_reaches_the_extractor(video, tmp_path, monkeypatch):
    from quilt_llava.narratives import batch

    seen = []
    real = batch.process_video
    monkeypatch.setattr(
        batch,
        "process_video",
        lambda v, t, o, cfg, source=None: seen.append(cfg.hide_webcam) or real(v, t, o, cfg, source),
    )
    for flag, hidden in (([], True), (["--keep-webcam"], False)):
        out = tmp_path / str(hidden)
        result = CliRunner().invoke(
            make_app(),
            ["narratives", "extract", str(video.video), "--out", str(out), "--sample-fps", "4", "--quiet", *flag],
        )
        assert result.exit_code == 0, result.output
        assert seen[-1] is hidden


@pytest.mark.parametrize("n", [1, 3, 5, 7, 9, 11])
def test_median_u8_matches_numpy(n):
    rng = np.random.default_rng(n)
    stack = [rng.integers(0, 256, (9, 11, 3), dtype=np.uint8) for _ in range(n)]
    assert np.array_equal(median_u8(stack), np.median(np.stack(stack), axis=0).astype(np.uint8))


class _Source:
    """Frames 0..n-1 of a tiny array, failing after ``fail_after`` when given; records closing."""

    def __init__(self, n: int, fail_after: int | None = None) -> None:
        self.n, self.fail_after, self.closed = n, fail_after, threading.Event()

    def frames(self):
        try:
            for i in range(self.n):
                if self.fail_after is not None and i == self.fail_after:
                    raise InputError("clip.mp4", f"video decoding failed after {i} frames")
                yield Frame(i, i / 25, np.full((4, 4), i % 256, np.uint8))
        finally:
            self.closed.set()


@pytest.mark.parametrize("depth", [0, 1, 8])
def test_prefetch_order_errors_and_early_stop(depth):
    assert [f.index for f in prefetch(_Source(50).frames, depth)] == list(range(50))
    seen = []
    with pytest.raises(InputError, match="after 7 frames"):
        for f in prefetch(_Source(50, fail_after=7).frames, depth):
            seen.append(f.index)
    assert seen == list(range(7))  # the frames decoded before the error come first
    source = _Source(10_000)
    frames = prefetch(source.frames, depth)
    assert next(frames).index == 0
    frames.close()  # the consumer stops: the producer stops and closes the source
    assert source.closed.wait(5)


def test_prefetch_matches_inline_decoding(video, tmp_path):
    a = extract_video(video.video, video.transcript, tmp_path / "a", ExtractConfig(prefetch=0))
    b = extract_video(video.video, video.transcript, tmp_path / "b", ExtractConfig(prefetch=4))
    assert a == b


def test_colour_sample_converts_like_the_decoder(video):
    """A frame's 4:2:0 copy (held instead of the decoder's buffer) gives exactly the decoder's RGB."""
    from quilt_llava.narratives.video import PyAVSource

    for frame in list(PyAVSource(video.video).frames())[::20]:
        sample = frame.colour()
        assert sample.i420 == "yuv420p" and sample.size() == (640, 360)
        assert np.array_equal(sample.rgb(), frame.rgb())


def test_segment_median_on_planes_drops_a_resting_pointer():
    """Medians on Y, U and V planes; under the boxes a pointer covered, only samples without it count."""
    from quilt_llava.narratives.segment_images import segment_median
    from quilt_llava.narratives.video import ColourSample

    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (96, 64), dtype=np.uint8)  # a 64x64 frame, packed 4:2:0
    rest, away = (8, 8, 24, 30), (40, 36, 56, 60)  # x0, y0, x1, y1
    chosen, pointer = [], {}
    for i in range(5):
        data = base.copy()
        x0, y0, x1, y1 = rest if i < 4 else away
        sample = ColourSample(data, "yuv420p")
        y, u, v = sample.planes()
        y[y0:y1, x0:x1] = 0
        u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 90
        v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 240
        chosen.append((i, sample))
        pointer[i] = rest if i < 4 else away
    image = segment_median(chosen, pointer)
    assert image.i420 == "yuv420p" and np.array_equal(image.data, base)
    assert image.rgb().shape == (64, 64, 3)


def test_webcam_is_painted_out_of_segment_images(video, tmp_path):
    """The narrator's webcam box is not tissue: segment images show it as one flat colour."""
    from PIL import Image

    rows = extract_video(video.video, video.transcript, tmp_path / "hidden")
    kept = extract_video(video.video, video.transcript, tmp_path / "kept", ExtractConfig(hide_webcam=False))
    wx0, wy0, wx1, wy1 = video.truth["webcam_box"]
    for row, plain in zip(rows, kept):
        cx0, cy0 = row["content_box"][:2]
        inner = (slice(wy0 - cy0, wy1 - cy0), slice(wx0 - cx0, wx1 - cx0))  # the whole box, frame included
        hidden = np.asarray(Image.open(tmp_path / "hidden" / row["image"]))[inner]
        shown = np.asarray(Image.open(tmp_path / "kept" / plain["image"]))[inner]
        assert hidden.reshape(-1, 3).std(axis=0).max() == 0  # one colour
        assert shown.reshape(-1, 3).std(axis=0).max() > 5  # the narrator, when not hidden
    assert [r["trace"] for r in rows] == [r["trace"] for r in kept]  # the cursor is untouched


def test_extract_config_reports_every_problem():
    from quilt_llava.errors import ConfigError
    from quilt_llava.narratives.cursor import CursorConfig

    cfg = ExtractConfig(
        sample_fps=0, median_frames=0, clustering="nope", locator_queue=0, cursor=CursorConfig(history_stride=0)
    )
    with pytest.raises(ConfigError) as exc:
        cfg.validate()
    text = str(exc.value)
    for field_name in ("sample_fps", "median_frames", "clustering", "locator_queue", "history_stride"):
        assert field_name in text


def test_segment_images_beyond_the_held_ones_wait_on_disk(video, tmp_path, monkeypatch):
    """Long videos keep memory bounded: older segment images wait on disk until the video ends,
    with byte-identical results, and nothing is left behind."""
    saved = []
    real_save = np.save
    monkeypatch.setattr(np, "save", lambda path, arr: saved.append(Path(path).name) or real_save(path, arr))
    held = extract_video(video.video, video.transcript, tmp_path / "held", ExtractConfig(held_segments=0))
    assert saved == []
    spilled = extract_video(video.video, video.transcript, tmp_path / "spilled", ExtractConfig(held_segments=1))
    assert saved, "the first segment image went to disk"
    assert spilled == held
    for row in held:
        assert (tmp_path / "spilled" / row["image"]).read_bytes() == (tmp_path / "held" / row["image"]).read_bytes()
    assert not list((tmp_path / "spilled").rglob("*.npy")) and not list(
        (tmp_path / "spilled").rglob(".segments-pending")
    )


def test_a_segment_image_on_disk_is_redone_when_the_webcam_is_found_later(video, tmp_path, monkeypatch):
    import io

    from PIL import Image

    from quilt_llava.narratives import webcam

    real = webcam.mask_rects
    calls: list[int] = []

    def late(*args):  # the webcam is not yet known when the first segment is made
        calls.append(1)
        return () if len(calls) == 1 else real(*args)

    monkeypatch.setattr(webcam, "mask_rects", late)
    outputs = {}
    for held in (0, 1):
        calls.clear()
        rows = extract_video(video.video, video.transcript, tmp_path / str(held), ExtractConfig(held_segments=held))
        outputs[held] = [(tmp_path / str(held) / r["image"]).read_bytes() for r in rows]
    assert outputs[0] == outputs[1]
    wx0, wy0, wx1, wy1 = video.truth["webcam_box"]
    cx0, cy0 = rows[0]["content_box"][:2]
    first = np.asarray(Image.open(io.BytesIO(outputs[1][0])))[wy0 - cy0 : wy1 - cy0, wx0 - cx0 : wx1 - cx0]
    assert first.reshape(-1, 3).std(axis=0).max() == 0  # painted after all


def _panned_frames(size: tuple[int, int], shifts: list[float]) -> np.ndarray:
    """Grey frames of one slide seen through a window moved ``shifts`` px to the right."""
    cv2 = pytest.importorskip("cv2")
    from skimage import data

    w, h = size
    slide = cv2.resize(cv2.cvtColor(data.immunohistochemistry(), cv2.COLOR_RGB2GRAY), (w + 400, h + 300))
    return np.stack(
        [
            cv2.warpAffine(slide, np.float32([[1, 0, -(100 + dx)], [0, 1, -100]]), (w, h), flags=cv2.INTER_LINEAR)
            for dx in shifts
        ]
    )


@pytest.mark.parametrize("size", [(960, 540), (1920, 1080)])
def test_a_short_last_view_that_eases_in_is_kept(size):
    """10 fps, a pan that eases out over a few frames, then 2 s of still view: the run starts
    where the easing ends and its segment image is made of its own frames (once, samples taken
    before the corrected start left it with none and the segment was dropped)."""
    from quilt_llava.narratives.pipeline import analyse
    from quilt_llava.narratives.video import ArraySource

    shifts = [0.0] * 20 + [1.2, 4, 9, 16, 24, 32, 40, 47, 52, 55, 56.5] + [57.0] * 20
    analysis = analyse(ArraySource(_panned_frames(size, shifts), fps=10.0), ExtractConfig(min_segment_s=1.5))
    spans = [(s.span.start, s.span.end) for s in analysis.segments]
    assert len(spans) == 2 and spans[0] == (0, 19), spans
    assert 29 <= spans[1][0] <= 31 and spans[1][1] == 50


def test_segment_images_sample_one_frame_a_second_at_any_frame_rate(monkeypatch):
    from quilt_llava.narratives import pipeline, segment_images
    from quilt_llava.narratives.video import ArraySource

    picked = []
    real = segment_images.segment_job
    monkeypatch.setattr(
        segment_images, "segment_job", lambda chosen, *a: picked.append([i for i, _ in chosen]) or real(chosen, *a)
    )
    frames = _panned_frames((320, 180), [0.0] * 50)
    for fps in (10.0, 30.0):
        picked.clear()
        pipeline.analyse(ArraySource(frames, fps=fps), ExtractConfig(min_segment_s=1.0))
        step = round(fps)
        assert picked == [list(range(0, 50, step))], (fps, picked)


CUT_VIEWS = [
    VIEWS[0],
    ViewSpec(
        center=(0.5, 0.5),
        zoom=1.0,
        duration_s=4.0,
        screen="text",
        waypoints=[(0.0, 0.3, 0.4), (2.0, 0.3, 0.4), (3.0, 0.6, 0.5), (4.0, 0.6, 0.5)],
        utterances=[(0.3, 2.5, "the learning objectives for today")],
    ),
    ViewSpec(center=(0.5, 0.5), zoom=1.0, duration_s=4.0, screen="presenter"),
    ViewSpec(center=(0.5, 0.5), zoom=1.0, duration_s=4.0, screen="desktop"),
    VIEWS[1],
]


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("cuts")
    cfg = SyntheticConfig(
        name="cuts", width=640, height=360, fps=12.0, crf=28, views=CUT_VIEWS, pan_seconds=1.0, webcam=True
    )
    return make_synthetic_video(out, cfg)


def _view_of(row, truth):
    """The truth view a row's span lies on most."""
    return max(truth["segments"], key=lambda s: min(row["end"], s["end"]) - max(row["start"], s["start"]))


def test_non_tissue_cuts_give_no_rows_and_keep_the_tissue_box(cut_video, tmp_path):
    from PIL import Image

    truth = cut_video.truth
    rows = extract_video(cut_video.video, cut_video.transcript, tmp_path / "default")
    assert [_view_of(r, truth)["view"] for r in rows] == [0, 4]  # every tissue view, nothing else
    assert all(r["is_tissue"] and r["tissue"] >= 0.5 for r in rows)
    for row in rows:  # the tissue area, not the whole frame the slide and camera filled
        assert all(abs(a - b) <= 4 for a, b in zip(row["content_box"], truth["content_box"])), row["content_box"]
        x0, y0, x1, y1 = row["content_box"]
        assert Image.open(tmp_path / "default" / row["image"]).size == (x1 - x0, y1 - y0)
    assert len(list((tmp_path / "default" / "cuts" / "frames").iterdir())) == 2

    kept = extract_video(cut_video.video, cut_video.transcript, tmp_path / "kept", ExtractConfig(keep_non_tissue=True))
    flagged = [r for r in kept if not r["is_tissue"]]
    assert {_view_of(r, truth)["view"] for r in flagged} == {1, 2, 3}
    assert all(r["tissue"] < 0.5 for r in flagged)
    for r in flagged:  # their own box, not the tissue area: the whole frame for the slide and the desktop,
        # the camera's textured subject for the presenter (its plain background is flat to the view-relative box)
        assert max(abs(a - b) for a, b in zip(r["content_box"], truth["content_box"])) > 4, r["content_box"]
    assert sum(r["content_box"] == [0, 0, 640, 360] for r in flagged) == 2
    assert [r for r in kept if r["is_tissue"]] == rows  # same ids, boxes and traces as without them
    assert any("objectives" in u["text"] for r in flagged for u in r["utterances"])


def test_cli_keep_non_tissue(cut_video, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        make_app(),
        [
            "narratives",
            "extract",
            str(cut_video.video),
            "--transcript",
            str(cut_video.transcript),
            "--out",
            str(out),
            "--sample-fps",
            "4",
            "--quiet",
            "--keep-non-tissue",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "narratives.jsonl")
    assert sum(not r["is_tissue"] for r in rows) >= 2 and sum(r["is_tissue"] for r in rows) == 2


def test_cli_no_chroma_turns_the_chroma_locator_off(tmp_path, monkeypatch):
    from quilt_llava.narratives import cli as narratives_cli

    seen = []
    monkeypatch.setattr(narratives_cli, "run_extract", lambda options, out: seen.append(options) or 0)
    for flag, enabled in (([], True), (["--no-chroma"], False)):
        args = ["narratives", "extract", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet", *flag]
        result = CliRunner().invoke(make_app(), args)
        assert result.exit_code == 0, result.output
        assert narratives_cli.extract_config(seen[-1]).chroma.enabled is enabled


def test_extract_profile_benchmark_times_every_part(video):
    """``benchmarks/extract_profile.py`` (run as a script: it wraps the analysis's functions) gives
    each part's CPU, the locator's parts inside the locator's and all inside the process's."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))}
    script = str(root / "benchmarks" / "extract_profile.py")
    done = subprocess.run(
        # the luma locator alone (--no-chroma): the counts below are one locator's
        [sys.executable, script, str(video.video), "--repeat", "1", "--json", "--no-chroma"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["video"] == video.video.name and row["frames"] > 0
    for part in ("frame reduction", "view stability", "locator, all", "segment images (worker thread)"):
        assert row[part] > 0, part
    searched = row["  whole-frame searches"] + row["  box matches"]
    assert searched <= row["locator, all"] <= row["analysing thread, all"] <= row["process, all"]
    # calls counted: a view start always runs a whole-frame search, whose peaks are matched
    assert 1 <= row["whole-frame searches run"] <= row["frames with candidates gathered"] <= row["frames"]
    assert row["template matches made"] >= 1 and row["footprints"] >= 0
