"""Detailed description: a formal account of the image, asked with a randomly drawn request."""

from __future__ import annotations

from typing import Any

from quilt_llava.instruct.data import describe_segment, llava_record, plain_caption
from quilt_llava.instruct.generators.base import Generator, Session, Unit, require_narration
from quilt_llava.instruct.generators.shared import SOURCE_NOTE, VOICE_RULES
from quilt_llava.instruct.replies import ReplyError, check_no_leaks, strip_fences

PROMPT_VERSION = "2"  # 2: request list reworded in our own words

DETAIL_REQUESTS = (
    "Report everything this histopathology image shows, from the architecture down to single cells.",
    "Give a thorough description of what this slide shows.",
    "Walk me through the findings in this image, region by region.",
    "How would you write up this field in a pathology report? Cover every feature you see.",
    "Go over this field carefully and list each notable finding with where it lies.",
    "What can be seen in this microscopy image? Please be thorough.",
    "Write a complete morphological description of this field.",
    "Describe the tissue architecture, cells and staining in this image in detail.",
    "Explain in detail what this image of a slide depicts.",
    "Give a comprehensive account of the features visible here.",
)

SYSTEM = f"""You write reference descriptions of pathology images for training an assistant.
{SOURCE_NOTE}

Write a formal, detailed description of the image, the way a pathologist would dictate it while looking at the slide: what tissue it is, its architecture, the cells and their features, the staining, any notable findings and where in the image they are.
{VOICE_RULES}
Reply with the description only: one or two paragraphs of plain prose, no headings, no lists, no JSON."""

MIN_CHARS = 40


def messages_for(row: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": describe_segment(row)}]


def parse_reply(text: str) -> str:
    body = strip_fences(text).strip()
    if body.startswith(("{", "[")):
        raise ReplyError("reply with plain prose, not JSON")
    if len(body) < MIN_CHARS:
        raise ReplyError(f"the description is too short ({len(body)} characters; write at least a few sentences)")
    check_no_leaks([body], what="description")
    return body


class DetailGenerator(Generator):
    name = "detail"
    describes = True
    wants_json = False
    prompt_version = PROMPT_VERSION

    def plan(self, unit: Unit) -> list[list[dict[str, Any]]]:
        return [messages_for(unit.row)] if plain_caption(unit.row) else []

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        require_narration(unit.row)
        question = self.rng(unit).choice(DETAIL_REQUESTS)
        description = await session.ask(messages_for(unit.row), parse_reply)
        return [llava_record(f"{unit.id}-detail", unit.row["image"], [(question, description)], self.provenance(unit))]
