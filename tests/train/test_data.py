"""Dataset, collator and grouped sampler."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from quilt_llava.errors import InputError
from quilt_llava.model import build_model_and_processor
from quilt_llava.model.conversation import get_template
from quilt_llava.train.data import (
    Collator,
    GroupedSampler,
    LlavaDataset,
    load_records,
    padding_share,
    resolve_image_path,
)


@pytest.fixture(scope="module")
def processor():
    return build_model_and_processor("tiny")[1]


def rec(i, image=None, answer="A pink blob."):
    r = {"id": f"r{i}", "conversations": [{"from": "human", "value": "Describe it."}, {"from": "gpt", "value": answer}]}
    if image:
        r["image"] = image
    return r


def test_load_json_jsonl_parquet(tmp_path):
    rows = [rec(0), rec(1, "a.png")]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pq.write_table(pa.Table.from_pylist([{**r, "image": r.get("image", "")} for r in rows]), tmp_path / "d.parquet")
    for name in ("d.json", "d.jsonl", "d.parquet"):
        got = load_records(tmp_path / name)
        assert [r["id"] for r in got] == ["r0", "r1"]
        assert got[1]["conversations"][1]["value"] == "A pink blob."
    with pytest.raises(InputError, match="unknown data format"):
        (tmp_path / "d.csv").write_text("x")
        load_records(tmp_path / "d.csv")


def test_image_paths_stay_inside_folder(tmp_path):
    assert resolve_image_path(tmp_path, "sub/a.png", "r1") == (tmp_path / "sub/a.png").resolve()
    assert resolve_image_path(tmp_path, str(tmp_path / "a.png"), "r1") == (tmp_path / "a.png").resolve()
    for bad in ("../secret.png", "sub/../../x.png", "/etc/passwd"):
        with pytest.raises(InputError, match="outside the image folder") as err:
            resolve_image_path(tmp_path, bad, "row-7")
        assert "row-7" in str(err.value)


def test_missing_and_unreadable_images_name_the_row(tmp_path, processor):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"2 image\(s\) not found: r1 .*r2"):
        LlavaDataset([rec(0), rec(1, "x.png"), rec(2, "y.png")], processor, get_template("plain"), 256, tmp_path)
    ds = LlavaDataset([rec(0), rec(1, "bad.png")], processor, get_template("plain"), 256, tmp_path)
    with pytest.raises(InputError, match="record r1"):
        ds[1]


def test_mixed_batch_and_padding(tmp_path, processor):
    Image.new("RGB", (40, 20), (200, 100, 150)).save(tmp_path / "a.png")
    records = [rec(0), rec(1, "a.png", answer="A much longer answer about a pink blob on a pale slide."), rec(2)]
    ds = LlavaDataset(records, processor, get_template("vicuna_v1"), 256, tmp_path)
    assert ds.has_image == [False, True, False]
    item = ds[1]
    assert item["pixel_values"].shape == (3, 32, 32)  # padded to square, then CLIP-processed
    batch = Collator(processor.tokenizer.pad_token_id)([ds[0], ds[1], ds[2]])
    n = max(ds.lengths)
    assert batch["input_ids"].shape == (3, n) and batch["pixel_values"].shape == (1, 3, 32, 32)
    assert batch["attention_mask"].sum().item() == sum(ds.lengths)
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert (batch["input_ids"] == image_id).sum().item() == 16


def test_masked_out_records_are_skipped_unless_kept(tmp_path, processor):
    """An empty answer trains on nothing in the release: counted and skipped; keep_masked_out keeps it."""
    records = [rec(0), rec(1, answer=""), rec(2, answer="Done.</s> Extra."), rec(3)]
    ds = LlavaDataset(records, processor, get_template("vicuna_v1"), 256, tmp_path)
    assert len(ds) == 2 and ds.report.summary()["skipped"] == {"empty_answer": 1, "eos_in_answer": 1}
    kept = LlavaDataset(records, processor, get_template("vicuna_v1"), 256, tmp_path, keep_masked_out=True)
    assert len(kept) == 4 and kept.report.kept_masked_out == {"empty_answer": 1, "eos_in_answer": 1}


def test_padding_is_the_processor_mean_colour(tmp_path, processor):
    """A wide image's padded band becomes (almost) zero after CLIP normalisation, as in the release."""
    Image.new("RGB", (32, 8), (255, 255, 255)).save(tmp_path / "wide.png")
    records = [rec(0, "wide.png")]
    pixels = LlavaDataset(records, processor, get_template("vicuna_v1"), 256, tmp_path)[0]["pixel_values"]
    assert pixels[:, 0, :].abs().max().item() < 0.02  # top rows: padding, mean colour -> ~0
    assert pixels[:, 16, :].min().item() > 1.0  # the white image in the middle


def test_model_accepts_a_mixed_batch(tmp_path):
    model, processor = build_model_and_processor("tiny")
    Image.new("RGB", (32, 32), (20, 100, 150)).save(tmp_path / "a.png")
    ds = LlavaDataset([rec(0), rec(1, "a.png")], processor, get_template("vicuna_v1"), 256, tmp_path)
    batch = Collator(processor.tokenizer.pad_token_id)([ds[0], ds[1]])
    out = model(**batch)
    assert torch.isfinite(out.loss)


def test_grouped_sampler_is_deterministic_pure_and_pads_less():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(20, 400, (300,), generator=gen).tolist()
    has_image = [i % 3 != 0 for i in range(300)]
    s = GroupedSampler(lengths, has_image, group_size=8, mode="modality_length", seed=1)
    order = list(s)
    assert sorted(order) == list(range(300)) and order == list(GroupedSampler(lengths, has_image, 8, seed=1))
    s.set_epoch(1)
    assert list(s) != order
    batches = [order[i : i + 8] for i in range(0, 300, 8)]
    full = [b for b in batches if len(b) == 8]
    mixed = [b for b in full if len({has_image[i] for i in b}) > 1]
    assert len(mixed) <= 1  # at most the one batch where partial groups meet
    plain = list(GroupedSampler(lengths, has_image, 8, mode="none", seed=1))
    share_grouped = padding_share(batches, lengths)
    share_plain = padding_share([plain[i : i + 8] for i in range(0, 300, 8)], lengths)
    assert share_grouped < share_plain / 2
