"""Decoding settings and the vocabulary-informed second ASR pass, with a scripted stand-in model.

The stand-in records what it was asked (hotwords, prompt, clip length) and answers with
scripted words, so the merge rules, the clip timing and the cache are checked without
the real model (``test_asr.py`` runs the real one on espeak-ng speech).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from quilt_llava.errors import ConfigError
from quilt_llava.narratives.asr import AsrConfig, cached_transcript, transcribe, transcribe_to_file
from quilt_llava.narratives.asr_second_pass import SecondPass, clips
from quilt_llava.narratives.correct import VocabularyCorrector
from quilt_llava.narratives.vocabulary import Vocabulary

SR = 16_000


def timed(text: str, start: float, step: float = 0.4) -> list[dict]:
    """Words of ``text`` one after another, ``step`` seconds each."""
    return [
        {"start": round(start + i * step, 3), "end": round(start + (i + 1) * step - 0.05, 3), "word": " " + w}
        for i, w in enumerate(text.split())
    ]


def segment(text: str, start: float) -> SimpleNamespace:
    words = [SimpleNamespace(**w) for w in timed(text, start)]
    return SimpleNamespace(start=words[0].start, end=words[-1].end, text=" " + text, words=words)


@dataclass
class ScriptedModel:
    """Answers the first call with ``first`` and each later call (a clip) with the next of ``later``."""

    first: list[SimpleNamespace]
    later: list[list[SimpleNamespace]] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)

    def transcribe(self, audio, **kwargs):
        self.calls.append({**kwargs, "seconds": len(audio) / SR})
        if len(self.calls) == 1:
            return iter(self.first), None
        return iter(self.later[len(self.calls) - 2] if len(self.calls) - 2 < len(self.later) else []), None


@pytest.fixture(scope="module")
def corrector():
    return VocabularyCorrector(Vocabulary.load())


@pytest.fixture
def wav(tmp_path):
    from quilt_llava.demo.voice import write_wav

    t = np.arange(int(12 * SR)) / SR
    return write_wav(tmp_path / "tone.wav", (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)


def test_prompt_and_hotwords_reach_faster_whisper(wav):
    model = ScriptedModel([segment("the stroma stays blue", 0.5)])
    cfg = AsrConfig(
        "tiny.en", hotwords="stroma eosin", initial_prompt="A slide of stroma.", beam_size=3, second_pass=False
    )
    transcribe(wav, cfg, model)
    call = model.calls[0]
    assert call["hotwords"] == "stroma eosin" and call["initial_prompt"] == "A slide of stroma."
    assert call["beam_size"] == 3 and call["word_timestamps"] is True
    assert len(model.calls) == 1  # no second pass when it is off


def test_second_pass_asks_for_the_candidate_terms_and_keeps_timings_inside(wav):
    first = [segment("here the tumour land shows strong staining", 1.0), segment("the stroma stays blue", 5.0)]
    # the clip starts CLIP_MARGIN_S before the first segment: 0.7 s into the audio
    clip_words = [segment("here the tumour gland shows strong staining", 0.3), segment("the stroma stains blue", 4.3)]
    model = ScriptedModel(first, [clip_words])
    result = transcribe(wav, AsrConfig("tiny.en", second_pass=True), model)
    assert len(model.calls) == 2
    second = model.calls[1]
    assert "gland" in second["hotwords"].split()
    assert second["vad_filter"] is False and second["temperature"] == 0.0
    assert second["seconds"] == pytest.approx(6.55 + 0.3 - 0.7, abs=0.01)  # last word end + margin - start
    text = result.transcript.text()
    assert "tumour gland shows" in text  # a term brought back
    assert "stroma stays blue" in text  # an everyday word not turned into a term ("stays" -> "stains")
    assert [c["after"] for c in result.second_pass_changes] == ["gland"]
    assert result.first_pass is not None and "land" in result.first_pass.text().split()
    old = first[0].words[3]  # "land": the new word lies inside its time span
    new = result.transcript.utterances[0].words[3]
    assert new.text.strip() == "gland" and old.start <= new.start <= new.end <= old.end
    for u in result.transcript.utterances:
        assert all(a.end <= b.start + 1e-9 for a, b in zip(u.words, u.words[1:]))


def test_merge_keeps_the_first_pass_where_the_second_rambles_or_drops_a_term(corrector):
    sp = SecondPass(None, AsrConfig("tiny.en", second_pass=True), corrector)
    old = timed("This biopsy of the colon shows a tubular adenoma", 0.0)
    new = timed("dysplasia nuclei goblet", 0.0)  # the hotword list read out
    merged, got = sp.merge(old, new)
    assert merged == old and got == []
    old = timed("crisp brown chromogen at the membrane", 0.0)
    new = timed("crisp brown chromatin at the membrane", 0.0)  # a term heard first is not dropped
    assert sp.merge(old, new) == (old, [])
    old = timed("the cells are negative", 0.0)
    new = timed("the cells are negative stroma", 0.0)  # a pure insertion
    assert sp.merge(old, new) == (old, [])


def test_merge_takes_a_term_over_a_non_word_with_the_old_punctuation(corrector):
    sp = SecondPass(None, AsrConfig("tiny.en", second_pass=True), corrector)
    old = timed("Ziehl stain of the Metoplasia, here", 0.0)
    new = timed("ziehl stain of the metaplasia here", 0.0)
    merged, got = sp.merge(old, new)
    assert [w["word"] for w in merged][4] == " Metaplasia,"
    assert got[0][:2] == ("Metoplasia,", "metaplasia")


def test_clips_group_neighbouring_segments_up_to_the_limit():
    recs = [{"start": float(s), "end": float(s) + 4} for s in (0, 5, 10, 15, 30)]
    assert clips(recs, [True, True, False, True, True], 24.0) == [[0, 1], [3, 4]]
    assert clips(recs, [True, True, False, True, True], 18.0) == [[0, 1], [3], [4]]
    assert clips(recs, [True, True, True, True, False], 12.0) == [[0, 1], [2, 3]]


def test_cache_records_the_decoding_settings(wav, tmp_path):
    out = tmp_path / "t.asr.json"

    def model():
        return ScriptedModel([segment("the stroma stays blue", 0.5)])

    plain = AsrConfig("tiny.en", second_pass=False)
    assert transcribe_to_file(wav, out, plain, model()) is True
    assert cached_transcript(wav, out, plain)
    assert not cached_transcript(wav, out, AsrConfig("tiny.en", second_pass=True))
    assert not cached_transcript(wav, out, AsrConfig("tiny.en", second_pass=False, hotwords="stroma"))
    assert not cached_transcript(wav, out, AsrConfig("tiny.en", second_pass=False, initial_prompt="Histology."))
    # second-pass settings only matter when the pass runs
    assert cached_transcript(wav, out, AsrConfig("tiny.en", second_pass=False, second_pass_terms=3))
    two = AsrConfig("tiny.en", second_pass=True)
    assert transcribe_to_file(wav, out, two, model()) is True
    meta = json.loads(out.read_text())["asr"]
    assert meta["settings"]["second_pass"] is True and "vocabulary" in meta["settings"]
    # "stays" reads like "stains": one clip asked again; the stand-in heard nothing there, so no change
    assert meta["second_pass"]["clips"] == 1 and meta["second_pass"]["changes"] == []
    assert cached_transcript(wav, out, two)
    extra = tmp_path / "mine.txt"
    extra.write_text("Reinke crystals\n", encoding="utf-8")
    other = Vocabulary.load([extra])
    assert not cached_transcript(wav, out, two, other)  # the second pass would listen for other terms
    assert not cached_transcript(wav, out, AsrConfig("tiny.en", second_pass=True, second_pass_terms=3))


def test_invalid_settings_are_listed_together(wav):
    cfg = AsrConfig("tiny.en", beam_size=0, second_pass_terms=0, second_pass_min_score=2.0, second_pass_clip_s=40)
    with pytest.raises(ConfigError) as err:
        transcribe(wav, cfg, ScriptedModel([]))
    assert len(err.value.problems) == 4


def test_extract_options_carry_the_decoding_settings(tmp_path):
    from quilt_llava.narratives.cli import ExtractOptions

    opts = ExtractOptions(
        input=tmp_path / "v.mp4",
        out=tmp_path / "out",
        asr_model="tiny.en",
        asr_second_pass=False,
        asr_beam_size=2,
        asr_prompt="Histology of the colon.",
        asr_hotwords="crypts goblet",
    )
    cfg = opts.asr_config()
    assert (cfg.model, cfg.second_pass, cfg.beam_size) == ("tiny.en", False, 2)
    assert (cfg.initial_prompt, cfg.hotwords) == ("Histology of the colon.", "crypts goblet")
    assert ExtractOptions(input=tmp_path, out=tmp_path).asr_second_pass is AsrConfig("x").second_pass
    opts.asr_beam_size = 0
    with pytest.raises(ConfigError, match="beam_size"):
        opts.validate()


def test_a_clip_without_audio_of_its_own_is_not_decoded(corrector):
    recs = [
        {"start": 0.0, "end": 2.0, "words": timed("the tumour land", 0.0)},
        {"start": 1.95, "end": 1.97, "words": timed("land", 1.95, 0.05)},
        {"start": 1.96, "end": 3.0, "words": timed("stays blue", 1.96)},
    ]
    model = ScriptedModel([])
    sp = SecondPass(model, AsrConfig("tiny.en", second_pass=True), corrector)
    assert sp._decode(np.zeros(3 * SR, np.float32), recs, [1], ["gland"]) == []
    assert model.calls == []


def test_merge_refuses_long_rewrites_that_add_words_and_code_swaps(corrector):
    # second-pass runs seen on the tuning sets that turned right words into wrong ones
    sp = SecondPass(None, AsrConfig("tiny.en", second_pass=True), corrector)
    for first, second in (
        ("argue against cataricinoma.", "are new again to carcinoma"),  # 3 words -> 5, score 0.81
        ("The aridic acid keeps changing here", "Here we are decasid skin-staining here"),
        ("C4D staining is positive", "CD4 knee staining is positive"),  # a code read in another order
    ):
        old = timed(first, 0.0)
        assert sp.merge(old, timed(second, 0.0)) == (old, []), first
    # right fixes that shrink a run or split one word are still taken
    for first, second, after in (
        ("In testinal metoplasia is seen", "intestinal metaplasia is seen", "intestinal metaplasia"),
        ("the Chondoride stain", "the Congo red stain", "Congo red"),
    ):
        _, got = sp.merge(timed(first, 0.0), timed(second, 0.0))
        assert [a for _, a, _ in got] == [after], first


def test_merge_heard_weighs_kept_words_again_with_spaced_text(corrector):
    sp = SecondPass(None, AsrConfig("tiny.en", second_pass=True), corrector)
    kept = [{"word": w["word"].strip(), "start": w["start"], "end": w["end"]} for w in timed("the tumour land is", 0.0)]
    records = [{"start": 0.0, "end": 1.6, "text": "the tumour land is", "words": kept}]
    heard = {
        0: [
            {"word": w["word"].strip(), "start": w["start"], "end": w["end"]} for w in timed("the tumour gland is", 0.0)
        ]
    }
    out, taken = sp.merge_heard(records, heard)
    assert out[0]["text"] == "the tumour gland is"  # words stored without their leading space
    assert [(t.before, t.after) for t in taken] == [("land", "gland")]
    assert sp.merge_heard(records, {0: heard[0][:1]}) == (records, [])  # too few words: not merged
