"""Pointer locator's missed frames on a benchmark video, each with the locator's state there.

Every frame of a stable view where the pointer shows and the extractor's output has no estimate
within the benchmark's tolerance (``narratives_bench.py``'s scoring: arrows and crosshairs 10 px,
hands 16 px at 720p, scaled with the frame height) is classed by:

- the pointer's shape and whether it moves (the truth moves more than 1 px to the frame before
  or after) or rests;
- the locator's state after the frame (``track``: where its track is, verified or held back,
  on the truth or elsewhere; ``lock``: the template locked, if any);
- whether a sprite of that shape had been learned by then (a learned sprite's shape is the
  truth's shape at the frame it was learned; the arrow prior counts as an arrow);
- how visible the pointer is at all in the decoded frame: the share of its box (the truth's
  ``pointer_box``) that differs by more than 24 grey levels from the same spot in the nearest
  frame of the same still view where the pointer is elsewhere (a small moving pointer at
  heavy compression is largely erased by the encoder; no template finds what is not there);
- how well the templates match there: the best score of a template of that shape with its tip
  within the tolerance of the truth (the locator's ``min_score`` is 0.62), and the best template of
  any shape there.

Estimates further than the tolerance are listed by shape as well. The state is read by wrapping
the locator at run time; nothing in the package changes. Videos are rendered into
``--work-dir`` once and reused (the folder ``narratives_bench.py --work-dir`` uses)::

    PYTHONPATH=src python benchmarks/locator_misses.py --work-dir /tmp/narr --variant handhelds-480p

``--runs`` also lists each run of consecutive missed frames with its classes.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from narratives_bench import (
    SHAPE_TOLERANCE_PX,
    TOLERANCE_PX,
    match_frames,
    reused_video,
    rows_to_points,
    video_options,
)


def _shape(f: dict[str, Any]) -> str:
    s = f.get("shape") or "arrow"
    return s if s in ("hand", "crosshair", "grab") else "arrow"


VISIBLE_LEVELS = 24  # grey levels a pointer pixel differs from the same spot without the pointer
REFERENCE_FRAMES = 40  # frames around one in which the same spot is looked for without the pointer


def _overlap(a: list[int], b: list[int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _state_locator(
    truth: list[dict[str, Any]],
    states: dict[int, dict[str, Any]],
    learned: list[tuple[int, int]],
    crops: dict[int, list[np.ndarray]],
) -> type:
    """A locator that records, after each frame, its track and lock, and how each template matches
    at the truth there; each sprite it learns (frame, index); and, for the visibility of the
    pointer, the pixels of its box in its frame and in the nearest frame of the same still view
    without the pointer there (``crops``: frame -> [own, reference])."""
    from quilt_llava.narratives.cursor import TemplateCursorLocator
    from quilt_llava.narratives.templates import box_around_tip, match_in

    class StateLocator(TemplateCursorLocator):
        def __init__(self, frame_height, config=None):  # type: ignore[no-untyped-def]
            super().__init__(frame_height, config)
            self.frame_index = -1
            add = self.sprites.add

            def noted(template):  # type: ignore[no-untyped-def]
                k = add(template)
                learned.append((self.frame_index, k))
                return k

            self.sprites.add = noted  # type: ignore[method-assign]

        def process(self, frame):  # type: ignore[no-untyped-def]
            self.frame_index = frame.index
            hits = super().process(frame)
            self._crops(frame)
            f = truth[frame.index] if frame.index < len(truth) else None
            if f is None or frame.moving or f["cursor"] is None:
                return hits
            tx, ty = f["cursor"]
            r = SHAPE_TOLERANCE_PX.get(_shape(f), TOLERANCE_PX) * frame.luma.shape[0] / 720
            scores = []
            for t in self.templates:
                s, x, y = match_in(frame.luma, box_around_tip(tx, ty, int(r / 1.5), t), t, self.config.min_contrast)
                scores.append(s if math.hypot(x - tx, y - ty) <= r else 0.0)
            states[frame.index] = {
                "track": self.track,
                "verified": self.verified,
                "locked": self.sprites.locked,
                "scores": scores,
                "generic": self.sprites.generic,
            }
            return hits

        def _crops(self, frame):  # type: ignore[no-untyped-def]
            j = frame.index
            if j >= len(truth) or not truth[j]["stable"]:
                return
            me = truth[j]
            for i in range(max(0, j - REFERENCE_FRAMES), min(len(truth), j + REFERENCE_FRAMES + 1)):
                f = truth[i]
                box = f.get("pointer_box")
                if box is None or not f["stable"] or f.get("view") != me.get("view") or f.get("shift_px", 0) >= 1:
                    continue
                x0, y0, x1, y1 = box
                if i == j:
                    crops.setdefault(i, [None, None, math.inf])[0] = frame.luma[y0:y1, x0:x1].copy()
                elif me.get("pointer_box") is None or not _overlap(box, me["pointer_box"]):
                    slot = crops.setdefault(i, [None, None, math.inf])
                    if abs(i - j) < slot[2]:
                        slot[1], slot[2] = frame.luma[y0:y1, x0:x1].copy(), abs(i - j)

    return StateLocator


def _visibility(slot: list[Any] | None) -> str:
    """Share of the pointer's box that differs from the same spot without it, as a class."""
    if slot is None or slot[0] is None or slot[1] is None or slot[0].shape != slot[1].shape or slot[0].size == 0:
        return "unknown"
    share = float((np.abs(slot[0].astype(int) - slot[1].astype(int)) > VISIBLE_LEVELS).mean())
    return "faint (<10% of box)" if share < 0.1 else ("weak (10-20%)" if share < 0.2 else "visible (>=20%)")


def _classes(
    i: int,
    f: dict[str, Any],
    frames: list[dict[str, Any]],
    st: dict[str, Any] | None,
    shapes_of: dict[int, str],
    tol: float,
) -> dict[str, str]:
    shape = _shape(f)
    step = 0.0
    for j in (i - 1, i + 1):
        if 0 <= j < len(frames) and frames[j]["cursor"] is not None and frames[j]["stable"]:
            step = max(step, math.dist(f["cursor"], frames[j]["cursor"]))
    out = {"shape": shape, "motion": "moving" if step > 1.0 else "resting"}
    if st is None:
        return {**out, "track": "?", "sprite": "?", "own score": "?", "best": "?"}
    tx, ty = f["cursor"]
    if st["track"] is None:
        track = "none"
    else:
        x, y, k = st["track"]
        where = "on truth" if math.hypot(x - tx, y - ty) <= tol else "elsewhere"
        kind = "prior" if k < st["generic"] else shapes_of.get(k, "?")
        track = f"{'verified' if st['verified'] else 'held'} {where} ({kind})"
    shape_of = [("arrow" if k < st["generic"] else shapes_of.get(k, "?")) for k in range(len(st["scores"]))]
    own = [s for s, sh in zip(st["scores"], shape_of) if sh == shape]
    own_learned = [k for k in range(st["generic"], len(st["scores"])) if shapes_of.get(k) == shape]
    best_k = int(np.argmax(st["scores"]))
    best_shape = "prior" if best_k < st["generic"] else shapes_of.get(best_k, "?")
    own_best = max(own) if own else 0.0
    out["track"] = track
    out["sprite"] = "learned" if own_learned else "none learned yet"
    out["own score"] = ">=0.62" if own_best >= 0.62 else ("0.5-0.62" if own_best >= 0.5 else "<0.5")
    out["best"] = f"{best_shape} {st['scores'][best_k]:.2f}"
    out["lock"] = "locked" if st["locked"] is not None else "-"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = video_options(__doc__.split("\n\n")[0])
    ap.add_argument("--runs", action="store_true", help="also list each run of consecutive missed frames")
    ap.add_argument(
        "--save",
        type=Path,
        help="write the missed frames and those with an estimate off (JSON), to compare two checkouts",
    )
    args = ap.parse_args(argv)
    if args.variant.startswith("heldout-"):
        ap.error("held-out variants are scored by narratives_bench.py only, never looked at per frame")
    from quilt_llava.narratives import ExtractConfig, extract_video, pipeline

    video, transcript, truth = reused_video(args.work_dir, args.variant, args.quick, args.seed)
    frames = truth["frames"]
    states: dict[int, dict[str, Any]] = {}
    learned: list[tuple[int, int]] = []
    crops: dict[int, list[Any]] = {}
    original = pipeline.TemplateCursorLocator
    pipeline.TemplateCursorLocator = _state_locator(frames, states, learned, crops)  # type: ignore[misc]
    out = args.work_dir / "misses_out" / args.variant
    shutil.rmtree(out, ignore_errors=True)
    try:
        rows = extract_video(video, transcript, out, ExtractConfig(sample_fps=None))
    finally:
        pipeline.TemplateCursorLocator = original  # type: ignore[misc]
    shapes_of = {k: _shape(frames[at]) if frames[at]["cursor"] is not None else "?" for at, k in learned}

    unit = float(truth.get("height", 720)) / 720
    points, _ = rows_to_points(rows)
    pts = np.array(points, dtype=float).reshape(-1, 3)
    idx = match_frames(np.array([f["t"] for f in frames]), pts[:, 0], float(truth["fps"]))
    best = np.full(len(frames), np.inf)
    far: Counter[str] = Counter()
    off: list[int] = []
    for (_t, x, y), i in zip(pts, idx):
        if i < 0 or not frames[i]["stable"] or frames[i]["cursor"] is None:
            continue
        e = math.dist((x, y), frames[i]["cursor"])
        best[i] = min(best[i], e)
        if e > SHAPE_TOLERANCE_PX.get(_shape(frames[i]), TOLERANCE_PX) * unit:
            far[_shape(frames[i])] += 1
            off.append(int(i))
    counted: Counter[str] = Counter()
    seen_by: Counter[tuple[str, str, bool]] = Counter()  # (shape, visibility, found)
    missed: dict[str, list[int]] = {}
    per: list[tuple[int, dict[str, str]]] = []
    for i, f in enumerate(frames):
        if not f["stable"] or f["cursor"] is None:
            continue
        tol = SHAPE_TOLERANCE_PX.get(_shape(f), TOLERANCE_PX) * unit
        counted[_shape(f)] += 1
        seen_by[_shape(f), _visibility(crops.get(i)), bool(best[i] <= tol)] += 1
        if best[i] <= tol:
            continue
        c = _classes(i, f, frames, states.get(i), shapes_of, tol)
        c["visibility"] = _visibility(crops.get(i))
        missed.setdefault(c["shape"], []).append(i)
        per.append((i, c))
    total = sum(counted.values())
    n_missed = sum(len(v) for v in missed.values())
    print(f"{args.variant}: {n_missed} of {total} pointer frames missed (recall {1 - n_missed / max(total, 1):.3f})")
    for shape in sorted(counted):
        n = len(missed.get(shape, []))
        print(f"  {shape:9s} {n:4d} of {counted[shape]:4d} missed; estimates off: {far[shape]}")
    print("every pointer frame by visibility (shape, class: found / missed):")
    for shape, vis in sorted({(sh, v) for sh, v, _ in seen_by}):
        print(f"  {shape:9s} {vis:22s} {seen_by[shape, vis, True]:4d} / {seen_by[shape, vis, False]:4d}")
    for key in ("motion", "visibility", "track", "sprite", "own score", "lock"):
        print(f"by {key} (shape: count):")
        tally = Counter((c["shape"], c.get(key, "?")) for _, c in per)
        for (shape, value), n in sorted(tally.items(), key=lambda kv: (kv[0][0], -kv[1])):
            print(f"  {shape:9s} {value:38s} {n:4d}")
    print("by motion x visibility x track x own score (all shapes):")
    tally = Counter((c["motion"], c["visibility"], c["track"].split(" (")[0], c["own score"]) for _, c in per)
    for (m, v, t, s), n in tally.most_common():
        print(f"  {m:7s} {v:20s} {t:20s} {s:9s} {n:4d}")
    if args.runs:
        print("runs of missed frames (first-last, n, shape, classes of the first frame):")
        start = 0
        for j in range(1, len(per) + 1):
            if j == len(per) or per[j][0] != per[j - 1][0] + 1 or per[j][1]["shape"] != per[j - 1][1]["shape"]:
                i0, c = per[start]
                motions = Counter(cc["motion"] for _, cc in per[start:j])
                faint = sum(not cc["visibility"].startswith("visible") for _, cc in per[start:j])
                print(
                    f"  {i0:5d}-{per[j - 1][0]:5d}  {j - start:3d}  {c['shape']:9s} "
                    f"moving {motions['moving']:3d}  not visible {faint:3d}  track {c['track']:34s} "
                    f"sprite {c['sprite']:16s} own {c['own score']:8s} best {c['best']}"
                )
                start = j
    if args.save is not None:
        args.save.write_text(json.dumps({"missed": [i for i, _ in per], "off": sorted(set(off))}))
    print("learned sprites (frame, index, shape then):", ", ".join(f"{at}:{k}:{shapes_of[k]}" for at, k in learned))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
