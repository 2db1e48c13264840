"""VQA metrics with the published definitions, quirks included, plus bootstrap intervals.

The numbers must be comparable with the published Quilt-LLaVA / LLaVA-Med tables, so
the normalisation and scores follow the released evaluation code rule for rule,
including its oddities (kept on purpose, each one tested):

- Normalisation (:func:`normalize_answer`): lowercase; for each of the 21 characters
  of :data:`PUNCTUATION`, in order: if it touches a space anywhere in the (original)
  text, or the text holds a digit-comma-digit pattern anywhere, *every* occurrence is
  deleted, otherwise every occurrence becomes a space; then each ``.`` not followed
  by a digit is deleted (the release passes ``re.UNICODE`` where ``re.sub`` expects a
  count, so at most 32 are deleted); split on whitespace; number words become digits
  (``none``/``zero`` -> ``0``, ``one`` -> ``1`` ... ``ten`` -> ``10``); drop ``a``,
  ``an``, ``the``; expand apostrophe-less contractions with the VQA contraction table
  (its keys with capitals never match lowercased text); join with spaces; delete
  commas. Other characters (``'``, ``:``, ``&``, ``%``, ``*``, ``#``, ``|``, ``~``,
  ``^``, ``$``, non-ASCII) are kept as they are, and only a literal space counts as
  "touching a space" (a tab or newline next to ``/`` does not).
- Open questions use unigram counts of the normalised texts. Recall (the headline
  "open" number), precision and F1 are 0 when either text is empty or nothing
  matches. The released "exact match" is the number of *distinct* answer words found
  in the prediction divided by the number of prediction tokens. The release
  normalises twice before these (a second pass changes nothing but can delete 32
  more periods); so do we. BLEU is nltk's ``sentence_bleu`` on whitespace tokens of
  the once-normalised texts: default weights and the one-hot weights for BLEU-1..3.
- Closed questions: reference = ``yes_no_answer`` when present, else ``answer``,
  normalised. The normalised prediction, commas removed, split on single spaces, is
  "no" if a word is ``no`` or ``not``, otherwise "yes". Correct when equal.
- Multiple choice (PMC-VQA): the letter parsed from the prediction equals the
  reference letter.

Scores are means over questions, reported x100, each with a 95% percentile
bootstrap interval over questions (which no published script reports).

Pure Python + numpy + nltk: importable without torch.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quilt_llava.errors import InputError
from quilt_llava.eval.questions import (
    CHOICE,
    CHOICE_LETTERS,
    CLOSED,
    OPEN,
    EvalQuestion,
    as_questions,
)

# ---------------------------------------------------------------------------
# Normalisation (fact tables of the released code)

# The 21 characters the release's normalisation deletes or turns into spaces, in its order.
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
# Number words the release maps to digits (word by word, before articles are dropped).
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # the release's look-ahead typo: '.' not followed by a digit
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
_RELEASE_PERIOD_LIMIT = 32  # re.UNICODE (== 32) passed as re.sub's count argument

# The contraction table of the standard VQA evaluation script (apostrophe-less form ->
# expansion), written as "key=value" pairs. Keys with capitals can never match
# lowercased text; "somebody'd=somebodyd" is the table's own inversion. Both kept.
_CONTRACTION_PAIRS = """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've
couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've
hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's
howd=how'd howll=how'll hows=how's Id've=I'd've I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd
itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am mightnt=mightn't
mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've
neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at
'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've
shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd
somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's
someoned=someone'd someoned've=someone'd've someone'dve=someone'd've someonell=someone'll
someones=someone's somethingd=something'd somethingd've=something'd've
something'dve=something'd've somethingll=something'll thats=that's thered=there'd
thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd
theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas
wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll
whatre=what're whats=what's whatve=what've whens=when's whered=where'd wheres=where's
whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll whos=who's
whove=who've whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll
yall'd've=y'all'd've y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've
you'dve=you'd've youll=you'll youre=you're youve=you've
"""
CONTRACTIONS: dict[str, str] = dict(pair.split("=", 1) for pair in _CONTRACTION_PAIRS.split())


def normalize_answer(text: str) -> str:
    """Normalise an answer or prediction exactly as the released evaluation does."""
    original = text.lower()
    has_digit_comma = _DIGIT_COMMA_DIGIT.search(original) is not None
    out = original
    for p in PUNCTUATION:
        # The decision looks at the whole (original) text, then applies to every occurrence.
        if (p + " " in original or " " + p in original) or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD_STRIP.sub("", out, count=_RELEASE_PERIOD_LIMIT)
    words = [NUMBER_WORDS.get(w, w) for w in out.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words).replace(",", "")


# ---------------------------------------------------------------------------
# Per-question scores


@dataclass(frozen=True)
class OpenScore:
    recall: float
    precision: float
    f1: float
    exact_match: float
    bleu: float
    bleu1: float
    bleu2: float
    bleu3: float


OPEN_FIELDS = ("recall", "precision", "f1", "exact_match", "bleu", "bleu1", "bleu2", "bleu3")
BLEU_WEIGHTS = {
    "bleu": (0.25, 0.25, 0.25, 0.25),
    "bleu1": (1, 0, 0, 0),
    "bleu2": (0, 1, 0, 0),
    "bleu3": (0, 0, 1, 0),
}


def _prf(prediction: str, answer: str) -> tuple[float, float, float]:
    """(precision, recall, f1) from unigram counts, with the release's zero rules."""
    pred_counts = Counter(prediction.split())
    ans_counts = Counter(answer.split())
    if not pred_counts or not ans_counts:
        return 0.0, 0.0, 0.0
    tp = sum(c for w, c in pred_counts.items() if w in ans_counts)  # prediction's count of shared words
    fp = sum(c for w, c in pred_counts.items() if w not in ans_counts)
    fn = sum(c for w, c in ans_counts.items() if w not in pred_counts)
    if tp == 0:
        return 0.0, 0.0, 0.0
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    return precision, recall, 2 * precision * recall / (precision + recall)


def _exact_match(prediction: str, answer: str) -> float:
    pred_counts = Counter(prediction.split())
    total = sum(pred_counts.values())
    if total == 0:
        return 0.0
    return sum(1 for w in set(answer.split()) if w in pred_counts) / total


def sentence_bleu_scores(prediction: str, answer: str) -> dict[str, float]:
    from nltk.translate.bleu_score import sentence_bleu

    ref, hyp = answer.split(), prediction.split()
    out = {}
    with warnings.catch_warnings():
        # nltk warns when an n-gram order has no overlap; the score is then 0, as released.
        warnings.simplefilter("ignore")
        for name, weights in BLEU_WEIGHTS.items():
            out[name] = float(sentence_bleu([ref], hyp, weights=weights))
    return out


def open_score(prediction: str, answer: str) -> OpenScore:
    pred_n, ans_n = normalize_answer(prediction), normalize_answer(answer)
    # The release normalises a second time inside its precision/recall and exact-match helpers.
    pred_nn, ans_nn = normalize_answer(pred_n), normalize_answer(ans_n)
    precision, recall, f1 = _prf(pred_nn, ans_nn)
    bleu = sentence_bleu_scores(pred_n, ans_n)
    return OpenScore(recall=recall, precision=precision, f1=f1, exact_match=_exact_match(pred_nn, ans_nn), **bleu)


def closed_label(prediction: str) -> str:
    """'no' when a word of the normalised prediction is 'no' or 'not', else 'yes'."""
    words = normalize_answer(prediction).replace(",", "").split(" ")
    return "no" if ("no" in words or "not" in words) else "yes"


def closed_reference(question: EvalQuestion) -> str:
    return normalize_answer(question.yes_no_answer if question.yes_no_answer is not None else (question.answer or ""))


# How a closed question is scored:
# - "yes_no" (Quilt-LLaVA's rule, the default): the prediction's yes/no label (closed_label)
#   equals the normalised reference. A reference that is neither yes nor no is never right.
# - "answer_in_prediction" (the rule LLaVA-Med's evaluation applies to closed sets such as
#   SLAKE and VQA-RAD, whose closed answers include "left lung", "CT", ...): the normalised
#   reference occurs in the normalised prediction. Unlike a bare substring test it matches
#   whole words only, so "no" is not found inside "normal".
CLOSED_RULES = ("yes_no", "answer_in_prediction")


def answer_in_prediction(prediction: str, answer: str) -> bool:
    """The normalised ``answer`` appears, as whole words, in the normalised ``prediction``."""
    ans = normalize_answer(answer).replace(",", "").split()
    pred = normalize_answer(prediction).replace(",", "").split()
    if not ans:
        return False
    return f" {' '.join(ans)} " in f" {' '.join(pred)} "


def closed_correct(prediction: str, question: EvalQuestion, rule: str = "yes_no") -> bool:
    if rule == "answer_in_prediction":
        ref = question.yes_no_answer if question.yes_no_answer is not None else (question.answer or "")
        return answer_in_prediction(prediction, ref)
    if rule != "yes_no":
        raise ValueError(f"closed rule {rule!r} is not one of {', '.join(CLOSED_RULES)}")
    return closed_label(prediction) == closed_reference(question)


_LEAD_LETTER = re.compile(r"^\s*[\(\[]?([A-H])(?:[\)\]]|\s*[:.)]|\s*$)")
_NAMED_LETTER = re.compile(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*[:\-]?\s*[\(\[]?([A-H])\b[\)\]]?", re.IGNORECASE)


def parse_choice(prediction: str, choices: Sequence[str]) -> str | None:
    """The letter a free-text reply picks among ``choices``, or None.

    Accepted: a leading letter set off by punctuation ("B", "B.", "(B)", "B: text"),
    a named letter anywhere ("the answer is C", "Option: D"), or the text of exactly
    one choice appearing in the reply. A leading "A " alone is the article, not a choice.
    """
    valid = CHOICE_LETTERS[: len(choices)]
    m = _LEAD_LETTER.match(prediction)
    if m and m.group(1) in valid:
        return m.group(1)
    for m in _NAMED_LETTER.finditer(prediction):
        letter = m.group(1).upper()
        if letter in valid and m.group(1).isupper():
            return letter
    lowered = prediction.lower()
    hits = [CHOICE_LETTERS[i] for i, c in enumerate(choices) if c.strip() and c.strip().lower() in lowered]
    if len(hits) == 1:
        return hits[0]
    return None


# ---------------------------------------------------------------------------
# Confidence intervals


def bootstrap_interval(
    n: int,
    statistic: Callable[[np.ndarray], np.ndarray],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of a statistic of ``n`` items resampled with replacement.

    ``statistic`` maps a ``(k, n)`` array of resampled indices to ``k`` values; NaN marks
    a resample where it is undefined and is left out (None when every one is). The
    one bootstrap of the package: the VQA metrics' means and the judge's relative score.
    """
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)  # bound memory for large question sets
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        stats[start:stop] = statistic(rng.integers(0, n, size=(stop - start, n)))
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (resampling questions with replacement)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return None
    if arr.size == 1 or n_resamples <= 0:
        v = float(arr.mean())
        return (v, v)
    return bootstrap_interval(arr.size, lambda idx: arr[idx].mean(axis=1), n_resamples, seed, level)


# ---------------------------------------------------------------------------
# Whole-benchmark scoring


class IdMismatchError(InputError):
    """Questions and predictions do not match one to one."""

    def __init__(
        self, missing: list[str], extra: list[str], duplicates: list[str], source: str = "predictions"
    ) -> None:
        self.missing, self.extra, self.duplicates = missing, extra, duplicates
        parts = []
        for label, ids in (
            ("questions without a prediction", missing),
            ("predictions for unknown questions", extra),
            ("duplicate prediction ids", duplicates),
        ):
            if ids:
                shown = ", ".join(ids[:20]) + (f" ... ({len(ids)} in all)" if len(ids) > 20 else "")
                parts.append(f"{label}: {shown}")
        super().__init__(source, "ids do not match the questions one to one; " + "; ".join(parts))


@dataclass
class VQAResult:
    """Per-question scores and the summary (x100, with 95% intervals)."""

    summary: dict[str, Any]
    per_question: list[dict[str, Any]] = field(default_factory=list)


def _match(questions: list[EvalQuestion], predictions: Iterable[dict[str, Any]], source: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    duplicates: list[str] = []
    for i, pred in enumerate(predictions, start=1):
        qid = pred.get("question_id", pred.get("id"))
        if qid is None:
            raise InputError(f"{source} row {i}", "prediction has no 'question_id'")
        qid = str(qid)
        text = pred.get("text", pred.get("answer"))
        if not isinstance(text, str):
            raise InputError(f"{source} row {i}", f"prediction {qid} has no string 'text'")
        if qid in texts:
            duplicates.append(qid)
        texts[qid] = text
    wanted = [q.question_id for q in questions]
    wanted_set = set(wanted)
    missing = [qid for qid in wanted if qid not in texts]
    extra = [qid for qid in texts if qid not in wanted_set]
    if missing or extra or duplicates:
        raise IdMismatchError(missing, extra, duplicates, source)
    return texts


def evaluate_vqa(
    questions: Iterable[EvalQuestion | dict[str, Any]],
    predictions: Iterable[dict[str, Any]],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    fmt: str = "quilt",
    source: str = "predictions",
    closed_rule: str = "yes_no",
) -> VQAResult:
    """Score predictions ``{question_id, text}`` against questions (canonical or raw rows).

    ``closed_rule`` picks how closed questions are scored (see :data:`CLOSED_RULES`).
    """
    if closed_rule not in CLOSED_RULES:
        raise ValueError(f"closed rule {closed_rule!r} is not one of {', '.join(CLOSED_RULES)}")
    qs = as_questions(questions, fmt=fmt)
    texts = _match(qs, predictions, source)
    per_question: list[dict[str, Any]] = []
    open_rows: dict[str, list[float]] = {k: [] for k in OPEN_FIELDS}
    closed_hits: list[float] = []
    choice_hits: list[float] = []
    odd_closed: list[str] = []
    for q in qs:
        text = texts[q.question_id]
        row: dict[str, Any] = {"question_id": q.question_id, "answer_type": q.answer_type.upper()}
        if q.answer_type == OPEN:
            s = open_score(text, q.answer or "")
            for k in OPEN_FIELDS:
                open_rows[k].append(getattr(s, k))
                row[k] = getattr(s, k)
        elif q.answer_type == CLOSED:
            ref = closed_reference(q)
            if closed_rule == "yes_no":
                if ref not in ("yes", "no"):
                    odd_closed.append(q.question_id)
                label = closed_label(text)
            else:
                label = normalize_answer(text)
            hit = float(closed_correct(text, q, closed_rule))
            closed_hits.append(hit)
            row.update(label=label, reference=ref, correct=hit)
        elif q.answer_type == CHOICE:
            letter = parse_choice(text, q.choices or [])
            hit = float(letter is not None and letter == (q.answer or "").strip().upper())
            choice_hits.append(hit)
            row.update(label=letter, reference=q.answer, correct=hit)
        per_question.append(row)

    summary: dict[str, Any] = {
        "n": len(qs),
        "n_open": len(open_rows["recall"]),
        "n_closed": len(closed_hits),
        "n_choice": len(choice_hits),
    }

    def put(name: str, values: list[float], salt: int) -> None:
        if not values:
            summary[name] = None
            summary[name + "_ci"] = None
            return
        ci = bootstrap_ci(values, n_resamples=n_resamples, seed=seed + salt)
        summary[name] = round(100 * float(np.mean(values)), 4)
        summary[name + "_ci"] = [round(100 * ci[0], 4), round(100 * ci[1], 4)] if ci else None

    for salt, k in enumerate(OPEN_FIELDS):
        put(f"open_{k}", open_rows[k], salt)
    put("closed_accuracy", closed_hits, 100)
    put("choice_accuracy", choice_hits, 200)
    summary["closed_rule"] = closed_rule
    summary["closed_answers_not_yes_no"] = odd_closed
    summary["answer_types_inferred"] = sum(1 for q in qs if q.extra.get("answer_type_inferred"))
    return VQAResult(summary=summary, per_question=per_question)


def score_vqa(
    questions: Iterable[EvalQuestion | dict[str, Any]],
    predictions: Iterable[dict[str, Any]],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    fmt: str = "quilt",
    closed_rule: str = "yes_no",
) -> dict[str, Any]:
    """Summary metrics x100 with ``<name>_ci`` 95% bootstrap intervals.

    Keys: ``n, n_open, n_closed, n_choice``; ``open_recall`` (headline open),
    ``open_precision, open_f1, open_exact_match, open_bleu, open_bleu1..3``;
    ``closed_accuracy``; ``choice_accuracy``; None where no question of that type.
    """
    return evaluate_vqa(
        questions, predictions, n_resamples=n_resamples, seed=seed, fmt=fmt, closed_rule=closed_rule
    ).summary


HEADLINE_METRICS = ("open_recall", "closed_accuracy", "choice_accuracy")
METRIC_LABELS = {
    "open_recall": "open recall",
    "open_precision": "open precision",
    "open_f1": "open F1",
    "open_exact_match": "open exact match",
    "open_bleu": "open BLEU",
    "open_bleu1": "open BLEU-1",
    "open_bleu2": "open BLEU-2",
    "open_bleu3": "open BLEU-3",
    "closed_accuracy": "closed accuracy",
    "choice_accuracy": "choice accuracy",
}
