"""Prompt text to token ids, the way the released LLaVA models saw their prompts.

One function, :func:`tokenize_prompt`, serves training, evaluation and chat. It
follows the release (LLaVA's ``tokenizer_image_token``): the prompt is split at
``<image>``, each piece is tokenized ON ITS OWN (the first keeps the BOS the
tokenizer adds, the others lose theirs), and the image goes between them. So with a
sentencepiece tokenizer the text after the image starts a fresh piece and gets the
dummy-prefix "▁" (``▁``, ``<0x0A>``, ... rather than ``<0x0A>``, ...), which
tokenizing the whole prompt at once would not give. Where the release put one
placeholder id, the Hugging Face model needs one ``<image>`` token per image
feature: the image becomes ``num_image_tokens`` copies of ``image_token_id``.

The turn layout before tokenizing (``<image>`` moved to the front of its turn) is
:func:`quilt_llava.model.conversation.image_first`.
"""

from __future__ import annotations

from quilt_llava.model.conversation import IMAGE_TOKEN


def piece_ids(tokenizer, text: str) -> list[int]:
    """``text`` tokenized alone, with the tokenizer's own special tokens (BOS for Llama)."""
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def tokenize_prompt(tokenizer, text: str, image_token_id: int, num_image_tokens: int = 1) -> list[int]:
    """Token ids of ``text``; every ``<image>`` becomes ``num_image_tokens`` x ``image_token_id``."""
    chunks = [piece_ids(tokenizer, piece) for piece in text.split(IMAGE_TOKEN)]
    bos = tokenizer.bos_token_id
    offset = 1 if bos is not None and chunks[0][:1] == [bos] else 0
    ids = list(chunks[0])
    for chunk in chunks[1:]:
        ids.extend([image_token_id] * num_image_tokens)
        ids.extend(chunk[offset:])
    return ids


def image_token_count(processor) -> int:
    """How many ``<image>`` tokens one image becomes for ``processor`` (a ``LlavaProcessor``)."""
    crop = processor.image_processor.crop_size
    h, w = (crop["height"], crop["width"]) if isinstance(crop, dict) else (crop.height, crop.width)
    n = (h // processor.patch_size) * (w // processor.patch_size) + processor.num_additional_image_tokens
    if processor.vision_feature_select_strategy == "default":
        n -= 1
    return n


def encode_prompts(processor, prompts: list[str], images: list | None = None, padding_side: str = "left"):
    """Model inputs for a batch of rendered prompts (and their images): ``input_ids``, ``attention_mask``
    (padded on ``padding_side``) and ``pixel_values``. The inference twin of the training path."""
    import torch

    tokenizer = processor.tokenizer
    image_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    n_img = image_token_count(processor)
    rows = [tokenize_prompt(tokenizer, p, image_id, n_img) for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.unk_token_id or 0)
    longest = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), longest), pad, dtype=torch.long)  # (batch, seq)
    attention = torch.zeros((len(rows), longest), dtype=torch.long)  # (batch, seq)
    for i, row in enumerate(rows):
        span = slice(longest - len(row), longest) if padding_side == "left" else slice(0, len(row))
        input_ids[i, span] = torch.tensor(row, dtype=torch.long)
        attention[i, span] = 1
    out = {"input_ids": input_ids, "attention_mask": attention}
    if images:
        out["pixel_values"] = processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    return out


__all__ = ["encode_prompts", "image_token_count", "piece_ids", "tokenize_prompt"]
