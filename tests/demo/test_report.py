"""The demo report page alone: escaping, the machine-readable block, the speech table."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from quilt_llava.demo.report import DemoReport, ReportSegment, write_report

TRICKY = "a \"quoted\" </script><b>bold</b> & 'apostrophe'"


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.in_data = False
        self.data = ""
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.in_data = tag == "script" and ("id", "report-data") in attrs

    def handle_endtag(self, tag):
        self.in_data = False

    def handle_data(self, data):
        if self.in_data:
            self.data += data
        else:
            self.text.append(data)


def _report(tmp_path) -> DemoReport:
    return DemoReport(
        out_dir=tmp_path,
        video="sample/v.mp4",
        segments=[ReportSegment("frames/a.png", TRICKY, 1.0, 4.25, 12, 2)],
        sample_records=[
            {"id": "r1", "image": "frames/a.png", "conversations": [{"from": "human", "value": TRICKY}]},
            {"id": "r2", "conversations": []},
        ],
        metrics_rows=[{"name": TRICKY, "value": 75.0, "ci": [60.0, 90.0], "baseline": 50.0}],
        commands=[("extract", "quilt-llava narratives extract v.mp4 --out n/")],
        facts=[("video", TRICKY)],
        speech={
            "used": "vocabulary",
            "figure_columns": ["raw", "vocabulary"],
            "figures": [("WER", [0.3, 0.2])],
            "stages": ["raw"],
            "stage_titles": ["recognised"],
            "lines": [{"start": 2.0, "script": [("tumour", False)], "raw": [("humour", True)]}],
        },
    )


def test_json_block_reads_back_as_json(tmp_path):
    """A script element's text is not entity-decoded: the block must be JSON as written."""
    html = write_report(_report(tmp_path)).read_text()
    parser = _Collect()
    parser.feed(html)
    data = json.loads(parser.data)
    assert data["metrics"][0]["name"] == TRICKY
    assert data["metrics"][0]["ci"] == [60.0, 90.0]
    assert "&quot;" not in parser.data and "</script>" not in parser.data


def test_text_from_data_is_escaped_and_rendered(tmp_path):
    html = write_report(_report(tmp_path)).read_text()
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    parser = _Collect()
    parser.feed(html)
    text = "".join(parser.text)
    assert TRICKY in text  # decoded back to the original text
    assert "1.0-4.2 s" in text or "1.0-4.3 s" in text
    assert "[60.0, 90.0]" in text and "75.0" in text
    assert "<span class='err'>humour</span>" in html and "id='speech'" in html
    assert "src='frames/a.png'" in html


def test_script_fallback_says_so(tmp_path):
    report = DemoReport(out_dir=tmp_path, speech={"used": "script", "reason": "espeak-ng not found"})
    html = write_report(report).read_text()
    assert "No speech this run: espeak-ng not found" in html
