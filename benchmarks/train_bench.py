"""Training throughput and padding: length/modality-grouped batches vs random batches.

Builds a random-init model from a preset (``tiny`` on CPU; ``bench-1b`` on a GPU),
makes a synthetic LLaVA-like data set (a mix of image and text-only records with
long-tailed answer lengths), tokenizes it with the real masking code, and times
stage-2 style steps (projector + LLM trained, vision frozen) over the same batches
of the same records in two orders:

- baseline: random batches (``group_by: none``),
- grouped:  ``group_by: modality_length`` (what the shipped configs use).

Reports real (non-padding) training tokens/s, the padding share per batch, and the
speed-up as a ratio against the baseline measured in the same run. With
``--peak-tflops`` (the device's dense bf16 peak) it also reports MFU as
``6 * params * tokens/s / peak``.

    OMP_NUM_THREADS=2 python benchmarks/train_bench.py
    python benchmarks/train_bench.py --preset bench-1b --device cuda --dtype bfloat16 \\
        --batch-size 8 --steps 20 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import torch
from PIL import Image

from quilt_llava.model import build_model_and_processor
from quilt_llava.model.conversation import get_template
from quilt_llava.model.tokenizer import corpus_lines
from quilt_llava.train.data import Collator, GroupedSampler, LlavaDataset, padding_share


def synthetic_records(n: int, seed: int, image_share: float, max_words: int) -> list[dict]:
    rng = random.Random(seed)
    words = " ".join(corpus_lines()).split()
    rows = []
    for i in range(n):
        # Long-tailed answer lengths, like instruction data (short answers, some long descriptions).
        k = min(max_words, int(rng.paretovariate(1.2) * 8))
        answer = " ".join(rng.choice(words) for _ in range(k))
        question = " ".join(rng.choice(words) for _ in range(rng.randint(4, 20))) + "?"
        row = {"id": f"b{i}", "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}
        if rng.random() < image_share:
            row["image"] = "img.png"
        rows.append(row)
    return rows


def run(
    order: list[int],
    ds: LlavaDataset,
    model,
    collate,
    batch_size: int,
    steps: int,
    device: str,
    dtype: torch.dtype | None,
) -> dict:
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    # Same records in both modes: time a whole epoch (plus one warm-up batch) unless --steps limits it.
    batches = [batches[-1], *batches] if steps <= 0 else batches[: steps + 1]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    times, real, padded = [], 0, 0
    for step, idx in enumerate(batches):
        batch = {k: v.to(device) for k, v in collate([ds[i] for i in idx]).items()}
        if dtype is not None and "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(dtype)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step == 0:
            continue  # warm-up step
        times.append(time.perf_counter() - t0)
        real += int(batch["attention_mask"].sum())
        padded += batch["attention_mask"].numel()
    total = sum(times)
    return {
        "steps": len(times),
        "tokens_per_s": real / total,
        "padded_tokens_per_s": padded / total,
        "padding_share": 1 - real / padded,
        "padding_share_all_batches": padding_share(batches[1:], ds.lengths),
        "step_time_median_s": statistics.median(times),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--records", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=0, help="timed steps per mode (0: one whole epoch)")
    ap.add_argument("--max-words", type=int, default=300)
    ap.add_argument("--image-share", type=float, default=0.7)
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak (dense) TFLOP/s for MFU")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.dtype == "bfloat16" else None

    model, processor = build_model_and_processor(a.preset, seed=0)
    if dtype is not None:
        model = model.to(dtype)
    model = model.to(a.device).train()
    for name, p in model.named_parameters():
        p.requires_grad = "vision_tower" not in name
    n_params = sum(p.numel() for p in model.parameters())

    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    Image.new("RGB", (64, 48), (190, 90, 160)).save(folder / "img.png")
    records = synthetic_records(a.records, 0, a.image_share, a.max_words)
    ds = LlavaDataset(records, processor, get_template("vicuna_v1"), 2048, image_folder=folder)
    collate = Collator(processor.tokenizer.pad_token_id)
    results = {}
    for mode in ("none", "modality_length"):
        order = list(GroupedSampler(ds.lengths, ds.has_image, a.batch_size, mode=mode, seed=0))
        torch.manual_seed(0)
        results[mode] = run(order, ds, model, collate, a.batch_size, a.steps, a.device, dtype)
    base, grouped = results["none"], results["modality_length"]
    out = {
        "preset": a.preset,
        "device": a.device,
        "dtype": a.dtype,
        "params": n_params,
        "batch_size": a.batch_size,
        "records": len(ds),
        "mean_length": statistics.mean(ds.lengths),
        "random_batches": base,
        "grouped_batches": grouped,
        "speedup_tokens_per_s": grouped["tokens_per_s"] / base["tokens_per_s"],
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if a.peak_tflops:
        for key in ("random_batches", "grouped_batches"):
            out[key]["mfu"] = 6 * n_params * out[key]["tokens_per_s"] / (a.peak_tflops * 1e12)
    if a.json:
        print(json.dumps(out))
        return
    print(
        f"preset {a.preset} ({n_params / 1e6:.2f} M params) on {a.device} {a.dtype}; batch {a.batch_size}, "
        f"{len(ds)} records, mean length {out['mean_length']:.0f} tokens, {base['steps']} timed steps per mode"
    )
    for label, key in (("random batches (baseline)", "random_batches"), ("modality+length grouped", "grouped_batches")):
        r = out[key]
        mfu = f", MFU {r['mfu']:.1%}" if "mfu" in r else ""
        print(
            f"  {label:27s}: {r['tokens_per_s']:9.0f} tokens/s, padding {r['padding_share']:.1%} "
            f"(all batches {r['padding_share_all_batches']:.1%}){mfu}"
        )
    print(f"  grouped / random tokens/s: x{out['speedup_tokens_per_s']:.2f}")


if __name__ == "__main__":
    main()
