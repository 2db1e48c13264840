"""Benchmark sources: reading a published benchmark with its images, cold and cached.

``eval run`` reads Quilt-VQA as a Hugging Face dataset with the images inside and
PMC-VQA as a CSV plus a zip archive; images are written once into a cache. This script
builds both layouts at their published sizes (Quilt-VQA: 1,283 questions on 985
images; a PMC-VQA-sized CSV + zip of figures) from synthetic pictures, and times, in
the same run:

- baseline: decoding every question's image from the dataset (what a reader without
  a cache does on every run: ``datasets`` decodes the ``Image`` column row by row);
- cold: ``load_benchmark_data`` with an empty cache (reads, hashes, writes each
  distinct image once);
- cached: the same call again (nothing is written; a re-run or a resumed run).

Figures: seconds of each, cached / cold and cached / baseline ratios, images written.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eval_sources_bench.py [--images 985]
[--questions 1283] [--size 384] [--json]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import random
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from quilt_llava.eval.sources import load_benchmark_data


def picture(rng: random.Random, size: int) -> bytes:
    img = Image.new("RGB", (size, size), (rng.randrange(180, 255), rng.randrange(120, 200), rng.randrange(170, 230)))
    draw = ImageDraw.Draw(img)
    for _ in range(60):  # nuclei-like blobs so JPEG sizes are realistic, not flat colour
        x, y, r = rng.randrange(size), rng.randrange(size), rng.randrange(3, max(4, size // 20))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(rng.randrange(60, 130), rng.randrange(20, 80), 140))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def build(root: Path, n_images: int, n_questions: int, size: int, seed: int) -> tuple[Path, Path, Path]:
    import datasets

    rng = random.Random(seed)
    pics = [picture(rng, size) for _ in range(n_images)]
    rows = []
    for i in range(n_questions):
        k = i if i < n_images else rng.randrange(n_images)  # every image used, some by several questions
        closed = i % 3 == 0
        rows.append(
            {
                "question": f"Question {i}?",
                "answer": "yes" if closed else f"answer {i}",
                "answer_type": "CLOSED" if closed else "OPEN",
                "context": "",
                "image": {"bytes": pics[k], "path": f"img_{k:05d}.jpg"},
            }
        )
    feats = datasets.Features(
        {
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "answer_type": datasets.Value("string"),
            "context": datasets.Value("string"),
            "image": datasets.Image(),
        }
    )
    hf = root / "quilt_vqa"
    datasets.Dataset.from_list(rows, features=feats).save_to_disk(str(hf))
    csv_path, zip_path = root / "pmc.csv", root / "pmc_images.zip"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "in_quilt"])
        for i in range(n_questions):
            w.writerow([f"PMC{i % n_images}_f.jpg", f"Q{i}?", "A:x", "A:x", "B:y", "C:z", "D:w", "False"])
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as zf:
        for k, data in enumerate(pics):
            zf.writestr(f"figures/PMC{k}_f.jpg", data)
    return hf, csv_path, zip_path


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def decode_all(hf: Path) -> int:
    import datasets

    ds = datasets.load_from_disk(str(hf))
    n = 0
    for row in ds:
        row["image"].load()
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=985)
    ap.add_argument("--questions", type=int, default=1283)
    ap.add_argument("--size", type=int, default=384, help="Image side in pixels.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sources_bench_"))
    try:
        hf, csv_path, zip_path = build(work, args.images, args.questions, args.size, args.seed)
        res: dict[str, Any] = {
            "images": args.images,
            "questions": args.questions,
            "size": args.size,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        base, _ = timed(lambda: decode_all(hf))
        for name, kw in (("hf_dataset", {"fmt": "quilt"}), ("csv_zip", {"fmt": "pmc_vqa", "images": zip_path})):
            spec = str(hf if name == "hf_dataset" else csv_path)
            cache = work / f"cache_{name}"
            cold, first = timed(lambda spec=spec, cache=cache, kw=kw: load_benchmark_data(spec, cache_dir=cache, **kw))
            warm, second = timed(lambda spec=spec, cache=cache, kw=kw: load_benchmark_data(spec, cache_dir=cache, **kw))
            res[name] = {
                "cold_s": round(cold, 3),
                "cached_s": round(warm, 3),
                "cached_over_cold": round(warm / cold, 3),
                "written_cold": first.images_written,
                "written_cached": second.images_written,
                "questions": len(second.questions),
            }
        res["baseline_decode_s"] = round(base, 3)
        res["hf_dataset"]["cached_over_baseline"] = round(res["hf_dataset"]["cached_s"] / base, 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{args.questions} questions on {args.images} images of {args.size} px (JPEG)")
    print(f"  baseline: decode every question's image from the dataset : {res['baseline_decode_s']:.2f} s")
    for name in ("hf_dataset", "csv_zip"):
        r = res[name]
        print(f"  {name:10s} cold (extracts {r['written_cold']:4d} images)  : {r['cold_s']:.2f} s")
        print(
            f"  {name:10s} cached (writes {r['written_cached']:4d} images) : {r['cached_s']:.2f} s"
            f"  -> cached/cold x{r['cached_over_cold']:.2f}"
        )
    print(f"  hf_dataset cached / baseline decode: x{res['hf_dataset']['cached_over_baseline']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
