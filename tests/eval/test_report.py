"""`eval report`: several models side by side, with intervals and the published rows."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import InputError
from quilt_llava.eval.benchmarks import load_benchmark
from quilt_llava.eval.report import (
    find_results,
    load_results,
    published_results,
    to_markdown,
    vqa_table,
)
from quilt_llava.files import write_json, write_jsonl


def _result(bench: str, model: str, metrics: dict[str, float], partial: bool = False) -> dict:
    decl = load_benchmark(bench)
    full = {"n": 10}
    for k, v in metrics.items():
        full[k] = v
        full[k + "_ci"] = [round(v - 5.5, 4), round(v + 4.25, 4)]
    return {
        "benchmark": bench,
        "description": decl.description,
        "model_id": model,
        "headline": decl.headline,
        "partial": partial,
        "metrics": full,
        "created": "2026-12-06T03:00:00+00:00",
    }


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "eval_results"
    rows = [
        # Written in an order unlike the paper's: the report puts the columns in its order.
        _result("pmc_vqa_path", "mine-7b", {"choice_accuracy": 41.0}),
        _result("pathvqa", "mine-7b", {"open_recall": 12.5, "closed_accuracy": 60.25}),
        _result("quilt_vqa", "mine-7b", {"open_recall": 55.0, "closed_accuracy": 70.0}),
        _result("quilt_vqa", "baseline", {"open_recall": 30.0, "closed_accuracy": 50.0}, partial=True),
    ]
    for r in rows:
        write_json(root / r["benchmark"] / r["model_id"] / "results.json", r)
    return root


def test_layout_like_the_published_tables(runs):
    table = vqa_table(load_results(find_results([runs])), published=True)
    assert [c.key for c in table.columns] == [
        "quilt_vqa/open_recall",
        "quilt_vqa/closed_accuracy",
        "pathvqa/open_recall",
        "pathvqa/closed_accuracy",
        "pmc_vqa_path/choice_accuracy",
    ]
    assert [(c.group, c.label) for c in table.columns][:3] == [
        ("Quilt-VQA", "open"),
        ("Quilt-VQA", "closed"),
        ("PathVQA", "open"),
    ]
    assert [r.model for r in table.rows] == ["mine-7b", "baseline", "Quilt-LLaVA (published, 1+1 epochs)"]
    md = to_markdown(table).splitlines()
    assert md[2] == (
        "| model | Quilt-VQA open | Quilt-VQA closed | PathVQA open | PathVQA closed | "
        "PMC-VQA pathology subset accuracy |"
    )
    assert (
        md[4] == "| mine-7b | 55.00 (49.5-59.2) | 70.00 (64.5-74.2) | 12.50 (7.0-16.8) | 60.25 (54.8-64.5) "
        "| 41.00 (35.5-45.2) |"
    )
    assert md[5] == "| baseline | 30.00 (24.5-34.2) * | 50.00 (44.5-54.2) * | - | - | - |"
    assert md[6] == "| Quilt-LLaVA (published, 1+1 epochs) | 59.82 | 64.43 | 14.24 | 58.42 | - |"
    assert "answered questions only" in md[-1]


def test_published_rows_are_the_spec_figures():
    pub = published_results()
    (quilt,) = pub["vqa"]
    assert quilt["results"] == {
        "quilt_vqa": {"open_recall": 59.82, "closed_accuracy": 64.43},
        "pathvqa": {"open_recall": 14.24, "closed_accuracy": 58.42},
    }
    judge = {r["model"]: r["results"] for r in pub["judge"]}
    assert judge["LLaVA (published)"] == {"conv": 61.4, "detail": 36.5, "overall": 55.7}
    assert judge["LLaVA-Med (published)"] == {"conv": 70.1, "detail": 46.9, "overall": 64.8}
    assert judge["Quilt-LLaVA (published)"] == {"conv": 78.4, "detail": 66.0, "overall": 75.6}


def test_cli_report_writes_markdown_csv_and_judge(runs, tmp_path):
    reviews = tmp_path / "mine-7b.jsonl"
    write_jsonl(
        reviews,
        [
            {"question_id": str(i), "category": "conv" if i < 3 else "detail", "scores": [8, s]}
            for i, s in enumerate([6, 8, 4, 2, 4])
        ],
    )
    md, csv_path = tmp_path / "report.md", tmp_path / "report.csv"
    r = CliRunner().invoke(
        make_app(),
        [
            "eval",
            "report",
            str(runs),
            "--published",
            "--reviews",
            str(reviews),
            "--out-md",
            str(md),
            "--out-csv",
            str(csv_path),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Quilt-VQA" in r.stdout and "59.82" in r.stdout and "GPT-4" in r.stdout
    text = md.read_text()
    # conv: 100 x (6+8+4)/24 = 75.0; detail: 100 x 6/16 = 37.5; overall: 100 x 24/40 = 60.0
    assert "| mine-7b | 75.0 (" in text and "| 37.5 (" in text and "| 60.0 (" in text
    assert "| LLaVA-Med (published) | 70.1 | 46.9 | 64.8 |" in text
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [row["model"] for row in rows] == ["mine-7b", "baseline", "Quilt-LLaVA (published, 1+1 epochs)"]
    assert rows[0]["quilt_vqa/open_recall"] == "55.0" and rows[0]["quilt_vqa/open_recall ci_low"] == "49.5"
    assert rows[2]["published"] == "yes" and rows[2]["pathvqa/closed_accuracy"] == "58.42"
    assert rows[2]["pathvqa/closed_accuracy ci_low"] == ""
    judge_rows = list(csv.DictReader(io.StringIO(csv_path.with_suffix(".judge.csv").read_text())))
    assert judge_rows[0]["judge/overall"] == "60.0" and len(judge_rows) == 4
    r = CliRunner().invoke(
        make_app(), ["eval", "report", str(runs / "quilt_vqa" / "baseline" / "results.json"), "--json"]
    )
    (vqa,) = json.loads(r.stdout)
    assert vqa["columns"] == ["quilt_vqa/open_recall", "quilt_vqa/closed_accuracy"]
    assert vqa["rows"][0]["cells"]["quilt_vqa/open_recall"] == {"value": 30.0, "ci": [24.5, 34.25], "partial": True}


def test_report_inputs_are_checked(tmp_path):
    with pytest.raises(InputError, match=r"no results\.json"):
        find_results([tmp_path])
    with pytest.raises(InputError, match="not found"):
        find_results([tmp_path / "nope"])
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"model_id": "x"}))
    with pytest.raises(InputError, match="needs 'benchmark' and 'metrics'"):
        load_results(find_results([tmp_path]))


def test_same_model_twice_warns_and_the_later_wins(capsys):
    from quilt_llava.console import Output

    a = _result("quilt_vqa", "m", {"open_recall": 10.0, "closed_accuracy": 20.0})
    b = _result("quilt_vqa", "m", {"open_recall": 11.0, "closed_accuracy": 21.0})
    table = vqa_table([a, b], output=Output())
    assert table.rows[0].cells["quilt_vqa/open_recall"].value == 11.0 and len(table.rows) == 1
    assert "appears twice" in capsys.readouterr().err
