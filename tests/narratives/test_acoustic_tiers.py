"""The acoustic check's tiers (eighth pass): far candidates, the length-neutral score, and the audio
choosing between overlapping candidates.

The real-model tests speak four sentences with espeak-ng and recognise them with tiny.en, which
(espeak-ng 1.51, faster-whisper 1.2) hears "endometrial biopsy" as "endometrial-by-up" and gets
"surface epithelium" and "complex atypical hyperplasia" nearly right. Mishearings of the right words
are then put in by hand ("abithelian", "hyper pleasure") over the real audio and word timings: the
audio says the term, the text says something far from it.
"""

from __future__ import annotations

import pytest

from tests.speech import REAL_ASR, misheard, norms, spoken_and_heard

pytestmark = REAL_ASR

LINES = (
    "In the testis, the seminiferous tubules show maturation arrest.",
    "This gastric biopsy shows Helicobacter organisms on the surface epithelium.",
    "The endometrial biopsy shows complex atypical hyperplasia.",
    "This colon shows crypt abscesses and crypt distortion, in keeping with ulcerative colitis.",
)


@pytest.fixture(scope="module")
def heard(tmp_path_factory):
    """(model, recognised transcript, vocabulary, audio)."""
    return spoken_and_heard(LINES, tmp_path_factory.mktemp("tiers"), 5.5, 6.2)[1:]


def test_a_far_candidate_the_audio_prefers_is_made_and_only_with_the_far_tier(heard):
    # "abithelian" is 0.6 like "epithelium" by spelling and Metaphone (below the looser bars) and
    # 0.7 or more by espeak-ng phonemes (a far-tier candidate); the audio prefers the term
    from quilt_llava.narratives.acoustic_check import AcousticCheck, AcousticConfig, correct_heard

    model, transcript, vocab, audio = heard
    wrong = misheard(transcript, "epithelium", "abithelian")
    fixed, edits, _ = correct_heard(wrong, vocab, audio, AcousticCheck(model, vocab))
    assert "epithelium" in norms(fixed), fixed.text()
    (edit,) = [e for e in edits if e.after == "epithelium"]
    scores = edit.detail["acoustic"]
    assert scores["tier"] == "far" and scores["delta_per_token"] >= 0 and scores["mean_gain"] >= 0
    no_far = AcousticCheck(model, vocab, AcousticConfig(far=None, phoneme_min=None, alternatives=None))
    without, _, _ = correct_heard(wrong, vocab, audio, no_far)
    assert "abithelian" in norms(without), without.text()


def test_the_audio_chooses_between_overlapping_candidates(heard):
    # "hyper pleasure": the corrector's own bars make "hyperplasia sure" (a term and a moved word
    # boundary); the far tier (espeak-ng phonemes) offers "hyperplasia", which the audio prefers
    from quilt_llava.narratives.acoustic_check import AcousticCheck, AcousticConfig, correct_heard

    model, transcript, vocab, audio = heard
    wrong = misheard(transcript, "hyperplasia", "hyper pleasure")
    fixed, edits, _ = correct_heard(wrong, vocab, audio, AcousticCheck(model, vocab))
    (edit,) = [e for e in edits if "hyperplasia" in e.after]
    assert edit.after == "hyperplasia" and edit.detail["acoustic"]["tier"] == "far", fixed.text()
    assert "sure" not in norms(fixed)
    own_first = AcousticCheck(model, vocab, AcousticConfig(audio_chooses=False))
    _, edits, _ = correct_heard(wrong, vocab, audio, own_first)
    assert [e.after for e in edits if "hyperplasia" in e.after] == ["hyperplasia sure"]


def test_right_words_stay_when_the_far_tier_looks_at_them(heard):
    # every far candidate over the right words is refused: by the summed score, or, for one that
    # drops tokens (which raises a sum), by the mean per token
    from quilt_llava.narratives.acoustic_check import AcousticCheck, correct_heard

    model, transcript, vocab, audio = heard
    fixed, _edits, refused = correct_heard(transcript, vocab, audio, AcousticCheck(model, vocab))
    for right in ("endometrial", "ulcerative", "colitis", "surface", "organisms", "arrest", "hyperplasia"):
        assert right in norms(transcript) and right in norms(fixed), fixed.text()
    far = [r for r in refused if r["detail"]["acoustic"].get("tier") == "far"]
    assert far, "the far tier looked at nothing"
    for r in far:
        scores = r["detail"]["acoustic"]
        assert min(scores["delta_per_token"], scores["mean_gain"]) < 0
        assert "for the far bars" in r["reason"]


@pytest.mark.parametrize(
    ("tier", "per_token", "mean", "accepted"),
    [
        ("far", 0.2, 0.1, True),
        ("far", 0.3, -0.2, False),  # fewer tokens raise a sum: the mean per token says no
        ("far", -0.1, 0.5, False),
        ("loose", -0.9, -1.5, True),  # the looser bars: the summed score against the margin, as calibrated
        ("loose", -1.1, 0.0, False),
        ("own", -5.0, -5.0, True),  # the corrector's own edits stand (no veto)
    ],
)
def test_each_tier_has_its_bar(tier, per_token, mean, accepted):
    from quilt_llava.narratives.acoustic_check import AcousticConfig, Verdict
    from quilt_llava.narratives.correct import Edit

    edit = Edit(0, 0, 1, "x", "y", "vocabulary")
    v = Verdict(
        edit,
        False,
        heard=-10.0,
        edited=-10.0 + per_token * 4,
        tokens=4,
        tier=tier,
        heard_mean=-2.0,
        edited_mean=-2.0 + mean,
    )
    assert v.judged(AcousticConfig()).accepted is accepted
    assert v.strict is (tier == "own")


def test_the_far_text_bars_are_checked_like_the_loose_ones():
    from quilt_llava.errors import ConfigError
    from quilt_llava.narratives.acoustic_check import FAR_BARS, AcousticConfig

    AcousticConfig(far=FAR_BARS).validate()
    with pytest.raises(ConfigError) as err:
        AcousticConfig(far={"min_scor": 0.5}, loose={"min_score": 2.0}).validate()
    assert "far: 'min_scor' is not a CorrectionConfig field" in str(err.value) and "loose: min_score" in str(err.value)
