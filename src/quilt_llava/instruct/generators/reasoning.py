"""Complex reasoning: one exchange that reasons from a single image toward the case's
diagnosis without naming it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from quilt_llava.instruct.data import (
    describe_segment,
    group_by_video,
    llava_record,
    plain_caption,
    segment_uid,
)
from quilt_llava.instruct.generators.base import (
    Generator,
    GeneratorOptions,
    Session,
    Unit,
    require_narration,
)
from quilt_llava.instruct.generators.diagnosis import CaseBook, case_answer_terms
from quilt_llava.instruct.generators.shared import SOURCE_NOTE, VOICE_RULES
from quilt_llava.instruct.replies import (
    ReplyError,
    check_no_leaks,
    mentions_any,
    parse_json_object,
    require_str,
)
from quilt_llava.instruct.structured import STRING, strict_object

PROMPT_VERSION = "1"
REPLY_SCHEMA = ("reasoning", strict_object({"question": STRING, "answer": STRING}))

SYSTEM = f"""You write reasoning exercises for an assistant that answers questions about pathology images.
{SOURCE_NOTE}
You also know the diagnosis of the case this image comes from and the findings that support it; one image usually shows only some of them.

Write one question a trainee might ask about this image that needs reasoning rather than recall (what the visible features suggest, which possibilities they favour or argue against, what should be examined next), and the assistant's answer. The answer reasons step by step from what is visible toward the diagnosis, weighing the alternatives, but does NOT name the diagnosis or give it away.
{VOICE_RULES}

Reply with JSON only: {{"question": "...", "answer": "..."}}"""


def case_text(case: dict[str, Any]) -> str:
    answer = "; ".join(case.get("diagnosis") or []) or case.get("normal") or ""
    clues = "\n".join(f"- {c}" for c in case.get("clues") or []) or "- (none listed)"
    return f"Diagnosis of the case (do not name it): {answer}\nSupporting findings:\n{clues}"


def messages_for(row: dict[str, Any], case: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"{describe_segment(row)}\n\n{case_text(case)}"},
    ]


def make_parser(case: dict[str, Any]) -> Callable[[str], tuple[str, str]]:
    secrets = case_answer_terms(case)

    def parse(text: str) -> tuple[str, str]:
        obj = parse_json_object(text)
        question, answer = require_str(obj, "question"), require_str(obj, "answer")
        check_no_leaks([answer])
        check_no_leaks([question], what="question")
        named = mentions_any(f"{question}\n{answer}", secrets)
        if named:
            raise ReplyError(f"the exchange names the diagnosis ('{named}'); reason toward it without naming it")
        return question, answer

    return parse


def segment_units_with_video(rows: list[dict[str, Any]]) -> list[Unit]:
    """One unit per segment, each carrying all segments of its video (for the case)."""
    by_video = group_by_video(rows)
    return [Unit(segment_uid(r), str(r["video_id"]), [r], {"video_rows": by_video[str(r["video_id"])]}) for r in rows]


class CaseGenerator(Generator):
    """A per-segment generator that needs its video's case (diagnosis and clues) first."""

    def __init__(self, options: GeneratorOptions) -> None:
        super().__init__(options)
        self.casebook = CaseBook(options.diagnoses_path)

    def units(self, rows: list[dict[str, Any]]) -> list[Unit]:
        return segment_units_with_video(rows)

    def prepare_plan(self, units: Sequence[Unit]) -> list[list[dict[str, Any]]]:
        return self.casebook.plan(units)

    async def prepare(self, units: Sequence[Unit], session_factory: Callable[[], Session]) -> dict[str, Any]:
        return await self.casebook.load(units, session_factory)


class ReasoningGenerator(CaseGenerator):
    name = "reasoning"
    describes = True
    prompt_version = PROMPT_VERSION

    def plan(self, unit: Unit) -> list[list[dict[str, Any]]]:
        # The case is not known before the diagnosis call; a placeholder keeps the size right.
        placeholder = {"diagnosis": ["(diagnosis)"], "clues": ["(finding)"] * 3}
        return [messages_for(unit.row, placeholder)] if plain_caption(unit.row) else []

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        require_narration(unit.row)
        case = self.casebook.case_for(unit.video_id)
        question, answer = await session.ask(messages_for(unit.row, case), make_parser(case), REPLY_SCHEMA)
        return [llava_record(f"{unit.id}-reasoning", unit.row["image"], [(question, answer)], self.provenance(unit))]
