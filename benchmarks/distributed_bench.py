"""Narratives on Ray against the local process pool: videos per minute, same videos, same run.

N synthetic narrated videos (1280x720 H.264, random tours, ``quilt_llava.narratives.synthetic``;
seeds differ, so views, cursor paths and lengths differ) are extracted twice into fresh
folders, alternately, ``--repeats`` times each:

- ``local``: ``batch.extract_folder(..., workers=W)`` (a spawn process pool; its start-up is in
  the time, as it is in every real run);
- ``ray``: ``ray_engine.extract_folder_ray`` on a local Ray instance with ``num_cpus=W``
  (one task per video). The instance is started once before the timed runs (its start-up,
  reported apart, is paid once per run of the command, or not at all on a running cluster).
  Ray starts its workers at niceness 15; on a machine shared with other work that alone makes
  them slower than the pool's processes (niceness 0), so the instance is started with
  ``RAY_worker_niceness`` = ``--ray-niceness`` (default 0: the same priority as the pool).

The two outputs are compared (rows and segment PNGs must be identical). Printed: videos per
minute and frames per second of each (best of the repeats), the ratio ray/local, and the
per-video cost on this machine as CPU seconds per second of video (wall x W / video seconds),
the figure the cluster estimate in docs/BENCHMARKS.md starts from.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distributed_bench.py [--videos 6] [--seconds 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def make_videos(folder: Path, n: int, seconds: float, width: int, height: int) -> tuple[float, int]:
    """N videos of about ``seconds`` each; returns (total seconds, total frames)."""
    from quilt_llava.narratives.synthetic import SyntheticConfig, make_synthetic_video

    total_s = 0.0
    frames = 0
    n_views = max(1, round(seconds / 11.5))
    for i in range(n):
        cfg = SyntheticConfig(
            name=f"video{i:02d}",
            width=width,
            height=height,
            fps=25.0,
            crf=23,
            seed=100 + i,
            n_views=n_views,
            webcam=i % 2 == 1,
            annotations=i % 3 == 0,
        )
        video = make_synthetic_video(folder, cfg)
        video.truth_path.unlink()
        total_s += video.truth["duration"]
        frames += len(video.truth["frames"])
    return total_s, frames


def _images(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/frames/*.png"))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from quilt_llava.files import read_jsonl
    from quilt_llava.narratives.batch import extract_folder
    from quilt_llava.narratives.pipeline import ExtractConfig
    from quilt_llava.narratives.ray_engine import RayConfig, extract_folder_ray

    tmp = Path(tempfile.mkdtemp(prefix="distributed_bench_"))
    try:
        videos = tmp / "videos"
        t0 = time.perf_counter()
        video_s, frames = make_videos(videos, args.videos, args.seconds, args.width, args.height)
        render_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        os.environ["RAY_worker_niceness"] = str(args.ray_niceness)  # noqa: SIM112 (Ray spells it so; read by the raylet)
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        ray_start_s = time.perf_counter() - t0
        times: dict[str, list[float]] = {"local": [], "ray": []}
        cfg = ExtractConfig()
        for r in range(args.repeats):
            for engine in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
                out = tmp / f"{engine}{r}"
                t0 = time.perf_counter()
                if engine == "local":
                    result = extract_folder(videos, out, cfg, workers=args.workers)
                else:
                    result = extract_folder_ray(videos, out, cfg, RayConfig())
                times[engine].append(time.perf_counter() - t0)
                if not result.ok:
                    raise SystemExit(f"{engine}: {result.failed}")
        ray.shutdown()
        same_rows = read_jsonl(tmp / "local0" / "narratives.jsonl") == read_jsonl(tmp / "ray0" / "narratives.jsonl")
        same_images = _images(tmp / "local0") == _images(tmp / "ray0")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best = {k: min(v) for k, v in times.items()}
    return {
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "ray": ray.__version__,
        },
        "videos": args.videos,
        "video_seconds": round(video_s, 1),
        "frames": frames,
        "size": f"{args.width}x{args.height}",
        "workers": args.workers,
        "repeats": args.repeats,
        "ray_niceness": args.ray_niceness,
        "load_average": os.getloadavg(),
        "render_s": round(render_s, 1),
        "ray_start_s": round(ray_start_s, 2),
        "wall_s": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "videos_per_min": {k: round(60 * args.videos / t, 2) for k, t in best.items()},
        "frames_per_s": {k: round(frames / t, 1) for k, t in best.items()},
        "ratio_ray_over_local": round(best["local"] / best["ray"], 3),
        "cpu_s_per_video_s": {k: round(t * args.workers / video_s, 4) for k, t in best.items()},
        "identical_rows": same_rows,
        "identical_images": same_images,
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=40.0, help="about this long each (views of 8-12 s)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--workers", type=int, default=2, help="pool size, and the Ray instance's CPUs")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ray-niceness", type=int, default=0, help="niceness of Ray's workers (Ray's own default: 15)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run(args)
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"{res['videos']} videos, {res['video_seconds']} s of video, {res['frames']} frames, {res['size']}, "
            f"{res['workers']} workers; {res['machine']['cpu']}, {res['machine']['cores']} cores, ray "
            f"{res['machine']['ray']}"
        )
        print(
            f"ray instance start: {res['ray_start_s']} s (once per command; not in the figures below); "
            f"ray worker niceness {res['ray_niceness']}; load average after the run "
            f"{', '.join(f'{x:.1f}' for x in res['load_average'])}"
        )
        for k in ("local", "ray"):
            print(
                f"  {k:5s}: {res['videos_per_min'][k]:7.2f} videos/min  {res['frames_per_s'][k]:7.1f} frames/s  "
                f"{res['cpu_s_per_video_s'][k]:.4f} CPU s per video s  (wall {res['wall_s'][k]})"
            )
        print(
            f"  ray / local throughput: x{res['ratio_ray_over_local']}; identical rows: {res['identical_rows']}, "
            f"identical images: {res['identical_images']}"
        )
    return 0 if res["identical_rows"] and res["identical_images"] else 1


if __name__ == "__main__":
    sys.exit(main())
