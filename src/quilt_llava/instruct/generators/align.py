"""Stage-1 alignment data (no LLM): each segment image with its narration as the answer
to one brief-description request drawn at random (seeded per segment)."""

from __future__ import annotations

import random
from typing import Any

from quilt_llava.instruct.data import caption_of, llava_record, segment_uid
from quilt_llava.instruct.generators.base import Generator, Session, Skip, Unit

PROMPT_VERSION = "2"

BRIEF_REQUESTS = (
    "Which tissue and features does this field show? One or two sentences.",
    "What does this histology image show? Keep it brief.",
    "What would you tell a student about this field, in a sentence or two?",
    "Briefly describe the tissue shown here.",
    "In a few words, what are we looking at?",
    "Name the main histological finding in this image, briefly.",
    "Describe the main findings in this image briefly.",
    "Point out what stands out in this section, in a few words.",
    "What is shown in this field of view? Answer briefly.",
    "Write a brief caption for this image.",
    "Sum up the content of this slide image.",
    "Tell me concisely what this image contains.",
)


def alignment_record(row: dict[str, Any], rng: random.Random, caption: str) -> dict[str, Any] | None:
    text = caption_of(row, caption)
    if not text:
        return None
    question = rng.choice(BRIEF_REQUESTS)
    uid = segment_uid(row)
    return llava_record(
        f"{uid}-align",
        row["image"],
        [(question, text)],
        {
            "video_id": row["video_id"],
            "segment_id": row.get("segment_id"),
            "generator": "align",
            "prompt_version": PROMPT_VERSION,
            "model": None,
            "caption": caption,
        },
    )


def build_alignment_records(
    rows: list[dict[str, Any]], seed: int = 0, use_grounded: bool = False
) -> list[dict[str, Any]]:
    """Stage-1 LLaVA records for ``rows`` (segments with no narration are left out).

    The request drawn for a segment depends only on ``seed`` and the segment id, so
    subsets and re-orderings of ``rows`` keep each segment's record unchanged.
    """
    mode = "grounded" if use_grounded else "plain"
    out = []
    for row in rows:
        rec = alignment_record(row, random.Random(f"{seed}:align:{segment_uid(row)}"), mode)
        if rec is not None:
            out.append(rec)
    return out


class AlignGenerator(Generator):
    name = "align"
    prompt_version = PROMPT_VERSION
    uses_llm = False
    max_calls_per_unit = 0

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        rec = alignment_record(unit.row, self.rng(unit), self.options.caption)
        if rec is None:
            raise Skip("segment has no narration")
        return [rec]
