"""A second, vocabulary-informed recognition pass: let the recogniser hear the terms again.

The vocabulary corrector (:mod:`quilt_llava.narratives.correct`) works on text alone: it
cannot tell "stays" from "stains" or "land" from "gland" without hearing them. The
recogniser can, if it is told which words to expect. This pass:

1. collects, per recognised segment, the vocabulary terms that read or sound like a run of
   its words (:meth:`VocabularyCorrector.near_terms`, the corrector's own spelling and sound
   scores, at the lower bar ``second_pass_min_score``);
2. re-decodes the audio of consecutive segments that have such a candidate (clips of at
   most ``second_pass_clip_s`` seconds, cut at segment boundaries) with the clip's
   ``second_pass_terms`` best candidates as faster-whisper ``hotwords``;
3. merges the two recognitions word by word: where they differ, the second pass's words
   are taken only when they hold a term the first did not, drop no term the first had,
   and read and sound like the words they replace (the corrector's bar, which rises for
   everyday words: "stays" does not become "stains"; a code is compared on spelling alone,
   "C4D" does not become "CD4 knee"; several words that become more words need the bar
   of a lone common word, "argue against cataricinoma" does not become "are new again to
   carcinoma"). Everything else keeps the first
   pass's words, so a second pass that rambles (a hotword list read out, a dropped
   sentence) changes nothing.

Word timings: the words taken come with the second pass's own timings, held inside the
time span of the first-pass words they replace, so timings stay inside the spoken words
and in order.

Measured (docs/BENCHMARKS.md, Speech): decoding the whole audio with a domain prompt or
hotwords makes the tiny model drop and merge sentences (term recall falls); this
segment-wise pass with a guarded merge is what helped (term recall after correction 0 to
+5 terms per set, e.g. 0.73 -> 0.75 on a clean held-out set). It costs a second decode of
the clips that have candidates: the whole recognition takes about 2 x as long.

Not handled: a term heard as everyday words that read and sound like no term (no candidate,
so nothing is asked again), and a cue word heard right only in the second pass ("brown" for
"ground"): only terms are taken from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quilt_llava.narratives.asr import SAMPLE_RATE, clip_bounds

if TYPE_CHECKING:
    from quilt_llava.narratives.asr import AsrConfig
    from quilt_llava.narratives.correct import VocabularyCorrector

CLIP_MARGIN_S = 0.3  # audio kept either side of a clip's segments (not past a neighbour)
MIN_CLIP_S = 0.2
MIN_KEPT_WORDS = 0.5  # a segment whose second pass has fewer words than this share of the first is not merged


@dataclass(frozen=True)
class Taken:
    """One place where the second pass's words replaced the first's."""

    segment: int
    before: str
    after: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"segment": self.segment, "before": self.before, "after": self.after, "score": round(self.score, 3)}


def clips(records: list[dict[str, Any]], wanted: list[bool], max_clip_s: float) -> list[list[int]]:
    """Runs of consecutive wanted segments, each spanning at most ``max_clip_s`` seconds."""
    groups: list[list[int]] = []
    for k, want in enumerate(wanted):
        if not want:
            continue
        g = groups[-1] if groups else None
        if g and g[-1] == k - 1 and records[k]["end"] - records[g[0]]["start"] <= max_clip_s:
            g.append(k)
        else:
            groups.append([k])
    return groups


class SecondPass:
    """Re-decodes segments with their candidate terms as hotwords and merges the result."""

    def __init__(self, model: Any, config: AsrConfig, corrector: VocabularyCorrector) -> None:
        self.model = model
        self.config = config
        self.corrector = corrector
        vocab = corrector.vocabulary
        self._canon = {v[0]: c[0] for v, c in vocab.canonical_form().items() if len(v) == 1 and len(c) == 1}

    def run(self, audio: Any, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Taken], int]:
        """(records with the merged words, what was taken, clips decoded).

        What the second pass heard, per segment, is left in ``self.heard`` (segment -> words),
        so a later :meth:`merge_heard` can weigh the same recognition again."""
        from quilt_llava.narratives.vocabulary import norm_word

        cands = [
            self.corrector.near_terms([norm_word(w["word"]) for w in r["words"]], self.config.second_pass_min_score)
            for r in records
        ]
        wanted = [any(s < 1.0 for s in c.values()) for c in cands]  # some term not heard exactly
        self.heard: dict[int, list[dict]] = {}
        groups = clips(records, wanted, self.config.second_pass_clip_s)
        for group in groups:
            best: dict[str, float] = {}
            for k in group:
                for term, s in cands[k].items():
                    best[term] = max(best.get(term, 0.0), s)
            terms = sorted(best, key=lambda t: -best[t])[: self.config.second_pass_terms]
            words = self._decode(audio, records, group, terms)
            for k in group:
                self.heard[k] = self._words_of(words, records, group, k)
        out, taken = self.merge_heard(records, self.heard)
        return out, taken, len(groups)

    def merge_heard(
        self, records: list[dict[str, Any]], heard: dict[int, list[dict]]
    ) -> tuple[list[dict[str, Any]], list[Taken]]:
        """``records`` with each segment's second-pass words (``heard``) merged in: (records, taken)."""
        out = list(records)
        taken: list[Taken] = []
        for k, mine in sorted(heard.items()):
            if len(mine) < MIN_KEPT_WORDS * len(records[k]["words"]):
                continue
            merged, got = self.merge(records[k]["words"], mine)
            if got:
                out[k] = {**records[k], "words": merged, "text": " ".join(w["word"].strip() for w in merged)}
                taken += [Taken(k, b, a, s) for b, a, s in got]
        return out, taken

    def _decode(self, audio: Any, records: list[dict[str, Any]], group: list[int], terms: list[str]) -> list[dict]:
        first, last = group[0], group[-1]
        lo, hi = clip_bounds(
            records[first]["start"],
            records[last]["end"],
            CLIP_MARGIN_S,
            records[first - 1]["end"] if first else None,
            records[last + 1]["start"] if last + 1 < len(records) else None,
        )
        if hi - lo < MIN_CLIP_S:
            return []  # overlapping neighbours left no audio of its own: keep the first pass
        clip = audio[int(lo * SAMPLE_RATE) : int(hi * SAMPLE_RATE)]
        segments, _info = self.model.transcribe(
            clip,
            language=self.config.language,
            beam_size=self.config.beam_size,
            temperature=0.0,  # a fallback to sampling would only add invented words here
            word_timestamps=True,
            vad_filter=False,  # the clip is speech already
            condition_on_previous_text=False,
            hotwords=" ".join(terms),
        )
        return [
            {"start": round(lo + w.start, 3), "end": round(lo + w.end, 3), "word": w.word}
            for seg in segments
            for w in (seg.words or [])
        ]

    @staticmethod
    def _words_of(words: list[dict], records: list[dict[str, Any]], group: list[int], k: int) -> list[dict]:
        """The clip's words whose middle falls in segment ``k``'s share of the clip."""
        lo = -float("inf") if k == group[0] else (records[k - 1]["end"] + records[k]["start"]) / 2
        hi = float("inf") if k == group[-1] else (records[k]["end"] + records[k + 1]["start"]) / 2
        return [w for w in words if lo <= (w["start"] + w["end"]) / 2 < hi]

    def _norms(self, words: list[dict]) -> list[str]:
        from quilt_llava.narratives.vocabulary import norm_word

        return [self._canon.get(n, n) for n in (norm_word(w["word"]) for w in words)]

    def merge(self, old: list[dict], new: list[dict]) -> tuple[list[dict], list[tuple[str, str, float]]]:
        """``old`` words with the differing runs of ``new`` that bring a term (module docstring)."""
        from rapidfuzz.distance import Levenshtein

        on, nn = self._norms(old), self._norms(new)
        regions: list[list[Any]] = []  # [equal?, old from, old to, new from, new to]
        for op in Levenshtein.opcodes(on, nn):
            same = op.tag == "equal"
            if regions and not same and not regions[-1][0]:
                regions[-1][2], regions[-1][4] = op.src_end, op.dest_end
            else:
                regions.append([same, op.src_start, op.src_end, op.dest_start, op.dest_end])
        out: list[dict] = []
        got: list[tuple[str, str, float]] = []
        for same, s0, s1, d0, d1 in regions:
            score = None if same else self._gain(on, nn, s0, s1, d0, d1)
            if score is None:
                out += old[s0:s1]
                continue
            out += self._placed(old[s0:s1], new[d0:d1])
            before, after = (" ".join(w["word"].strip() for w in ws) for ws in (old[s0:s1], new[d0:d1]))
            got.append((before, after, score))
        return out, got

    def _gain(self, on: list[str], nn: list[str], s0: int, s1: int, d0: int, d1: int) -> float | None:
        """The score of taking ``nn[d0:d1]`` for ``on[s0:s1]``, or None when it is not taken."""
        from quilt_llava.narratives.correct import similarity

        c = self.corrector
        heard, meant = tuple(w for w in on[s0:s1] if w), tuple(w for w in nn[d0:d1] if w)
        if not heard or not meant:
            return None  # a pure insertion or deletion: nothing to weigh it against
        gained = c.terms_in(tuple(nn[max(0, d0 - 1) : d1 + 1])) - c.terms_in(tuple(on[max(0, s0 - 1) : s1 + 1]))
        lost = c.terms_in(heard) - c.terms_in(tuple(nn[max(0, d0 - 1) : d1 + 1]))
        if not gained or lost:
            return None
        score = similarity(heard, meant)[0]
        common = all(c.zipf(w) >= c.config.common_zipf for w in heard)
        bar = c.rewrite_bar(heard, meant, c.bar(heard, common) if common else self.config.second_pass_min_score)
        return score if score >= bar else None

    def _placed(self, old: list[dict], new: list[dict]) -> list[dict]:
        """``new`` words respelled like ``old`` (capital, punctuation) and timed inside ``old``'s span."""
        from quilt_llava.narratives.correct import respell

        new = [w for w in new if w["word"].strip()]
        t0, t1 = old[0]["start"], old[-1]["end"]
        texts = respell([w["word"].strip() for w in old], " ".join(w["word"].strip() for w in new))
        out, t = [], t0
        for w, text in zip(new, texts):
            start = min(max(w["start"], t), t1)
            end = min(max(w["end"], start), t1)
            out.append({"start": start, "end": end, "word": " " + text})
            t = end
        return out
