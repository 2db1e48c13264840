"""Snapshots of every prompt (so wording changes are deliberate) and golden stage-1 records.

Regenerate after an intended change with ``UPDATE_SNAPSHOTS=1 pytest tests/instruct/test_prompts.py``
and bump the generator's PROMPT_VERSION.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quilt_llava.instruct import BRIEF_REQUESTS, build_alignment_records
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
from tests.instruct.conftest import make_rows

SNAPSHOTS = Path(__file__).parent / "snapshots"
CASE = {"diagnosis": ["squamous cell carcinoma"], "normal": None, "clues": ["keratin pearls", "intercellular bridges"]}


def render(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"=== {m['role']} ===\n{m['content']}" for m in messages) + "\n"


def prompts(tmp_path) -> dict[str, str]:
    rows = make_rows(tmp_path)
    row = rows[0]
    return {
        "conversation": render(conversation.messages_for(row)),
        "detail": render(detail.messages_for(row)) + "\n--- requests ---\n" + "\n".join(detail.DETAIL_REQUESTS) + "\n",
        "diagnosis": render(diagnosis.messages_for(rows[:3])),
        "reasoning": render(reasoning.messages_for(row, CASE)),
        "abductive_student": render(abductive.student_messages(row, ["first guess", "teacher hint"])),
        "abductive_teacher": render(abductive.teacher_messages(row, CASE, ["first guess"])),
        "filter": render(medical_filter.messages_for(row)),
        "vqa": render(vqa.messages_for(row, vqa.narrator_questions(row))),
        "repair": REPAIR_INSTRUCTION + "\n",
        "align_requests": "\n".join(BRIEF_REQUESTS) + "\n",
    }


@pytest.mark.parametrize(
    "name",
    [
        "conversation",
        "detail",
        "diagnosis",
        "reasoning",
        "abductive_student",
        "abductive_teacher",
        "filter",
        "vqa",
        "repair",
        "align_requests",
    ],
)
def test_prompt_snapshot(name, tmp_path):
    text = prompts(tmp_path)[name]
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; run with UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"prompt {name} changed; update the snapshot and PROMPT_VERSION"


def test_alignment_records_golden(tmp_path):
    rows = make_rows(tmp_path)
    records = build_alignment_records(rows, seed=3, use_grounded=False) + build_alignment_records(
        rows[:2], seed=3, use_grounded=True
    )
    path = SNAPSHOTS / "align_golden.json"
    text = json.dumps(records, indent=1, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_alignment_draw_depends_on_seed_and_segment_only(tmp_path):
    rows = make_rows(tmp_path)
    full = {r["id"]: r for r in build_alignment_records(rows, seed=1)}
    part = build_alignment_records(list(reversed(rows[1:4])), seed=1)
    assert all(full[r["id"]] == r for r in part)
    other = {r["id"]: r["conversations"][0]["value"] for r in build_alignment_records(rows, seed=2)}
    assert any(other[k] != v["conversations"][0]["value"] for k, v in full.items())
    assert all(
        r["conversations"][1]["value"] == " ".join(u["text"] for u in row["utterances"])
        for r, row in zip(build_alignment_records(rows, seed=0), rows)
    )


def test_requests_are_our_own_words():
    import re

    # LLaVA's "Describe the following image in detail", with or without one word changed.
    near_llava = re.compile(r"describe (?:the following|this|the)(?: \w+)? (?:image|picture|photo) in detail\.?")
    for request in detail.DETAIL_REQUESTS + BRIEF_REQUESTS:
        assert not near_llava.fullmatch(request.lower()), request
    assert len(set(detail.DETAIL_REQUESTS)) == len(detail.DETAIL_REQUESTS) >= 8
    assert len(set(BRIEF_REQUESTS)) == len(BRIEF_REQUESTS) >= 8
