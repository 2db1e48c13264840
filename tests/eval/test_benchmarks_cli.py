"""Benchmark declarations, adapters, the run/table pipeline and every eval command through the CLI."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import ConfigError, InputError
from quilt_llava.eval.benchmarks import builtin_benchmarks, load_benchmark, parse_benchmark
from quilt_llava.eval.questions import load_questions
from quilt_llava.files import read_json, read_jsonl


def test_every_shipped_declaration_loads():
    names = builtin_benchmarks()
    assert names == ["pathvqa", "pmc_vqa_path", "quilt_vqa", "quilt_vqa_red", "slake", "vqa_rad"]
    for name in names:
        bench = load_benchmark(name)
        assert bench.name == name and bench.questions and bench.source.startswith("http")
        bench.prompt_style()
    assert load_benchmark("quilt-vqa-red").prompt["suffix"]
    assert "yes or no" in load_benchmark("pathvqa").prompt["closed_suffix"]


def test_declaration_errors_listed_together():
    with pytest.raises(ConfigError) as info:
        parse_benchmark({"format": "nope", "headline": ["bogus"], "extra": 1}, "mine.yaml")
    msg = str(info.value)
    for part in ("'name' is required", "'questions' is required", "format 'nope'", "headline", "unknown keys"):
        assert part in msg
    with pytest.raises(ConfigError, match="unknown benchmark 'foo'"):
        load_benchmark("foo")


def test_adapters(tmp_path):
    slake = tmp_path / "slake.json"
    slake.write_text(
        json.dumps(
            [
                {
                    "qid": 1,
                    "img_name": "xmlab1/source.jpg",
                    "question": "Is the lung healthy?",
                    "answer": "No",
                    "answer_type": "CLOSED",
                    "q_lang": "en",
                },
                {
                    "qid": 2,
                    "img_name": "xmlab1/source.jpg",
                    "question": "肺健康吗?",
                    "answer": "否",
                    "answer_type": "CLOSED",
                    "q_lang": "zh",
                },
                {
                    "qid": 3,
                    "img_name": "xmlab2/source.jpg",
                    "question": "Which organ?",
                    "answer": "Lung",
                    "answer_type": "OPEN",
                    "q_lang": "en",
                },
            ]
        )
    )
    qs = load_questions(slake, fmt="slake", where={"q_lang": "en"})
    assert [(q.question_id, q.image, q.answer_type) for q in qs] == [
        ("1", "xmlab1/source.jpg", "closed"),
        ("3", "xmlab2/source.jpg", "open"),
    ]
    rad = tmp_path / "rad.json"
    rad.write_text(
        json.dumps(
            [
                {
                    "qid": 10,
                    "image_name": "a.jpg",
                    "question": "Size?",
                    "answer": 3,
                    "answer_type": "OPEN ",
                    "phrase_type": "test_freeform",
                },
                {
                    "qid": 11,
                    "image_name": "b.jpg",
                    "question": "Mass?",
                    "answer": "yes",
                    "answer_type": "CLOSED",
                    "phrase_type": "freeform",
                },
            ]
        )
    )
    (q,) = load_questions(rad, fmt="vqa_rad", where={"phrase_type": ["test_freeform", "test_para"]})
    assert (q.question_id, q.answer, q.answer_type) == ("10", "3", "open")
    pmc = tmp_path / "pmc.csv"
    with pmc.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]
        )
        w.writerow(
            ["f1.jpg", "What is shown?", "Granuloma", "A:Fibrosis", " B:Granuloma", "C:Edema", "D:Necrosis", "B"]
        )
    (q,) = load_questions(pmc, fmt="pmc_vqa")
    assert q.choices == ["Fibrosis", "Granuloma", "Edema", "Necrosis"] and q.answer == "B" and q.image == "f1.jpg"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": 1, "question": "x", "answer": "y", "answer_type": "MAYBE"}) + "\n")
    with pytest.raises(InputError, match=r"row 1.*answer_type 'MAYBE'"):
        load_questions(bad)


def _invoke(args):
    result = CliRunner().invoke(make_app(), args)
    return result


def test_cli_generate_vqa_run_table(tiny_model_dir, vqa_set, tmp_path):
    questions, images = vqa_set
    preds = tmp_path / "preds.jsonl"
    r = _invoke(
        [
            "eval",
            "generate",
            "--model",
            str(tiny_model_dir),
            "--questions",
            str(questions),
            "--images",
            str(images),
            "--out",
            str(preds),
            "--max-new-tokens",
            "3",
            "--batch-size",
            "3",
            "--json",
            "-q",
        ]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["written"] == 5
    r = _invoke(
        [
            "eval",
            "vqa",
            "--questions",
            str(questions),
            "--predictions",
            str(preds),
            "--json",
            "--resamples",
            "50",
            "--details",
            str(tmp_path / "d.jsonl"),
        ]
    )
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    assert scores["n_open"] == 2 and scores["n_closed"] == 3 and 0 <= scores["closed_accuracy"] <= 100
    assert len(read_jsonl(tmp_path / "d.jsonl")) == 5
    r = _invoke(["eval", "vqa", "--questions", str(questions), "--predictions", str(preds)])
    assert r.exit_code == 0 and "closed accuracy" in r.stdout

    # A user's own declaration, with paths relative to the file.
    decl = tmp_path / "mine.yaml"
    decl.write_text(
        yaml.safe_dump(
            {
                "name": "mine",
                "questions": "questions.jsonl",
                "images": "images",
                "prompt": {"closed_suffix": "Yes or no?"},
                "max_new_tokens": 3,
            }
        )
    )
    out_dir = tmp_path / "results"
    r = _invoke(
        [
            "eval",
            "run",
            str(decl),
            "--model",
            str(tiny_model_dir),
            "--out",
            str(out_dir),
            "--json",
            "-q",
            "--resamples",
            "50",
        ]
    )
    assert r.exit_code == 0, r.output
    res = read_json(out_dir / "mine" / "tiny-eval" / "results.json")
    assert res["benchmark"] == "mine" and res["metrics"]["n"] == 5 and not res["partial"]
    prompts = {p["question_id"]: p["prompt"] for p in read_jsonl(out_dir / "mine" / "tiny-eval" / "predictions.jsonl")}
    assert "Benign? Yes or no?" in prompts["c3"] and "Yes or no?" not in prompts["o1"]
    # A shipped declaration pointed at local copies, under another model name.
    r = _invoke(
        [
            "eval",
            "run",
            "quilt_vqa",
            "--model",
            str(tiny_model_dir),
            "--questions",
            str(questions),
            "--images",
            str(images),
            "--out",
            str(out_dir),
            "--model-id",
            "other",
            "-q",
            "--resamples",
            "20",
        ]
    )
    assert r.exit_code == 0, r.output
    table_md = tmp_path / "table.md"
    r = _invoke(
        [
            "eval",
            "table",
            str(out_dir / "mine" / "tiny-eval" / "results.json"),
            str(out_dir / "quilt_vqa" / "other" / "results.json"),
            "--out",
            str(table_md),
        ]
    )
    assert r.exit_code == 0, r.output
    lines = table_md.read_text().splitlines()
    assert lines[0].startswith("| model | mine open recall | mine closed accuracy | quilt_vqa open recall")
    assert lines[2].startswith("| tiny-eval |") and lines[3].startswith("| other |")
    r = _invoke(["eval", "table", str(out_dir / "mine" / "tiny-eval" / "results.json"), "--json"])
    assert json.loads(r.stdout)["columns"] == ["mine/open_recall", "mine/closed_accuracy"]


def test_cli_reports_mismatched_ids(vqa_set, tmp_path):
    questions, _ = vqa_set
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        json.dumps({"question_id": "o1", "text": "red"}) + "\n" + json.dumps({"question_id": "zzz", "text": "?"}) + "\n"
    )
    r = _invoke(["eval", "vqa", "--questions", str(questions), "--predictions", str(preds)])
    assert r.exit_code != 0
    assert "zzz" in str(r.exception) and "c1" in str(r.exception)


def test_cli_run_missing_data_says_what_to_do(tiny_model_dir, tmp_path):
    r = _invoke(["eval", "run", "pathvqa", "--model", str(tiny_model_dir), "--data-root", str(tmp_path)])
    assert r.exit_code != 0
    assert "--questions" in str(r.exception) and "pathvqa" in str(r.exception)


def test_cli_benchmarks_list():
    r = _invoke(["eval", "benchmarks", "--json"])
    assert r.exit_code == 0
    assert {d["name"] for d in json.loads(r.stdout)} >= {"quilt_vqa", "pmc_vqa_path", "slake", "vqa_rad"}


def test_cli_judge_and_summary(tmp_path):
    from tests.eval.test_judge import QUESTIONS, _responder
    from tests.fake_openai import FakeOpenAIServer

    qfile = tmp_path / "judge_q.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    preds = tmp_path / "tiny.jsonl"
    preds.write_text(
        "".join(json.dumps({"question_id": q["question_id"], "text": "an answer"}) + "\n" for q in QUESTIONS)
    )
    review = tmp_path / "review.jsonl"
    with FakeOpenAIServer(responder=_responder) as srv:
        r = _invoke(
            [
                "eval",
                "judge",
                "--questions",
                str(qfile),
                "--predictions",
                str(preds),
                "--out",
                str(review),
                "--base-url",
                srv.base_url,
                "--llm-model",
                "fake",
                "--api-key-env",
                "NO_SUCH_KEY_VAR",
                "--retries",
                "1",
                "-q",
            ]
        )
    assert r.exit_code == 1  # one question never got two scores
    assert (tmp_path / "review.references.jsonl").exists()
    assert len(read_jsonl(review)) == 4
    r = _invoke(["eval", "judge-summary", str(review), "--by", "subspecialty"])
    assert r.exit_code == 1, r.output  # the summary is printed, and the failed review sets the status
    assert "| conv | 3 | 1 | 7.5 | 5.5 | 73.3 | " in r.stdout
    assert "| overall | 4 | 1 |" in r.stdout and "subspecialty=lung" in r.stdout
    r = _invoke(["eval", "judge-summary", str(review), "--json"])
    groups = json.loads(r.stdout)[str(review)]
    assert groups[-1]["group"] == "overall" and groups[-1]["failed"] == 1


def test_missing_type_inferred_and_missing_id_is_row_index(tmp_path):
    path = tmp_path / "hf_export.jsonl"
    rows = [
        {"question": "Is it benign?", "answer": "Yes.", "image": "a.png"},
        {"question": "What stain?", "answer": "H&E", "image": "b.png"},
        {"question": "Describe it.", "image": "c.png"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qs = load_questions(path)
    assert [(q.question_id, q.answer_type, q.extra.get("answer_type_inferred", False)) for q in qs] == [
        ("0", "closed", True),
        ("1", "open", True),
        ("2", "open", False),
    ]


def test_generate_rejects_non_model_dir(vqa_set, tmp_path):
    questions, images = vqa_set
    r = _invoke(
        [
            "eval",
            "generate",
            "--model",
            str(tmp_path),
            "--questions",
            str(questions),
            "--images",
            str(images),
            "--out",
            str(tmp_path / "p.jsonl"),
        ]
    )
    assert r.exit_code != 0 and "config.json" in str(r.exception)


def test_cli_judge_questions(tmp_path):
    rec = tmp_path / "heldout.jsonl"
    rec.write_text(
        json.dumps(
            {
                "id": "r1",
                "image": "a.png",
                "generator": "detail",
                "video_id": "v",
                "segment_id": 0,
                "conversations": [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "x"}],
            }
        )
        + "\n"
    )
    nar = tmp_path / "narratives.jsonl"
    nar.write_text(
        json.dumps({"video_id": "v", "segment_id": 0, "grounded_caption": "cells [0.1, 0.1, 0.5, 0.5]"}) + "\n"
    )
    out = tmp_path / "judge_q.jsonl"
    r = _invoke(
        ["eval", "judge-questions", "--records", str(rec), "--narratives", str(nar), "--out", str(out), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["by_category"] == {"detail": 1}
    (row,) = read_jsonl(out)
    assert row["caption"].startswith("cells") and row["question"] == "Describe."


def test_declaration_prompts_and_closed_rules_snapshot():
    """Every shipped declaration's prompt suffixes and closed rule, values checked against a golden file."""
    import os
    from pathlib import Path

    got = {
        name: {"prompt": load_benchmark(name).prompt, "closed_rule": load_benchmark(name).closed_rule}
        for name in builtin_benchmarks()
    }
    path = Path(__file__).parent / "golden" / "declaration_prompts.json"
    text = json.dumps(got, indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), "a declaration's prompt changed; rerun with UPDATE_GOLDEN=1"
    assert got["slake"]["closed_rule"] == got["vqa_rad"]["closed_rule"] == "answer_in_prediction"
    assert {got[n]["closed_rule"] for n in ("quilt_vqa", "quilt_vqa_red", "pathvqa", "pmc_vqa_path")} == {"yes_no"}
    for name in ("slake", "vqa_rad"):  # their closed answers are not all yes/no: do not force one
        assert "yes or no" not in got[name]["prompt"].get("closed_suffix", "")


def test_closed_rule_declaration_errors_and_cli(tmp_path):
    with pytest.raises(ConfigError, match="closed_rule"):
        parse_benchmark({"name": "x", "questions": "q.json", "closed_rule": "substring"}, "mine.yaml")
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"id": "a", "question": "Which side?", "answer": "Left", "answer_type": "CLOSED"}) + "\n")
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"question_id": "a", "text": "the left side"}) + "\n")
    r = _invoke(["eval", "vqa", "--questions", str(q), "--predictions", str(p), "--resamples", "0", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["closed_accuracy"] == 0.0 and "--closed-rule" in r.stderr
    r = _invoke(
        [
            "eval",
            "vqa",
            "--questions",
            str(q),
            "--predictions",
            str(p),
            "--resamples",
            "0",
            "--json",
            "--closed-rule",
            "answer_in_prediction",
        ]
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["closed_accuracy"] == 100.0
