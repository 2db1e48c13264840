"""Image preparation shared by training, evaluation and serving.

LLaVA-1.5 pads every image to a square with its mean colour before the CLIP
preprocessing (resize + centre crop), so no tissue at the edges is cropped away.
Training (the dataset) and inference (eval, chat, web) must do the same thing,
so they all call :func:`prepare_image`.
"""

from __future__ import annotations

from PIL import Image

from quilt_llava.images import pad_to_square


def prepare_image(image: Image.Image) -> Image.Image:
    """RGB, padded to a square with the image's mean colour."""
    return pad_to_square(image.convert("RGB"))
