"""Grounding benchmark: how well the grounded boxes cover what the narrator pointed at.

The demo sample (``quilt_llava.demo.sample``) is a narrated tour of 14 views of a real
IHC image; in each view the cursor circles one positive and one negative region while
a sentence about it is spoken, and travels between them in the pauses. The truth box
of a sentence is the box around the cursor's path while it is spoken.

The video is extracted once with ``extract_video`` (our cursor trace); every segment's
trace and utterances are then grounded by each clustering method, and each cluster
holding a region sentence is scored by its IoU with that sentence's truth box. The
same methods also run on the true cursor trace, which separates the clustering from the
cursor extraction. Methods:

- published: KMeans on (x, y) x exp(-0.2 t), utterances by nearest end time;
- ours, no speech fit: KMeans on (x, y, t / 20 s), utterances by overlap;
- ours (default): the same, each box fitted to the points shown while its words were spoken.

Run: ``.venv/bin/python benchmarks/grounding_bench.py [--json] [--work-dir DIR]`` (~30 s).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

METHODS = {  # name: (clustering method, fit boxes to speech)
    "published": ("published", False),
    "ours, no speech fit": ("spatiotemporal", False),
    "ours (default)": ("spatiotemporal", True),
}
REGION_SENTENCE_WORDS = 8  # longer sentences are the region descriptions (intros are shorter)


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def truth_boxes(truth: dict[str, Any], segment: dict[str, Any]) -> dict[str, list[float]]:
    """Region sentence -> box (normalised to the content area) around the cursor path while it is said."""
    view = truth["views"][segment["view"]]
    path = np.asarray(view["waypoints"], dtype=float)  # [t from the view's start, x, y]
    boxes = {}
    for u in truth["utterances"]:
        if not (segment["start"] <= u["start"] < segment["end"]) or len(u["text"].split()) <= REGION_SENTENCE_WORDS:
            continue
        t0, t1 = u["start"] - segment["start"], u["end"] - segment["start"]
        on = path[(path[:, 0] >= t0) & (path[:, 0] <= t1)]
        boxes[u["text"]] = [on[:, 1].min(), on[:, 2].min(), on[:, 1].max(), on[:, 2].max()]
    return boxes


def true_trace(truth: dict[str, Any], start: float, end: float) -> list[list[float]]:
    x0, y0, x1, y1 = truth["content_box"]
    return [
        [f["t"], (f["cursor"][0] - x0) / (x1 - x0), (f["cursor"][1] - y0) / (y1 - y0)]
        for f in truth["frames"]
        if f["cursor"] is not None and f["stable"] and start <= f["t"] < end
    ]


def score(rows: list[dict[str, Any]], truth: dict[str, Any], use_truth_trace: bool) -> dict[str, dict[str, Any]]:
    from quilt_llava.narratives.clustering import ground

    out = {}
    for name, (method, fit) in METHODS.items():
        ious: list[float] = []
        for row in rows:
            segment = max(truth["segments"], key=lambda s: min(s["end"], row["end"]) - max(s["start"], row["start"]))
            boxes = truth_boxes(truth, segment)
            trace = true_trace(truth, row["start"], row["end"]) if use_truth_trace else row["trace"]
            spoken = [(u["start"], u["end"], u["text"]) for u in row["utterances"]]
            for cluster in ground(trace, spoken, method=method, fit_to_speech=fit):
                found = [iou(list(cluster.box), box) for text, box in boxes.items() if text in cluster.text]
                if found:
                    ious.append(max(found))
        n_sentences = sum(len(truth_boxes(truth, s)) for s in truth["segments"])
        out[name] = {
            "clusters_scored": len(ious),
            "region_sentences": n_sentences,
            "mean_iou": float(np.mean(ious)) if ious else 0.0,
            "median_iou": float(np.median(ious)) if ious else 0.0,
            "iou_ge_0.5": float(np.mean(np.array(ious) >= 0.5)) if ious else 0.0,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep the sample and outputs here")
    args = ap.parse_args(argv)

    from quilt_llava.demo.sample import build_sample
    from quilt_llava.narratives import ExtractConfig, extract_video

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="grounding_bench_"))
    try:
        t0 = time.perf_counter()
        sample = build_sample(work / "sample")
        built = time.perf_counter() - t0
        out = work / "narratives"
        shutil.rmtree(out, ignore_errors=True)
        rows = extract_video(sample.video, sample.transcript, out, ExtractConfig())
        truth = sample.truth
        result = {
            "sample": {"views": len(truth["views"]), "segments_found": len(rows), "built_s": round(built, 1)},
            "extracted trace": score(rows, truth, use_truth_trace=False),
            "true trace": score(rows, truth, use_truth_trace=True),
        }
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"demo sample: {result['sample']['views']} views, {result['sample']['segments_found']} segments found")
    print(
        f"{'trace':16s} {'method':22s} {'scored':>7s} {'mean IoU':>9s} {'median':>7s} {'IoU>=.5':>8s} "
        f"{'x published':>12s}"
    )
    for trace in ("extracted trace", "true trace"):
        base = result[trace]["published"]["mean_iou"]
        for name, r in result[trace].items():
            ratio = r["mean_iou"] / base if base else float("nan")
            print(
                f"{trace:16s} {name:22s} {r['clusters_scored']:>3d}/{r['region_sentences']:<3d} {r['mean_iou']:9.3f} "
                f"{r['median_iou']:7.3f} {r['iou_ge_0.5']:8.2f} {ratio:12.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
