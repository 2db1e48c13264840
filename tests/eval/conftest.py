"""Fixtures for the eval tests: a saved tiny model and a small image question set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

QUESTIONS = [
    {"id": "o1", "image": "img0.png", "question": "What cells are seen?", "answer": "red cells", "answer_type": "OPEN"},
    {
        "id": "o2",
        "image": "img1.png",
        "question": "Which stain is used here in this slide?",
        "answer": "H&E stain",
        "answer_type": "OPEN",
    },
    {"id": "c1", "image": "img2.png", "question": "Is it malignant?", "answer": "yes", "answer_type": "CLOSED"},
    {
        "id": "c2",
        "image": "img3.png",
        "question": "Is there necrosis in the centre of the lesion?",
        "answer": "Necrosis is absent",
        "yes_no_answer": "no",
        "answer_type": "CLOSED",
        "box": [0.1, 0.1, 0.6, 0.5],
    },
    {"id": "c3", "image": "img0.png", "question": "Benign?", "answer": "no", "answer_type": "CLOSED"},
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from quilt_llava.model import build_model_and_processor, save_model_and_processor

    model, processor = build_model_and_processor("tiny", seed=0)
    out = tmp_path_factory.mktemp("models") / "tiny-eval"
    save_model_and_processor(model, processor, out)
    return out


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir):
    from quilt_llava.model import load_model_and_processor

    return load_model_and_processor(tiny_model_dir)


@pytest.fixture
def vqa_set(tmp_path) -> tuple[Path, Path]:
    """(questions.jsonl, image folder) with 5 questions on 4 images of different sizes."""
    images = tmp_path / "images"
    images.mkdir()
    colours = [(200, 40, 60), (90, 30, 160), (240, 200, 210), (30, 120, 90)]
    sizes = [(40, 32), (32, 32), (24, 48), (64, 40)]
    for i, (c, s) in enumerate(zip(colours, sizes)):
        Image.new("RGB", s, c).save(images / f"img{i}.png")
    q = tmp_path / "questions.jsonl"
    q.write_text("".join(json.dumps(r) + "\n" for r in QUESTIONS))
    return q, images
