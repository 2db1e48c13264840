"""Phoneme-level sound-alike candidates (espeak-ng) for the acoustic check."""

from __future__ import annotations

from dataclasses import replace

import pytest

from quilt_llava.errors import ConfigError
from quilt_llava.narratives.phonemes import Phonemes, available, phoneme_edits

needs_espeak = pytest.mark.skipif(not available(), reason="espeak-ng is not installed (scripts/install_espeak.sh)")


def corrector():
    from quilt_llava.narratives.acoustic_check import AcousticConfig
    from quilt_llava.narratives.correct import CorrectionConfig, VocabularyCorrector
    from quilt_llava.narratives.vocabulary import Vocabulary

    return VocabularyCorrector(Vocabulary.load(), replace(CorrectionConfig(), **AcousticConfig().loose))


def said(*texts: str):
    from quilt_llava.narratives.transcript import Transcript, Utterance

    return Transcript([Utterance(i * 5.0, i * 5.0 + 4, t, ()) for i, t in enumerate(texts)], "test")


@needs_espeak
def test_one_process_per_batch_and_the_strings_are_cached():
    ph = Phonemes()
    out = ph.of(["human lands", "", "tumour glands", "human lands", "CD20!"])
    assert ph.calls == 1 and out[1] == "" and out[0] == out[3] and all(out[k] for k in (0, 2, 4))
    assert not any(mark in out[0] for mark in "ˈˌ ")  # stress and word gaps dropped
    assert ph.of(["tumour glands"]) == [out[2]] and ph.calls == 1  # cached: no new process


@needs_espeak
def test_sound_alikes_letters_miss_become_candidates():
    # tiny.en on espeak-ng speech (heldout, heldout2, heldout3): "myopsy" for "biopsy" (spelling and
    # Metaphone point at "myocyte"), "tube use" for "tubules" (two everyday words), "cytidical" for
    # "atypical"; the acoustic check kept all three

    c = corrector()
    text = said(
        "This myopsy shows a tumour.", "The seminiferous tube use show arrest.", "Complex cytidical hyperplasia."
    )
    from quilt_llava.narratives.acoustic_check import PHONEME_BAR

    bar = PHONEME_BAR
    found = {(e.before, e.after): e for e in phoneme_edits(text, c, Phonemes(), bar)}
    assert {("myopsy", "biopsy"), ("tube use", "tubules"), ("cytidical", "atypical")} <= set(found)
    by_letters = {(e.before, e.after) for e in c.edits(text)}
    assert ("myopsy", "myocyte") in by_letters and not by_letters & set(found)  # only phonemes find these
    assert found[("myopsy", "biopsy")].detail == {"phonemes": pytest.approx(0.875, abs=0.01)}
    # a term is never a candidate for another term, nor a code, nor a very common word
    assert not any(before.strip(".") in ("tumour", "the", "a", "show") for before, _ in found)
    # a lower bar finds more ("trauma" -> "stroma", 0.57), a higher one fewer
    low = {(e.before, e.after) for e in phoneme_edits(said("The trauma stays blue."), c, Phonemes(), 0.55)}
    assert ("trauma", "stroma") in low
    assert len(phoneme_edits(text, c, Phonemes(), 0.85)) < len(found)


def test_without_espeak_there_are_no_candidates_and_no_error(monkeypatch):
    import quilt_llava.narratives.phonemes as phonemes

    monkeypatch.setattr(phonemes, "PROGRAM", "espeak-ng-that-is-not-here")
    assert not phonemes.available()
    with pytest.raises(ConfigError, match="espeak-ng-that-is-not-here failed on 1 strings"):
        Phonemes().of(["human lands"])
    assert Phonemes().of(["", "!"]) == ["", ""]  # nothing to ask: no process


def test_a_bad_bar_is_an_error():
    with pytest.raises(ConfigError, match="min_similarity"):
        phoneme_edits(said("x"), corrector(), Phonemes(), 0.0)


def test_the_demo_voice_finds_espeak_ng_the_same_way():
    from quilt_llava.demo import voice
    from quilt_llava.narratives import phonemes

    assert voice.espeak_path is phonemes.espeak_path and voice.ESPEAK == phonemes.PROGRAM
    assert phonemes.available() is (phonemes.espeak_path() is not None)
