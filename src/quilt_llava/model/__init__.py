"""The LLaVA-style model in the Hugging Face shape: assembly, presets, conversation templates, checkpoint import.

Names are imported lazily so that ``quilt_llava.model.conversation`` (pure Python)
can be used without torch/transformers installed.
"""

from __future__ import annotations

from quilt_llava.lazy import lazy_exports

_EXPORTS = {
    "build_model_and_processor": "quilt_llava.model.build",
    "load_model_and_processor": "quilt_llava.model.checkpoint",
    "save_model_and_processor": "quilt_llava.model.checkpoint",
    "conv_template_of": "quilt_llava.model.checkpoint",
    "resolve_conv_template": "quilt_llava.model.checkpoint",
    "get_spec": "quilt_llava.model.spec",
    "ModelSpec": "quilt_llava.model.spec",
    "PRESETS": "quilt_llava.model.spec",
    "PROJECTOR_TYPES": "quilt_llava.model.spec",
    "prepare_image": "quilt_llava.model.processing",
    "get_template": "quilt_llava.model.conversation",
    "VICUNA_V1_CHAT_TEMPLATE": "quilt_llava.model.chat_template",
    "tensorize_record": "quilt_llava.model.tensorize",
    "tokenize_prompt": "quilt_llava.model.prompt",
    "encode_prompts": "quilt_llava.model.prompt",
    "load_tokenizer": "quilt_llava.model.llama_tokenizer",
    "convert_llava_checkpoint": "quilt_llava.model.convert",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
