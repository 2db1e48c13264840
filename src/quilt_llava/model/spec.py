"""What to assemble: model presets and their validated spec (the configuration half).

A :class:`ModelSpec` names a vision tower, an LLM, the projector type, the
vision-feature choice and the conversation template. Presets name the published
setups (hub ids, for users with network access) and a ``tiny`` preset built
entirely from config with a locally trained tokenizer, used by tests and the demo.
Assembly is in :mod:`quilt_llava.model.build`; this module imports neither torch
nor transformers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from quilt_llava.errors import ConfigError
from quilt_llava.model.conversation import DEFAULT_TEMPLATE, IMAGE_TOKEN, TEMPLATES

PROJECTOR_TYPES = ("linear", "mlp2x_gelu")
VISION_TOWER_TYPES = ("clip", "siglip")
SELECT_STRATEGIES = ("default", "full")


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
    conv_template: str = DEFAULT_TEMPLATE
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
                f"vision_feature_select_strategy '{self.vision_feature_select_strategy}' is not one of "
                f"{list(SELECT_STRATEGIES)}"
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
        tiny=TinySizes(
            image_size=336,
            patch_size=14,
            vision_hidden=1024,
            vision_layers=24,
            vision_heads=16,
            vision_intermediate=4096,
            text_hidden=2048,
            text_layers=22,
            text_heads=32,
            text_kv_heads=4,
            text_intermediate=5632,
            max_positions=4096,
        ),
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
