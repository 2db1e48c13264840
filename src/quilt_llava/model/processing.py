"""Image preparation shared by training, evaluation and serving.

LLaVA-1.5 pads every image to a square before the CLIP preprocessing (resize +
centre crop), so no tissue at the edges is cropped away. The canvas is filled
with the IMAGE PROCESSOR's mean colour, ``tuple(int(m * 255) for m in image_mean)``
(CLIP: 122, 116, 104), which after normalisation is (almost) zero. Training (the
dataset) and inference (eval, chat, web, the vLLM recipe) must do the same thing,
so they all call :func:`prepare_image` with the checkpoint's processor.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from quilt_llava.images import pad_to_square, processor_fill


def padding_fill(processor: Any) -> tuple[int, int, int]:
    """The padding colour of ``processor`` (a ``LlavaProcessor`` or its image processor)."""
    image_processor = getattr(processor, "image_processor", processor)
    mean = getattr(image_processor, "image_mean", None)
    if mean is None:
        raise ValueError(f"{type(image_processor).__name__} has no image_mean; cannot choose the padding colour")
    return processor_fill(mean)


def prepare_image(image: Image.Image, processor: Any) -> Image.Image:
    """RGB, padded to a square with ``processor``'s mean colour (a ``LlavaProcessor`` or image processor)."""
    return pad_to_square(image.convert("RGB"), padding_fill(processor))
