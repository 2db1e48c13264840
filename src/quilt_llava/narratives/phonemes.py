"""Sound-alike term candidates from phonemes: runs of recognised words whose pronunciation is close
to a vocabulary term's, for the acoustic check to judge.

The vocabulary corrector compares letter-based sound keys (Metaphone), which see "human lands"
and "tumour glands" as far apart although they sound close. Here both sides are turned into
phoneme strings by espeak-ng (``espeak-ng -q --ipa``: one process per batch, one line per
string on stdin; the terms' strings are cached once per :class:`Phonemes`), stress marks and
word gaps dropped, and compared with rapidfuzz's normalised Levenshtein similarity
("myopsy" /maɪɑːpsi/ and "biopsy" /baɪɑːpsi/: 0.875; spelling and Metaphone point at
"myocyte"). A run that clears ``min_similarity`` becomes a far-tier candidate of
:func:`quilt_llava.narratives.acoustic_check.correct_heard`: kept only when the audio scores it at
least as well as the heard words (on by default since the eighth pass, docs/BENCHMARKS_HISTORY.md, Speech).

Only where the ``espeak-ng`` program is on the path (``scripts/install_espeak.sh``); without it
:func:`available` is false and no phoneme candidates are proposed (the check says so in its log).

Calibrated on the tuning sets (docs/BENCHMARKS_HISTORY.md, Speech, seventh pass, judged then at the looser
tier's margin): at 0.7 the audio kept 6 finds (+5 terms) and no right word was changed; below it
the audio also let right words go ("fibrinoid" -> "carcinoid" at 0.6, "gliosis" -> "mitosis" at
0.67).

Not handled: the issue's "human lands" for "tumour glands": "lands" -> "glands" is found, but
"human" and "tumour" are 0.43 alike as phoneme strings, far below any usable bar. espeak-ng's
rule-based English pronunciation of a garbled non-word is a guess; codes with digits are left to
the corrector (spelling decides there).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from typing import TYPE_CHECKING

from quilt_llava.errors import ConfigError

if TYPE_CHECKING:
    from quilt_llava.narratives.correct import Edit, VocabularyCorrector
    from quilt_llava.narratives.transcript import Transcript

PROGRAM = "espeak-ng"
_DROP = re.compile(r"[ˈˌ\s\-‿]")  # stress marks, word gaps, linking marks
_UNSAFE = re.compile(r"[^\w ]+")
_DIGITS = re.compile(r"\d")


def espeak_path() -> str | None:
    """Where the espeak-ng program is (None: not installed); the demo's voice uses it too."""
    return shutil.which(PROGRAM)


def available() -> bool:
    """Whether espeak-ng can be run here."""
    return espeak_path() is not None


class Phonemes:
    """Phoneme strings of texts, from one espeak-ng process per batch (cached)."""

    def __init__(self, voice: str = "en-us", timeout_s: float = 120.0) -> None:
        self.voice = voice
        self.timeout_s = timeout_s
        self._cache: dict[str, str] = {}
        self.calls = 0  # espeak-ng processes run

    def of(self, texts: list[str]) -> list[str]:
        """The phoneme string of each text (stress and word gaps removed; "" for an empty text)."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        clean = [" ".join(_UNSAFE.sub(" ", t).split()) for t in todo]
        ask = [c for c in clean if c]
        if ask:
            try:
                done = subprocess.run(
                    [espeak_path() or PROGRAM, "-q", "--ipa", "-v", self.voice],
                    input="\n".join(ask) + "\n",
                    capture_output=True,
                    text=True,
                    timeout=self.timeout_s,
                    check=True,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise ConfigError([f"{PROGRAM} failed on {len(ask)} strings: {exc}"]) from exc
            self.calls += 1
            lines = done.stdout.splitlines()
            if len(lines) != len(ask):
                raise ConfigError([f"{PROGRAM} returned {len(lines)} lines for {len(ask)} strings"])
            heard = dict(zip(ask, (_DROP.sub("", line) for line in lines)))
        else:
            heard = {}
        for t, c in zip(todo, clean):
            self._cache[t] = heard.get(c, "")
        return [self._cache[t] for t in texts]


def phoneme_edits(
    transcript: Transcript, corrector: VocabularyCorrector, phonemes: Phonemes, min_similarity: float
) -> list[Edit]:
    """Runs of 1 to ``max_ngram`` words (that the corrector may touch, no codes) whose phonemes are
    at least ``min_similarity`` like a term's (best term per run), as vocabulary edits with the
    similarity as score and ``detail["phonemes"]``."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    from quilt_llava.narratives.correct import other_form, tokens_of
    from quilt_llava.narratives.vocabulary import norm_word

    if not 0 < min_similarity <= 1:
        raise ConfigError([f"min_similarity must be within 0-1, got {min_similarity}"])
    forms = [f for f in corrector.forms if not any(_DIGITS.search(w) for w in f)]
    terms = phonemes.of([" ".join(f) for f in forms])
    runs: list[tuple[int, int, int, tuple[str, ...]]] = []
    for ui, u in enumerate(transcript.utterances):
        norms = [norm_word(t) for t in tokens_of(u)]
        for i in range(len(norms)):
            for n in range(1, corrector.config.max_ngram + 1):
                run = tuple(norms[i : i + n])
                if len(run) < n or any(_DIGITS.search(w) for w in run) or not corrector.touchable(run)[0]:
                    continue
                runs.append((ui, i, i + n, run))
    heard = phonemes.of([" ".join(r[3]) for r in runs])
    found: list[Edit] = []
    for (ui, a, b, run), sound in zip(runs, heard):
        if not sound:
            continue
        best = None
        for _, sim, k in process.extract(
            sound, terms, scorer=Levenshtein.normalized_similarity, score_cutoff=min_similarity, limit=4
        ):
            if (best is not None and sim <= best[1]) or set(run) & set(forms[k]):
                continue  # a run holding a word of the term is part of it, not a mishearing of it
            if any(other_form(w, t) for w in run for t in forms[k]):
                continue  # another form of a term word ("neutrophilic"), not a mishearing
            best = (k, sim)
        if best is None:
            continue
        term = corrector.term_of(forms[best[0]])
        if term is None:  # not reached: the forms are the corrector's own
            continue
        tokens = tokens_of(transcript.utterances[ui])
        edit = corrector.edit(ui, a, b, tokens, term.canonical, best[1], 0.0, best[1])
        found.append(replace(edit, detail={"phonemes": round(best[1], 3)}))
    return found
