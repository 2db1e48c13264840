from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quilt_llava.errors import InputError
from quilt_llava.narratives.show import BOX_COLORS, time_colors, write_show


def _make_dir(root: Path) -> Path:
    frames = root / "vid-1" / "frames"
    frames.mkdir(parents=True)
    Image.new("RGB", (600, 400), (250, 250, 250)).save(frames / "000.png")
    Image.new("RGB", (64, 48), (200, 180, 160)).save(frames / "001.png")
    rows = [
        {
            "video_id": "vid-1",
            "segment_id": 0,
            "start": 0.0,
            "end": 6.0,
            "image": "vid-1/frames/000.png",
            "width": 600,
            "height": 400,
            "content_box": [0, 0, 600, 400],
            "trace": [[0.0, 0.1, 0.1], [0.5, 0.2, 0.2], [1.0, 0.3, 0.3], [5.0, 0.8, 0.8]],
            "utterances": [{"start": 0.2, "end": 3.0, "text": "look <here> & there"}],
            "clusters": [
                {
                    "box": [0.5, 0.5, 0.9, 0.9],
                    "start": 0.0,
                    "end": 6.0,
                    "text": "look <here> & there",
                }
            ],
            "grounded_caption": "look <here> & there [0.5, 0.5, 0.9, 0.9]",
        },
        {
            "video_id": "vid-1",
            "segment_id": 1,
            "start": 7.0,
            "end": 9.0,
            "image": "vid-1/frames/001.png",
            "width": 64,
            "height": 48,
            "content_box": [0, 0, 64, 48],
            "trace": [],
            "utterances": [],
            "clusters": [],
            "grounded_caption": "",
            "tissue": 0.04,
            "is_tissue": False,
        },
        {
            "video_id": "vid-1",
            "segment_id": 2,
            "start": 9.0,
            "end": 12.0,
            "image": "vid-1/frames/missing.png",
            "trace": [],
            "clusters": [],
        },
    ]
    (root / "narratives.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_write_show_draws_and_escapes(tmp_path: Path) -> None:
    root = _make_dir(tmp_path / "narr")
    page = write_show(root)
    assert page == root / "show" / "index.html"
    text = page.read_text()
    assert "look &lt;here&gt; &amp; there [0.5, 0.5, 0.9, 0.9]" in text
    assert "<here>" not in text
    srcs = [line.split('src="')[1].split('"')[0] for line in text.splitlines() if 'src="' in line]
    assert len(srcs) == 2  # the row with a missing image is listed without one
    assert "cannot read vid-1/frames/missing.png" in text
    assert text.count("not tissue (score 0.04)") == 1  # a view kept with --keep-non-tissue says so
    for src in srcs:
        assert not src.startswith("/") and (page.parent / src).is_file()

    drawn = np.asarray(Image.open(page.parent / srcs[0]).convert("RGB")).astype(int)
    assert drawn.shape == (400, 600, 3)
    colors = time_colors(4).astype(int)
    first, last = drawn[40, 60], drawn[320, 480]  # trace points (0.1, 0.1) and (0.8, 0.8)
    assert np.abs(first - colors[0]).sum() < 30 and np.abs(last - colors[-1]).sum() < 30
    assert np.abs(colors[0] - colors[-1]).sum() > 200  # early and late differ
    edge = drawn[300, 540]  # left edge of the box at x = 0.9 * 600, y inside the box
    assert np.abs(edge - np.array(BOX_COLORS[0])).sum() < 30
    # small images are enlarged for legibility
    small = Image.open(page.parent / srcs[1])
    assert small.width >= 480


def test_write_show_custom_out_dir_and_missing_input(tmp_path: Path) -> None:
    root = _make_dir(tmp_path / "narr")
    page = write_show(root, tmp_path / "elsewhere")
    assert page.parent == tmp_path / "elsewhere" and page.is_file()
    with pytest.raises(InputError, match=r"narratives\.jsonl"):
        write_show(tmp_path / "empty")


def test_time_colors_run_dark_to_light() -> None:
    c = time_colors(5)
    assert c.shape == (5, 3)
    lum = c.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(lum) > 0)


def test_show_through_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from quilt_llava.cli import make_app

    root = _make_dir(tmp_path / "narr")
    result = CliRunner().invoke(make_app(), ["narratives", "show", str(root), "--json"])
    assert result.exit_code == 0, result.output
    page = Path(json.loads(result.stdout.strip().splitlines()[-1])["html"])
    assert page == root / "show" / "index.html" and page.is_file()
