"""Term candidates over runs of heard words that the corrector's rules never look at.

The corrector (:mod:`quilt_llava.narratives.correct`) compares runs of up to ``max_ngram`` words
with the terms, but only runs it may touch: none that holds a term or shares a word with the term
("reed stern nerve cells" holds "cells" and "Reed"), none of everyday words alone unless they spell
the term ("garlic cells", "central main"), none with another form of a term word ("membrane as"
holds "membrane"), and it moves a word boundary only inside a non-word ("larger typical" ->
"large atypical" is two real words). Those rules guard right words where the text alone decides.
Where the audio is at hand (:mod:`quilt_llava.narratives.acoustic_check`), candidates can be
offered more widely and the audio left to decide, as the far tier does. :func:`span_edits` offers
two kinds, each judged at the far tier (kept only when the forced decoding scores the edited words
at least as well as the heard ones by the sum and by the mean per token):

- **rejoined runs**: every run of 2 to ``max_words`` heard words whose joined spelling and sound
  (the corrector's :func:`~quilt_llava.narratives.correct.similarity`) are at least ``min_score``
  like a term's, whatever the run holds ("reed stern nerve cells" -> "Reed Sternberg cells",
  "membrane as" -> "membranous", "garlic cells" -> "goblet cells"); the ``per_run`` closest terms
  of each run;
- **re-cut boundaries**: two adjacent words whose letters, with the boundary moved by one or two
  letters, give an everyday word (Zipf at least ``glue_zipf``) and a piece at least ``min_score``
  like a term ("larger typical" -> "large" + "rtypical" -> "large atypical").

Refused, as the corrector and the alternatives refuse them: a run that spells the term already or
holds it; the only word that changes being another form of a term word ("nuclei" -> "nucleus",
the audio cannot tell forms apart); and, unless ``meaning_prefixes``, a word that becomes itself
with or without a prefix that changes its meaning ("typical" -> "atypical": the recogniser is
the only judge of that syllable). No rule names a word or a sentence.

Measured (docs/BENCHMARKS.md, Speech, tenth pass): on the tuning sets 260 -> 261 of 302 terms
("reed stern nerve cells" -> "Reed Sternberg cells"), on the clean sets heldout4-9 447 -> 449 of
564, no right word more changed, for 25 % more forced decodes. Most candidates that would restore a
term ("membrane as" -> "membranous", "central main" -> "central vein") score 0.3-1.3 per token
below the heard words under tiny.en (whose beam search chose those words), so the far tier's bar
refuses them; a looser bar was not taken (wrong candidates begin about 0.9 below).

Not handled: terms of more words than ``max_words`` heard words; a re-cut of three words or of more
than two letters; a term heard as everyday words that read and sound unlike it ("looking at
oxygen" for "haematoxylin": the alternatives' ground).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quilt_llava.errors import ConfigError

_PAUSE = ".,;:!?"  # after a word: the recogniser heard a pause there

if TYPE_CHECKING:
    from quilt_llava.narratives.correct import Edit, VocabularyCorrector
    from quilt_llava.narratives.transcript import Transcript


@dataclass(frozen=True)
class SpanConfig:
    """Which runs of heard words become far-tier candidates (docs/BENCHMARKS.md, Speech, tenth pass)."""

    max_words: int = 4  # longest run of heard words one candidate replaces
    min_score: float = 0.75  # spelling-and-sound similarity of the run (or re-cut piece) to the term
    min_spelling: float = 0.6
    per_run: int = 2  # closest terms offered per run
    glue_zipf: float = 4.0  # the everyday word a re-cut boundary leaves beside the term
    shift: int = 2  # letters a re-cut boundary moves, at most
    # the least gain per token (edited minus heard log-probability, by the sum and by the mean) that
    # the audio must give these candidates; 0, the far tier's bar: at least as well as the heard words
    gain: float = 0.0
    # offer a word that becomes itself with or without a meaning-changing prefix ("typical" ->
    # "atypical"): the audio alone would decide it
    meaning_prefixes: bool = False

    def validate(self) -> None:
        problems = []
        if not 2 <= self.max_words <= 6:
            problems.append(f"max_words must be within 2-6, got {self.max_words}")
        for name in ("min_score", "min_spelling"):
            if not 0 < getattr(self, name) <= 1:
                problems.append(f"{name} must be within (0, 1], got {getattr(self, name)}")
        if self.per_run < 1:
            problems.append(f"per_run must be >= 1, got {self.per_run}")
        if not -5 <= self.gain <= 5:
            problems.append(f"gain must be within -5 to 5 (log-probability per token), got {self.gain}")
        if not 1 <= self.shift <= 4:
            problems.append(f"shift must be within 1-4, got {self.shift}")
        if problems:
            raise ConfigError(problems)


def _changed(heard: tuple[str, ...], meant: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The words of ``heard`` and of ``meant`` that the other lacks (each word once per occurrence)."""
    old, new = list(heard), []
    for w in meant:
        if w in old:
            old.remove(w)
        else:
            new.append(w)
    return old, new


def number_form(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one word in the singular and the plural ("cell"/"cells",
    "nucleus"/"nuclei")."""
    from quilt_llava.narratives.asr_alternatives import PLURALS, swapped_ending

    return swapped_ending(a, b, (("", "s"), ("", "es"), *PLURALS))


def refusal(
    heard: tuple[str, ...], meant: tuple[str, ...], corrector: VocabularyCorrector, config: SpanConfig
) -> str | None:
    """Why heard words ``heard`` may not become ``meant`` (normalised words), or None."""
    from quilt_llava.narratives.asr_alternatives import forms_alike
    from quilt_llava.narratives.correct import MEANING_PREFIXES

    if heard == meant:
        return "the same words"
    term = corrector.term_of(meant)
    if term is not None and term.canonical in corrector.terms_in(heard):
        return "the term is heard there"
    old, new = _changed(heard, meant)
    if not old:
        return "words added with nothing heard for them"
    new = [f for f in new if not any(number_form(w, f) for w in old)]
    if not new:
        return "only the number changes or words go"  # "membrane as" -> "membranes": the audio cannot tell
    if not config.meaning_prefixes and any(
        f == p + w or w == p + f for w in old for f in new for p in MEANING_PREFIXES
    ):
        return "a meaning-changing prefix"
    if len(old) == 1 and any(forms_alike(old[0], f) for f in new):
        return "another form of a term word"
    return None


def heard_terms(norms: list[str], corrector: VocabularyCorrector) -> list[tuple[int, int]]:
    """Words ``a:b`` of every several-word term that ``norms`` spell."""
    longest = max(len(f) for f in corrector.forms)
    return [
        (a, a + n)
        for a in range(len(norms))
        for n in range(2, longest + 1)
        if a + n <= len(norms) and corrector.term_of(tuple(norms[a : a + n])) is not None
    ]


def rejoined_edits(
    ui: int, tokens: list[str], norms: list[str], corrector: VocabularyCorrector, config: SpanConfig
) -> list[Edit]:
    """Runs of 2 to ``max_words`` words that read and sound like a term when joined, each word
    needed (the run without its first or its last word is less like the term)."""
    from quilt_llava.narratives.correct import similarity

    found: list[Edit] = []
    held = heard_terms(norms, corrector)
    for i in range(len(norms)):
        for n in range(2, config.max_words + 1):
            run = tuple(norms[i : i + n])
            if len(run) < n or not all(run) or corrector.term_of(run) is not None:
                continue
            if any(t != t.rstrip(_PAUSE) for t in tokens[i : i + n - 1]):
                break  # a pause was heard inside the run: its boundaries are real
            if any(a < i < b or a < i + n < b for a, b in held):
                continue  # it cuts through a several-word term heard ("basement membrane is")
            offered = 0
            for form, score, spelling, sound in corrector.nearest(run):
                if offered >= config.per_run or score < config.min_score:
                    break
                if spelling < config.min_spelling or refusal(run, form, corrector, config):
                    continue
                if max(similarity(run[1:], form)[0], similarity(run[:-1], form)[0]) >= score:
                    continue  # a word at its edge does not earn its place ("has perinoral invasion")
                term = corrector.term_of(form)
                found.append(corrector.edit(ui, i, i + n, tokens, term.canonical, score, spelling, sound))  # type: ignore[union-attr]
                offered += 1
    return found


def recut_edits(
    ui: int, tokens: list[str], norms: list[str], corrector: VocabularyCorrector, config: SpanConfig
) -> list[Edit]:
    """Two adjacent words whose boundary, moved by up to ``shift`` letters, leaves an everyday word
    and a piece that reads and sounds like a term."""
    found: list[Edit] = []
    for i in range(len(norms) - 1):
        left, right = norms[i], norms[i + 1]
        if not left or not right or tokens[i] != tokens[i].rstrip(_PAUSE):
            continue  # a pause was heard there: the boundary is real
        if corrector.terms_in((left,)) or corrector.terms_in((right,)):
            continue  # a term heard stays (rejoined runs may still replace it)
        joined = left + right
        for s in range(-config.shift, config.shift + 1):
            cut = len(left) + s
            if s == 0 or not 3 <= cut <= len(joined) - 3:
                continue
            a, b = joined[:cut], joined[cut:]
            for word, piece, word_first in ((a, b, True), (b, a, False)):
                if len(piece) < 4 or corrector.zipf(word) < config.glue_zipf:
                    continue
                for form, score, spelling, sound in corrector.nearest((piece,))[: config.per_run]:
                    if score < config.min_score or spelling < config.min_spelling:
                        break
                    meant = (word, *form) if word_first else (*form, word)
                    if refusal((left, right), meant, corrector, config):
                        continue
                    term = corrector.term_of(form).canonical  # type: ignore[union-attr]
                    after = f"{word} {term}" if word_first else f"{term} {word}"
                    found.append(corrector.edit(ui, i, i + 2, tokens, after, score, spelling, sound))
    return found


def span_edits(transcript: Transcript, corrector: VocabularyCorrector, config: SpanConfig) -> list[Edit]:
    """Rejoined-run and re-cut-boundary candidates of every utterance (module docstring), each with
    ``detail["span"]`` naming its kind; best text score first per utterance."""
    from dataclasses import replace

    from quilt_llava.narratives.correct import tokens_of
    from quilt_llava.narratives.vocabulary import norm_word

    config.validate()
    out: list[Edit] = []
    for ui, u in enumerate(transcript.utterances):
        tokens = tokens_of(u)
        norms = [norm_word(t) for t in tokens]
        found: dict[tuple[int, int, str], Edit] = {}
        for kind, source in (("rejoined", rejoined_edits), ("recut", recut_edits)):
            for e in source(ui, tokens, norms, corrector, config):
                found.setdefault((e.first, e.last, e.after), replace(e, detail={**e.detail, "span": kind}))
        out += sorted(found.values(), key=lambda e: (-e.score, e.first))
    return out
