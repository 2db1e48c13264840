"""Term candidates from the recogniser's other hypotheses (narratives.asr_alternatives, ninth pass):
hand-written hypotheses aligned with hand-written first passes (the real model:
test_acoustic_alternatives.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def corrector():
    from quilt_llava.narratives.correct import VocabularyCorrector
    from quilt_llava.narratives.vocabulary import Vocabulary

    return VocabularyCorrector(Vocabulary.load())


@pytest.mark.parametrize(
    ("old", "new", "term", "want"),
    [
        # one misheard word among changed neighbours: only the term's own words are taken
        ("the testinal metoplasia here", "the testing all metaplasia here", (3, 4), ("metoplasia", "metaplasia")),
        # one merged word said as two: both are taken
        (
            "a micromasculopreliferation",
            "a micromascular proliferation",
            (2, 3),
            ("micromasculopreliferation", "micromascular proliferation"),
        ),
        ("chondoride staining is", "congo red tailing is", (0, 2), ("chondoride", "congo red")),
        ("looking at oxygen nuclei", "blue haematoxylin nuclei", (1, 2), ("looking at oxygen", "blue haematoxylin")),
    ],
)
def test_covering_finds_the_stretch_both_readings_say(old, new, term, want):
    from quilt_llava.narratives.asr_alternatives import covering

    o, n = old.split(), new.split()
    i, j, p, q = covering(o, n, *term)
    assert (" ".join(o[i:j]), " ".join(n[p:q])) == want


def test_a_hypothesis_holding_a_term_becomes_an_edit_of_the_words_it_replaces(corrector):
    from quilt_llava.narratives.asr_alternatives import hypothesis_edits

    tokens = ["This", "shows", "testinal", "metoplasia,", "with", "goblet", "cells."]
    hyp = ["This", "shows", "testing", "all", "metaplasia", "with", "goblet", "cells."]
    (edit,) = hypothesis_edits(0, tokens, 0, len(tokens), hyp, corrector, 4)
    assert (edit.first, edit.last, edit.before, edit.after) == (3, 4, "metoplasia,", "metaplasia")


@pytest.mark.parametrize(
    ("heard", "hypothesis", "want"),
    [
        # a term heard goes for a term that reads and sounds like it (0.73 >= 0.66)
        ("the brown chromatin here", "the brown chromogen here", ("chromatin", "chromogen")),
        # the term in its own spelling
        ("with pseudo inclusions", "with pseudo-inclusions", ("pseudo inclusions", "pseudoinclusions")),
    ],
)
def test_a_term_is_offered_in_its_own_spelling_and_may_replace_a_term_like_it(corrector, heard, hypothesis, want):
    from quilt_llava.narratives.asr_alternatives import hypothesis_edits

    tokens = heard.split()
    (edit,) = hypothesis_edits(0, tokens, 0, len(tokens), hypothesis.split(), corrector, 4)
    assert (edit.before, edit.after) == want


@pytest.mark.parametrize(
    ("heard", "hypothesis"),
    [
        ("the nuclei are blue", "the nucleus are blue"),  # another form of a word heard: never offered
        ("the teratoma is here", "the tumour is here"),  # a term heard, lost for one unlike it
        ("the gland is here", "the gland is here"),  # nothing new
        ("one two three four five six", "eosinophilic"),  # more words than max_words
    ],
)
def test_no_edit_where_the_hypothesis_brings_no_new_term_safely(corrector, heard, hypothesis):
    from quilt_llava.narratives.asr_alternatives import hypothesis_edits

    tokens = heard.split()
    assert hypothesis_edits(0, tokens, 0, len(tokens), hypothesis.split(), corrector, 4) == []


def test_bad_settings_are_all_reported():
    from quilt_llava.errors import ConfigError
    from quilt_llava.narratives.acoustic_check import AcousticConfig
    from quilt_llava.narratives.asr_alternatives import AlternativesConfig

    bad = AcousticConfig(alternatives=AlternativesConfig(hypotheses=0, unsure_min_score=1.5, max_words=0))
    with pytest.raises(ConfigError) as info:
        bad.validate()
    assert len(info.value.problems) == 3 and all(p.startswith("alternatives: ") for p in info.value.problems)


def test_alternatives_are_on_by_default_and_off_with_the_option(monkeypatch, tmp_path):
    # on since the ninth pass (docs/BENCHMARKS.md, Speech): --no-acoustic-alternatives ->
    # CorrectOptions.alternatives -> AcousticConfig.alternatives None
    from quilt_llava.narratives.acoustic_check import AcousticConfig
    from quilt_llava.narratives.asr_alternatives import AlternativesConfig
    from quilt_llava.narratives.speech import CorrectOptions
    from tests.speech import acoustic_configs

    assert AcousticConfig().alternatives == AlternativesConfig()
    assert CorrectOptions(transcript=tmp_path / "t.json", out=tmp_path / "o.json").alternatives
    configs = acoustic_configs(monkeypatch, tmp_path, "alternatives", (False, True))
    assert [c.alternatives for c in configs] == [None, AlternativesConfig()]


def test_the_speech_report_names_the_re_decodes_and_their_time():
    # the check's own seconds leave the re-decodes out; the report must say what they cost
    from types import SimpleNamespace

    from quilt_llava.narratives.acoustic_check import AcousticConfig
    from quilt_llava.narratives.speech import _alternatives_note

    on = SimpleNamespace(config=AcousticConfig(), decodes=28, alternative_seconds=15.42)
    assert _alternatives_note(on) == "28 utterance(s) decoded again for other hypotheses in 15.4 s"
    off = SimpleNamespace(config=AcousticConfig(alternatives=None), decodes=0, alternative_seconds=0.0)
    assert "off" in _alternatives_note(off)


@pytest.mark.parametrize(
    ("heard", "hypothesis", "want"),
    [
        ("and a the myophibroblasts, or two", "and a my a fibroblasts or two", ["my", "a"]),
        ("gieson and mesentry chrome show the", "gieson and mass and trichrome show the", ["mass", "and"]),
    ],
)
def test_words_a_hypothesis_puts_in_beside_the_term_are_listed(corrector, heard, hypothesis, want):
    from quilt_llava.narratives.asr_alternatives import hypothesis_edits

    (edit,) = hypothesis_edits(0, heard.split(), 0, len(heard.split()), hypothesis.split(), corrector, 4)
    assert edit.detail["added"] == want


def _scored(first: int, last: int, after: str, gain: float, **detail: object):
    from quilt_llava.narratives.correct import Edit

    acoustic = {"delta_per_token": gain, "strict": True}
    return Edit(0, first, last, "x", after, "vocabulary", 0.8, {**detail, "acoustic": acoustic})


def test_an_edit_that_puts_in_words_nobody_heard_yields_to_one_that_does_not():
    """Tuning sets of the fifteenth pass: "mesentry chrome" -> "mass and trichrome" (a re-decoding,
    +0.29 per token) beat "Masson trichrome" (the corrector, -0.04), which the audio had accepted too;
    likewise "my a fibroblasts" over "myofibroblast" and "your epithelium" over "urothelium"."""
    from quilt_llava.narratives.acoustic_check import chosen_edits

    guess = _scored(4, 6, "mass and trichrome", 0.29, added=["mass", "and"])
    term = _scored(4, 6, "Masson trichrome", -0.04)
    elsewhere = _scored(8, 9, "stroma", 0.5)
    assert [e.after for e in chosen_edits([guess, term, elsewhere])] == ["Masson trichrome", "stroma"]
    # alone (no edit without added words over its words), the guess is made
    assert [e.after for e in chosen_edits([guess, elsewhere])] == ["mass and trichrome", "stroma"]
    # without added words the audio's favourite wins, as before
    plain = _scored(4, 6, "Masson trichrome stain", 0.29)
    assert [e.after for e in chosen_edits([plain, term])] == ["Masson trichrome stain"]
