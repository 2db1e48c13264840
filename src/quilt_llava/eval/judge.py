"""LLM-judged evaluation: reference answers from captions, paired 1-10 scores, summaries.

Three steps, each writing plain JSONL:

1. :func:`write_references`: a text-only LLM answers each question from the image's
   grounded caption (the only view of the image it gets), as the reference.
2. :func:`judge_answers`: a judge LLM sees the caption, the question, the reference
   (answer A) and the model's answer (answer B) and replies with the two scores (1-10)
   on its first line. Replies without two valid scores are sent back with a
   reminder up to ``retries`` times, then recorded as failed (``scores: null`` and an
   ``error``), never dropped. Review rows: ``{question_id, category, content, scores,
   answer1_id, answer2_id, judge, ...question metadata}``; ``content`` is the judge's
   reply with its first line normalised to the two plain scores (``"8 6"``).
3. :func:`summarize_reviews`: per category and overall, mean reference score, mean
   model score and the relative score 100 x mean(model) / mean(reference), with a
   95% bootstrap interval of the relative score (questions resampled).

Steps 1 and 2 append each finished row to their file as soon as it arrives (fsynced),
and skip the question ids already there, so a killed run is resumed by running it
again. :func:`plan_judge` counts the calls a run would make without sending any.
Steps 1 and 2 are coroutines (:func:`awrite_references`, :func:`ajudge_answers`) usable
from a running event loop, with blocking wrappers of the plain names. The client is
anything with the small :class:`ChatClient` protocol.

The prompts are this project's own wording; they are snapshot-tested.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from quilt_llava.errors import InputError
from quilt_llava.eval.questions import existing_ids
from quilt_llava.files import JsonlAppender, iter_jsonl, read_records

# --------------------------------------------------------------------------- prompts

REFERENCE_SYSTEM = (
    "You are a pathologist preparing the answer key for questions about a microscopy image. "
    "You cannot see the image; instead you get a description of it, in which a phrase may be "
    "followed by the normalized box [x0, y0, x1, y1] of the region it refers to (0 is the "
    "left or top edge, 1 the right or bottom edge)."
)
REFERENCE_USER = (
    "Description of the image:\n{caption}\n\n"
    "Question: {question}\n\n"
    "Answer the question as a careful pathologist who is looking at the image would. "
    "Use only what the description supports, speak as if you see the image yourself, and "
    "do not mention the description, the boxes or any coordinates. Where a location matters, "
    "describe it in words (for example 'near the upper left')."
)
JUDGE_SYSTEM = (
    "You review answers to questions about pathology images. The image itself is not available "
    "to you; a written account of what it shows takes its place. Score strictly, and favour "
    "neither answer for where it stands or how long it is."
)
JUDGE_USER = (
    "Image account:\n<<<\n{caption}\n>>>\n\n"
    "Question put to both answerers:\n<<<\n{question}\n>>>\n\n"
    "Answer A:\n<<<\n{answer1}\n>>>\n\n"
    "Answer B:\n<<<\n{answer2}\n>>>\n\n"
    "Give answer A and answer B each a score from 1 to 10: 1 for an answer that is wrong or of no "
    "use, 10 for one that is correct, complete and to the point. Weigh first whether it agrees "
    "with the image account, then whether it addresses the question, then how much useful "
    "pathological detail it offers.\n"
    "Reply layout: line 1 holds only the two scores, A's then B's, separated by one space "
    "(such as: 6 9). Lines 2 onward justify them briefly."
)
JUDGE_REMINDER = (
    "Line 1 of that reply was not two scores. Send the review once more, laid out as asked: "
    "line 1 only the score of answer A and the score of answer B (each 1 to 10, one space "
    "between), then the justification from line 2 on."
)


def reference_messages(question: str, caption: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": REFERENCE_SYSTEM},
        {"role": "user", "content": REFERENCE_USER.format(caption=caption.strip(), question=question.strip())},
    ]


def judge_messages(question: str, caption: str, answer1: str, answer2: str) -> list[dict[str, str]]:
    user = JUDGE_USER.format(
        caption=caption.strip(), question=question.strip(), answer1=answer1.strip(), answer2=answer2.strip()
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------- parsing

_ANSWER_LABEL = re.compile(
    r"\b(?:assistant\s*[12]|answer\s*[ab12]|score\s+(?:of\s+|for\s+)?[ab])\b\s*[:=]?|\b[ab]\s*[:=]", re.IGNORECASE
)
_OUT_OF_TEN = re.compile(r"\s*/\s*10\b")
# A number not glued to a word, a decimal point or a minus sign ("-1" is no score of 1);
# a trailing full stop is fine ("8 6.").
_NUMBER = re.compile(r"(?<![\w.\-])\d+(?:\.\d+)?(?!\w|\.\d)")
SCORE_RANGE = (1.0, 10.0)


def valid_score(value: Any) -> bool:
    """A judge score in 1..10 (LLaVA's review files mark a failed judgement as -1 -1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and SCORE_RANGE[0] <= value <= SCORE_RANGE[1]


def parse_scores(content: str | None) -> tuple[float, float] | None:
    """The two scores (each 1-10) on the first non-empty line of a judge reply, or None.

    Tolerates "8 6", "8 6.", "8, 6", "8/10 6/10", "**8 6**", "A: 8, B: 6",
    "Assistant 1: 8, Assistant 2: 6"; anything else on that line that is a number makes
    it ambiguous (None), and so does a score outside 1-10 ("0 0", "-1 -1").
    """
    if not content:
        return None
    line = next((ln for ln in content.splitlines() if ln.strip()), "")
    line = _OUT_OF_TEN.sub(" ", _ANSWER_LABEL.sub(" ", line.replace("*", " ")))
    if re.search(r"-\s*\d", line):
        return None  # a negative number: LLaVA's "-1 -1" failure marker, never a score
    numbers = [float(n) for n in _NUMBER.findall(line)]
    if len(numbers) != 2 or not all(valid_score(n) for n in numbers):
        return None
    return numbers[0], numbers[1]


def canonical_content(content: str, scores: tuple[float, float]) -> str:
    """The reply with its first line rewritten as plain ``"8 6"``, so any reader of
    review files (including LLaVA's, which splits that line on spaces) gets the scores."""
    lines = content.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.strip())
    head = " ".join(f"{v:g}" for v in scores)
    return "\n".join([head, *lines[first + 1 :]])


# --------------------------------------------------------------------------- questions


@dataclass
class JudgeQuestion:
    question_id: str
    question: str
    caption: str
    category: str
    meta: dict[str, Any] = field(default_factory=dict)


_CORE_KEYS = {
    "question_id",
    "id",
    "question",
    "text",
    "caption",
    "grounded_caption",
    "fig_caption",
    "context",
    "category",
    "type",
    "conversations",
}


def to_judge_questions(rows: Sequence[dict[str, Any]], source: str = "questions") -> list[JudgeQuestion]:
    """Rows ``{question_id|id, question|text, caption|grounded_caption|context, category|type}``."""
    out = []
    for i, row in enumerate(rows, start=1):
        where = f"{source} row {i}"
        qid = row.get("question_id", row.get("id"))
        question = row.get("question", row.get("text"))
        caption = next(
            (
                row[k]
                for k in ("caption", "grounded_caption", "fig_caption", "context")
                if isinstance(row.get(k), str) and row[k].strip()
            ),
            None,
        )
        category = row.get("category", row.get("type"))
        problems = [
            name
            for name, v in (("question_id", qid), ("question", question), ("caption", caption), ("category", category))
            if v is None
        ]
        if problems:
            raise InputError(where, f"missing {', '.join(problems)}")
        meta = {k: v for k, v in row.items() if k not in _CORE_KEYS and isinstance(v, (str, int, float, bool))}
        out.append(
            JudgeQuestion(str(qid), str(question).replace("<image>", "").strip(), str(caption), str(category), meta)
        )
    return out


def load_judge_questions(path: str | os.PathLike[str]) -> list[JudgeQuestion]:
    return to_judge_questions(read_records(path), source=str(path))


def _answers(path_or_rows: str | os.PathLike[str] | Sequence[dict[str, Any]], source: str) -> dict[str, str]:
    rows = read_records(path_or_rows) if isinstance(path_or_rows, (str, os.PathLike)) else path_or_rows
    out = {}
    for i, row in enumerate(rows, start=1):
        qid, text = row.get("question_id", row.get("id")), row.get("text", row.get("answer"))
        if qid is None or not isinstance(text, str):
            raise InputError(f"{source} row {i}", "expected {question_id, text}")
        out[str(qid)] = text
    return out


# Instruction generators (their ``generator`` provenance) -> judge categories.
GENERATOR_CATEGORIES = {"conversation": "conv", "detail": "detail", "reasoning": "reasoning", "abductive": "abductive"}


def judge_questions_from_records(
    records: Sequence[dict[str, Any]],
    narratives: Sequence[dict[str, Any]] | None = None,
    categories: Sequence[str] | None = ("conv", "detail"),
    source: str = "records",
) -> list[dict[str, Any]]:
    """Held-out LLaVA-format instruction records -> judge question rows.

    Every human turn becomes one question (the generated Q/A pairs are independent),
    ``{question_id: "<record id>_t<k>", image, question, caption, category, video_id,
    segment_id}``. The caption is the record's own ``grounded_caption``/``caption``,
    else the grounded caption of its ``(video_id, segment_id)`` in ``narratives``.
    ``categories`` keeps only those (None keeps all).
    """
    captions = {
        (str(n.get("video_id")), str(n.get("segment_id"))): n.get("grounded_caption") for n in (narratives or [])
    }
    out = []
    for i, rec in enumerate(records, start=1):
        where = f"{source} row {i}"
        category = GENERATOR_CATEGORIES.get(str(rec.get("generator")), rec.get("category") or rec.get("generator"))
        if categories is not None and category not in categories:
            continue
        caption = (
            rec.get("grounded_caption")
            or rec.get("caption")
            or captions.get((str(rec.get("video_id")), str(rec.get("segment_id"))))
        )
        if not caption:
            raise InputError(
                where,
                f"no caption for record {rec.get('id')} (no 'grounded_caption' and no narrative "
                f"row for video {rec.get('video_id')!r}, segment {rec.get('segment_id')!r})",
            )
        turns = rec.get("conversations")
        if not isinstance(turns, list) or rec.get("id") is None:
            raise InputError(where, "expected a LLaVA record {id, image, conversations}")
        k = 0
        for turn in turns:
            if turn.get("from") in ("human", "user"):
                out.append(
                    {
                        "question_id": f"{rec['id']}_t{k}",
                        "image": rec.get("image"),
                        "question": str(turn.get("value", "")).replace("<image>", "").strip(),
                        "caption": caption,
                        "category": category,
                        "video_id": rec.get("video_id"),
                        "segment_id": rec.get("segment_id"),
                    }
                )
                k += 1
    return out


# --------------------------------------------------------------------------- steps


class ChatClient(Protocol):
    """What the judge steps use of a chat client (:class:`quilt_llava.instruct.llm.LLMClient` has it)."""

    @property
    def config(self) -> Any:
        """The client's settings; ``config.model`` names the model in the written rows."""
        ...

    async def arun(
        self, requests: Sequence[Any], description: str = ..., on_result: Callable[[int, Any], None] | None = ...
    ) -> list[Any]:
        """Send ``requests`` concurrently, calling ``on_result(index, result)`` as each finishes."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP session bound to the current event loop."""
        ...


class PlanningClient(Protocol):
    """What :func:`plan_judge` uses of a chat client: cache look-ups and prices, no calls."""

    @property
    def config(self) -> Any:
        """The client's settings (``model``, ``max_tokens``, prices)."""
        ...

    def is_cached(self, messages: Sequence[dict[str, Any]], params: dict[str, Any] | None = ...) -> bool:
        """Whether the response cache already answers ``messages``."""
        ...

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """US dollars for that many tokens."""
        ...


@dataclass
class JudgeReport:
    written: int = 0
    skipped_existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _blocking_form(step: Callable[..., Coroutine[Any, Any, JudgeReport]], name: str) -> Callable[..., JudgeReport]:
    """The blocking form of an async judge step: it runs the step in its own event loop and
    closes the client's session at the end (so one client serves several calls)."""
    signature = inspect.signature(step)

    @functools.wraps(step)
    def blocking(*args: Any, **kwargs: Any) -> JudgeReport:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(f"{name} cannot run inside an event loop; await {step.__name__} there instead")
        client = signature.bind(*args, **kwargs).arguments["client"]

        async def main() -> JudgeReport:
            try:
                return await step(*args, **kwargs)
            finally:
                await client.aclose()

        return asyncio.run(main())

    blocking.__name__ = blocking.__qualname__ = name
    blocking.__doc__ = f"Blocking form of :func:`{step.__name__}` (runs its own event loop).\n\n{step.__doc__}"
    return blocking


def _pending(
    questions: Sequence[JudgeQuestion],
    out_path: str | os.PathLike[str],
    keep: Callable[[dict[str, Any]], bool],
    report: JudgeReport,
) -> list[JudgeQuestion]:
    """The questions without a finished row in ``out_path`` (counting the others as skipped)."""
    done = existing_ids(out_path, keep)
    todo = [q for q in questions if q.question_id not in done]
    report.skipped_existing = len(questions) - len(todo)
    return todo


async def awrite_references(
    questions: Sequence[JudgeQuestion],
    client: ChatClient,
    out_path: str | os.PathLike[str],
    params: dict[str, Any] | None = None,
) -> JudgeReport:
    """Append reference answers ``{question_id, text, model_id}`` for questions not yet in ``out_path``.

    Each answer is written as soon as it arrives, so a killed run keeps what it had.
    Usable from a running event loop; :func:`write_references` is the blocking form.
    """
    from quilt_llava.instruct.llm import ChatRequest

    report = JudgeReport()
    todo = _pending(questions, out_path, lambda row: isinstance(row.get("text"), str), report)
    if not todo:
        return report
    requests = [ChatRequest(q.question_id, reference_messages(q.question, q.caption), dict(params or {})) for q in todo]
    with JsonlAppender(out_path) as sink:

        def keep(i: int, res: Any) -> None:
            q = todo[i]
            if res.ok and res.text.strip():
                sink.write({"question_id": q.question_id, "text": res.text.strip(), "model_id": client.config.model})
                report.written += 1
            else:
                report.failed.append((q.question_id, res.error or "empty reply"))

        await client.arun(requests, description="reference answers", on_result=keep)
    order = {q.question_id: k for k, q in enumerate(todo)}
    report.failed.sort(key=lambda f: order[f[0]])
    return report


write_references = _blocking_form(awrite_references, "write_references")


def _scored(row: dict[str, Any]) -> bool:
    scores = row.get("scores")
    return isinstance(scores, list) and len(scores) == 2 and all(valid_score(v) for v in scores)


JUDGE_PARAMS = {"temperature": 0.2}  # the published judge's temperature


def _require_answers(questions: Sequence[JudgeQuestion], refs: dict[str, str], preds: dict[str, str]) -> None:
    missing = [q.question_id for q in questions if q.question_id not in refs or q.question_id not in preds]
    if missing:
        raise InputError(
            "judge",
            f"no reference or model answer for questions: {', '.join(missing[:20])}"
            + (f" ... ({len(missing)} in all)" if len(missing) > 20 else ""),
        )


def review_row(
    q: JudgeQuestion,
    content: str | None,
    scores: tuple[float, float] | None,
    error: str | None,
    attempts: int,
    *,
    model_id: str,
    judge: str,
) -> dict[str, Any]:
    """One review row (see the module doc); ``content`` is the judge's reply as received."""
    text = canonical_content(content, scores) if content is not None and scores is not None else (content or "")
    row: dict[str, Any] = {
        "question_id": q.question_id,
        "category": q.category,
        "content": text,
        "scores": list(scores) if scores else None,
        "answer1_id": "reference",
        "answer2_id": model_id,
        "judge": judge,
        "attempts": attempts,
    }
    if content is not None and text != content:
        row["judge_reply"] = content  # as received, before the score line was normalised
    if error:
        row["error"] = error
    for k, v in q.meta.items():
        row.setdefault(k, v)
    return row


@dataclass
class _JudgeRun:
    """The state of one judging run: conversations so far, the last failure of each question."""

    todo: list[JudgeQuestion]
    conversations: dict[str, list[dict[str, str]]]
    sink: JsonlAppender
    report: JudgeReport
    row: Callable[..., dict[str, Any]]
    last: dict[str, tuple[str | None, str, int]] = field(default_factory=dict)  # (reply, error, attempts)

    def take(self, q: JudgeQuestion, res: Any, attempt: int) -> bool:
        """Record one reply; True when it held two scores (its row is then durable at once)."""
        scores = parse_scores(res.text) if res.ok else None
        if scores is not None:
            self.sink.write(self.row(q, res.text, scores, None, attempt + 1))
            self.report.written += 1
            self.last.pop(q.question_id, None)
            return True
        self.last[q.question_id] = (
            res.text,
            res.error or "reply has no line with two scores from 1 to 10",
            attempt + 1,
        )
        if res.ok:
            # Show the judge its own reply and ask again (also a new cache key).
            self.conversations[q.question_id] = [
                *self.conversations[q.question_id],
                {"role": "assistant", "content": res.text},
                {"role": "user", "content": JUDGE_REMINDER},
            ]
        return False

    async def round(
        self, client: ChatClient, pending: list[JudgeQuestion], attempt: int, params: dict[str, Any]
    ) -> list[JudgeQuestion]:
        """Ask about ``pending`` once; the questions still without scores, in input order."""
        from quilt_llava.instruct.llm import ChatRequest

        requests = [ChatRequest(q.question_id, self.conversations[q.question_id], dict(params)) for q in pending]
        still: list[JudgeQuestion] = []

        def on_result(i: int, res: Any) -> None:
            if not self.take(pending[i], res, attempt):
                still.append(pending[i])

        await client.arun(
            requests, description="judging" if attempt == 0 else f"judging (retry {attempt})", on_result=on_result
        )
        order = {q.question_id: k for k, q in enumerate(self.todo)}
        return sorted(still, key=lambda q: order[q.question_id])

    def give_up(self, pending: list[JudgeQuestion]) -> None:
        """Failed rows for the questions that never got two scores."""
        for q in pending:
            content, error, attempts = self.last[q.question_id]
            self.sink.write(self.row(q, content, None, error, attempts))
            self.report.written += 1
            self.report.failed.append((q.question_id, error))


async def ajudge_answers(
    questions: Sequence[JudgeQuestion],
    references: str | os.PathLike[str] | Sequence[dict[str, Any]],
    predictions: str | os.PathLike[str] | Sequence[dict[str, Any]],
    client: ChatClient,
    out_path: str | os.PathLike[str],
    *,
    model_id: str | None = None,
    retries: int = 2,
    params: dict[str, Any] | None = None,
) -> JudgeReport:
    """Score reference (answer A) and model (answer B) answers; append review rows.

    A scored review is appended as soon as it arrives; a question still without two
    scores after ``retries`` reminders gets a failed row at the end. Questions already
    reviewed with scores are skipped (resumable); ones that failed before are tried
    again and their new row supersedes the old one. Usable from a running event loop;
    :func:`judge_answers` is the blocking form.
    """
    params = {**JUDGE_PARAMS, **(params or {})}
    refs = _answers(references, "references")
    preds = _answers(predictions, "predictions")
    _require_answers(questions, refs, preds)
    report = JudgeReport()
    todo = _pending(questions, out_path, _scored, report)
    if not todo:
        return report
    conversations = {
        q.question_id: judge_messages(q.question, q.caption, refs[q.question_id], preds[q.question_id]) for q in todo
    }
    row = functools.partial(review_row, model_id=model_id or "model", judge=client.config.model)
    with JsonlAppender(out_path) as sink:
        run = _JudgeRun(todo, conversations, sink, report, row)
        pending = list(todo)
        for attempt in range(retries + 1):
            if not pending:
                break
            pending = await run.round(client, pending, attempt, params)
        run.give_up(pending)
    return report


judge_answers = _blocking_form(ajudge_answers, "judge_answers")


def plan_judge(
    questions: Sequence[JudgeQuestion],
    references_path: str | os.PathLike[str],
    predictions: str | os.PathLike[str] | Sequence[dict[str, Any]],
    out_path: str | os.PathLike[str],
    ref_client: PlanningClient,
    judge_client: PlanningClient,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What :func:`write_references` + :func:`judge_answers` would call, without sending or writing.

    Calls already answered by the response cache are counted apart; a judge prompt
    whose reference answer does not exist yet is estimated with a reference of
    ``max_tokens`` tokens. Re-asks after unparseable replies are not foreseen.
    """
    from quilt_llava.instruct.llm import estimate_tokens

    params = {**JUDGE_PARAMS, **(params or {})}
    refs = _answers(references_path, "references") if Path(references_path).exists() else {}
    preds = _answers(predictions, "predictions")
    reviewed = existing_ids(out_path, _scored)
    ref_todo = [q for q in questions if q.question_id not in refs]
    ref_msgs = [reference_messages(q.question, q.caption) for q in ref_todo]
    ref_needed = [m for m in ref_msgs if not ref_client.is_cached(m)]
    judge_todo = [q for q in questions if q.question_id not in reviewed]
    no_prediction = [q.question_id for q in judge_todo if q.question_id not in preds]
    placeholder = "x" * 4 * ref_client.config.max_tokens
    judge_msgs = [
        judge_messages(q.question, q.caption, refs.get(q.question_id, placeholder), preds.get(q.question_id, ""))
        for q in judge_todo
    ]
    judge_needed = [
        m for m, q in zip(judge_msgs, judge_todo) if q.question_id not in refs or not judge_client.is_cached(m, params)
    ]
    prompt_tokens = sum(estimate_tokens(m) for m in ref_needed + judge_needed)
    completion = len(ref_needed) * ref_client.config.max_tokens + len(judge_needed) * judge_client.config.max_tokens
    plan = {
        "dry_run": True,
        "questions": len(questions),
        "references_done": len(questions) - len(ref_todo),
        "reference_calls_needed": len(ref_needed),
        "reference_calls_cached": len(ref_msgs) - len(ref_needed),
        "reviews_done": len(questions) - len(judge_todo),
        "judge_calls_needed": len(judge_needed),
        "judge_calls_cached": len(judge_msgs) - len(judge_needed),
        "questions_without_prediction": no_prediction,
        "prompt_tokens_estimate": prompt_tokens,
        "completion_tokens_at_most": completion,
    }
    cfg = judge_client.config
    if cfg.price_prompt_per_1k is not None or cfg.price_completion_per_1k is not None:
        plan["cost_usd_at_most"] = round(judge_client.cost(prompt_tokens, completion), 4)
    return plan


# --------------------------------------------------------------------------- summary


@dataclass
class GroupScore:
    name: str
    n: int
    failed: int
    reference: float | None
    model: float | None
    relative: float | None
    relative_ci: tuple[float, float] | None = None  # 95% bootstrap over questions

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.name,
            "n": self.n,
            "failed": self.failed,
            "reference": self.reference,
            "model": self.model,
            "relative": self.relative,
            "relative_ci": list(self.relative_ci) if self.relative_ci else None,
        }


def _relative_ci(pairs: list[list[float]], n_resamples: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap of 100 x mean(model) / mean(reference), resampling questions."""
    import numpy as np

    from quilt_llava.eval.metrics import bootstrap_interval

    arr = np.asarray(pairs, dtype=np.float64)  # (n, 2)
    if len(arr) < 2:
        return None

    def relative(idx: np.ndarray) -> np.ndarray:
        ref, mod = arr[idx, 0].mean(axis=1), arr[idx, 1].mean(axis=1)
        return np.where(ref > 0, 100 * mod / np.where(ref > 0, ref, 1.0), np.nan)

    ci = bootstrap_interval(len(arr), relative, n_resamples=n_resamples, seed=seed)
    return None if ci is None else (round(ci[0], 1), round(ci[1], 1))


def _group(name: str, rows: list[dict[str, Any]]) -> GroupScore:
    scored = [r["scores"] for r in rows if r.get("scores") is not None]
    failed = len(rows) - len(scored)
    if not scored:
        return GroupScore(name, len(rows), failed, None, None, None)
    ref = sum(s[0] for s in scored) / len(scored)
    mod = sum(s[1] for s in scored) / len(scored)
    rel = round(100 * mod / ref, 1) if ref > 0 else None
    return GroupScore(name, len(rows), failed, round(ref, 1), round(mod, 1), rel, _relative_ci(scored))


def read_reviews(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Review rows, the last row per question winning (a retried question supersedes its failure).

    Rows with a ``tuple`` field (the LLaVA review layout) are read too; a row whose
    scores cannot be found is counted as failed.
    """
    latest: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(iter_jsonl(path), start=1):
        qid = row.get("question_id")
        if qid is None or "category" not in row:
            raise InputError(f"{path} row {i}", "review row needs 'question_id' and 'category'")
        scores = row.get("scores", row.get("tuple"))
        if scores is None and "content" in row and "scores" not in row:
            scores = parse_scores(row["content"])
        # Scores outside 1-10 (LLaVA writes -1 -1 for a judgement it could not read) count as failed.
        valid = isinstance(scores, (list, tuple)) and len(scores) == 2 and all(valid_score(v) for v in scores)
        latest[str(qid)] = {**row, "scores": list(scores) if valid else None}
    return list(latest.values())


def summarize_reviews(rows: Sequence[dict[str, Any]], by: str | None = None) -> list[GroupScore]:
    """Per category (``conv``, ``detail`` first, then any other), optional ``by`` breakdown, then overall."""
    cats = sorted({str(r["category"]) for r in rows}, key=lambda c: ({"conv": 0, "detail": 1}.get(c, 2), c))
    groups = [_group(c, [r for r in rows if str(r["category"]) == c]) for c in cats]
    if by:
        values = sorted({str(r.get(by, "(none)")) for r in rows})
        for c in cats:
            for v in values:
                sub = [r for r in rows if str(r["category"]) == c and str(r.get(by, "(none)")) == v]
                if sub:
                    groups.append(_group(f"{c} / {by}={v}", sub))
        for v in values:
            groups.append(_group(f"all / {by}={v}", [r for r in rows if str(r.get(by, "(none)")) == v]))
    groups.append(_group("overall", list(rows)))
    return groups


def format_summary(name: str, groups: Sequence[GroupScore]) -> str:
    """A Markdown table: group, n, failed, mean reference, mean model, relative score."""

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    lines = [
        f"### {name}",
        "",
        "| group | n | failed | reference | model | relative | 95% CI |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g in groups:
        ci = f"{g.relative_ci[0]:.1f} - {g.relative_ci[1]:.1f}" if g.relative_ci else "-"
        lines.append(f"| {g.name} | {g.n} | {g.failed} | {f(g.reference)} | {f(g.model)} | {f(g.relative)} | {ci} |")
    return "\n".join(lines)
