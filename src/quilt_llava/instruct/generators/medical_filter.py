"""Medical-content filter: does a segment's narration carry medical content, and could a
diagnosis be told from it?"""

from __future__ import annotations

from typing import Any

from quilt_llava.instruct.data import plain_caption
from quilt_llava.instruct.generators.base import Generator, Session, Unit, require_narration
from quilt_llava.instruct.replies import parse_json_object, yes_no
from quilt_llava.instruct.structured import strict_object

PROMPT_VERSION = "1"
_YES_NO = {"type": "string", "enum": ["yes", "no"]}
REPLY_SCHEMA = ("medical_filter", strict_object({"medical": _YES_NO, "diagnosis": _YES_NO}))

SYSTEM = """You sort snippets of speech from pathology teaching videos. For the snippet you are given, answer two questions:
1. "medical": does it talk about medical or pathology content (tissue, cells, organs, disease, stains, specimens, clinical findings), rather than greetings, course logistics, software or other talk?
2. "diagnosis": could a specific diagnosis, or normal tissue of a named organ, be told from this snippet alone?

Reply with JSON only: {"medical": "yes" or "no", "diagnosis": "yes" or "no"}"""


def messages_for(row: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Snippet:\n{plain_caption(row)}"}]


def parse_reply(text: str) -> dict[str, bool]:
    obj = parse_json_object(text)
    return {
        "medical": yes_no(obj.get("medical"), "medical"),
        "diagnosis_discernible": yes_no(obj.get("diagnosis"), "diagnosis"),
    }


class FilterGenerator(Generator):
    name = "filter"
    prompt_version = PROMPT_VERSION
    kind = "table"

    def plan(self, unit: Unit) -> list[list[dict[str, Any]]]:
        return [messages_for(unit.row)] if plain_caption(unit.row) else []

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        require_narration(unit.row)
        verdict = await session.ask(messages_for(unit.row), parse_reply, REPLY_SCHEMA)
        return [{"id": f"{unit.id}-filter", "image": unit.row["image"], **verdict, **self.provenance(unit)}]
