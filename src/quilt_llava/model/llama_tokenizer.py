"""Llama-family tokenizers that tokenize exactly as sentencepiece does.

The released LLaVA / Quilt-LLaVA / LLaVA-Med models were trained with the *slow*
sentencepiece tokenizer of transformers 4.31 (``use_fast=False``, "legacy"
behaviour): the text between special tokens is handed to sentencepiece piece by
piece, and sentencepiece puts its dummy-prefix "▁" in front of every piece. Newer
transformers build Llama tokenizers differently (a ``Metaspace`` pre-tokenizer that
adds no "▁" in front of text that already starts with a space or follows a
special token; transformers 5's ``LlamaTokenizer`` built from ``tokenizer.model``
alone returns nothing at all), so the same text gives other ids.

:func:`load_tokenizer` therefore builds the tokenizer itself whenever a checkpoint
folder is sentencepiece-based:

- ``tokenizer.model`` present (Vicuna, Llama 1/2, Mistral): the pieces, scores
  and normaliser settings are read with the ``sentencepiece`` library and turned
  into a ``tokenizers`` BPE (merges ordered by the score of the piece they make,
  which is the order sentencepiece merges in) with byte fallback, a "▁" prepended
  to every text run and spaces escaped to "▁";
- only ``tokenizer.json`` with a byte-fallback BPE (a sentencepiece export): its
  vocabulary and merges are kept and the pipeline around them is set the same way;
- anything else (byte-level BPE such as Qwen, or the tiny preset's tokenizer) loads
  with ``AutoTokenizer`` unchanged.

The result is a ``PreTrainedTokenizerFast`` whose ``tokenizer.json`` carries this
pipeline, so a saved checkpoint keeps it. ``tests/model/test_llama_tokenizer.py``
checks it against sentencepiece itself on the real LLaMA vocabulary.
What is not handled: sentencepiece *unigram* models (T5-style), and
``remove_extra_whitespaces``/``add_dummy_prefix`` settings other than LLaMA's
(reported as an error rather than approximated).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from quilt_llava.errors import InputError, MissingDependencyError

SPIECE_UNDERLINE = "▁"
SENTENCEPIECE_EXTRA = "train"  # also in the eval and serve extras: every extra that loads a checkpoint


def load_tokenizer(source: str | os.PathLike[str]):
    """The tokenizer of checkpoint ``source`` (folder or hub id), sentencepiece-exact for Llama-family ones."""
    folder = _local_folder(source)
    if folder is not None:
        if (folder / "tokenizer.model").is_file():
            return tokenizer_from_sentencepiece(folder / "tokenizer.model", _special_tokens(folder))
        if (folder / "tokenizer.json").is_file() and _is_sentencepiece_json(folder / "tokenizer.json"):
            return tokenizer_from_sentencepiece_json(folder / "tokenizer.json", _special_tokens(folder))
    from transformers import AutoTokenizer

    from quilt_llava.model.hf import hub_load

    return hub_load("tokenizer", source, lambda: AutoTokenizer.from_pretrained(str(folder or source)))


def _local_folder(source: str | os.PathLike[str]) -> Path | None:
    path = Path(source)
    if path.is_dir():
        return path
    if os.path.isabs(str(source)) or str(source).startswith((".", "~")):
        return None  # a missing local path: AutoTokenizer reports it
    try:  # a hub id: fetch (or find in the cache) only the tokenizer files
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                str(source),
                allow_patterns=[
                    "tokenizer.model",
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "special_tokens_map.json",
                    "added_tokens.json",
                ],
            )
        )
    except Exception:
        return None


def _require_sentencepiece():
    """sentencepiece's model protobuf module (needs ``sentencepiece`` and ``protobuf``)."""
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        raise MissingDependencyError("sentencepiece", SENTENCEPIECE_EXTRA) from None
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:
        raise MissingDependencyError("protobuf", SENTENCEPIECE_EXTRA) from None
    return sentencepiece_model_pb2


def _special_tokens(folder: Path) -> dict[str, Any]:
    """bos/eos/unk/pad names and extra added tokens from the checkpoint's tokenizer config files."""
    out: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text("utf-8"))
        for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str) and key not in out:
                out[key] = value
        for item in (data.get("added_tokens_decoder") or {}).items():
            index, token = item
            if isinstance(token, dict) and "content" in token:
                out.setdefault("added", {})[int(index)] = token["content"]
    added = folder / "added_tokens.json"
    if added.is_file():
        for content, index in json.loads(added.read_text("utf-8")).items():
            out.setdefault("added", {})[int(index)] = content
    return out


def tokenizer_from_sentencepiece(model_file: str | os.PathLike[str], special: dict[str, Any] | None = None):
    """A ``PreTrainedTokenizerFast`` equal to sentencepiece model ``model_file`` (see module doc)."""
    pb = _require_sentencepiece()
    proto = pb.ModelProto()
    proto.ParseFromString(Path(model_file).read_bytes())
    problems = []
    if proto.trainer_spec.model_type != pb.TrainerSpec.BPE:
        problems.append(
            "only sentencepiece BPE models are supported (Llama, Vicuna, Mistral); this one is "
            f"{pb.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)}"
        )
    norm = proto.normalizer_spec
    if norm.remove_extra_whitespaces or not norm.add_dummy_prefix or norm.name not in ("identity", ""):
        problems.append(
            f"normaliser '{norm.name}' (remove_extra_whitespaces={norm.remove_extra_whitespaces}, "
            f"add_dummy_prefix={norm.add_dummy_prefix}) differs from Llama's; not supported"
        )
    if problems:
        raise InputError(str(model_file), "; ".join(problems))
    pieces = [(p.piece, p.score, p.type) for p in proto.pieces]
    kinds = pb.ModelProto.SentencePiece
    vocab = {piece: i for i, (piece, _, _) in enumerate(pieces)}
    merges = _merges_from_scores(pieces, vocab, normal_type=kinds.NORMAL)
    unk = pieces[proto.trainer_spec.unk_id][0] if proto.trainer_spec.unk_id >= 0 else None
    controls = [p for p, _, t in pieces if t in (kinds.CONTROL, kinds.UNKNOWN, kinds.USER_DEFINED)]
    defaults = {
        "bos_token": pieces[proto.trainer_spec.bos_id][0] if proto.trainer_spec.bos_id >= 0 else None,
        "eos_token": pieces[proto.trainer_spec.eos_id][0] if proto.trainer_spec.eos_id >= 0 else None,
        "unk_token": unk,
    }
    return _assemble(
        vocab,
        merges,
        unk,
        controls,
        defaults | _given(special),
        (special or {}).get("added", {}),
        byte_fallback=proto.trainer_spec.byte_fallback,
    )


def _merges_from_scores(pieces, vocab: dict[str, int], normal_type: int) -> list[tuple[str, str]]:
    """Every split ``(left, right)`` of every normal piece whose halves are pieces, highest-score piece first.

    sentencepiece merges the adjacent pair whose *result* has the highest score; a BPE
    whose merge ranks follow the result's score makes the same choices."""
    ranked = []
    for i, (piece, score, kind) in enumerate(pieces):
        if kind != normal_type or len(piece) < 2:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                ranked.append((-score, i, vocab[left], vocab[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _is_sentencepiece_json(path: Path) -> bool:
    model = json.loads(path.read_text("utf-8")).get("model", {})
    return (
        model.get("type") == "BPE"
        and bool(model.get("byte_fallback"))
        and any(SPIECE_UNDERLINE in k for k in list(model.get("vocab", {}))[:2000])
    )


def tokenizer_from_sentencepiece_json(path: str | os.PathLike[str], special: dict[str, Any] | None = None):
    """A sentencepiece-exported ``tokenizer.json``: same vocabulary and merges, sentencepiece's pipeline."""
    data = json.loads(Path(path).read_text("utf-8"))
    model = data["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    controls = [t["content"] for t in data.get("added_tokens", []) if t.get("special")]
    defaults = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": model.get("unk_token") or "<unk>"}
    return _assemble(
        model["vocab"],
        merges,
        model.get("unk_token"),
        controls,
        defaults | _given(special),
        (special or {}).get("added", {}),
        byte_fallback=True,
    )


def _given(special: dict[str, Any] | None) -> dict[str, str]:
    return {k: v for k, v in (special or {}).items() if k != "added" and isinstance(v, str)}


def _assemble(
    vocab: dict[str, int],
    merges: list[tuple[str, str]],
    unk: str | None,
    controls: list[str],
    names: dict[str, str | None],
    added: dict[int, str],
    byte_fallback: bool,
):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(
        models.BPE(vocab=dict(vocab), merges=list(merges), unk_token=unk, fuse_unk=True, byte_fallback=byte_fallback)
    )
    # sentencepiece's normaliser: a dummy "▁" before every text run, spaces escaped to "▁"; no pre-splitting.
    tok.normalizer = normalizers.Sequence(
        [normalizers.Prepend(SPIECE_UNDERLINE), normalizers.Replace(" ", SPIECE_UNDERLINE)]
    )
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPIECE_UNDERLINE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    bos = names.get("bos_token")
    if bos is not None and bos in vocab:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in controls])
    extra = [content for index, content in sorted(added.items()) if content not in vocab]
    if extra:
        tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in extra])
    pad = names.get("pad_token")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=names.get("eos_token"),
        unk_token=names.get("unk_token"),
        pad_token=pad if pad else None,
        padding_side="right",
        clean_up_tokenization_spaces=False,
        add_prefix_space=None,
    )


__all__ = ["load_tokenizer", "tokenizer_from_sentencepiece", "tokenizer_from_sentencepiece_json"]
