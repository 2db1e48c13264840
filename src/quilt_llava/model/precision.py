"""Weight precision: dtype names and bitsandbytes quantisation configs.

``DTYPES`` is the one table of dtype names the CLI accepts (with the short
aliases in ``DTYPE_ALIASES``); torch is imported only when a name is resolved.
"""

from __future__ import annotations

from typing import Any

from quilt_llava.errors import ConfigError

DTYPES = ("float32", "float16", "bfloat16")
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# Modules kept in full precision when the LLM is quantised.
_SKIP_QUANTISED = ["vision_tower", "multi_modal_projector", "lm_head"]


def bnb_config(load_in_4bit: bool, compute_dtype: Any = None):
    from quilt_llava.errors import MissingDependencyError

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingDependencyError("bitsandbytes", "quant") from None
    import torch
    from transformers import BitsAndBytesConfig

    if load_in_4bit:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype or torch.bfloat16,
            llm_int8_skip_modules=list(_SKIP_QUANTISED),
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(_SKIP_QUANTISED))


def resolve_dtype(dtype: Any):
    """A ``torch.dtype`` for a name of ``DTYPES`` or ``DTYPE_ALIASES``; a dtype or ``"auto"`` passes through."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return "auto"
    names = {**{name: name for name in DTYPES}, **DTYPE_ALIASES}
    if dtype not in names:
        raise ConfigError(f"unknown dtype '{dtype}'; choose one of {sorted(names)} or 'auto'")
    return getattr(torch, names[dtype])
