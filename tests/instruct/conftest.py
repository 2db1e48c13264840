"""Fixtures for stage B: a small narratives folder and a scripted LLM behind a real HTTP server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from quilt_llava.instruct import structured
from quilt_llava.instruct.generators import (
    abductive,
    conversation,
    detail,
    diagnosis,
    medical_filter,
    reasoning,
    vqa,
)
from quilt_llava.instruct.generators.base import REPAIR_INSTRUCTION
from tests.fake_openai import FakeOpenAIServer

KEY_ENV = "QL_INSTRUCT_TEST_KEY"
SECRET = "sk-instruct-test-5b1e-NEVER-PRINT"

VIDEOS = {
    "vidA": [
        (
            "Here we have skin with an invasive tumour.",
            "Nests of atypical squamous cells push into the dermis.",
            "Do you see the keratin pearls in the centre?",
            "Yes, those pink whorls are keratin pearls.",
        ),
        (
            "Higher power on the nests.",
            "The cells have abundant pink cytoplasm and intercellular bridges.",
            "Is there any gland formation here?",
            "No, there are no glands at all.",
        ),
        ("Now the edge of the lesion.", "The tumour infiltrates between collagen bundles.", "", ""),
    ],
    "vidB": [
        (
            "This is a normal lymph node.",
            "The follicles have pale germinal centres.",
            "What lines the subcapsular sinus?",
            "Flat endothelial cells line it.",
        ),
        ("Welcome back everyone.", "Let us look at the capsule.", "", ""),
    ],
}


def make_rows(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for vid, segments in VIDEOS.items():
        (folder / vid / "frames").mkdir(parents=True, exist_ok=True)
        for si, sentences in enumerate(segments):
            image = f"{vid}/frames/seg{si:03d}.png"
            colour = (200 - 30 * si, 120 + 20 * si, 180)
            Image.new("RGB", (32, 24), colour).save(folder / image)
            t0 = 10.0 * si
            utterances = [
                {"start": t0 + 2 * k, "end": t0 + 2 * k + 1.8, "text": s} for k, s in enumerate(sentences) if s
            ]
            clusters = [
                {"box": [0.1, 0.2, 0.45, 0.6], "start": t0, "end": t0 + 3.9, "text": " ".join(sentences[:2])},
                {"box": [0.5, 0.35, 0.9, 0.8], "start": t0 + 4, "end": t0 + 8, "text": " ".join(sentences[2:]).strip()},
            ]
            clusters = [c for c in clusters if c["text"]]
            grounded = ", ".join(f"{c['text']} [{', '.join(f'{v:g}' for v in c['box'])}]" for c in clusters)
            rows.append(
                {
                    "video_id": vid,
                    "segment_id": si,
                    "start": t0,
                    "end": t0 + 9,
                    "image": image,
                    "width": 32,
                    "height": 24,
                    "content_box": [0, 0, 64, 48],
                    "trace": [[t0, 0.3, 0.4]],
                    "utterances": utterances,
                    "clusters": clusters,
                    "grounded_caption": grounded,
                }
            )
    return rows


def write_narratives(folder: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = rows if rows is not None else make_rows(folder)
    path = folder / "narratives.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def narratives(tmp_path) -> Path:
    return write_narratives(tmp_path / "nar")


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


# -- a scripted LLM -------------------------------------------------------------------


def _user(messages: list[dict[str, Any]]) -> str:
    return next(m["content"] for m in messages if m["role"] == "user")


def good_reply(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """A valid reply for whichever generator's prompt this is."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    user = _user(messages)
    if system == conversation.SYSTEM:
        first = user.splitlines()[1][:60]
        return json.dumps(
            {
                "pairs": [
                    {"question": "What tissue is shown?", "answer": f"It appears to be this: {first}"},
                    {
                        "question": "Where are the most striking cells?",
                        "answer": "They cluster in the upper left part of the image.",
                    },
                    {
                        "question": "What should I conclude?",
                        "answer": "The features are described above; I am an AI, not a doctor, "
                        "so a pathologist should confirm this.",
                    },
                ]
            }
        )
    if system == detail.SYSTEM:
        return (
            "The image shows a section of tissue with the features one would expect, arranged in the upper left "
            "and centre, with pink cytoplasm throughout."
        )
    if system == diagnosis.SYSTEM:
        if body.get("response_format"):  # the one object shape of the schema, as a constrained decoder writes it
            normal = "normal histology of lymph node" if "lymph node" in user else None
            return json.dumps(
                {
                    "diagnosis": [] if normal else ["squamous cell carcinoma"],
                    "normal": normal,
                    "clues": ["pale germinal centres"] if normal else ["keratin pearls", "intercellular bridges"],
                }
            )
        if "lymph node" in user:
            return '{"normal": "normal histology of lymph node", "clues": ["pale germinal centres"]}'
        return (
            "```json\n"
            + json.dumps(
                {
                    "diagnosis": ["squamous cell carcinoma"],
                    "clues": ["keratin pearls", "intercellular bridges", "infiltration of dermis"],
                }
            )
            + "\n```"
        )
    if system == reasoning.SYSTEM:
        return json.dumps(
            {
                "question": "What do these cells suggest?",
                "answer": "Pink cytoplasm and whorled pink structures point to a keratinizing process; "
                "the infiltration favours malignancy.",
            }
        )
    if system.startswith(abductive.STUDENT_SYSTEM.split("{")[0]):
        turn = sum(1 for m in messages if m["role"] == "assistant")
        return [
            "I think this is a keratinizing tumour because of the pink whorls.",
            "Then it must be squamous cell carcinoma, given the bridges and invasion.",
        ][min(turn, 1)]
    if system.startswith(abductive.TEACHER_SYSTEM.split("{")[0]):
        turn = sum(1 for m in messages if m["role"] == "assistant")
        return [
            "Good start. Look at the cell borders: what connects the cells?",
            "Exactly right, that is the diagnosis. [CONFIRMED]",
        ][min(turn, 1)]
    if system == medical_filter.SYSTEM:
        medical = "no" if "Welcome back" in user else "yes"
        return json.dumps({"medical": medical, "diagnosis": "yes" if "tumour" in user else "no"})
    if system == vqa.SYSTEM:
        listed = re.findall(r"^(\d+)\. (.+\?)$", user, re.M)
        pairs = []
        for num, q in listed:
            if q.lower().startswith(("do ", "is ", "are ")):
                yn = "no" if "gland" in q else "yes"
                pairs.append(
                    {
                        "source": int(num),
                        "question": q,
                        "answer": f"{yn.capitalize()}.",
                        "answer_type": "CLOSED",
                        "yes_no_answer": yn,
                    }
                )
            else:
                pairs.append(
                    {
                        "source": int(num),
                        "question": q,
                        "answer": "Flat endothelial cells.",
                        "answer_type": "OPEN",
                        "yes_no_answer": None,
                    }
                )
        return json.dumps({"pairs": pairs})
    if messages == structured.PROBE_MESSAGES:
        return "Liver."  # what a model does when the server ignores the schema
    raise ValueError(f"unscripted prompt: {system[:80]!r}")


def is_repair(messages: list[dict[str, Any]]) -> bool:
    return messages[-1]["role"] == "user" and messages[-1]["content"].startswith(REPAIR_INSTRUCTION.split("{")[0])


def first_bad(bad: str) -> Callable[[list[dict[str, Any]], dict[str, Any]], str]:
    """Replies ``bad`` to first attempts and a good reply to repair requests."""

    def responder(messages, body):
        return good_reply(messages[:-2], body) if is_repair(messages) else bad

    return responder


@pytest.fixture
def server():
    with FakeOpenAIServer(responder=good_reply) as srv:
        yield srv


def llm_args(srv: FakeOpenAIServer, *extra: str) -> list[str]:
    return [
        "--base-url",
        srv.base_url,
        "--model",
        "test-model",
        "--api-key-env",
        KEY_ENV,
        "--backoff",
        "0.01",
        "--max-retries",
        "2",
        "--timeout",
        "10",
        *extra,
    ]
