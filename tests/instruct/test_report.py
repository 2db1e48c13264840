"""`quilt-llava instruct report`: statistics of a generation run, computed by hand here."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.files import write_json, write_jsonl
from quilt_llava.instruct.data import llava_record
from quilt_llava.instruct.report import report


def _records():
    return [
        llava_record(
            "a",
            "x.png",
            [("Describe the image.", "Brown glands sit in the upper left corner."), ("Is the stroma stained?", "No.")],
            {},
        ),
        llava_record("b", "y.png", [("What is shown?", "Tumour cells " + "and more tumour cells " * 6)], {}),
    ]


def test_report_counts_by_hand(tmp_path):
    out = tmp_path / "conv.jsonl"
    write_jsonl(out, _records())
    write_jsonl(
        tmp_path / "conv.rejects.jsonl",
        [
            {"unit": "u1", "status": "gated", "reason_code": "repetition", "reason": "..."},
            {"unit": "u2", "status": "rejected", "reason_code": "not_json", "reason": "..."},
            {"unit": "u3", "status": "gated", "reason_code": "repetition", "reason": "..."},
        ],
    )
    stats = report(out)
    assert stats["records"] == 2 and stats["answers"] == 3 and stats["questions"] == 3
    assert stats["rejects"] == 3 and stats["rejects_by_reason"] == {"not_json": 1, "repetition": 2}
    # answer words: 8, 1, 2 + 4*6 = 26
    assert stats["answer_words"]["p0"] == 1 and stats["answer_words"]["p100"] == 26
    assert stats["answer_words"]["p50"] == 8 and stats["answer_words"]["mean"] == round(35 / 3, 1)
    assert stats["position_word_share"] == round(1 / 3, 3)  # "upper left corner"
    assert stats["repetition"]["answers_failing_repetition_gate"] == 1
    assert stats["vocabulary"]["tokens"] == 35


def test_report_cli_on_json_and_table_rows(tmp_path):
    out = tmp_path / "vqa.json"
    write_json(
        out,
        [
            {"question": "Is it positive?", "answer": "Yes, on the right side."},
            {"question": "What colour?", "answer": "Brown."},
        ],
    )
    res = CliRunner().invoke(make_app(), ["instruct", "report", str(out), "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)
    assert stats["answers"] == 2 and stats["rejects"] == 0 and stats["position_word_share"] == 0.5
    human = CliRunner().invoke(make_app(), ["instruct", "report", str(out)])
    assert "answers using position words: 50%" in human.stdout


def test_report_missing_or_bad_file(tmp_path):
    res = CliRunner().invoke(make_app(), ["instruct", "report", str(tmp_path / "none.jsonl")])
    assert res.exit_code != 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = CliRunner().invoke(make_app(), ["instruct", "report", str(bad)])
    assert res.exit_code != 0
