"""Let the recogniser judge a term correction: is the corrected text what the audio says?

The vocabulary corrector (:mod:`quilt_llava.narratives.correct`) reads text only, so it cannot
tell a mishearing ("human lands" for "tumour glands") from a right word that happens to look
like a term ("stays", which looser bars would turn into "stains"). The recogniser can: Whisper
gives every text a probability under the audio when the text is forced through its decoder
(CTranslate2's ``Whisper.align`` returns each forced token's probability).

For each utterance that has proposed edits, :class:`AcousticCheck`

1. cuts the utterance's audio from its first to its last word (plus ``pad_s``, never into the
   neighbouring utterances' words), encodes it once (one Whisper window; an utterance longer
   than ``max_clip_s`` is cut into word-timed pieces around the edits);
2. forces, in one batch, the words as heard and, for every edit, the same words with that one
   edit applied (each listed spelling of the term: "tumour" and "tumor" are both tried, the
   best counts), and sums the log-probabilities of their tokens;
3. compares the edited words with the heard ones over the edit and a word either side, two
   ways: the summed log-probability per token (``per_token``) and the difference of the mean
   log-probability per token (``mean_gain``, length-neutral: a sum rises when words are
   dropped, so "ulcerative" -> "ulcer" would "gain"). The first pass's beam search already
   preferred the heard words, so a right correction usually scores somewhat below them (the
   decoder's language prior favours everyday words) and a wrong one further below.

Candidates come in three tiers, each with its bar (:meth:`AcousticConfig.bar`); the looser the
text match, the better the audio must like it:

- **own**: the corrector's edits at its own bars; they stand unless they fall below ``veto``
  (off: on the tuning sets no veto separated the corrector's one harmful edit, "fibrocystic" ->
  "fibrocyte", from its helpful ones);
- **loose**: the corrector's best edit per word at looser bars (``loose``: fuzzier
  sound-alikes, everyday words, runs of garbled words), kept when its summed score is no more
  than ``margin`` per token below the heard words;
- **far**: where espeak-ng is installed, runs whose phonemes are at least ``phoneme_min`` like a term's
  (:mod:`quilt_llava.narratives.phonemes`: "myopsy" -> "biopsy", "tube use" -> "tubules", which
  letter-based keys miss; without espeak-ng none, and the log says so) and, when ``far`` is
  set (``FAR_BARS``; off by default: no term more on the tuning sets for 2-3 x the time), every
  candidate of still looser text bars; kept only when the audio scores them at least
  ``far_gain`` (0: at least as well as the heard words) by both measures.

- **far**, too: the terms of the recogniser's other readings of the utterance (``alternatives``,
  on by default since the ninth pass: :mod:`quilt_llava.narratives.asr_alternatives`, the N best
  hypotheses of a beam search over the same clip, whose encoding the forced decodes reuse).
- **span**: runs of heard words that the corrector's rules never compare with a term, re-joined
  ("reed stern nerve cells" -> "Reed Sternberg cells") or with a boundary moved by a letter or two
  (``spans``, on by default since the tenth pass: :mod:`quilt_llava.narratives.correct_spans`), judged
  as the far tier is, by both measures, at ``SpanConfig.gain`` (0, the far tier's bar, by default).

Where accepted candidates overlap, the one the audio prefers most (highest ``per_token``) is
made, whatever its tier (``audio_chooses``): "hyper pleasure" becomes "hyperplasia" (far) rather
than the corrector's "hyperplasia sure". One exception: an edit from the recogniser's other
readings that also puts in ordinary words not heard there (``detail["added"]``: "mass and
trichrome" for "mesentry chrome") yields to an accepted edit over the same words that does not
("Masson trichrome"): the audio naturally likes the recogniser's own reading of the words around
the term, which it had already weighed against the first pass.

Measured (docs/BENCHMARKS_HISTORY.md, Speech): sixth pass, on four clean held-out sets together, term
recall 0.70 -> 0.73 and right words changed 0.66 % -> 0.88 % (one set 1.9 %); 0.06-0.16 x real
time on top of the recognition. Seventh pass (phonemes at the loose tier's margin): 0.733 ->
0.750 and 0.88 % -> 1.02 %. Eighth pass (the far tier, phonemes in it, the audio choosing):
see the Speech section for the figures per set.

Every verdict keeps both scores, so the change log shows why an edit was made or refused.

Not handled: a transcript without word timings (SRT, WebVTT) is not checked: the corrector's
own edits stand and the looser finds are refused, and the log says so; LLM edits are not
checked; the scores are those of the loaded model (calibrated with tiny.en on espeak-ng
speech: another model or voice may want another ``margin`` or ``far_gain``); the audio cannot tell a
word's forms apart well enough to choose between them ("nuclei"/"nucleus", "typical"/"atypical":
offering such rivals at the far bar changed right words, so they are not offered). The check
costs one encoder window per utterance with edits plus one forced decode per candidate spelling
(the far text bars triple the decodes); the alternatives add a window for the unsure utterances
without edits and one beam search of 5 per unsure utterance (about 1.9 x the check's time;
docs/BENCHMARKS.md, Speech).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from quilt_llava.errors import ConfigError
from quilt_llava.narratives.asr import SAMPLE_RATE, clip_bounds
from quilt_llava.narratives.asr_alternatives import AlternativesConfig, alternative_edits
from quilt_llava.narratives.correct import CorrectionConfig
from quilt_llava.narratives.correct_spans import SpanConfig, span_edits

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from quilt_llava.narratives.correct import Edit
    from quilt_llava.narratives.transcript import Transcript
    from quilt_llava.narratives.vocabulary import Vocabulary

# Whether term corrections are judged by the audio when the recording and the recogniser are at
# hand (extract --asr-model, the demo, correct --audio): on, see docs/BENCHMARKS.md, Speech.
ACOUSTIC_CHECK = True
# The phoneme bar calibrated on the tuning sets (lowest above every harmful find), and whether its
# candidates are proposed by default (on since the eighth pass, where they must score at least as
# well as the heard words: the far tier; docs/BENCHMARKS.md, Speech).
PHONEME_BAR = 0.7
ACOUSTIC_PHONEMES = True
# Whether the recogniser's other hypotheses are candidates by default (narratives.asr_alternatives;
# ninth pass, docs/BENCHMARKS_HISTORY.md, Speech).
ACOUSTIC_ALTERNATIVES = True
# Whether runs of heard words that the corrector's rules never look at (re-joined, re-cut) are
# candidates by default (narratives.correct_spans; tenth pass, docs/BENCHMARKS.md, Speech).
ACOUSTIC_SPANS = True
# Text bars of the far tier (AcousticConfig.far) where it is asked for (benchmark --acoustic-far).
FAR_BARS = {
    "min_score": 0.55,
    "min_spelling": 0.3,
    "common_min_score": 0.7,
    "cue_min_score": 0.55,
    "common_run_min_spelling": 0.5,
}
WINDOW_S = 30.0  # one Whisper encoder window
MIN_CLIP_S = 0.1  # less audio than this at an utterance's words (timings past the end): not checked


@dataclass
class AcousticConfig:
    """How the recogniser judges a correction (margin set on the tuning sets, docs/BENCHMARKS.md)."""

    # Edits are weighed by how much the audio prefers them: (log P(edited | audio) - log P(heard |
    # audio)) per token of the edit and a word either side. An edit that only the looser bars
    # below find is kept when that is at least -margin; an edit the corrector's own bars accept
    # is refused only below -veto (None: never).
    margin: float = 1.0
    veto: float | None = None
    # The looser candidate bars (CorrectionConfig fields) whose extra edits the audio must support.
    loose: dict[str, float] = field(
        default_factory=lambda: {
            "min_score": 0.66,
            "min_spelling": 0.5,
            "common_min_score": 0.78,
            "cue_min_score": 0.62,
            "common_run_min_spelling": 0.8,
        }
    )
    # The far tier (phoneme sound-alikes below, and every candidate of the still looser text bars
    # ``far``, e.g. FAR_BARS) must score at least ``far_gain`` per token against the heard words by
    # both measures (the looser the match, the better the audio must like it). ``far`` is None by
    # default: on the tuning sets FAR_BARS found no term the phonemes did not, for 2-3 x the check's
    # time (docs/BENCHMARKS_HISTORY.md, Speech, eighth pass); it stands in where espeak-ng is missing.
    far: dict[str, float] | None = None
    far_gain: float = 0.0
    # Overlapping candidates that the audio accepts: the one it prefers (highest gain per token)
    # is made, whatever its tier; False: the corrector's own edits first, as before the eighth pass.
    audio_chooses: bool = True
    # Runs whose espeak-ng phonemes are at least this like a term's (narratives.phonemes) are also
    # candidates of the far tier ("myopsy" -> "biopsy"); None: off. Judged at the looser tier's
    # margin they took right words changed past 1 % on the clean sets (sixth pass); at the far
    # tier's bar they changed none on the tuning sets. Only where espeak-ng runs.
    phoneme_min: float | None = PHONEME_BAR if ACOUSTIC_PHONEMES else None
    # The recogniser's other hypotheses (narratives.asr_alternatives): unsure utterances decoded
    # again with a beam, the terms its N best readings hold offered as far-tier candidates; None: off.
    alternatives: AlternativesConfig | None = field(
        default_factory=lambda: AlternativesConfig() if ACOUSTIC_ALTERNATIVES else None
    )
    # Runs of heard words the corrector's rules never look at, re-joined or re-cut into a term
    # (narratives.correct_spans), judged as the far tier is, by both measures, at their own bar
    # (``SpanConfig.gain``, the far tier's 0 by default); None: off.
    spans: SpanConfig | None = field(default_factory=lambda: SpanConfig() if ACOUSTIC_SPANS else None)
    pad_s: float = 0.3  # audio kept either side of the utterance's words
    max_clip_s: float = 28.0  # longer utterances are scored in word-timed pieces of at most this
    batch: int = 16  # texts forced through the decoder per call
    language: str = "en"  # for a multilingual model

    def bar(self, tier: str) -> float | None:
        """The least gain per token (edited minus heard log-probability) that an edit of ``tier``
        needs (None: any)."""
        if tier == "own":
            return None if self.veto is None else -self.veto
        if tier == "far":
            return self.far_gain
        if tier == "span":
            return self.spans.gain if self.spans is not None else self.far_gain
        return -self.margin

    def validate(self) -> None:
        problems = []
        if self.margin < 0:
            problems.append(f"margin must be >= 0, got {self.margin}")
        if self.veto is not None and self.veto < 0:
            problems.append(f"veto must be >= 0 or None, got {self.veto}")
        if not 0 <= self.pad_s <= 2:
            problems.append(f"pad_s must be within 0-2 s, got {self.pad_s}")
        if not 1 <= self.max_clip_s <= WINDOW_S - 2 * self.pad_s:
            problems.append(f"max_clip_s must be within 1-{WINDOW_S - 2 * self.pad_s:g} s, got {self.max_clip_s}")
        if self.phoneme_min is not None and not 0 < self.phoneme_min <= 1:
            problems.append(f"phoneme_min must be within 0-1 or None, got {self.phoneme_min}")
        if self.batch < 1:
            problems.append(f"batch must be >= 1, got {self.batch}")

        fields = CorrectionConfig.__dataclass_fields__
        for tier, bars in (("loose", self.loose), ("far", self.far or {})):
            for name in sorted(set(bars) - set(fields)):
                problems.append(f"{tier}: {name!r} is not a CorrectionConfig field ({', '.join(fields)})")
            if not set(bars) - set(fields):
                try:
                    replace(CorrectionConfig(), **bars).validate()
                except ConfigError as exc:
                    problems += [f"{tier}: {p}" for p in exc.problems]
        for name, sub in (("alternatives", self.alternatives), ("spans", self.spans)):
            if sub is not None:
                try:
                    sub.validate()
                except ConfigError as exc:
                    problems += [f"{name}: {p}" for p in exc.problems]
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class Verdict:
    """What the recogniser said about one edit."""

    edit: Edit
    accepted: bool
    heard: float | None = None  # summed log-probability of the words as heard
    edited: float | None = None  # the same with the edit applied (best spelling)
    spelling: str = ""  # the edit's text as scored best
    tokens: int = 0  # tokens of the edit and a word either side (the longer of heard and edited)
    note: str = ""  # why it was not checked
    # which bars found the edit: "own" (the corrector's), "loose" (AcousticConfig.loose, or
    # phonemes) or "far" (AcousticConfig.far); each tier has its own bar for the audio
    tier: str = "own"
    # mean log-probability per token of the edit and a word either side, heard and edited: a
    # length-neutral comparison for the far tier (a sum favours texts with fewer tokens, so
    # dropping words "gains")
    heard_mean: float | None = None
    edited_mean: float | None = None

    @property
    def strict(self) -> bool:
        """Whether the edit passes the corrector's own bars (not only the looser ones)."""
        return self.tier == "own"

    @property
    def per_token(self) -> float | None:
        """(edited - heard) log-probability per token of the edit and a word either side."""
        if self.heard is None or self.edited is None:
            return None
        return (self.edited - self.heard) / max(1, self.tokens)

    @property
    def mean_gain(self) -> float | None:
        """Edited minus heard mean log-probability per token over the edit and a word either side."""
        if self.heard_mean is None or self.edited_mean is None:
            return None
        return self.edited_mean - self.heard_mean

    def judged(self, config: AcousticConfig) -> Verdict:
        """This verdict with ``accepted`` set by ``config``'s bar for its kind of edit (an edit
        that could not be scored stands only when the corrector's own bars accept it)."""
        gain = self.per_token
        if gain is None:
            return replace(self, accepted=self.strict)
        bar = config.bar(self.tier)
        if self.tier in ("far", "span") and self.mean_gain is not None:
            gain = min(gain, self.mean_gain)  # both: the sum's gain and the length-neutral one
        return replace(self, accepted=bar is None or gain >= bar)

    def to_dict(self) -> dict[str, Any]:
        if self.heard is None or self.edited is None:
            return {"checked": False, "note": self.note}
        return {
            "checked": True,
            "heard_logprob": round(self.heard, 3),
            "edited_logprob": round(self.edited, 3),
            "delta": round(self.edited - self.heard, 3),
            "tokens": self.tokens,
            "delta_per_token": round(self.per_token or 0.0, 3),
            "mean_gain": None if self.mean_gain is None else round(self.mean_gain, 3),
            "strict": self.strict,
            "tier": self.tier,
            "spelling": self.spelling,
            "accepted": self.accepted,
        }


class AcousticCheck:
    """Scores edits against the audio with a faster-whisper model (see the module docstring)."""

    def __init__(self, model: Any, vocabulary: Vocabulary, config: AcousticConfig | None = None) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.config = config or AcousticConfig()
        self.config.validate()
        self.model = model
        multilingual = model.model.is_multilingual
        self.tokenizer = Tokenizer(
            model.hf_tokenizer,
            multilingual,
            task="transcribe",
            language=self.config.language if multilingual else None,
        )
        self._start = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]
        self._spellings = {t.canonical: t.spellings or (t.canonical,) for t in vocabulary.terms}
        self.phonemes = None  # espeak-ng phoneme strings for sound-alike candidates, where it runs
        if self.config.phoneme_min is not None:
            from quilt_llava.narratives.phonemes import Phonemes, available

            if available():
                self.phonemes = Phonemes()
            else:
                log.info("espeak-ng not found: no phoneme candidates for the acoustic check")
        self.seconds = 0.0  # time spent judging
        self.phoneme_seconds = 0.0  # time spent finding phoneme candidates
        self.windows = 0  # audio windows encoded
        self.texts = 0  # texts forced through the decoder
        self.decodes = 0  # clips decoded again for alternative hypotheses
        self.alternative_seconds = 0.0  # time spent on those decodes (and their encodings)
        self._encoded: dict[tuple[int, int], tuple[Any, int]] | None = None  # see reusing_encodings

    def judge(
        self, audio: Any, transcript: Transcript, edits: list[Edit], tiers: list[str] | None = None
    ) -> list[Verdict]:
        """One verdict per edit, in the order given; ``audio``: mono float32 at 16 kHz; ``tiers``:
        per edit, which bars found it (``Verdict.tier``; default: all the corrector's own)."""
        import time

        t0 = time.perf_counter()
        verdicts: dict[int, Verdict] = {}
        by_piece: dict[tuple[int, int, int], list[int]] = {}
        for k, e in enumerate(edits):
            u = transcript.utterances[e.utterance]
            if not u.words:
                verdicts[k] = Verdict(e, True, note="no word timings: not checked")
                continue
            a, b = self._piece(u, e)
            by_piece.setdefault((e.utterance, a, b), []).append(k)
        for (ui, a, b), ks in by_piece.items():
            for k, v in zip(ks, self._judge_piece(audio, transcript, ui, a, b, [edits[k] for k in ks])):
                verdicts[k] = v
        self.seconds += time.perf_counter() - t0
        kinds = tiers if tiers is not None else ["own"] * len(edits)
        return [replace(verdicts[k], tier=kinds[k]).judged(self.config) for k in range(len(edits))]

    def _piece(self, u: Any, e: Edit) -> tuple[int, int]:
        """Words ``a:b`` of the utterance scored for ``e``: all of them when they fit one window,
        else those around the edit that fit ``max_clip_s`` (grown one word at a time, both sides)."""
        words = u.words
        limit = self.config.max_clip_s
        if words[-1].end - words[0].start <= limit:
            return 0, len(words)
        a, b = e.first, e.last
        grew = True
        while grew:
            grew = False
            if a > 0 and words[b - 1].end - words[a - 1].start <= limit:
                a, grew = a - 1, True
            if b < len(words) and words[b].end - words[a].start <= limit:
                b, grew = b + 1, True
        return a, b

    def pieces(self, u: Any) -> list[tuple[int, int]]:
        """Words ``a:b`` of a timed utterance cut into runs that each fit ``max_clip_s``."""
        out, a = [], 0
        for b in range(1, len(u.words) + 1):
            if b == len(u.words) or u.words[b].end - u.words[a].start > self.config.max_clip_s:
                out.append((a, b))
                a = b
        return out

    def clip(self, audio: Any, transcript: Transcript, ui: int, a: int, b: int) -> Any | None:
        """The audio of words ``a:b`` of utterance ``ui`` (``pad_s`` either side, not into the
        neighbouring words), or None where less than ``MIN_CLIP_S`` of it is there."""
        u = transcript.utterances[ui]
        before = u.words[a - 1].end if a > 0 else _last_end(transcript, ui)
        after = u.words[b].start if b < len(u.words) else _next_start(transcript, ui)
        lo, hi = clip_bounds(u.words[a].start, u.words[b - 1].end, self.config.pad_s, before, after)
        hi = min(hi, len(audio) / SAMPLE_RATE)
        clip = audio[int(lo * SAMPLE_RATE) : max(int(lo * SAMPLE_RATE) + 1, int(hi * SAMPLE_RATE))]
        return clip if len(clip) >= MIN_CLIP_S * SAMPLE_RATE else None

    def _judge_piece(
        self, audio: Any, transcript: Transcript, ui: int, a: int, b: int, edits: list[Edit]
    ) -> list[Verdict]:
        from quilt_llava.narratives.correct import respell, tokens_of

        tokens = tokens_of(transcript.utterances[ui])
        heard = " ".join(tokens[a:b])
        texts = [heard]
        owners: list[tuple[int, str]] = []  # (edit, spelling) of each text after the first
        for k, e in enumerate(edits):
            for after in self._spelled(e.after):
                new = tokens[a : e.first] + respell(tokens[e.first : e.last], after) + tokens[e.last : b]
                texts.append(" ".join(new))
                owners.append((k, after))
        clip = self.clip(audio, transcript, ui, a, b)
        if clip is None:
            return [Verdict(e, False, note="no audio at its words: not checked") for e in edits]
        per_token = self.token_logprobs(clip, texts)
        scores = [float(p.sum()) for p in per_token]
        best: dict[int, tuple[float, str, int]] = {}
        for i, ((k, after), s) in enumerate(zip(owners, scores[1:]), start=1):
            if k not in best or s > best[k][0]:
                best[k] = (s, after, i)
        out = []
        for k, e in enumerate(edits):
            s, after, i = best[k]
            lo, hi = max(a, e.first - 1), min(b, e.last + 1)  # the edit and a word either side
            before_edit = tokens[lo:hi]
            edited = tokens[lo : e.first] + respell(tokens[e.first : e.last], after) + tokens[e.last : hi]
            lead = self._count(tokens[a:lo]) if lo > a else 0  # tokens before the region, the same in both
            n_heard, n_edited = self._count(before_edit), self._count(edited)
            heard_mean = float(per_token[0][lead : lead + n_heard].mean()) if n_heard else None
            edited_mean = float(per_token[i][lead : lead + n_edited].mean()) if n_edited else None
            out.append(  # judged by judge(), which knows its tier
                Verdict(
                    e,
                    False,
                    scores[0],
                    s,
                    after,
                    max(n_heard, n_edited),
                    heard_mean=heard_mean,
                    edited_mean=edited_mean,
                )
            )
        return out

    def _count(self, words: list[str]) -> int:
        return len(self.tokenizer.encode(" " + " ".join(words)))

    def _spelled(self, after: str) -> list[str]:
        """``after`` with its term in each listed spelling ("tumour glands", "tumor glands")."""
        out = [after]
        for canonical, spellings in self._spellings.items():
            if len(spellings) > 1 and f" {canonical} " in f" {after} ":
                out += [f" {after} ".replace(f" {canonical} ", f" {s} ").strip() for s in spellings[1:]]
        return list(dict.fromkeys(out))

    def logprobs(self, clip: Any, texts: list[str]) -> list[float]:
        """Summed log-probability of each text's tokens when forced through the decoder over ``clip``."""
        return [float(p.sum()) for p in self.token_logprobs(clip, texts)]

    def token_logprobs(self, clip: Any, texts: list[str]) -> list[Any]:
        """Log-probability of each of each text's tokens (float64 arrays) forced through the decoder over ``clip``."""
        import ctranslate2
        import numpy as np

        encoded, frames = self.encode(clip)
        out: list[Any] = []
        for i in range(0, len(texts), self.config.batch):
            chunk = [self.tokenizer.encode(" " + t.strip()) for t in texts[i : i + self.config.batch]]
            batch = ctranslate2.StorageView.from_array(np.repeat(encoded, len(chunk), axis=0))
            results = self.model.model.align(batch, self._start, chunk, [frames] * len(chunk))
            for r in results:
                p = np.asarray(r.text_token_probs, dtype=np.float64)
                out.append(np.log(np.maximum(p, 1e-12)))
            self.texts += len(chunk)
        return out

    def encode(self, clip: Any) -> tuple[Any, int]:
        """(the encoder's output for ``clip``, (1, frames, width), the clip's feature frames); within
        :meth:`reusing_encodings` a clip encoded before is not encoded again."""
        import ctranslate2
        import numpy as np
        from faster_whisper.audio import pad_or_trim

        key = (len(clip), hash(clip.tobytes())) if self._encoded is not None else None
        if key is not None and key in self._encoded:
            return self._encoded[key]
        fe = self.model.feature_extractor
        features = fe(clip)  # (n_mels, frames)
        frames = min(features.shape[-1], fe.nb_max_frames)
        features = pad_or_trim(features, fe.nb_max_frames)
        encoded = np.array(self.model.model.encode(ctranslate2.StorageView.from_array(features[None]), to_cpu=True))
        self.windows += 1
        if key is not None:
            self._encoded[key] = (encoded, frames)
        return encoded, frames

    @contextmanager
    def reusing_encodings(self) -> Iterator[None]:
        """Clips encoded inside the block are kept for the block (the alternatives' decode and the
        forced decodes of one utterance share its encoding)."""
        self._encoded = {}
        try:
            yield
        finally:
            self._encoded = None

    def hypotheses(self, clip: Any, config: AlternativesConfig, context: str = "") -> list[str]:
        """The ``config.hypotheses`` best texts of a beam search over ``clip`` (best first), decoded
        after the words ``context`` where given (Whisper's previous-text prompt)."""
        import time

        import ctranslate2

        t0 = time.perf_counter()
        encoded, _frames = self.encode(clip)
        prompt = list(self._start)
        if context.strip():
            before = self.tokenizer.encode(" " + context.strip())[-(config.max_length // 2 - 1) :]
            prompt = [self.tokenizer.sot_prev, *before, *prompt]
        result = self.model.model.generate(
            ctranslate2.StorageView.from_array(encoded),
            [prompt],
            beam_size=max(config.beam_size, config.hypotheses),
            num_hypotheses=config.hypotheses,
            max_length=config.max_length,
            return_scores=True,
        )[0]
        self.decodes += 1
        self.alternative_seconds += time.perf_counter() - t0
        return [
            self.tokenizer.decode([t for t in ids if t < self.tokenizer.eot]).strip() for ids in result.sequences_ids
        ]


def _last_end(transcript: Transcript, ui: int) -> float | None:
    for u in reversed(transcript.utterances[:ui]):
        if u.words:
            return u.words[-1].end
    return None


def _next_start(transcript: Transcript, ui: int) -> float | None:
    for u in transcript.utterances[ui + 1 :]:
        if u.words:
            return u.words[0].start
    return None


def correct_heard(
    transcript: Transcript,
    vocabulary: Vocabulary,
    audio: Any,
    check: AcousticCheck,
    config: CorrectionConfig | None = None,
) -> tuple[Transcript, list[Edit], list[dict[str, Any]]]:
    """Vocabulary correction judged by the audio: (corrected transcript, edits made, log rows of
    the edits the audio refused).

    Candidates come in tiers (module docstring): the corrector's own (``config``; refused only
    when the audio contradicts them, ``veto``), its best per word at the looser bars of
    ``check.config.loose`` (``margin``), and the far tier (phoneme sound-alikes, and the text
    bars of ``check.config.far`` when set; ``far_gain``). Of overlapping accepted edits the audio's
    favourite is made (``audio_chooses``), else the corrector's own first."""
    from quilt_llava.narratives.correct import VocabularyCorrector, apply_edits

    cfg = check.config
    base = config or CorrectionConfig()
    tiers: dict[tuple[int, int, int, str], tuple[str, Edit]] = {}  # first tier that finds an edit keeps it
    own = VocabularyCorrector(vocabulary, base)  # also reads the alternatives and the spans
    for e in own.edits(transcript):
        tiers.setdefault(_key(e), ("own", e))
    looser = VocabularyCorrector(vocabulary, replace(base, **cfg.loose))
    for e in looser.edits(transcript):  # its best edit per word (all of its candidates let wrong ones in)
        tiers.setdefault(_key(e), ("loose", e))
    if check.phonemes is not None and cfg.phoneme_min is not None:
        import time

        from quilt_llava.narratives.phonemes import phoneme_edits

        t0 = time.perf_counter()
        try:
            sounded = phoneme_edits(transcript, looser, check.phonemes, cfg.phoneme_min)
        except ConfigError as exc:  # espeak-ng failed here: the other candidates still count
            log.warning("no phoneme candidates for %s: %s", transcript.source, "; ".join(exc.problems))
            sounded = []
        check.phoneme_seconds += time.perf_counter() - t0
        for e in sorted(sounded, key=lambda e: -e.score):  # sound-alikes by phonemes: as far as the far tier
            tiers.setdefault(_key(e), ("far", e))
    if cfg.far:
        far = VocabularyCorrector(vocabulary, replace(base, **cfg.far))
        for e in _ranked(far.candidates(transcript)):
            tiers.setdefault(_key(e), ("far", e))
    with check.reusing_encodings():  # an utterance decoded again is encoded once for both
        if cfg.alternatives is not None:
            for e in alternative_edits(transcript, audio, check, own, cfg.alternatives):
                tiers.setdefault(_key(e), ("far", e))  # the recogniser's other readings: as far as the far tier
        if cfg.spans is not None:  # runs the corrector's rules never look at, where no other source found them
            for e in span_edits(transcript, own, cfg.spans):
                tiers.setdefault(_key(e), ("span", e))
        listed = list(tiers.values())
        verdicts = check.judge(audio, transcript, [e for _, e in listed], [t for t, _ in listed])
    kept, refused = checked(verdicts, transcript, cfg)
    chosen = chosen_edits(kept, cfg.audio_chooses)
    return apply_edits(transcript, chosen), chosen, refused


def chosen_edits(kept: list[Edit], audio_chooses: bool = True) -> list[Edit]:
    """One edit per word of the accepted ``kept`` (scored: ``detail["acoustic"]``), in text order:
    of overlapping ones the audio's favourite, but an edit that puts in words not heard there
    (``detail["added"]``) only where no other accepted edit over its words does without
    (``audio_chooses``; else the corrector's own edits first)."""
    taken: set[tuple[int, int]] = set()
    chosen: list[Edit] = []
    for e in sorted(kept, key=_preference if audio_chooses else _own_first):
        span = {(e.utterance, i) for i in range(e.first, e.last)}
        if not span & taken:
            taken |= span
            chosen.append(e)
    chosen.sort(key=lambda e: (e.utterance, e.first))
    return chosen


def _ranked(candidates: list[list[Edit]]) -> list[Edit]:
    """Every utterance's candidates, best text score first (the audio decides between them)."""
    return [e for found in candidates for e in sorted(found, key=lambda e: (-e.score, -(e.last - e.first), e.first))]


def _gain(e: Edit) -> float:
    g = e.detail["acoustic"].get("delta_per_token")
    return float("inf") if g is None else g  # not scored: an own edit that stands


def _preference(e: Edit) -> tuple[bool, float, float]:
    # An edit that also puts in ordinary words nobody heard there (a re-decoding's guess around
    # the term: "my a fibroblasts" for "the myophibroblasts") yields to an accepted edit over
    # the same words that does not; among the rest the audio's favourite wins.
    return bool(e.detail.get("added")), -_gain(e), -e.score


def _own_first(e: Edit) -> bool:
    return not e.detail["acoustic"].get("strict", True)


def _key(e: Edit) -> tuple[int, int, int, str]:
    return e.utterance, e.first, e.last, e.after


def checked(
    verdicts: list[Verdict], transcript: Transcript, config: AcousticConfig
) -> tuple[list[Edit], list[dict[str, Any]]]:
    """(the accepted edits with their scores in ``detail["acoustic"]``, change-log rows of the refused)."""
    kept: list[Edit] = []
    refused: list[dict[str, Any]] = []
    for v in verdicts:
        e = replace(v.edit, detail={**v.edit.detail, "acoustic": v.to_dict()})
        if v.accepted:
            kept.append(e)
            continue
        row = e.to_dict(transcript)
        row["rejected"] = True
        if v.per_token is None:
            row["reason"] = f"found only at the looser bars and {v.note}"
        else:
            row["reason"] = (
                f"the audio does not support it: {v.per_token:+.2f} log-probability per token against the words "
                f"as heard (kept from {config.bar(v.tier):+g} for the {v.tier} bars)"
            )
        refused.append(row)
    return kept, refused
