"""Image helpers shared by training, evaluation, serving and data generation.

- :func:`open_image` opens a user- or dataset-supplied image safely: it checks the
  type, file size and pixel count *before* decoding (decompression bombs are
  rejected) and names the file in every error.
- :func:`pad_to_square` centres an image on a square canvas (LLaVA-1.5's "pad"
  aspect mode) so no tissue is cropped away; the release fills the canvas with the
  image processor's mean colour, :func:`processor_fill` (CLIP: 122, 116, 104), not
  the image's own mean.
- :func:`draw_region_ellipse` draws the red ellipse of red-circle prompting around
  a normalised box.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from quilt_llava.errors import InputError

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 64_000_000
    formats: tuple[str, ...] = ALLOWED_FORMATS


def open_image(path: str | os.PathLike[str], limits: ImageLimits | None = None) -> Image.Image:
    """Open ``path`` as RGB, enforcing ``limits``; raise :class:`InputError` naming the file."""
    limits = limits or ImageLimits()
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(str(path), "image file not found") from None
    if size > limits.max_bytes:
        raise InputError(
            str(path), f"image file is {size / 2**20:.1f} MiB; the limit is {limits.max_bytes / 2**20:.1f} MiB"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            fmt = img.format or "unknown"
            if fmt not in limits.formats:
                raise InputError(str(path), f"image type {fmt} is not accepted; use one of {', '.join(limits.formats)}")
            w, h = img.size
            if w * h > limits.max_pixels:
                raise InputError(str(path), f"image is {w}x{h} = {w * h:,} pixels; the limit is {limits.max_pixels:,}")
            img.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(str(path), f"rejected as a decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(str(path), f"not a readable image ({exc})") from None
    return img.convert("RGB")


def processor_fill(image_mean: Sequence[float]) -> tuple[int, int, int]:
    """The release's padding colour for an image processor's ``image_mean``: ``int(m * 255)`` per channel."""
    if len(image_mean) != 3:
        raise ValueError(f"image_mean must have 3 channels, got {list(image_mean)}")
    r, g, b = (int(m * 255) for m in image_mean)
    return (r, g, b)


def pad_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Centre ``image`` on a square canvas filled with ``fill`` (see :func:`processor_fill`)."""
    image = image.convert("RGB")
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), tuple(fill))
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def draw_region_ellipse(
    image: Image.Image,
    box: tuple[float, float, float, float] | list[float],
    color: tuple[int, int, int] = (255, 0, 0),
    width: int | None = None,
) -> Image.Image:
    """Return a copy of ``image`` with an ellipse inscribed in ``box`` (normalised x0, y0, x1, y1)."""
    if len(box) != 4:
        raise ValueError(f"box must have 4 numbers (x0, y0, x1, y1), got {len(box)}")
    x0, y0, x1, y1 = (min(1.0, max(0.0, float(v))) for v in box)
    if x1 < x0:
        x0, x1 = x1, x0
    if y1 < y0:
        y0, y1 = y1, y0
    out = image.convert("RGB").copy()
    w, h = out.size
    line = width if width is not None else max(2, round(min(w, h) / 100))
    ImageDraw.Draw(out).ellipse([x0 * (w - 1), y0 * (h - 1), x1 * (w - 1), y1 * (h - 1)], outline=color, width=line)
    return out
