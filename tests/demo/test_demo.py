"""The end-to-end demo through its CLI, with the small budget: every artifact, learning, report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quilt_llava.files import read_jsonl
from tests.browser import CHROMIUM_ARGS, chromium_executable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "QUILT_LLAVA_LLM_BASE_URL": ""}
    cmd = [sys.executable, "-m", "quilt_llava", "demo", "--out", str(out), "--budget", "small", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    return out, proc


def test_demo_learns_and_writes_every_artifact(demo_run):
    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print("demo:", result)
    # The tiny model learned: far above the majority answer on held-out segments.
    assert result["beats_baseline"] is True
    assert result["closed_accuracy"] >= result["majority_baseline_closed_accuracy"] + 20

    assert (out / "sample" / "ihc_tour.mp4").stat().st_size > 10_000
    # The narration was heard: voiced into the video, recognised, corrected, and scored.
    speech = result["speech"]
    html = (out / "report.html").read_text()
    if shutil.which("espeak-ng") is None:  # the fallback: said so, and the script was used
        assert speech["used"] == "script" and "espeak-ng" in speech["reason"]
        assert "No speech this run" in html
    else:
        assert speech["used"] == "vocabulary", speech
        raw, fixed = speech["scores"]["raw"], speech["scores"]["vocabulary"]
        assert fixed["term_recall"] > raw["term_recall"] and fixed["wer"] < raw["wer"]
        assert speech["right_words_changed"] <= 0.01 * speech["right_words"]
        assert speech["realtime_factor"] < 1.0
        assert "id='speech'" in html and "class='err'" in html
        assert "term mentions nobody said" in html and fixed["terms_unspoken"] >= 0
    transcript = json.loads((out / "sample" / "ihc_tour.transcript.json").read_text())
    assert transcript["segments"][0]["words"], "the sample transcript has word timings"

    rows = read_jsonl(out / "narratives" / "narratives.jsonl")
    assert len(rows) >= 6
    for row in rows:
        assert (out / "narratives" / row["image"]).exists()
        assert row["trace"] and row["grounded_caption"]
    assert sum(len(r["clusters"]) for r in rows) >= len(rows)  # grounded boxes came out of the traces

    summary = json.loads((out / "instruct" / "summary.json").read_text())
    assert summary["train_records"] > 100 and summary["eval_questions"] > 20
    train_ids = {(r["video_id"], r["segment_id"]) for r in read_jsonl(out / "instruct" / "train.jsonl")}
    align_ids = {(r["video_id"], r["segment_id"]) for r in read_jsonl(out / "instruct" / "align.jsonl")}
    eval_ids = {(q["video_id"], q["segment_id"]) for q in read_jsonl(out / "instruct" / "eval_questions.jsonl")}
    assert train_ids and eval_ids and not (train_ids | align_ids) & eval_ids  # held-out views never trained on

    for stage in ("stage1", "stage2"):
        model_dir = out / "models" / stage
        assert (model_dir / "config.json").exists() and (model_dir / "log_history.jsonl").exists()
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["model"]["n_closed"] > 0 and metrics["model"]["closed_accuracy_ci"]
    assert len(read_jsonl(out / "eval" / "predictions.jsonl")) == metrics["model"]["n"]
    # The baseline is scored like the model, on every metric.
    assert metrics["majority_baseline"]["n"] == metrics["model"]["n"]
    assert metrics["majority_baseline"]["open_recall"] is not None


def test_report_commands_reproduce_the_demo_scores(demo_run):
    """The report's evaluation command, run through the CLI, gives the demo's numbers."""
    from typer.testing import CliRunner

    from quilt_llava.cli import make_app

    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    html = (out / "report.html").read_text()
    assert "quilt-llava instruct region-qa" in html and "quilt-llava train --config tiny_stage2.yaml" in html
    metrics = json.loads((out / "eval" / "metrics.json").read_text())["model"]
    result = CliRunner().invoke(
        make_app(),
        [
            "eval",
            "vqa",
            "--questions",
            str(out / "instruct" / "eval_questions.jsonl"),
            "--predictions",
            str(out / "eval" / "predictions.jsonl"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout.strip().splitlines()[-1])
    assert again["closed_accuracy"] == metrics["closed_accuracy"]
    assert again["open_recall"] == metrics["open_recall"]


def test_fresh_refuses_to_delete_a_folder_that_is_not_a_demo_output(tmp_path):
    from quilt_llava.demo.run import prepare_out_dir
    from quilt_llava.errors import ConfigError

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="refusing to delete"):
        prepare_out_dir(precious, fresh=True)
    assert (precious / "thesis.tex").exists()
    demo = tmp_path / "demo"
    (demo / ".steps").mkdir(parents=True)
    (demo / "old.txt").write_text("x")
    prepare_out_dir(demo, fresh=True)
    assert demo.is_dir() and not any(demo.iterdir())


def test_report_links_resolve_and_renders_in_chromium(demo_run, artifacts_dir):
    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = out / "report.html"
    html = report.read_text()
    for needle in (
        "Held-out evaluation",
        "Localized narratives",
        "Training loss",
        "majority baseline",
        "quilt-llava narratives extract",
    ):
        assert needle in html
    import re

    for src in re.findall(r"(?:src|href)='([^']+)'", html):
        assert (out / src).exists(), f"report links a missing file: {src}"
    assert len(list((out / "plots").glob("*.png"))) == 2

    from playwright.sync_api import sync_playwright

    exe = chromium_executable()
    shot = Path(artifacts_dir) / "demo_report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            assert page.locator("h1").inner_text().startswith("quilt-llava")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
            )
            assert broken == 0
            data = page.evaluate("JSON.parse(document.getElementById('report-data').textContent)")
            assert data["metrics"] and "name" in data["metrics"][0]
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000


def test_llm_generators_run_on_training_views_only(demo_run, tmp_path, monkeypatch):
    """With an endpoint configured, the demo's LLM step produces conversation and detail records."""
    from quilt_llava.console import Output
    from quilt_llava.demo.run import DemoConfig, _run_llm_generators
    from tests.fake_openai import FakeOpenAIServer
    from tests.instruct.conftest import good_reply

    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_jsonl(out / "narratives" / "narratives.jsonl")[:3]
    monkeypatch.setenv("QL_DEMO_TEST_KEY", "sk-demo-test")
    with FakeOpenAIServer(responder=good_reply) as srv:
        cfg = DemoConfig(llm_base_url=srv.base_url, llm_model="test-model", llm_api_key_env="QL_DEMO_TEST_KEY")
        records, summaries = _run_llm_generators(cfg, rows, tmp_path, Output(quiet=True))
    assert summaries["conversation"]["records"] == 3 and summaries["detail"]["records"] == 3
    assert summaries["conversation"]["rejected"] == summaries["conversation"]["failed"] == 0
    assert {r["image"] for r in records} == {r["image"] for r in rows}
    assert all(r["conversations"][0]["value"].count("<image>") == 1 for r in records)
