"""Quality gates: each gate catches its failure, the golden examples pass, the runner reports reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import ConfigError
from quilt_llava.files import read_json, read_jsonl
from quilt_llava.instruct import gates
from quilt_llava.instruct.data import llava_record
from quilt_llava.instruct.gates import GateConfig, gate_records, guess_language
from tests.fake_openai import FakeOpenAIServer
from tests.instruct.conftest import good_reply, llm_args

SNAPSHOTS = Path(__file__).parent / "snapshots"
DEFAULT = GateConfig()


def rec(*turns: tuple[str, str]) -> dict:
    return llava_record("r", "img.png", list(turns), {})


def codes(record: dict, describes: bool = False, cut: tuple[str, ...] = ()) -> list[str]:
    _, rejected = gate_records([record], DEFAULT, describes, cut)
    return sorted({f.gate for _, fails in rejected for f in fails})


GOOD = (
    "What stands out in the upper left?",
    "Nests of atypical squamous cells with pink cytoplasm fill the upper left part of the field.",
)


def test_a_good_record_passes():
    assert codes(rec(GOOD)) == []


@pytest.mark.parametrize(
    "answer",
    [
        "The pathologist spoke to the audience about the gland in the centre of the image today.",
        "As the narrator says, the glands are positive for the stain in this field.",
        "The region at [0.12, 0.30, 0.55, 0.80] shows tumour cells with brown membranes.",
        "In the video the stroma stays blue and the tumour cells are clearly brown.",
        "The caption describes brown membranes around every tumour cell in this field.",
        # what SmolLM2-135M-Instruct wrote for the demo's segments
        "The pathologist speaking on screen is describing the tissue they are examining in the gland.",
        "The pathologist examined the tissue sample and found that it was composed of many cells.",
    ],
)
def test_mentions_of_the_source_are_rejected(answer):
    assert codes(rec(("What is shown here?", answer))) == ["mentions_source"]


@pytest.mark.parametrize(
    "answer",
    [
        "The tissue shows its features, its features, its features, its features, its features, its features.",
        "Tumour cells are positive. " * 4,
        "The glands are lined by cells and " + "the cells are brown and " * 5 + "done.",
    ],
)
def test_degenerate_repetition_is_rejected(answer):
    assert "repetition" in codes(rec(("What is shown here?", answer)))


def test_turns_copying_each_other_are_repetition():
    """SmolLM2's abductive dialogue: the student repeats itself and the teacher echoes it."""
    said = "The image is a clear and detailed image of a stroma, with a clear outline of the epithelium."
    looping_question = f"{said} The stroma is unstained. {said} {said}"
    assert codes(rec((looping_question, "The stroma is blue and the glands are brown in this field."))) == [
        "repetition"
    ]
    echo = rec((said, said + " It is positive."), (said + " It is positive.", said))
    assert "repetition" in codes(echo)


def test_a_long_varied_answer_is_not_repetition():
    answer = (
        "The upper half holds glands lined by columnar cells whose membranes stain strongly brown, while the "
        "lower half is loose fibrous stroma with pale blue spindle nuclei and no chromogen at all; between "
        "them a thin band of inflammatory cells separates the two compartments."
    )
    assert gates.repetition_problem(answer, DEFAULT) is None


def test_a_reply_cut_mid_sentence_is_rejected_but_a_finished_one_is_not():
    answer = "The glands in the centre show strong brown membranes and the stroma"
    assert codes(rec(("What is shown?", answer)), cut=(answer,)) == ["truncated"]
    finished = "The glands in the centre show strong brown membranes."
    assert codes(rec(("What is shown?", finished)), cut=(finished,)) == []


def test_short_answers_where_a_description_is_asked():
    assert codes(rec(("Describe the tissue in detail.", "Tumour."))) == ["too_short"]
    assert codes(rec(("Is the stroma stained?", "No."))) == []  # a closed question may be one word
    assert codes(rec(("Any findings?", "Tumour cells.")), describes=True) == ["too_short"]
    assert codes(rec(("Is it stained?", "  "))) == ["too_short"]  # empty never passes


def test_duplicate_questions_within_and_across_records():
    dup = rec(
        ("Where are the tumour cells?", "In the upper left corner of the field, in small nests."),
        ("Where are the tumour cells?", "They lie in the upper left corner, in nests."),
    )
    assert codes(dup) == ["duplicate_question"]
    a = rec(("Which stain is used here?", "A brown immunohistochemical stain with a blue counterstain."))
    b = rec(("Which stain is used here?", "Brown chromogen on the membranes, blue counterstain elsewhere."))
    kept, rejected = gate_records([a, b], DEFAULT)
    assert kept == [a] and rejected[0][1][0].gate == "duplicate_question"


@pytest.mark.parametrize(
    "answer,lang",
    [
        ("Les cellules tumorales sont positives et la membrane est marquée par le chromogène dans cette zone.", "fr"),
        ("Die Tumorzellen sind positiv und die Membran ist mit dem Chromogen in diesem Bereich markiert.", "de"),
        ("Las células tumorales son positivas y la membrana está marcada por el cromógeno en esta zona.", "es"),
        ("肿瘤细胞呈阳性，细胞膜在该区域被显色剂标记。", "non-latin"),
    ],
)
def test_answers_in_another_language(answer, lang):
    assert guess_language(answer, DEFAULT) == lang
    assert codes(rec(("What do the tumour cells show in this area?", answer))) == ["language"]


def test_medical_terms_do_not_make_english_foreign():
    text = (
        "Carcinoma in situ with comedo necrosis; the lamina propria and the muscularis mucosae are intact, "
        "and the tumour is positive for the marker."
    )
    assert guess_language(text, DEFAULT) == "en"


def test_golden_examples_pass_every_gate(narratives, tmp_path):
    """Defaults pass every record the project's golden examples make (stage 1 and every LLM generator)."""
    # Stage-1 records are not gated by the runner (no LLM wrote them); their plain-caption form
    # still passes. (The grounded form carries boxes on purpose.)
    plain = [r for r in read_json(SNAPSHOTS / "align_golden.json") if r["caption"] == "plain"]
    assert plain
    for record in plain:  # one unit per segment
        assert gate_records([record], DEFAULT)[1] == []
    with FakeOpenAIServer(responder=good_reply) as srv:
        for gen in ("conversation", "detail", "diagnosis", "filter", "vqa", "reasoning", "abductive"):
            out = tmp_path / "o" / f"{gen}.jsonl"
            res = CliRunner().invoke(
                make_app(), ["instruct", gen, str(narratives), "--out", str(out), *llm_args(srv), "--json", "--quiet"]
            )
            assert res.exit_code == 0, res.output
            summary = json.loads(res.stdout.strip().splitlines()[-1])
            assert summary["gates"] == "on" and summary["gated_records"] == 0, (gen, summary)


def _looping(messages, body):
    if messages[0]["content"].startswith("You write reference descriptions"):
        return "The tissue shows its features, " + "its features, " * 30
    return good_reply(messages, body)


def test_runner_moves_gated_records_to_rejects_and_no_gates_keeps_them(narratives, tmp_path):
    with FakeOpenAIServer(responder=_looping) as srv:
        out = tmp_path / "detail.jsonl"
        args = ["instruct", "detail", str(narratives), "--out", str(out), *llm_args(srv), "--json", "--quiet"]
        res = CliRunner().invoke(make_app(), args)
        assert res.exit_code == 1
        s = json.loads(res.stdout.strip().splitlines()[-1])
        assert s["records"] == 0 and s["rejected"] == 5 and s["rejects_by_reason"] == {"repetition": 5}
        rejects = read_jsonl(tmp_path / "detail.rejects.jsonl")
        assert {r["reason_code"] for r in rejects} == {"repetition"} and all(r["reason"] for r in rejects)
        assert rejects[0]["record"]["conversations"][1]["value"].startswith("The tissue shows")
        n = len(srv.requests)
        res = CliRunner().invoke(make_app(), [*args, "--no-gates"])
        assert res.exit_code == 0, res.output
        s = json.loads(res.stdout.strip().splitlines()[-1])
        assert s["records"] == 5 and s["gates"] == "off" and len(srv.requests) == n  # replies from the cache


def test_token_limit_cut_is_gated(narratives, tmp_path):
    with FakeOpenAIServer(responder=good_reply) as srv:  # the fake server cuts replies at max_tokens words
        out = tmp_path / "detail.jsonl"
        res = CliRunner().invoke(
            make_app(),
            [
                "instruct",
                "detail",
                str(narratives),
                "--out",
                str(out),
                *llm_args(srv, "--max-tokens", "12"),
                "--json",
                "--quiet",
            ],
        )
        s = json.loads(res.stdout.strip().splitlines()[-1])
        assert s["rejects_by_reason"] == {"truncated": 5}


def test_gate_config_file_and_errors(tmp_path, narratives):
    path = tmp_path / "gates.yaml"
    path.write_text("min_description_words: 200\n")
    assert GateConfig.from_yaml(path).min_description_words == 200
    with FakeOpenAIServer(responder=good_reply) as srv:
        res = CliRunner().invoke(
            make_app(),
            [
                "instruct",
                "detail",
                str(narratives),
                "--out",
                str(tmp_path / "d.jsonl"),
                *llm_args(srv),
                "--gates",
                str(path),
                "--json",
                "--quiet",
            ],
        )
        assert json.loads(res.stdout.strip().splitlines()[-1])["rejects_by_reason"] == {"too_short": 5}
    with pytest.raises(ConfigError) as err:
        GateConfig.from_dict({"max_repeat": 1, "gates": ["bogus"]})
    assert "max_repeat" in str(err.value)
    with pytest.raises(ConfigError) as err:
        GateConfig.from_dict({"gates": ["bogus"], "max_question_similarity": 2})
    assert "bogus" in str(err.value) and "max_question_similarity" in str(err.value)
