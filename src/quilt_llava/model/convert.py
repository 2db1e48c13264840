"""Import checkpoints stored the original LLaVA way into the Hugging Face layout.

The released Quilt-LLaVA and LLaVA-Med weights are ``LlavaLlamaForCausalLM``
checkpoints: a Llama ``config.json`` plus ``mm_vision_tower`` (a hub id),
``mm_projector_type``, ``mm_vision_select_layer`` and ``mm_vision_select_feature``;
weights named ``model.layers.*``, ``model.embed_tokens``, ``lm_head`` and
``model.mm_projector.{0,2}.*`` (``mlp2x_gelu``) or ``model.mm_projector.*``
(``linear``). The vision tower's weights are usually not in the checkpoint: they
come from ``mm_vision_tower``, which ``vision_tower=`` can point at a local copy.

Differences handled here:
- the original inserts image features at a single placeholder id (-200, not in
  the vocabulary); the HF model expects one ``<image>`` token per feature, so
  ``<image>`` (and a pad token if missing) is added to the tokenizer and the
  embeddings are resized (new rows get the mean embedding);
- projector ``.0``/``.2`` become ``linear_1``/``linear_2``; a ``linear`` projector
  becomes ``linear_1`` with ``linear_2`` the identity (see :mod:`.build`);
- checkpoints of the released era (transformers 4.31) store non-parameter buffers
  (``rotary_emb.inv_freq`` in every layer; cached ``cos``/``sin`` tables and CLIP's
  ``position_ids`` in some): they are recomputed by the model, so they are dropped
  (:data:`DROPPED_BUFFERS`) and counted; any other key the model does not take is
  listed, every one of them, in the error;
- weights come as ``*.safetensors`` or ``pytorch_model*.bin`` files, sharded with
  an index (``pytorch_model-00001-of-00002.bin`` + ``pytorch_model.bin.index.json``,
  as the 4.31-era releases are) or not, in any dtype (fp16 in the releases);
- the tokenizer is loaded with :func:`quilt_llava.model.llama_tokenizer.load_tokenizer`,
  which reproduces sentencepiece exactly (a release ships only ``tokenizer.model``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quilt_llava.errors import ConfigError, InputError
from quilt_llava.files import read_json
from quilt_llava.model.conversation import DEFAULT_TEMPLATE, TEMPLATES

log = logging.getLogger(__name__)

ARCHITECTURES = {
    "LlavaLlamaForCausalLM": "llama",
    "LlavaMistralForCausalLM": "mistral",
    "LlavaQwen2ForCausalLM": "qwen2",
}
# The conversation template each original architecture was released with: LLaVA-Med v1.5
# (LlavaMistralForCausalLM) uses Mistral-Instruct's [INST] format; the Llama/Vicuna ones vicuna_v1.
ARCH_TEMPLATES = {"mistral": "mistral_instruct"}
SELECT_FEATURE = {"patch": "default", "cls_patch": "full"}
# Buffers older transformers saved with the weights; recomputed at load, never parameters.
DROPPED_BUFFERS = ("rotary_emb.inv_freq", "rotary_emb.cos_cached", "rotary_emb.sin_cached", "embeddings.position_ids")
MM_KEYS = (
    "mm_",
    "image_aspect_ratio",
    "image_grid_pinpoints",
    "tune_mm",
    "freeze_mm",
    "unfreeze_mm",
    "use_mm_proj",
    "mm_use",
    "tokenizer_padding_side",
    "tokenizer_model_max_length",
)


@dataclass
class ConvertOptions:
    src: str
    dst: str
    vision_tower: str = ""  # local directory overriding config.json's mm_vision_tower
    conv_template: str = ""  # "": chosen from the architecture (see ARCH_TEMPLATES)
    dtype: str = "float32"


def weight_files(src: Path) -> list[Path]:
    """The checkpoint's weight files: those its index names (every one must exist), else every
    ``*.safetensors`` or, failing those, ``pytorch_model*.bin`` file."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = src / index_name
        if index.is_file():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise InputError(str(index), "has no weight_map")
            files = sorted({src / name for name in weight_map.values()})
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise InputError(str(index), f"names weight files that are not there: {', '.join(missing)}")
            return files
    files = sorted(src.glob("*.safetensors")) or sorted(src.glob("pytorch_model*.bin"))
    if not files:
        raise InputError(str(src), "no *.safetensors or pytorch_model*.bin weights found")
    return files


def _load_weights(src: Path) -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {}
    for f in weight_files(src):
        if f.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(str(f)))
        else:
            state.update(torch.load(f, map_location="cpu", weights_only=True))
    return state


def is_dropped_buffer(key: str) -> bool:
    return key.endswith(DROPPED_BUFFERS)


def map_original_keys(state: dict[str, Any], projector_type: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Split original weights into ``(llava_hf_state, vision_state, unknown_keys)`` under HF names.

    Buffers in :data:`DROPPED_BUFFERS` are left out; ``unknown_keys`` are keys outside the layout."""
    out: dict[str, Any] = {}
    vision: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if is_dropped_buffer(key):
            continue
        if key.startswith("model.mm_projector."):
            rest = key[len("model.mm_projector.") :]
            if projector_type == "linear":
                out[f"model.multi_modal_projector.linear_1.{rest}"] = value
            else:
                idx, _, param = rest.partition(".")
                layer = {"0": "linear_1", "2": "linear_2"}.get(idx)
                if layer is None:
                    unknown.append(key)
                    continue
                out[f"model.multi_modal_projector.{layer}.{param}"] = value
        elif key.startswith("model.vision_tower."):
            # Saved only when the tower was trained: model.vision_tower.vision_tower.vision_model.*
            rest = key[len("model.vision_tower.") :]
            rest = rest.removeprefix("vision_tower.").removeprefix("vision_model.")
            vision[rest] = value
        elif key.startswith("model."):
            out["model.language_model." + key[len("model.") :]] = value
        elif key.startswith("lm_head."):
            out[key] = value
        else:
            unknown.append(key)
    return out, vision, unknown


@dataclass(frozen=True)
class _Original:
    """What an original checkpoint's ``config.json`` says, checked."""

    architecture: str
    projector_type: str
    select: str
    tower: str
    conv_template: str


def _read_original_config(src: Path, options: ConvertOptions) -> tuple[dict[str, Any], _Original]:
    """``config.json`` and its checked LLaVA settings; every problem reported at once."""
    from quilt_llava.model.spec import PROJECTOR_TYPES

    cfg = read_json(src / "config.json")
    problems = []
    arch = (cfg.get("architectures") or ["?"])[0]
    if arch not in ARCHITECTURES:
        problems.append(f"architecture '{arch}' is not one of {sorted(ARCHITECTURES)}")
    projector_type = cfg.get("mm_projector_type", "linear")
    if projector_type not in PROJECTOR_TYPES:
        problems.append(f"mm_projector_type '{projector_type}' is not linear or mlp2x_gelu")
    select = cfg.get("mm_vision_select_feature", "patch")
    if select not in SELECT_FEATURE:
        problems.append(f"mm_vision_select_feature '{select}' is not one of {sorted(SELECT_FEATURE)}")
    tower = options.vision_tower or cfg.get("mm_vision_tower") or ""
    if not tower:
        problems.append("config has no mm_vision_tower; pass vision_tower")
    conv_template = options.conv_template or ARCH_TEMPLATES.get(ARCHITECTURES.get(arch, ""), DEFAULT_TEMPLATE)
    if conv_template not in TEMPLATES:
        problems.append(f"conv_template '{conv_template}' is not one of {sorted(TEMPLATES)}")
    if problems:
        raise ConfigError(problems, source=str(src / "config.json"))
    return cfg, _Original(arch, projector_type, select, tower, conv_template)


def _load_original_weights(model: Any, vision_model: Any, src: Path, projector_type: str) -> int:
    """Load the original weights (and the tower's) into ``model``; the number of buffers dropped.

    Raises :class:`InputError` naming every missing or unexpected key."""
    original = _load_weights(src)
    dropped = sorted(k for k in original if is_dropped_buffer(k))
    state, vision_state, unknown = map_original_keys(original, projector_type)
    del original
    if projector_type == "linear":
        from quilt_llava.model.build import init_linear_projector

        init_linear_projector(model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [
        k
        for k in missing
        if not k.startswith("model.vision_tower.") and not (projector_type == "linear" and "linear_2" in k)
    ]
    model.model.vision_tower.load_state_dict(vision_model.state_dict())
    if vision_state:
        vision_result = model.model.vision_tower.load_state_dict(vision_state, strict=False)
        unexpected = [*unexpected, *(f"model.vision_tower.{k}" for k in vision_result.unexpected_keys)]
    unexpected = [*unknown, *unexpected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (not known buffers, so not dropped): {', '.join(unexpected)}")
        raise InputError(str(src), "weights do not match the config: " + "; ".join(parts))
    if dropped:
        log.info("dropped %d non-parameter buffers (%s, ...)", len(dropped), dropped[0])
    return len(dropped)


def convert_llava_checkpoint(options: ConvertOptions) -> dict[str, Any]:
    """Convert ``options.src`` (original LLaVA layout) to an HF ``LlavaForConditionalGeneration`` in ``options.dst``."""
    from transformers import AutoConfig, CLIPVisionModel, LlavaForConditionalGeneration

    from quilt_llava.model.build import (
        llava_config,
        num_image_tokens,
        quilt_meta,
        set_special_token_ids,
    )
    from quilt_llava.model.checkpoint import save_model_and_processor
    from quilt_llava.model.hf import hub_load
    from quilt_llava.model.llama_tokenizer import load_tokenizer
    from quilt_llava.model.precision import resolve_dtype
    from quilt_llava.model.processing import add_image_token, image_processor_for, make_processor
    from quilt_llava.model.spec import ModelSpec

    src = Path(options.src)
    cfg, orig = _read_original_config(src, options)
    dtype = resolve_dtype(options.dtype)
    text_fields = {
        k: v
        for k, v in cfg.items()
        if not k.startswith(MM_KEYS) and k not in ("architectures", "model_type", "transformers_version")
    }
    text_config = AutoConfig.for_model(ARCHITECTURES[orig.architecture], **text_fields)
    vision_model = hub_load("vision tower", orig.tower, lambda: CLIPVisionModel.from_pretrained(orig.tower))
    vcfg = vision_model.config
    tokenizer = load_tokenizer(src)
    image_token_id = add_image_token(tokenizer)
    spec = ModelSpec(
        name=f"converted:{src.name}",
        vision_tower=orig.tower,
        llm=str(src),
        projector_type=orig.projector_type,
        vision_feature_layer=int(cfg.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy=SELECT_FEATURE[orig.select],
        conv_template=orig.conv_template,
    )
    n_img = num_image_tokens(vcfg.image_size, vcfg.patch_size, spec.select_strategy, has_cls=True)
    model = LlavaForConditionalGeneration(llava_config(vcfg, text_config, spec, image_token_id, n_img))
    dropped = _load_original_weights(model, vision_model, src, orig.projector_type)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    model.config.text_config.pad_token_id = tokenizer.pad_token_id
    set_special_token_ids(model, tokenizer)
    model.config.quilt_llava = quilt_meta(spec) | {
        "converted_from": str(src),
        "original_architecture": orig.architecture,
    }
    model = model.to(dtype)
    processor = make_processor(
        tokenizer,
        image_processor_for(orig.tower, vcfg.image_size),
        vcfg.patch_size,
        spec.select_strategy,
        has_cls=True,
        conv_template=orig.conv_template,
    )
    os.makedirs(options.dst, exist_ok=True)
    save_model_and_processor(model, processor, options.dst)
    return {
        "src": str(src),
        "dst": options.dst,
        "architecture": orig.architecture,
        "conv_template": orig.conv_template,
        "projector_type": orig.projector_type,
        "vision_tower": orig.tower,
        "image_token_id": image_token_id,
        "vocab_size": len(tokenizer),
        "dropped_buffers": dropped,
    }
