import numpy as np
import pytest
from PIL import Image

from quilt_llava.errors import ConfigError
from quilt_llava.instruct.region_qa import (
    RegionLabel,
    RegionQAConfig,
    build_region_qa,
    label_text,
    majority_predictions,
    split_segments,
)

LABELS = [
    RegionLabel("positive", ["brown", "positive"], "brown staining", "Is this region positive?"),
    RegionLabel("negative", ["blue", "negative"], "blue nuclei only", None),
]


def test_label_text_counts_whole_keywords_and_rejects_ties():
    assert label_text("Strong brown, clearly positive glands.", LABELS) == "positive"
    assert label_text("The stroma is negative.", LABELS) == "negative"
    assert label_text("brownish? no: nonpositive", LABELS) is None  # substrings of words do not count
    assert label_text("brown here but blue there", LABELS) is None  # a tie is skipped
    assert label_text("nothing to see", LABELS) is None


def test_split_is_deterministic_and_by_segment():
    rows = [{"video_id": "v", "segment_id": i} for i in range(10)]
    a = split_segments(rows, 0.3, seed=1)
    assert a == split_segments(list(reversed(rows)), 0.3, seed=1)
    assert len(a) == 3


def _rows(tmp_path, n=6):
    rows = []
    (tmp_path / "nar").mkdir()
    for i in range(n):
        img = np.zeros((60, 120, 3), np.uint8)
        img[:, :60] = (150, 90, 40)  # left half brown
        img[:, 60:] = (90, 110, 200)  # right half blue
        Image.fromarray(img).save(tmp_path / "nar" / f"s{i}.png")
        rows.append(
            {
                "video_id": "vid",
                "segment_id": i,
                "image": f"s{i}.png",
                "clusters": [
                    {"box": [0.0, 0.0, 0.5, 1.0], "text": "these glands are brown and positive", "start": 0, "end": 1},
                    {"box": [0.5, 0.0, 1.0, 1.0], "text": "the stroma stays blue", "start": 1, "end": 2},
                    {"box": [0.1, 0.1, 0.2, 0.2], "text": "hello there", "start": 2, "end": 3},
                ],
            }
        )
    return rows


def test_build_region_qa_crops_follow_boxes_and_labels(tmp_path):
    cfg = RegionQAConfig(labels=LABELS, crops_per_cluster=3, eval_crops_per_cluster=1, eval_fraction=0.34, seed=0)
    res = build_region_qa(_rows(tmp_path), tmp_path / "nar", tmp_path / "out", cfg)
    assert res.label_counts == {"negative": 6, "positive": 6}
    assert len(res.skipped_clusters) == 6
    held = set(res.eval_segments)
    assert len(held) == 2
    assert all(f"vid/{q['segment_id']}" in held for q in res.eval_questions)
    assert all(f"vid/{r['segment_id']}" not in held for r in res.train_records)
    # 4 train segments x 2 clusters x 3 crops x (1 open + 1 closed) questions
    assert len(res.train_records) == 48
    for q in res.eval_questions:
        crop = np.asarray(Image.open(tmp_path / "out" / q["image"]))
        brown = crop[..., 0].mean() > crop[..., 2].mean()
        assert brown == (q["label"] == "positive")
        if q["answer_type"] == "CLOSED":
            assert q["yes_no_answer"] == ("yes" if brown else "no")
    base = {p["question_id"]: p["text"] for p in majority_predictions(res.train_records, res.eval_questions)}
    assert set(base) == {q["question_id"] for q in res.eval_questions}
    closed = [q for q in res.eval_questions if q["answer_type"] == "CLOSED"]
    hits = sum(base[q["question_id"]].rstrip(".").lower() == q["yes_no_answer"] for q in closed)
    assert hits == len(closed) / 2  # the training answers are balanced, held-out labels too


def test_config_errors_are_reported_together():
    with pytest.raises(ConfigError) as err:
        RegionQAConfig.from_dict(
            {"labels": [{"name": "a", "keywords": [], "description": "x"}], "eval_fraction": 2, "bogus": 1}
        )
    assert "bogus" in str(err.value)
    with pytest.raises(ConfigError) as err:
        RegionQAConfig.from_dict({"labels": [{"name": "a", "keywords": [], "description": "x"}], "eval_fraction": 2})
    msg = str(err.value)
    assert "at least two labels" in msg and "keywords" in msg and "eval_fraction" in msg


def test_write_region_qa_keeps_every_image_under_out(tmp_path):
    import json

    from quilt_llava.instruct.region_qa import write_region_qa

    rows = _rows(tmp_path)
    for r in rows:
        r.update(
            start=0.0,
            end=1.0,
            width=120,
            height=60,
            content_box=[0, 0, 120, 60],
            trace=[[0.0, 0.5, 0.5]],
            utterances=[{"start": 0.0, "end": 1.0, "text": "brown glands"}],
            grounded_caption="x",
        )
    nar = tmp_path / "nar" / "narratives.jsonl"
    nar.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"video_id": "broken"}\n')
    cfg = RegionQAConfig(labels=LABELS, crops_per_cluster=2, eval_crops_per_cluster=1, eval_fraction=0.34)
    summary = write_region_qa(nar, tmp_path / "qa", cfg)
    assert summary["bad_input_rows"] == 1 and summary["segment_align_records"] == 4
    out = tmp_path / "qa"
    for name in ("align.jsonl", "train.jsonl", "eval_questions.jsonl"):
        for line in (out / name).read_text().splitlines():
            assert (out / json.loads(line)["image"]).exists()
    held = json.loads((out / "held_out.json").read_text())
    align_segments = {f"vid/{json.loads(x)['segment_id']}" for x in (out / "align.jsonl").read_text().splitlines()}
    assert not align_segments & set(held)
