import json

import pytest

from quilt_llava.errors import InputError
from quilt_llava.files import JsonlAppender, atomic_open, iter_jsonl, read_records, write_jsonl


def test_atomic_open_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_jsonl_roundtrip_and_bad_row_names_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"a": 1}, {"a": 2}])
    assert list(iter_jsonl(path)) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\nnot json\n{"a": 3}\n')
    with pytest.raises(InputError, match=r"rows.jsonl:2"):
        list(iter_jsonl(path))


def test_torn_tail_is_ignored_and_repaired(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')  # a killed appender
    assert list(iter_jsonl(path)) == [{"a": 1}]
    with JsonlAppender(path) as app:
        app.write({"a": 3})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}, {"a": 3}]


def test_read_records_accepts_json_array_and_jsonl(tmp_path):
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps([{"id": "x"}]))
    lines = tmp_path / "b.jsonl"
    lines.write_text('{"id": "y"}\n')
    assert read_records(arr) == [{"id": "x"}]
    assert read_records(lines) == [{"id": "y"}]
    with pytest.raises(InputError, match="file not found"):
        read_records(tmp_path / "missing.json")
