"""The acoustic check of term corrections, with the real tiny English Whisper model on espeak-ng speech.

The three sentences are spoken by espeak-ng and recognised by tiny.en, which (espeak-ng 1.51,
faster-whisper 1.2) hears "hyaline cartilage" as "high-line car village", "stroma" as
"trauma" and "breast" as "rest", and gets "stays" and "fibrocystic" right.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import ConfigError
from tests.speech import REAL_ASR, spoken_and_heard

pytestmark = REAL_ASR

LINES = (
    "The nodule is made of hyaline cartilage with scattered chondrocytes.",
    "The stroma stays blue and negative.",
    "This breast shows fibrocystic change with small cysts.",
)


@pytest.fixture(scope="module")
def heard(tmp_path_factory):
    """(wav, model, recognised transcript, vocabulary, audio)."""
    return spoken_and_heard(LINES, tmp_path_factory.mktemp("acoustic"), 3.5, 4.2)


def words(transcript) -> list[str]:
    from quilt_llava.narratives.vocabulary import norm_word

    return [norm_word(w.text) for u in transcript.utterances for w in u.words]


def test_a_misrecognised_term_the_text_alone_misses_is_corrected_when_heard(heard):
    from quilt_llava.narratives.acoustic_check import AcousticCheck, correct_heard
    from quilt_llava.narratives.correct import correct_with_vocabulary

    _wav, model, transcript, vocab, audio = heard
    assert "village" in words(transcript), transcript.text()  # the known misrecognition
    text_only, _ = correct_with_vocabulary(transcript, vocab)
    assert "cartilage" not in words(text_only)
    check = AcousticCheck(model, vocab)
    fixed, edits, _refused = correct_heard(transcript, vocab, audio, check)
    assert "cartilage" in words(fixed), fixed.text()
    (edit,) = [e for e in edits if e.after == "cartilage"]
    scores = edit.detail["acoustic"]
    assert scores["checked"] and not scores["strict"] and scores["accepted"]
    assert scores["delta_per_token"] >= -check.config.margin
    assert scores["delta"] == pytest.approx(scores["edited_logprob"] - scores["heard_logprob"], abs=1e-3)
    assert check.windows >= 1 and check.texts >= 2 and check.seconds > 0


def test_right_words_the_looser_bars_would_change_are_kept(heard):
    from dataclasses import replace

    from quilt_llava.narratives.acoustic_check import AcousticCheck, AcousticConfig, correct_heard
    from quilt_llava.narratives.correct import CorrectionConfig, VocabularyCorrector

    _wav, model, transcript, vocab, audio = heard
    assert "stays" in words(transcript), transcript.text()
    loose = VocabularyCorrector(vocab, replace(CorrectionConfig(), **AcousticConfig().loose)).edits(transcript)
    assert any(e.before == "stays" and e.after == "stains" for e in loose)  # what the text alone would do
    fixed, _edits, refused = correct_heard(transcript, vocab, audio, AcousticCheck(model, vocab))
    assert "stays" in words(fixed) and "stains" not in words(fixed)
    (row,) = [r for r in refused if r["before"] == "stays"]
    assert row["rejected"] and "does not support it" in row["reason"]
    assert row["detail"]["acoustic"]["delta_per_token"] < -AcousticConfig().margin
    assert row["start"] < row["end"]  # refused rows carry the words' times like changes do


def test_a_veto_keeps_a_right_word_the_corrector_itself_would_change(heard):
    from quilt_llava.narratives.acoustic_check import AcousticCheck, AcousticConfig, correct_heard
    from quilt_llava.narratives.correct import correct_with_vocabulary

    _wav, model, transcript, vocab, audio = heard
    assert "fibrocystic" in words(transcript), transcript.text()
    text_only, _ = correct_with_vocabulary(transcript, vocab)
    assert "fibrocyte" in words(text_only)  # the text corrector's known damage
    fixed, _edits, _refused = correct_heard(transcript, vocab, audio, AcousticCheck(model, vocab))
    assert "fibrocyte" in words(fixed)  # no veto by default: the corrector's own edits stand
    vetoed, _edits, refused = correct_heard(
        transcript, vocab, audio, AcousticCheck(model, vocab, AcousticConfig(veto=1.5))
    )
    assert "fibrocystic" in words(vetoed)
    assert any(r["before"] == "fibrocystic" and r["detail"]["acoustic"]["strict"] for r in refused)


def test_correct_cli_records_scores_and_says_when_it_has_no_audio(heard, tmp_path):
    _wav, _model, transcript, _vocab, _audio = heard
    wav = heard[0]
    raw = tmp_path / "talk.asr.json"
    raw.write_text(json.dumps(transcript.to_whisper_json()))
    out = tmp_path / "talk.json"
    args = ["narratives", "correct", str(raw), "--out", str(out)]
    res = CliRunner().invoke(make_app(), [*args, "--audio", str(wav), "--asr-model", "tiny.en"])
    assert res.exit_code == 0, res.output
    assert "acoustic check:" in res.output
    rows = [json.loads(line) for line in (tmp_path / "talk.changes.jsonl").read_text().splitlines()]
    assert rows and all("acoustic" in r["detail"] for r in rows)
    assert any(r.get("rejected") for r in rows) and any(not r.get("rejected") for r in rows)
    heard = json.loads(out.read_text())["correction"]["acoustic_check"]
    assert heard["clips"] >= 1 and heard["refused"] >= 1 and heard["config"]["margin"] == 1.0
    assert "cartilage" in out.read_text()

    res = CliRunner().invoke(make_app(), args)  # a bare transcript: text only, and it says why
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())  # the console wraps long lines
    assert "text-only term correction: no recording (--audio) and no recogniser (--asr-model)" in said
    rows = [json.loads(line) for line in (tmp_path / "talk.changes.jsonl").read_text().splitlines()]
    assert rows and not any("acoustic" in r["detail"] for r in rows)
    assert json.loads(out.read_text())["correction"]["acoustic_check"] is None

    res = CliRunner().invoke(make_app(), [*args, "--audio", str(wav), "--asr-model", "tiny.en", "--no-acoustic-check"])
    assert res.exit_code == 0 and "text-only" not in res.output and "acoustic check:" not in res.output


def test_an_utterance_without_word_timings_is_not_checked(heard):
    from quilt_llava.narratives.acoustic_check import AcousticCheck, correct_heard
    from quilt_llava.narratives.correct import correct_with_vocabulary
    from quilt_llava.narratives.transcript import Transcript, Utterance

    _wav, model, transcript, vocab, audio = heard
    bare = Transcript([Utterance(u.start, u.end, u.text, ()) for u in transcript.utterances], "srt")
    fixed, edits, refused = correct_heard(bare, vocab, audio, AcousticCheck(model, vocab))
    assert fixed.text() == correct_with_vocabulary(bare, vocab)[0].text()  # the corrector's own edits stand
    assert all(e.detail["acoustic"] == {"checked": False, "note": "no word timings: not checked"} for e in edits)
    assert all("no word timings" in r["reason"] for r in refused)  # looser finds need the audio


def test_long_utterances_are_scored_in_pieces_and_every_spelling_is_tried(heard):
    from quilt_llava.narratives.acoustic_check import AcousticCheck, AcousticConfig
    from quilt_llava.narratives.correct import Edit
    from quilt_llava.narratives.transcript import Utterance, Word

    _wav, model, _transcript, vocab, _audio = heard
    check = AcousticCheck(model, vocab, AcousticConfig(max_clip_s=5.0))
    long = Utterance(0.0, 20.0, "", tuple(Word(i * 1.0, i * 1.0 + 0.8, f"w{i}") for i in range(20)))
    a, b = check._piece(long, Edit(0, 10, 12, "w10 w11", "x", "vocabulary"))
    assert a <= 10 and b >= 12 and long.words[b - 1].end - long.words[a].start <= 5.0
    assert (a, b) == (8, 13)  # grown a word at a time on both sides while it fits
    assert check._piece(long, Edit(0, 0, 1, "w0", "x", "vocabulary"))[0] == 0
    short = Utterance(0.0, 4.0, "", long.words[:4])
    assert check._piece(short, Edit(0, 1, 2, "w1", "x", "vocabulary")) == (0, 4)
    assert set(check._spelled("tumour glands")) == {"tumour glands", "tumor glands"}
    assert check._spelled("stroma") == ["stroma"]


def test_past_the_end_timings_are_not_checked(heard):
    from quilt_llava.narratives.acoustic_check import AcousticCheck
    from quilt_llava.narratives.correct import Edit
    from quilt_llava.narratives.transcript import Transcript, Utterance, Word

    _wav, model, _transcript, vocab, audio = heard
    end = len(audio) / 16_000
    late = Transcript(
        [
            Utterance(
                end + 5,
                end + 6,
                "a tromal core",
                tuple(Word(end + 5 + i * 0.3, end + 5.25 + i * 0.3, w) for i, w in enumerate(["a", "tromal", "core"])),
            )
        ],
        "late",
    )
    (v,) = AcousticCheck(model, vocab).judge(audio, late, [Edit(0, 1, 2, "tromal", "stromal", "vocabulary")])
    assert v.accepted and v.to_dict() == {"checked": False, "note": "no audio at its words: not checked"}


def test_config_errors_are_listed_together():
    from quilt_llava.narratives.acoustic_check import AcousticConfig

    with pytest.raises(ConfigError) as err:
        AcousticConfig(margin=-1, veto=-2, max_clip_s=40, batch=0, loose={"min_scor": 0.5}).validate()
    assert len(err.value.problems) == 5 and "'min_scor' is not a CorrectionConfig field" in str(err.value)
    with pytest.raises(ConfigError, match="loose: min_score"):
        AcousticConfig(loose={"min_score": 2.0}).validate()


def test_without_espeak_the_check_proposes_no_phoneme_candidates(heard, monkeypatch, caplog):
    import logging

    import quilt_llava.narratives.phonemes as phonemes
    from quilt_llava.narratives.acoustic_check import PHONEME_BAR, AcousticCheck, AcousticConfig, correct_heard

    _wav, model, transcript, vocab, audio = heard
    monkeypatch.setattr(phonemes, "PROGRAM", "espeak-ng-that-is-not-here")
    with caplog.at_level(logging.INFO, logger="quilt_llava.narratives.acoustic_check"):
        check = AcousticCheck(model, vocab, AcousticConfig(phoneme_min=PHONEME_BAR))
    assert check.phonemes is None and "espeak-ng not found" in caplog.text
    fixed, edits, _refused = correct_heard(transcript, vocab, audio, check)
    off = AcousticCheck(model, vocab, AcousticConfig(phoneme_min=None))
    assert fixed.text() == correct_heard(transcript, vocab, audio, off)[0].text()
    assert not any("phonemes" in e.detail for e in edits) and check.phoneme_seconds == 0


def test_a_failing_espeak_costs_the_phoneme_candidates_only(heard, monkeypatch, caplog):
    import quilt_llava.narratives.phonemes as phonemes
    from quilt_llava.narratives.acoustic_check import PHONEME_BAR, AcousticCheck, AcousticConfig, correct_heard

    _wav, model, transcript, vocab, audio = heard
    check = AcousticCheck(model, vocab, AcousticConfig(phoneme_min=PHONEME_BAR))
    if check.phonemes is None:
        pytest.skip("espeak-ng is not installed")
    monkeypatch.setattr(phonemes, "PROGRAM", "espeak-ng-that-is-not-here")
    fixed, _edits, _refused = correct_heard(transcript, vocab, audio, check)
    off = AcousticCheck(model, vocab, AcousticConfig(phoneme_min=None))
    assert fixed.text() == correct_heard(transcript, vocab, audio, off)[0].text()
    assert "no phoneme candidates for" in caplog.text and "espeak-ng-that-is-not-here failed" in caplog.text


def test_phoneme_candidates_are_on_by_default_and_off_with_the_option(monkeypatch, tmp_path):
    # judged at the far tier's bar since the eighth pass (docs/BENCHMARKS_HISTORY.md, Speech): on unless
    # turned off (--no-acoustic-phonemes -> CorrectOptions.phonemes)
    import quilt_llava.narratives.acoustic_check as acoustic_check
    from quilt_llava.narratives.speech import CorrectOptions
    from tests.speech import acoustic_configs

    assert acoustic_check.AcousticConfig().phoneme_min == acoustic_check.PHONEME_BAR
    assert CorrectOptions(transcript=tmp_path / "t.json", out=tmp_path / "o.json").phonemes
    configs = acoustic_configs(monkeypatch, tmp_path, "phonemes", (False, True))
    assert [c.phoneme_min for c in configs] == [None, acoustic_check.PHONEME_BAR]
