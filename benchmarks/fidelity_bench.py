"""What the release's tokenization costs when a data set is prepared for training.

The release tokenizes every prompt piece by piece around ``<image>`` and, to make the
loss mask, tokenizes each round and each instruction again on their own
(``preprocess_v1``); :func:`quilt_llava.model.tensorize.tensorize_all` does the same so
released weights see their own tokens. This script measures that preparation on the
real LLaMA/Vicuna vocabulary (``scripts/llama_vocab.sh`` builds it) for stage-1
(``plain``) and stage-2 (``vicuna_v1``, 1-3 rounds) style records, against a baseline
measured in the same run: one whole-prompt tokenizer call per record with no mask
(the least any mask-making method must do, and what this project did before: the
prompt rendered with every image token written out, tokenized once). It also counts the records whose ids
equal the independent sentencepiece reference (the rules of SPEC.md C written out).

    OMP_NUM_THREADS=1 python benchmarks/fidelity_bench.py --records 2000
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

from quilt_llava.model.conversation import get_template
from quilt_llava.model.llama_tokenizer import load_tokenizer
from quilt_llava.model.processing import add_image_token
from quilt_llava.model.tensorize import tensorize_all
from quilt_llava.model.tokenizer import corpus_lines

ROOT = Path(__file__).resolve().parents[1]
N_IMG = 576  # CLIP ViT-L/14-336: 24 x 24 patches


def records(n: int, seed: int, stage: int) -> list[dict]:
    rng = random.Random(seed)
    # the bundled corpus holds template text; a turn holding "ASSISTANT:" is one the release masks out
    words = [w for w in " ".join(corpus_lines()).split() if w not in ("USER:", "ASSISTANT:")]
    out = []
    for i in range(n):

        def text(lo: int, hi: int) -> str:
            start = rng.randrange(len(words))
            return " ".join(words[start : start + rng.randint(lo, hi)])

        rounds = 1 if stage == 1 else rng.randint(1, 3)
        conv = []
        for r in range(rounds):
            q = text(4, 20) + "?"
            if r == 0:
                q = rng.choice([f"<image>\n{q}", f"{q}\n<image>"])
            conv += [{"from": "human", "value": q}, {"from": "gpt", "value": text(5, 120 if stage == 2 else 40)}]
        out.append({"id": f"s{stage}-{i}", "image": "x.png", "conversations": conv})
    return out


def sentencepiece_reference(sp, text: str, image_id: int) -> list[int]:
    """SPEC C: split at <image>, each piece through sentencepiece alone (BOS first only), </s> its id."""
    ids = [1]
    for k, piece in enumerate(text.split("<image>")):
        if k:
            ids += [image_id] * N_IMG
        for m, run in enumerate(piece.split("</s>")):
            if m:
                ids.append(2)
            if run:
                ids += sp.encode(run)
    return ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--vocab", default=str(ROOT / ".cache" / "llama-vocab"), help="folder with tokenizer.model")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import sentencepiece

    tok = load_tokenizer(args.vocab)
    image_id = add_image_token(tok)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(Path(args.vocab) / "tokenizer.model"))
    result: dict = {"machine": platform.processor() or platform.machine(), "records": args.records, "stages": {}}
    for stage, name in ((1, "plain"), (2, "vicuna_v1")):
        recs = records(args.records, seed=stage, stage=stage)
        template = get_template(name)
        texts = [template.render(r["conversations"]).replace("<image>", "<image>" * N_IMG) for r in recs]
        t0 = time.perf_counter()
        for text in texts:
            tok(text)
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        samples, report = tensorize_all(recs, tok, template, N_IMG, image_id, max_length=100_000)
        ours = time.perf_counter() - t0
        # the rendering (image-first layout) is tested in tests/model/test_fidelity.py; here: the tokens
        same = sum(
            s.input_ids == sentencepiece_reference(sp, template.render(r["conversations"]), image_id)
            for s, r in zip(samples, recs)
            if s.ok
        )
        result["stages"][name] = {
            "whole_prompt_records_per_s": len(recs) / base,
            "release_records_per_s": len(recs) / ours,
            "slowdown": ours / base,
            "kept": report.kept,
            "ids_equal_reference": same,
            "mean_tokens": sum(s.length for s in samples) / max(1, len(samples)),
        }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.records} records per stage, LLaMA vocabulary, {N_IMG} image tokens")
    for name, r in result["stages"].items():
        print(
            f"  {name:10s} whole prompt (baseline) {r['whole_prompt_records_per_s']:8.0f} rec/s | release ids+mask "
            f"{r['release_records_per_s']:8.0f} rec/s (x{r['slowdown']:.2f} the time) | kept {r['kept']}, ids equal "
            f"to the sentencepiece reference {r['ids_equal_reference']}/{r['kept']} | mean {r['mean_tokens']:.0f} "
            "tokens"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
