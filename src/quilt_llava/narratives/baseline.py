"""The published cursor method, re-implemented as a reference to measure against.

What the release describes (SPEC A) and nothing more:

1. **Stable chunks**: consecutive frames are compared with SSIM on one random 64x64
   crop; the pair is "stable" when SSIM > 0.98. A maximal run of stable pairs is a
   chunk; chunks of 3 s or more are kept as segments.
2. **Background**: the per-pixel median of the chunk's frames.
3. **Cursor**: ``|frame - median|``, values under a threshold set to zero (compression
   noise), and the position of the strongest remaining response is the cursor. A frame
   with nothing above the threshold has no cursor; frames outside kept chunks have none.

Known weaknesses, kept on purpose because they are the method's: a cursor that rests
still is part of the median and vanishes; the strongest difference lies on the cursor
body, not its tip; a moving webcam box or annotation wins the argmax; the random crop
may land on static UI during a pan. The median is taken over at most
``max_median_frames`` evenly spaced frames of the chunk (an engineering bound on memory
and time; the release's chunk medians were also over sampled frames).

Works on the luma plane at full video resolution, so positions are in video pixels.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quilt_llava.errors import InputError


@dataclass
class BaselineConfig:
    ssim_threshold: float = 0.98
    crop_size: int = 64
    min_segment_s: float = 3.0
    diff_threshold: int = 40  # grey levels; differences below are compression noise
    max_median_frames: int = 64
    seed: int = 0


@dataclass
class BaselineResult:
    times: list[float] = field(default_factory=list)  # pts seconds of every decoded frame
    cursor: list[tuple[int, int] | None] = field(default_factory=list)  # (x, y) video px per frame
    segments: list[tuple[float, float]] = field(default_factory=list)  # kept chunks (start, end) s
    seconds: float = 0.0  # wall time of the whole run, decoding included

    def trace(self) -> list[tuple[float, int, int]]:
        return [(t, c[0], c[1]) for t, c in zip(self.times, self.cursor) if c is not None]


def iter_luma(video: Path | str) -> Iterator[tuple[float, np.ndarray]]:
    """Decode ``video`` with PyAV (threaded) and yield ``(pts seconds, luma (h, w) uint8)``."""
    import av

    video = Path(video)
    try:
        container = av.open(str(video))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(str(video), f"cannot open video ({exc})") from None
    with container:
        if not container.streams.video:
            raise InputError(str(video), "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            plane = frame.planes[0]
            h, w = frame.height, frame.width
            buf = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)
            yield float(frame.pts * frame.time_base), buf[:, :w].copy()


def crop_ssim(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, size: int) -> float:
    """SSIM of one random ``size`` x ``size`` crop taken at the same place in ``a`` and ``b``."""
    from skimage.metrics import structural_similarity

    h, w = a.shape
    size = min(size, h, w)
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return float(structural_similarity(a[y : y + size, x : x + size], b[y : y + size, x : x + size], data_range=255))


def cursor_from_difference(frame: np.ndarray, background: np.ndarray, threshold: int) -> tuple[int, int] | None:
    """Strongest thresholded response of ``|frame - background|`` as (x, y), or None."""
    diff = np.abs(frame.astype(np.int16) - background.astype(np.int16))
    diff[diff < threshold] = 0
    idx = int(np.argmax(diff))
    if diff.flat[idx] == 0:
        return None
    y, x = divmod(idx, diff.shape[1])
    return x, y


def run_published(frames: Iterable[tuple[float, np.ndarray]], config: BaselineConfig | None = None) -> BaselineResult:
    """Apply the published method to ``(t, luma)`` frames in display order."""
    cfg = config or BaselineConfig()
    rng = np.random.default_rng(cfg.seed)
    result = BaselineResult()
    chunk: list[np.ndarray] = []
    chunk_start = 0  # index into result.times of the chunk's first frame

    def close_chunk(end_index: int) -> None:
        # Frames chunk_start .. end_index-1 form a chunk.
        n = end_index - chunk_start
        if n == 0:
            return
        times = result.times
        step = (times[end_index - 1] - times[chunk_start]) / max(n - 1, 1) if n > 1 else 0.0
        start, end = times[chunk_start], times[end_index - 1] + step
        if end - start < cfg.min_segment_s:
            return
        result.segments.append((start, end))
        pick = np.linspace(0, n - 1, min(n, cfg.max_median_frames)).round().astype(int)
        background = np.median(np.stack([chunk[i] for i in pick]), axis=0).astype(np.uint8)
        for i, frame in enumerate(chunk):
            result.cursor[chunk_start + i] = cursor_from_difference(frame, background, cfg.diff_threshold)

    prev: np.ndarray | None = None
    for t, luma in frames:
        index = len(result.times)
        result.times.append(t)
        result.cursor.append(None)
        if prev is not None and crop_ssim(prev, luma, rng, cfg.crop_size) <= cfg.ssim_threshold:
            close_chunk(index)
            chunk = []
            chunk_start = index
        chunk.append(luma)
        prev = luma
    close_chunk(len(result.times))
    return result


def published_cursor_trace(video: Path | str, config: BaselineConfig | None = None) -> BaselineResult:
    """Run the published method on a video file; cursor positions are in video pixels."""
    t0 = time.perf_counter()
    result = run_published(iter_luma(video), config)
    if not result.times:
        raise InputError(str(video), "no decodable video frames")
    result.seconds = time.perf_counter() - t0
    return result
