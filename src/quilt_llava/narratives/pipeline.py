"""Stage A pipeline: a video and its transcript to segment images and grounded rows.

One decoding pass does everything (frames are decoded on a producer thread, a few
ahead of the analysis): each frame is reduced to a small luma image for
view-stability and motion analysis, the cursor is located on the full-resolution
luma plane, a few frames per still run are kept for the segment image (their colour
conversion, median and PNG are made on a worker thread while decoding goes on), and
content-area statistics are accumulated. After the pass, still runs become
segments, hits become traces, speech is split over segments and grounded.

Output layout (SPEC A): ``out_dir/<video_id>/frames/<segment_id>.png`` and one row per
segment in ``out_dir/narratives.jsonl``. Each finished video also leaves
``out_dir/<video_id>/rows.jsonl`` (written atomically, last); its presence marks the
video done, so a re-run skips it, and ``narratives.jsonl`` is rebuilt atomically
from every finished video.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import queue
import re
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quilt_llava.errors import ConfigError, InputError, QuiltError
from quilt_llava.files import atomic_write_bytes, iter_jsonl, write_jsonl
from quilt_llava.narratives.caption import grounded_caption
from quilt_llava.narratives.clustering import CLUSTERERS, ground
from quilt_llava.narratives.content import (
    ChangeFrequency,
    ContentConfig,
    ContentStats,
    refine_edges,
    snap_overlay,
)
from quilt_llava.narratives.cursor import (
    AnalysedFrame,
    CursorConfig,
    CursorHit,
    TemplateCursorLocator,
)
from quilt_llava.narratives.stability import CellDiffStability, Span, StabilityConfig
from quilt_llava.narratives.transcript import Transcript, Utterance, read_transcript
from quilt_llava.narratives.video import ColourSample, Frame, FrameSource, PyAVSource, prefetch

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts")
TRANSCRIPT_SUFFIXES = (".transcript.json", ".json", ".srt", ".vtt")
ROWS_FILE = "rows.jsonl"
SPILL_DIR = ".segments-pending"
NARRATIVES_FILE = "narratives.jsonl"
WEBCAM_REFERENCE_FRAMES = 50
DRIFT_MAX_PX = 8  # coarsest video px per pixel at which easing next to a pan is judged


@dataclass
class ExtractConfig:
    """How a video is analysed. ``sample_fps=None`` analyses every decoded frame."""

    sample_fps: float | None = None
    min_segment_s: float = 3.0  # published: a still span of 3 s or more
    analysis_width: int = 320  # width of the small frames used for stability and motion
    median_frames: int = 7  # colour frames whose per-pixel median is the segment image
    clustering: str = "spatiotemporal"  # or "published"
    transcript_slack_s: float = 1.0  # a transcript may run this far past the last frame
    threads: int = 0  # decoder threads (0: FFmpeg decides)
    prefetch: int = 8  # frames decoded ahead on a producer thread, and queued for the cursor thread
    # (0: decoding, reduction and cursor search all on the calling thread)
    seed: int = 0
    hide_webcam: bool = True  # paint a detected narrator webcam box in segment images with their mean colour
    held_segments: int = 16  # segment images kept in memory (the one being made included); older ones wait on disk (0: all in memory)
    cursor: CursorConfig = field(default_factory=CursorConfig)
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    content: ContentConfig = field(default_factory=ContentConfig)

    def validate(self) -> None:
        problems = []
        if self.sample_fps is not None and self.sample_fps <= 0:
            problems.append(f"sample_fps must be > 0 or None (every frame), got {self.sample_fps}")
        if self.min_segment_s <= 0:
            problems.append(f"min_segment_s must be > 0, got {self.min_segment_s}")
        if self.analysis_width < 64:
            problems.append(f"analysis_width must be >= 64, got {self.analysis_width}")
        if self.prefetch < 0:
            problems.append(f"prefetch must be >= 0, got {self.prefetch}")
        if self.held_segments < 0:
            problems.append(f"held_segments must be >= 0, got {self.held_segments}")
        if self.median_frames < 1:
            problems.append(f"median_frames must be >= 1, got {self.median_frames}")
        if self.cursor.history_stride < 1:
            problems.append(f"cursor.history_stride must be >= 1 (1: every held frame keeps its pixels), got {self.cursor.history_stride}")
        if self.cursor.backfill_frames < 0:
            problems.append(f"cursor.backfill_frames must be >= 0, got {self.cursor.backfill_frames}")
        if self.clustering not in CLUSTERERS:
            problems.append(f"clustering must be one of {', '.join(CLUSTERERS)}, got {self.clustering!r}")
        if problems:
            raise ConfigError(problems, source="ExtractConfig")


# --------------------------------------------------------------------------- analysis


@dataclass
class Segment:
    span: Span
    start: float
    end: float
    image: np.ndarray  # (H, W, 3) uint8 full frame median
    trace: list[tuple[float, float, float]]  # (t, x_px, y_px) full-resolution video pixels
    png: bytes | None = None  # the segment image cropped to the content box, PNG-encoded
    settle: Callable[[], None] | None = None  # set while image and png are still being made; call to wait
    # Set instead of ``image`` / ``png`` for a segment whose image waited on disk (see ``held_segments``).
    image_file: Path | None = None  # .npy of the full frame median
    png_file: Path | None = None  # the PNG, ready to be moved into place

    def ready(self) -> Segment:
        """Wait until ``image`` and ``png`` are made (see ``analyse(settle=False)``)."""
        if self.settle is not None:
            self.settle()
        return self

    def rgb(self) -> np.ndarray:
        """The full-frame segment image, from memory or from its file."""
        self.ready()
        if self.image.size == 0 and self.image_file is not None:
            return np.load(self.image_file)
        return self.image


@dataclass
class Analysis:
    width: int
    height: int
    duration: float
    content_box: tuple[int, int, int, int]
    times: np.ndarray
    moving: np.ndarray
    hits: dict[int, CursorHit]
    segments: list[Segment]


# Compare-exchange networks that leave the median of 9 (19 steps) or 7 (13 steps) values in
# the middle slot (Paeth; Devillard, "Fast median search"), instead of a full sort.
_MEDIAN_NETWORKS = {
    9: ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8), (4, 7),
        (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2)),
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


class _RunSamples:
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


def segment_median(chosen: list[tuple[int, ColourSample]], pointer: dict[int, tuple[int, int, int, int]] | None = None,
                   plain: np.ndarray | None = None) -> ColourSample:
    """Per-pixel median of (index, colour sample) pairs, taken on the samples' own planes
    (4:2:0 samples: Y, U and V, converted to RGB once afterwards by the caller).

    ``pointer`` maps a frame index to the box the pointer covered in it. A pointer that
    rests for most of the run survives a plain median; under each such box the median
    is retaken over the samples where the pointer was elsewhere (when there are any).
    ``plain``: the plain median of the samples' data, when already computed (it is then written to)."""
    first = chosen[0][1]
    if any(c.i420 != first.i420 or c.data.shape != first.data.shape for _, c in chosen):
        chosen = [(i, ColourSample(c.rgb())) for i, c in chosen]  # mixed kinds: all as RGB
        first, plain = chosen[0][1], None
    data = median_u8([c.data for _, c in chosen]) if plain is None else plain
    image = ColourSample(data, first.i420, first.colorspace, first.color_range)
    height = image.size()[1]
    boxes = {pointer[i] for i, _ in chosen if pointer and i in pointer}
    for x0, y0, x1, y1 in boxes:
        clean = [c.planes() for i, c in chosen
                 if not (pointer and i in pointer and _overlap(pointer[i], (x0, y0, x1, y1)))]
        if not clean:
            continue
        for p, plane in enumerate(image.planes()):
            f = plane.shape[0] / height  # 1, or 1/2 for subsampled chroma
            px0, py0, px1, py1 = int(x0 * f), int(y0 * f), math.ceil(x1 * f), math.ceil(y1 * f)
            plane[py0:py1, px0:px1] = np.median(np.stack([c[p][py0:py1, px0:px1] for c in clean]), axis=0).astype(np.uint8)
    return image


Rect = tuple[int, int, int, int]


def mask_rects(mask: np.ndarray | None, scale: int, size: tuple[int, int]) -> tuple[Rect, ...]:
    """Full-resolution rectangles (x0, y0, x1, y1) around the regions of an analysis-scale mask."""
    import cv2

    if mask is None:
        return ()
    width, height = size
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return tuple((int(x) * scale, int(y) * scale, min(width, int(x + w) * scale), min(height, int(y + h) * scale))
                 for x, y, w, h, _ in stats[1:])


def overlay_rects(image: np.ndarray, rects: tuple[Rect, ...], box: Rect) -> tuple[Rect, ...]:
    """``rects`` (where a webcam changed) grown to the overlay frames around them in ``image``
    and clipped to the content ``box``: the rectangles :func:`hide_rects` paints."""
    import cv2

    if not rects:
        return ()
    x0, y0, x1, y1 = box
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    snapped = (snap_overlay(gray, r, within=box) for r in rects)  # the whole box, not only its changing part
    inside = ((max(x0, a), max(y0, b), min(x1, c), min(y1, d)) for a, b, c, d in snapped)
    return tuple((a, b, c, d) for a, b, c, d in inside if c > a and d > b)


def hide_rects(image: np.ndarray, rects: tuple[Rect, ...], box: Rect) -> tuple[Rect, ...]:
    """Paint ``rects`` (a narrator webcam) in ``image`` with the mean colour of the rest of the
    content box; returns the rectangles painted (see :func:`overlay_rects`)."""
    import cv2

    x0, y0, x1, y1 = box
    inside = overlay_rects(image, rects, box)
    if not inside:
        return ()
    keep = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    for a, b, c, d in inside:
        keep[b - y0 : d - y0, a - x0 : c - x0] = 0
    if not keep.any():
        return ()
    colour = np.array(cv2.mean(np.ascontiguousarray(image[y0:y1, x0:x1]), mask=keep)[:3]).round().astype(np.uint8)
    for a, b, c, d in inside:
        image[b:d, a:c] = colour
    return inside


def _needs_repaint(image: np.ndarray, painted: tuple[Rect, ...], rects: tuple[Rect, ...], box: Rect) -> bool:
    """Would painting ``rects`` cover other pixels than ``painted`` did? The webcam estimate
    moves a little from one update to the next; the overlay frame it grows to does not."""
    wanted = overlay_rects(image, rects, box)
    return len(wanted) != len(painted) or any(
        max(abs(p - q) for p, q in zip(a, b)) > REPAINT_TOLERANCE_PX for a, b in zip(sorted(wanted), sorted(painted)))


REPAINT_TOLERANCE_PX = 3  # painted overlay rectangles this close to the final ones are left as they are


def _segment_job(chosen: list[tuple[int, ColourSample]], pointer: dict[int, tuple[int, int, int, int]],
                 box: tuple[int, int, int, int], refine: int | None, split: bool = False,
                 hide: tuple[Rect, ...] = ()) -> tuple[np.ndarray, tuple[int, int, int, int], bytes, tuple[Rect, ...]]:
    """Median image (RGB), content box (refined on it when ``refine``), ``hide`` painted over,
    PNG of the crop: run off the analysing thread. ``split``: the median on two threads, half
    the rows each (for the last segment, made when decoding is over)."""
    import cv2

    plain = None
    datas = [c.data for _, c in chosen]
    if split and len(datas) > 1 and all(d.shape == datas[0].shape for d in datas):
        from concurrent.futures import ThreadPoolExecutor

        mid = datas[0].shape[0] // 2
        with ThreadPoolExecutor(max_workers=2) as pool:
            halves = pool.map(lambda rows: median_u8([d[rows] for d in datas]), (slice(0, mid), slice(mid, None)))
            plain = np.concatenate(list(halves))
    image = segment_median(chosen, pointer, plain).rgb()
    if refine is not None:
        box = refine_edges(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), box, search=refine)
    painted = hide_rects(image, hide, box)  # after refining: a painted box must not look like an edge
    return image, box, encode_png(image, box), painted


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _CursorThread:
    """Runs the cursor locator on its own thread, frames in order, ``depth`` at most queued.

    The locator sees exactly the frames it would see inline; the caller reads ``hits``
    (or the locator) only after :meth:`wait`, when every submitted frame is processed,
    so results do not depend on timing. ``depth <= 0`` runs the locator inline."""

    def __init__(self, locator: TemplateCursorLocator, hits: dict[int, CursorHit], depth: int) -> None:
        self.locator = locator
        self.hits = hits
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if depth > 0:
            self.queue: queue.Queue[AnalysedFrame | None] = queue.Queue(maxsize=depth)
            self.thread = threading.Thread(target=self._run, name="cursor-locator", daemon=True)
            self.thread.start()

    def _process(self, frame: AnalysedFrame) -> None:
        for hit in self.locator.process(frame):
            self.hits[hit.index] = hit

    def _run(self) -> None:
        while True:
            frame = self.queue.get()
            try:
                if frame is None:
                    return
                if self.error is None:
                    self._process(frame)
            except BaseException as exc:  # re-raised on the analysing thread
                self.error = exc
            finally:
                self.queue.task_done()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, frame: AnalysedFrame) -> None:
        if self.thread is None:
            self._process(frame)
            return
        self._check()
        self.queue.put(frame)

    def wait(self) -> None:
        """Block until every submitted frame has been processed."""
        if self.thread is not None:
            self.queue.join()
        self._check()

    def close(self, check: bool = True) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        if check:
            self._check()


def analysis_scale(width: int, analysis_width: int) -> int:
    """Full-resolution pixels per pixel of the small analysis frames."""
    return max(1, round(width / analysis_width))


def _reduced_frames(source: FrameSource, cfg: ExtractConfig) -> Iterator[tuple[Frame, np.ndarray, np.ndarray]]:
    """The frames to analyse (all, or ``sample_fps`` of them) with their small (1/scale) and
    tiny (1/(2 scale)) luma images; run on the producer thread, next to the decoder."""
    import cv2

    next_t = 0.0
    for frame in source.frames():
        if cfg.sample_fps is not None:
            if frame.t < next_t - 1e-3:
                continue
            step = 1.0 / cfg.sample_fps
            next_t = next_t + step if next_t + step > frame.t else frame.t + step
        h, w = frame.luma.shape
        scale = analysis_scale(w, cfg.analysis_width)
        small = cv2.resize(frame.luma, (w // scale, h // scale), interpolation=cv2.INTER_LINEAR)
        tiny = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
        yield frame, small, tiny


def analyse(source: FrameSource, config: ExtractConfig | None = None, name: str = "video", settle: bool = True,
            spill_dir: Path | None = None) -> Analysis:
    """One pass over ``source``: stability, cursor hits, segment images and the content box.

    With ``settle=False`` the segment images still being made when decoding ends (the last
    one, usually) are returned unfinished: call ``Segment.ready()`` before using one, so
    the caller can do other work (rows, earlier PNG files) meanwhile.

    ``spill_dir``: where finished segment images beyond the ``held_segments`` most recent
    wait until the video ends (memory stays bounded on long videos); such segments come
    back with ``image_file`` / ``png_file`` set instead of ``image`` / ``png``."""
    import cv2

    cfg = config or ExtractConfig()
    times: list[float] = []
    moving_flags: list[bool] = []
    hits: dict[int, CursorHit] = {}
    segments: list[Segment] = []
    stability = CellDiffStability(cfg.stability)
    content = ContentStats(cfg.content)
    webcam = ChangeFrequency()
    locator: TemplateCursorLocator | None = None
    cursor: _CursorThread | None = None
    from concurrent.futures import Future, ThreadPoolExecutor

    workers = ThreadPoolExecutor(max_workers=1)
    jobs: list[tuple[Future, tuple[Rect, ...]]] = []
    samples: _RunSamples | None = None
    prev_small: np.ndarray | None = None
    run_small: np.ndarray | None = None  # reference small frame of the current still view
    run_index = 0
    cells_for: np.ndarray | None = None  # the webcam mask that ignore_cells was made from
    ignore_cells: np.ndarray | None = None
    recent: deque[tuple[int, np.ndarray]] = deque(maxlen=cfg.stability.boundary_frames + 2)
    run_start: int | None = None
    size: tuple[int, int] | None = None
    scale = 1
    frame_interval = 0.04
    analysed = 0

    def webcam_rects() -> tuple[Rect, ...]:
        """What segment images paint over as known now (nothing when ``hide_webcam`` is off)."""
        return mask_rects(webcam.mask, scale, size) if cfg.hide_webcam and size is not None else ()

    def sample_stride() -> int:
        """Analysed frames between colour samples: one a second."""
        rate = 1.0 / frame_interval if cfg.sample_fps is None else cfg.sample_fps
        return max(1, round(rate))

    def close_run(last: int, final: bool = False) -> None:
        nonlocal run_start
        if run_start is None:
            return
        start_i, end_i = run_start, last
        run_start = None
        duration = times[end_i] - times[start_i] + frame_interval
        if duration < cfg.min_segment_s or samples is None:
            return
        pointer = {}
        if locator is not None:
            assert cursor is not None
            cursor.wait()  # the hits up to the frame just analysed (the sequential order's state)
            for i, _ in samples.frames:
                hit = hits.get(i)
                if hit is not None and start_i <= i <= end_i:
                    pointer[i] = locator.footprint(hit.x, hit.y, size)
        chosen = samples.pick(start_i, end_i)
        if not chosen:
            return
        # The colour frames, their median and its PNG are made on a worker thread while decoding
        # goes on, cropped to the content box as known now, refined on the first segment's image
        # as at the end.
        box_now = content.box(scale, size)
        refine: int | None = 2 * scale + 4
        if jobs:
            box_now = refine_edges(first_gray(), box_now, search=refine)
            refine = None
        hide = webcam_rects()
        jobs.append((workers.submit(_segment_job, chosen, pointer, box_now, refine, final, hide), hide))
        spill_old()
        segments.append(Segment(Span(start_i, end_i), times[start_i], times[end_i] + frame_interval, np.empty(0), []))

    gray_cache: list[np.ndarray] = []
    spilled: dict[int, tuple[Path, Path, Rect, tuple[Rect, ...]]] = {}  # job index -> (npy, png, box, painted)

    def spill_old() -> None:
        """Move the oldest finished segment images to disk while more than ``held_segments`` are held."""
        while spill_dir is not None and cfg.held_segments and len(jobs) - len(spilled) > cfg.held_segments:
            j = min(i for i in range(len(jobs)) if i not in spilled)
            if j == 0:
                first_gray()  # the content box is refined on the first image: keep its grey version
            image, used_box, png, painted = jobs[j][0].result()
            spill_dir.mkdir(parents=True, exist_ok=True)
            npy, png_path = spill_dir / f"{j:05d}.npy", spill_dir / f"{j:05d}.png"
            np.save(npy, image)
            png_path.write_bytes(png)
            spilled[j] = (npy, png_path, used_box, painted)
            done: Future = Future()
            done.set_result(None)
            jobs[j] = (done, jobs[j][1])  # the result is released

    def first_gray() -> np.ndarray:
        """Grey version of the first segment's image (the content box is refined on it)."""
        if not gray_cache:
            gray_cache.append(cv2.cvtColor(jobs[0][0].result()[0], cv2.COLOR_RGB2GRAY))
        return gray_cache[0]

    try:
        for frame, small, tiny in prefetch(lambda: _reduced_frames(source, cfg), cfg.prefetch):
            luma = frame.luma
            if size is None:
                h, w = luma.shape
                size = (w, h)
                scale = analysis_scale(w, cfg.analysis_width)
                locator = TemplateCursorLocator(h, cfg.cursor)
                cursor = _CursorThread(locator, hits, cfg.prefetch)
            elif luma.shape != (size[1], size[0]):
                raise InputError(name, f"frame size changed mid-stream at {frame.t:.2f} s")
            index = len(times)
            if index == 1:
                frame_interval = max(1e-3, frame.t - times[0])
                if samples is not None:  # made on the first frame, before the frame rate was known
                    samples.set_stride(sample_stride())
            times.append(frame.t)
            if webcam.mask is not cells_for:
                cells_for = webcam.mask
                ignore_cells = None if cells_for is None else \
                    cv2.resize(cells_for.astype(np.uint8), cfg.stability.grid, interpolation=cv2.INTER_AREA) > 0
            moving = stability.update(tiny, ignore_cells)
            moving_flags.append(moving)
            motion = cv2.absdiff(small, prev_small) if prev_small is not None else None
            prev_small = small
            # The webcam detector compares with a reference at most ~2 s old: long enough to see
            # a narrator move, short enough that a keyframe's re-quantisation passes quickly.
            if moving:
                run_small = None
            elif run_small is None or index - run_index >= WEBCAM_REFERENCE_FRAMES:
                run_small, run_index = small, index
            elif index % 2 == 0 or webcam.frames < 20:  # a frequency: every other frame is plenty, once started
                webcam.add(cv2.absdiff(small, run_small))
            if analysed % 12 == 0:
                content.add(small)
            analysed += 1
            assert cursor is not None
            cursor.submit(AnalysedFrame(index, frame.t, luma, motion, moving, webcam.mask, scale))
            # Drift next to a pan is judged at no coarser than 8 video px per pixel: the tiny frame
            # up to 720p, the small one above (a 1 px ease at 1080p is invisible at 1/12).
            recent.append((index, tiny if 2 * scale <= DRIFT_MAX_PX else small))
            if moving:
                # Trim still frames just before the pan where the view had already begun to ease out.
                last = index - 1
                if run_start is not None:
                    drift_frames = dict(recent)
                    while last > run_start and last - 1 in drift_frames and index - last <= cfg.stability.boundary_frames \
                            and stability.drifting(drift_frames[last], drift_frames[last - 1], ignore_cells):
                        last -= 1
                close_run(last)
            else:
                if run_start is not None and index - run_start <= cfg.stability.boundary_frames and index == run_start + 1 \
                        and stability.drifting(recent[-1][1], recent[-2][1], ignore_cells):
                    # The view was still easing in after the pan: start the run here, and its
                    # samples too (the frame before still moved).
                    run_start = index
                    assert samples is not None
                    samples.reset()
                if run_start is None:
                    run_start = index
                    if samples is None:
                        samples = _RunSamples(cfg.median_frames, sample_stride())
                    samples.reset()
                samples.offer(index, frame.colour)
    except BaseException:
        if cursor is not None:
            cursor.close(check=False)
        workers.shutdown(wait=False, cancel_futures=True)
        raise
    if size is None:
        raise InputError(name, "the video stream has no decodable frames")
    assert locator is not None and cursor is not None
    cursor.close()
    for hit in locator.finish():
        hits[hit.index] = hit
    close_run(len(times) - 1, final=True)
    workers.shutdown(wait=False)  # the jobs already submitted still run
    box = content.box(scale, size)
    if segments:
        box = refine_edges(first_gray(), box, search=2 * scale + 4)

    hide = webcam_rects()

    def bring_up_to_date(image: np.ndarray, used_box: Rect, hidden: tuple[Rect, ...], painted: tuple[Rect, ...]) -> tuple[bool, bool]:
        """Paint ``image`` again if the webcam estimate moved since it was made; returns (painted
        again, PNG to encode again). The box and webcam seen at a segment's end are nearly always
        the final ones."""
        repaint = hidden != hide and _needs_repaint(image, painted, hide, box)
        if repaint:
            hide_rects(image, hide, box)
        return repaint, repaint or used_box != box

    def finish_spilled(seg: Segment, j: int, hidden: tuple[Rect, ...]) -> None:
        npy, png_path, used_box, painted = spilled[j]
        seg.image_file = npy
        seg.png_file = png_path
        if used_box != box or hidden != hide:  # changed after it went to disk: load it to check
            image = np.load(npy)
            repainted, reencode = bring_up_to_date(image, used_box, hidden, painted)
            if repainted:
                np.save(npy, image)
            if reencode:
                png_path.write_bytes(encode_png(image, box))
        seg.settle = None

    def finish(seg: Segment, job: Future, hidden: tuple[Rect, ...]) -> None:
        image, used_box, png, painted = job.result()
        seg.image = image
        _, reencode = bring_up_to_date(image, used_box, hidden, painted)
        seg.png = encode_png(image, box) if reencode else png
        seg.settle = None

    for j, (seg, (job, hidden)) in enumerate(zip(segments, jobs)):
        if j in spilled:
            finish_spilled(seg, j, hidden)
        elif settle or job.done():
            finish(seg, job, hidden)
        else:
            seg.settle = functools.partial(finish, seg, job, hidden)
    busy = webcam.mask  # hits made before the webcam was recognised are dropped here
    for seg in segments:
        x0, y0, x1, y1 = box
        for i in range(seg.span.start, seg.span.end + 1):
            hit = hits.get(i)
            if hit is None or (busy is not None and busy[min(busy.shape[0] - 1, int(hit.y // scale)), min(busy.shape[1] - 1, int(hit.x // scale))]):
                continue
            if x0 <= hit.x < x1 and y0 <= hit.y < y1:
                seg.trace.append((times[i], hit.x, hit.y))
    duration = times[-1] + frame_interval if times else 0.0
    return Analysis(size[0], size[1], duration, box, np.array(times), np.array(moving_flags), hits, segments)


# --------------------------------------------------------------------------- rows


def video_id_for(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._") or "video"


def segment_utterances(transcript: Transcript | None, start: float, end: float) -> list[Utterance]:
    """Speech belonging to [start, end]: words (or, without word timings, utterances) whose midpoint lies inside."""
    if transcript is None:
        return []
    out: list[Utterance] = []
    for u in transcript.utterances:
        if u.words:
            words = [w for w in u.words if start <= 0.5 * (w.start + w.end) < end]
            if words:
                out.append(Utterance(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words)))
        elif start <= 0.5 * (u.start + u.end) < end:
            out.append(u)
    return out


def build_rows(analysis: Analysis, video_id: str, transcript: Transcript | None, method: str) -> list[dict[str, Any]]:
    x0, y0, x1, y1 = analysis.content_box
    cw, ch = x1 - x0, y1 - y0
    rows = []
    for i, seg in enumerate(analysis.segments):
        segment_id = f"{video_id}_{i:03d}"
        trace = [[round(t, 3), round((x - x0) / cw, 4), round((y - y0) / ch, 4)] for t, x, y in seg.trace]
        utterances = segment_utterances(transcript, seg.start, seg.end)
        spoken = [(u.start, u.end, u.text) for u in utterances]
        clusters = ground(trace, spoken, method=method)
        caption = grounded_caption([(c.text, c.box) for c in clusters], " ".join(u.text for u in utterances))
        rows.append(
            {
                "video_id": video_id,
                "segment_id": segment_id,
                "start": round(seg.start, 3),
                "end": round(seg.end, 3),
                "image": f"{video_id}/frames/{segment_id}.png",
                "width": cw,
                "height": ch,
                "content_box": [x0, y0, x1, y1],
                "trace": trace,
                "utterances": [u.to_dict() for u in utterances],
                "clusters": [c.to_dict() for c in clusters],
                "grounded_caption": caption,
            }
        )
    return rows


def encode_png(rgb: np.ndarray, box: tuple[int, int, int, int] | None = None) -> bytes:
    """PNG bytes of ``rgb`` (cropped to ``box``): fast zlib level with run-length matching and
    the "up" row filter for every row (instead of trying each filter per row): a 1264x648
    segment image takes ~19 ms instead of ~34 ms (Pillow level 1: ~2x longer) for ~5% more bytes."""
    import cv2

    if box is not None:
        x0, y0, x1, y1 = box
        rgb = rgb[y0:y1, x0:x1]
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                             cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def rebuild_narratives(out_dir: Path) -> int:
    """Rewrite ``out_dir/narratives.jsonl`` atomically from every finished video; returns the row count."""
    rows: list[dict[str, Any]] = []
    for rows_file in sorted(Path(out_dir).glob(f"*/{ROWS_FILE}")):
        rows.extend(iter_jsonl(rows_file, tolerate_torn_tail=False))
    return write_jsonl(Path(out_dir) / NARRATIVES_FILE, rows)


def _process_video(video: Path, transcript_path: Path | None, out_dir: Path, cfg: ExtractConfig, source: FrameSource | None = None) -> list[dict[str, Any]]:
    cfg.validate()
    video = Path(video)
    video_id = video_id_for(video)
    transcript = read_transcript(transcript_path) if transcript_path is not None else None
    spill_dir = out_dir / video_id / SPILL_DIR  # segment images waiting for the video's end
    shutil.rmtree(spill_dir, ignore_errors=True)  # left by a killed run
    try:
        analysis = analyse(source or PyAVSource(video, threads=cfg.threads), cfg, name=str(video), settle=False,
                           spill_dir=spill_dir)
        if transcript is not None and transcript.end > analysis.duration + cfg.transcript_slack_s:
            for seg in analysis.segments:
                seg.ready()
            raise InputError(
                str(transcript_path),
                f"the transcript runs to {transcript.end:.1f} s but the video {video.name} is only "
                f"{analysis.duration:.1f} s long; is it the transcript of another video?",
            )
        rows = build_rows(analysis, video_id, transcript, cfg.clustering)
        frames_dir = out_dir / video_id / "frames"

        def write_png(row: dict[str, Any], seg: Segment) -> None:
            seg.ready()  # the last segment image is usually still being made while rows are built
            target = frames_dir / f"{row['segment_id']}.png"
            if seg.png_file is not None:  # made while decoding, waited on disk: flushed, then moved in
                fd = os.open(seg.png_file, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                frames_dir.mkdir(parents=True, exist_ok=True)
                os.replace(seg.png_file, target)
                return
            png = seg.png if seg.png is not None else encode_png(seg.rgb(), analysis.content_box)
            atomic_write_bytes(target, png)

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:  # each file is fsynced: overlap the waits
            for done in [pool.submit(write_png, row, seg) for row, seg in zip(rows, analysis.segments)]:
                done.result()
        # Written last: its presence marks the video as finished.
        write_jsonl(out_dir / video_id / ROWS_FILE, rows)
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    return rows


def extract_video(video: Path, transcript: Path | None, out_dir: Path, config: ExtractConfig | None = None) -> list[dict[str, Any]]:
    """Extract one video into ``out_dir`` (segment images + rows) and rebuild ``narratives.jsonl``."""
    out_dir = Path(out_dir)
    rows = _process_video(Path(video), Path(transcript) if transcript is not None else None, out_dir, config or ExtractConfig())
    rebuild_narratives(out_dir)
    return rows


# --------------------------------------------------------------------------- folders


def find_transcript(video: Path) -> Path | None:
    """The sidecar transcript of ``video``: <stem>.transcript.json, <stem>.json, <stem>.srt or <stem>.vtt."""
    for suffix in TRANSCRIPT_SUFFIXES:
        candidate = video.with_name(video.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def list_videos(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


@dataclass
class FolderResult:
    done: list[str] = field(default_factory=list)  # video ids extracted in this run
    skipped: list[str] = field(default_factory=list)  # already finished before this run
    failed: dict[str, str] = field(default_factory=dict)  # video path -> error message
    rows: int = 0  # rows in narratives.jsonl after the run

    @property
    def ok(self) -> bool:
        return not self.failed


VideoJob = tuple[Path, Path | None, Path, ExtractConfig]  # video, transcript, out_dir, config


def _worker(args: VideoJob, source: FrameSource | None = None) -> tuple[str, int | None, str | None]:
    """One video, as every engine runs it (local pool, Ray task): a failure is returned, never raised."""
    video, transcript, out_dir, cfg = args
    try:
        rows = _process_video(video, transcript, out_dir, cfg, source)
        return str(video), len(rows), None
    except QuiltError as exc:
        return str(video), None, str(exc)
    except Exception as exc:  # one bad video must not stop the others
        log.exception("unexpected failure on %s", video)
        return str(video), None, f"{video}: unexpected error ({type(exc).__name__}: {exc})"


def plan_folder(videos: Path | list[Path], out_dir: Path, cfg: ExtractConfig,
                transcripts: dict[Path, Path | None] | None = None) -> tuple[FolderResult, list[VideoJob]]:
    """The videos still to extract, each with its transcript, and a result listing the finished ones
    as skipped (a video is finished when ``<video_id>/rows.jsonl`` exists). Creates ``out_dir``."""
    cfg.validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = list_videos(videos) if isinstance(videos, Path) and videos.is_dir() else [Path(v) for v in ([videos] if isinstance(videos, Path) else videos)]
    result = FolderResult()
    todo: list[VideoJob] = []
    for video in paths:
        vid = video_id_for(video)
        if (out_dir / vid / ROWS_FILE).is_file():
            result.skipped.append(vid)
            continue
        transcript = transcripts.get(video) if transcripts is not None else find_transcript(video)
        todo.append((video, transcript, out_dir, cfg))
    return result, todo


def extract_folder(
    videos: Path | list[Path],
    out_dir: Path,
    config: ExtractConfig | None = None,
    workers: int = 1,
    transcripts: dict[Path, Path | None] | None = None,
    on_done: Callable[[str, int | None, str | None], None] | None = None,
) -> FolderResult:
    """Extract every video of a folder (or list), in parallel over videos, skipping finished ones.

    Transcripts come from ``transcripts`` when given, else from sidecar files (see
    :func:`find_transcript`). A failing video is reported in the result; the others go on.
    """
    cfg = config or ExtractConfig()
    out_dir = Path(out_dir)
    result, todo = plan_folder(videos, out_dir, cfg, transcripts)
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            outcomes = pool.map(_worker, todo)
            for outcome in outcomes:
                _collect(result, outcome, on_done)
    else:
        for item in todo:
            _collect(result, _worker(item), on_done)
    result.rows = rebuild_narratives(out_dir)
    return result


def _collect(result: FolderResult, outcome: tuple[str, int | None, str | None], on_done: Callable[[str, int | None, str | None], None] | None) -> None:
    video, n, error = outcome
    if error is not None:
        result.failed[video] = error
    else:
        result.done.append(video_id_for(Path(video)))
    if on_done is not None:
        on_done(video, n, error)
