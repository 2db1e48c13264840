"""Benchmarks read in the layouts they are published in, built small and locally here.

- Quilt-VQA / Quilt-VQA red circle: Hugging Face datasets with the images inside (a
  save_to_disk folder, a DatasetDict, a Parquet file, the hub's data/<split>-*.parquet
  folder, an Arrow file);
- PMC-VQA: a CSV plus a zip archive of the figures;
- PathVQA / SLAKE / VQA-RAD: LLaVA-Med JSON plus an image folder.

No hub access: the datasets are made with ``datasets`` itself from in-memory rows.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from PIL import Image
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import InputError
from quilt_llava.eval.sources import is_hub_id, load_benchmark_data, read_table
from quilt_llava.files import read_json, read_jsonl

datasets = pytest.importorskip("datasets")


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (24, 20), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


# Quilt-VQA's published columns: question, answer, answer_type, context, image (+ yes_no_answer
# in the released JSON). Two questions share one image, as in the real set (1,283 Q on 985 images).
QUILT_ROWS = [
    {
        "question": "What cells are seen?",
        "answer": "Red cells.",
        "answer_type": "OPEN",
        "context": "c1",
        "yes_no_answer": None,
        "image": {"bytes": _png((200, 40, 60)), "path": "a.png"},
    },
    {
        "question": "Is it malignant?",
        "answer": "Yes, it is.",
        "answer_type": "CLOSED",
        "context": "c2",
        "yes_no_answer": "yes",
        "image": {"bytes": _png((200, 40, 60)), "path": "a.png"},
    },
    {
        "question": "Is there necrosis?",
        "answer": "No necrosis is seen",
        "answer_type": "CLOSED",
        "context": "c3",
        "yes_no_answer": "no",
        "image": {"bytes": _png((30, 120, 90), (40, 32), "JPEG"), "path": "b.jpg"},
    },
    {
        "question": "Which stain?",
        "answer": "H&E",
        "answer_type": "OPEN",
        "context": "c4",
        "yes_no_answer": None,
        "image": {"bytes": _png((90, 30, 160), (16, 48)), "path": None},
    },
]


def _quilt_dataset(rows=QUILT_ROWS):
    features = datasets.Features(
        {
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "answer_type": datasets.Value("string"),
            "context": datasets.Value("string"),
            "yes_no_answer": datasets.Value("string"),
            "image": datasets.Image(),
        }
    )
    return datasets.Dataset.from_list(rows, features=features)


@pytest.fixture
def quilt_saved(tmp_path):
    folder = tmp_path / "quilt_vqa"
    _quilt_dataset().save_to_disk(str(folder))
    return folder


def _load(spec, tmp_path, **kw):
    kw.setdefault("fmt", "quilt")
    return load_benchmark_data(str(spec), cache_dir=tmp_path / "cache", **kw)


def test_save_to_disk_folder_images_extracted_once(quilt_saved, tmp_path):
    data = _load(quilt_saved, tmp_path)
    assert [q.question_id for q in data.questions] == ["0", "1", "2", "3"]
    assert [q.answer_type for q in data.questions] == ["open", "closed", "closed", "open"]
    assert data.questions[1].yes_no_answer == "yes" and data.questions[0].extra["context"] == "c1"
    # Three distinct images for four questions: the shared one is written once.
    assert (data.images_written, data.images_cached) == (3, 1)
    paths = [q.image for q in data.questions]
    assert paths[0] == paths[1] and len(set(paths)) == 3
    assert paths[2].endswith(".jpg") and paths[3].endswith(".png")  # from the path, else from the bytes
    for q, row in zip(data.questions, QUILT_ROWS):
        with Image.open(q.image) as im:
            assert im.size == Image.open(io.BytesIO(row["image"]["bytes"])).size
    again = _load(quilt_saved, tmp_path)
    assert (again.images_written, again.images_cached) == (0, 4)
    assert [q.image for q in again.questions] == paths
    # Only the images of the questions kept are read and written.
    one = load_benchmark_data(str(quilt_saved), fmt="quilt", cache_dir=tmp_path / "other_cache", limit=1)
    assert (len(one.questions), one.images_written, one.images_cached) == (1, 1, 0)


def test_parquet_file_arrow_file_and_hub_folder(tmp_path):
    ds = _quilt_dataset()
    parquet = tmp_path / "quilt.parquet"
    ds.to_parquet(str(parquet))
    from_parquet = _load(parquet, tmp_path)
    assert [q.question for q in from_parquet.questions] == [r["question"] for r in QUILT_ROWS]
    # The hub's layout: data/<split>-00000-of-00001.parquet, two splits; the declaration picks one.
    hub = tmp_path / "hub_copy"
    (hub / "data").mkdir(parents=True)
    ds.select([0, 1]).to_parquet(str(hub / "data" / "train-00000-of-00001.parquet"))
    ds.select([2, 3]).to_parquet(str(hub / "data" / "test-00000-of-00001.parquet"))
    assert [q.question for q in _load(hub, tmp_path, split="test").questions] == ["Is there necrosis?", "Which stain?"]
    saved = tmp_path / "saved"
    ds.save_to_disk(str(saved))
    (arrow,) = saved.glob("*.arrow")
    assert len(_load(arrow, tmp_path).questions) == 4


def test_dataset_dict_needs_a_split_when_it_has_several(tmp_path):
    dd = datasets.DatasetDict({"train": _quilt_dataset(QUILT_ROWS[:2]), "test": _quilt_dataset(QUILT_ROWS[2:])})
    folder = tmp_path / "dd"
    dd.save_to_disk(str(folder))
    with pytest.raises(InputError, match=r"several splits \((train, test|test, train)\)"):
        _load(folder, tmp_path)
    with pytest.raises(InputError, match="split 'val' not found"):
        _load(folder, tmp_path, split="val")
    assert len(_load(folder, tmp_path, split="test").questions) == 2


def test_missing_columns_are_named(tmp_path):
    rows = [{k: v for k, v in r.items() if k not in ("answer", "image")} for r in QUILT_ROWS]
    path = tmp_path / "no_answer.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    with pytest.raises(InputError) as info:
        _load(path, tmp_path)
    msg = str(info.value)
    assert "'answer' (the reference answer" in msg and "'image' (the image or its file name" in msg
    assert "Columns present: question, answer_type, context, yes_no_answer" in msg
    assert str(path) in msg


def test_unreadable_dataset_file_is_named(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot read it as a Hugging Face dataset"):
        _load(bad, tmp_path)
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(InputError, match="neither a save_to_disk dataset"):
        _load(empty, tmp_path)
    # A downloaded repository with the released JSON and image archive but no Parquet view.
    (empty / "quiltvqa_test_w_ans.json").write_text("[]")
    (empty / "quilt_vqa.zip").write_bytes(b"")
    with pytest.raises(InputError, match=r"it holds quilt_vqa\.zip, quiltvqa_test_w_ans\.json: give the question"):
        _load(empty, tmp_path)


def test_image_names_resolved_in_a_zip(tmp_path):
    # A dataset whose image column holds file names, with the pictures in an archive.
    rows = [
        {"id": f"q{i}", "question": "Is it benign?", "answer": "yes", "answer_type": "CLOSED", "image": name}
        for i, name in enumerate(["x.png", "sub/y.png", "missing.png"])
    ]
    path = tmp_path / "names.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    archive = tmp_path / "pics.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pics/x.png", _png((1, 2, 3)))
        zf.writestr("pics/sub/y.png", _png((4, 5, 6)))
    data = _load(path, tmp_path, images=archive)
    assert [q.question_id for q in data.questions] == ["q0", "q1"]
    assert data.failures == [("q2", f"image 'missing.png' is not in the archive {archive}")]
    assert data.questions[1].image.endswith("pics/sub/y.png")


# --- PMC-VQA: CSV + image archive -------------------------------------------------------

PMC_HEADER = [
    "Figure_path",
    "Question",
    "Answer",
    "Choice A",
    "Choice B",
    "Choice C",
    "Choice D",
    "Caption",
    "in_quilt",
]


def _pmc(tmp_path, rows, members, header=PMC_HEADER):
    root = tmp_path / "data" / "pmc_vqa_path"
    root.mkdir(parents=True)
    with (root / "pmcvqa_pathology_subset.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    with zipfile.ZipFile(root / "pmcvqa_images.zip", "w") as zf:
        for i, name in enumerate(members):
            zf.writestr(name, _png((10 * i, 80, 200 - 10 * i), (20 + 4 * i, 30)))
    return root


PMC_ROWS = [
    [
        "PMC1_f1.jpg",
        "What is shown?",
        " B:Granuloma",
        "A:Fibrosis",
        " B:Granuloma",
        " C:Edema",
        " D:Necrosis",
        "cap",
        "False",
    ],
    [
        "PMC2_f3.jpg",
        "Which pattern?",
        "A:Solid",
        "A:Solid",
        "B:Cribriform",
        "C:Papillary",
        "D:Micropapillary",
        "cap",
        "True",
    ],  # also in Quilt: left out, as the release does
    ["PMC3_f2.jpg", "Which stain?", " D:PAS", "A:H&E", "B:Trichrome", "C:Reticulin", "D:PAS", "cap", "False"],
    ["PMC4_f9.jpg", "Which organ?", "C:Liver", "A:Lung", "B:Kidney", "C:Liver", "D:Skin", "cap", "False"],
]


def _run_args(benchmark: str, model_dir, tmp_path, *source: str) -> list[str]:
    """`eval run BENCHMARK` on the tiny model: results under tmp_path/res, image cache under tmp_path/cache."""
    return [
        "eval", "run", benchmark, "--model", str(model_dir), *source,
        "--out", str(tmp_path / "res"), "--cache", str(tmp_path / "cache"), "--resamples", "20", "-q",
    ]  # fmt: skip


def test_pmc_csv_and_zip_through_the_cli(tiny_model_dir, tmp_path):
    _pmc(tmp_path, PMC_ROWS, ["images/PMC1_f1.jpg", "images/PMC2_f3.jpg", "images/PMC3_f2.jpg"])
    args = _run_args("pmc_vqa_path", tiny_model_dir, tmp_path, "--data-root", str(tmp_path / "data"))
    r = CliRunner().invoke(make_app(), args)
    # PMC4_f9.jpg is not in the archive: named, the rest still answered, exit status non-zero.
    assert r.exit_code != 0
    assert "PMC4_f9.jpg" in str(r.exception) or "PMC4_f9.jpg" in r.output
    r = CliRunner().invoke(make_app(), [*args, "--allow-missing", "--json"])
    assert r.exit_code == 1, r.output
    res = read_json(tmp_path / "res" / "pmc_vqa_path" / "tiny-eval" / "results.json")
    assert res["layout"] == "csv_zip" and res["partial"] and res["n_questions"] == 2
    assert [f["question_id"] for f in res["generation_failures"]] == ["3"]
    assert "not in the archive" in res["generation_failures"][0]["reason"]
    prompts = {
        p["question_id"]: p["prompt"]
        for p in read_jsonl(tmp_path / "res" / "pmc_vqa_path" / "tiny-eval" / "predictions.jsonl")
    }
    assert set(prompts) == {"0", "2"} and "Granuloma" in prompts["0"]
    extracted = sorted(p.name for p in (tmp_path / "cache").rglob("*.jpg"))
    assert extracted == ["PMC1_f1.jpg", "PMC3_f2.jpg"]  # only what the kept questions need


def test_pmc_missing_filter_column_and_choice_are_named(tmp_path):
    root = _pmc(tmp_path, [r[:-1] for r in PMC_ROWS], ["PMC1_f1.jpg"], header=PMC_HEADER[:-1])
    rows = list(csv.reader((root / "pmcvqa_pathology_subset.csv").open()))
    # Without in_quilt the declaration's filter cannot be applied.
    from quilt_llava.eval.benchmarks import load_benchmark

    bench = load_benchmark("pmc_vqa_path")
    with pytest.raises(InputError, match="'in_quilt'"):
        _load(root / "pmcvqa_pathology_subset.csv", tmp_path, fmt="pmc_vqa", where=bench.where)
    with (root / "nochoice.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([[c for j, c in enumerate(r) if j != 5] for r in rows])
    with pytest.raises(InputError, match=r"'Choice C' \(option C"):
        _load(root / "nochoice.csv", tmp_path, fmt="pmc_vqa")


# --- LLaVA-Med JSON (PathVQA, SLAKE, VQA-RAD) ---------------------------------------------


def test_llava_med_json_layout_through_the_cli(tiny_model_dir, tmp_path):
    pvqa = tmp_path / "data" / "pvqa"
    (pvqa / "images" / "test").mkdir(parents=True)
    rows = []
    for i, (answer, kind) in enumerate([("yes", "CLOSED"), ("no", "CLOSED"), ("fibrin", "OPEN")]):
        Image.new("RGB", (28 + i * 8, 28), (50 * i, 90, 120)).save(pvqa / "images" / "test" / f"test_{i:04d}.jpg")
        conv_key = "conversatons" if i == 2 else "conversations"  # a key typo found in LLaVA-Med files
        rows.append(
            {
                "id": 100 + i,
                "image": f"test_{i:04d}.jpg",
                "answer_type": kind,
                conv_key: [{"from": "human", "value": f"<image>\nQuestion {i}?"}, {"from": "gpt", "value": answer}],
            }
        )
    (pvqa / "test.json").write_text(json.dumps(rows))
    r = CliRunner().invoke(
        make_app(), [*_run_args("pathvqa", tiny_model_dir, tmp_path, "--data-root", str(tmp_path / "data")), "--json"]
    )
    assert r.exit_code == 0, r.output
    res = read_json(tmp_path / "res" / "pathvqa" / "tiny-eval" / "results.json")
    assert res["layout"] == "json" and res["metrics"]["n_closed"] == 2 and res["metrics"]["n_open"] == 1
    prompts = [p["prompt"] for p in read_jsonl(tmp_path / "res" / "pathvqa" / "tiny-eval" / "predictions.jsonl")]
    assert any("Question 2?" in p for p in prompts) and all("<image>\n<image>" not in p for p in prompts)
    assert not (tmp_path / "cache").exists()  # images in a folder are read where they are


def test_slake_filter_and_missing_image_folder(tmp_path, tiny_model_dir):
    root = tmp_path / "data" / "Slake1.0"
    (root / "imgs").mkdir(parents=True)
    rows = [
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
    ]
    (root / "test.json").write_text(json.dumps(rows, ensure_ascii=False))
    data = _load(root / "test.json", tmp_path, fmt="llava_med", where={"q_lang": "en"}, images=root / "imgs")
    assert [q.question_id for q in data.questions] == ["1"] and data.image_dir == root / "imgs"
    (root / "imgs").rmdir()
    r = CliRunner().invoke(
        make_app(),
        [
            "eval",
            "run",
            "slake",
            "--model",
            str(tiny_model_dir),
            "--data-root",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "res"),
        ],
    )
    assert r.exit_code != 0 and "imgs" in str(r.exception) and "--images" in str(r.exception)


def test_hub_ids_and_local_paths(tmp_path):
    assert is_hub_id("wisdomik/Quilt_VQA") and is_hub_id("wisdomik/QuiltVQA_RED")
    for spec in ("pvqa/test.json", "quilt_vqa", "/abs/path", "a/b/c", "./x/y", "pmc/subset.csv"):
        assert not is_hub_id(spec), spec
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "name").mkdir()
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert not is_hub_id("owner/name")  # an existing local folder wins
    finally:
        os.chdir(cwd)
    with pytest.raises(InputError, match="not found"):
        read_table(str(tmp_path / "nothing.json"))


def test_quilt_declaration_without_local_copy_points_at_the_hub(tiny_model_dir, tmp_path):
    r = CliRunner().invoke(
        make_app(), ["eval", "run", "quilt_vqa", "--model", str(tiny_model_dir), "--data-root", str(tmp_path)]
    )
    assert r.exit_code != 0
    msg = str(r.exception)
    assert "--questions wisdomik/Quilt_VQA" in msg and "huggingface.co/datasets/wisdomik/Quilt_VQA" in msg


def test_quilt_vqa_dataset_through_the_cli(tiny_model_dir, quilt_saved, tmp_path):
    r = CliRunner().invoke(
        make_app(), [*_run_args("quilt_vqa", tiny_model_dir, tmp_path, "--questions", str(quilt_saved)), "--json"]
    )
    assert r.exit_code == 0, r.output
    res = read_json(tmp_path / "res" / "quilt_vqa" / "tiny-eval" / "results.json")
    assert res["layout"] == "hf_dataset" and res["metrics"]["n_open"] == 2 and res["metrics"]["n_closed"] == 2
    assert res["metrics"]["closed_answers_not_yes_no"] == []  # yes_no_answer was used


def test_shipped_declarations_name_their_published_layout():
    from quilt_llava.eval.benchmarks import builtin_benchmarks, load_benchmark

    got = {
        n: (load_benchmark(n).layout, load_benchmark(n).format, load_benchmark(n).hub_id) for n in builtin_benchmarks()
    }
    assert got == {
        "quilt_vqa": ("hf_dataset", "quilt", "wisdomik/Quilt_VQA"),
        "quilt_vqa_red": ("hf_dataset", "quilt", "wisdomik/QuiltVQA_RED"),
        "pmc_vqa_path": ("csv_zip", "pmc_vqa", None),
        "pathvqa": ("json", "llava_med", None),
        "slake": ("json", "llava_med", None),
        "vqa_rad": ("json", "llava_med", None),
    }
    assert load_benchmark("pmc_vqa_path").images.endswith(".zip")
    r = CliRunner().invoke(make_app(), ["eval", "benchmarks", "--json"])
    assert {d["name"]: d["layout"] for d in json.loads(r.stdout)}["quilt_vqa"] == "hf_dataset"
