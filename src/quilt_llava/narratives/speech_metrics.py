"""How close recognised text is to what was said: word error rate, term recall, damage.

Words are compared in a normalised form (lower case, letters and digits, hyphens split
words) and spelling variants listed in the vocabulary count as the same word
("tumor" = "tumour"), so British/American spelling is not an error.

- **WER**: word-level Levenshtein distance over the reference word count (rapidfuzz).
- **term recall**: of the vocabulary terms in the reference (counted with repeats), the
  share also in the hypothesis: per term ``min(count in reference, count in hypothesis)``.
- **damage**: of the recognised words that were right (aligned equal to the reference),
  the share that a correction changed into something else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quilt_llava.narratives.vocabulary import Vocabulary, norm_words


def normalise(text: str, vocabulary: Vocabulary | None = None) -> list[str]:
    words = list(norm_words(text))
    if vocabulary is None:
        return words
    canon = {v[0]: c[0] for v, c in vocabulary.canonical_form().items() if len(v) == 1 and len(c) == 1}
    return [canon.get(w, w) for w in words]


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(reference, hypothesis)


def wer(reference: str, hypothesis: str, vocabulary: Vocabulary | None = None) -> float:
    ref = normalise(reference, vocabulary)
    return word_errors(ref, normalise(hypothesis, vocabulary)) / max(1, len(ref))


def term_counts(words: list[str], vocabulary: Vocabulary) -> dict[str, int]:
    """How often each term (by canonical spelling) occurs as a run of ``words``."""
    canon = vocabulary.canonical_form()
    longest = max((len(v) for v in canon), default=1)
    counts: dict[str, int] = {}
    for i in range(len(words)):
        for n in range(1, longest + 1):
            run = tuple(words[i : i + n])
            if len(run) == n and run in canon:
                key = " ".join(canon[run])
                counts[key] = counts.get(key, 0) + 1
    return counts


def term_recall(reference: str, hypothesis: str, vocabulary: Vocabulary) -> tuple[int, int]:
    """(terms of the reference found in the hypothesis, terms in the reference)."""
    ref = term_counts(normalise(reference, vocabulary), vocabulary)
    hyp = term_counts(normalise(hypothesis, vocabulary), vocabulary)
    return sum(min(n, hyp.get(t, 0)) for t, n in ref.items()), sum(ref.values())


def terms_unspoken(reference: str, hypothesis: str, vocabulary: Vocabulary) -> int:
    """Term mentions of the hypothesis beyond what the reference says (each term counted past its
    count in the reference): a term a correction wrote over a misheard word where another term, or
    none, was spoken ("glomeruli" where "ovary" was said). Recall does not see these; a correction
    that writes terms freely raises both."""
    ref = term_counts(normalise(reference, vocabulary), vocabulary)
    hyp = term_counts(normalise(hypothesis, vocabulary), vocabulary)
    return sum(max(0, n - ref.get(t, 0)) for t, n in hyp.items())


def aligned(reference: list[str], hypothesis: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """(tag, reference words, hypothesis words) runs; tag is equal, replace, insert or delete."""
    from rapidfuzz.distance import Levenshtein

    return [
        (op.tag, reference[op.src_start : op.src_end], hypothesis[op.dest_start : op.dest_end])
        for op in Levenshtein.opcodes(reference, hypothesis)
    ]


def correct_positions(reference: list[str], hypothesis: list[str]) -> set[int]:
    """Indices of hypothesis words aligned equal to the reference."""
    from rapidfuzz.distance import Levenshtein

    right: set[int] = set()
    for op in Levenshtein.opcodes(reference, hypothesis):
        if op.tag == "equal":
            right.update(range(op.dest_start, op.dest_end))
    return right


def right_lost(reference: str, before: str, after: str, vocabulary: Vocabulary) -> tuple[int, int]:
    """(reference words that ``before`` had right and ``after`` has not, reference words ``before``
    had right): the damage of a change that rewrites the text and its alignment (a second ASR
    pass), counted on the reference side."""
    from rapidfuzz.distance import Levenshtein

    ref = normalise(reference, vocabulary)

    def right(text: str) -> set[int]:
        ops = Levenshtein.opcodes(ref, normalise(text, vocabulary))
        return {i for op in ops if op.tag == "equal" for i in range(op.src_start, op.src_end)}

    had = right(before)
    return len(had - right(after)), len(had)


@dataclass
class SpeechScores:
    words: int
    wer: float
    terms_found: int
    terms: int
    terms_unspoken: int = 0  # term mentions in the hypothesis that the reference does not have

    @property
    def term_recall(self) -> float:
        return self.terms_found / self.terms if self.terms else 1.0

    @property
    def term_precision(self) -> float:
        """Of the term mentions in the hypothesis, the share the reference has."""
        written = self.terms_found + self.terms_unspoken
        return self.terms_found / written if written else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "words": self.words,
            "wer": round(self.wer, 4),
            "terms": self.terms,
            "terms_found": self.terms_found,
            "term_recall": round(self.term_recall, 4),
            "terms_unspoken": self.terms_unspoken,
            "term_precision": round(self.term_precision, 4),
        }


def score(reference: str, hypothesis: str, vocabulary: Vocabulary) -> SpeechScores:
    ref = normalise(reference, vocabulary)
    found, total = term_recall(reference, hypothesis, vocabulary)
    errors = word_errors(ref, normalise(hypothesis, vocabulary))
    unspoken = terms_unspoken(reference, hypothesis, vocabulary)
    return SpeechScores(len(ref), errors / max(1, len(ref)), found, total, unspoken)


def damage(
    reference: str, raw_tokens: list[str], changed: list[tuple[int, int, str]], vocabulary: Vocabulary
) -> tuple[int, int]:
    """(right words changed into other words, right words) for edits on ``raw_tokens``.

    ``changed`` holds (first, last, replacement) ranges over ``raw_tokens`` (end exclusive).
    A right word counts as damaged when its normalised form is not in the replacement.
    """
    ref = normalise(reference, vocabulary)
    # One normalised entry per raw token ("blue-key" stays one entry so indices line up).
    hyp = ["".join(normalise(t, vocabulary)) for t in raw_tokens]
    right = correct_positions(ref, hyp)
    hurt = 0
    for first, last, after in changed:
        kept = set(normalise(after, vocabulary))
        hurt += sum(1 for i in range(first, last) if i in right and hyp[i] not in kept)
    return hurt, len(right)
