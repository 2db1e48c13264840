"""Llama-family tokenizers reproduce sentencepiece exactly, on the real LLaMA/Vicuna vocabulary.

The reference is the ``sentencepiece`` library itself (and, for the rebuilt vocabulary,
node running the npm package's own encoder); the slow transformers-4.31 tokenizer the
release used hands each run of text between special tokens to sentencepiece on its own.
"""

import json
import random
import re
import shutil
import sys

import pytest

from quilt_llava.errors import MissingDependencyError
from quilt_llava.model.llama_tokenizer import load_tokenizer

spm = pytest.importorskip("sentencepiece", reason="sentencepiece is in the train extra")

SPECIAL = {"<unk>": 0, "<s>": 1, "</s>": 2}

TRICKY = [
    "  two leading spaces",
    " one",
    "\nstarts with a newline",
    "a  b   c",
    "   ",
    "",
    "x\u00a0y",
    "🔬🧫",
    "ÿ þ",
    "A</s>USER: hi",
    "x <s> y",
    "<unk>",
    "end </s>",
    "USER: <image>\nWhat is shown? ASSISTANT:",
    "Is there necrosis?  Answer yes or no.",
    "HER2 3+, Ki-67 ~40%\t(high)",
    "1234567890",
    "ok\n\n\n",
]


def sentences(vocab_dir, n_random=400):
    """Fixed tricky strings, node's check sentences, and random slices of a text we did not tune on."""
    from quilt_llava.model.tokenizer import corpus_lines

    out = list(TRICKY) + [row["text"] for row in json.loads((vocab_dir / "check.json").read_text())]
    text = "\n".join(corpus_lines()) + "\n" + (vocab_dir / "llama-tokenizer-js" / "README.md").read_text()
    rng = random.Random(0)
    for _ in range(n_random):
        i = rng.randrange(len(text))
        out.append(text[i : i + rng.randrange(1, 120)])
    return out


def reference_ids(sp, text):
    """The release's ids: BOS, then each run between special tokens through sentencepiece alone."""
    ids = [1]
    for part in re.split(r"(</s>|<s>|<unk>)", text):
        if part in SPECIAL:
            ids.append(SPECIAL[part])
        elif part:
            ids.extend(sp.encode(part))
    return ids


@pytest.fixture(scope="module")
def sp(llama_vocab):
    return spm.SentencePieceProcessor(model_file=str(llama_vocab / "tokenizer.model"))


@pytest.mark.parametrize("files", [("tokenizer.model",), ("tokenizer.json",), ("tokenizer.model", "tokenizer.json")])
def test_loaded_tokenizer_equals_sentencepiece(llama_vocab, sp, tmp_path, files):
    for name in files:
        shutil.copy(llama_vocab / name, tmp_path / name)
    tok = load_tokenizer(tmp_path)
    assert len(tok) == 32000 and (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (1, 2, 0)
    bad = [s for s in sentences(llama_vocab) if tok(s).input_ids != reference_ids(sp, s)]
    assert not bad, f"{len(bad)} sentences differ from sentencepiece, e.g. {bad[:3]}"
    for s in sentences(llama_vocab, n_random=50):
        ids = sp.encode(s)
        assert tok.decode(ids) == sp.decode(ids)


def test_rebuilt_vocabulary_agrees_with_the_packages_own_encoder(llama_vocab):
    """check.json holds what node computed with llama-tokenizer-js; the loaded tokenizer gives the same."""
    tok = load_tokenizer(llama_vocab)
    rows = json.loads((llama_vocab / "check.json").read_text())
    assert len(rows) >= 15
    for row in rows:
        assert tok(row["text"]).input_ids == row["ids"], row["text"]


def test_saved_checkpoint_keeps_the_exact_tokenizer(llama_vocab, sp, tmp_path):
    """Saving with a processor and loading with AutoProcessor (as eval and chat do) keeps sentencepiece's ids."""
    from transformers import AutoProcessor

    from quilt_llava.model.checkpoint import make_tokenizer_config_portable
    from quilt_llava.model.processing import add_image_token, make_image_processor, make_processor

    shutil.copy(llama_vocab / "tokenizer.model", tmp_path / "tokenizer.model")
    tok = load_tokenizer(tmp_path)
    add_image_token(tok)
    make_processor(tok, make_image_processor(32), 8, "default", has_cls=True).save_pretrained(tmp_path / "ckpt")
    make_tokenizer_config_portable(tmp_path / "ckpt")
    loaded = AutoProcessor.from_pretrained(tmp_path / "ckpt").tokenizer
    assert loaded.pad_token == "<unk>"  # Vicuna pads with <unk>
    for s in sentences(llama_vocab, n_random=100):
        if "<image>" not in s:  # now a special token; prompts are split at it before tokenizing
            assert loaded(s).input_ids == reference_ids(sp, s), s


def test_transformers_own_llama_tokenizer_is_not_exact(llama_vocab, sp, tmp_path):
    """Why load_tokenizer exists: AutoTokenizer on a tokenizer.model-only folder is not the release's tokenizer."""
    from transformers import AutoTokenizer

    shutil.copy(llama_vocab / "tokenizer.model", tmp_path / "tokenizer.model")
    auto = AutoTokenizer.from_pretrained(tmp_path)
    assert any(auto(s).input_ids != reference_ids(sp, s) for s in TRICKY)


def test_missing_sentencepiece_names_the_extra(llama_vocab, tmp_path, monkeypatch):
    shutil.copy(llama_vocab / "tokenizer.model", tmp_path / "tokenizer.model")
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"'sentencepiece'.*quilt-llava\[train\]"):
        load_tokenizer(tmp_path)


def test_non_llama_tokenizers_load_unchanged(tmp_path):
    """A byte-level BPE (the tiny preset's, Qwen-style) is not sentencepiece: AutoTokenizer loads it as saved."""
    from quilt_llava.model.tokenizer import train_tiny_tokenizer

    tiny = train_tiny_tokenizer()
    tiny.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    text = "USER: <image>\nWhat is shown? ASSISTANT: glands</s>"
    assert loaded(text).input_ids == tiny(text).input_ids
