"""Frame reduction: decoded frames to the small luma images the view analysis works on.

Each analysed frame (every decoded frame, or ``sample_fps`` of them) gets a small luma
image (1/scale of the full resolution, ``analysis_width`` wide or so) for motion, the
webcam and the content area, and a tiny one (half of that) for view stability. This runs
on the producer thread, next to the decoder (see :func:`video.prefetch`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from quilt_llava.narratives.video import Frame, FrameSource


def analysis_scale(width: int, analysis_width: int) -> int:
    """Full-resolution pixels per pixel of the small analysis frames."""
    return max(1, round(width / analysis_width))


def sampled_frames(frames: Iterator[Frame], sample_fps: float | None) -> Iterator[Frame]:
    """``frames`` thinned to ``sample_fps`` (the first frame at or after each tick), or all of them."""
    next_t = 0.0
    for frame in frames:
        if sample_fps is not None:
            if frame.t < next_t - 1e-3:
                continue
            step = 1.0 / sample_fps
            next_t = next_t + step if next_t + step > frame.t else frame.t + step
        yield frame


def reduce_luma(luma: np.ndarray, analysis_width: int) -> tuple[np.ndarray, np.ndarray]:
    """The small (1/scale) and tiny (1/(2 scale)) versions of a full-resolution luma plane."""
    import cv2

    h, w = luma.shape
    scale = analysis_scale(w, analysis_width)
    small = cv2.resize(luma, (w // scale, h // scale), interpolation=cv2.INTER_LINEAR)
    tiny = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return small, tiny


def reduced_frames(
    source: FrameSource, sample_fps: float | None, analysis_width: int
) -> Iterator[tuple[Frame, np.ndarray, np.ndarray]]:
    """The frames to analyse with their small and tiny luma images (see :func:`reduce_luma`). (The
    chroma locator's plane is made later, for the frames it runs on: ``ChromaPointer.offer``.)"""
    for frame in sampled_frames(source.frames(), sample_fps):
        small, tiny = reduce_luma(frame.luma, analysis_width)
        yield frame, small, tiny
