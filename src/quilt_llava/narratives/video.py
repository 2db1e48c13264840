"""Frame sources: decoded frames with container timestamps and a cheap luma plane.

A :class:`FrameSource` has one required method, ``frames()``, yielding
:class:`Frame` objects in presentation order. The PyAV source decodes with
threading, reads the Y plane of planar YUV frames without a colour conversion, and
converts to RGB only when asked (for the few frames a segment image is built from).
:func:`prefetch` runs any source on a producer thread, so decoding (which releases the
GIL in FFmpeg) overlaps the caller's analysis of earlier frames.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from quilt_llava.errors import InputError, MissingDependencyError

# Pixel formats whose first plane is full-resolution 8-bit luma.
_I420 = {"yuv420p", "yuvj420p"}  # formats whose planes a ColourSample keeps as they are
_PLANAR_Y8 = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
# Planar YUV formats whose second and third planes are U and V, 8 bits each (NV12/NV21 interleave them).
_PLANAR_UV = _PLANAR_Y8 - {"nv12", "nv21", "gray"}
NEUTRAL = (128, 128)  # U and V of grey


@dataclass
class Frame:
    index: int
    t: float  # seconds, from the container's presentation timestamp
    luma: np.ndarray  # (height, width) uint8
    _source: Any = None
    # the U and V planes made from RGB (``_uv``), once: the two chroma locators and the dominant
    # colour each ask for them
    _rgb_uv: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def rgb(self) -> np.ndarray:
        """(height, width, 3) uint8 RGB."""
        if self._source is None:
            return np.repeat(self.luma[..., None], 3, axis=2)
        return self._source.to_ndarray(format="rgb24")

    def chroma(self, centre: tuple[int, int] = NEUTRAL) -> np.ndarray | None:
        """(height, width) uint8: each pixel's chroma distance from ``centre`` (U, V), neutral grey
        unless given, ``|U - U0| + |V - V0|`` (saturating), read from the decoder's U and V planes
        where it gives them (no colour conversion; 4:2:0 planes are scaled up 2x, bilinear), else
        from RGB. None for a frame without colour (grey-scale input). A pointer whose contrast
        lies in colour, not brightness, stands out here (see ``pipeline.ChromaPointer``)."""
        dist = self.chroma_distance(centre)
        return None if dist is None else full_size(dist, self.luma.shape)

    def chroma_distance(self, centre: tuple[int, int] = NEUTRAL) -> np.ndarray | None:
        """:meth:`chroma` at the size of the decoder's U and V planes (half of each side for
        4:2:0; the frame's size from RGB): :func:`full_size` scales it up. Small enough to keep
        for a while (``ChromaPointer`` holds a view's first frames' until it knows it wants them)."""
        import cv2

        uv = self._uv()
        if uv is None:
            return None
        u, v = uv
        return cv2.add(cv2.absdiff(u, centre[0]), cv2.absdiff(v, centre[1]))

    def chroma_centre(self) -> tuple[int, int] | None:
        """The frame's dominant colour: the median of its U and V planes (every fourth pixel of
        each side), None without colour. What most of a frame shows (the tissue, or the glass
        around it) is near it; a highlight drawn in any other colour is far from it."""
        uv = self._uv()
        if uv is None:
            return None
        return int(np.median(uv[0][::4, ::4])), int(np.median(uv[1][::4, ::4]))

    def _uv(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The U and V planes (uint8, at the decoder's size), None for a frame without colour."""
        src = self._source
        fmt = getattr(getattr(src, "format", None), "name", None)
        if src is None or fmt == "gray":
            return None
        if fmt in _PLANAR_UV:
            u, v = (_plane_pixels(p, p.height, p.width) for p in src.planes[1:3])
            return u, v
        if self._rgb_uv is None:
            rgb = self.rgb().astype(np.float32)
            r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
            u = np.clip(128 - 0.1687 * r - 0.3313 * g + 0.5 * b, 0, 255).astype(np.uint8)
            v = np.clip(128 + 0.5 * r - 0.4187 * g - 0.0813 * b, 0, 255).astype(np.uint8)
            self._rgb_uv = (u, v)
        return self._rgb_uv

    def colour(self) -> ColourSample:
        """A copy of this frame's colour that does not hold the decoder's buffer: its 4:2:0
        planes when the decoder gives them (half the bytes of RGB, no conversion), else RGB."""
        src = self._source
        h, w = self.luma.shape
        fmt = getattr(getattr(src, "format", None), "name", None)
        if fmt not in _I420 or h % 2 or w % 2:
            return ColourSample(self.rgb())
        packed = np.empty((h * 3 // 2, w), np.uint8)
        packed[:h] = self.luma
        for k, plane in enumerate(src.planes[1:3]):
            packed[h + k * h // 4 : h + (k + 1) * h // 4] = _plane_pixels(plane, h // 2, w // 2).reshape(h // 4, w)
        return ColourSample(packed, fmt, getattr(src, "colorspace", None), getattr(src, "color_range", None))


@dataclass
class ColourSample:
    """One frame's colour: packed 4:2:0 planes (``i420`` names the pixel format; rows of Y,
    then U, then V, shape (h * 3 / 2, w)) or, when ``i420`` is None, (h, w, 3) RGB.

    Per-pixel medians may be taken on ``data`` of same-kind samples directly; :meth:`rgb`
    converts with the decoder's own colour conversion (PyAV), as :meth:`Frame.rgb` does."""

    data: np.ndarray
    i420: str | None = None
    colorspace: Any = None
    color_range: Any = None

    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        h, w = self.data.shape[:2]
        return (w, h * 2 // 3) if self.i420 else (w, h)

    def planes(self) -> list[np.ndarray]:
        """Views of the planes: [Y, U, V] for 4:2:0 samples, [RGB] otherwise."""
        if not self.i420:
            return [self.data]
        w, h = self.size()
        q = h // 4
        return [self.data[:h], self.data[h : h + q].reshape(h // 2, w // 2), self.data[h + q :].reshape(h // 2, w // 2)]

    def rgb(self) -> np.ndarray:
        if not self.i420:
            return self.data
        av = _import_av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(self.data), format=self.i420)
        for name in ("colorspace", "color_range"):
            value = getattr(self, name)
            if value is not None:
                with contextlib.suppress(AttributeError, TypeError, ValueError):  # older PyAV: read-only
                    setattr(frame, name, value)
        return frame.to_ndarray(format="rgb24")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float | None
    duration: float | None
    frames: int | None


class FrameSource(Protocol):
    def frames(self) -> Iterator[Frame]:
        """Yield decoded frames in presentation order."""
        ...


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise MissingDependencyError("av", "video") from None
    return av


def luma_of(frame: Any) -> np.ndarray:
    """The Y plane of a PyAV frame as (height, width) uint8, without colour conversion when possible."""
    if frame.format.name in _PLANAR_Y8:
        return _plane_pixels(frame.planes[0], frame.height, frame.width)
    return frame.to_ndarray(format="gray")


def full_size(dist: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A chroma distance plane (:meth:`Frame.chroma_distance`) at the frame's (height, width): as
    it is when it has that size, else scaled up (bilinear)."""
    import cv2

    h, w = shape[:2]
    return dist if dist.shape == (h, w) else cv2.resize(dist, (w, h), interpolation=cv2.INTER_LINEAR)


def _plane_pixels(plane: Any, height: int, width: int) -> np.ndarray:
    """An 8-bit PyAV plane as (height, width) uint8, without copying (rows may be padded)."""
    return np.frombuffer(plane, dtype=np.uint8).reshape(height, plane.line_size)[:, :width]


class PyAVSource:
    """Decode ``path`` with PyAV (threaded). ``threads=0`` lets FFmpeg choose."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = Path(path)
        self.threads = threads
        self._av = _import_av()
        if not self.path.is_file():
            raise InputError(str(self.path), "video file not found")

    def _open(self) -> tuple[Any, Any]:
        av = self._av
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise InputError(str(self.path), f"cannot open as a video ({exc})") from None
        if not container.streams.video:
            container.close()
            raise InputError(str(self.path), "the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if self.threads:
            stream.codec_context.thread_count = self.threads
        return container, stream

    def info(self) -> VideoInfo:
        container, stream = self._open()
        try:
            fps = float(stream.average_rate) if stream.average_rate else None
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            return VideoInfo(
                stream.codec_context.width, stream.codec_context.height, fps, duration, stream.frames or None
            )
        finally:
            container.close()

    def frames(self) -> Iterator[Frame]:
        av = self._av
        container, stream = self._open()
        fps = float(stream.average_rate) if stream.average_rate else 25.0
        # Times are relative to the stream's declared start, as transcripts are.
        offset = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        index = 0
        try:
            try:
                for vf in container.decode(stream):
                    t = vf.time  # pts x time base, as a float (no Fraction arithmetic per frame)
                    if t is None:  # no timestamp in the container: fall back to the frame rate
                        t = index / fps
                    yield Frame(index, t - offset, luma_of(vf), vf)
                    index += 1
            except av.FFmpegError as exc:
                raise InputError(str(self.path), f"video decoding failed after {index} frames ({exc})") from None
        finally:
            container.close()
        if index == 0:
            raise InputError(str(self.path), "the video stream has no decodable frames")


class ArraySource:
    """Frames from memory: ``frames`` (n, h, w) or (n, h, w, 3) uint8 with timestamps ``times``."""

    def __init__(self, frames: np.ndarray, times: np.ndarray | None = None, fps: float = 25.0) -> None:
        self.array = np.asarray(frames)
        self.times = np.arange(len(self.array)) / fps if times is None else np.asarray(times, dtype=float)

    def frames(self) -> Iterator[Frame]:
        for i, (img, t) in enumerate(zip(self.array, self.times)):
            if img.ndim == 3:
                luma = (img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114).astype(np.uint8)
                yield Frame(i, float(t), luma, _RGB(img))
            else:
                yield Frame(i, float(t), img)


class _RGB:
    def __init__(self, img: np.ndarray) -> None:
        self.img = img

    def to_ndarray(self, format: str = "rgb24") -> np.ndarray:
        return self.img


_DONE = object()
T = TypeVar("T")


def prefetch(produce_items: Callable[[], Iterator[T]], depth: int = 8) -> Iterator[T]:
    """The items of ``produce_items()`` (e.g. ``source.frames``, or a generator that also
    downscales each frame) made on a producer thread, at most ``depth`` items ahead.

    Items come out in the same order; an error raised while producing is re-raised
    here, after the items made before it. When the caller stops early (breaks or
    raises), the producer stops too and its generator is closed on its own thread.
    ``depth <= 0`` produces on the calling thread."""
    if depth <= 0:
        yield from produce_items()
        return
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        made = produce_items()
        try:
            for item in made:
                if not put(item):
                    break
        except BaseException as exc:  # handed over to the consumer, which re-raises it
            put(exc)
            return
        finally:
            made.close()  # type: ignore[attr-defined]
        put(_DONE)

    worker = threading.Thread(target=produce, name="frame-producer", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


FRAME_SOURCES: dict[str, type] = {"pyav": PyAVSource}
