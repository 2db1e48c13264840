"""Every instruct command through the CLI, against the loopback LLM server."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.files import read_json, read_jsonl
from tests.instruct.conftest import KEY_ENV, SECRET, first_bad, good_reply, llm_args


def invoke(*args: str):
    return CliRunner().invoke(make_app(), ["instruct", *args, "--json", "--quiet"])


def summary_of(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_align_writes_llava_json_without_llm(narratives, tmp_path):
    out = tmp_path / "out" / "align.json"
    res = invoke("align", str(narratives), "--out", str(out), "--caption", "grounded")
    assert res.exit_code == 0, res.output
    s = summary_of(res)
    assert s["records"] == 5 and s["calls"] == 0 and s["rejected"] == 0
    records = read_json(out)
    assert records[0]["conversations"][0]["value"].startswith("<image>\n")
    assert "[0.1, 0.2, 0.45, 0.6]" in records[0]["conversations"][1]["value"]
    assert records[0]["image"] == "vidA/frames/seg000.png" and records[0]["generator"] == "align"


@pytest.mark.parametrize(
    "generator,expected_records",
    [
        ("conversation", 5),
        ("detail", 5),
        ("diagnosis", 2),
        ("filter", 5),
        ("vqa", 3),
        ("reasoning", 5),
        ("abductive", 5),
    ],
)
def test_llm_generators_end_to_end(generator, expected_records, narratives, server, tmp_path):
    out = tmp_path / "out" / f"{generator}.jsonl"
    res = invoke(generator, str(narratives), "--out", str(out), *llm_args(server))
    assert res.exit_code == 0, res.output
    s = summary_of(res)
    assert s["records"] == expected_records and s["rejected"] == 0 and s["failed"] == 0, s
    records = read_jsonl(out)
    assert len(records) == expected_records
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert r["generator"] == generator and r["model"] == "test-model" and r["prompt_version"]
        assert "video_id" in r
    assert not (tmp_path / "out" / f".{generator}.jsonl.work.jsonl").exists()
    # Re-running is free: every call comes from the cache, the output is identical.
    n_requests = len(server.requests)
    text = out.read_text()
    res2 = invoke(generator, str(narratives), "--out", str(out), *llm_args(server))
    assert res2.exit_code == 0
    assert len(server.requests) == n_requests
    assert summary_of(res2)["calls"] == 0 and summary_of(res2)["cached"] > 0
    assert out.read_text() == text
    assert SECRET not in res.output + text


def test_conversation_records_shape(narratives, server, tmp_path):
    out = tmp_path / "conv.json"
    assert invoke("conversation", str(narratives), "--out", str(out), *llm_args(server)).exit_code == 0
    rec = read_json(out)[0]
    convs = rec["conversations"]
    assert [c["from"] for c in convs] == ["human", "gpt"] * 3
    assert convs[0]["value"] == "<image>\nWhat tissue is shown?"
    assert "AI" in convs[-1]["value"]


def test_abductive_stops_early_and_alternates(narratives, server, tmp_path):
    out = tmp_path / "abd.jsonl"
    assert invoke("abductive", str(narratives), "--out", str(out), *llm_args(server)).exit_code == 0
    for rec in read_jsonl(out):
        assert rec["max_turns"] in (4, 6)
        assert rec["turns"] == 4  # the scripted teacher confirms on its second message
        assert rec["conversations"][0]["value"].startswith("<image>\nI think")
        assert "[CONFIRMED]" not in rec["conversations"][-1]["value"]


def test_vqa_types_and_redcircle(narratives, server, tmp_path):
    vqa_out = tmp_path / "vqa.jsonl"
    assert invoke("vqa", str(narratives), "--out", str(vqa_out), *llm_args(server)).exit_code == 0
    items = read_jsonl(vqa_out)
    by_q = {i["question"]: i for i in items}
    assert by_q["Do you see the keratin pearls in the centre?"]["yes_no_answer"] == "yes"
    assert by_q["Is there any gland formation here?"]["yes_no_answer"] == "no"
    assert by_q["What lines the subcapsular sinus?"]["answer_type"] == "OPEN"
    assert all(i["narrator_question"].endswith("?") for i in items)

    rc_out = tmp_path / "vqa_rc.jsonl"
    res = invoke("redcircle", str(narratives), "--questions", str(vqa_out), "--out", str(rc_out))
    assert res.exit_code == 0, res.output
    rc = read_jsonl(rc_out)
    assert [r["question"] for r in rc] == [i["question"] for i in items]
    first = rc[0]
    assert first["image"] == "vidA/frames/seg000_redcircle_c1.png"  # the question was asked over cluster 2
    img = Image.open(narratives.parent / first["image"]).convert("RGB")
    orig = Image.open(narratives.parent / first["source_image"]).convert("RGB")
    assert img.size == orig.size and img.tobytes() != orig.tobytes()
    assert (255, 0, 0) in {img.getpixel((x, y)) for x in range(32) for y in range(24)}


def test_repair_then_reject_and_exit_status(narratives, tmp_path):
    from tests.fake_openai import FakeOpenAIServer

    leaky = json.dumps({"pairs": [{"question": "q?", "answer": "The caption says tumour at [0.1, 0.2]."}] * 3})
    with FakeOpenAIServer(responder=first_bad(leaky)) as srv:
        out = tmp_path / "conv.jsonl"
        res = invoke("conversation", str(narratives), "--out", str(out), *llm_args(srv))
        assert res.exit_code == 0, res.output  # every reply was repaired
        assert summary_of(res)["records"] == 5
        assert len(srv.requests) == 11  # the structured-output probe, then one repair per unit

    with FakeOpenAIServer(responder=lambda m, b: "not json at all") as srv:
        out = tmp_path / "bad" / "conv.jsonl"  # another folder: another cache
        res = invoke("conversation", str(narratives), "--out", str(out), *llm_args(srv))
        assert res.exit_code == 1
        s = summary_of(res)
        assert s["rejected"] == 5 and s["records"] == 0
        rejects = read_jsonl(tmp_path / "bad" / "conv.rejects.jsonl")
        assert len(rejects) == 5 and rejects[0]["raw"] == "not json at all"
        assert "not a JSON object" in rejects[0]["reason"]
        assert s["rejects_by_reason"] == {"not_json": 5} and rejects[0]["reason_code"] == "not_json"
        assert out.exists() and out.read_text() == ""


def test_leaky_detail_is_rejected(narratives, tmp_path):
    from tests.fake_openai import FakeOpenAIServer

    bad = "As the narrator says in the transcript, this box at coordinates 0.45 shows tumour cells clearly."
    with FakeOpenAIServer(responder=lambda m, b: bad) as srv:
        out = tmp_path / "detail.jsonl"
        res = invoke("detail", str(narratives), "--out", str(out), *llm_args(srv), "--limit", "1")
        assert res.exit_code == 1
        [rej] = read_jsonl(tmp_path / "detail.rejects.jsonl")
        assert "narration" in rej["reason"] and "coordinates" in rej["reason"]


def test_api_failures_are_counted_and_rerun_completes(narratives, tmp_path):
    from tests.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(responder=good_reply) as srv:
        srv.fail_next(100, status=503, retry_after=None)
        out = tmp_path / "filter.jsonl"
        res = invoke("filter", str(narratives), "--out", str(out), *llm_args(srv), "--max-retries", "0")
        assert res.exit_code == 1
        s = summary_of(res)
        assert s["failed"] == 5 and s["complete"] is False
        assert (tmp_path / ".filter.jsonl.work.jsonl").exists()
        srv._faults.clear()
        res = invoke("filter", str(narratives), "--out", str(out), *llm_args(srv))
        assert res.exit_code == 0, res.output
        s = summary_of(res)
        assert s["records"] == 5 and s["failed"] == 0 and s["complete"] is True
    rows = read_jsonl(out)
    assert [r["medical"] for r in rows] == [True, True, True, True, False]
    assert not (tmp_path / "filter.rejects.jsonl").read_text().strip()


def test_dry_run_counts_calls_and_sends_nothing(narratives, server, tmp_path):
    out = tmp_path / "conv.jsonl"
    res = invoke("conversation", str(narratives), "--out", str(out), *llm_args(server), "--dry-run")
    assert res.exit_code == 0, res.output
    s = summary_of(res)
    assert s["calls_needed"] == 5 and s["calls_cached"] == 0 and s["prompt_tokens_estimate"] > 100
    assert s["completion_tokens_at_most"] == 5 * 512
    assert server.requests == [] and not out.exists()
    invoke("conversation", str(narratives), "--out", str(out), *llm_args(server), "--limit", "2")
    s = summary_of(invoke("conversation", str(narratives), "--out", str(out), *llm_args(server), "--dry-run"))
    assert s["calls_needed"] == 3 and s["calls_cached"] == 2
    s = summary_of(
        invoke("reasoning", str(narratives), "--out", str(tmp_path / "r.jsonl"), *llm_args(server), "--dry-run")
    )
    assert s["calls_needed"] == 5 + 2  # one per segment plus one diagnosis per video


def test_limit_and_bad_rows(tmp_path, server):
    from tests.instruct.conftest import make_rows, write_narratives

    folder = tmp_path / "nar"
    folder.mkdir()
    rows = make_rows(folder)
    del rows[1]["image"]
    path = write_narratives(folder, rows)
    out = tmp_path / "align.jsonl"
    res = invoke("align", str(path), "--out", str(out), "--limit", "2")
    assert res.exit_code == 1  # a row was left out
    s = summary_of(res)
    assert s["bad_input_rows"] == 1 and s["units"] == 2 and s["records"] == 2
    assert "missing key 'image'" in res.stderr


def test_reasoning_uses_diagnoses_file(narratives, server, tmp_path):
    diag = tmp_path / "diag.jsonl"
    assert invoke("diagnosis", str(narratives), "--out", str(diag), *llm_args(server)).exit_code == 0
    n = len(server.requests)
    out = tmp_path / "reason.jsonl"
    res = invoke(
        "reasoning",
        str(narratives),
        "--out",
        str(out),
        *llm_args(server, "--diagnoses", str(diag), "--no-cache", "--structured", "off"),
    )
    assert res.exit_code == 0, res.output
    assert len(server.requests) == n + 5  # no diagnosis calls
    recs = read_jsonl(out)
    assert "squamous cell carcinoma" not in json.dumps(recs).lower()


def test_flaky_server_still_gives_the_same_output(narratives, tmp_path):
    from tests.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(responder=good_reply) as srv:
        clean = tmp_path / "clean" / "conv.jsonl"
        assert invoke("conversation", str(narratives), "--out", str(clean), *llm_args(srv)).exit_code == 0
        srv.fail_next(2, status=429, retry_after=0.05)
        srv.garbage_next(1)
        srv.fail_next(1, status=500, retry_after=None)
        srv.slow_next(1, seconds=1.5)
        out = tmp_path / "flaky" / "conv.jsonl"
        res = invoke(
            "conversation",
            str(narratives),
            "--out",
            str(out),
            *llm_args(srv, "--timeout", "0.5"),
            "--max-retries",
            "4",
            "--structured",
            "off",
        )  # no probe taking the injected faults
        assert res.exit_code == 0, res.output
        assert summary_of(res)["retries"] >= 5
    assert out.read_text() == clean.read_text()


@pytest.mark.parametrize("pad", [0, 200])
def test_key_stays_out_of_every_file_and_message(narratives, tmp_path, monkeypatch, pad):
    from tests.fake_openai import FakeOpenAIServer
    from tests.instruct.test_llm import LONG_SECRET, key_fragments

    monkeypatch.setenv(KEY_ENV, LONG_SECRET)  # a long key would be cut in two by clipping before scrubbing
    with FakeOpenAIServer(responder=good_reply) as srv:
        srv.echo_headers_next(3, status=401, pad=pad)
        out = tmp_path / "out" / "detail.jsonl"
        res = invoke("detail", str(narratives), "--out", str(out), *llm_args(srv), "--concurrency", "1")
        assert res.exit_code == 1
        assert srv.request_headers[0]["Authorization"] == f"Bearer {LONG_SECRET}"
    rejects = read_jsonl(tmp_path / "out" / "detail.rejects.jsonl")
    assert len(rejects) == 3 and all(r["status"] == "failed" and "HTTP 401" in r["reason"] for r in rejects)
    files = list((tmp_path / "out").iterdir())
    assert any(f.name.endswith(".work.jsonl") for f in files) and any(f.suffix == ".sqlite" for f in files)
    for f in files:  # rejects file, work journal, response cache, output
        assert key_fragments(f.read_bytes().decode("utf-8", "replace")) == [], f
    assert key_fragments(res.stdout + res.stderr) == []


def test_medical_filter_restricts_other_generators_and_python_api(narratives, server, tmp_path):
    from quilt_llava.instruct.run import GenerateOptions, run_generator

    filt = tmp_path / "filter.jsonl"
    assert invoke("filter", str(narratives), "--out", str(filt), *llm_args(server)).exit_code == 0
    res = invoke(
        "detail",
        str(narratives),
        "--out",
        str(tmp_path / "detail.jsonl"),
        *llm_args(server),
        "--medical-filter",
        str(filt),
    )
    s = summary_of(res)
    assert res.exit_code == 0 and s["records"] == 4 and s["filtered_out_non_medical"] == 1

    summary = run_generator(
        GenerateOptions(
            generator="detail",
            narratives=narratives,
            out=tmp_path / "py" / "d.json",
            base_url=server.base_url,
            model="test-model",
            api_key_env="QL_INSTRUCT_TEST_KEY",
        )
    )
    assert summary["records"] == 5 and summary["complete"]
    assert (tmp_path / "py" / "llm_cache.sqlite").exists()
    assert len(read_json(tmp_path / "py" / "d.json")) == 5


def test_region_qa_command(narratives, tmp_path):
    terms = tmp_path / "terms.yaml"
    terms.write_text(
        "labels:\n"
        "  - {name: tumour, keywords: [tumour, atypical, nests], description: tumour nests, closed_question: 'Is this "
        "tumour?'}\n"
        "  - {name: benign, keywords: [normal, follicles, capsule], description: benign tissue}\n"
        "crops_per_cluster: 2\neval_crops_per_cluster: 1\neval_fraction: 0.4\n",
        encoding="utf-8",
    )
    out = tmp_path / "rqa"
    res = invoke("region-qa", str(narratives), "--terms", str(terms), "--out", str(out))
    assert res.exit_code == 0, res.output
    s = summary_of(res)
    assert s["train_records"] + s["eval_questions"] > 0 and set(s["label_counts"]) <= {"tumour", "benign"}
    for name in ("train.jsonl", "align.jsonl", "eval_questions.jsonl", "summary.json"):
        assert (out / name).exists()
    assert all((out / r["image"]).exists() for r in read_jsonl(out / "train.jsonl"))


def test_help_shows_the_cache_default_and_endpoint_env_vars():
    res = CliRunner().invoke(make_app(), ["instruct", "detail", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "llm_cache.sqlite" in res.stdout  # not eaten as rich markup
    assert "QUILT_LLAVA_LLM_BASE_URL" in res.stdout and "QUILT_LLAVA_LLM_MODEL" in res.stdout
    for command in (["eval", "judge"], ["demo"]):  # one set of endpoint variables across the project
        res = CliRunner().invoke(make_app(), [*command, "--help"], env={"COLUMNS": "200"})
        assert "QUILT_LLAVA_LLM_BASE_URL" in res.stdout and "QUILT_LLAVA_LLM_MODEL" in res.stdout, command


def test_endpoint_and_model_from_the_environment(narratives, server, tmp_path):
    out = tmp_path / "detail.jsonl"
    res = CliRunner().invoke(
        make_app(),
        ["instruct", "detail", str(narratives), "--out", str(out), "--api-key-env", KEY_ENV, "--quiet"],
        env={"QUILT_LLAVA_LLM_BASE_URL": server.base_url, "QUILT_LLAVA_LLM_MODEL": "env-model"},
    )
    assert res.exit_code == 0, res.output
    assert len(server.requests) == 5 and {b["model"] for b in server.requests} == {"env-model"}


def _flag_non_tissue(tmp_path, segments: set[tuple[str, int]]):
    """Narratives as `narratives extract --keep-non-tissue` writes them: every row flagged, these not tissue."""
    from tests.instruct.conftest import make_rows, write_narratives

    folder = tmp_path / "flagged"
    folder.mkdir()
    rows = make_rows(folder)
    for row in rows:
        row["is_tissue"] = (row["video_id"], row["segment_id"]) not in segments
        row["tissue"] = 0.9 if row["is_tissue"] else 0.1
    return write_narratives(folder, rows), rows


def test_rows_that_are_not_tissue_are_left_out_and_counted_unless_included(tmp_path, server):
    path, rows = _flag_non_tissue(tmp_path, {("vidA", 1)})
    not_tissue = [r["segment_id"] for r in rows if not r["is_tissue"]]
    assert len(not_tissue) == 1 and len(rows) == 5
    out = tmp_path / "align.jsonl"
    res = invoke("align", str(path), "--out", str(out))
    assert res.exit_code == 0, res.output  # left out on purpose: not an error
    s = summary_of(res)
    assert s["non_tissue_skipped"] == 1 and s["units"] == 4 and s["records"] == 4
    assert all(not r["image"].endswith("seg001.png") or r["video_id"] != "vidA" for r in read_jsonl(out))
    res = invoke("align", str(path), "--out", str(out), "--include-non-tissue")
    assert summary_of(res)["non_tissue_skipped"] == 0 and summary_of(res)["records"] == 5
    # LLM generators too: no prompt is sent about a view that is not tissue.
    conv = tmp_path / "conv.jsonl"
    res = invoke("conversation", str(path), "--out", str(conv), *llm_args(server))
    assert res.exit_code == 0, res.output
    assert summary_of(res)["non_tissue_skipped"] == 1 and summary_of(res)["records"] == 4
    said = next(r for r in rows if not r["is_tissue"])["utterances"][0]["text"]
    assert any("invasive tumour" in json.dumps(req) for req in server.requests)  # the requests hold the narration
    assert not any(json.dumps(said)[1:-1] in json.dumps(req) for req in server.requests)
    # Rows without the flag (another tool's data) are all tissue.
    from quilt_llava.instruct.data import drop_non_tissue

    assert drop_non_tissue([{"a": 1}, {"is_tissue": True}, {"is_tissue": False}]) == (
        [{"a": 1}, {"is_tissue": True}],
        1,
    )


def test_region_qa_leaves_out_rows_that_are_not_tissue(tmp_path):
    from quilt_llava.instruct.region_qa import RegionQAConfig, write_region_qa

    path, _ = _flag_non_tissue(tmp_path, {("vidA", 0), ("vidB", 0)})
    terms = tmp_path / "terms.yaml"
    terms.write_text(
        "labels:\n  - {name: tumour, keywords: [tumour, atypical, nests], description: tumour nests}\n"
        "  - {name: benign, keywords: [normal, follicles, capsule], description: benign tissue}\n",
        encoding="utf-8",
    )
    config = RegionQAConfig.from_yaml(terms)
    skipped = write_region_qa(path, tmp_path / "a", config)
    kept = write_region_qa(path, tmp_path / "b", config, include_non_tissue=True)
    assert skipped["non_tissue_skipped"] == 2 and kept["non_tissue_skipped"] == 0
    used = {r["image"] for r in read_jsonl(tmp_path / "a" / "align.jsonl")}
    assert not any(name.endswith(("vidA/frames/seg000.png", "vidB/frames/seg000.png")) for name in used)
    assert kept["segment_align_records"] > skipped["segment_align_records"]
