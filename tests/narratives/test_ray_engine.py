"""The Ray engine on a local Ray instance (2 CPUs): same output as the local pool, worker deaths,
corrupt videos, resuming. Skipped only when ray is not installed."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.files import read_jsonl
from quilt_llava.narratives.batch import extract_folder
from quilt_llava.narratives.pipeline import ExtractConfig
from quilt_llava.narratives.synthetic import SyntheticConfig, ViewSpec, make_synthetic_video

pytest.importorskip("av")
ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'quilt-llava[distributed]'")

from quilt_llava.narratives.ray_engine import RayConfig, extract_folder_ray  # noqa: E402

CFG = ExtractConfig(sample_fps=5.0)


def _views(shift: float) -> list[ViewSpec]:
    return [
        ViewSpec(
            center=(0.3 + shift, 0.4),
            zoom=1.0,
            duration_s=3.5,
            waypoints=[(0.0, 0.3, 0.3), (1.2, 0.3, 0.3), (2.0, 0.7, 0.6), (3.5, 0.7, 0.6)],
            utterances=[(0.2, 1.4, "these brown nuclei"), (1.8, 3.3, "and the stroma here")],
        ),
        ViewSpec(
            center=(0.6, 0.5 + shift),
            zoom=0.7,
            duration_s=3.5,
            waypoints=[(0.0, 0.6, 0.5), (1.5, 0.6, 0.5), (2.5, 0.2, 0.3), (3.5, 0.2, 0.3)],
            utterances=[(0.3, 3.0, "a wider field with glands")],
        ),
    ]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three short videos that differ in size, frame rate, cursor and webcam."""
    out = tmp_path_factory.mktemp("ray_videos")
    for i, (w, h, fps, style, webcam) in enumerate(
        [(640, 360, 10.0, "arrow", False), (512, 288, 12.0, "white", True), (640, 360, 8.0, "arrow", True)]
    ):
        make_synthetic_video(
            out,
            SyntheticConfig(
                name="abc"[i],
                width=w,
                height=h,
                fps=fps,
                crf=30,
                seed=i,
                cursor_style=style,
                webcam=webcam,
                views=_views(0.05 * i),
                pan_seconds=0.6,
            ),
        )
    for extra in out.glob("*.truth.json"):
        extra.unlink()
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    # Test-module functions travel to the workers by value: the workers cannot import `tests`.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _note_attempt(log_dir: Path, kill: dict[str, int], video: Path) -> None:
    """Runs in the worker before each attempt: counts attempts; kills the worker process on the
    first ``kill[name]`` attempts at ``name``, as a crash or the OOM killer would."""
    attempts = log_dir / f"{video.name}.attempts"
    with attempts.open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    if len(attempts.read_text().splitlines()) <= kill.get(video.name, 0):
        os._exit(1)


def _attempts(log_dir: Path, name: str) -> int:
    path = log_dir / f"{name}.attempts"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _images(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/frames/*.png"))}


def test_same_rows_and_images_as_the_local_pool_and_a_killed_worker_is_retried(ray_cluster, folder, tmp_path):
    local = extract_folder(folder, tmp_path / "local", CFG)
    assert local.ok and sorted(local.done) == ["a", "b", "c"]
    logs = tmp_path / "attempts"
    logs.mkdir()
    seen, decoded = [], []
    rc = RayConfig(max_retries=2, before_task=functools.partial(_note_attempt, logs, {"b.mp4": 1}))
    result = extract_folder_ray(folder, tmp_path / "ray", CFG, rc, on_outcome=seen.append, on_frames=decoded.append)
    assert result.ok, result.failed
    assert sorted(result.done) == ["a", "b", "c"] and result.rows == local.rows
    # The worker running b died once; Ray ran b again on a new worker, and nothing else twice.
    assert [_attempts(logs, n) for n in ("a.mp4", "b.mp4", "c.mp4")] == [1, 2, 1]
    pids = (logs / "b.mp4.attempts").read_text().split()
    assert pids[0] != pids[1]
    rows_local = read_jsonl(tmp_path / "local" / "narratives.jsonl")
    rows_ray = read_jsonl(tmp_path / "ray" / "narratives.jsonl")
    assert rows_ray == rows_local  # every row exactly once, identical to the local engine's
    assert len({r["segment_id"] for r in rows_ray}) == len(rows_ray) >= 6
    assert _images(tmp_path / "ray") == _images(tmp_path / "local")
    assert sorted(Path(o.video).name for o in seen) == ["a.mp4", "b.mp4", "c.mp4"]
    assert all(o.ok and o.frames > 50 for o in seen)
    # Decoded frames reach the driver while tasks run (reports in flight may arrive after the end).
    assert decoded == sorted(decoded) and 0 < decoded[-1] <= sum(o.frames for o in seen)


def test_a_video_that_kills_every_worker_is_given_up_after_the_retries(ray_cluster, folder, tmp_path):
    logs = tmp_path / "attempts"
    logs.mkdir()
    rc = RayConfig(max_retries=1, before_task=functools.partial(_note_attempt, logs, {"a.mp4": 99}))
    result = extract_folder_ray([folder / "a.mp4", folder / "c.mp4"], tmp_path / "out", CFG, rc)
    assert result.done == ["c"] and _attempts(logs, "a.mp4") == 2
    ((video, reason),) = result.failed.items()
    assert video.endswith("a.mp4") and "worker died on all 2 attempts" in reason
    assert [r["video_id"] for r in read_jsonl(tmp_path / "out" / "narratives.jsonl")] == ["c", "c"]


def test_cli_corrupt_video_is_recorded_once_and_a_rerun_redoes_nothing(ray_cluster, folder, tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    for name in ("a", "c"):
        shutil.copy(folder / f"{name}.mp4", inp / f"{name}.mp4")
        shutil.copy(folder / f"{name}.transcript.json", inp / f"{name}.transcript.json")
    data = (folder / "b.mp4").read_bytes()
    (inp / "broken.mp4").write_bytes(data[: len(data) // 3])
    listing = tmp_path / "videos.txt"
    listing.write_text("# two good, one truncated, one missing\nin/a.mp4\nin/broken.mp4\n\nin/c.mp4\nin/gone.mp4\n")
    out = tmp_path / "out"
    args = ["narratives", "extract", str(listing), "--out", str(out), "--engine", "ray", "--sample-fps", "5", "--json"]
    first = CliRunner().invoke(make_app(), args)
    assert first.exit_code == 1, first.output
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert sorted(summary["done"]) == ["a", "c"] and summary["skipped"] == []
    failed = summary["failed"]
    assert len(failed) == 2
    broken = next(v for k, v in failed.items() if k.endswith("broken.mp4"))
    assert "broken.mp4" in broken and ("cannot open as a video" in broken or "decoding failed" in broken)
    assert any(k.endswith("videos.txt:6") and "gone.mp4" in v for k, v in failed.items())
    rows = read_jsonl(out / "narratives.jsonl")
    assert len(rows) == summary["rows"] == 4
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = CliRunner().invoke(make_app(), args)
    assert again.exit_code == 1, again.output
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["done"] == [] and sorted(summary["skipped"]) == ["a", "c"] and len(summary["failed"]) == 2
    changed = [p for p, t in stamps.items() if p.exists() and p.stat().st_mtime_ns != t]
    assert changed == [out / "narratives.jsonl"]  # rebuilt (same rows); nothing else rewritten
    assert read_jsonl(out / "narratives.jsonl") == rows


def test_corrupt_video_is_tried_once(ray_cluster, folder, tmp_path):
    logs = tmp_path / "attempts"
    logs.mkdir()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    rc = RayConfig(max_retries=3, before_task=functools.partial(_note_attempt, logs, {}))
    result = extract_folder_ray([bad], tmp_path / "out", CFG, rc)
    assert list(result.failed) == [str(bad)] and "bad.mp4" in result.failed[str(bad)]
    assert _attempts(logs, "bad.mp4") == 1  # a failure of the video's own is returned, not retried
