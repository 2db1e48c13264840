"""Where an extraction's time goes: CPU per part of the narratives analysis on one video.

The whole analysis runs inline on the calling thread (``prefetch=0``, ``cursor.match_threads=1``),
so each part is one thread's CPU (``time.thread_time`` around the part's calls); the segment
images run on their worker thread and are timed there. Also printed: decode-only process CPU of
the same file (FFmpeg's threads), the analysing thread in all, and the process in all. Each
figure is the lowest of ``--repeat`` runs (a machine shared with other jobs inflates CPU too)::

    PYTHONPATH=src python benchmarks/extract_profile.py video.mp4 [more.mp4 ...] --repeat 2

The locator's rows count both locators, the luma one and the chroma one
(``quilt_llava.narratives.chroma_pointer``); ``--no-chroma`` runs the luma locator alone.

``--cursor-opt KEY=VALUE`` sets a field of the locator's config (``CursorConfig``; JSON value),
e.g. ``--cursor-opt search_every=12`` (a value that is not JSON is a string).

Parts nest: the locator's rows (whole-frame searches, box matches, sprite learner, motion judge)
are inside "locator, all"; the first rows are inside "analysing thread, all". Below them, calls
counted in the last run (``COUNTS``): whole-frame searches run (not their peaks reused), template
matches made (``match_in``, not those reused), footprints asked for, and frames the locator
gathered candidates in (the rest carried a resting pointer over, or were moving).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTS = (
    ("frame reduction", "frames", None, "reduce_luma"),
    ("view stability", "views", "StillRuns", "moving"),
    ("view stability", "views", "StillRuns", "step"),
    ("webcam, content area, samples", "webcam", "WebcamWatch", "observe"),
    ("webcam, content area, samples", "content", "ContentStats", "add"),
    ("webcam, content area, samples", "segment_images", "RunSamples", "offer"),
    ("locator, all", "cursor_thread", "CursorThread", "submit"),
    ("  whole-frame searches", "whole_frame_search", "WholeFrameSearch", "peak_boxes"),
    ("  box matches", "box_matches", "BoxMatcher", "candidates"),
    ("  sprite learner", "sprite_intake", "SpriteIntake", "observe"),
    ("  motion judge", "motion_judge", "MotionJudge", "shown"),
    ("run ends (tissue test, image job)", "pipeline", "Analyser", "_close_run"),
    ("segment images (worker thread)", "segment_images", None, "segment_job"),
)

# (label, module, owner, function): calls counted
COUNTS = (
    ("whole-frame searches run", "whole_frame_search", "WholeFrameSearch", "search"),
    ("template matches made", "box_matches", None, "match_in"),
    ("frames with candidates gathered", "cursor", "TemplateCursorLocator", "_gather"),
    ("footprints", "cursor", "TemplateCursorLocator", "footprint"),
)


def _counted(fn: Callable[..., Any], label: str, counts: dict[str, float]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        counts[label] += 1
        return fn(*args, **kwargs)

    return call


def _timed(fn: Callable[..., Any], label: str, spent: dict[str, float]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - t0

    return call


def instrument(spent: dict[str, float], counts: dict[str, float]) -> None:
    """Wrap each part's function (module attributes are looked up at call time)."""
    import importlib

    for wrap, parts, into in ((_timed, PARTS, spent), (_counted, COUNTS, counts)):
        for label, module, owner, name in parts:
            target = importlib.import_module(f"quilt_llava.narratives.{module}")
            if owner is not None:
                target = getattr(target, owner)
            setattr(target, name, wrap(getattr(target, name), label, into))


def profile(
    video: Path,
    repeat: int,
    spent: dict[str, float],
    counts: dict[str, float],
    cursor: dict[str, Any] | None = None,
    chroma: bool = True,
) -> dict[str, Any]:
    from quilt_llava.narratives.pipeline import ExtractConfig, analyse
    from quilt_llava.narratives.video import PyAVSource

    best: dict[str, float] = {}
    frames = 0
    for _ in range(repeat):
        c0 = time.process_time()
        for _frame in PyAVSource(video).frames():
            pass
        decode = time.process_time() - c0
        spent.clear()
        counts.clear()
        config = ExtractConfig(sample_fps=None, prefetch=0)
        config.cursor.match_threads = 1
        config.chroma.enabled = chroma
        for key, value in (cursor or {}).items():
            setattr(config.cursor, key, value)
        t0, c0 = time.thread_time(), time.process_time()
        analysis = analyse(PyAVSource(video), config)
        run = {**spent, "analysing thread, all": time.thread_time() - t0, "process, all": time.process_time() - c0}
        run["decode only (process)"] = decode
        frames = len(analysis.times)
        for k, v in run.items():
            best[k] = min(best.get(k, float("inf")), v)
    return {
        "video": video.name,
        "frames": frames,
        **{k: round(v, 3) for k, v in best.items()},
        **{label: int(counts[label]) for label, *_ in COUNTS},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--repeat", type=int, default=2, help="runs per video; the lowest CPU of each part counts")
    ap.add_argument("--json", action="store_true", help="one JSON object per video instead of the table")
    ap.add_argument(
        "--cursor-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a CursorConfig field (JSON value), e.g. search_every=12; may be repeated",
    )
    ap.add_argument("--no-chroma", action="store_true", help="without the chroma locator (the luma locator alone)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from narratives_bench import parse_options
    from quilt_llava.narratives.cursor import CursorConfig

    cursor = parse_options(args.cursor_opt)
    unknown = [key for key in cursor if key not in CursorConfig.__dataclass_fields__]
    if unknown:
        ap.error(f"--cursor-opt: CursorConfig has no field {unknown[0]!r}")
    missing = [str(v) for v in args.videos if not v.is_file()]
    if missing:
        ap.error(f"no such video: {', '.join(missing)}")
    spent: dict[str, float] = collections.defaultdict(float)
    counts: dict[str, float] = collections.defaultdict(float)
    instrument(spent, counts)
    results = [profile(v, args.repeat, spent, counts, cursor, not args.no_chroma) for v in args.videos]
    if args.json:
        for r in results:
            print(json.dumps(r))
        return 0
    order = [
        "frames",
        "decode only (process)",
        *dict.fromkeys(p[0] for p in PARTS),
        "analysing thread, all",
        "process, all",
        *(label for label, *_ in COUNTS),
    ]
    width = max(len(k) for k in order)
    print(f"{'part (CPU s)':{width}s}  " + "  ".join(f"{r['video'][:16]:>16s}" for r in results))
    for k in order:
        print(f"{k:{width}s}  " + "  ".join(f"{r.get(k, 0):>16}" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
