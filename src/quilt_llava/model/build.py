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

Presets name the published setups (hub ids, for users with network access) and a
``tiny`` preset built entirely from config with a locally trained tokenizer, used
by tests and the demo.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from typing import Any

from quilt_llava.errors import ConfigError
from quilt_llava.model.conversation import IMAGE_TOKEN, TEMPLATES

log = logging.getLogger(__name__)

PROJECTOR_TYPES = ("linear", "mlp2x_gelu")
VISION_TOWER_TYPES = ("clip", "siglip")
SELECT_STRATEGIES = ("default", "full")
QUILT_JSON = "quilt_llava.json"


@dataclass(frozen=True)
class TinySizes:
    """Dimensions of the from-config ``tiny`` model (tests, demo, benchmarks)."""

    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 176
    text_kv_heads: int | None = None  # None: same as text_heads
    vision_intermediate: int | None = None  # None: 2 x vision_hidden
    vocab_size: int = 1024
    max_positions: int = 1024


@dataclass(frozen=True)
class ModelSpec:
    """What to assemble.

    ``vision_tower`` / ``llm``: hub id or local directory; ``""`` means "build from
    config" (only the ``tiny`` preset does that). ``vision_tower_type`` says how to
    load the tower (``clip`` or ``siglip``) and decides the default feature
    strategy: CLIP drops its CLS token (``default``), SigLIP has none (``full``).
    """

    name: str
    vision_tower: str = ""
    llm: str = ""
    vision_tower_type: str = "clip"
    projector_type: str = "mlp2x_gelu"
    vision_feature_layer: int = -2
    vision_feature_select_strategy: str | None = None
    conv_template: str = "vicuna_v1"
    image_token: str = IMAGE_TOKEN
    tiny: TinySizes | None = None
    description: str = ""

    def validate(self) -> None:
        problems: list[str] = []
        if self.projector_type not in PROJECTOR_TYPES:
            problems.append(f"projector_type '{self.projector_type}' is not one of {list(PROJECTOR_TYPES)}")
        if self.vision_tower_type not in VISION_TOWER_TYPES:
            problems.append(f"vision_tower_type '{self.vision_tower_type}' is not one of {list(VISION_TOWER_TYPES)}")
        if self.vision_feature_select_strategy not in (None, *SELECT_STRATEGIES):
            problems.append(
                f"vision_feature_select_strategy '{self.vision_feature_select_strategy}' is not one of {list(SELECT_STRATEGIES)}"
            )
        if self.conv_template not in TEMPLATES:
            problems.append(f"conv_template '{self.conv_template}' is not one of {sorted(TEMPLATES)}")
        if self.tiny is None and (not self.vision_tower or not self.llm):
            problems.append("vision_tower and llm must both be set (hub id or local directory) unless the spec is tiny")
        if not isinstance(self.vision_feature_layer, int) or self.vision_feature_layer == 0:
            problems.append("vision_feature_layer must be a non-zero int (negative counts from the last layer)")
        if problems:
            raise ConfigError(problems, source=f"model spec '{self.name}'")

    @property
    def select_strategy(self) -> str:
        if self.vision_feature_select_strategy is not None:
            return self.vision_feature_select_strategy
        return "default" if self.vision_tower_type == "clip" else "full"


PRESETS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(
        name="tiny",
        tiny=TinySizes(),
        description="Random-init CLIP-style tower + Llama-style LLM built from config; local BPE tokenizer.",
    ),
    # Random-init ~1.3B model for throughput/MFU benchmarks on a GPU: a ViT-L/14-336-sized tower
    # and a TinyLlama-1.1B-sized LLM (the small local tokenizer keeps the vocabulary at 1024).
    "bench-1b": ModelSpec(
        name="bench-1b",
        tiny=TinySizes(image_size=336, patch_size=14, vision_hidden=1024, vision_layers=24, vision_heads=16,
                       vision_intermediate=4096, text_hidden=2048, text_layers=22, text_heads=32, text_kv_heads=4,
                       text_intermediate=5632, max_positions=4096),
        description="Random-init benchmark model: ViT-L/14-336-sized tower + 1.1B Llama-style LLM.",
    ),
    "quilt-llava-v1.5-7b": ModelSpec(
        name="quilt-llava-v1.5-7b",
        vision_tower="wisdomik/QuiltNet-B-32",
        llm="lmsys/vicuna-7b-v1.5",
        description="Quilt-LLaVA v1.5: pathology CLIP QuiltNet-B-32 (224 px, patch 32) + Vicuna-7B v1.5.",
    ),
    "llava-v1.5-7b": ModelSpec(
        name="llava-v1.5-7b",
        vision_tower="openai/clip-vit-large-patch14-336",
        llm="lmsys/vicuna-7b-v1.5",
        description="LLaVA-1.5 style: CLIP ViT-L/14-336 + Vicuna-7B v1.5.",
    ),
    "llava-v1.5-13b": ModelSpec(
        name="llava-v1.5-13b",
        vision_tower="openai/clip-vit-large-patch14-336",
        llm="lmsys/vicuna-13b-v1.5",
        description="LLaVA-1.5 style: CLIP ViT-L/14-336 + Vicuna-13B v1.5.",
    ),
}


def get_spec(name: str, **overrides: Any) -> ModelSpec:
    """A preset by name with field overrides (e.g. ``vision_tower="/local/clip"``), validated."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset '{name}'; choose one of {sorted(PRESETS)}")
    known = set(ModelSpec.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError([f"unknown model spec field '{k}'; valid: {sorted(known)}" for k in unknown])
    spec = replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    spec.validate()
    return spec


# --------------------------------------------------------------------------- processor


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


def make_processor(tokenizer, image_processor, patch_size: int, select_strategy: str, has_cls: bool,
                   conv_template: str = "vicuna_v1"):
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
    added = tokenizer.add_special_tokens({"additional_special_tokens": [image_token]},
                                         replace_extra_special_tokens=False) if image_token not in tokenizer.get_vocab() else 0
    if added:
        log.info("added %s to the tokenizer", image_token)
    if tokenizer.pad_token is None:
        # Llama/Vicuna ship without a pad token; unk is what LLaVA used for padding.
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    return tokenizer.convert_tokens_to_ids(image_token)


def init_linear_projector(model) -> None:
    """Make ``linear_2`` the identity so the two-layer module is one linear map (see module doc)."""
    import torch

    proj = model.model.multi_modal_projector
    with torch.no_grad():
        proj.linear_2.weight.copy_(torch.eye(proj.linear_2.weight.shape[0], dtype=proj.linear_2.weight.dtype))
        if proj.linear_2.bias is not None:
            proj.linear_2.bias.zero_()


# --------------------------------------------------------------------------- build


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
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.bos_token_id = processor.tokenizer.bos_token_id
    # Kept in config.json too, so a plain ``model.save_pretrained`` carries it.
    model.config.quilt_llava = quilt_meta(spec)
    return model, processor


def quilt_meta(spec: ModelSpec) -> dict[str, Any]:
    return {
        "format_version": 1,
        "conv_template": spec.conv_template,
        "projector_type": spec.projector_type,
        "preset": spec.name,
        "vision_tower": spec.vision_tower,
        "llm": spec.llm,
    }


def _llava_config(vision_config, text_config, spec: ModelSpec, image_token_id: int, image_seq_length: int):
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


def _num_image_tokens(image_size: int, patch_size: int, strategy: str, has_cls: bool) -> int:
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
    n_img = _num_image_tokens(sizes.image_size, sizes.patch_size, strategy, has_cls=True)
    config = _llava_config(vision_config, text_config, spec, image_token_id, n_img)
    model = LlavaForConditionalGeneration(config)
    if spec.projector_type == "linear":
        init_linear_projector(model)
    processor = make_processor(tokenizer, make_image_processor(sizes.image_size), sizes.patch_size, strategy, has_cls=True,
                               conv_template=spec.conv_template)
    return model, processor


def _build_from_parts(spec: ModelSpec, dtype: Any):
    """Load a pretrained vision tower and LLM and join them with a fresh projector."""
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModelForCausalLM,
        CLIPVisionModel,
        LlavaForConditionalGeneration,
        SiglipVisionModel,
    )

    from quilt_llava.model.hf import hub_load
    from quilt_llava.model.llama_tokenizer import load_tokenizer

    tower_cls = CLIPVisionModel if spec.vision_tower_type == "clip" else SiglipVisionModel
    vision = hub_load("vision tower", spec.vision_tower, lambda: tower_cls.from_pretrained(spec.vision_tower, dtype=dtype))
    llm = hub_load("LLM", spec.llm, lambda: AutoModelForCausalLM.from_pretrained(spec.llm, dtype=dtype))
    tokenizer = load_tokenizer(spec.llm)
    image_token_id = add_image_token(tokenizer, spec.image_token)
    text_config = hub_load("LLM config", spec.llm, lambda: AutoConfig.from_pretrained(spec.llm))
    if getattr(text_config, "pad_token_id", None) is None:
        text_config.pad_token_id = tokenizer.pad_token_id
    vcfg = vision.config
    has_cls = spec.vision_tower_type == "clip"
    n_img = _num_image_tokens(vcfg.image_size, vcfg.patch_size, spec.select_strategy, has_cls)
    config = _llava_config(vcfg, text_config, spec, image_token_id, n_img)
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
    try:
        image_processor = AutoImageProcessor.from_pretrained(spec.vision_tower)
    except (OSError, ValueError):
        # Vision repos saved from open_clip may lack a preprocessor config; CLIP defaults then.
        image_processor = make_image_processor(vcfg.image_size)
    processor = make_processor(tokenizer, image_processor, vcfg.patch_size, spec.select_strategy, has_cls,
                               conv_template=spec.conv_template)
    return model, processor


# --------------------------------------------------------------------------- save / load


def save_model_and_processor(model, processor, out_dir: str | os.PathLike[str], extra_meta: dict[str, Any] | None = None) -> None:
    """Save weights, processor and ``quilt_llava.json`` in the Hugging Face layout."""
    from quilt_llava.files import write_json

    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    make_tokenizer_config_portable(out_dir)
    meta = model_meta(model)
    meta.update(extra_meta or {})
    write_json(os.path.join(out_dir, QUILT_JSON), meta)


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
    return dict(meta) if isinstance(meta, dict) else {"format_version": 1, "conv_template": "vicuna_v1"}


def write_quilt_meta(model_dir: str | os.PathLike[str], **meta: Any) -> None:
    from quilt_llava.files import write_json

    path = os.path.join(model_dir, QUILT_JSON)
    current = _read_meta(model_dir)
    current.update(meta)
    current.setdefault("format_version", 1)
    write_json(path, current)


def _read_meta(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
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
    return str(_read_meta(model_dir).get("conv_template", "vicuna_v1"))


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

    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = _resolve_dtype(dtype)
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
    meta = _read_meta(model_dir)
    if meta:
        model.config.quilt_llava = meta
    if processor.tokenizer.pad_token_id is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model, processor


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
            llm_int8_skip_modules=["vision_tower", "multi_modal_projector", "lm_head"],
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["vision_tower", "multi_modal_projector", "lm_head"])


def _resolve_dtype(dtype: Any):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        return "auto"
    if dtype not in names:
        raise ConfigError(f"unknown dtype '{dtype}'; choose one of {sorted(names)} or 'auto'")
    return names[dtype]


def spec_dict(spec: ModelSpec) -> dict[str, Any]:
    return asdict(spec)


__all__ = [
    "PRESETS",
    "PROJECTOR_TYPES",
    "ModelSpec",
    "TinySizes",
    "build_model_and_processor",
    "conv_template_of",
    "get_spec",
    "load_model_and_processor",
    "save_model_and_processor",
    "spec_dict",
    "write_quilt_meta",
]
