"""Black-box benchmark of the narratives extractor on the independent corpus.

Renders the fixed corpus of ``independent_videos.py`` (a generator written without looking
at the project's own generator or the pointer locator), runs the extractor on each video
through its public API (``extract_video``, every frame: ``sample_fps=None``), and scores
its rows against the generator's truth with the definitions of ``narratives_bench.py``:

- recall: share of frames of a still tissue view where the pointer shows over the tissue
  area that have a trace point within tolerance of the hotspot (10 px for arrows, dots,
  rings, I-beams and crosshairs, 16 px for hands, at 720p, scaled with the frame height;
  trace points matched to frames by timestamp, nearest within half a frame interval);
  also per pointer (kind), per category and per motion of the hand; "recall kept": the same
  over the views that gave a row only (the pointer locator apart from the tissue test);
- precision: share of trace points within that distance of a visible pointer (points on
  moving views, on frames without a pointer or matched to no frame count as wrong);
- median error (px at 720p) of trace points on frames with a visible pointer;
- segment boundaries: each still tissue view against the row overlapping it most, max of
  |start| and |end| differences (s); tissue views lost: tissue views with no row (listed with
  the share of their tissue area that is empty glass);
- pan points: trace points on frames whose view moves (drags, zooms, pans, cross-fades);
- non-tissue rows: rows lying mostly on a view that is not tissue (text slide, camera,
  desktop, blank screen); content-box error: the largest distance (px) of a row's content
  box edge from the truth tissue area;
- pointer residue (ptr MAD): mean |segment image - the generator's pointer-free render of the
  view| (grey levels) in a box of twice the pointer's size around the spot where the pointer
  stayed longest, worst row; beside it (ctrl) the same over the rest of the image (compression);
- speed: extraction fps / decode-only fps of the same file in the same run (the extractor's
  own PyAV frame source reading every frame; the faster of two decode runs counts).

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/independent_bench.py
[--work-dir DIR] [--videos NAME,...] [--json] [--misses FILE]``. With ``--work-dir`` the
renders are kept and reused while the generator's settings and source are unchanged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from independent_videos import VideoConfig, render
from narratives_bench import (
    TARGETS,
    TOLERANCE_PX,
    decode_only_seconds,
    fmt,
    machine,
    match_frames,
    print_rows,
    rows_to_points,
    run_ours,
    seen_views,
    segment_errors,
)

HAND_TOLERANCE_PX = 16.0  # hands: a broad shape; everything else within TOLERANCE_PX (both at 720p)

# The corpus: each video varies several axes; together they cover every value of each axis.
CORPUS: tuple[VideoConfig, ...] = (
    VideoConfig(
        name="he-full-mac-720p",
        seed=101,
        tissue="he",
        pointers=("drawn:mac",),
        pointer_px=20,
        plan=("drag", "zoom", "text", "cut", "drag"),
    ),
    VideoConfig(
        name="proc-toolbar-win-1080p",
        seed=102,
        width=1920,
        height=1080,
        fps=30.0,
        crf=28,
        preset="veryfast",
        tissue="procedural",
        toolbar="top",
        chrome="light",
        pointers=("drawn:win",),
        pointer_px=32,
        plan=("fade", "desktop", "zoom", "drag"),
        view_seconds=(4.0, 5.5),
    ),
    VideoConfig(
        name="dark-panel-dmzblack-480p",
        seed=103,
        width=854,
        height=480,
        fps=24.0,
        crf=32,
        preset="veryfast",
        tissue="dark",
        panel="right",
        overview="panel",
        chrome="dark",
        pointers=("x11:DMZ-Black:arrow", "x11:DMZ-Black:hand"),
        grab="x11:DMZ-Black:grab",
        shape_change=True,
        pointer_px=24,
        plan=("drag", "drag", "camera", "zoom", "drag"),
    ),
    VideoConfig(
        name="pale-window-laser-1366",
        seed=104,
        width=1366,
        height=768,
        fps=29.97,
        crf=26,
        preset="fast",
        tissue="pale",
        window=True,
        toolbar="bottom",
        chrome="blue",
        pointers=("drawn:laser", "drawn:ring"),
        pointer_px=28,
        plan=("pan", "zoom", "blank", "cut", "fade"),
    ),
    VideoConfig(
        name="gray-letterbox-adwaita-360p",
        seed=105,
        width=640,
        height=360,
        fps=25.0,
        crf=36,
        preset="medium",
        tissue="gray",
        letterbox=True,
        pointers=("x11:Adwaita:arrow", "x11:Adwaita:crosshair"),
        pointer_px=24,
        plan=("drag", "cut", "text", "zoom"),
    ),
    VideoConfig(
        name="he-overlay-cross-50fps",
        seed=106,
        fps=50.0,
        crf=30,
        preset="faster",
        tissue="he",
        toolbar="top",
        overview="overlay",
        scale_bar=True,
        chrome="dark",
        pointers=("drawn:cross", "x11:redglass:crosshair", "x11:redglass:arrow"),
        pointer_px=32,
        plan=("zoom", "drag", "cut"),
        view_seconds=(4.0, 6.0),
    ),
    VideoConfig(
        name="proc-ibeam-mpeg4-720p",
        seed=107,
        fps=30.0,
        codec="mpeg4",
        bitrate_kbps=1500,
        tissue="procedural",
        toolbar="bottom",
        panel="left",
        chrome="blue",
        pointers=("drawn:ibeam", "x11:whiteglass:arrow", "x11:whiteglass:hand"),
        shape_change=True,
        pointer_px=48,
        plan=("drag", "desktop", "zoom", "pan"),
    ),
    VideoConfig(
        name="he-handhelds-60fps-540p",
        seed=108,
        width=960,
        height=540,
        fps=60.0,
        crf=24,
        preset="veryfast",
        tissue="he",
        panel="left",
        overview="panel",
        scale_bar=True,
        pointers=("x11:handhelds:arrow", "x11:handhelds:hand"),
        grab="x11:handhelds:hand",
        pointer_px=64,
        plan=("drag", "zoom", "text"),
        view_seconds=(4.0, 5.0),
    ),
    VideoConfig(
        name="dark-rests-dmzwhite-crf40",
        seed=109,
        crf=40,
        preset="medium",
        tissue="dark",
        toolbar="top",
        window=True,
        pointers=("x11:DMZ-White:arrow",),
        pointer_px=16,
        plan=("cut", "drag", "camera", "cut", "blank"),
        motions=("dwell", "still", "stroke", "hide", "chrome", "circle"),
        still_views=(0, 2),
        hidden_views=(4,),
    ),
    # added after the first results: the laser dot, the ring and the I-beam had only been drawn over
    # pale tissue or MPEG-4; here they cross the plainest other axes (H&E, x264 CRF 23, 720p)
    VideoConfig(
        name="he-laser-ring-ibeam-720p",
        seed=110,
        tissue="he",
        toolbar="top",
        pointers=("drawn:laser", "drawn:ring", "drawn:ibeam"),
        pointer_px=24,
        plan=("drag", "zoom", "cut", "drag", "cut"),
    ),
)
CORPUS_NAMES = tuple(c.name for c in CORPUS)


# --------------------------------------------------------------------------- scoring


def _ratio(hits: int, total: int) -> float | None:
    return hits / total if total else None


def score_video(
    truth: dict[str, Any], rows: list[dict[str, Any]], images: tuple[Path, Path] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Scores of one video's rows against its truth, and the frames whose pointer was missed; with
    ``images`` (the extraction's output folder, the render's clean views), the pointer residue too."""
    frames = truth["frames"]
    fps = float(truth["fps"])
    unit = float(truth["height"]) / 720
    times = np.array([f["t"] for f in frames])
    points, spans = rows_to_points(rows)
    pts = np.array(points, dtype=float).reshape(-1, 3)
    idx = match_frames(times, pts[:, 0], fps)
    visible = np.array([f["cursor"] is not None for f in frames])
    stable = np.array([f["stable"] for f in frames])
    tissue = np.array([f["tissue"] for f in frames])
    eligible = visible & stable & tissue & np.array([f["on_content"] for f in frames])
    cursor = np.array([f["cursor"] or (np.nan, np.nan) for f in frames], dtype=float)
    tol = np.array([(HAND_TOLERANCE_PX if f["category"] == "hand" else TOLERANCE_PX) * unit for f in frames])

    best = np.full(len(frames), np.inf)
    errors: list[float] = []
    shift = np.array([np.inf if f["shift_px"] is None else f["shift_px"] for f in frames])
    good = pan = pan_moved = no_pointer = unmatched = 0
    good_by: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (field, value): good points, points
    for (_t, x, y), i in zip(pts, idx):
        if i < 0:
            unmatched += 1
            continue
        if not stable[i]:
            pan += 1
            pan_moved += int(shift[i] >= 1.0)
            continue
        if not visible[i]:
            no_pointer += 1
            continue
        e = float(np.hypot(x - cursor[i, 0], y - cursor[i, 1]))
        errors.append(e / unit)
        best[i] = min(best[i], e)
        good += int(e <= tol[i])
        for field in ("pointer", "category", "motion"):
            good_by[field, frames[i][field]][0] += int(e <= tol[i])
            good_by[field, frames[i][field]][1] += 1

    hit = best <= tol
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for field in ("pointer", "category", "motion"):
        table = {}
        for value in sorted({frames[i][field] for i in np.flatnonzero(eligible)}):
            sel = eligible & np.array([f[field] == value for f in frames])
            found = best[sel][np.isfinite(best[sel])]
            table[value] = {
                "frames": int(sel.sum()),
                "recall": float(hit[sel].mean()),
                "median_err_px": float(np.median(found) / unit) if found.size else None,
                "precision": _ratio(*good_by[field, value]),  # of points on frames showing this pointer
            }
        groups[field] = table

    seg_errs = segment_errors(seen_views(truth["segments"], frames), spans)[0]  # boundaries the frames show
    _, lost, on_view = segment_errors(truth["segments"], spans)
    in_row = np.zeros(len(frames), bool)  # frames of views that gave a row (the locator's own share)
    for s, e in spans:
        in_row |= (times >= s) & (times < e)
    lost_views = [
        {k: v.get(k) for k in ("view", "start", "end", "glass_share")}
        for v in truth["segments"]
        if v["tissue"] and not any(min(e, v["end"]) > max(s, v["start"]) for s, e in spans)
    ]
    box = truth["content_box"]  # rows on tissue views: how far their box is from the tissue area
    box_errs = [max(abs(a - b) for a, b in zip(row["content_box"], box)) for row, k in zip(rows, on_view) if k >= 0]

    misses = [
        {k: frames[i][k] for k in ("t", "cursor", "pointer", "category", "motion", "view")}
        | {"best_err_px": None if np.isinf(best[i]) else round(float(best[i]), 1)}
        for i in np.flatnonzero(eligible & ~hit)
    ]
    scores = {
        "recall": float(hit[eligible].mean()) if eligible.any() else None,
        "recall_kept": float(hit[eligible & in_row].mean()) if (eligible & in_row).any() else None,
        "precision": _ratio(good, len(pts)),
        "median_err_px": float(np.median(errors)) if errors else None,
        "points": len(pts),
        "eligible_frames": int(eligible.sum()),
        "false_points": {"pan": pan, "no_pointer": no_pointer, "unmatched": unmatched, "far": len(errors) - good},
        "pan_points": pan,
        "pan_points_moved": pan_moved,  # of which on frames whose view moved >= 1 px since the last frame
        "seg_err_max_s": max(seg_errs) if seg_errs else None,
        "tissue_views": sum(v["tissue"] for v in truth["segments"]),
        "tissue_views_lost": lost,
        "lost_views": lost_views,
        "rows": len(rows),
        "non_tissue_rows": on_view.count(-1),
        "box_err_px": max(box_errs) if box_errs else None,
        "by": groups,
    }
    if images is not None:
        scores["residue"] = pointer_residue(truth, rows, on_view, *images)
    return scores, misses


def pointer_residue(
    truth: dict[str, Any], rows: list[dict[str, Any]], on_view: list[int], out_dir: Path, views: Path
) -> dict[str, Any]:
    """Pointer left in segment images: mean |segment image - the view's pointer-free render| (grey
    levels, over RGB) in a box of twice the pointer's size around the spot the pointer held longest
    in the view, and (ctrl) over the rest of the image, what compression alone leaves. Worst row."""
    import cv2

    size = int(truth["config"]["pointer_px"])
    per_row = []
    for row, k in zip(rows, on_view):
        if k < 0:
            continue
        view = truth["segments"][k]["view"]
        spots = Counter(
            (2 * round(f["cursor"][0] / 2), 2 * round(f["cursor"][1] / 2))
            for f in truth["frames"]
            if f["view"] == view and f["on_content"]
        )
        image = cv2.imread(str(out_dir / row["image"]))
        clean = cv2.imread(str(views / f"view-{view:03d}.png"))
        if not spots or image is None or clean is None:
            continue
        (hx, hy), held = spots.most_common(1)[0]
        x0, y0, x1, y1 = row["content_box"]
        clean = clean[y0:y1, x0:x1]
        if image.shape != clean.shape:  # a segment image that is not the content box's crop
            per_row.append({"segment_id": row["segment_id"], "shape": [image.shape, clean.shape]})
            continue
        diff = np.abs(image.astype(np.int16) - clean).mean(axis=-1)
        box = np.zeros(diff.shape, bool)
        box[max(hy - size - y0, 0) : max(hy + size - y0, 0), max(hx - size - x0, 0) : max(hx + size - x0, 0)] = True
        if not box.any() or box.all():  # the spot lies outside the row's box (a wrong content box): nothing to compare
            per_row.append({"segment_id": row["segment_id"], "spot_outside_box": [hx, hy]})
            continue
        per_row.append(
            {
                "segment_id": row["segment_id"],
                "held_frames": held,
                "ptr_mad": round(float(diff[box].mean()), 2),
                "ctrl_mad": round(float(diff[~box].mean()), 2),
            }
        )
    scored = [r for r in per_row if "ptr_mad" in r]
    worst = max(scored, key=lambda r: r["ptr_mad"], default=None)
    return {
        "ptr_mad": worst["ptr_mad"] if worst else None,
        "ctrl_mad": worst["ctrl_mad"] if worst else None,
        "rows": per_row,
    }


# --------------------------------------------------------------------------- running


def describe(cfg: VideoConfig) -> str:
    """The axes a video varies, in a few words (tissue, layout, pointers, encoding)."""
    layout = [
        n
        for n, on in (
            (f"toolbar-{cfg.toolbar}", cfg.toolbar != "none"),
            (f"panel-{cfg.panel}", cfg.panel != "none"),
            (f"overview-{cfg.overview}", cfg.overview != "none"),
            ("scale-bar", cfg.scale_bar),
            ("window", cfg.window),
            ("letterbox", cfg.letterbox),
        )
        if on
    ] or ["full-screen"]
    enc = f"x264 crf{cfg.crf} {cfg.preset}" if cfg.codec == "libx264" else f"mpeg4 {cfg.bitrate_kbps} kb/s"
    pointers = ",".join(p.split(":", 1)[1] for p in cfg.pointers)
    return (
        f"{cfg.tissue}; {'+'.join(layout)} ({cfg.chrome}); {pointers} {cfg.pointer_px}px; "
        f"{cfg.width}x{cfg.height} {cfg.fps:g}fps {enc}; plan {'/'.join(cfg.plan)}"
    )


def run_video(cfg: VideoConfig, work: Path, reuse: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    t0 = time.perf_counter()
    made = render(cfg, work / "videos", reuse=reuse)
    render_s = time.perf_counter() - t0
    decode_s, n = decode_only_seconds(made.video)
    out = work / "out" / cfg.name
    if out.exists():
        shutil.rmtree(out)
    rows, extract_s = run_ours(made.video, made.transcript, out, {})
    decode_s = min(decode_s, decode_only_seconds(made.video)[0])
    scores, misses = score_video(made.truth, rows, (out, made.views))
    scores["residue_mad"] = scores["residue"]["ptr_mad"]
    scores["residue_ctrl"] = scores["residue"]["ctrl_mad"]
    scores.update(
        {
            "video": cfg.name,
            "axes": describe(cfg),
            "frames": n,
            "duration_s": made.truth["duration"],
            "render_s": round(render_s, 1),
            "reused": made.reused,
            "decode_fps": n / decode_s,
            "fps": n / extract_s,
            "speed_ratio": decode_s / extract_s,
        }
    )
    return scores, misses


COLUMNS = (  # header, key, format, worst is the larger
    ("recall", "recall", ".3f", False),
    ("recall kept", "recall_kept", ".3f", False),
    ("prec", "precision", ".3f", False),
    ("med px", "median_err_px", ".2f", True),
    ("seg max s", "seg_err_max_s", ".2f", True),
    ("lost", "tissue_views_lost", "d", True),
    ("non-tissue rows", "non_tissue_rows", "d", True),
    ("box err px", "box_err_px", "d", True),
    ("pan pts", "pan_points", "d", True),
    ("moved", "pan_points_moved", "d", True),
    ("ptr MAD", "residue_mad", ".2f", True),
    ("ctrl", "residue_ctrl", ".2f", True),
    ("x decode", "speed_ratio", ".2f", False),
)


def worst(results: list[dict[str, Any]], key: str, larger: bool) -> Any:
    values = [r[key] for r in results if r.get(key) is not None]
    if not values:
        return None
    return max(values) if larger else min(values)


def print_tables(results: list[dict[str, Any]]) -> None:
    head = ["video", *[c[0] for c in COLUMNS]]
    rows = [[r["video"], *[fmt(r[k], f) for _, k, f, _ in COLUMNS]] for r in results]
    rows.append(["worst", *[fmt(worst(results, k, larger), f) for _, k, f, larger in COLUMNS]])
    print_rows(head, rows, left=1)
    print("\nvideos (tissue; layout (chrome); pointers size; encoding; shots after the first view):")
    for r in results:
        print(f"  {r['video']}: {r['axes']}; {r['frames']} frames, {r['duration_s']:.1f} s")
        if r["lost_views"]:
            lost = ", ".join(
                f"{v['start']:.1f}-{v['end']:.1f} s (glass {fmt(v.get('glass_share'), '.0%')})" for v in r["lost_views"]
            )
            print(f"    tissue views lost: {lost}")
    for field, title in (("pointer", "pointer kind"), ("category", "pointer category"), ("motion", "hand's motion")):
        pooled: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for r in results:
            for value, s in r["by"][field].items():
                pooled[value].append((r["video"], s))
        print(f"\nper {title} (frames over tissue; recall pooled over videos, worst video beside it):")
        table = []
        for value, entries in sorted(pooled.items()):
            n = sum(s["frames"] for _, s in entries)
            rec = sum(s["recall"] * s["frames"] for _, s in entries) / n
            wv, ws = min(entries, key=lambda e: e[1]["recall"])
            meds = [s["median_err_px"] for _, s in entries if s["median_err_px"] is not None]
            precs = [s["precision"] for _, s in entries if s.get("precision") is not None]
            table.append(
                [
                    value,
                    str(n),
                    f"{rec:.3f}",
                    f"{ws['recall']:.3f} ({wv})",
                    fmt(max(meds) if meds else None, ".2f"),
                    fmt(min(precs) if precs else None),
                ]
            )
        print_rows([title, "frames", "recall", "worst video", "worst med px", "worst prec"], table, left=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--videos", default=",".join(CORPUS_NAMES), help=f"comma-separated subset of {CORPUS_NAMES}")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep (and reuse) renders and outputs here")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    ap.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="add this to every video's seed: the same axes with other tissue, views and motion (a second draw)",
    )
    ap.add_argument("--misses", type=Path, default=None, help="write every missed frame (JSON) to this file")
    args = ap.parse_args(argv)
    names = [n for n in args.videos.split(",") if n]
    unknown = [n for n in names if n not in CORPUS_NAMES]
    if unknown:
        ap.error(f"unknown videos {unknown}; choose from {', '.join(CORPUS_NAMES)}")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="indep_bench_"))
    results, all_misses = [], {}
    try:
        for cfg in (c for c in CORPUS if c.name in names):
            if args.seed_offset:
                cfg = replace(cfg, name=f"{cfg.name}-s{args.seed_offset}", seed=cfg.seed + args.seed_offset)
            scores, misses = run_video(cfg, work, reuse=args.work_dir is not None)
            results.append(scores)
            all_misses[cfg.name] = misses
            if not args.json:
                how = "reused" if scores["reused"] else f"rendered in {scores['render_s']} s"
                print(f"[{cfg.name}] {scores['frames']} frames; {how}", file=sys.stderr)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.misses:
        from quilt_llava.files import write_json

        write_json(args.misses, all_misses, indent=None)
    report = {
        "machine": machine(),
        "targets": TARGETS,
        "tolerance_px": {"hand": HAND_TOLERANCE_PX, "other": TOLERANCE_PX},
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, python {m['python']}, PyAV {m['pyav']}")
    print_tables(results)
    print(
        f"\ntargets (issue #16, every video): recall >= {TARGETS['recall']}, precision >= {TARGETS['precision']}, "
        f"median error <= {TARGETS['median_err_px']} px, boundaries <= {TARGETS['seg_err_max_s']} s, 0 lost, "
        f"0 non-tissue rows, 0 pan points, pointer residue (ptr MAD) < {TARGETS['residue_mad']} grey levels, "
        f"speed >= {TARGETS['speed_ratio']}x decode-only"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
