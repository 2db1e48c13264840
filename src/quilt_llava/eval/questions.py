"""Question files of the pathology VQA benchmarks, read into one canonical form.

Formats read (each row becomes an :class:`EvalQuestion`):

- ``quilt``: Quilt-VQA rows ``{id or question_id, question, answer, answer_type:
  OPEN|CLOSED, yes_no_answer?, image}``. Also accepts ``text`` for the question, and
  ``choices`` (list) with a letter ``answer`` for multiple choice.
- ``llava_med``: LLaVA-Med / PathVQA rows ``{id, image, conversations: [{from: human,
  value: "<image>\\nquestion"}, {from: gpt, value: answer}], answer_type}``, or its
  question-file form ``{question_id, image, text, answer_type?}``.
- ``slake``: SLAKE ``{qid, img_name, question, answer, answer_type, q_lang}``.
- ``vqa_rad``: VQA-RAD ``{qid, image_name, question, answer, answer_type, phrase_type}``.
- ``pmc_vqa``: PMC-VQA CSV ``Figure_path, Question, Answer, Choice A..D, Answer_label``.

Rows without ``answer_type`` get one inferred from the reference (yes/no -> CLOSED,
else OPEN), flagged ``answer_type_inferred`` so scorers can say so; rows without any
id get their 0-based row index. A benchmark declaration may add a ``where`` filter (keep rows whose field equals one
of the given values) and ``fields`` renames. This module is pure Python (no torch).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quilt_llava.errors import InputError
from quilt_llava.files import iter_jsonl, read_records

OPEN, CLOSED, CHOICE = "open", "closed", "choice"
_ID_KEYS = ("question_id", "id", "qid", "index")
# Where each format keeps the image file name (or, in a Hugging Face dataset, the image).
IMAGE_KEYS = ("image", "image_path", "img_name", "image_name", "Figure_path")
ANSWER_TYPES = (OPEN, CLOSED, CHOICE)
CHOICE_LETTERS = "ABCDEFGH"


@dataclass
class EvalQuestion:
    """One benchmark question in canonical form.

    ``answer`` is the reference text (for ``choice`` questions: the letter).
    ``yes_no_answer`` overrides ``answer`` for closed scoring (Quilt-VQA ships both).
    """

    question_id: str
    question: str
    answer: str | None
    answer_type: str  # one of ANSWER_TYPES
    image: str | None = None
    yes_no_answer: str | None = None
    choices: list[str] | None = None
    box: list[float] | None = None  # normalised region for red-circle drawing
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "question_id": self.question_id,
            "question": self.question,
            "answer": self.answer,
            "answer_type": self.answer_type.upper(),
            "image": self.image,
        }
        if self.yes_no_answer is not None:
            out["yes_no_answer"] = self.yes_no_answer
        if self.choices is not None:
            out["choices"] = self.choices
        if self.box is not None:
            out["box"] = self.box
        if self.extra:
            out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


def _first(row: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in row and row[key] is not None and row[key] != "":
            return row[key]
    return None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _answer_type(raw: Any, answer: str | None, choices: list[str] | None, source: str) -> str:
    if choices:
        return CHOICE
    if raw is None:
        raise InputError(source, "no answer_type (expected OPEN or CLOSED)")
    kind = str(raw).strip().lower()
    if kind in ("yes/no", "yes_no", "yesno"):
        kind = CLOSED
    elif kind == "other":  # the released Quilt-VQA scorer treats "other" as OPEN
        kind = OPEN
    if kind not in ANSWER_TYPES:
        raise InputError(source, f"answer_type '{raw}' is not one of OPEN, CLOSED, CHOICE")
    return kind


_IMAGE_TAG = re.compile(r"^\s*<image>\s*")


def _strip_image_tag(text: str) -> str:
    return _IMAGE_TAG.sub("", text).replace("<image>", "").strip()


def _from_quilt(row: dict[str, Any], source: str) -> EvalQuestion:
    qid = _first(row, "question_id", "id", "qid")
    if qid is None:
        raise InputError(source, "row has no id (expected 'id' or 'question_id')")
    conv = row.get("conversations", row.get("conversatons"))  # the latter: a key typo in LLaVA-Med files
    question = _first(row, "question", "text")
    answer = _first(row, "answer", "gpt_answer")
    if isinstance(conv, list) and conv:
        if question is None:
            question = conv[0].get("value")
        if answer is None and len(conv) > 1:
            answer = conv[1].get("value")
    if question is None:
        raise InputError(source, f"question {qid} has no question text ('question', 'text' or 'conversations')")
    choices = row.get("choices") or row.get("options")
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
        raise InputError(source, f"question {qid}: 'choices' must be a list of strings")
    answer_text = _as_text(answer)
    raw_type = _first(row, "answer_type")
    inferred = False
    if raw_type is None and not choices:
        # Question files meant only for generation (or the judge) carry no type. With a
        # reference answer the type is inferred (yes/no -> CLOSED) and flagged.
        inferred = answer_text is not None
        raw_type = CLOSED if (answer_text or "").strip().lower().rstrip(".") in ("yes", "no") else OPEN
    kind = _answer_type(raw_type, answer_text, choices, f"{source} (question {qid})")
    box = row.get("box")
    known = {
        "question_id",
        "id",
        "qid",
        "question",
        "text",
        "answer",
        "gpt_answer",
        "answer_type",
        "conversations",
        "conversatons",
        "choices",
        "options",
        "image",
        "yes_no_answer",
        "box",
    }
    return EvalQuestion(
        question_id=str(qid),
        question=_strip_image_tag(str(question)),
        answer=answer_text,
        answer_type=kind,
        image=_as_text(_first(row, *IMAGE_KEYS)),
        yes_no_answer=_as_text(row.get("yes_no_answer")),
        choices=list(choices) if choices else None,
        box=[float(v) for v in box] if isinstance(box, list) and len(box) == 4 else None,
        extra={
            **{k: v for k, v in row.items() if k not in known},
            **({"answer_type_inferred": True} if inferred else {}),
        },
    )


def _renamed(mapping: dict[str, str]) -> Callable[[dict[str, Any], str], EvalQuestion]:
    def convert(row: dict[str, Any], source: str) -> EvalQuestion:
        renamed = dict(row)
        for ours, theirs in mapping.items():
            if theirs in row:
                renamed[ours] = row[theirs]
        return _from_quilt(renamed, source)

    return convert


def _from_pmc(row: dict[str, Any], source: str) -> EvalQuestion:
    qid = _first(row, "question_id", "id", "index")
    if qid is None:
        raise InputError(source, "row has no id")
    choices = []
    for letter in "ABCD":
        text = _first(row, f"Choice {letter}", f"choice_{letter.lower()}", f"Choice{letter}")
        if text is None:
            raise InputError(source, f"question {qid}: missing 'Choice {letter}'")
        choices.append(strip_choice_letter(str(text)))
    label = _first(row, "Answer_label", "answer_label")
    if label is None:
        answer = _first(row, "Answer", "answer")
        label = choice_letter_of(str(answer), choices) if answer is not None else None
    if label is None or str(label).strip().upper() not in CHOICE_LETTERS[: len(choices)]:
        raise InputError(
            source, f"question {qid}: no answer letter A-D ('Answer_label' or an answer equal to a choice)"
        )
    question = _first(row, "Question", "question")
    if question is None:
        raise InputError(source, f"question {qid}: no 'Question'")
    known = {
        "question_id",
        "id",
        "index",
        "Question",
        "question",
        "Answer",
        "answer",
        "Answer_label",
        "answer_label",
        "Figure_path",
        "image",
        "Choice A",
        "Choice B",
        "Choice C",
        "Choice D",
    }
    return EvalQuestion(
        question_id=str(qid),
        question=str(question).strip(),
        answer=str(label).strip().upper(),
        answer_type=CHOICE,
        image=_as_text(_first(row, "Figure_path", *IMAGE_KEYS[:4])),
        choices=choices,
        extra={k: v for k, v in row.items() if k not in known},
    )


ADAPTERS: dict[str, Callable[[dict[str, Any], str], EvalQuestion]] = {
    "quilt": _from_quilt,
    "llava_med": _from_quilt,
    "slake": _renamed({"question_id": "qid", "image": "img_name"}),
    "vqa_rad": _renamed({"question_id": "qid", "image": "image_name"}),
    "pmc_vqa": _from_pmc,
}


# The columns a scored run needs, per format: each entry lists the names that can
# supply it (any one is enough) and says what it is for, so an error names both.
_QUESTION_TEXT = (("question", "text", "conversations", "conversatons"), "the question")
_ANSWER_TEXT = (("answer", "gpt_answer", "conversations", "conversatons"), "the reference answer")
_IMAGE = (IMAGE_KEYS[:4], "the image or its file name")
REQUIRED_COLUMNS: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "quilt": [_QUESTION_TEXT, _ANSWER_TEXT, _IMAGE],
    "llava_med": [_QUESTION_TEXT, _ANSWER_TEXT, _IMAGE],
    "slake": [
        (("question",), "the question"),
        (("answer",), "the reference answer"),
        (("img_name",), "the image file name"),
    ],
    "vqa_rad": [
        (("question",), "the question"),
        (("answer",), "the reference answer"),
        (("image_name",), "the image file name"),
    ],
    "pmc_vqa": [
        (("Question", "question"), "the question"),
        (("Figure_path", "image"), "the image file name"),
        *[((f"Choice {c}", f"choice_{c.lower()}"), f"option {c}") for c in "ABCD"],
        (("Answer_label", "answer_label", "Answer", "answer"), "the right option (letter or text)"),
    ],
}


def missing_columns(columns: Iterable[str], fmt: str, fields: dict[str, str] | None = None) -> list[str]:
    """Descriptions of the required columns of ``fmt`` that ``columns`` lacks (empty when complete)."""
    present = set(columns)
    for ours, theirs in (fields or {}).items():
        if theirs in present:
            present.add(ours)
    out = []
    for names, what in REQUIRED_COLUMNS.get(fmt, []):
        if not present & set(names):
            out.append(
                f"'{names[0]}' ({what}" + (f"; also accepted: {', '.join(names[1:])})" if len(names) > 1 else ")")
            )
    return out


def check_columns(columns: Iterable[str], fmt: str, source: str, fields: dict[str, str] | None = None) -> None:
    """Raise an :class:`InputError` naming every required column of ``fmt`` missing from ``source``."""
    columns = list(columns)
    missing = missing_columns(columns, fmt, fields)
    if missing:
        raise InputError(
            source,
            f"missing column{'s' if len(missing) > 1 else ''} for the '{fmt}' layout: "
            f"{'; '.join(missing)}. Columns present: {', '.join(columns) or '(none)'}",
        )


_CHOICE_PREFIX = re.compile(r"^\s*[A-H]\s*[:.)]\s*")


def strip_choice_letter(text: str) -> str:
    """``"B: Necrosis"`` -> ``"Necrosis"`` (PMC-VQA choices carry their letter)."""
    return _CHOICE_PREFIX.sub("", text).strip()


def choice_letter_of(answer: str, choices: list[str]) -> str | None:
    wanted = strip_choice_letter(answer).strip().lower()
    for i, text in enumerate(choices):
        if text.strip().lower() == wanted:
            return CHOICE_LETTERS[i]
    return None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() in (".csv", ".tsv"):
        if not path.exists():
            raise InputError(str(path), "file not found")
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            rows = []
            for i, row in enumerate(reader):
                row = {k.strip(): v for k, v in row.items() if k is not None}
                row.setdefault("index", i)
                rows.append(row)
            return rows
    return read_records(path)


def _keep(row: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, allowed in where.items():
        values = allowed if isinstance(allowed, list) else [allowed]
        value = row.get(key)
        if isinstance(value, str):
            value = value.strip()
        if value not in values:
            return False
    return True


def convert_rows(
    rows: Iterable[dict[str, Any]],
    fmt: str = "quilt",
    source: str = "questions",
    where: dict[str, Any] | None = None,
    fields: dict[str, str] | None = None,
) -> list[EvalQuestion]:
    """Convert raw rows to :class:`EvalQuestion`; errors name ``source`` and the row number."""
    if fmt not in ADAPTERS:
        raise InputError(source, f"unknown question format '{fmt}'; choose one of {sorted(ADAPTERS)}")
    adapter = ADAPTERS[fmt]
    out: list[EvalQuestion] = []
    for i, row in enumerate(rows, start=1):
        if isinstance(row, EvalQuestion):
            out.append(row)
            continue
        if where and not _keep(row, where):
            continue
        if fields:
            row = {**row, **{ours: row[theirs] for ours, theirs in fields.items() if theirs in row}}
        if not any(row.get(k) is not None for k in _ID_KEYS):
            # Exports without ids (e.g. a Hugging Face split saved as JSONL): the 0-based row index.
            row = {**row, "question_id": i - 1}
        out.append(adapter(row, f"{source} row {i}"))
    seen: dict[str, int] = {}
    dupes = []
    for q in out:
        seen[q.question_id] = seen.get(q.question_id, 0) + 1
        if seen[q.question_id] == 2:
            dupes.append(q.question_id)
    if dupes:
        raise InputError(source, f"duplicate question ids: {', '.join(dupes[:20])}{' ...' if len(dupes) > 20 else ''}")
    return out


def load_questions(
    path: str | os.PathLike[str],
    fmt: str = "quilt",
    where: dict[str, Any] | None = None,
    fields: dict[str, str] | None = None,
) -> list[EvalQuestion]:
    """Read a question file (JSON array, JSONL, or CSV/TSV for PMC-VQA)."""
    path = Path(path)
    return convert_rows(_read_rows(path), fmt=fmt, source=str(path), where=where, fields=fields)


def as_questions(items: Iterable[EvalQuestion | dict[str, Any]], fmt: str = "quilt") -> list[EvalQuestion]:
    """Accept canonical questions or raw rows (Python callers pass either)."""
    return convert_rows(items, fmt=fmt)


def existing_ids(path: str | os.PathLike[str], keep: Callable[[dict[str, Any]], bool] | None = None) -> set[str]:
    """The question ids with a row in the JSONL output ``path`` (that ``keep`` accepts, when given):
    what a resumed run skips. A missing file has none."""
    if not Path(path).exists():
        return set()
    return {str(row["question_id"]) for row in iter_jsonl(path) if "question_id" in row and (keep is None or keep(row))}
