"""What a generation run produced, before anyone trains on it.

``quilt-llava instruct report OUT.jsonl`` reads a generator's output (LLaVA records
or question/answer rows, ``.jsonl`` or ``.json``) and, when present, its rejects file
(``OUT.rejects.jsonl``), and reports: record count, rejects by reason, answer length
distribution (words), repetition (share of repeated word trigrams per answer,
answers that fail the repetition gate), vocabulary (distinct words, type/token
ratio, distinct answer openings), and the share of answers using position words
(the spatial grounding the boxes were for).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from quilt_llava.errors import InputError
from quilt_llava.files import iter_jsonl
from quilt_llava.instruct.gates import GateConfig, exchanges_of, repetition_problem, words

# Words that place something in the image (the grounding the cursor boxes stand for).
POSITION_WORDS = frozenset(
    [
        "left",
        "right",
        "upper",
        "lower",
        "top",
        "bottom",
        "centre",
        "center",
        "central",
        "middle",
        "corner",
        "edge",
        "edges",
        "periphery",
        "peripheral",
        "side",
        "sides",
        "above",
        "below",
        "beneath",
        "near",
        "adjacent",
        "next",
        "surrounding",
        "around",
        "between",
        "across",
        "along",
        "border",
        "margin",
        "quadrant",
        "half",
    ]
)
PERCENTILES = (0, 10, 25, 50, 75, 90, 100)


def rejects_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".rejects.jsonl")


def load_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InputError(str(path), "no such file")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "[]")
        except json.JSONDecodeError as exc:
            raise InputError(str(path), f"not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, list):
            raise InputError(str(path), "a .json output must hold one array of records")
        return data
    return list(iter_jsonl(path))


def _percentiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {}
    ordered = sorted(values)
    return {f"p{p}": ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] for p in PERCENTILES}


def report(out: str | Path, gates: GateConfig | None = None) -> dict[str, Any]:
    """The statistics of one output file (see the module docstring)."""
    out = Path(out)
    gates = gates or GateConfig()
    records = load_records(out)
    answers: list[str] = []
    questions: list[str] = []
    for rec in records:
        for ex in exchanges_of(rec):
            answers.append(ex.answer)
            if ex.question:
                questions.append(ex.question)
    lengths = [len(words(a)) for a in answers]
    vocab: Counter[str] = Counter(w for a in answers for w in words(a))
    trigram_shares = []
    for a in answers:
        toks = words(a)
        grams = [tuple(toks[i : i + 3]) for i in range(len(toks) - 2)]
        if grams:
            trigram_shares.append(1 - len(set(grams)) / len(grams))
    looping = sum(1 for a in answers if repetition_problem(a, gates))
    positional = sum(1 for a in answers if POSITION_WORDS & set(words(a)))
    openings = Counter(" ".join(words(a)[:3]) for a in answers if words(a))
    rejects_file = rejects_path_for(out)
    rejects = list(iter_jsonl(rejects_file)) if rejects_file.is_file() else []
    by_reason = Counter(str(r.get("reason_code") or r.get("status") or "unknown") for r in rejects)
    n = len(answers)
    return {
        "file": str(out),
        "records": len(records),
        "answers": n,
        "questions": len(questions),
        "distinct_questions": len({q.strip().lower() for q in questions}),
        "rejects_file": str(rejects_file) if rejects else None,
        "rejects": len(rejects),
        "rejects_by_reason": dict(sorted(by_reason.items())),
        "answer_words": {"mean": round(sum(lengths) / n, 1) if n else 0, **_percentiles(lengths)},
        "repetition": {
            "mean_repeated_trigram_share": round(sum(trigram_shares) / len(trigram_shares), 3) if trigram_shares else 0,
            "max_repeated_trigram_share": round(max(trigram_shares), 3) if trigram_shares else 0,
            "answers_failing_repetition_gate": looping,
        },
        "vocabulary": {
            "tokens": sum(vocab.values()),
            "distinct_words": len(vocab),
            "type_token_ratio": round(len(vocab) / sum(vocab.values()), 3) if vocab else 0,
            "distinct_openings_share": round(len(openings) / n, 3) if n else 0,
            "most_common_openings": [[k, v] for k, v in openings.most_common(5)],
        },
        "position_word_share": round(positional / n, 3) if n else 0,
    }


def human_lines(stats: dict[str, Any]) -> str:
    lw, rep, voc = stats["answer_words"], stats["repetition"], stats["vocabulary"]
    reasons = ", ".join(f"{k} {v}" for k, v in stats["rejects_by_reason"].items()) or "none"
    lines = [
        f"{stats['file']}: {stats['records']} records, {stats['answers']} answers, "
        f"{stats['distinct_questions']}/{stats['questions']} distinct questions",
        f"rejects: {stats['rejects']} ({reasons})",
        "answer words: mean {mean}".format(**lw)
        + (", " + ", ".join(f"{k} {v}" for k, v in lw.items() if k != "mean") if len(lw) > 1 else ""),
        f"repetition: mean repeated-trigram share {rep['mean_repeated_trigram_share']}, "
        f"max {rep['max_repeated_trigram_share']}, {rep['answers_failing_repetition_gate']} answers fail the gate",
        f"vocabulary: {voc['distinct_words']} distinct words of {voc['tokens']} "
        f"(type/token {voc['type_token_ratio']}), distinct openings {voc['distinct_openings_share']:.0%}",
        f"answers using position words: {stats['position_word_share']:.0%}",
    ]
    return "\n".join(lines)
