"""Speaking a transcript with espeak-ng and muxing the speech into a video (PyAV).

The demo, the speech benchmark and the tests use this to get real speech with known
content and known timing: each utterance is spoken by the ``espeak-ng`` program (a
Debian package; no Python binding needed) and placed at its start time; when a spoken
line is longer than its interval, espeak-ng's rate is raised for that line (up to
``max_rate``) so it fits. :func:`speak_words` speaks word by word with known gaps, which
gives every word's true interval.
"""

from __future__ import annotations

import io
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quilt_llava.errors import InputError, QuiltError
from quilt_llava.narratives.phonemes import PROGRAM as ESPEAK
from quilt_llava.narratives.phonemes import espeak_path


class VoiceUnavailable(QuiltError):
    """espeak-ng is not installed."""


@dataclass(frozen=True)
class VoiceConfig:
    voice: str = "en-us"
    rate: int = 160  # words per minute, espeak-ng's -s
    max_rate: int = 230  # a line that does not fit its interval is spoken at most this fast
    amplitude: int = 120  # espeak-ng's -a (0-200)


def synthesize(text: str, config: VoiceConfig | None = None, rate: int | None = None) -> tuple[Any, int]:
    """``text`` spoken by espeak-ng: (mono float32 samples, sample rate)."""
    import numpy as np

    config = config or VoiceConfig()
    exe = espeak_path()
    if exe is None:
        raise VoiceUnavailable(f"{ESPEAK} is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    cmd = [exe, "-v", config.voice, "-s", str(rate or config.rate), "-a", str(config.amplitude), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise InputError(
            f"{ESPEAK} -v {config.voice}", f"speech synthesis failed: {proc.stderr.decode(errors='replace')[-300:]}"
        )
    with wave.open(io.BytesIO(proc.stdout)) as wav:
        sr, width = wav.getframerate(), wav.getsampwidth()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise InputError(ESPEAK, f"unexpected sample width {width}")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return _trim(samples, sr), sr


def _trim(samples: Any, sr: int, threshold: float = 0.01) -> Any:
    """Drop the leading and trailing silence espeak-ng adds."""
    import numpy as np

    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return samples[:0]
    pad = int(0.01 * sr)
    return samples[max(0, loud[0] - pad) : loud[-1] + pad]


def speak_utterances(
    utterances: list[tuple[float, float, str]], duration_s: float, config: VoiceConfig | None = None
) -> tuple[Any, int, list[tuple[float, float, str]]]:
    """Speak each ``(start, end, text)`` from its start; returns (audio, rate, spoken intervals).

    A line longer than its interval is re-spoken faster (up to ``max_rate``); what still
    does not fit runs on past ``end`` (the returned intervals say where each line really is).
    """
    import numpy as np

    config = config or VoiceConfig()
    pieces = []
    sr = 22050
    for start, end, text in utterances:
        audio, sr = synthesize(text, config)
        window = max(end - start, 0.1)
        if len(audio) / sr > window and config.max_rate > config.rate:
            rate = min(config.max_rate, int(config.rate * (len(audio) / sr) / window) + 1)
            audio, sr = synthesize(text, config, rate=rate)
        pieces.append((start, audio, text))
    total = max([int(duration_s * sr)] + [int(s * sr) + len(a) for s, a, _ in pieces])
    track = np.zeros(total, np.float32)
    spoken = []
    for start, audio, text in pieces:
        i = int(start * sr)
        track[i : i + len(audio)] += audio
        spoken.append((start, start + len(audio) / sr, text))
    return np.clip(track, -1.0, 1.0), sr, spoken


def speak_words(
    words: list[str], gap_s: float = 0.25, lead_s: float = 0.3, config: VoiceConfig | None = None
) -> tuple[Any, int, list[tuple[float, float, str]]]:
    """Speak ``words`` one at a time with ``gap_s`` of silence between: (audio, rate, word intervals)."""
    import numpy as np

    sr = 22050
    parts = [np.zeros(int(lead_s * 22050), np.float32)]
    intervals = []
    t = lead_s
    for word in words:
        audio, sr = synthesize(word, config)
        intervals.append((t, t + len(audio) / sr, word))
        parts += [audio, np.zeros(int(gap_s * sr), np.float32)]
        t += len(audio) / sr + gap_s
    return np.concatenate(parts), sr, intervals


def write_wav(path: str | Path, audio: Any, sr: int) -> Path:
    import numpy as np

    path = Path(path)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sr)
        wav.writeframes(pcm.tobytes())
    return path


def mux_audio(video: str | Path, audio: Any, sr: int, out: str | Path, bitrate: int = 64_000) -> Path:
    """Copy ``video``'s video stream into ``out`` and add ``audio`` as an AAC track (atomic)."""
    import av
    import numpy as np

    video, out = Path(video), Path(out)
    tmp = out.with_name(out.name + ".tmp" + out.suffix)
    with av.open(str(video)) as src, av.open(str(tmp), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        aout = dst.add_stream("aac", rate=sr, layout="mono")
        aout.bit_rate = bitrate
        for packet in src.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            dst.mux(packet)
        pcm = np.asarray(audio, np.float32).reshape(1, -1)
        step = 1024 * 16
        for i in range(0, pcm.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, i : i + step]), format="fltp", layout="mono")
            frame.sample_rate = sr
            frame.pts = i
            for packet in aout.encode(frame):
                dst.mux(packet)
        for packet in aout.encode(None):
            dst.mux(packet)
    tmp.replace(out)
    return out
