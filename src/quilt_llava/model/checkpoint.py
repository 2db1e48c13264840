"""Checkpoint I/O: save and load the Hugging Face layout plus ``quilt_llava.json``.

A saved checkpoint is stock transformers (``LlavaForConditionalGeneration`` and
``LlavaProcessor``); the only addition is the quilt-llava metadata (conversation
template, projector type, where the parts came from), kept in ``quilt_llava.json``
and in ``config.json``'s ``quilt_llava`` entry. :func:`resolve_conv_template` is the
one place that decides which conversation template a checkpoint uses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quilt_llava.errors import ConfigError
from quilt_llava.model.conversation import DEFAULT_TEMPLATE, TEMPLATES

QUILT_JSON = "quilt_llava.json"


def save_model_and_processor(
    model, processor, out_dir: str | os.PathLike[str], extra_meta: dict[str, Any] | None = None
) -> None:
    """Save weights, processor and ``quilt_llava.json`` in the Hugging Face layout.

    Everything is written into a temporary sibling folder first and each file is then
    renamed into ``out_dir`` (``quilt_llava.json`` last), so a save that fails or is
    killed never leaves a half-written weight file behind.
    """
    from quilt_llava.files import write_json

    with _staged_dir(out_dir, last=QUILT_JSON) as stage:
        model.save_pretrained(stage)
        processor.save_pretrained(stage)
        make_tokenizer_config_portable(stage)
        meta = model_meta(model)
        meta.update(extra_meta or {})
        write_json(stage / QUILT_JSON, meta)


@contextlib.contextmanager
def _staged_dir(out_dir: str | os.PathLike[str], last: str) -> Iterator[Path]:
    """A temporary folder next to ``out_dir`` to write into; on success every file in it is
    renamed into ``out_dir`` (atomic per file; ``last`` after the others), then it is removed."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield stage
        out.mkdir(exist_ok=True)
        files = sorted((p for p in stage.rglob("*") if p.is_file()), key=lambda p: (p.name == last, str(p)))
        for src in files:
            dst = out / src.relative_to(stage)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def make_tokenizer_config_portable(out_dir: str | os.PathLike[str]) -> None:
    """Name the tokenizer class ``PreTrainedTokenizerFast`` (transformers 5 writes ``TokenizersBackend``,
    which older transformers, e.g. the one a vLLM install pins, cannot resolve; both load the former)."""
    from quilt_llava.files import read_json, write_json

    path = os.path.join(out_dir, "tokenizer_config.json")
    if not os.path.exists(path):
        return
    config = read_json(path)
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        write_json(path, config)


def model_meta(model) -> dict[str, Any]:
    """The quilt-llava metadata of an in-memory model (from its config)."""
    meta = getattr(model.config, "quilt_llava", None)
    return dict(meta) if isinstance(meta, dict) else {"format_version": 1, "conv_template": DEFAULT_TEMPLATE}


def read_meta(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``quilt_llava.json``, else the ``quilt_llava`` entry of ``config.json``, else ``{}``."""
    from quilt_llava.files import read_json

    path = os.path.join(model_dir, QUILT_JSON)
    if os.path.exists(path):
        return dict(read_json(path))
    config_path = os.path.join(model_dir, "config.json")
    if os.path.exists(config_path):
        meta = read_json(config_path).get("quilt_llava")
        if isinstance(meta, dict):
            return dict(meta)
    return {}


def conv_template_of(model_dir: str | os.PathLike[str]) -> str:
    """The conversation template a saved checkpoint expects (``vicuna_v1`` when not recorded)."""
    return resolve_conv_template(model_dir=model_dir)


def load_model_and_processor(
    model_dir: str | os.PathLike[str],
    dtype: Any = None,
    device: str | None = "cpu",
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
):
    """Load a saved (HF-layout) checkpoint and its processor for inference or further training.

    ``dtype``: a ``torch.dtype``, a name (``"bfloat16"``) or ``None`` (as saved).
    4/8-bit loading needs bitsandbytes and a CUDA device.
    """
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from quilt_llava.model.precision import bnb_config, resolve_dtype

    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = resolve_dtype(dtype)
    if load_in_4bit and load_in_8bit:
        raise ConfigError("choose at most one of load_in_4bit and load_in_8bit")
    if load_in_4bit or load_in_8bit:
        kwargs["quantization_config"] = bnb_config(load_in_4bit, kwargs.get("dtype"))
        kwargs["device_map"] = {"": device or "cuda"}
    from quilt_llava.model.hf import hub_load

    model = hub_load("model", model_dir, lambda: LlavaForConditionalGeneration.from_pretrained(model_dir, **kwargs))
    if device is not None and not (load_in_4bit or load_in_8bit):
        model = model.to(device)
    processor = hub_load("processor", model_dir, lambda: AutoProcessor.from_pretrained(model_dir))
    meta = read_meta(model_dir)
    if meta:
        model.config.quilt_llava = meta
    if processor.tokenizer.pad_token_id is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model, processor


def resolve_conv_template(
    override: str | None = None,
    *,
    model: Any = None,
    model_dir: str | os.PathLike[str] | None = None,
    chat_only: bool = False,
) -> str:
    """Which conversation template a checkpoint uses: decided here and nowhere else.

    In order: ``override`` when set; the template recorded in ``model``'s config (an
    in-memory model); the one recorded in ``model_dir`` (``quilt_llava.json``, else
    ``config.json``); else ``vicuna_v1``. With ``chat_only`` a recorded template that
    is unknown or training-only (``plain``, stage 1, drops the user text) gives
    ``vicuna_v1``, the form a model chats in after stage 2.
    """
    if override:
        return override
    recorded = None
    if model is not None:
        meta = getattr(model.config, "quilt_llava", None)
        if isinstance(meta, dict) and meta.get("conv_template"):
            recorded = str(meta["conv_template"])
    if recorded is None and model_dir is not None:
        recorded = read_meta(model_dir).get("conv_template")
        recorded = None if recorded is None else str(recorded)
    if recorded is None:
        return DEFAULT_TEMPLATE
    if chat_only and (recorded not in TEMPLATES or TEMPLATES[recorded].drop_user_text):
        return DEFAULT_TEMPLATE
    return recorded
