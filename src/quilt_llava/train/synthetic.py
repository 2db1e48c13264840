"""A synthetic image-question task to check that a tiny model learns from scratch.

Each image is a stain-like coloured blob (ellipse) on a pale background; the
questions ask for the blob's colour (one word) or whether it has a given colour
(yes/no). Stage-1 records caption the image (``A purple blob.``); stage-2 records
are single-turn question/answer pairs. Everything is seeded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from quilt_llava.files import atomic_open, write_jsonl

COLOURS: dict[str, tuple[int, int, int]] = {
    "purple": (110, 40, 140),
    "pink": (235, 120, 170),
    "brown": (125, 75, 30),
    "blue": (40, 70, 200),
}
BACKGROUND = (238, 232, 226)


@dataclass(frozen=True)
class ShapeSample:
    id: str
    image: str
    colour: str


def draw_blob(colour: str, rng: random.Random, size: int = 48) -> Image.Image:
    img = Image.new("RGB", (size, size + rng.randint(-8, 8)), BACKGROUND)
    w, h = img.size
    rw, rh = rng.randint(w // 4, w // 2 - 2), rng.randint(h // 4, h // 2 - 2)
    cx, cy = rng.randint(rw, w - rw), rng.randint(rh, h - rh)
    r, g, b = COLOURS[colour]
    jitter = [max(0, min(255, c + rng.randint(-15, 15))) for c in (r, g, b)]
    ImageDraw.Draw(img).ellipse([cx - rw, cy - rh, cx + rw, cy + rh], fill=tuple(jitter))
    return img


def make_images(folder: str | Path, n: int, seed: int = 0, prefix: str = "blob") -> list[ShapeSample]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names = sorted(COLOURS)
    out = []
    for i in range(n):
        colour = names[i % len(names)]
        name = f"{prefix}_{i:05d}.png"
        with atomic_open(folder / name, "wb") as fh:
            draw_blob(colour, rng).save(fh, format="PNG")
        out.append(ShapeSample(f"{prefix}-{i}", name, colour))
    return out


def caption_records(samples: list[ShapeSample]) -> list[dict[str, Any]]:
    return [
        {
            "id": s.id,
            "image": s.image,
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe the image briefly."},
                {"from": "gpt", "value": f"A {s.colour} blob."},
            ],
        }
        for s in samples
    ]


def qa_records(samples: list[ShapeSample], seed: int = 0) -> list[dict[str, Any]]:
    """One question per image: colour (one word) or a balanced yes/no about a colour."""
    rng = random.Random(seed)
    names = sorted(COLOURS)
    rows = []
    for i, s in enumerate(samples):
        if i % 2 == 0:
            q, a, kind = "What colour is the blob? Answer with one word.", s.colour, "open"
        else:
            asked = s.colour if rng.random() < 0.5 else rng.choice([c for c in names if c != s.colour])
            q, a, kind = f"Is the blob {asked}? Answer yes or no.", "yes" if asked == s.colour else "no", "closed"
        rows.append(
            {
                "id": f"{s.id}-q",
                "image": s.image,
                "answer": a,
                "answer_type": kind,
                "conversations": [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": a}],
            }
        )
    return rows


def write_task(folder: str | Path, n_train: int, n_test: int, seed: int = 0) -> dict[str, Path]:
    """Images under ``folder/images`` and ``stage1.jsonl``, ``stage2.jsonl``, ``test.jsonl``."""
    folder = Path(folder)
    train = make_images(folder / "images", n_train, seed, prefix="train")
    test = make_images(folder / "images", n_test, seed + 1, prefix="test")
    paths = {
        "images": folder / "images",
        "stage1": folder / "stage1.jsonl",
        "stage2": folder / "stage2.jsonl",
        "test": folder / "test.jsonl",
    }
    write_jsonl(paths["stage1"], caption_records(train))
    write_jsonl(paths["stage2"], qa_records(train, seed))
    write_jsonl(paths["test"], qa_records(test, seed + 1))
    return paths


def evaluate_task(
    model_dir: str | Path, test_jsonl: str | Path, image_folder: str | Path, batch_size: int = 32
) -> dict[str, Any]:
    """Greedy answers to the held-out questions: accuracy (first word, case-insensitive) and the majority baseline."""
    from collections import Counter

    from quilt_llava.eval.generate import generate_answers
    from quilt_llava.files import iter_jsonl
    from quilt_llava.images import open_image
    from quilt_llava.model.checkpoint import conv_template_of, load_model_and_processor
    from quilt_llava.model.conversation import get_template
    from quilt_llava.model.processing import prepare_image

    rows = list(iter_jsonl(test_jsonl))
    model, processor = load_model_and_processor(model_dir)
    model.eval()
    template = get_template(conv_template_of(model_dir))
    correct = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        images = [prepare_image(open_image(Path(image_folder) / r["image"]), processor) for r in batch]
        prompts = [template.prompt(r["conversations"][0]["value"].replace("<image>\n", "")) for r in batch]
        for row, text in zip(batch, generate_answers(model, processor, prompts, images, max_new_tokens=4)):
            words = text.lower().split()
            correct += bool(words) and words[0].strip(".,!") == row["answer"]
    majority = Counter(r["answer"] for r in rows).most_common(1)[0][1] if rows else 0
    n = max(1, len(rows))
    return {"accuracy": correct / n, "majority_baseline": majority / n, "n": len(rows)}
