"""Image preparation shared by training, evaluation and serving.

LLaVA-1.5 pads every image to a square before the CLIP preprocessing (resize +
centre crop), so no tissue at the edges is cropped away. The canvas is filled
with the IMAGE PROCESSOR's mean colour, ``tuple(int(m * 255) for m in image_mean)``
(CLIP: 122, 116, 104), which after normalisation is (almost) zero. Training (the
dataset) and inference (eval, chat, web, the vLLM recipe) must do the same thing,
so they all call :func:`prepare_image` with the checkpoint's processor.

The processor itself (tokenizer with the ``<image>`` token + CLIP-style image
processor + the Jinja chat template) is made here too.
"""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

from quilt_llava.images import pad_to_square, processor_fill
from quilt_llava.model.conversation import DEFAULT_TEMPLATE, IMAGE_TOKEN

log = logging.getLogger(__name__)


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


def make_image_processor(image_size: int, mean: list[float] | None = None, std: list[float] | None = None):
    """CLIP-style preprocessing (resize shortest side, centre crop, normalise) at ``image_size``."""
    from transformers import CLIPImageProcessorPil

    kwargs: dict[str, Any] = {
        "size": {"shortest_edge": image_size},
        "crop_size": {"height": image_size, "width": image_size},
    }
    if mean is not None:
        kwargs["image_mean"] = mean
    if std is not None:
        kwargs["image_std"] = std
    return CLIPImageProcessorPil(**kwargs)


def image_processor_for(vision_tower: str, image_size: int):
    """The image processor saved with ``vision_tower`` (hub id or directory), else CLIP defaults at
    ``image_size`` (vision repos saved from open_clip may lack a preprocessor config)."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(vision_tower)
    except (OSError, ValueError):
        return make_image_processor(image_size)


def make_processor(
    tokenizer,
    image_processor,
    patch_size: int,
    select_strategy: str,
    has_cls: bool,
    conv_template: str = DEFAULT_TEMPLATE,
):
    """A ``LlavaProcessor`` whose Jinja chat template renders like ``get_template(conv_template)``."""
    from transformers import LlavaProcessor

    from quilt_llava.model.chat_template import chat_template_for

    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy=select_strategy,
        chat_template=chat_template_for(conv_template),
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1 if has_cls else 0,
    )


def add_image_token(tokenizer, image_token: str = IMAGE_TOKEN) -> int:
    """Ensure ``image_token`` is a special token and a pad token exists; return its id."""
    added = (
        tokenizer.add_special_tokens({"additional_special_tokens": [image_token]}, replace_extra_special_tokens=False)
        if image_token not in tokenizer.get_vocab()
        else 0
    )
    if added:
        log.info("added %s to the tokenizer", image_token)
    if tokenizer.pad_token is None:
        # Llama/Vicuna ship without a pad token; unk is what LLaVA used for padding.
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    return tokenizer.convert_tokens_to_ids(image_token)
