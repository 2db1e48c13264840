"""Released-model fidelity on the real LLaMA/Vicuna vocabulary: the tokens, masks, pixels and weights the
released models saw.

Every expected value here is written from the rules of SPEC.md section C and computed with
``sentencepiece`` itself (and plain PIL / torch), never with the code under test:

- prompt layout: ``<system> USER: <image>\\n<question> ASSISTANT: <answer></s>USER: ...`` (vicuna_v1),
  ``<image><caption>\\n`` (plain), ``[INST] <image>\\n<question> [/INST] <answer> </s>`` (mistral_instruct);
  a turn holding ``<image>`` is laid out image first (tag removed, text stripped, ``<image>\\n`` in front);
- tokens: the prompt split at ``<image>``; each piece through sentencepiece on its own (BOS on the first
  piece only), ``</s>`` in the text being the end-of-sequence id as the release's slow tokenizer splits it;
- loss: only the assistant answers and their end-of-turn text, located by tokenizing up to the answer.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from quilt_llava.model.conversation import get_template
from quilt_llava.model.llama_tokenizer import load_tokenizer
from quilt_llava.model.tensorize import IGNORE_INDEX, tensorize_all, tensorize_record

spm = pytest.importorskip("sentencepiece", reason="sentencepiece is in the train extra")

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
N_IMG = 3  # image tokens per image in these tests (the HF model's expansion of the release's one placeholder)
CLIP_MEAN_RGB = (122, 116, 104)  # SPEC C: tuple(int(m * 255) for m in CLIP's image_mean)


@pytest.fixture(scope="module")
def sp(llama_vocab):
    return spm.SentencePieceProcessor(model_file=str(llama_vocab / "tokenizer.model"))


@pytest.fixture(scope="module")
def tok(llama_vocab, tmp_path_factory):
    from quilt_llava.model.processing import add_image_token

    folder = tmp_path_factory.mktemp("vicuna_tok")
    (folder / "tokenizer.model").write_bytes((llama_vocab / "tokenizer.model").read_bytes())
    tokenizer = load_tokenizer(folder)
    add_image_token(tokenizer)
    return tokenizer


# --------------------------------------------------------------------------- the reference, from SPEC.md


def image_first(text: str) -> str:
    if "<image>" not in text:
        return text
    return ("<image>\n" + text.replace("<image>", "").strip()).strip()


def vicuna_chunks(turns: list[str]) -> list[tuple[str, bool]]:
    chunks = [(SYSTEM + " ", False)]
    for i in range(0, len(turns), 2):
        chunks.append((f"USER: {image_first(turns[i])} ASSISTANT:", False))
        chunks.append((f" {turns[i + 1]}</s>", True))
    return chunks


def mistral_chunks(turns: list[str]) -> list[tuple[str, bool]]:
    chunks = []
    for i in range(0, len(turns), 2):
        chunks.append((f"[INST] {image_first(turns[i])} [/INST]", False))
        chunks.append((f" {turns[i + 1]} </s>", True))
    return chunks


def plain_chunks(turns: list[str]) -> list[tuple[str, bool]]:
    return [("<image>", False), (turns[1] + "\n", True)]


def reference(sp, image_id: int, chunks: list[tuple[str, bool]], n_img: int = N_IMG) -> tuple[list[int], list[int]]:
    """ids and labels of ``chunks`` by SPEC C's rules, with sentencepiece (see module doc); the image is
    ``n_img`` copies of ``image_id`` (1: the release's single placeholder)."""
    text = "".join(t for t, _ in chunks)
    trainable = [flag for t, flag in chunks for _ in t]  # per character
    ids, labels = [1], [IGNORE_INDEX]
    pos = 0
    for k, piece in enumerate(text.split("<image>")):
        if k:
            ids += [image_id] * n_img
            labels += [IGNORE_INDEX] * n_img
            pos += len("<image>")
        for m, run in enumerate(piece.split("</s>")):
            if m:
                ids.append(2)
                labels.append(2 if trainable[pos] else IGNORE_INDEX)
                pos += len("</s>")
            if not run:
                continue
            run_ids = sp.encode(run)
            flags = trainable[pos : pos + len(run)]
            start = flags.index(True) if True in flags else len(run)
            assert all(flags[start:]), "a trainable stretch ends inside a run of text"
            head = sp.encode(run[:start]) if start else []
            assert run_ids[: len(head)] == head, f"no token boundary where the answer starts in {run!r}"
            ids += run_ids
            labels += [IGNORE_INDEX] * len(head) + run_ids[len(head) :]
            pos += len(run)
    return ids, labels


# --------------------------------------------------------------------------- records


QUESTIONS = [
    "<image>\nWhat does this region show?",
    "What staining is seen here?\n<image>",
    "  <image>  Describe the glands.  ",
    "Is there   necrosis? <image> Answer yes or no.",
    "<image>\n\nWhat is the diagnosis?\n",
    "Wie sieht das Stroma aus? <image>",
]
ANSWERS = [
    "Brown membranous DAB staining of tumour glands.",
    "yes",
    "The nuclei are enlarged, with prominent nucleoli (grade 3).",
    "Normal histology of the colon; no dysplasia.",
    "Ki-67 ~40%\nHER2 3+",
    "Ödem und Fibrose – keine Nekrose.",
]


def vicuna_records():
    out = []
    for i, q in enumerate(QUESTIONS):
        a = ANSWERS[i]
        out.append(
            (
                f"v{i}",
                {
                    "id": f"v{i}",
                    "image": "a.png",
                    "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}],
                },
                [q, a],
            )
        )
    multi = ["<image>\nWhat is shown?", "Glands.", "Any mitoses?", "A few, 2 per HPF.", "Grade?", "Grade 2."]
    out.append(
        (
            "multi",
            {
                "id": "multi",
                "image": "a.png",
                "conversations": [{"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(multi)],
            },
            multi,
        )
    )
    text_only = ["What is a granuloma?", "A nodular collection of epithelioid histiocytes.", "Caseating?", "Sometimes."]
    out.append(
        (
            "text",
            {
                "id": "text",
                "conversations": [
                    {"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(text_only)
                ],
            },
            text_only,
        )
    )
    return out


@pytest.mark.parametrize("name,chunks_of", [("vicuna_v1", vicuna_chunks), ("mistral_instruct", mistral_chunks)])
def test_conversation_ids_and_labels_are_the_releases(sp, tok, name, chunks_of):
    image_id = tok.convert_tokens_to_ids("<image>")
    for rid, rec, turns in vicuna_records():
        sample = tensorize_record(rec, tok, get_template(name), N_IMG, image_id, 4096)
        assert sample.ok, (rid, sample.problem)
        want_ids, want_labels = reference(sp, image_id, chunks_of(turns))
        assert sample.input_ids == want_ids, rid
        assert sample.labels == want_labels, rid


def test_text_after_the_image_starts_a_fresh_piece(sp, tok):
    """SPEC C's example: the tokens after the image are '▁', '<0x0A>', ... rather than '<0x0A>', ..."""
    image_id = tok.convert_tokens_to_ids("<image>")
    rec = {
        "id": "x",
        "image": "a.png",
        "conversations": [{"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "Glands."}],
    }
    sample = tensorize_record(rec, tok, get_template("vicuna_v1"), N_IMG, image_id, 4096)
    after = sample.input_ids[sample.input_ids.index(image_id) + N_IMG :]
    assert [sp.id_to_piece(i) for i in after[:2]] == ["▁", "<0x0A>"]


def test_plain_captions_are_the_releases(sp, tok):
    image_id = tok.convert_tokens_to_ids("<image>")
    captions = [
        "Tumour glands with brown membranous staining [0.43, 0.63, 0.84, 0.69].",
        "  leading blanks and a\nnewline",
        "naïve café — 细胞核",
        "x",
    ]
    for i, caption in enumerate(captions):
        rec = {
            "id": f"p{i}",
            "image": "a.png",
            "conversations": [
                {"from": "human", "value": "Describe the image briefly.\n<image>"},
                {"from": "gpt", "value": caption},
            ],
        }
        sample = tensorize_record(rec, tok, get_template("plain"), N_IMG, image_id, 4096)
        assert sample.ok, sample.problem
        want_ids, want_labels = reference(sp, image_id, plain_chunks(["<image>", caption]))
        assert (sample.input_ids, sample.labels) == (want_ids, want_labels), caption
        # the caption starts with a '▁' piece (its own sentencepiece run)
        assert sp.id_to_piece(sample.input_ids[1 + N_IMG]).startswith("▁")


def test_records_the_release_masks_out_are_counted_and_skipped(tok):
    image_id = tok.convert_tokens_to_ids("<image>")

    def rec(rid, answer):
        return {
            "id": rid,
            "image": "a.png",
            "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": answer}],
        }

    records = [
        rec("ok", "Glands."),
        rec("empty", ""),
        rec("blank", "   "),
        rec("eos", "Yes.</s> And more."),
        rec("ok2", "Stroma."),
    ]
    template = get_template("vicuna_v1")
    samples, report = tensorize_all(records, tok, template, N_IMG, image_id, 4096, max_mismatch_fraction=1.0)
    assert [s.id for s in samples if s.ok] == ["ok", "ok2"]
    assert report.summary()["skipped"] == {"empty_answer": 2, "eos_in_answer": 1}
    assert report.mismatched_ids == ["empty", "blank", "eos"]
    kept, report = tensorize_all(records, tok, template, N_IMG, image_id, 4096, keep_masked_out=True)
    assert all(s.ok for s in kept) and report.kept_masked_out == {"empty_answer": 2, "eos_in_answer": 1}
    empty = kept[1]
    # kept: trained on the end of the (empty) turn alone, " </s>" = '▁' and </s>
    assert [t for t in empty.labels if t != IGNORE_INDEX] == [tok.convert_tokens_to_ids("▁"), 2]
    # plain (stage 1) follows the same policy
    _, report = tensorize_all(
        [rec("e", "")], tok, get_template("plain"), N_IMG, image_id, 4096, max_mismatch_fraction=1.0
    )
    assert report.summary()["skipped"] == {"empty_answer": 1}


def test_a_mask_that_cannot_be_aligned_is_skipped(tok):
    """An answer holding the assistant separator splits the release's round in three: the release masks
    the whole record out (its counts do not add up); we count and skip it."""
    image_id = tok.convert_tokens_to_ids("<image>")
    rec = {
        "id": "sep",
        "image": "a.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat?"},
            {"from": "gpt", "value": "Then ASSISTANT: said so."},
        ],
    }
    sample = tensorize_record(rec, tok, get_template("vicuna_v1"), N_IMG, image_id, 4096)
    assert not sample.ok and sample.kind == "unaligned"
    kept = tensorize_record(rec, tok, get_template("vicuna_v1"), N_IMG, image_id, 4096, keep_masked_out=True)
    assert kept.ok and kept.kind == "unaligned"
    assert tok.decode([t for t in kept.labels if t != IGNORE_INDEX]) == "Then ASSISTANT: said so.</s>"


# --------------------------------------------------------------------------- inference: eval and chat


def test_generation_prompt_ids_are_the_releases(sp, tok):
    """Evaluation and chat encode through the same function; the generation prompt is the release's."""
    from quilt_llava.model.processing import make_image_processor, make_processor
    from quilt_llava.model.prompt import encode_prompts

    image_id = tok.convert_tokens_to_ids("<image>")
    processor = make_processor(
        tok, make_image_processor(16), patch_size=8, select_strategy="default", has_cls=True
    )  # (16 / 8)^2 = 4 patch tokens (CLS dropped)
    questions = ["What does this region show?", "Is there necrosis? Answer yes or no.", "  Wie?  "]
    prompts = [get_template("vicuna_v1").prompt(q.strip()) for q in questions]
    batch = encode_prompts(processor, prompts, None, padding_side="left")
    for q, row, mask in zip(questions, batch["input_ids"].tolist(), batch["attention_mask"].tolist()):
        want, _ = reference(sp, image_id, [(f"{SYSTEM} USER: <image>\n{q.strip()} ASSISTANT:", False)], n_img=4)
        assert [t for t, m in zip(row, mask) if m] == want
        assert row[: len(row) - len(want)] == [tok.pad_token_id] * (len(row) - len(want))  # left padding
    # With this tokenizer the stock LlavaProcessor (what vLLM and `processor(text=...)` users run) agrees:
    # sentencepiece's "▁" goes in front of every run of text between special tokens, <image> included.
    from PIL import Image

    for q, prompt in zip(questions, prompts):
        want, _ = reference(sp, image_id, [(f"{SYSTEM} USER: <image>\n{q.strip()} ASSISTANT:", False)], n_img=4)
        assert processor(images=[Image.new("RGB", (16, 16))], text=[prompt]).input_ids[0] == want


# --------------------------------------------------------------------------- a 4.31-era checkpoint, end to end


def write_431_checkpoint(folder, tower_dir, extra_keys=()):
    """An original-layout LLaVA checkpoint as transformers 4.31 saved it: fp16 ``pytorch_model-0000x-of-00002.bin``
    shards with an index, ``rotary_emb.inv_freq`` buffers in every layer, and only ``tokenizer.model``."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from quilt_llava.model.processing import make_image_processor

    torch.manual_seed(0)
    vcfg = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=16,
        patch_size=8,
        projection_dim=32,
    )
    tower = CLIPVisionModel(vcfg).eval()
    tower.save_pretrained(tower_dir)
    make_image_processor(16).save_pretrained(tower_dir)
    lcfg = LlamaConfig(
        vocab_size=32000,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    llm = LlamaForCausalLM(lcfg)
    state = {k: v.to(torch.float16).clone() for k, v in llm.state_dict().items()}
    state["model.mm_projector.0.weight"] = (torch.randn(32, 32) * 0.2).half()
    state["model.mm_projector.0.bias"] = (torch.randn(32) * 0.1).half()
    state["model.mm_projector.2.weight"] = (torch.randn(32, 32) * 0.2).half()
    state["model.mm_projector.2.bias"] = (torch.randn(32) * 0.1).half()
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 16, 2).float() / 16))
    for i in range(lcfg.num_hidden_layers):
        state[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv_freq.clone()
    for key in extra_keys:
        state[key] = torch.zeros(2)
    keys = sorted(state)
    shards = {
        "pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2],
        "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2 :],
    }
    folder.mkdir(parents=True)
    for name, names in shards.items():
        torch.save({k: state[k] for k in names}, folder / name)
    index = {
        "metadata": {"total_size": sum(v.numel() * v.element_size() for v in state.values())},
        "weight_map": {k: name for name, names in shards.items() for k in names},
    }
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    config = lcfg.to_dict() | {
        "architectures": ["LlavaLlamaForCausalLM"],
        "model_type": "llava",
        "torch_dtype": "float16",
        "transformers_version": "4.31.0",
        "mm_vision_tower": "wisdomik/QuiltNet-B-32",
        "mm_projector_type": "mlp2x_gelu",
        "mm_hidden_size": 32,
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "image_aspect_ratio": "pad",
        "tune_mm_mlp_adapter": False,
        "freeze_mm_mlp_adapter": False,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return tower, lcfg, state


def original_logits(state, lcfg, tower, ids, image_id, pixel_values):
    """The original LLaVA forward from the raw (fp16) weights: features spliced at the single placeholder."""
    import torch.nn.functional as F
    from transformers import LlamaForCausalLM

    s = {k: v.float() for k, v in state.items() if "inv_freq" not in k}
    with torch.no_grad():
        feats = tower(pixel_values, output_hidden_states=True).hidden_states[-2][:, 1:]  # (1, 4, 32) patches
        h = F.gelu(feats @ s["model.mm_projector.0.weight"].T + s["model.mm_projector.0.bias"])
        img = (h @ s["model.mm_projector.2.weight"].T + s["model.mm_projector.2.bias"])[0]  # (4, 32)
        at = ids.index(image_id)
        emb = s["model.embed_tokens.weight"]
        embeds = torch.cat([emb[ids[:at]], img, emb[ids[at + 1 :]]])[None]  # (1, seq, 32)
        llm = LlamaForCausalLM(lcfg)
        llm.load_state_dict({k: v for k, v in s.items() if "mm_projector" not in k})
        return llm.eval()(inputs_embeds=embeds).logits


def release_pixels(image):
    """SPEC C's pixels: centred on a square canvas of CLIP's mean colour, then the CLIP processor."""
    from PIL import Image

    from quilt_llava.model.processing import make_image_processor

    side = max(image.size)
    canvas = Image.new("RGB", (side, side), CLIP_MEAN_RGB)
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return make_image_processor(16)(images=[canvas], return_tensors="pt")["pixel_values"]


def test_431_checkpoint_converts_and_chats_like_the_original(sp, llama_vocab, tmp_path):
    from PIL import Image

    from quilt_llava.model.convert import ConvertOptions, convert_llava_checkpoint
    from quilt_llava.serve.session import ChatModel, ChatSession, DecodingOptions, LoadOptions

    src, tower_dir = tmp_path / "quilt-llava-v1.5-7b", tmp_path / "tower"
    tower, lcfg, state = write_431_checkpoint(src, tower_dir)
    (src / "tokenizer.model").write_bytes((llama_vocab / "tokenizer.model").read_bytes())
    info = convert_llava_checkpoint(ConvertOptions(str(src), str(tmp_path / "hf"), vision_tower=str(tower_dir)))
    assert info["dropped_buffers"] == 2 and info["vocab_size"] == 32001  # <image> added after Vicuna's 32,000

    chat = ChatModel.load(LoadOptions(str(tmp_path / "hf")))
    session = ChatSession(chat, DecodingOptions(max_new_tokens=2))
    image = Image.new("RGB", (24, 12), (200, 40, 90))
    image.paste((20, 20, 220), (0, 0, 6, 12))
    session.set_image(image)
    question = "What does this region show?"
    inputs = session.fit_context(question)
    image_id = chat.model.config.image_token_id
    chunks = [(f"{SYSTEM} USER: <image>\n{question} ASSISTANT:", False)]
    assert inputs["input_ids"][0].tolist() == reference(sp, image_id, chunks, n_img=4)[0]  # 4 patches
    pixels = release_pixels(image)
    torch.testing.assert_close(inputs["pixel_values"].float(), pixels)
    with torch.no_grad():
        ours = chat.model(**inputs).logits[..., :32000]  # the added <image> row is not in the original vocab
    theirs = original_logits(state, lcfg, tower, reference(sp, image_id, chunks, n_img=1)[0], image_id, pixels)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert session.ask(question) is not None  # and it generates


def test_converter_lists_every_unexpected_key(llama_vocab, tmp_path):
    from quilt_llava.errors import InputError
    from quilt_llava.model.convert import ConvertOptions, convert_llava_checkpoint

    src = tmp_path / "orig"
    extra = [
        "model.layers.0.self_attn.rope_scale",
        "model.layers.1.mlp.extra_bias",
        "vision_resampler.w",
        "model.mm_projector.4.weight",
    ]
    write_431_checkpoint(src, tmp_path / "tower", extra_keys=extra)
    (src / "tokenizer.model").write_bytes((llama_vocab / "tokenizer.model").read_bytes())
    with pytest.raises(InputError) as err:
        convert_llava_checkpoint(ConvertOptions(str(src), str(tmp_path / "hf"), vision_tower=str(tmp_path / "tower")))
    message = str(err.value)
    assert "unexpected 4" in message and all(k in message for k in extra)
    assert "inv_freq" not in message  # known buffers are dropped, not reported
    # a shard the index names but that is missing is reported by name
    (src / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(InputError, match=re.escape("pytorch_model-00002-of-00002.bin")):
        convert_llava_checkpoint(ConvertOptions(str(src), str(tmp_path / "hf2"), vision_tower=str(tmp_path / "tower")))


def test_pieces_are_tokenized_on_their_own_whatever_the_tokenizer(sp, llama_vocab):
    """The split at <image> is what makes the release's ids, not a property of our tokenizer: with a
    tokenizer that puts "▁" only at the very start (transformers' newer Llama pipeline, Metaspace
    prepend_scheme="first"), the whole prompt at once loses the "▁" after the image; piece by piece keeps it."""
    from tokenizers import Tokenizer, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from quilt_llava.model.processing import add_image_token
    from quilt_llava.model.prompt import tokenize_prompt

    inner = Tokenizer.from_file(str(llama_vocab / "tokenizer.json"))
    inner.normalizer = None
    inner.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    first_only = PreTrainedTokenizerFast(tokenizer_object=inner, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    image_id = add_image_token(first_only)
    prompt = f"{SYSTEM} USER: <image>\nWhat does this region show? ASSISTANT:"
    want, _ = reference(sp, image_id, [(prompt, False)], n_img=N_IMG)
    assert tokenize_prompt(first_only, prompt, image_id, N_IMG) == want
    whole = first_only(prompt.replace("<image>", "<image>" * N_IMG)).input_ids
    assert whole != want  # the "▁" before "<0x0A>" is missing
