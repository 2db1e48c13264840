"""Correcting recognised speech against a pathology vocabulary, keeping word timings.

General speech recognition turns pathology terms into everyday words and non-words
("haematoxylin" -> "hematoxelin", "fibroblasts" -> "fibrodless", "neoplastic" ->
"nucleastic"). :class:`VocabularyCorrector` looks at every run of one to
``max_ngram`` recognised words and compares it with every vocabulary term on spelling
(normalised Indel similarity, ``rapidfuzz``) and on sound (Metaphone keys from
``jellyfish``, compared the same way). A run is replaced when its combined score clears
``min_score`` and it is safe to touch:

- a run that already is a term (in any listed spelling) is never changed, nor any run
  holding a word that is a one-word term (a correct term is not "corrected" into another,
  unless a context cue says so, below), except words that spell one longer term exactly when
  joined ("pseudo inclusions" -> "pseudoinclusions", where "inclusions" is a term too);
- a word that is another form of a term word is left alone: the same stem with
  another ending ("neutrophilic" is not "neutrophil", "granular" not "granuloma") or the
  word without a prefix that changes its meaning ("typical", "section");
- a heard word that already is a pathology word is not rewritten into another term
  (``form_min_zipf``): a term with a plural ending ("fibrocytes" stays, not "fibrosis") or a
  word of English that is another form of a term's stem ("epithelioid", "mucosal",
  "ulcerated", "proliferating"); only a context cue (below) may still change it;
- at least one word of the run must be rare in English (``wordfreq`` Zipf frequency
  below ``common_zipf``, i.e. not a word in ordinary use), except a lone word that is very close to a term
  (``common_min_score``, "land" -> "gland"; the bar rises to it from ``min_score`` over
  ``common_ramp_zipf`` Zipf steps, so a rare word needs less) and not among the most frequent words
  (``max_common_zipf``), and a run of common words that spells a term when joined
  ("neo plastic"). Other runs of ordinary words ("ground", "easy or plastic") are left
  alone: without context a misheard common word cannot be told from a correct one (this
  is what the LLM pass is for).

Four more kinds of candidate use what is around a word:

- **anchored several-word terms**: where some words of a several-word term were heard
  right, only the others are compared ("perinoral invasion" -> "perineural invasion");
- **misplaced word boundaries**: a non-word that is a term and an everyday word run
  together ("stromover" -> "stroma over"), or a non-word that becomes a real word once its
  last letters start the next word ("cellulars trauma" -> "cellular stroma");
- **context cues**: a vocabulary line may list words often said next to the term
  (``membranous @ staining, pattern``). A word that sounds like a cued term with one of its
  cues beside it (a non-word: within ``cue_window`` words of the same sentence) becomes the
  term at the lower bar ``cue_min_score``, even a real word or another term that has no
  cue of its own there ("membrane staining" -> "membranous staining", "DAB chromatin" ->
  "DAB chromogen"; "coarse chromatin" stays; "hyperplastic cells" stays too: the cued
  "neoplastic" is the same stem behind another meaning prefix, :func:`swapped_prefix`);
- **number agreement** (``number_agreement``): a one-word term heard in the singular becomes
  its plural, where the vocabulary lists that plural as a term, when it heads the subject of
  "are"/"were" ("the X are", not "of the X are") or comes right after a word that counts
  several ("many", "two", "these"): "the mitosis are frequent" -> "the mitoses are frequent".
  The recogniser cannot hear "-sis" from "-ses", the sentence can. A pause (punctuation)
  between the words stops it. The other way, a term of one to three words heard with its last
  word in the plural becomes its singular (where that is a term) right after a word that counts
  one ("a", "an", "one", "each", "every", "another", "single"), or with one word between that is
  no pause, quantity ("a few"), preposition, term, plural or possessive, and does not make a word
  joined to the counting word ("a typical" may be "atypical"): "each keratinocytes" ->
  "each keratinocyte", "a large osteoclasts" -> "a large osteoclast".

All candidates compete: at most one edit per word, the best-scoring first.

Two guards against rewrites that change right words (measured in docs/BENCHMARKS.md, Speech):
a code with digits is compared on spelling alone (:func:`similarity`: Metaphone drops where
the digits sit, so "C4d" sounded exactly like "CD4"), and several words that would become
more words need ``common_min_score`` (:meth:`VocabularyCorrector.rewrite_bar`), the bar of a
lone common word; the second-pass merge uses both.

Every change is an :class:`Edit` (utterance, word range, before, after, scores) that
:func:`apply_edits` turns into a new transcript: the new words share the time span of
the words they replace, split by length, so word timings stay inside the original
interval. The LLM pass (:mod:`quilt_llava.narratives.correct_llm`) produces the same
edits after checking them.

Where the audio is at hand, :mod:`quilt_llava.narratives.acoustic_check` runs this corrector
at its bars and at looser ones and lets the recogniser judge the looser finds.

Not handled (text alone): a term heard as ordinary words with no cue nearby ("looking at oxygen" for
"haematoxylin", "ground" for "brown"), a term heard as another real term with no cue
("chromatin" for "chromogen" in "crisp brown chromogen" when "brown" itself was misheard),
a term whose cues are not in the vocabulary file, and words a term was split into that
no whole-word run or single moved boundary recovers ("an neoplastic" for "a desmoplastic").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from quilt_llava.errors import ConfigError
from quilt_llava.narratives.transcript import Transcript, Utterance, Word
from quilt_llava.narratives.vocabulary import Term, Vocabulary, norm_word

# Prefixes that change a word's meaning (typical/atypical, section/resection), and endings
# that make another form of the same stem (neutrophil/neutrophilic, granular/granuloma).
MEANING_PREFIXES = (
    "a",
    "an",
    "anti",
    "de",
    "dys",
    "endo",
    "epi",
    "hyper",
    "hypo",
    "in",
    "inter",
    "intra",
    "meta",
    "neo",
    "non",
    "para",
    "peri",
    "post",
    "pre",
    "pro",
    "re",
    "sub",
    "trans",
    "un",
)
FORM_ENDINGS = (
    "",
    "s",
    "es",
    "e",
    "ic",
    "ical",
    "oid",
    "al",
    "ar",
    "ous",
    "y",
    "ia",
    "oma",
    "omas",
    "itis",
    "osis",
    "otic",
    "ity",
    "ism",
    "ed",
    "ing",
)
# More endings that make another form of a term's stem, used only to tell whether a heard word is
# itself a pathology word (:meth:`VocabularyCorrector.pathology_word`): mucosa/mucosal,
# epithelium/epithelioid, ulcer/ulcerated, proliferation/proliferating.
WORD_FORM_ENDINGS = (*FORM_ENDINGS, "a", "um", "ated", "ion")
# Words after which a noun is plural ("are", "were") and words before which it is ("many nucleus").
PLURAL_VERBS = frozenset({"are", "were"})
PLURAL_COUNTS = frozenset(
    {"many", "several", "numerous", "multiple", "few", "two", "three", "four", "five", "these", "those", "both"}
)
# Words after which a noun is singular ("a keratinocytes", "each osteoclasts", "one mast cells").
SINGULAR_COUNTS = frozenset({"a", "an", "one", "each", "every", "another", "single"})
# Words that may stand between such a word and its noun only when they are not themselves the noun
# of a quantity ("a few", "a couple", "a pair of"): these stop the singular cue.
QUANTITY_WORDS = frozenset({"few", "couple", "pair", "dozen", "lot", "number", "group", "cluster", "handful", "series"})
# Before "are"/"were" the term must head the subject: right after "the" (or a counting word), and
# that not inside a phrase ("the adipocytes of this lobule are": the verb is the adipocytes').
PLURAL_HEADS = frozenset({"the", "some", "all"})
_PREPOSITIONS = "of in on at with from by around within beside between near under over into for to across through along"
PREPOSITIONS = frozenset(f"{_PREPOSITIONS} among about without inside".split())
# Singular endings and their plurals: Latin and Greek ones first, then English -s/-es/-ies.
PLURAL_ENDINGS = (("sis", "ses"), ("us", "i"), ("um", "a"), ("on", "a"), ("a", "ae"), ("ex", "ices"), ("ix", "ices"))
_LEAD = re.compile(r"^[^\w]*")
_TRAIL = re.compile(r"[^\w]*$")
_DIGITS = re.compile(r"\d+")


@dataclass
class CorrectionConfig:
    """Thresholds of the vocabulary pass (set on the demo narration; see docs/BENCHMARKS.md)."""

    max_ngram: int = 3
    min_score: float = 0.74  # mean of spelling and sound similarity, 0-1
    min_spelling: float = 0.6
    # Words at least this frequent in English (about once in 10 million words) are real words:
    # one alone is replaced only when it is very close to a term (common_min_score).
    common_zipf: float = 2.0
    # A lone common word is changed only when it is very close to a term ("land" -> "gland")
    # and not among the most frequent words of English.
    common_min_score: float = 0.86
    max_common_zipf: float = 5.5
    # The bar rises from min_score to common_min_score over this many Zipf steps above
    # common_zipf: a rare real word ("highline", Zipf 2.3) is a likelier mishearing than a frequent one.
    common_ramp_zipf: float = 0.5
    candidates: int = 8  # best terms by spelling and by sound looked at per run
    # A non-word split at a misplaced boundary: each piece has at least min_piece letters, and the
    # piece that is not the term must be an everyday word (Zipf >= glue_zipf: "over", "in").
    min_piece: int = 3
    glue_zipf: float = 5.5
    # A word next to one of a term's context cues (vocabulary "@" lists; within cue_window words
    # either side in the same sentence for a non-word, right beside it for a real word or another
    # term without cues of its own there) may become that term at this lower bar
    # ("membrane staining" -> "membranous staining").
    cue_window: int = 3
    cue_min_score: float = 0.7
    # Several everyday words are replaced only when their joined spelling is at least this close
    # to the term (1.0: they must spell it, "neo plastic"); lower only with a check that hears
    # the audio (narratives.acoustic_check), which refuses what was not said.
    common_run_min_spelling: float = 1.0
    # A heard word that is already a pathology word is not rewritten into another term by spelling
    # and sound (context cues still may): a term, a term with a plural ending ("fibrocytes"), or a
    # word of English at least this frequent (Zipf) that is another form of a term's stem
    # ("epithelioid", "mucosal", "ulcerated", "proliferating"). Such a word was heard right far more
    # often than it hides a mishearing (docs/BENCHMARKS.md, Speech, twelfth pass). None: off.
    form_min_zipf: float | None = 1.5
    # A one-word term heard in the singular where English grammar wants the plural becomes the
    # plural that the vocabulary lists as a term: heading the subject of "are"/"were", or after a
    # word that counts several ("the mitosis are frequent" -> "the mitoses are frequent", "many
    # nucleus" -> "many nuclei"). The recogniser cannot hear "-sis" from "-ses"; the sentence can.
    number_agreement: bool = True

    def validate(self) -> None:
        problems = []
        if not 1 <= self.max_ngram <= 5:
            problems.append(f"max_ngram must be 1-5, got {self.max_ngram}")
        for name in ("min_score", "min_spelling", "common_min_score", "cue_min_score", "common_run_min_spelling"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be within 0-1, got {getattr(self, name)}")
        if self.candidates < 1:
            problems.append(f"candidates must be >= 1, got {self.candidates}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class Edit:
    """Replace words ``first:last`` (end exclusive) of utterance ``utterance`` by ``after``."""

    utterance: int
    first: int
    last: int
    before: str
    after: str
    method: str  # "vocabulary" or "llm"
    score: float = 1.0
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, transcript: Transcript | None = None) -> dict[str, Any]:
        row = asdict(self)
        if transcript is not None:
            u = transcript.utterances[self.utterance]
            span = u.words[self.first : self.last] if u.words else ()
            row["start"] = round(span[0].start, 3) if span else round(u.start, 3)
            row["end"] = round(span[-1].end, 3) if span else round(u.end, 3)
        return row


def other_form(word: str, term: str) -> bool:
    """Whether ``word`` is another form of ``term`` (not a mishearing of it): the same stem
    with another listed ending, or the term with or without a meaning-changing prefix."""
    if any(term == p + word or word == p + term for p in MEANING_PREFIXES):
        return True
    return _same_stem(word, term, FORM_ENDINGS)


def swapped_prefix(word: str, term: str) -> bool:
    """Whether the two words are one stem of 4 letters or more behind two different meaning
    prefixes, or behind one and none: hyperplastic/neoplastic, typical/atypical."""
    prefixes = ("", *MEANING_PREFIXES)
    for p in prefixes:
        stem = word[len(p) :] if word.startswith(p) else ""
        if len(stem) >= 4 and any(q != p and term == q + stem for q in prefixes):
            return True
    return False


def _same_stem(word: str, term: str, endings: tuple[str, ...]) -> bool:
    """Whether the two words share a stem of 4 letters or more and each goes on with one of ``endings``."""
    k = 0
    while k < min(len(word), len(term)) and word[k] == term[k]:
        k += 1
    stem = min(k, len(word), len(term))
    return any(word[cut:] in endings and term[cut:] in endings for cut in range(stem, 3, -1))


def tokens_of(u: Utterance) -> list[str]:
    """The words of an utterance: its timed words, or its text split on spaces."""
    return [w.text for w in u.words] if u.words else u.text.split()


def sound_key(words: tuple[str, ...] | list[str]) -> str:
    """Metaphone of each word (digits kept: CD3 and CD20 must differ), joined."""
    import jellyfish

    return "".join(jellyfish.metaphone(w) + "".join(_DIGITS.findall(w)) for w in words if w)


def similarity(heard: tuple[str, ...], meant: tuple[str, ...]) -> tuple[float, float, float]:
    """(score, spelling, sound) of words ``heard`` against words ``meant``: the mean of the
    spelling and sound similarities (0-1). For a code with digits ("C4d", "CD4") the spelling
    alone counts: Metaphone drops the digits' place, so "C4d" and "CD4" would sound the same."""
    from rapidfuzz import fuzz

    spelled, target = "".join(heard), "".join(meant)
    spelling = fuzz.ratio(spelled, target) / 100
    if _DIGITS.search(spelled) or _DIGITS.search(target):
        return spelling, spelling, spelling
    a, b = sound_key(heard), sound_key(meant)
    sound = fuzz.ratio(a, b) / 100 if a and b else 0.0
    return (spelling + sound) / 2, spelling, sound


class VocabularyCorrector:
    """Finds :class:`Edit` s that put vocabulary terms back (see the module docstring)."""

    def __init__(self, vocabulary: Vocabulary, config: CorrectionConfig | None = None) -> None:
        self.config = config or CorrectionConfig()
        self.config.validate()
        self.vocabulary = vocabulary
        self._index = vocabulary.index()
        self._single_terms = {v[0] for v in self._index if len(v) == 1}
        self._forms = list(self._index)  # compared forms, one per spelling
        self._spell = ["".join(v) for v in self._forms]
        self._sound = [sound_key(v) for v in self._forms]
        self._zipf_cache: dict[str, float] = {}
        self._cued = [(form, t) for form, t in self._index.items() if t.cues and len(form) == 1]
        # one-word term spellings by their first four letters, for pathology_word
        self._by_stem: dict[str, list[str]] = {}
        for word in self._single_terms:
            self._by_stem.setdefault(word[:4], []).append(word)
        # word -> (form, position) of every several-word spelling holding it, for anchored matches
        self._anchors: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for form in self._forms:
            if len(form) > 1:
                for k, w in enumerate(form):
                    self._anchors.setdefault(w, []).append((form, k))

    @property
    def forms(self) -> list[tuple[str, ...]]:
        """Every compared form of the vocabulary (one per listed spelling), as normalised words."""
        return self._forms

    def term_of(self, form: tuple[str, ...]) -> Term | None:
        """The term that normalised words ``form`` spell (in any listed spelling), or None."""
        return self._index.get(form)

    def zipf(self, word: str) -> float:
        if word not in self._zipf_cache:
            from wordfreq import zipf_frequency

            self._zipf_cache[word] = zipf_frequency(word, "en")
        return self._zipf_cache[word]

    def _holds_term(self, norms: tuple[str, ...]) -> bool:
        return bool(self.terms_in(norms))

    def terms_in(self, norms: tuple[str, ...]) -> set[str]:
        """Canonical spellings of the terms that some run of ``norms`` spells."""
        n = len(norms)
        runs = (norms[i:j] for i in range(n) for j in range(i + 1, n + 1))
        return {self._index[run].canonical for run in runs if run in self._index}

    def near_terms(self, norms: list[str], min_score: float) -> dict[str, float]:
        """Terms that a run of up to ``max_ngram`` of ``norms`` spells (score 1) or reads and
        sounds like (its best score, at least ``min_score``): what the recogniser is asked to
        listen for in a second pass (:mod:`quilt_llava.narratives.asr_second_pass`)."""
        found: dict[str, float] = {}
        for i in range(len(norms)):
            for n in range(1, self.config.max_ngram + 1):
                run = tuple(norms[i : i + n])
                if len(run) < n or not all(run):
                    continue
                if run in self._index:
                    found[self._index[run].canonical] = 1.0
                    continue
                if n == 1 and self.zipf(run[0]) >= self.config.max_common_zipf:
                    continue  # "the", "and": never a mishearing worth listening for
                best = self.best_term(run)
                if best is not None and best[1] >= min_score:
                    name = best[0].canonical
                    found[name] = max(found.get(name, 0.0), best[1])
        return found

    def pathology_word(self, word: str) -> bool:
        """Whether a normalised heard word is already a pathology word (``form_min_zipf``): a
        one-word term, one with a plural ending, or a real word that is another form of one."""
        if self.config.form_min_zipf is None or len(word) < 4:
            return False
        near = self._by_stem.get(word[:4], ())
        if word in near or any(word in (t + "s", t + "es") for t in near):
            return True
        if self.zipf(word) < self.config.form_min_zipf:
            return False
        return any(_same_stem(word, t, WORD_FORM_ENDINGS) for t in near)

    def touchable(self, norms: tuple[str, ...]) -> tuple[bool, bool]:
        """(may be changed, holds only common words) for a run of normalised words: not when it
        holds a term or a pathology word (:meth:`pathology_word`), or is one of the most frequent
        words alone."""
        if not all(norms) or self._holds_term(norms) or any(self.pathology_word(w) for w in norms):
            return False, False
        common = all(self.zipf(w) >= self.config.common_zipf for w in norms)
        if common and len(norms) == 1 and self.zipf(norms[0]) >= self.config.max_common_zipf:
            return False, True
        return True, common

    def bar(self, norms: tuple[str, ...], common: bool) -> float:
        """The score a run must reach: min_score, rising for real words with their frequency."""
        cfg = self.config
        if not common:
            return cfg.min_score
        if cfg.common_ramp_zipf <= 0:
            return cfg.common_min_score
        above = max(self.zipf(w) for w in norms) - cfg.common_zipf
        return min(
            cfg.common_min_score, cfg.min_score + (cfg.common_min_score - cfg.min_score) * above / cfg.common_ramp_zipf
        )

    def rewrite_bar(self, heard: tuple[str, ...] | list[str], meant: tuple[str, ...] | list[str], bar: float) -> float:
        """The score that replacing words ``heard`` by words ``meant`` must reach: ``bar``, raised
        to ``common_min_score`` when several words become more words. Such a rewrite of a whole
        phrase ("argue against cataricinoma" -> "are new again to carcinoma") changes right words
        far more often than it restores a term; one word becoming several ("Chondoride" ->
        "Congo red") keeps the usual bar."""
        if len(heard) >= 2 and len(meant) > len(heard):
            return max(bar, self.config.common_min_score)
        return bar

    def nearest(self, norms: tuple[str, ...]) -> list[tuple[tuple[str, ...], float, float, float]]:
        """(form, score, spelling, sound) of the ``candidates`` closest forms by spelling and by sound
        to a run of compared words, best score first, with no rule applied (see :meth:`best_term`)."""
        from rapidfuzz import fuzz, process

        spelled, sounded = "".join(norms), sound_key(norms)
        found: set[int] = set()
        for query, choices in ((spelled, self._spell), (sounded, self._sound)):
            if query:
                found.update(
                    i for _, _, i in process.extract(query, choices, scorer=fuzz.ratio, limit=self.config.candidates)
                )
        scored = [(self._forms[i], *similarity(norms, self._forms[i])) for i in sorted(found)]
        return sorted(scored, key=lambda f: -f[1])

    def best_term(self, norms: tuple[str, ...]) -> tuple[Term, float, float, float] | None:
        """(term, score, spelling, sound) of the closest term to a run of compared words, or None."""
        spelled = "".join(norms)
        for form, score, spelling, sound in self.nearest(norms):
            if set(norms) & set(form):
                continue  # the run is part of this term ("connective" of "connective tissue"), not a mishearing
            if spelled != "".join(form) and any(other_form(w, t) for w in norms for t in form):
                continue  # a word of the run is another form of a term word ("neutrophilic", "typical", "centrally")
            return self._index[form], score, spelling, sound
        return None

    def _run_edits(self, ui: int, tokens: list[str], norms: list[str]) -> list[Edit]:
        """Runs of 1 to ``max_ngram`` words that sound or read like a term."""
        cfg = self.config
        found: list[Edit] = []
        for i in range(len(tokens)):
            for n in range(1, cfg.max_ngram + 1):
                run = tuple(norms[i : i + n])
                if len(run) < n:
                    continue
                joined = self._index.get(("".join(run),)) if n > 1 and all(run) else None
                if joined is not None and run not in self._index:
                    # a term heard split into words, one of which may be a term itself ("pseudo
                    # inclusions" -> "pseudoinclusions"): the joined spelling is the term exactly
                    found.append(self.edit(ui, i, i + n, tokens, joined.canonical, 1.0, 1.0, 1.0))
                    continue
                touchable, common = self.touchable(run)
                if not touchable:
                    continue
                best = self.best_term(run)
                if best is None:
                    continue
                term, score, spelling, sound = best
                if score < self.rewrite_bar(run, term.canonical.split(), self.bar(run, common)):
                    continue
                if spelling < cfg.min_spelling:
                    continue
                if common and n > 1 and spelling < cfg.common_run_min_spelling:
                    continue  # ordinary words together change only when they spell the term ("neo plastic")
                found.append(self.edit(ui, i, i + n, tokens, term.canonical, score, spelling, sound))
        return found

    def _anchored_edits(self, ui: int, tokens: list[str], norms: list[str]) -> list[Edit]:
        """Several-word terms of which some words were heard right and the others sound alike
        ("perinoral invasion" -> "perineural invasion"): only the other words are compared."""

        cfg = self.config
        found: list[Edit] = []
        seen: set[tuple[int, tuple[str, ...]]] = set()
        for i, w in enumerate(norms):
            for form, k in self._anchors.get(w, ()):
                start = i - k
                run = tuple(norms[start : start + len(form)]) if start >= 0 else ()
                if len(run) != len(form) or run in self._index or (start, form) in seen:
                    continue
                seen.add((start, form))
                heard = tuple(r for r, f in zip(run, form) if r != f)
                meant = tuple(f for r, f in zip(run, form) if r != f)
                touchable, common = self.touchable(heard)
                if not touchable or any(other_form(h, m) for h in heard for m in meant):
                    continue
                score, spelling, sound = similarity(heard, meant)
                if score < self.bar(heard, common) or spelling < cfg.min_spelling:
                    continue
                term = self._index[form]
                found.append(self.edit(ui, start, start + len(form), tokens, term.canonical, score, spelling, sound))
        return found

    def _resegmented_edits(self, ui: int, tokens: list[str], norms: list[str]) -> list[Edit]:
        """Terms hidden by a misplaced word boundary: a non-word that is a term and an everyday
        word run together ("stromover" -> "stroma over"), or a non-word that is a real word
        once its last letters start the next word ("cellulars trauma" -> "cellular stroma")."""
        cfg = self.config
        found: list[Edit] = []

        def term_of(piece: str) -> tuple[Term, float, float, float] | None:
            if len(piece) < cfg.min_piece or (piece,) in self._index:
                return None
            best = self.best_term((piece,))
            return best if best and best[1] >= cfg.min_score and best[2] >= cfg.min_spelling else None

        for i, word in enumerate(norms):
            if not word or self._holds_term((word,)) or self.zipf(word) >= cfg.common_zipf or word.isdigit():
                continue
            # one non-word -> term + everyday word, or everyday word + term, when the piece
            # matches a term better than the whole word does
            whole = self.best_term((word,))
            for cut in range(cfg.min_piece, len(word) - cfg.min_piece + 1):
                left, right = word[:cut], word[cut:]
                for piece, rest, rest_first in ((left, right, False), (right, left, True)):
                    if self.zipf(rest) < cfg.glue_zipf or (best := term_of(piece)) is None:
                        continue
                    if whole is not None and whole[1] >= best[1]:
                        continue
                    term, score, spelling, sound = best
                    after = f"{rest} {term.canonical}" if rest_first else f"{term.canonical} {rest}"
                    found.append(self.edit(ui, i, i + 1, tokens, after, score, spelling, sound))
            # non-word + next word -> real word + term, moving one or two letters over the boundary
            if i + 1 < len(norms) and norms[i + 1] and not self._holds_term((norms[i + 1],)):
                if tokens[i] != tokens[i].rstrip(".,;:!?"):
                    continue  # a pause was heard there: the boundary is real
                for k in (1, 2):
                    head, tail = word[:-k], word[-k:] + norms[i + 1]
                    if len(head) <= cfg.min_piece or self.zipf(head) < cfg.common_zipf:
                        continue
                    if (best := term_of(tail)) is None:
                        continue
                    term, score, spelling, sound = best
                    after = f"{head} {term.canonical}"
                    found.append(self.edit(ui, i, i + 2, tokens, after, score, spelling, sound))
        return found

    def _context_edits(self, ui: int, tokens: list[str], norms: list[str]) -> list[Edit]:
        """Words that sound like a term one of whose context cues is said nearby."""

        cfg = self.config
        found: list[Edit] = []
        ends = [t.rstrip("\"')").endswith((".", "?", "!", ";")) for t in tokens]
        for i, word in enumerate(norms):
            if not word or word.isdigit() or self.zipf(word) >= cfg.max_common_zipf:
                continue
            heard = self._index.get((word,))
            # a real word or another term needs the cue right beside it; a non-word, nearby
            reach = 1 if heard is not None or self.zipf(word) >= cfg.common_zipf else cfg.cue_window
            window = set()
            for j in range(i - 1, max(-1, i - 1 - reach), -1):  # back to the previous sentence end
                if ends[j]:
                    break
                window.add(norms[j])
            for j in range(i + 1, min(len(norms), i + 1 + reach)):
                if ends[j - 1]:
                    break
                window.add(norms[j])
            if heard is not None and heard.cues & window:
                continue  # a term that its own context supports
            best: tuple[Term, float, float, float] | None = None
            for (form,), term in self._cued:
                if term is heard or not term.cues & window:
                    continue
                if swapped_prefix(word, form):
                    continue  # typical / atypical, hyperplastic / neoplastic: a different meaning
                score, spelling, sound = similarity((word,), (form,))
                if score >= cfg.cue_min_score and spelling >= cfg.min_spelling and (best is None or score > best[1]):
                    best = (term, score, spelling, sound)
            if best is not None:
                term, score, spelling, sound = best
                edit = self.edit(ui, i, i + 1, tokens, term.canonical, score, spelling, sound)
                found.append(replace(edit, detail={**edit.detail, "context": True}))
        return found

    def plural_of(self, word: str) -> str | None:
        """The vocabulary's plural of a one-word term (another one-word term), or None."""
        if (word,) not in self._index:
            return None
        options = [word[: -len(one)] + many for one, many in PLURAL_ENDINGS if word.endswith(one)]
        options += [word + "s", word + "es"] + ([word[:-1] + "ies"] if word.endswith("y") else [])
        for option in options:
            term = self._index.get((option,))
            if term is not None and term is not self._index[(word,)]:
                return option
        return None

    def singular_of(self, words: tuple[str, ...]) -> str | None:
        """The term that ``words`` (normalised) name in the singular, their last word made singular,
        where that is a term other than the words' own; else None."""
        last = words[-1]
        options = [last[: -len(many)] + one for one, many in PLURAL_ENDINGS if last.endswith(many)]
        options += [last[:-3] + "y"] if last.endswith("ies") else []
        options += [last[:-2]] if last.endswith("es") else []
        options += [last[:-1]] if last.endswith("s") and not last.endswith("ss") else []
        own = self._index.get(words)
        for option in options:
            term = self._index.get((*words[:-1], option))
            if option and term is not None and term is not own:
                return term.canonical
        return None

    def _singular_edits(self, ui: int, tokens: list[str], norms: list[str], ends: list[bool]) -> list[Edit]:
        """Terms heard in the plural right after a word that counts one ("a", "each", "one"), or
        with one word between that is no pause, no quantity and no word of its own when joined to
        the counting word ("a large osteoclasts"; not "a typical melanocytes")."""
        found: list[Edit] = []
        for i in range(1, len(norms)):
            cue = norms[i - 1] in SINGULAR_COUNTS and not ends[i - 1]
            if not cue and i > 1:
                between = norms[i - 1]
                cue = (
                    norms[i - 2] in SINGULAR_COUNTS
                    and not ends[i - 2]
                    and not ends[i - 1]
                    and between not in QUANTITY_WORDS
                    and between not in PLURAL_COUNTS
                    and between not in PREPOSITIONS
                    and (between,) not in self._index
                    and not between.endswith("s")
                    # "a typical melanocytes" may be "atypical melanocytes", heard in two words
                    and self.zipf(norms[i - 2] + between) < self.config.common_zipf
                )
            if not cue:
                continue
            for n in range(min(self.config.max_ngram, 3, len(norms) - i), 0, -1):
                if any(ends[i : i + n - 1]) or not norms[i + n - 1] or "'" in tokens[i + n - 1].replace("\u2019", "'"):
                    continue  # a pause inside, or a possessive ("a lobule's ducts")
                singular = self.singular_of(tuple(norms[i : i + n]))
                if singular is not None:
                    edit = self.edit(ui, i, i + n, tokens, singular, 1.0, 1.0, 1.0)
                    found.append(replace(edit, detail={**edit.detail, "number": True}))
                    break
        return found

    def _number_edits(self, ui: int, tokens: list[str], norms: list[str]) -> list[Edit]:
        """Terms heard in one number where the sentence wants the other (``number_agreement``)."""
        if not self.config.number_agreement:
            return []
        ends = [t.rstrip("\"')").endswith((".", "?", "!", ";", ",", ":")) for t in tokens]
        found: list[Edit] = self._singular_edits(ui, tokens, norms, ends)
        for i, word in enumerate(norms):
            before = i > 0 and not ends[i - 1] and norms[i - 1] in PLURAL_COUNTS
            after = (
                i + 1 < len(norms)
                and not ends[i]
                and norms[i + 1] in PLURAL_VERBS
                and i > 0
                and (norms[i - 1] in PLURAL_HEADS or before)
                and (i < 2 or ends[i - 2] or norms[i - 2] not in PREPOSITIONS)
            )
            plural = self.plural_of(word) if word and (after or before) else None
            if plural is None:
                continue
            edit = self.edit(ui, i, i + 1, tokens, self._index[(plural,)].canonical, 1.0, 1.0, 1.0)
            found.append(replace(edit, detail={**edit.detail, "number": True}))
        return found

    def edit(
        self, ui: int, first: int, last: int, tokens: list[str], after: str, score: float, spelling: float, sound: float
    ) -> Edit:
        """An :class:`Edit` of words ``first:last`` of utterance ``ui`` into ``after``, with its scores."""
        detail = {"spelling": round(spelling, 3), "sound": round(sound, 3)}
        return Edit(ui, first, last, " ".join(tokens[first:last]), after, "vocabulary", round(score, 3), detail)

    def candidates(self, transcript: Transcript) -> list[list[Edit]]:
        """Per utterance, every edit that clears the bars, overlapping ones included."""
        out = []
        for ui, u in enumerate(transcript.utterances):
            tokens = tokens_of(u)
            norms = [norm_word(t) for t in tokens]
            out.append(
                self._run_edits(ui, tokens, norms)
                + self._anchored_edits(ui, tokens, norms)
                + self._resegmented_edits(ui, tokens, norms)
                + self._context_edits(ui, tokens, norms)
                + self._number_edits(ui, tokens, norms)
            )
        return out

    def edits(self, transcript: Transcript) -> list[Edit]:
        """Every accepted edit, at most one per word, best-scoring runs first."""
        chosen: list[Edit] = []
        for found in self.candidates(transcript):
            taken: set[int] = set()
            for e in sorted(found, key=lambda e: (-e.score, -(e.last - e.first), e.first)):
                span = set(range(e.first, e.last))
                if not span & taken:
                    taken |= span
                    chosen.append(e)
        return sorted(chosen, key=lambda e: (e.utterance, e.first))


def respell(before: list[str], after: str) -> list[str]:
    """``after`` as words, with the punctuation around ``before`` (not its own) and its leading capital."""
    words = after.split()
    words[0] = _LEAD.sub("", words[0]) or words[0]
    words[-1] = _TRAIL.sub("", words[-1]) or words[-1]
    lead = _LEAD.match(before[0]).group(0)  # type: ignore[union-attr]
    trail = _TRAIL.search(before[-1]).group(0)  # type: ignore[union-attr]
    core = before[0][len(lead) :]
    if core[:1].isupper() and words[0][:1].islower():
        words[0] = words[0][0].upper() + words[0][1:]
    words[0] = lead + words[0]
    words[-1] = words[-1] + trail
    return words


def _timed(span: tuple[Word, ...], words: list[str]) -> list[Word]:
    """``words`` spread over the time of ``span``, each in proportion to its length."""
    start, end = span[0].start, span[-1].end
    weights = [len(w) + 1 for w in words]
    total, t, out = sum(weights), start, []
    for w, weight in zip(words, weights):
        nxt = t + (end - start) * weight / total
        out.append(Word(round(t, 3), round(nxt, 3), w))
        t = nxt
    return out


def apply_edits(transcript: Transcript, edits: list[Edit]) -> Transcript:
    """A new transcript with ``edits`` applied (non-overlapping; utterance times unchanged)."""
    by_utt: dict[int, list[Edit]] = {}
    for e in edits:
        by_utt.setdefault(e.utterance, []).append(e)
    utterances = []
    for ui, u in enumerate(transcript.utterances):
        todo = sorted(by_utt.get(ui, []), key=lambda e: e.first, reverse=True)
        if not todo:
            utterances.append(u)
            continue
        tokens = tokens_of(u)
        words = list(u.words)
        for e in todo:  # from the end, so earlier indices stay valid
            new = respell(tokens[e.first : e.last], e.after)
            tokens[e.first : e.last] = new
            if words:
                words[e.first : e.last] = _timed(tuple(words[e.first : e.last]), new)
        utterances.append(Utterance(u.start, u.end, " ".join(tokens), tuple(words)))
    return Transcript(utterances, transcript.source)


def correct_with_vocabulary(
    transcript: Transcript, vocabulary: Vocabulary, config: CorrectionConfig | None = None
) -> tuple[Transcript, list[Edit]]:
    edits = VocabularyCorrector(vocabulary, config).edits(transcript)
    return apply_edits(transcript, edits), edits
