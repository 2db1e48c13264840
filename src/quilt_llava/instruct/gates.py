"""Quality gates: checks every LLM-generated record passes before it is written.

A real model, above all a small local one, returns text that parses and is still
unusable: answers that say where the material came from ("the narrator points
at..."), loops ("its features, its features, ..."), replies cut off at the token
limit, one-word answers to "describe this", the same question twice, or a reply in
another language. Each gate has a name; a record that fails one is moved to the
rejects file with ``reason_code`` set to that name, and the run summary counts
rejections by name.

All thresholds live in :class:`GateConfig`. Its defaults pass every record of the
project's golden examples (tests/instruct) and reject the failures seen from
SmolLM2-135M-Instruct (docs/BENCHMARKS.md).

What the gates do not catch: wrong medicine, facts the narration does not support,
answers that are fluent and on-topic but copy the question, languages written in
Latin script that share few function words with the ones listed here (see
:func:`guess_language`), and repetition shorter than ``repeat_ngram`` words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from quilt_llava.errors import ConfigError
from quilt_llava.instruct.replies import MENTIONS_SOURCE, leak_problems

# Gate names, as written in the rejects file (reason_code) and the run summary.
LEAK = MENTIONS_SOURCE
REPETITION = "repetition"
TRUNCATED = "truncated"
TOO_SHORT = "too_short"
DUPLICATE_QUESTION = "duplicate_question"
LANGUAGE = "language"
GATE_NAMES = (LEAK, REPETITION, TRUNCATED, TOO_SHORT, DUPLICATE_QUESTION, LANGUAGE)

# Questions that ask for a description (an answer of one word cannot be one).
_DESCRIBE = re.compile(
    r"\b(?:describe|description|explain|walk me through|write up|account|report|discuss|elaborate|"
    r"what (?:can|do) (?:be seen|you see)|what does .{0,40}\bshow|tell me about|how would you)\b",
    re.I,
)
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)
_END_OF_SENTENCE = re.compile(r"[.!?…)\]\"'”’»:;*]\s*$")

# A few frequent function words per language: enough to tell English answers from
# answers in the other languages a small model drifts into. Our own short lists.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "of",
            "to",
            "in",
            "is",
            "are",
            "with",
            "this",
            "that",
            "it",
            "for",
            "as",
            "on",
            "be",
            "by",
            "an",
            "or",
            "which",
            "these",
            "there",
            "its",
            "from",
            "at",
            "not",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "des",
            "une",
            "est",
            "et",
            "dans",
            "du",
            "avec",
            "que",
            "qui",
            "sont",
            "pour",
            "sur",
            "ce",
            "cette",
            "au",
            "aux",
            "pas",
            "par",
            "il",
            "elle",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "und",
            "ist",
            "mit",
            "den",
            "ein",
            "eine",
            "nicht",
            "im",
            "sich",
            "des",
            "dem",
            "zu",
            "auf",
            "sind",
            "auch",
            "von",
            "wird",
            "werden",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "la",
            "los",
            "las",
            "y",
            "es",
            "en",
            "con",
            "del",
            "una",
            "que",
            "por",
            "para",
            "se",
            "son",
            "como",
            "al",
            "más",
            "este",
            "esta",
            "lo",
        ]
    ),
    "it": frozenset(
        [
            "il",
            "la",
            "le",
            "di",
            "e",
            "è",
            "con",
            "una",
            "che",
            "per",
            "sono",
            "nel",
            "della",
            "dei",
            "delle",
            "del",
            "gli",
            "questo",
            "questa",
            "anche",
        ]
    ),
    "pt": frozenset(
        [
            "o",
            "a",
            "os",
            "as",
            "e",
            "é",
            "com",
            "uma",
            "que",
            "para",
            "são",
            "no",
            "na",
            "do",
            "da",
            "dos",
            "das",
            "em",
            "este",
            "esta",
            "não",
        ]
    ),
    "nl": frozenset(
        [
            "de",
            "het",
            "en",
            "is",
            "een",
            "van",
            "met",
            "in",
            "zijn",
            "dat",
            "die",
            "op",
            "voor",
            "niet",
            "deze",
            "ook",
            "wordt",
        ]
    ),
}


@dataclass
class GateConfig:
    """Thresholds of every gate (one home for each default; see the module docstring)."""

    enabled: bool = True
    # Degenerate repetition: share of word n-grams (n = repeat_ngram) that repeat an
    # earlier n-gram of the same text, counted once the text has min_words_for_repeat words.
    repeat_ngram: int = 3
    max_repeated_ngram_share: float = 0.25
    # ... or any one n-gram occurring this often (catches a loop inside a long answer).
    max_ngram_count: int = 4
    min_words_for_repeat: int = 12
    # A sentence repeated word for word.
    max_same_sentence: int = 2
    # Answers to description requests (detail, reasoning, abductive, and any question
    # asking to describe or explain) need at least this many words.
    min_description_words: int = 8
    # Any answer needs at least this many words (an empty answer never passes).
    min_answer_words: int = 1
    # Two questions of one unit whose word sets overlap this much (Jaccard) are duplicates.
    max_question_similarity: float = 0.85
    # Language: a text is judged only when it has this many function words of the
    # languages listed; it fails when another language outscores the expected one by this factor.
    expected_language: str = "en"
    min_function_words: int = 4
    language_margin: float = 1.5
    # Share of letters outside Latin script above which a text is not in a Latin-script language.
    max_non_latin_share: float = 0.3
    gates: tuple[str, ...] = GATE_NAMES
    extra_forbidden: tuple[str, ...] = field(default_factory=tuple)

    def validate(self) -> None:
        problems = []
        unknown = [g for g in self.gates if g not in GATE_NAMES]
        if unknown:
            problems.append(f"unknown gates {unknown} (valid: {', '.join(GATE_NAMES)})")
        if self.repeat_ngram < 1:
            problems.append(f"repeat_ngram must be >= 1, got {self.repeat_ngram}")
        for name in ("max_repeated_ngram_share", "max_question_similarity", "max_non_latin_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be within [0, 1], got {value}")
        if self.expected_language not in _FUNCTION_WORDS:
            problems.append(
                f"expected_language must be one of {', '.join(_FUNCTION_WORDS)}, got {self.expected_language!r}"
            )
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "gate config") -> GateConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError([f"{where}: unknown keys {unknown} (valid: {', '.join(sorted(known))})"])
        values = dict(data)
        for key in ("gates", "extra_forbidden"):
            if key in values:
                values[key] = tuple(values[key])
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> GateConfig:
        import yaml

        from quilt_llava.errors import InputError

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(str(path), f"cannot read the gate config ({exc})") from None
        if not isinstance(data, dict):
            raise InputError(str(path), "the gate config must be a mapping of GateConfig fields")
        return cls.from_dict(data, where=str(path))


@dataclass
class GateFailure:
    gate: str
    detail: str

    def __str__(self) -> str:
        return f"{self.gate}: {self.detail}"


# -- single checks -----------------------------------------------------------------------


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def repeated_sentence(texts: Iterable[str], config: GateConfig) -> str | None:
    """A sentence (3 words or more) written more than ``max_same_sentence`` times across ``texts``."""
    sentences = [s.strip().lower() for text in texts for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 3]
    if sentences:
        sentence, top = Counter(sentences).most_common(1)[0]
        if top > config.max_same_sentence:
            return f"the sentence '{sentence[:60]}' occurs {top} times"
    return None


def repetition_problem(text: str, config: GateConfig) -> str | None:
    """Why ``text`` looks like a loop, or None."""
    toks = words(text)
    if len(toks) >= config.min_words_for_repeat:
        n = config.repeat_ngram
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        counts = Counter(grams)
        repeated = sum(c - 1 for c in counts.values())
        share = repeated / max(1, len(grams))
        if share > config.max_repeated_ngram_share:
            return f"{share:.0%} of its {n}-word sequences repeat earlier ones"
        gram, top = counts.most_common(1)[0]
        if top > config.max_ngram_count:
            return f"'{' '.join(gram)}' occurs {top} times"
    return repeated_sentence([text], config)


def guess_language(text: str, config: GateConfig) -> str | None:
    """The most likely language code of ``text`` by function words and script, or None if unsure.

    Texts mostly in a non-Latin script return ``"non-latin"``. Short texts (fewer than
    ``min_function_words`` known function words) return None: they are not judged.
    """
    letters = [c for c in text if c.isalpha()]
    if letters:
        non_latin = sum(1 for c in letters if not _is_latin(c))
        if non_latin / len(letters) > config.max_non_latin_share:
            return "non-latin"
    toks = words(text)
    scores = {lang: sum(1 for t in toks if t in vocab) for lang, vocab in _FUNCTION_WORDS.items()}
    if sum(scores.values()) < config.min_function_words:
        return None
    expected = config.expected_language
    best = max(scores, key=lambda lang: (scores[lang], lang == expected))
    if best != expected and scores[best] >= config.language_margin * max(1, scores[expected]):
        return best
    return expected


def _is_latin(char: str) -> bool:
    return ord(char) < 0x250 or 0x1E00 <= ord(char) <= 0x1EFF


def truncated_problem(text: str, finish_reason: str | None) -> str | None:
    """Why a reply cut off by the token limit is unusable (it stopped mid-sentence)."""
    if finish_reason != "length":
        return None
    if _END_OF_SENTENCE.search(text.strip()):
        return None
    tail = text.strip()[-40:]
    return f"the reply hit the token limit mid-sentence (ends '...{tail}')"


def asks_for_description(question: str) -> bool:
    return bool(_DESCRIBE.search(question))


def _norm_question(text: str) -> set[str]:
    return set(words(text.replace("<image>", "")))


def similar_questions(questions: list[str], config: GateConfig) -> tuple[str, str] | None:
    """The first pair of questions whose word sets overlap beyond the threshold."""
    seen: list[tuple[str, set[str]]] = []
    for q in questions:
        w = _norm_question(q)
        for prev, pw in seen:
            union = w | pw
            if union and len(w & pw) / len(union) >= config.max_question_similarity:
                return prev, q
        seen.append((q, w))
    return None


def _forbidden(text: str, config: GateConfig) -> list[str]:
    found = leak_problems(text)
    lowered = text.lower()
    found += [
        f"mentions '{p}'"
        for p in config.extra_forbidden
        if re.search(r"(?<!\w)" + re.escape(p.lower()) + r"(?!\w)", lowered)
    ]
    return found


# -- records ------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One question (may be empty) and its answer, as a gate sees them."""

    question: str
    answer: str
    description: bool = False  # the answer is meant to describe or explain


def exchanges_of(record: dict[str, Any], description_answers: bool = False) -> list[Exchange]:
    """The (question, answer) texts of a LLaVA record or a question/answer table row."""
    convs = record.get("conversations")
    if isinstance(convs, list):
        out = []
        turns = [str(t.get("value", "")) for t in convs if isinstance(t, dict)]
        for i in range(0, len(turns) - 1, 2):
            q, a = turns[i].replace("<image>", "").strip(), turns[i + 1]
            out.append(Exchange(q, a, description_answers or asks_for_description(q)))
        return out
    if "question" in record and "answer" in record:
        q = str(record["question"])
        return [Exchange(q, str(record["answer"]), False)]
    return []


def check_exchanges(
    exchanges: list[Exchange],
    config: GateConfig,
    finish_reasons: Iterable[tuple[str, str | None]] = (),
) -> list[GateFailure]:
    """Every gate failure of one unit's exchanges; ``finish_reasons`` pairs a reply's text with its finish reason."""
    if not config.enabled:
        return []
    on = set(config.gates)
    failures: list[GateFailure] = []
    for k, ex in enumerate(exchanges, start=1):
        where = f"answer {k}"
        if LEAK in on:
            for text, what in ((ex.answer, where), (ex.question, f"question {k}")):
                problems = _forbidden(text, config)
                if problems:
                    failures.append(GateFailure(LEAK, f"{what} {', '.join(problems)}"))
        if REPETITION in on:  # questions too: conversation and abductive questions are LLM-written
            for text, what in ((ex.answer, where), (ex.question, f"question {k}")):
                problem = repetition_problem(text, config)
                if problem:
                    failures.append(GateFailure(REPETITION, f"{what}: {problem}"))
        if TOO_SHORT in on:
            n = len(words(ex.answer))
            need = config.min_description_words if ex.description else config.min_answer_words
            if n < max(1, need):
                failures.append(GateFailure(TOO_SHORT, f"{where} has {n} words; at least {need} needed"))
        if LANGUAGE in on:
            asked = guess_language(ex.question, config) or config.expected_language
            got = guess_language(ex.answer, config)
            if got is not None and got != asked:
                failures.append(GateFailure(LANGUAGE, f"{where} reads as {got}, the question as {asked}"))
    if REPETITION in on and len(exchanges) > 1:
        # turns copying each other (a teacher echoing the student, the same answer twice)
        problem = repeated_sentence([t for ex in exchanges for t in (ex.question, ex.answer)], config)
        if problem and not any(f.gate == REPETITION for f in failures):
            failures.append(GateFailure(REPETITION, f"across turns: {problem}"))
    if DUPLICATE_QUESTION in on:
        pair = similar_questions([ex.question for ex in exchanges if ex.question], config)
        if pair:
            failures.append(GateFailure(DUPLICATE_QUESTION, f"'{pair[1][:60]}' repeats '{pair[0][:60]}'"))
    if TRUNCATED in on:
        for text, reason in finish_reasons:
            problem = truncated_problem(text, reason)
            if problem:
                failures.append(GateFailure(TRUNCATED, problem))
                break
    return failures


def gate_records(
    records: list[dict[str, Any]],
    config: GateConfig,
    describes: bool = False,
    cut_replies: Iterable[str] = (),
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], list[GateFailure]]]]:
    """Split one unit's records into (kept, [(rejected record, its failures)]).

    ``cut_replies`` are the texts of replies that stopped at the token limit; a record
    built from a reply that stopped mid-sentence is rejected. A question repeating one
    of an earlier kept record of the unit is a duplicate.
    """
    if not config.enabled:
        return list(records), []
    cut = [(text, "length") for text in cut_replies]
    kept: list[dict[str, Any]] = []
    rejected: list[tuple[dict[str, Any], list[GateFailure]]] = []
    seen: list[str] = []
    for record in records:
        exchanges = exchanges_of(record, describes)
        failures = check_exchanges(exchanges, config, cut)
        questions = [ex.question for ex in exchanges if ex.question]
        if DUPLICATE_QUESTION in config.gates and seen:
            for q in questions:
                pair = similar_questions([*seen, q], config)
                if pair is not None and pair[1] == q:
                    failures.append(GateFailure(DUPLICATE_QUESTION, f"'{q[:60]}' repeats '{pair[0][:60]}'"))
                    break
        if failures:
            rejected.append((record, failures))
        else:
            kept.append(record)
            seen.extend(questions)
    return kept, rejected
