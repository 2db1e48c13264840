"""Pointer locator's false hits on a benchmark video, each with the part that produced it.

Every hit ``TemplateCursorLocator.process`` and ``finish`` return on a synthetic video of
``benchmarks/narratives_bench.py`` is compared with the truth at its frame (the benchmark's
per-shape tolerances); each one farther off, or on a frame with no visible pointer, is printed
with the frame it was emitted at, the part of the locator that first produced it (``track``:
the candidate chosen in a frame; ``backfill``: a walk back from a new candidate;
``rests.*``: where the pointer rested; ``learn``: the sprite learner's recovered sightings;
``carry``: a resting pointer carried over; ``spot_changed`` / ``end_track``: a held-back
track's hits released or kept; ``judge``: the motion judge's course and weak-sighting
chains). The parts are found by wrapping the locator's methods at
run time; nothing in the package changes. Videos are rendered into ``--work-dir`` once and
reused (the same folder ``narratives_bench.py --work-dir`` uses)::

    PYTHONPATH=src python benchmarks/locator_false_hits.py --work-dir /tmp/narr --variant handhelds-480p

Each hit also shows the template index ``k`` the part used (``-`` for the motion judge's), and
the learned sprites are listed at the end (index, frame learned, size, decided tip, the
pointer's shape in that frame), so a false hit can be traced to the sprite behind it.
A hit for a frame emitted later replaces an earlier one in the pipeline's output, so a listed
hit may not be counted by the benchmark; ``--all`` also lists the hits within tolerance.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from narratives_bench import SHAPE_TOLERANCE_PX, TOLERANCE_PX, reused_video, video_options


def _tagging_locator(emitted: list[tuple[int, Any, str, int]], learned: list[tuple[int, int, Any]]) -> type:
    """A locator that records each hit it returns with the part that first produced it and the
    template index that part used (-1 where it is not known: the motion judge's hits), and each
    sprite it learns with the frame it was learned in (``learned``: frame, index, template)."""
    from quilt_llava.narratives.cursor import TemplateCursorLocator

    tags: dict[int, tuple[str, int]] = {}
    alive: list[Any] = []  # keeps tagged hits alive so their ids stay unique

    def wrap(obj: Any, name: str, tag: str, shape: Callable[..., int]) -> None:
        inner = getattr(obj, name)

        def tagged(*args: Any, **kwargs: Any) -> Any:
            k = shape(*args)  # before the call: a part may end the track it used
            result = inner(*args, **kwargs)
            if isinstance(result, list):
                for h in result:
                    if hasattr(h, "index") and id(h) not in tags:
                        tags[id(h)] = (tag, k if k >= 0 else shape(*args))
                        alive.append(h)
            return result

        setattr(obj, name, tagged)

    class TaggingLocator(TemplateCursorLocator):
        def __init__(self, frame_height, config=None):  # type: ignore[no-untyped-def]
            super().__init__(frame_height, config)
            self.frame_index = -1
            by_template = lambda x, y, t, *_: next(j for j, u in enumerate(self.templates) if u is t)  # noqa: E731
            wrap(self.history, "backfill", "backfill", by_template)
            for name in ("vanished", "probe_rest"):
                wrap(self.rests, name, f"rests.{name}", self._tracked)
            wrap(self.rests, "first_verified", "rests.first_verified", lambda f, x, y, k, *_: k)
            if self.intake is not None:
                wrap(self.intake, "observe", "learn", lambda *_: len(self.templates) - 1)
                add = self.sprites.add

                def noted(template):  # type: ignore[no-untyped-def]
                    k = add(template)
                    learned.append((self.frame_index, k, template))
                    return k

                self.sprites.add = noted  # type: ignore[method-assign]
            own = (("_carry_still", "carry"), ("_spot_changed", "spot_changed"), ("_end_track", "end_track"))
            for name, tag in own:
                wrap(self, name, tag, self._tracked)
            wrap(self, "_follow", "track", lambda f, chosen: -1 if chosen is None else chosen[3])
            wrap(self.judge, "shown", "judge", lambda *_: -1)

        def _tracked(self, *_: Any) -> int:
            return -1 if self.track is None else self.track[2]

        def process(self, frame):  # type: ignore[no-untyped-def]
            self.frame_index = frame.index
            hits = super().process(frame)
            emitted.extend((frame.index, h, *tags.get(id(h), ("?", -1))) for h in hits)
            return hits

        def finish(self):  # type: ignore[no-untyped-def]
            hits = super().finish()
            emitted.extend((-1, h, *tags.get(id(h), ("finish", -1))) for h in hits)
            return hits

    return TaggingLocator


def main(argv: list[str] | None = None) -> int:
    ap = video_options(__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="also list the hits within tolerance")
    args = ap.parse_args(argv)
    from quilt_llava.narratives import ExtractConfig, extract_video, pipeline

    video, transcript, truth = reused_video(args.work_dir, args.variant, args.quick, args.seed)
    emitted: list[tuple[int, Any, str, int]] = []
    learned: list[tuple[int, int, Any]] = []
    original = pipeline.TemplateCursorLocator
    pipeline.TemplateCursorLocator = _tagging_locator(emitted, learned)  # type: ignore[misc]
    out = args.work_dir / "false_hits_out" / args.variant
    shutil.rmtree(out, ignore_errors=True)
    try:
        extract_video(video, transcript, out, ExtractConfig(sample_fps=None))
    finally:
        pipeline.TemplateCursorLocator = original  # type: ignore[misc]
    unit = float(truth.get("height", 720)) / 720
    frames = truth["frames"]
    false = 0
    head = f"{'frame':>5}  {'emitted':>7}  {'part':18s}  {'k':>3}  {'x':>7}  {'y':>7}  score"
    print(f"{head}  truth          shape      px")
    for at, h, tag, k in emitted:
        f = frames[h.index]
        if not f["stable"]:
            continue
        if f["cursor"] is None:
            verdict, d, shape = "no pointer", math.inf, "-"
        else:
            shape = f.get("shape") or "arrow"
            tol = SHAPE_TOLERANCE_PX.get(shape, TOLERANCE_PX) * unit
            d = math.hypot(h.x - f["cursor"][0], h.y - f["cursor"][1])
            verdict = "FALSE" if d > tol else ""
        if verdict:
            false += 1
        if verdict or args.all:
            at_s = "finish" if at < 0 else str(at)
            print(
                f"{h.index:5d}  {at_s:>7}  {tag:18s}  {k if k >= 0 else '-':>3}  "
                f"{h.x:7.1f}  {h.y:7.1f}  {h.score:5.2f}  "
                f"{f['cursor']!s:13s}  {shape:9s}  {d:5.1f}  {verdict}"
            )
    print(f"{false} of {len(emitted)} hits false (frames counted once per hit; a later hit may replace one)")
    print("learned sprites (k: template index, as in the column above; the arrow prior comes first):")
    for at, k, t in learned:
        shape = (frames[at].get("shape") or "arrow") if frames[at]["cursor"] is not None else "-"
        h, w = t.image.shape
        print(f"  k {k:2d}  frame {at:5d}  {w:3d} x {h:3d} px  tip {t.hotspot}  shape then: {shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
