"""Pointer locator fingerprint: a hash of every hit the locator emits on benchmark videos.

A check for changes that must not change behaviour (a refactor of
``quilt_llava.narratives.cursor``): the extractor runs on synthetic videos of
``benchmarks/narratives_bench.py`` (``--quick`` lengths by default), and every hit
``TemplateCursorLocator.process`` and ``finish`` return, in the order returned, is hashed as
(frame, x, y, score) with the full float values, together with every pointer footprint the
pipeline asks for (not the locator's own calls). Two checkouts print the same hashes only if
the locator returned exactly the same hits. It also prints the CPU seconds the locator's thread
spent in ``process`` (``time.thread_time``; the matching helper thread's share is not counted),
for a speed check.

Videos are rendered once into ``--work-dir`` and reused (delete the folder to render again), so
two checkouts can be compared on the same files::

    PYTHONPATH=src python benchmarks/locator_hits_hash.py --work-dir /tmp/hits
    PYTHONPATH=/path/to/other/src python benchmarks/locator_hits_hash.py --work-dir /tmp/hits

``--alone N`` also times a fresh locator N times on the analysed frames held in memory (no
decoding, no pipeline): CPU of the process (both matching threads) and of the calling thread.
``--json`` prints one object per variant instead of the table. The exit status is 1 when
``--expect FILE`` (a former ``--json`` output) names a variant whose hash differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from narratives_bench import VARIANTS
from quilt_llava.narratives.synthetic import SyntheticConfig, make_synthetic_video

DEFAULT_VARIANTS = ("redglass-crf36", "handhelds-480p", "dmz-white", "cuts30", "webcam")


class _Record:
    """What one extraction's locator returned, hashed as it comes."""

    def __init__(self) -> None:
        self.hits = hashlib.sha256()
        self.footprints = hashlib.sha256()
        self.n_hits = 0
        self.n_footprints = 0
        self.cpu_s = 0.0
        self.frames: list = []  # the analysed frames, kept with ``--alone``
        self.keep_frames = False
        self.setup: tuple = ()  # the locator's (frame height, config)


def _recording_locator(record: _Record) -> type:
    from quilt_llava.narratives.cursor import TemplateCursorLocator

    class RecordingLocator(TemplateCursorLocator):
        def __init__(self, frame_height, config=None):  # type: ignore[no-untyped-def]
            super().__init__(frame_height, config)
            record.setup = (frame_height, config)

        def _add(self, hits: list) -> None:
            for h in hits:
                record.hits.update(struct.pack("<qddd", h.index, h.x, h.y, h.score))
            record.n_hits += len(hits)

        def process(self, frame):  # type: ignore[no-untyped-def]
            if record.keep_frames:
                record.frames.append(frame)
            t0 = time.thread_time()
            hits = super().process(frame)
            record.cpu_s += time.thread_time() - t0
            self._add(hits)
            return hits

        def finish(self):  # type: ignore[no-untyped-def]
            hits = super().finish()
            self._add(hits)
            return hits

        def footprint(self, x, y, frame_size, margin=3):  # type: ignore[no-untyped-def]
            box = super().footprint(x, y, frame_size, margin)
            # What the pipeline asks for (the locator's own calls are an implementation detail).
            if not sys._getframe(1).f_globals.get("__name__", "").startswith("quilt_llava.narratives.cursor"):
                record.footprints.update(struct.pack("<dd4q", x, y, *box))
                record.n_footprints += 1
            return box

    return RecordingLocator


def alone(record: _Record, runs: int) -> list[tuple[float, float]]:
    """CPU seconds (the process: both matching threads; the calling thread) of a fresh locator
    processing the recorded frames, ``runs`` times: the locator without decoding or the rest of
    the pipeline."""
    from quilt_llava.narratives.cursor import TemplateCursorLocator

    out = []
    for _ in range(runs):
        locator = TemplateCursorLocator(*record.setup)
        c0, t0 = time.process_time(), time.thread_time()
        for frame in record.frames:
            locator.process(frame)
        locator.finish()
        out.append((round(time.process_time() - c0, 3), round(time.thread_time() - t0, 3)))
    return out


def run_variant(name: str, work: Path, quick: bool, seed: int, runs_alone: int = 0) -> dict[str, Any]:
    from quilt_llava.narratives import ExtractConfig, extract_video, pipeline

    base = SyntheticConfig(width=1280, height=720, fps=25.0, seed=seed, n_views=4, view_seconds=(8.0, 12.0))
    if quick:
        base = replace(base, n_views=2, view_seconds=(5.0, 6.0))
    cfg = replace(base, name=name, **VARIANTS[name])
    videos = work / ("quick" if quick else "full")
    video = videos / f"{name}.mp4"
    transcript = videos / f"{name}.transcript.json"
    if not (video.exists() and transcript.exists()):
        sv = make_synthetic_video(videos, cfg)
        video, transcript = sv.video, sv.transcript
    record = _Record()
    record.keep_frames = runs_alone > 0
    original = pipeline.TemplateCursorLocator
    pipeline.TemplateCursorLocator = _recording_locator(record)  # type: ignore[misc]
    out = work / "out" / name
    shutil.rmtree(out, ignore_errors=True)
    try:
        t0 = time.perf_counter()
        rows = extract_video(video, transcript, out, ExtractConfig(sample_fps=None))
        wall = time.perf_counter() - t0
    finally:
        pipeline.TemplateCursorLocator = original  # type: ignore[misc]
    result = {
        "variant": name,
        "hits": record.n_hits,
        "hits_sha256": record.hits.hexdigest()[:16],
        "footprints": record.n_footprints,
        "footprints_sha256": record.footprints.hexdigest()[:16],
        "rows": len(rows),
        "locator_cpu_s": round(record.cpu_s, 3),
        "extract_wall_s": round(wall, 2),
    }
    if runs_alone:
        result["alone_cpu_s"] = alone(record, runs_alone)  # [(process, thread), ...]
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated benchmark variants")
    ap.add_argument("--work-dir", type=Path, required=True, help="rendered videos are kept (and reused) here")
    ap.add_argument("--full", action="store_true", help="the benchmark's full lengths (default: --quick lengths)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--alone",
        type=int,
        default=0,
        metavar="N",
        help="also time a fresh locator N times on the frames held in memory (process and thread CPU)",
    )
    ap.add_argument("--expect", type=Path, help="a former --json output: exit 1 where a hash differs")
    args = ap.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    expected = {}
    if args.expect is not None:
        expected = {r["variant"]: r for r in json.loads(args.expect.read_text())}
    results = []
    differs = []
    for name in names:
        r = run_variant(name, args.work_dir, not args.full, args.seed, args.alone)
        results.append(r)
        old = expected.get(name)
        if old is not None and (old["hits_sha256"], old["footprints_sha256"]) != (
            r["hits_sha256"],
            r["footprints_sha256"],
        ):
            differs.append(name)
        if not args.json:
            mark = "" if old is None else ("  DIFFERS" if name in differs else "  same")
            print(
                f"{name:18s} hits {r['hits']:5d} {r['hits_sha256']}  footprints {r['footprints']:4d} "
                f"{r['footprints_sha256']}  locator cpu {r['locator_cpu_s']:6.2f} s{mark}"
                + (f"  alone (process, thread) {r['alone_cpu_s']}" if args.alone else ""),
                flush=True,
            )
    if args.json:
        print(json.dumps(results, indent=2))
    if differs:
        print(f"hashes differ on: {', '.join(differs)}", file=sys.stderr)
    return 1 if differs else 0


if __name__ == "__main__":
    raise SystemExit(main())
