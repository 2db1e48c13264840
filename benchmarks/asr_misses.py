"""Why the spoken terms that the corrected recognition still misses are missed, and why right words
were damaged: the diagnosis table of the speech benchmark (docs/BENCHMARKS.md, Speech).

For each set, on the first pass (the default recognition; ``--second-pass``: the merged text) of
the recognition that ``asr_bench.py --keep DIR`` kept (same lines and settings,
else it recognises again and keeps it), the recognition is corrected with the acoustic check as the
benchmark does, and every vocabulary term of the script that the result lacks is put in one class:

- ``heard``: the recognition already had it and a correction took it away (damage);
- ``a`` no candidate: no edit into the term over the words aligned with it, neither from the
  corrector at a very loose bar (``PROBE``, looser than the check's) nor from espeak-ng phonemes at
  ``PHONEME_PROBE`` nor, where the check offers them, from re-joined or re-cut runs
  (``narratives.correct_spans``); ``gate`` names the corrector's rule that refused the closest run
  of those words (alone or with a neighbour) at the ``PROBE`` bars, and ``spans`` what the span
  source said about it (:func:`gate`);
- ``a'`` looser only: candidates exist only past the check's bars (the audio's verdict on them is
  printed: would loosening generation help?);
- ``b`` refused: a candidate the check looked at and the audio refused (its score against the heard
  words, per token);
- ``c`` another won: the check accepted a candidate into the term but another edit over the same
  words was chosen, or an edit into another term (or another form) took the words;
- ``d`` spans: the words aligned with the term cross an utterance boundary;
- ``e`` vocabulary or scoring: the term is heard or put in elsewhere (the scorer counts
  occurrences, not places: these are listed to be looked at by hand).

Every right word that a kept edit changed is listed with the edit's kind (own bars, looser bars,
phonemes) and its audio score.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/asr_misses.py --keep DIR [--set NAME ...] [--json]``
(tuning sets only by default: the clean sets must not be read).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asr_bench import DEFAULT_MODEL, kept_recognition, sentences, voiced
from quilt_llava.narratives.acoustic_check import AcousticCheck, AcousticConfig, correct_heard
from quilt_llava.narratives.asr import AsrConfig, load_model, read_audio
from quilt_llava.narratives.correct import CorrectionConfig, Edit, VocabularyCorrector, tokens_of
from quilt_llava.narratives.correct_spans import SpanConfig, span_edits
from quilt_llava.narratives.speech_metrics import normalise, term_counts
from quilt_llava.narratives.transcript import Transcript, transcript_from_records
from quilt_llava.narratives.vocabulary import Vocabulary

# The sets whose misses may be read: the first four, and each clean set once its pass has scored it
# (heldout11-13 from the twelfth and thirteenth passes, heldout14 from the fourteenth speech pass's start,
# heldout15 from the fifteenth speech pass's start,
# heldout16 from the sixteenth speech pass's start,
# heldout17 from the seventeenth speech pass's start,
# heldout18 from the eighteenth speech pass's start,
# heldout19 from the nineteenth speech pass's start).
TUNING = (
    "demo",
    "heldout",
    "heldout2",
    "heldout3",
    "heldout11",
    "heldout12",
    "heldout13",
    "heldout14",
    "heldout15",
    "heldout16",
    "heldout17",
    "heldout18",
    "heldout19",
)
# Bars far looser than the check's: does any candidate into the term exist at all?
PROBE = {
    "min_score": 0.5,
    "min_spelling": 0.3,
    "common_min_score": 0.6,
    "cue_min_score": 0.5,
    "common_run_min_spelling": 0.5,
    "common_ramp_zipf": 0.0,
    "max_common_zipf": 9.0,
    "candidates": 16,
}
PHONEME_PROBE = 0.5


def flat_words(t: Transcript) -> list[tuple[int, int, str]]:
    """(utterance, word, normalised word) of every word, normalised words split like the scorer."""
    out = []
    for ui, u in enumerate(t.utterances):
        for wi, tok in enumerate(tokens_of(u)):
            for w in normalise(tok):
                out.append((ui, wi, w))
    return out


def aligned_span(ref: list[str], hyp: list[str], a: int, b: int) -> tuple[int, int]:
    """The hypothesis words ``lo:hi`` aligned with reference words ``a:b``."""
    from rapidfuzz.distance import Levenshtein

    lo, hi = None, None
    for op in Levenshtein.opcodes(ref, hyp):
        if (op.src_end <= a and op.src_end != op.src_start) or (op.src_start >= b and op.src_end != op.src_start):
            continue
        if op.src_start == op.src_end and not (a <= op.src_start <= b):
            continue
        if op.tag == "equal":
            s = op.dest_start + max(0, a - op.src_start)
            e = op.dest_start + min(op.src_end, b) - op.src_start
        else:
            s, e = op.dest_start, op.dest_end
        if e > s:
            lo = s if lo is None else min(lo, s)
            hi = e if hi is None else max(hi, e)
    if lo is None:
        return 0, 0
    return lo, hi  # type: ignore[return-value]


def into(e: Edit, term: str, vocab: Vocabulary) -> bool:
    return term in term_counts(normalise(e.after, vocab), vocab)


def diagnose(
    name: str, model: Any, vocab: Vocabulary, keep: Path, check: AcousticCheck, tmp: Path, second_pass: bool = False
) -> dict[str, Any]:
    from quilt_llava.narratives.phonemes import Phonemes, available, phoneme_edits

    asr = AsrConfig(model=DEFAULT_MODEL, second_pass=True)
    lines = sentences(name)
    raw, timing = kept_recognition(name, lines, model, asr, tmp, keep, vocab)
    if not second_pass and timing.get("first_pass"):  # the default recognition: one pass
        raw = transcript_from_records(timing["first_pass"], f"{name} (1st pass)")
    audio, _bad = read_audio(voiced(name, lines, keep))
    fixed, chosen, refused = correct_heard(raw, vocab, audio, check)
    script = " ".join(lines)
    ref = normalise(script, vocab)
    words = flat_words(raw)
    hyp = [w for _, _, w in words]
    out_words = normalise(fixed.text(), vocab)

    strict_keys = {(e.utterance, e.first, e.last, e.after) for e in VocabularyCorrector(vocab).edits(raw)}
    check_bars = VocabularyCorrector(vocab, replace(CorrectionConfig(), **check.config.loose))
    check_cands = [e for es in check_bars.candidates(raw) for e in es]
    if check.config.far:
        far = VocabularyCorrector(vocab, replace(CorrectionConfig(), **check.config.far))
        check_cands += [e for es in far.candidates(raw) for e in es]
    probe = VocabularyCorrector(vocab, replace(CorrectionConfig(), **PROBE))
    probe_cands = [e for es in probe.candidates(raw) for e in es]
    if check.config.spans is not None:
        spanned = span_edits(raw, VocabularyCorrector(vocab), check.config.spans)
        check_cands += spanned
        probe_cands += spanned
    if available():
        probe_cands += phoneme_edits(raw, probe, Phonemes(), PHONEME_PROBE)
    refused_rows = {(r["utterance"], r["first"], r["last"], r["after"]): r for r in refused}

    # every term occurrence of the script, with its reference span
    canon = vocab.canonical_form()
    longest = max(len(v) for v in canon)
    occurrences: list[tuple[str, int, int]] = []  # every run, as the scorer counts them
    for i in range(len(ref)):
        for n in range(1, longest + 1):
            run = tuple(ref[i : i + n])
            if len(run) == n and run in canon:
                occurrences.append((" ".join(canon[run]), i, i + n))
    found_out = term_counts(out_words, vocab)
    ref_counts = term_counts(ref, vocab)
    term_counts(hyp, vocab)

    def at_place(words: list[str], a: int, b: int, term: str) -> bool:
        lo, hi = aligned_span(ref, words, a, b)
        return term in term_counts(words[max(0, lo - 1) : hi + 1], vocab)

    # the scorer counts occurrences, not places: of a term's occurrences, those missing at their
    # place are taken as the misses, as many as the scorer finds missing
    missing: dict[str, list[tuple[int, int]]] = {}
    for term, a, b in occurrences:
        if not at_place(out_words, a, b, term):
            missing.setdefault(term, []).append((a, b))
    misses = []
    for term, a, b in occurrences:
        lack = ref_counts.get(term, 0) - min(ref_counts.get(term, 0), found_out.get(term, 0))
        if (a, b) not in missing.get(term, [])[:lack]:
            continue
        lo, hi = aligned_span(ref, hyp, a, b)
        place = words[lo:hi]
        heard = " ".join(w for _, _, w in place)
        row: dict[str, Any] = {"term": term, "heard": heard, "said": " ".join(ref[max(0, a - 2) : b + 2])}
        utts = {ui for ui, _, _ in place}
        spans = {(ui, wi) for ui, wi, _ in place}
        over = [e for e in probe_cands if any((e.utterance, k) in spans for k in range(e.first, e.last))]
        mine = [e for e in over if into(e, term, vocab)]
        took = [e for e in chosen if any((e.utterance, k) in spans for k in range(e.first, e.last))]
        if at_place(hyp, a, b, term):
            row["class"] = "heard"
            row["by"] = [f"{e.before} -> {e.after}" for e in took]
        elif len(utts) > 1:
            row["class"] = "d"
        elif not mine:
            row["class"] = "a"
            row["other"] = sorted({f"{e.before} -> {e.after}" for e in over})[:4]
            row["gate"], row["spans"] = gate(probe, [w for _, _, w in words], lo, hi, term, check.config.spans)
        else:
            judged = [e for e in mine if any(_same(e, c) for c in check_cands) or _key(e) in strict_keys]
            ref_rows = [refused_rows[_key(e)] for e in mine if _key(e) in refused_rows]
            if took:
                row["class"] = "c"
                row["by"] = [f"{e.before} -> {e.after}" for e in took]
                row["candidates"] = [f"{e.before} -> {e.after}" for e in mine[:3]]
            elif ref_rows:
                row["class"] = "b"
                row["refused"] = [
                    f"{r['before']} -> {r['after']} {r['detail']['acoustic'].get('delta_per_token')}" for r in ref_rows
                ]
            elif judged:
                row["class"] = "c"
                row["candidates"] = [f"{e.before} -> {e.after}" for e in judged[:3]]
            else:
                row["class"] = "a'"
                best = _uniq(mine)[:6]
                vs = check.judge(audio, raw, best, ["far"] * len(best))
                row["looser"] = [
                    f"{v.edit.before} -> {v.edit.after} ({v.edit.score:.2f}; audio {v.per_token})" for v in vs
                ]
        misses.append(row)
    damaged = damaged_words(script, raw, chosen, vocab, strict_keys)
    return {"set": name, "terms": len(occurrences), "misses": misses, "damaged": damaged}


def gate(
    corrector: VocabularyCorrector, hyp: list[str], lo: int, hi: int, term: str, spans: SpanConfig | None
) -> tuple[str, str]:
    """(the corrector's rule that refuses the closest run of ``hyp[lo:hi]`` (alone, or with one
    neighbour either side) becoming ``term``, what the span source says about that run)."""
    from quilt_llava.narratives.correct import other_form, similarity
    from quilt_llava.narratives.correct_spans import refusal

    cfg = corrector.config
    forms = [f for f in corrector.forms if corrector.term_of(f).canonical.lower() == term.lower()]  # type: ignore[union-attr]
    if not forms:
        forms = [f for f in corrector.forms if " ".join(f) == term]
    runs = {(a, b) for a in (lo - 1, lo) for b in (hi, hi + 1) if 0 <= a < b <= len(hyp)}
    scored = [(similarity(tuple(hyp[a:b]), f)[0], tuple(hyp[a:b]), f) for a, b in runs for f in forms]
    if not scored:
        return "no words aligned", ""
    _score, run, form = max(scored)
    score, spelling, _ = similarity(run, form)
    why = ""
    touchable, common = corrector.touchable(run)
    if set(run) & set(form) and len(run) == len(form):  # the anchored match compares the other words only
        heard = tuple(r for r, f in zip(run, form) if r != f)
        meant = tuple(f for r, f in zip(run, form) if r != f)
        touchable, common = corrector.touchable(heard)
        score, spelling, _ = similarity(heard, meant)
        if not touchable:
            why = f"anchored: {' '.join(heard)!r} holds a term or is one of the most frequent words"
        elif any(other_form(h, m) for h in heard for m in meant):
            why = "anchored: another form of a term word, or a meaning prefix"
        elif score < corrector.bar(heard, common) or spelling < cfg.min_spelling:
            why = f"anchored: {' '.join(heard)!r} ~ {' '.join(meant)!r} {score:.2f} below its bar (common: {common})"
        else:
            why = "anchored: offered at these bars, yet not over these words"
        score, spelling, _ = similarity(run, form)
    elif len(run) > cfg.max_ngram:
        why = f"longer than max_ngram ({len(run)} words)"
    elif not touchable:
        held = sorted(corrector.terms_in(run))
        why = f"holds the heard term(s) {held}" if held else "one of the most frequent words"
    elif set(run) & set(form) and len(run) != len(form):
        why = "shares a word with the term, other word count (no anchored match)"
    elif any(other_form(w, t) for w in run for t in form):
        why = "another form of a term word, or a meaning prefix"
    elif all(f != form for f, *_ in corrector.nearest(run)) and not set(run) & set(form):
        why = "not among the closest forms"
    elif score < corrector.rewrite_bar(run, form, corrector.bar(run, common)):
        why = f"score {score:.2f} below its bar (common words: {common})"
    elif spelling < cfg.min_spelling:
        why = f"spelling {spelling:.2f} below {cfg.min_spelling}"
    elif common and len(run) > 1 and spelling < cfg.common_run_min_spelling:
        why = f"everyday words whose spelling ({spelling:.2f}) does not spell the term"
    else:
        why = "word boundaries: the closest run is not one the corrector compares"
    said = f"{' '.join(run)!r} ~ {' '.join(form)!r} {score:.2f}: {why}"
    if spans is None:
        return said, "off"
    if score < spans.min_score or spelling < spans.min_spelling:
        return said, f"below its bars ({score:.2f}, spelling {spelling:.2f})"
    return said, refusal(run, form, corrector, spans) or "offered (another run or term ranked first)"


def _key(e: Edit) -> tuple[int, int, int, str]:
    return e.utterance, e.first, e.last, e.after


def _same(e: Edit, c: Edit) -> bool:
    return _key(e) == _key(c)


def _uniq(edits: list[Edit]) -> list[Edit]:
    out: dict[tuple[int, int, int, str], Edit] = {}
    for e in sorted(edits, key=lambda e: -e.score):
        out.setdefault(_key(e), e)
    return list(out.values())


def damaged_words(
    script: str, raw: Transcript, chosen: list[Edit], vocab: Vocabulary, strict_keys: set[Any]
) -> list[dict[str, Any]]:
    from quilt_llava.narratives.speech_metrics import correct_positions

    ref = normalise(script, vocab)
    toks = [(ui, wi, tok) for ui, u in enumerate(raw.utterances) for wi, tok in enumerate(tokens_of(u))]
    hyp = ["".join(normalise(t, vocab)) for _, _, t in toks]
    right = correct_positions(ref, hyp)
    where = {(ui, wi): k for k, (ui, wi, _) in enumerate(toks)}
    out = []
    for e in chosen:
        kept = set(normalise(e.after, vocab))
        hurt = [hyp[where[(e.utterance, k)]] for k in range(e.first, e.last) if where[(e.utterance, k)] in right]
        hurt = [w for w in hurt if w not in kept]
        if hurt:
            a = e.detail.get("acoustic", {})
            kind = "phonemes" if "phonemes" in e.detail else ("own bars" if _key(e) in strict_keys else "looser bars")
            out.append(
                {
                    "edit": f"{e.before} -> {e.after}",
                    "right_words": hurt,
                    "kind": kind,
                    "score": e.score,
                    "audio_per_token": a.get("delta_per_token"),
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", choices=TUNING, action="append", help="a tuning set (repeatable; default all of them)")
    ap.add_argument("--keep", type=Path, required=True, help="asr_bench.py --keep folder")
    ap.add_argument(
        "--acoustic-phonemes", type=float, default=AcousticConfig().phoneme_min, help="phoneme bar (0: none)"
    )
    ap.add_argument(
        "--sixth-pass",
        action="store_true",
        help="the check as the sixth pass left it: no far tier, no phonemes, the corrector's own edits first",
    )
    ap.add_argument(
        "--second-pass", action="store_true", help="diagnose the second pass's merged text (default: the first pass)"
    )
    ap.add_argument(
        "--no-spans", action="store_true", help="the check without re-joined or re-cut runs (as before the tenth pass)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    vocab = Vocabulary.load()
    model = load_model(AsrConfig(model=DEFAULT_MODEL))
    config = AcousticConfig(phoneme_min=args.acoustic_phonemes or None)
    if args.no_spans:
        config = replace(config, spans=None)
    if args.sixth_pass:
        config = AcousticConfig(phoneme_min=None, far=None, audio_chooses=False, alternatives=None, spans=None)
    check = AcousticCheck(model, vocab, config)
    with tempfile.TemporaryDirectory() as tmp:
        results = [
            diagnose(n, model, vocab, args.keep, check, Path(tmp), args.second_pass) for n in (args.set or TUNING)
        ]
    if args.json:
        print(json.dumps(results))
        return 0
    total: Counter[str] = Counter()
    for r in results:
        classes = Counter(m["class"] for m in r["misses"])
        total.update(classes)
        print(f"\n{r['set']}: {r['terms']} terms, {len(r['misses'])} missed: {dict(sorted(classes.items()))}")
        for m in r["misses"]:
            extra = {k: v for k, v in m.items() if k not in ("term", "heard", "class", "said")}
            print(f"  [{m['class']:5}] {m['term']!r} heard {m['heard']!r} (said {m['said']!r}) {extra or ''}")
        for d in r["damaged"]:
            print(f"  damage: {d}")
    print(f"\nall: {dict(sorted(total.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
