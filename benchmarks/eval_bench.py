"""Eval benchmark: batched greedy generation against one question at a time.

The published evaluation scripts answer one question per forward pass (batch size 1).
``quilt_llava.eval.generate`` pads a batch on the left and decodes it together. This
script measures both on the same model, questions and images, in the same run:

- baseline: ``generate_answers`` called once per question (batch size 1);
- batched: the same questions in batches of ``--batch-size`` (sorted by prompt
  length, as ``generate_predictions`` does).

Figures: questions/s of each, the speed-up ratio batched / one-by-one, and whether
the greedy answers are identical (they should be: left padding with an attention
mask must not change what a row generates; any difference is listed).

Images are decoded beforehand, so both sides time the model only. By default every
answer is forced to ``--max-new-tokens`` tokens (``min_new_tokens``), because a
random tiny model stops at unpredictable points; pass ``--natural-stop`` to let each
answer end at its end-of-sequence token, as a trained model would.

Run: ``.venv/bin/python benchmarks/eval_bench.py [--preset tiny | --model DIR]
[--device cpu|cuda] [--questions 32] [--batch-size 8] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from typing import Any

from PIL import Image, ImageDraw

from quilt_llava.eval.generate import generate_answers

STEMS = [
    "What type of tissue is shown?",
    "Is there evidence of malignancy in this image?",
    "Describe the arrangement of the cells in the upper left part of the field.",
    "Which stain has been used?",
    "Are mitotic figures visible?",
    "What is the most likely diagnosis given the glandular architecture and the nuclear features seen here?",
    "Is the lesion well circumscribed?",
    "What structures surround the central lumen, and how are they organised relative to the stroma?",
]


def make_inputs(n: int, image_size: int, seed: int) -> tuple[list[str], list[Image.Image]]:
    rng = random.Random(seed)
    questions, images = [], []
    for i in range(n):
        questions.append(STEMS[i % len(STEMS)] + (" Explain briefly." if (i // len(STEMS)) % 2 else ""))
        base = (rng.randrange(120, 255), rng.randrange(40, 160), rng.randrange(120, 220))
        img = Image.new("RGB", (image_size, image_size), base)
        for _ in range(12):  # a few blobs so images differ in content, not just colour
            x, y, r = rng.randrange(image_size), rng.randrange(image_size), rng.randrange(2, max(3, image_size // 6))
            colour = (rng.randrange(40, 120), rng.randrange(0, 80), rng.randrange(90, 180))
            ImageDraw.Draw(img).ellipse([x - r, y - r, x + r, y + r], fill=colour)
        images.append(img)
    return questions, images


def load(args: argparse.Namespace) -> tuple[Any, Any, str]:
    from quilt_llava.model import (
        build_model_and_processor,
        conv_template_of,
        load_model_and_processor,
    )

    if args.model:
        model, processor = load_model_and_processor(args.model, dtype=args.dtype, device=args.device)
        return model, processor, conv_template_of(args.model)
    import torch

    model, processor = build_model_and_processor(args.preset, seed=0)
    # Random-init presets are built in float32; --dtype (e.g. bfloat16 on a GPU) applies here.
    dtype = getattr(torch, args.dtype) if args.dtype and args.dtype != "auto" else None
    model = model.to(device=args.device, dtype=dtype) if dtype is not None else model.to(args.device)
    return model, processor, "vicuna_v1"


def timed(fn: Any, device: str) -> tuple[Any, float]:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", help="model preset built from config (default tiny)")
    ap.add_argument("--model", default=None, help="a saved model directory instead of a preset")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--natural-stop", action="store_true", help="let answers stop at EOS")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=2, help="best of N timings per side")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from quilt_llava.model import get_template, prepare_image

    if args.threads:
        torch.set_num_threads(args.threads)
    model, processor, template_name = load(args)
    model.eval()
    template = get_template(template_name)
    size = (
        processor.image_processor.crop_size["height"]
        if hasattr(processor.image_processor, "crop_size") and isinstance(processor.image_processor.crop_size, dict)
        else 336
    )
    questions, images = make_inputs(args.questions, max(32, size), seed=0)
    prompts = [template.prompt(q) for q in questions]
    images = [prepare_image(im, processor) for im in images]
    extra = {} if args.natural_stop else {"min_new_tokens": args.max_new_tokens}
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))

    def one_by_one() -> list[str]:
        return [
            generate_answers(model, processor, [p], [im], args.max_new_tokens, **extra)[0]
            for p, im in zip(prompts, images)
        ]

    def batched() -> list[str]:
        out: list[str | None] = [None] * len(prompts)
        for s in range(0, len(order), args.batch_size):
            idx = order[s : s + args.batch_size]
            texts = generate_answers(
                model, processor, [prompts[i] for i in idx], [images[i] for i in idx], args.max_new_tokens, **extra
            )
            for i, t in zip(idx, texts):
                out[i] = t
        return [t or "" for t in out]

    generate_answers(model, processor, prompts[:2], images[:2], 2)  # warm-up
    single_texts, single_s = None, float("inf")
    batch_texts, batch_s = None, float("inf")
    for _ in range(args.repeats):
        texts, s = timed(one_by_one, args.device)
        single_texts, single_s = texts, min(single_s, s)
        texts, s = timed(batched, args.device)
        batch_texts, batch_s = texts, min(batch_s, s)
    assert single_texts is not None and batch_texts is not None
    differ = [i for i, (a, b) in enumerate(zip(single_texts, batch_texts)) if a != b]
    result = {
        "model": args.model or f"preset:{args.preset}",
        "device": args.device,
        "questions": args.questions,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "forced_length": not args.natural_stop,
        "one_by_one_qps": round(args.questions / single_s, 2),
        "batched_qps": round(args.questions / batch_s, 2),
        "speedup_batched_vs_one_by_one": round(single_s / batch_s, 2),
        "identical_outputs": not differ,
        "differing_questions": differ,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"model {result['model']} on {args.device}, {args.questions} questions, "
            f"{args.max_new_tokens} new tokens{' (forced)' if not args.natural_stop else ''}"
        )
        print(f"{'one by one (baseline)':<24} {result['one_by_one_qps']:>8.2f} questions/s   1.00x")
        print(
            f"{f'batched (size {args.batch_size})':<24} {result['batched_qps']:>8.2f} questions/s   "
            f"{result['speedup_batched_vs_one_by_one']:.2f}x"
        )
        print(f"greedy outputs identical: {'yes' if not differ else f'no, {len(differ)} differ: {differ[:10]}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
