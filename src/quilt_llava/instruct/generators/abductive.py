"""Iterative abductive reasoning between two LLM agents.

The *student* sees only what the image shows (the segment's narration, framed as
what is visible) and proposes a diagnosis with its reasons; the *teacher* knows the
case (diagnosis and clues) and corrects, hints or confirms. A dialogue has 4 or 6
messages (drawn per unit with weights 0.85 / 0.15) and stops early when the teacher
confirms the diagnosis or ends the guidance. The record has the student as the
human side and the teacher as the assistant.
"""

from __future__ import annotations

import re
from typing import Any

from quilt_llava.instruct.data import llava_record, plain_caption
from quilt_llava.instruct.generators.base import Session, Skip, Unit
from quilt_llava.instruct.generators.reasoning import CaseGenerator, case_text
from quilt_llava.instruct.replies import ReplyError, check_no_leaks, strip_fences

PROMPT_VERSION = "1"
TURN_CHOICES = (4, 6)
TURN_WEIGHTS = (0.85, 0.15)
CONFIRM_MARK = "[CONFIRMED]"
END_MARK = "[END]"

STUDENT_SYSTEM = """You are a pathology trainee looking at one microscopy image. What you can see in it is listed below.
Propose the most likely diagnosis and say which visible features lead you there, in a few sentences. When your teacher replies, take the feedback into account and refine or revise your reasoning.
Speak as someone looking at the image: never mention a description, a narration, a caption, a transcript, boxes, coordinates or 'the text'.

What you see:
{visible}"""

TEACHER_SYSTEM = """You are a pathology teacher. A trainee is looking at one microscopy image from a case and reasons toward a diagnosis.
What the image shows:
{visible}

You know the case:
{case}

Reply to the trainee's latest message in a few sentences: acknowledge what is right, correct what is wrong, and point to features in the image or findings worth considering. Do not give the diagnosis away before the trainee reaches it.
If the trainee has reached the diagnosis, confirm it and end your message with {confirm}. If more guidance would not help, end your message with {end}.
Speak as someone looking at the image: never mention a description, a narration, a caption, a transcript, boxes, coordinates or 'the text'."""

OPENING = "Here is the image. What do you make of it?"

_MARKS = re.compile(r"\s*\[(?:CONFIRMED|END)\]\s*", re.I)


def visible_text(row: dict[str, Any]) -> str:
    return plain_caption(row)


def parse_student(text: str) -> str:
    body = strip_fences(text).strip()
    body = _MARKS.sub(" ", body).strip()
    if len(body) < 10:
        raise ReplyError("the reply is empty or too short; propose a diagnosis and your reasons")
    check_no_leaks([body], what="message")
    return body


def parse_teacher(text: str) -> tuple[str, bool]:
    """The teacher's message without markers, and whether it ends the dialogue."""
    body = strip_fences(text).strip()
    stop = bool(re.search(r"\[(?:CONFIRMED|END)\]", body, re.I))
    body = _MARKS.sub(" ", body).strip()
    if len(body) < 10:
        raise ReplyError("the reply is empty or too short; answer the trainee")
    check_no_leaks([body], what="message")
    return body, stop


def student_messages(row: dict[str, Any], dialogue: list[str]) -> list[dict[str, str]]:
    """The student's view: its own messages are 'assistant', the teacher's are 'user'."""
    msgs = [
        {"role": "system", "content": STUDENT_SYSTEM.format(visible=visible_text(row))},
        {"role": "user", "content": OPENING},
    ]
    for i, text in enumerate(dialogue):
        msgs.append({"role": "assistant" if i % 2 == 0 else "user", "content": text})
    return msgs


def teacher_messages(row: dict[str, Any], case: dict[str, Any], dialogue: list[str]) -> list[dict[str, str]]:
    """The teacher's view: student messages are 'user', its own are 'assistant'."""
    system = TEACHER_SYSTEM.format(
        visible=visible_text(row),
        case=case_text(case).replace(" (do not name it)", ""),
        confirm=CONFIRM_MARK,
        end=END_MARK,
    )
    msgs = [{"role": "system", "content": system}]
    for i, text in enumerate(dialogue):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return msgs


class AbductiveGenerator(CaseGenerator):
    name = "abductive"
    prompt_version = PROMPT_VERSION
    max_calls_per_unit = max(TURN_CHOICES)

    def plan(self, unit: Unit) -> list[list[dict[str, Any]]]:
        return [student_messages(unit.row, [])] if visible_text(unit.row) else []

    def turns_for(self, unit: Unit) -> int:
        return self.rng(unit).choices(TURN_CHOICES, weights=TURN_WEIGHTS, k=1)[0]

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        if not visible_text(unit.row):
            raise Skip("segment has no narration")
        case = self.casebook.case_for(unit.video_id)
        max_turns = self.turns_for(unit)
        dialogue: list[str] = []
        stopped = None
        while len(dialogue) < max_turns:
            if len(dialogue) % 2 == 0:
                dialogue.append(await session.ask(student_messages(unit.row, dialogue), parse_student))
            else:
                text, stop = await session.ask(teacher_messages(unit.row, case, dialogue), parse_teacher)
                dialogue.append(text)
                if stop:
                    stopped = "teacher"
                    break
        pairs = [(dialogue[i], dialogue[i + 1]) for i in range(0, len(dialogue) - 1, 2)]
        prov = {
            **self.provenance(unit),
            "max_turns": max_turns,
            "turns": len(dialogue),
            "stopped_early": stopped is not None and len(dialogue) < max_turns,
        }
        return [llava_record(f"{unit.id}-abductive", unit.row["image"], pairs, prov)]
