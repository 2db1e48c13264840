"""Conversation: 3-4 independent question/answer pairs about what the image shows."""

from __future__ import annotations

import re
from typing import Any

from quilt_llava.instruct.data import describe_segment, llava_record, plain_caption
from quilt_llava.instruct.generators.base import Generator, Session, Unit, require_narration
from quilt_llava.instruct.generators.shared import AI_DISCLAIMER_HINT, SOURCE_NOTE, VOICE_RULES
from quilt_llava.instruct.replies import ReplyError, check_no_leaks, parse_qa_pairs
from quilt_llava.instruct.structured import STRING, strict_object

PROMPT_VERSION = "1"

SYSTEM = f"""You write training dialogues for an assistant that answers questions about pathology images.
{SOURCE_NOTE}

Write a dialogue of 3 or 4 question/answer pairs between a user and the assistant about this image.
- Each question stands on its own (it must make sense without the others) and asks about something visible: the tissue or organ, structures, cells, staining, patterns, where something lies in the image.
- Vary the questions; ask only what the material below lets you answer.
- {VOICE_RULES}
- In the last answer, after answering, {AI_DISCLAIMER_HINT}.

Reply with JSON only, in this form:
{{"pairs": [{{"question": "...", "answer": "..."}}, ...]}}"""

REPLY_SCHEMA = (
    "conversation",
    strict_object(
        {
            "pairs": {
                "type": "array",
                "minItems": 3,
                "maxItems": 4,
                "items": strict_object({"question": STRING, "answer": STRING}),
            }
        }
    ),
)

_AI = re.compile(r"\bAI\b|\bartificial intelligence\b|\blanguage model\b", re.I)
_NOT_DOCTOR = re.compile(r"\b(?:doctor|physician|pathologist|medical professional|clinician)\b", re.I)


def messages_for(row: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": describe_segment(row)}]


def parse_reply(text: str) -> list[tuple[str, str]]:
    pairs = parse_qa_pairs(text, 3, 4)
    check_no_leaks([a for _, a in pairs])
    check_no_leaks([q for q, _ in pairs], what="question")
    last = pairs[-1][1]
    if not (_AI.search(last) and _NOT_DOCTOR.search(last)):
        raise ReplyError(f"the last answer must {AI_DISCLAIMER_HINT}")
    return pairs


class ConversationGenerator(Generator):
    name = "conversation"
    prompt_version = PROMPT_VERSION

    def plan(self, unit: Unit) -> list[list[dict[str, Any]]]:
        return [messages_for(unit.row)] if plain_caption(unit.row) else []

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        require_narration(unit.row)
        pairs = await session.ask(messages_for(unit.row), parse_reply, REPLY_SCHEMA)
        return [llava_record(f"{unit.id}-conversation", unit.row["image"], pairs, self.provenance(unit))]
