import json
import time

import pytest
import torch
from PIL import Image

from quilt_llava.errors import ConfigError
from quilt_llava.model import (
    build_model_and_processor,
    conv_template_of,
    get_template,
    load_model_and_processor,
    prepare_image,
)
from quilt_llava.model.checkpoint import save_model_and_processor
from quilt_llava.model.prompt import encode_prompts
from quilt_llava.model.spec import get_spec
from quilt_llava.model.tokenizer import train_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny():
    return build_model_and_processor("tiny", seed=0)


def test_tokenizer_is_fast_and_deterministic():
    t0 = time.perf_counter()
    a = train_tiny_tokenizer()
    elapsed = time.perf_counter() - t0
    b = train_tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    assert 1000 <= len(a) <= 2048
    assert elapsed < 2.0
    for tok in ("<s>", "</s>", "<unk>", "<pad>", "<image>"):
        assert tok in a.get_vocab()
    ids = a("USER: <image>\nIs it red? ASSISTANT: Yes.</s>").input_ids
    assert ids[0] == a.bos_token_id
    assert a.convert_tokens_to_ids("<image>") in ids and ids[-1] == a.eos_token_id


def test_tiny_config_shape(tiny):
    model, processor = tiny
    cfg = model.config
    assert cfg.vision_config.image_size == 32 and cfg.vision_config.patch_size == 8
    assert cfg.text_config.hidden_size == 64 and cfg.text_config.num_hidden_layers == 2
    assert cfg.vision_feature_layer == -2 and cfg.vision_feature_select_strategy == "default"
    assert cfg.projector_hidden_act == "gelu"
    assert cfg.image_token_id == processor.tokenizer.convert_tokens_to_ids("<image>")
    assert model.get_input_embeddings().weight.shape[0] == len(processor.tokenizer)
    assert processor.tokenizer.pad_token == "<pad>"


def test_same_seed_same_weights():
    a, _ = build_model_and_processor("tiny", seed=0)
    b, _ = build_model_and_processor("tiny", seed=0)
    c, _ = build_model_and_processor("tiny", seed=1)
    wa = a.model.multi_modal_projector.linear_1.weight
    assert torch.equal(wa, b.model.multi_modal_projector.linear_1.weight)
    assert not torch.equal(wa, c.model.multi_modal_projector.linear_1.weight)


def test_save_reload_generate(tiny, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert conv_template_of(tmp_path) == "vicuna_v1"
    model2, processor2 = load_model_and_processor(
        tmp_path, dtype=None, device="cpu", load_in_4bit=False, load_in_8bit=False
    )
    img = prepare_image(Image.new("RGB", (48, 20), (180, 40, 90)), processor2)
    assert img.size == (48, 48)
    # the release's padding: the image processor's mean colour (CLIP's), not the image's own
    assert img.getpixel((0, 0)) == (122, 116, 104) and img.getpixel((24, 24)) == (180, 40, 90)
    prompt = get_template("vicuna_v1").prompt("Is the blob red?")
    inputs = encode_prompts(processor2, [prompt], [img])
    # 16 patch tokens (32/8)^2, CLS dropped by the "default" strategy.
    assert (inputs["input_ids"] == model2.config.image_token_id).sum().item() == 16
    out = model2.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    with torch.no_grad():
        a = model(**inputs).logits
        b = model2(**inputs).logits
    torch.testing.assert_close(a, b)


def test_quilt_json_written_and_read(tiny, tmp_path):
    model, processor = tiny
    save_model_and_processor(model, processor, tmp_path, extra_meta={"conv_template": "plain"})
    meta = json.loads((tmp_path / "quilt_llava.json").read_text())
    assert meta["conv_template"] == "plain" and meta["projector_type"] == "mlp2x_gelu"
    assert conv_template_of(tmp_path) == "plain"
    assert conv_template_of(tmp_path / "missing") == "vicuna_v1"


def test_failed_save_leaves_no_partial_checkpoint(tiny, tmp_path, monkeypatch):
    """A save that dies after the weights are written leaves neither them nor its staging folder."""
    model, processor = tiny
    out = tmp_path / "ckpt"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(processor, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        save_model_and_processor(model, processor, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_model_and_processor(model, processor, out)  # a later save over the same folder works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert (out / "quilt_llava.json").exists() and (out / "config.json").exists()
    assert (out / "model.safetensors").exists() and (out / "tokenizer_config.json").exists()
    assert load_model_and_processor(out)[0].config.image_token_id == model.config.image_token_id


def test_linear_projector_is_one_affine_map_and_reloads(tmp_path):
    model, _ = build_model_and_processor("tiny", seed=0, projector_type="linear")
    proj = model.model.multi_modal_projector
    assert model.config.projector_hidden_act == "linear"
    x = torch.randn(3, model.config.vision_config.hidden_size)
    with torch.no_grad():
        expected = x @ proj.linear_1.weight.T + proj.linear_1.bias
        torch.testing.assert_close(proj(x), expected)
    model.save_pretrained(tmp_path)
    from transformers import LlavaForConditionalGeneration

    again = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(again.model.multi_modal_projector(x), expected)


def test_presets_validate():
    for name in ("quilt-llava-v1.5-7b", "llava-v1.5-7b"):
        spec = get_spec(name)
        assert spec.projector_type == "mlp2x_gelu" and spec.vision_feature_layer == -2
        assert spec.select_strategy == "default"
    assert get_spec("quilt-llava-v1.5-7b").vision_tower == "wisdomik/QuiltNet-B-32"
    with pytest.raises(ConfigError) as err:
        get_spec("llava-v1.5-7b", projector_type="mlp3x", conv_template="nope")
    assert "projector_type" in str(err.value) and "conv_template" in str(err.value)
    with pytest.raises(ConfigError, match="unknown model preset"):
        get_spec("gpt5")


@pytest.mark.parametrize("tower_type", ["clip", "siglip"])
def test_assemble_from_local_vision_tower_and_llm(tmp_path, tower_type):
    """Non-tiny specs load a pretrained tower and LLM (local stand-ins here) and add a fresh projector."""
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        LlamaConfig,
        LlamaForCausalLM,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    from quilt_llava.model.processing import make_image_processor

    torch.manual_seed(0)
    vkw = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    tower = (
        CLIPVisionModel(CLIPVisionConfig(**vkw))
        if tower_type == "clip"
        else SiglipVisionModel(SiglipVisionConfig(**vkw))
    )
    tower.save_pretrained(tmp_path / "tower")
    make_image_processor(32).save_pretrained(tmp_path / "tower")
    tok = train_tiny_tokenizer(with_image_token=False)
    llm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=256,
        )
    )
    llm.save_pretrained(tmp_path / "llm")
    tok.save_pretrained(tmp_path / "llm")
    model, processor = build_model_and_processor(
        "llava-v1.5-7b", vision_tower=str(tmp_path / "tower"), llm=str(tmp_path / "llm"), vision_tower_type=tower_type
    )
    assert len(processor.tokenizer) == len(tok) + 1 == model.get_input_embeddings().weight.shape[0]
    torch.testing.assert_close(model.get_input_embeddings().weight[: len(tok)], llm.get_input_embeddings().weight)
    torch.testing.assert_close(model.lm_head.weight[: len(tok)], llm.lm_head.weight)
    strategy = "default" if tower_type == "clip" else "full"
    assert model.config.vision_feature_select_strategy == strategy
    inputs = processor(
        images=[Image.new("RGB", (32, 32), (10, 200, 30))],
        text=[get_template("vicuna_v1").prompt("What is it?")],
        return_tensors="pt",
    )
    assert (inputs["input_ids"] == model.config.image_token_id).sum().item() == 16
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()
    save_model_and_processor(model, processor, tmp_path / "out")
    assert (
        json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())["tokenizer_class"]
        == "PreTrainedTokenizerFast"
    )
    again, _ = load_model_and_processor(tmp_path / "out")
    assert again.config.vision_feature_select_strategy == strategy
