"""Original-layout LLaVA checkpoints convert to HF layout with identical logits."""

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
    MistralConfig,
    MistralForCausalLM,
)

from quilt_llava.errors import ConfigError
from quilt_llava.model.checkpoint import conv_template_of
from quilt_llava.model.conversation import get_template
from quilt_llava.model.convert import ConvertOptions, convert_llava_checkpoint
from quilt_llava.model.processing import make_image_processor
from quilt_llava.model.tokenizer import train_tiny_tokenizer


def write_original(tmp_path, projector_type, arch="llama"):
    torch.manual_seed(0)
    tower_dir, src = tmp_path / "tower", tmp_path / "orig"
    vcfg = CLIPVisionConfig(
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=48,
    )
    tower = CLIPVisionModel(vcfg).eval()
    tower.save_pretrained(tower_dir)
    make_image_processor(32).save_pretrained(tower_dir)

    tok = train_tiny_tokenizer(with_image_token=False)
    tok.save_pretrained(src)
    config_cls, lm_cls = (LlamaConfig, LlamaForCausalLM) if arch == "llama" else (MistralConfig, MistralForCausalLM)
    lcfg = config_cls(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    llm = lm_cls(lcfg)
    state = {k: v.clone() for k, v in llm.state_dict().items()}  # model.*, lm_head.*
    if projector_type == "mlp2x_gelu":
        state["model.mm_projector.0.weight"] = torch.randn(64, 48) * 0.1
        state["model.mm_projector.0.bias"] = torch.randn(64) * 0.1
        state["model.mm_projector.2.weight"] = torch.randn(64, 64) * 0.1
        state["model.mm_projector.2.bias"] = torch.randn(64) * 0.1
    else:
        state["model.mm_projector.weight"] = torch.randn(64, 48) * 0.1
        state["model.mm_projector.bias"] = torch.randn(64) * 0.1
    save_file(state, str(src / "model.safetensors"))
    config = lcfg.to_dict() | {
        "architectures": ["LlavaLlamaForCausalLM" if arch == "llama" else "LlavaMistralForCausalLM"],
        "model_type": f"llava_{arch}",
        "mm_vision_tower": "wisdomik/QuiltNet-B-32",
        "mm_projector_type": projector_type,
        "mm_hidden_size": 48,
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "image_aspect_ratio": "pad",
    }
    (src / "config.json").write_text(json.dumps(config))
    return src, tower_dir, tower, lcfg, state, tok


def reference_logits(state, lcfg, tower, tok, prompt, pixel_values, projector_type):
    """The original LLaVA forward, written from the raw weights: features spliced at one placeholder."""
    with torch.no_grad():
        feats = tower(pixel_values, output_hidden_states=True).hidden_states[-2][:, 1:]  # (1, 16, 48) patches only
        if projector_type == "mlp2x_gelu":
            h = F.gelu(feats @ state["model.mm_projector.0.weight"].T + state["model.mm_projector.0.bias"])
            img = h @ state["model.mm_projector.2.weight"].T + state["model.mm_projector.2.bias"]
        else:
            img = feats @ state["model.mm_projector.weight"].T + state["model.mm_projector.bias"]
        before, after = prompt.split("<image>")
        ids_before = [tok.bos_token_id, *tok(before, add_special_tokens=False).input_ids]
        ids_after = tok(after, add_special_tokens=False).input_ids
        emb = state["model.embed_tokens.weight"]
        embeds = torch.cat([emb[ids_before], img[0], emb[ids_after]])[None]  # (1, seq, 64)
        llm = (LlamaForCausalLM if isinstance(lcfg, LlamaConfig) else MistralForCausalLM)(lcfg)
        llm.load_state_dict({k: v for k, v in state.items() if "mm_projector" not in k})
        return llm.eval()(inputs_embeds=embeds).logits


@pytest.mark.parametrize("projector_type", ["mlp2x_gelu", "linear"])
def test_converted_logits_equal_reference(tmp_path, projector_type):
    src, tower_dir, tower, lcfg, state, tok = write_original(tmp_path, projector_type)
    dst = tmp_path / "hf"
    info = convert_llava_checkpoint(ConvertOptions(str(src), str(dst), vision_tower=str(tower_dir)))
    assert info["vocab_size"] == len(tok) + 1  # <image> added
    model = LlavaForConditionalGeneration.from_pretrained(dst).eval()
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(dst)
    prompt = get_template("vicuna_v1").prompt("What is shown?")
    image = Image.new("RGB", (32, 32), (120, 30, 160))
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    with torch.no_grad():
        got = model(**inputs).logits[..., : len(tok)]  # the added <image> row is not in the original vocab
    want = reference_logits(state, lcfg, tower, tok, prompt, inputs["pixel_values"], projector_type)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    meta = json.loads((dst / "quilt_llava.json").read_text())
    assert meta["conv_template"] == "vicuna_v1" and meta["projector_type"] == projector_type


def test_bad_original_config_lists_all_problems(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    (src / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlavaMptForCausalLM"],
                "mm_projector_type": "mlp3x_gelu",
                "mm_vision_select_feature": "x",
            }
        )
    )
    with pytest.raises(ConfigError) as err:
        convert_llava_checkpoint(ConvertOptions(str(src), str(tmp_path / "out")))
    assert len(err.value.problems) == 4


def test_mistral_checkpoint_converts_with_mistral_instruct(tmp_path):
    """LLaVA-Med v1.5 is LlavaMistralForCausalLM: converted with the [INST] template, recorded in quilt_llava.json."""
    from transformers import AutoProcessor

    src, tower_dir, tower, lcfg, state, tok = write_original(tmp_path, "mlp2x_gelu", arch="mistral")
    dst = tmp_path / "hf"
    info = convert_llava_checkpoint(ConvertOptions(str(src), str(dst), vision_tower=str(tower_dir)))
    assert info["architecture"] == "LlavaMistralForCausalLM" and info["conv_template"] == "mistral_instruct"
    meta = json.loads((dst / "quilt_llava.json").read_text())
    assert meta["conv_template"] == "mistral_instruct"
    assert conv_template_of(dst) == "mistral_instruct"
    model = LlavaForConditionalGeneration.from_pretrained(dst).eval()
    assert model.config.text_config.model_type == "mistral"
    processor = AutoProcessor.from_pretrained(dst)
    msgs = [{"role": "user", "content": "<image>\nWhat is shown?"}]
    prompt = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert (
        prompt == get_template("mistral_instruct").prompt("What is shown?") == "[INST] <image>\nWhat is shown? [/INST]"
    )
    image = Image.new("RGB", (32, 32), (120, 30, 160))
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    with torch.no_grad():
        got = model(**inputs).logits[..., : len(tok)]
    want = reference_logits(state, lcfg, tower, tok, prompt, inputs["pixel_values"], "mlp2x_gelu")
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    forced = tmp_path / "forced"
    convert_llava_checkpoint(
        ConvertOptions(str(src), str(forced), vision_tower=str(tower_dir), conv_template="vicuna_v1")
    )
    assert conv_template_of(forced) == "vicuna_v1"
