"""The recogniser's other hypotheses as candidates of the acoustic check, with the real tiny English
Whisper model on espeak-ng speech (narratives.asr_alternatives, ninth pass).

Three sentences are spoken by espeak-ng and recognised by tiny.en, which (espeak-ng 1.51,
faster-whisper 1.2) hears "carcinoma in situ" in the second right; "carcinoma" in the first pass is
then replaced by hand with an everyday word far from the term by spelling, sound and phonemes
("garden"), over the real audio and word timings: only decoding the audio again can bring the term
back.
"""

from __future__ import annotations

import pytest

from tests.speech import REAL_ASR, misheard, norms, spoken_and_heard

pytestmark = REAL_ASR

LINES = (
    "The esophageal biopsy shows eosinophils within the squamous epithelium.",
    "Here the urothelium is thickened and shows carcinoma in situ.",
    "The stroma stays blue and the cells are negative.",
)


@pytest.fixture(scope="module")
def heard(tmp_path_factory):
    """(model, recognised transcript, vocabulary, audio)."""
    return spoken_and_heard(LINES, tmp_path_factory.mktemp("alternatives"), 5.0, 5.7)[1:]


def test_a_term_only_the_audio_decoded_again_brings_back(heard):
    from quilt_llava.narratives.acoustic_check import AcousticCheck, AcousticConfig, correct_heard
    from quilt_llava.narratives.asr_alternatives import AlternativesConfig

    model, transcript, vocab, audio = heard
    wrong = misheard(transcript, "carcinoma", "garden")
    off = AcousticCheck(model, vocab, AcousticConfig(alternatives=None))
    without, _, _ = correct_heard(wrong, vocab, audio, off)
    assert "carcinoma" not in norms(without) and off.decodes == 0, without.text()
    check = AcousticCheck(model, vocab, AcousticConfig(alternatives=AlternativesConfig()))
    fixed, edits, _ = correct_heard(wrong, vocab, audio, check)
    assert "carcinoma" in norms(fixed), fixed.text()
    (edit,) = [e for e in edits if "carcinoma" in e.after.lower()]
    assert edit.before == "garden"
    scores = edit.detail["acoustic"]
    assert "alternative" in edit.detail and scores["tier"] == "far"
    assert scores["delta_per_token"] >= 0 and scores["mean_gain"] >= 0
    assert check.decodes >= 1 and check.alternative_seconds > 0


def test_right_words_stay_when_the_audio_is_decoded_again(heard):
    from quilt_llava.narratives.acoustic_check import AcousticCheck, AcousticConfig, correct_heard
    from quilt_llava.narratives.asr_alternatives import AlternativesConfig
    from quilt_llava.narratives.speech_metrics import normalise

    model, transcript, vocab, audio = heard
    check = AcousticCheck(model, vocab, AcousticConfig(alternatives=AlternativesConfig(unsure_min_score=0.01)))
    fixed, edits, _ = correct_heard(transcript, vocab, audio, check)
    assert check.decodes == len(transcript.utterances)  # every utterance was decoded again
    script = set(normalise(" ".join(LINES)))
    right_before = [w for w in norms(transcript) if w in script]
    after = norms(fixed)
    assert all(w in after for w in right_before), (transcript.text(), fixed.text())
    assert all(after.count(w) >= right_before.count(w) for w in right_before), [e.before for e in edits]
