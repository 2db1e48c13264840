"""Term candidates from the recogniser's other hypotheses: what else Whisper nearly heard.

The corrector (:mod:`quilt_llava.narratives.correct`) and the phoneme sound-alikes
(:mod:`quilt_llava.narratives.phonemes`) only reach terms that the first pass's *words* resemble.
When the recogniser heard everyday words far from the term ("looking at oxygen" for
"haematoxylin"), or another term ("chromatin" for "chromogen"), nothing in the text points back.
The recogniser itself sometimes does: decoding the utterance's audio again and keeping the ``N`` best
beam hypotheses (CTranslate2 ``Whisper.generate(num_hypotheses=N)``) gives other readings of
the unsure stretches ("around the AB chromogen" beside "ground DAB chromatin").

For each utterance that is unsure (a run of its words reads or sounds like a term it does not
hold at ``unsure_min_score``, the looser tier's bar; in pathology narration that is nearly every
utterance: 112 of 117 pieces of the tuning sets), :func:`alternative_edits`

1. re-decodes its audio (the clip the acoustic check scores, encoded once for both) with a beam of
   ``N`` and keeps the ``N`` hypotheses, optionally after the preceding utterance's words as a
   prompt (``context``: Whisper's previous-text conditioning);
2. runs the corrector over each hypothesis (its own bars), so a hypothesis that is one edit away
   from a term counts too;
3. for every term a hypothesis spells, finds the fewest first-pass words that say the same
   stretch (:func:`covering`: the two readings' space-joined words aligned character by
   character, so "testinal metoplasia" / "testing all metaplasia" gives "metoplasia" ->
   "metaplasia" and leaves the neighbour alone) and offers them, changed into the hypothesis's
   words there (the term in its own spelling where the stretch is just the term; the
   hypothesis's words beside the term that the first pass did not hear are listed in the edit's
   ``detail["added"]``), as an edit,
   unless the first pass holds the term there already, a term it heard would go for words that
   read and sound less than ``rival_min_score`` like it (the looser tier's bar: "chromatin" ->
   "chromogen", 0.73, is offered; "teratoma" -> "tumour", 0.43, which the audio accepted on a
   tuning set, is not), a word heard is another form of the term ("nuclei" -> "nucleus": the
   audio cannot tell forms apart, eighth pass), or more than ``max_words`` words change.

The edits are far-tier candidates of :func:`quilt_llava.narratives.acoustic_check.correct_heard`:
kept only when the forced decoding scores them at least as well as the words as heard, by the
sum and by the mean per token. No rule names a word or a sentence; the audio decides.

Measured (docs/BENCHMARKS_HISTORY.md, Speech, ninth pass): on the tuning sets 251 -> 260 of 302 terms with
no right word more changed (the demo narration 30 -> 32 of 37), for one beam decode per utterance
(the check's time about 1.9 x);
prompting with the preceding words (``context``) and 8 hypotheses found as many terms, other ones.

Not handled: a term no hypothesis holds (a beam of 5 on tiny.en often repeats one reading, and
the re-decode hears mostly what the first pass heard); a term heard as another form of one, or as
another term unlike it; words dropped at an utterance's edge with no neighbour both readings share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quilt_llava.errors import ConfigError

if TYPE_CHECKING:
    from quilt_llava.narratives.acoustic_check import AcousticCheck
    from quilt_llava.narratives.correct import Edit, VocabularyCorrector
    from quilt_llava.narratives.transcript import Transcript

_EDGE = re.compile(r"^[^\w]+|[^\w]+$")
PLURALS = (("us", "i"), ("um", "a"), ("on", "a"), ("is", "es"), ("a", "ae"), ("ex", "ices"), ("ix", "ices"))


@dataclass(frozen=True)
class AlternativesConfig:
    """How the recogniser's other hypotheses are asked for (docs/BENCHMARKS_HISTORY.md, Speech, ninth pass)."""

    hypotheses: int = 5  # N best of a beam of max(beam_size, N)
    beam_size: int = 5
    # an utterance is re-decoded when a run of its words is at least this like a term it does not hold
    unsure_min_score: float = 0.66
    context: bool = False  # prompt the re-decode with the preceding utterance's words
    max_words: int = 4  # longest run of first-pass words one hypothesis may replace
    # a term the first pass heard is replaced only by a term whose words read and sound at least
    # this much like it (the looser tier's bar: "chromatin" -> "chromogen", 0.73, yes; "teratoma" ->
    # "tumour", 0.43, no)
    rival_min_score: float = 0.66
    max_length: int = 224  # tokens per hypothesis (one Whisper window holds at most 224)

    def validate(self) -> None:
        problems = []
        if self.hypotheses < 1:
            problems.append(f"hypotheses must be >= 1, got {self.hypotheses}")
        if self.beam_size < 1:
            problems.append(f"beam_size must be >= 1, got {self.beam_size}")
        if not 0 < self.unsure_min_score <= 1:
            problems.append(f"unsure_min_score must be within (0, 1], got {self.unsure_min_score}")
        if not 0 <= self.rival_min_score <= 1:
            problems.append(f"rival_min_score must be within 0-1, got {self.rival_min_score}")
        if self.max_words < 1:
            problems.append(f"max_words must be >= 1, got {self.max_words}")
        if not 1 <= self.max_length <= 448:
            problems.append(f"max_length must be within 1-448, got {self.max_length}")
        if problems:
            raise ConfigError(problems)


def unsure(corrector: VocabularyCorrector, norms: list[str], min_score: float) -> bool:
    """Whether a run of ``norms`` reads or sounds like a term that the words do not spell."""
    return any(s < 1.0 for s in corrector.near_terms(norms, min_score).values())


def forms_alike(word: str, term: str) -> bool:
    """Whether ``word`` is another form of ``term``: the corrector's rule, or a Latin or Greek
    plural ("nuclei"/"nucleus", "bacteria"/"bacterium", "mitoses"/"mitosis")."""
    from quilt_llava.narratives.correct import other_form

    return other_form(word, term) or swapped_ending(word, term, PLURALS)


def swapped_ending(a: str, b: str, endings: tuple[tuple[str, str], ...]) -> bool:
    """Whether ``a`` and ``b`` are one stem (of 3 letters or more) with the two ``endings`` of a pair,
    either way round ("nucleus"/"nuclei" with ("us", "i"))."""
    for one, many in endings:
        for x, y in ((a, b), (b, a)):
            stem = x[: len(x) - len(one)]
            if len(stem) >= 3 and x.endswith(one) and y.endswith(many) and stem == y[: len(y) - len(many)]:
                return True
    return False


def _char_map(a: str, b: str) -> list[int]:
    """For each character position of ``b`` (and its end), the position of ``a`` it aligns with
    (Levenshtein opcodes; a changed stretch maps proportionally, an inserted one to its place)."""
    from rapidfuzz.distance import Levenshtein

    out = [0] * (len(b) + 1)
    for op in Levenshtein.opcodes(a, b):
        n_a, n_b = op.src_end - op.src_start, op.dest_end - op.dest_start
        for k in range(n_b):
            out[op.dest_start + k] = op.src_start + (k * n_a) // max(1, n_b)
    out[len(b)] = len(a)
    return out


def _words_over(starts: list[int], words: list[str], lo: int, hi: int) -> tuple[int, int]:
    """Words ``i:j`` whose characters (at ``starts``, in a space-joined string) meet ``lo:hi``."""
    hit = [k for k, (s0, w) in enumerate(zip(starts, words)) if s0 < hi and s0 + len(w) > lo]
    return (hit[0], hit[-1] + 1) if hit else (0, 0)


def _starts(words: list[str]) -> list[int]:
    out, t = [], 0
    for w in words:
        out.append(t)
        t += len(w) + 1
    return out


def covering(old: list[str], new: list[str], p: int, q: int) -> tuple[int, int, int, int]:
    """(i, j, p, q): the fewest words ``old[i:j]`` and ``new[p:q]`` (holding the given ``new[p:q]``)
    that say the same stretch, found by aligning the space-joined words character by character
    ("testinal metoplasia" / "testing all metaplasia": "metoplasia" / "metaplasia";
    "micromasculopreliferation" / "micromascular proliferation": both words). ``i == j`` where
    the stretch falls between words of ``old``."""
    a, b = " ".join(old), " ".join(new)
    sa, sb = _starts(old), _starts(new)
    to_a, to_b = _char_map(a, b), _char_map(b, a)
    i = j = 0
    for _ in range(4):  # grow both sides until they cover each other
        lo, hi = to_a[sb[p]], to_a[sb[q - 1] + len(new[q - 1])]
        i, j = _words_over(sa, old, lo, max(hi, lo + 1))
        if i == j:
            return i, i, p, q
        lo, hi = to_b[sa[i]], to_b[sa[j - 1] + len(old[j - 1])]
        p2, q2 = _words_over(sb, new, lo, max(hi, lo + 1))
        p2, q2 = min(p, p2), max(q, q2)
        if (p2, q2) == (p, q):
            break
        p, q = p2, q2
    return i, j, p, q


def hypothesis_edits(
    ui: int,
    tokens: list[str],
    a: int,
    b: int,
    hypothesis: list[str],
    corrector: VocabularyCorrector,
    max_words: int,
    rival_min_score: float = 0.66,
) -> list[Edit]:
    """Edits of words of ``tokens[a:b]`` (utterance ``ui``) into the words of ``hypothesis``
    (corrected already) that say the same stretch and hold a term they lack (module docstring)."""
    from dataclasses import replace

    from quilt_llava.narratives.correct import similarity
    from quilt_llava.narratives.vocabulary import norm_word

    words = [w for w in (_EDGE.sub("", h) for h in hypothesis) if norm_word(w)]
    on, nn = [norm_word(t) for t in tokens[a:b]], [norm_word(w) for w in words]
    if not on or not nn:
        return []
    found: list[Edit] = []
    n = corrector.config.max_ngram
    for p0 in range(len(nn)):
        for q0 in range(p0 + 1, min(len(nn), p0 + n) + 1):
            term = corrector.term_of(tuple(nn[p0:q0]))
            if term is None:
                continue
            i, j, p, q = covering(on, nn, p0, q0)
            if i == j:  # words the first pass dropped: take in a neighbour that both hold
                if i > 0 and p > 0 and on[i - 1] == nn[p - 1]:
                    i, p = i - 1, p - 1
                elif j < len(on) and q < len(nn) and on[j] == nn[q]:
                    j, q = j + 1, q + 1
                else:
                    continue
            heard, meant = tuple(on[i:j]), tuple(nn[p:q])
            if heard == meant or j - i > max_words or q - p > max_words + 1:
                continue
            if term.canonical in corrector.terms_in(tuple(on[max(0, i - 1) : j + 1])):
                continue  # heard already
            score, spelling, sound = similarity(heard, meant)
            lost = corrector.terms_in(heard) - corrector.terms_in(tuple(nn[max(0, p - 1) : q + 1]))
            if lost and score < rival_min_score:
                continue  # a term heard goes only for a term that reads and sounds like it
            if any(forms_alike(w, f) for v in term.variants for f in v for w in heard):
                continue  # another form of a word heard ("nuclei" -> "nucleus"): the audio cannot tell
            # the term in its own spelling ("pseudo-inclusions" -> "pseudoinclusions"), else the stretch
            after = term.canonical if (p, q) == (p0, q0) else " ".join(words[p:q])
            e = corrector.edit(ui, a + i, a + j, tokens, after, score, spelling, sound)
            # the hypothesis's words beside the term that the first pass did not hear there: its
            # guess at ordinary words ("mass and trichrome" for "mesentry chrome")
            added = [w for w in (*nn[p:p0], *nn[q0:q]) if w not in heard]
            found.append(replace(e, detail={**e.detail, "added": added}) if added else e)
    return found


def alternative_edits(
    transcript: Transcript, audio: Any, check: AcousticCheck, corrector: VocabularyCorrector, config: AlternativesConfig
) -> list[Edit]:
    """Term edits from the ``config.hypotheses`` best re-decodings of each unsure utterance of
    ``transcript`` (module docstring), each with ``detail["alternative"]`` (the hypothesis's rank)."""
    from dataclasses import replace

    from quilt_llava.narratives.correct import apply_edits, tokens_of
    from quilt_llava.narratives.transcript import Transcript, Utterance
    from quilt_llava.narratives.vocabulary import norm_word

    found: dict[tuple[int, int, int, str], Edit] = {}
    previous = ""
    for ui, u in enumerate(transcript.utterances):
        tokens = tokens_of(u)
        prompt, previous = previous, " ".join(tokens)
        if not u.words or not unsure(corrector, [norm_word(t) for t in tokens], config.unsure_min_score):
            continue
        for a, b in check.pieces(u):
            clip = check.clip(audio, transcript, ui, a, b)
            if clip is None:
                continue
            texts = check.hypotheses(clip, config, prompt if config.context else "")
            for rank, text in enumerate(texts):
                one = Transcript([Utterance(0.0, 0.0, text)])
                fixed = apply_edits(one, corrector.edits(one))  # a hypothesis one edit from a term counts too
                for e in hypothesis_edits(
                    ui,
                    tokens,
                    a,
                    b,
                    tokens_of(fixed.utterances[0]),
                    corrector,
                    config.max_words,
                    config.rival_min_score,
                ):
                    key = (e.utterance, e.first, e.last, e.after)
                    if key not in found:
                        found[key] = replace(e, detail={**e.detail, "alternative": rank})
    return list(found.values())
