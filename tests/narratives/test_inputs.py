"""Which videos a run covers: list files, their bad entries, clashing output folders; engine options."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import ConfigError, InputError, MissingDependencyError
from quilt_llava.narratives.cli import ExtractOptions
from quilt_llava.narratives.inputs import is_video_list, one_folder_per_video, read_video_list


def test_list_file_entries_by_line(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "other").mkdir()
    for p in ("v/a.mp4", "v/b.MKV", "other/a.mp4", "v/notes.pdf"):
        (tmp_path / p).write_bytes(b"x")
    listing = tmp_path / "lists" / "videos.txt"
    listing.parent.mkdir()
    listing.write_text(
        f"# comment\n../v/a.mp4\n  {tmp_path / 'v' / 'b.MKV'}  \n\n../v/missing.mp4\n"
        "s3://bucket/c.mp4\n../v/notes.pdf\n../other/a.mp4\n../v/a.mp4\n",
        encoding="utf-8",
    )
    assert is_video_list(listing) and not is_video_list(tmp_path / "v" / "a.mp4")
    got = read_video_list(listing)
    assert got.videos == [tmp_path / "v/a.mp4", tmp_path / "v/b.MKV", tmp_path / "other/a.mp4", tmp_path / "v/a.mp4"]
    assert all(v.is_absolute() for v in got.videos)
    assert sorted(k.rsplit(":", 1)[1] for k in got.problems) == ["5", "6", "7"]
    assert "no such video file" in got.problems[f"{listing}:5"]
    assert "URLs are not supported" in got.problems[f"{listing}:6"]
    assert "not a video file" in got.problems[f"{listing}:7"]
    kept = one_folder_per_video(got)
    assert kept.videos == [tmp_path / "v/a.mp4", tmp_path / "v/b.MKV"]  # the same path twice: once
    clash = kept.problems[str(tmp_path / "other/a.mp4")]
    assert "output folder a/" in clash and str(tmp_path / "v/a.mp4") in clash


def test_empty_list_is_an_error(tmp_path):
    (tmp_path / "l.txt").write_text("# nothing yet\n\n")
    with pytest.raises(InputError, match="names no videos"):
        read_video_list(tmp_path / "l.txt")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"engine": "spark"}, "--engine must be one of local, ray"),
        ({"address": "auto"}, "--address names a Ray cluster; add --engine ray"),
        ({"engine": "ray", "address": "auto", "workers": 4}, "--workers sizes the local pool"),
        ({"out": Path("s3://bucket/out")}, "URLs are not supported"),
    ],
)
def test_engine_options_are_checked(kwargs, message, tmp_path):
    options = ExtractOptions(**{"input": tmp_path, "out": tmp_path / "out", **kwargs})
    with pytest.raises(ConfigError, match=message):
        options.validate()


def test_cli_ray_engine_without_ray_names_the_extra(tmp_path, monkeypatch):
    import sys

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(b"\x00" * 100)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    res = CliRunner().invoke(
        make_app(), ["narratives", "extract", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--engine", "ray"]
    )
    assert res.exit_code != 0
    assert isinstance(res.exception, MissingDependencyError)
    assert "pip install 'quilt-llava[distributed]'" in str(res.exception)
