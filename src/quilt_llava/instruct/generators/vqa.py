"""Quilt-VQA-style evaluation questions, taken only from questions the narrator asked.

Sentences of the narration that end in "?" are the candidates. The LLM keeps those
about visible content that the narration goes on to answer, makes each stand alone,
answers it from the narration and types it OPEN or CLOSED (yes/no).
"""

from __future__ import annotations

import re
from typing import Any

from quilt_llava.instruct.data import plain_caption
from quilt_llava.instruct.generators.base import Generator, Session, Skip, Unit
from quilt_llava.instruct.generators.shared import VOICE_RULES
from quilt_llava.instruct.replies import ReplyError, check_no_leaks, parse_json_object, require_str
from quilt_llava.instruct.structured import STRING, strict_object

PROMPT_VERSION = "1"
OPEN, CLOSED = "OPEN", "CLOSED"
MIN_QUESTION_WORDS = 3
REPLY_SCHEMA = (
    "vqa",
    strict_object(
        {
            "pairs": {
                "type": "array",
                "items": strict_object(
                    {
                        "source": {"type": "integer"},
                        "question": STRING,
                        "answer": STRING,
                        "answer_type": {"type": "string", "enum": [OPEN, CLOSED]},
                        # null for OPEN questions
                        "yes_no_answer": {"type": ["string", "null"], "enum": ["yes", "no", None]},
                    }
                ),
            }
        }
    ),
)

SYSTEM = f"""You build an evaluation set of questions about pathology images. You are given what a pathologist said while one image was on screen in a teaching video, and a numbered list of the questions they asked aloud.

For each listed question that is about something visible in the image and that the speaker then answers, write one question/answer pair:
- "source": the number of the listed question;
- "question": the question rephrased to stand on its own, as asked about the image;
- "answer": a short answer taken from what was said;
- "answer_type": "CLOSED" if it is a yes/no question, else "OPEN";
- "yes_no_answer": "yes" or "no", for CLOSED questions only.
Leave out rhetorical questions, questions to the audience that go unanswered, and questions about anything but the image.
{VOICE_RULES}

Reply with JSON only: {{"pairs": [{{"source": 1, "question": "...", "answer": "...", "answer_type": "OPEN"}}, ...]}}
Reply {{"pairs": []}} if no question qualifies."""

# The answer's first word, when it is a bare yes or no ("Normal tissue, yes." starts with neither).
_LEADING_YES_NO = re.compile(r"^\s*(yes|no)\b", re.IGNORECASE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z][a-z'-]{3,}")


def narrator_questions(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Sentences ending in "?" with the time span of the utterances they came from."""
    utts = sorted(row.get("utterances") or [], key=lambda u: (u.get("start", 0.0), u.get("end", 0.0)))
    found, buf, t0 = [], "", None
    for u in utts:
        for piece in _SENTENCE_SPLIT.split(str(u.get("text", "")).strip()):
            if not piece:
                continue
            if t0 is None:
                t0 = u.get("start")
            buf = f"{buf} {piece}".strip()
            if piece.endswith((".", "!", "?")):
                if buf.endswith("?") and len(buf.split()) >= MIN_QUESTION_WORDS:
                    found.append({"text": buf, "start": t0, "end": u.get("end")})
                buf, t0 = "", None
    return found


def messages_for(row: dict[str, Any], questions: list[dict[str, Any]]) -> list[dict[str, str]]:
    listed = "\n".join(f"{i}. {q['text']}" for i, q in enumerate(questions, start=1))
    user = f"What was said:\n{plain_caption(row)}\n\nQuestions the speaker asked:\n{listed}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _overlap(a: str, b: str) -> bool:
    return bool(set(_WORD.findall(a.lower())) & set(_WORD.findall(b.lower())))


def make_parser(questions: list[dict[str, Any]]):
    def parse(text: str) -> list[dict[str, Any]]:
        obj = parse_json_object(text)
        pairs = obj.get("pairs")
        if not isinstance(pairs, list):
            raise ReplyError("the object needs a 'pairs' list")
        out = []
        for i, p in enumerate(pairs):
            if not isinstance(p, dict):
                raise ReplyError(f"pairs[{i}] must be an object")
            src = p.get("source")
            if isinstance(src, str) and src.strip().isdigit():
                src = int(src)
            if not isinstance(src, int) or isinstance(src, bool) or not 1 <= src <= len(questions):
                raise ReplyError(f"pairs[{i}].source must be a number from 1 to {len(questions)}")
            question, answer = require_str(p, "question", f"pairs[{i}]."), require_str(p, "answer", f"pairs[{i}].")
            source = questions[src - 1]
            if not _overlap(question, source["text"]):
                raise ReplyError(f"pairs[{i}].question does not come from listed question {src}")
            qtype = str(p.get("answer_type", "")).strip().upper()
            if qtype not in (OPEN, CLOSED):
                raise ReplyError(f"pairs[{i}].answer_type must be OPEN or CLOSED")
            item = {
                "question": question,
                "answer": answer,
                "answer_type": qtype,
                "narrator_question": source["text"],
                "narrator_time": [source["start"], source["end"]],
            }
            if qtype == CLOSED:
                yn = str(p.get("yes_no_answer", "")).strip().lower().rstrip(".")
                if yn not in ("yes", "no"):
                    raise ReplyError(f'pairs[{i}] is CLOSED and needs yes_no_answer "yes" or "no"')
                lead = _LEADING_YES_NO.match(answer)
                if lead and lead.group(1).lower() != yn:
                    raise ReplyError(f"pairs[{i}].answer starts with {lead.group(1)!r} but its yes_no_answer is {yn!r}")
                item["yes_no_answer"] = yn
            out.append(item)
        check_no_leaks([o["answer"] for o in out])
        check_no_leaks([o["question"] for o in out], what="question")
        return out

    return parse


class VQAGenerator(Generator):
    name = "vqa"
    prompt_version = PROMPT_VERSION
    kind = "table"

    def plan(self, unit: Unit) -> list[list[dict[str, Any]]]:
        qs = narrator_questions(unit.row)
        return [messages_for(unit.row, qs)] if qs else []

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        questions = narrator_questions(unit.row)
        if not questions:
            raise Skip("the narrator asked no question here")
        items = await session.ask(messages_for(unit.row, questions), make_parser(questions), REPLY_SCHEMA)
        prov = self.provenance(unit)
        return [
            {"id": f"{unit.id}-vqa{k}", "question_id": f"{unit.id}-vqa{k}", "image": unit.row["image"], **item, **prov}
            for k, item in enumerate(items)
        ]
