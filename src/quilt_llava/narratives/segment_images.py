"""Segment images: the per-pixel median of a still run's colour frames, cropped to the content box.

While a still run lasts, :class:`RunSamples` keeps about one colour frame a second (thinned
so at most ``2 * keep`` are held). When the run ends, :class:`SegmentImages` makes the
image on a worker thread while decoding goes on: the median (on the decoder's own 4:2:0
planes, retaken without the samples where a resting pointer covered a spot), the webcam
painted over, and the PNG of the content box. Images beyond the ``held`` most recent wait
on disk until the video ends; at the end each image is brought up to date with the final
content box and webcam (:meth:`SegmentImages.finish`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from quilt_llava.narratives.content import refine_edges
from quilt_llava.narratives.resting_pointer import (
    Found,
    RemovedPointer,
    RestingPointerConfig,
    fill_for,
    find_resting_pointer,
    grown_mask,
    inpaint,
    leftover_spots,
    median_luma,
    uncovered_samples,
)
from quilt_llava.narratives.templates import Template
from quilt_llava.narratives.video import ColourSample
from quilt_llava.narratives.webcam import Rect, hide_rects, needs_repaint

if TYPE_CHECKING:
    from quilt_llava.narratives.segments import Segment

T = TypeVar("T")

# Compare-exchange networks that leave the median of 9 (19 steps) or 7 (13 steps) values in
# the middle slot (Paeth; Devillard, "Fast median search"), instead of a full sort.
_MEDIAN_NETWORKS = {
    9: (
        (1, 2),
        (4, 5),
        (7, 8),
        (0, 1),
        (3, 4),
        (6, 7),
        (1, 2),
        (4, 5),
        (7, 8),
        (0, 3),
        (5, 8),
        (4, 7),
        (3, 6),
        (1, 4),
        (2, 5),
        (4, 7),
        (4, 2),
        (6, 4),
        (4, 2),
    ),
    7: ((0, 5), (0, 3), (1, 6), (2, 4), (0, 1), (3, 5), (2, 6), (2, 3), (3, 6), (4, 5), (1, 4), (1, 3), (3, 4)),
}


def median_u8(stack: list[np.ndarray]) -> np.ndarray:
    """Per-pixel median of same-shaped uint8 arrays (an odd count is used) with min/max networks."""
    if len(stack) % 2 == 0 and len(stack) > 1:
        stack = stack[1:]
    work = [s.copy() for s in stack]
    n = len(work)
    network = _MEDIAN_NETWORKS.get(n)
    if network is not None:
        for a, b in network:  # afterwards work[a] <= work[b]
            lo = np.minimum(work[a], work[b])
            np.maximum(work[a], work[b], out=work[b])
            work[a] = lo
        return work[n // 2]
    # Other counts: odd-even transposition sort, n rounds of compare-exchange.
    for r in range(n):
        for i in range(r % 2, n - 1, 2):
            lo = np.minimum(work[i], work[i + 1])
            np.maximum(work[i], work[i + 1], out=work[i + 1])
            work[i] = lo
    return work[n // 2]


class RunSamples:
    """Colour frames of the current still run, thinned so at most ``2 * keep`` are held.

    Each kept frame is copied (:meth:`Frame.colour`) when it is offered, so no decoder
    buffer is held for the run's whole length."""

    def __init__(self, keep: int, stride: int) -> None:
        self.keep = keep
        self.base_stride = max(1, stride)
        self.reset()

    def reset(self) -> None:
        self.frames: list[tuple[int, ColourSample]] = []
        self.stride = self.base_stride
        self.count = 0

    def set_stride(self, stride: int) -> None:
        """A new sampling stride from the next frame on (samples taken so far stay)."""
        self.base_stride = self.stride = max(1, stride)

    def offer(self, index: int, colour: Callable[[], ColourSample]) -> None:
        if self.count % self.stride == 0:
            self.frames.append((index, colour()))
            if len(self.frames) > 2 * self.keep:
                self.frames = self.frames[::2]
                self.stride *= 2
        self.count += 1

    def pick(self, first: int, last: int) -> list[tuple[int, ColourSample]]:
        """The (at most ``keep``) frames in [first, last] the segment image is made of."""
        picked = [(i, sample) for i, sample in self.frames if first <= i <= last]
        if len(picked) > self.keep:
            pick = np.linspace(0, len(picked) - 1, self.keep).round().astype(int)
            picked = [picked[i] for i in pick]
        return picked


def segment_median(
    chosen: list[tuple[int, ColourSample]], pointer: dict[int, Rect] | None = None, plain: np.ndarray | None = None
) -> ColourSample:
    """Per-pixel median of (index, colour sample) pairs, taken on the samples' own planes
    (4:2:0 samples: Y, U and V, converted to RGB once afterwards by the caller).

    ``pointer`` maps a frame index to the box the pointer covered in it. A pointer that
    rests for most of the run survives a plain median; under each such box the median
    is retaken over the samples where the pointer was elsewhere (when there are any).
    ``plain``: the plain median of the samples' data, when already computed (it is then written to)."""
    same = _same_kind(chosen)
    if same is not chosen:  # mixed kinds: all as RGB
        chosen, plain = same, None
    first = chosen[0][1]
    data = median_u8([c.data for _, c in chosen]) if plain is None else plain
    image = ColourSample(data, first.i420, first.colorspace, first.color_range)
    for box in {pointer[i] for i, _ in chosen if pointer and i in pointer}:
        clean = _away_from(chosen, pointer or {}, box)
        if clean:
            retake(image, clean, box)
    return image


def _same_kind(chosen: list[tuple[int, ColourSample]]) -> list[tuple[int, ColourSample]]:
    """``chosen``, all as RGB when its samples are of mixed kinds or sizes."""
    first = chosen[0][1]
    if any(c.i420 != first.i420 or c.data.shape != first.data.shape for _, c in chosen):
        return [(i, ColourSample(c.rgb())) for i, c in chosen]
    return chosen


def _away_from(chosen: list[tuple[int, ColourSample]], pointer: dict[int, Rect], box: Rect) -> list[ColourSample]:
    """The samples whose pointer box (if any) does not overlap ``box``."""
    return [c for i, c in chosen if not (i in pointer and _overlap(pointer[i], box))]


def retake(image: ColourSample, clean: list[ColourSample], box: Rect) -> None:
    """Under ``box`` (video px), ``image`` becomes the median of the ``clean`` samples (same kind and size)."""
    x0, y0, x1, y1 = box
    height = image.size()[1]
    for p, plane in enumerate(image.planes()):
        f = plane.shape[0] / height  # 1, or 1/2 for subsampled chroma
        px0, py0, px1, py1 = int(x0 * f), int(y0 * f), math.ceil(x1 * f), math.ceil(y1 * f)
        plane[py0:py1, px0:px1] = np.median(np.stack([c.planes()[p][py0:py1, px0:px1] for c in clean]), axis=0).astype(
            np.uint8
        )


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def encode_png(rgb: np.ndarray, box: Rect | None = None) -> bytes:
    """PNG bytes of ``rgb`` (cropped to ``box``): fast zlib level with run-length matching and
    the "up" row filter for every row (instead of trying each filter per row): a 1264x648
    segment image takes ~19 ms instead of ~34 ms (Pillow level 1: ~2x longer) for ~5% more bytes."""
    import cv2

    if box is not None:
        x0, y0, x1, y1 = box
        rgb = rgb[y0:y1, x0:x1]
    ok, data = cv2.imencode(
        ".png",
        cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
        [
            cv2.IMWRITE_PNG_COMPRESSION,
            1,
            cv2.IMWRITE_PNG_STRATEGY,
            cv2.IMWRITE_PNG_STRATEGY_RLE,
            cv2.IMWRITE_PNG_FILTER,
            cv2.IMWRITE_PNG_FILTER_UP,
        ],
    )
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


ImageJob = tuple[np.ndarray, Rect, bytes, tuple[Rect, ...], tuple[RemovedPointer, ...]]
# median RGB, box used, PNG, rectangles painted, the pointer taken out


@dataclass(frozen=True)
class PointerSearch:
    """What a segment image is searched with for a pointer left in it (see :mod:`.resting_pointer`)."""

    templates: tuple[Template, ...]  # the locator's shapes when the view ended
    config: RestingPointerConfig
    min_contrast: float  # the arrow prior's fill/outline contrast (the locator's)
    whole: bool  # the locator missed the pointer in most samples: the whole content box is searched


def remove_resting_pointer(
    image: ColourSample,
    chosen: list[tuple[int, ColourSample]],
    pointer: dict[int, Rect],
    box: Rect,
    search: PointerSearch,
    hide: tuple[Rect, ...] = (),
) -> tuple[list[RemovedPointer], list[tuple[Rect, np.ndarray]]]:
    """Take a pointer left in the median ``image`` out of it (``image`` is written to):

    1. spots where the samples in which the locator saw the pointer elsewhere all show
       something else (:func:`.resting_pointer.leftover_spots`): retaken from those samples;
    2. the locator's shapes matched in the median (in ``box`` when the locator missed the
       pointer in most samples; in the boxes of its hits, where a pointer that never left
       survives the retake): retaken from the samples that show the spot uncovered, or, for
       a pointer that never moved, returned as (box, mask) to inpaint on the RGB image.

    Returns (what was removed, what to inpaint)."""
    cfg = search.config
    w, h = image.size()
    region = (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
    free = [(c, pointer[i]) for i, c in chosen if i in pointer and c.data.shape == image.data.shape]
    removed = []
    for spot in leftover_spots(image, free, region, cfg, hide):
        retake(image, [c for c, b in free if not _overlap(b, spot)], spot)
        removed.append(RemovedPointer(spot, None, "samples"))
    regions: list[tuple[Rect, bool]] = []  # (where, the locator found a pointer there)
    if search.whole and not removed:  # (a median keeps one pointer at most: the spot was it)
        regions.append((region, False))
    # Where the locator saw the pointer: retaken above, unless no sample showed the spot without it
    # (then a match there is the pointer: "located") or a missed hit let one with the pointer count
    # as clean (then, as anywhere, only a sure match counts).
    hit_boxes = sorted({pointer[i] for i, _ in chosen if i in pointer})
    regions += [(b, not _away_from(chosen, pointer, b)) for b in hit_boxes]
    if not regions:
        return removed, []
    luma = median_luma(image)
    best: tuple[Found, bool] | None = None
    taken = hide + tuple(r.box for r in removed)
    for where, located in regions:
        found = find_resting_pointer(luma, search.templates, where, cfg, cfg.moved_score, search.min_contrast)
        if found is None or any(_overlap(found.box, r) for r in taken):
            continue
        if best is None or found.score > best[0].score:
            best = (found, located)
    if best is None:
        return removed, []
    found, located = best
    grown, mask = grown_mask(found, (w, h), cfg.grow)
    uncovered = uncovered_samples(image, [(c, pointer.get(i)) for i, c in chosen], found, cfg)
    fill = fill_for(found, uncovered, located, cfg)
    if fill is None:
        return removed, []
    if fill == "samples":
        retake(image, uncovered, grown)
    removed.append(RemovedPointer(grown, round(found.score, 3), fill))
    return removed, [(grown, mask)] if fill == "inpaint" else []


def remove_late_pointer(
    image: np.ndarray, box: Rect, search: PointerSearch, hide: tuple[Rect, ...] = ()
) -> RemovedPointer | None:
    """A pointer that never moved in a view, whose shape the locator learned only later in the
    video: ``search.templates`` (those later shapes) matched in the finished RGB ``image``
    (written to), inpainted on a sure match (the view's samples are gone by then)."""
    import cv2

    cfg = search.config
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = luma.shape
    region = (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
    found = find_resting_pointer(luma, search.templates, region, cfg, cfg.moved_score, search.min_contrast)
    if found is None or any(_overlap(found.box, r) for r in hide) or fill_for(found, [], False, cfg) != "inpaint":
        return None
    grown, mask = grown_mask(found, (w, h), cfg.grow)
    inpaint(image, grown, mask)
    hx, hy = found.template.hotspot
    return RemovedPointer(grown, round(found.score, 3), "inpaint", (float(found.x0 + hx), float(found.y0 + hy)))


def resolved(value: T | Future[T]) -> T:
    """``value``, or its result when it is a future (waited for)."""
    return value.result() if isinstance(value, Future) else value


def segment_job(
    chosen: list[tuple[int, ColourSample]],
    pointer: dict[int, Rect] | Future[dict[int, Rect]],
    box: Rect,
    refine: int | None,
    split: bool = False,
    hide: tuple[Rect, ...] = (),
    search: PointerSearch | Future[PointerSearch | None] | None = None,
) -> ImageJob:
    """Median image (RGB), a pointer left in it taken out (with ``search``), content box
    (refined on it when ``refine``), ``hide`` painted over, PNG of the crop: run off the
    analysing thread. ``split``: the median on two threads, half the rows each (for the last
    segment, made when decoding is over). ``pointer`` and ``search`` may come as futures (the
    cursor locator's thread makes them when it gets to the run's end)."""
    import cv2

    pointer, search = resolved(pointer), resolved(search)
    plain = None
    chosen = _same_kind(chosen)
    datas = [c.data for _, c in chosen]
    if split and len(datas) > 1:
        from concurrent.futures import ThreadPoolExecutor

        mid = datas[0].shape[0] // 2
        with ThreadPoolExecutor(max_workers=2) as pool:
            halves = pool.map(lambda rows: median_u8([d[rows] for d in datas]), (slice(0, mid), slice(mid, None)))
            plain = np.concatenate(list(halves))
    median = segment_median(chosen, pointer, plain)
    removed, fills = remove_resting_pointer(median, chosen, pointer, box, search, hide) if search else ([], [])
    image = median.rgb()
    for fill in fills:
        inpaint(image, *fill)
    if refine is not None:
        box = refine_edges(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), box, search=refine)
    painted = hide_rects(image, hide, box)  # after refining: a painted box must not look like an edge
    return image, box, encode_png(image, box), painted, tuple(removed)


class SegmentImages:
    """Segment images being made on one worker thread, in order, the oldest waiting on disk.

    The tissue area is refined on the image of the first tissue view (the reference,
    :meth:`reference_gray`): later tissue jobs and the final box use that refinement. Views
    that are not tissue are cropped to their own box, unrefined."""

    def __init__(self, held: int = 16, spill_dir: Path | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.held = held  # images kept in memory, the one being made included (0: all)
        self.spill_dir = spill_dir
        self.workers = ThreadPoolExecutor(max_workers=1)
        self.jobs: list[tuple[Future, tuple[Rect, ...]]] = []  # (job, webcam rectangles it painted)
        # job index -> (npy, png, box, painted, pointer removed)
        self.spilled: dict[int, tuple[Path, Path, Rect, tuple[Rect, ...], tuple[RemovedPointer, ...]]] = {}
        # what each job looked for a pointer left in it with (or the future of it)
        self.searches: list[PointerSearch | Future[PointerSearch | None] | None] = []
        self.reference: int | None = None  # the job whose image refines the tissue area
        self._reference_gray: np.ndarray | None = None

    def submit(
        self,
        chosen: list[tuple[int, ColourSample]],
        pointer: dict[int, Rect] | Future[dict[int, Rect]],
        box: Rect,
        refine: int,
        hide: tuple[Rect, ...],
        split: bool = False,
        tissue: bool = True,
        search: PointerSearch | Future[PointerSearch | None] | None = None,
    ) -> None:
        """Start the image of the next segment from its samples, the content ``box`` as known
        now (for a tissue view: refined by ``refine`` px on the reference image, its own when it
        is the first), the webcam ``hide`` and what a pointer left in it is searched with
        (``pointer`` and ``search``: values, or futures the job waits for)."""
        refine_by: int | None = None
        if tissue and self.reference is None:
            self.reference, refine_by = len(self.jobs), refine
        elif tissue:
            box = refine_edges(self.reference_gray(), box, search=refine)
        self.jobs.append((self.workers.submit(segment_job, chosen, pointer, box, refine_by, split, hide, search), hide))
        self.searches.append(search)
        self._spill_old()

    def reference_gray(self) -> np.ndarray:
        """Grey version of the reference image (the tissue area is refined on it)."""
        import cv2

        assert self.reference is not None
        if self._reference_gray is None:
            self._reference_gray = cv2.cvtColor(self.jobs[self.reference][0].result()[0], cv2.COLOR_RGB2GRAY)
        return self._reference_gray

    def final_box(self, box: Rect, refine: int) -> Rect:
        """``box`` refined on the reference image (unchanged when there is none)."""
        return refine_edges(self.reference_gray(), box, search=refine) if self.reference is not None else box

    def _spill_old(self) -> None:
        """Move the oldest finished segment images to disk while more than ``held`` are held."""
        while self.spill_dir is not None and self.held and len(self.jobs) - len(self.spilled) > self.held:
            j = min(i for i in range(len(self.jobs)) if i not in self.spilled)
            if j == self.reference:
                self.reference_gray()  # the tissue area is refined on it: keep its grey version
            image, used_box, png, painted, removed = self.jobs[j][0].result()
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            npy, png_path = self.spill_dir / f"{j:05d}.npy", self.spill_dir / f"{j:05d}.png"
            np.save(npy, image)
            png_path.write_bytes(png)
            self.spilled[j] = (npy, png_path, used_box, painted, removed)
            done: Future = Future()
            done.set_result(None)
            self.jobs[j] = (done, self.jobs[j][1])  # the result is released

    def close(self) -> None:
        """No more jobs (those submitted still run)."""
        self.workers.shutdown(wait=False)

    def abort(self) -> None:
        self.workers.shutdown(wait=False, cancel_futures=True)

    def finish(
        self, segments: list[Segment], hide: tuple[Rect, ...], settle: bool = True, shapes: tuple[Template, ...] = ()
    ) -> None:
        """Give each segment its image, up to date with its final ``box`` and the webcam ``hide``;
        without ``settle``, images still being made are finished when ``Segment.ready()`` is called.
        ``shapes``: the locator's shapes at the end of the video; those learned after a view whose
        pointer the locator missed are looked for in its image (:func:`remove_late_pointer`)."""
        for j, (seg, (job, hidden)) in enumerate(zip(segments, self.jobs)):
            assert seg.box is not None
            late = self._late_search(j, shapes)
            if j in self.spilled:
                self._finish_spilled(seg, j, hidden, seg.box, hide, late)
            elif settle or job.done() or late is not None:
                # (a view searched with later shapes is finished now: a pointer found there gives
                # the view's trace points, which rows are built from; see ``late_rest_hits``)
                _finish(seg, job, hidden, seg.box, hide, late)
            else:
                seg.settle = functools.partial(_finish, seg, job, hidden, seg.box, hide, late)

    def _late_search(self, j: int, shapes: tuple[Template, ...]) -> PointerSearch | None:
        """Job ``j``'s whole-image search with only the shapes learned after it, if any."""
        search = resolved(self.searches[j]) if j < len(self.searches) else None
        if search is None or not search.whole:
            return None
        later = tuple(t for t in shapes if not any(t is u for u in search.templates))
        return dataclasses.replace(search, templates=later) if later else None

    def _finish_spilled(
        self,
        seg: Segment,
        j: int,
        hidden: tuple[Rect, ...],
        box: Rect,
        hide: tuple[Rect, ...],
        late: PointerSearch | None = None,
    ) -> None:
        npy, png_path, used_box, painted, seg.removed = self.spilled[j]
        seg.image_file = npy
        seg.png_file = png_path
        if used_box != box or hidden != hide or (late is not None and not seg.removed):
            image = np.load(npy)  # changed after it went to disk, or a later shape to look for: load it
            found = _remove_late(seg, image, box, hide, late)
            repainted, reencode = _bring_up_to_date(image, used_box, hidden, painted, box, hide)
            if repainted or found:
                np.save(npy, image)
            if reencode or found:
                png_path.write_bytes(encode_png(image, box))
        seg.settle = None


def _remove_late(
    seg: Segment, image: np.ndarray, box: Rect, hide: tuple[Rect, ...], late: PointerSearch | None
) -> bool:
    """:func:`remove_late_pointer` on a segment image nothing was taken out of yet."""
    if late is None or seg.removed:
        return False
    removed = remove_late_pointer(image, box, late, hide)
    if removed is not None:
        seg.removed = (removed,)
    return removed is not None


def _finish(
    seg: Segment,
    job: Future,
    hidden: tuple[Rect, ...],
    box: Rect,
    hide: tuple[Rect, ...],
    late: PointerSearch | None = None,
) -> None:
    image, used_box, png, painted, seg.removed = job.result()
    seg.image = image
    found = _remove_late(seg, image, box, hide, late)
    _, reencode = _bring_up_to_date(image, used_box, hidden, painted, box, hide)
    seg.png = encode_png(image, box) if reencode or found else png
    seg.settle = None


def _bring_up_to_date(
    image: np.ndarray,
    used_box: Rect,
    hidden: tuple[Rect, ...],
    painted: tuple[Rect, ...],
    box: Rect,
    hide: tuple[Rect, ...],
) -> tuple[bool, bool]:
    """Paint ``image`` again if the webcam estimate moved since it was made; returns (painted
    again, PNG to encode again). The box and webcam seen at a segment's end are nearly always
    the final ones."""
    repaint = hidden != hide and needs_repaint(image, painted, hide, box)
    if repaint:
        hide_rects(image, hide, box)
    return repaint, repaint or used_box != box
