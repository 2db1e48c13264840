"""Assemble a Hugging Face ``LlavaForConditionalGeneration`` and its processor.

A model is vision tower + projector + causal LLM. Everything is stored in the
stock transformers layout (``LlavaConfig`` with ``vision_config`` and
``text_config``), so a saved checkpoint loads with ``from_pretrained`` in
transformers and serves in vLLM without any code from this package.

Projector types
---------------
- ``mlp2x_gelu``: transformers' own ``LlavaMultiModalProjector`` (linear, GELU,
  linear), which is exactly LLaVA-1.5's projector.
- ``linear``: the same module with ``projector_hidden_act="linear"`` (identity)
  and ``linear_2`` initialised to the identity matrix with zero bias. The
  composition ``linear_2(linear_1(x))`` is then one affine map, equal to the
  original single ``nn.Linear`` projector, and the checkpoint stays loadable by
  stock ``from_pretrained`` because only a config value differs. (Training it
  updates both factors; the map stays affine.) The projector type is recorded in
  ``quilt_llava.json`` next to the weights.

The package is split the way transformers splits a model: :mod:`~quilt_llava.model.spec`
(presets, what to assemble), this module (assembly), :mod:`~quilt_llava.model.processing`
(processor and image preparation), :mod:`~quilt_llava.model.checkpoint` (save / load and
the recorded metadata) and :mod:`~quilt_llava.model.precision` (dtype names, quantisation).
"""

from __future__ import annotations

from typing import Any

from quilt_llava.model.processing import (
    add_image_token,
    image_processor_for,
    make_image_processor,
    make_processor,
)
from quilt_llava.model.spec import ModelSpec, TinySizes, get_spec


def init_linear_projector(model) -> None:
    """Make ``linear_2`` the identity so the two-layer module is one linear map (see module doc)."""
    import torch

    proj = model.model.multi_modal_projector
    with torch.no_grad():
        proj.linear_2.weight.copy_(torch.eye(proj.linear_2.weight.shape[0], dtype=proj.linear_2.weight.dtype))
        if proj.linear_2.bias is not None:
            proj.linear_2.bias.zero_()


def build_model_and_processor(
    preset: str | ModelSpec = "tiny",
    seed: int = 0,
    dtype: Any = None,
    **overrides: Any,
):
    """Build ``(LlavaForConditionalGeneration, LlavaProcessor)`` for a preset or spec.

    ``tiny`` is built from config with random weights (deterministic for ``seed``).
    Other specs load the vision tower and LLM with ``from_pretrained`` from the hub
    id or local path they name (override with ``vision_tower=...``, ``llm=...``)
    and initialise the projector randomly.
    """
    spec = get_spec(preset, **overrides) if isinstance(preset, str) else preset
    spec.validate()
    import torch

    torch.manual_seed(seed)
    if spec.tiny is not None:
        model, processor = _build_tiny(spec, spec.tiny)
    else:
        model, processor = _build_from_parts(spec, dtype)
    set_special_token_ids(model, processor.tokenizer)
    # Kept in config.json too, so a plain ``model.save_pretrained`` carries it.
    model.config.quilt_llava = quilt_meta(spec)
    return model, processor


def set_special_token_ids(model: Any, tokenizer: Any) -> None:
    """Generate with the tokenizer's pad / eos / bos ids."""
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id


def quilt_meta(spec: ModelSpec) -> dict[str, Any]:
    return {
        "format_version": 1,
        "conv_template": spec.conv_template,
        "projector_type": spec.projector_type,
        "preset": spec.name,
        "vision_tower": spec.vision_tower,
        "llm": spec.llm,
    }


def llava_config(vision_config, text_config, spec: ModelSpec, image_token_id: int, image_seq_length: int):
    from transformers import LlavaConfig

    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_id,
        image_seq_length=image_seq_length,
        projector_hidden_act="gelu" if spec.projector_type == "mlp2x_gelu" else "linear",
        vision_feature_select_strategy=spec.select_strategy,
        vision_feature_layer=spec.vision_feature_layer,
        tie_word_embeddings=False,
    )


def num_image_tokens(image_size: int, patch_size: int, strategy: str, has_cls: bool) -> int:
    n = (image_size // patch_size) ** 2 + (1 if has_cls else 0)
    return n - 1 if strategy == "default" and has_cls else n


def _build_tiny(spec: ModelSpec, sizes: TinySizes):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaForConditionalGeneration

    from quilt_llava.model.tokenizer import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(vocab_size=sizes.vocab_size, model_max_length=sizes.max_positions)
    image_token_id = add_image_token(tokenizer, spec.image_token)
    vision_config = CLIPVisionConfig(
        hidden_size=sizes.vision_hidden,
        intermediate_size=sizes.vision_intermediate or sizes.vision_hidden * 2,
        num_hidden_layers=sizes.vision_layers,
        num_attention_heads=sizes.vision_heads,
        image_size=sizes.image_size,
        patch_size=sizes.patch_size,
        projection_dim=sizes.vision_hidden,
    )
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=sizes.text_hidden,
        intermediate_size=sizes.text_intermediate,
        num_hidden_layers=sizes.text_layers,
        num_attention_heads=sizes.text_heads,
        num_key_value_heads=sizes.text_kv_heads or sizes.text_heads,
        max_position_embeddings=sizes.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    strategy = spec.select_strategy
    n_img = num_image_tokens(sizes.image_size, sizes.patch_size, strategy, has_cls=True)
    config = llava_config(vision_config, text_config, spec, image_token_id, n_img)
    model = LlavaForConditionalGeneration(config)
    if spec.projector_type == "linear":
        init_linear_projector(model)
    processor = make_processor(
        tokenizer,
        make_image_processor(sizes.image_size),
        sizes.patch_size,
        strategy,
        has_cls=True,
        conv_template=spec.conv_template,
    )
    return model, processor


def _build_from_parts(spec: ModelSpec, dtype: Any):
    """Load a pretrained vision tower and LLM and join them with a fresh projector."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        CLIPVisionModel,
        LlavaForConditionalGeneration,
        SiglipVisionModel,
    )

    from quilt_llava.model.hf import hub_load
    from quilt_llava.model.llama_tokenizer import load_tokenizer

    tower_cls = CLIPVisionModel if spec.vision_tower_type == "clip" else SiglipVisionModel
    vision = hub_load(
        "vision tower", spec.vision_tower, lambda: tower_cls.from_pretrained(spec.vision_tower, dtype=dtype)
    )
    llm = hub_load("LLM", spec.llm, lambda: AutoModelForCausalLM.from_pretrained(spec.llm, dtype=dtype))
    tokenizer = load_tokenizer(spec.llm)
    image_token_id = add_image_token(tokenizer, spec.image_token)
    text_config = hub_load("LLM config", spec.llm, lambda: AutoConfig.from_pretrained(spec.llm))
    if getattr(text_config, "pad_token_id", None) is None:
        text_config.pad_token_id = tokenizer.pad_token_id
    vcfg = vision.config
    has_cls = spec.vision_tower_type == "clip"
    n_img = num_image_tokens(vcfg.image_size, vcfg.patch_size, spec.select_strategy, has_cls)
    config = llava_config(vcfg, text_config, spec, image_token_id, n_img)
    model = LlavaForConditionalGeneration(config)
    if dtype is not None:
        model = model.to(dtype)
    model.model.vision_tower.load_state_dict(vision.state_dict())
    # The causal LM's base model and head go into the llava wrapper's parts.
    base = llm.get_decoder() if hasattr(llm, "get_decoder") else llm.model
    model.model.language_model.load_state_dict(base.state_dict())
    model.lm_head.load_state_dict(llm.get_output_embeddings().state_dict())
    if spec.projector_type == "linear":
        init_linear_projector(model)
    if len(tokenizer) != model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    processor = make_processor(
        tokenizer,
        image_processor_for(spec.vision_tower, vcfg.image_size),
        vcfg.patch_size,
        spec.select_strategy,
        has_cls,
        conv_template=spec.conv_template,
    )
    return model, processor


__all__ = [
    "build_model_and_processor",
    "init_linear_projector",
    "llava_config",
    "num_image_tokens",
    "quilt_meta",
    "set_special_token_ids",
]
