"""Reply parsing and validation rules, one generator at a time."""

from __future__ import annotations

import json

import pytest

from quilt_llava.instruct.data import caption_of, check_row, describe_segment, load_narratives
from quilt_llava.instruct.generators import (
    abductive,
    conversation,
    detail,
    diagnosis,
    medical_filter,
    reasoning,
    vqa,
)
from quilt_llava.instruct.generators.base import GeneratorOptions
from quilt_llava.instruct.generators.redcircle import circled_image_path, pick_cluster
from quilt_llava.instruct.replies import ReplyError, leak_problems, parse_json_object
from tests.instruct.conftest import make_rows, write_narratives


@pytest.mark.parametrize(
    "text",
    [
        "According to the caption, these are glands.",
        "The text mentions necrosis.",
        "As the narrator explains, this is a tumour.",
        "The region at [0.12, 0.4, 0.5, 0.9] shows nests.",
        "In the bounding box you can see cells.",
        "The provided text suggests carcinoma.",
        # coordinate lists in brackets or parentheses, any number of digits
        "The nests at (0.1, 0.2, 0.5, 0.6) are atypical.",
        "Nests lie at (0.12, 0.3).",
        "Look at [.5, .25, .75, 1].",
        "Necrosis sits at [0, 0.125, 0.4375, 1].",
        "The gland (0.123456, 0.5) is dilated.",
        "Cells at 0.1, 0.2, 0.5, 0.6 are atypical.",
        # x=/y= positions
        "The mitosis is at x=0.5, y=0.3.",
        "Look near x: 0.62.",
        "Around y0 = 0.2 the stroma thickens.",
        # the material instead of the image
        "According to the description, these are glands.",
        "As described, the nuclei are enlarged.",
        "As was mentioned, this is a tumour.",
        "The teaching video shows a carcinoma.",
        "The lecture points out keratin pearls.",
        "The given description mentions necrosis.",
    ],
)
def test_leaks_are_found(text):
    assert leak_problems(text)


@pytest.mark.parametrize(
    "text",
    [
        "Nests of atypical squamous cells fill the upper left of the image.",
        "The nuclei measure about 0.25 mm and the lesion is 1.5 cm wide.",
        "Texture of the stroma is loose; textual descriptions aside, it is oedematous.",
        # single decimals in prose are measurements, not coordinates
        "The nuclear-to-cytoplasmic ratio of 0.80 is high.",
        "The difference was significant (p < 0.05).",
        "The cells near 0.45 across are atypical.",
        "Ki-67 labels 0.3 of the nuclei (about 30%).",
        "Grade 2 (of 3) tumour with a mitotic count of 12 (per 10 HPF).",
        "Two cell types (1, 2) are seen.",
        "The index is 1.5, 2.5 and 3 in the three fields.",
        "The features described above (in my first answer) suggest carcinoma.",  # its own earlier turns
        "Type x cells, described in many textbooks, line the ducts; a boxer's fracture is unrelated.",
    ],
)
def test_clean_answers_pass(text):
    assert leak_problems(text) == []


def test_json_object_extraction():
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Sure! Here it is: {"a": [1, 2]} Hope this helps.') == {"a": [1, 2]}
    for bad in ("no json", "[1, 2]", '{"a": }'):
        with pytest.raises(ReplyError):
            parse_json_object(bad)


def _pairs(n, last="I am an AI, not a doctor; a pathologist should confirm."):
    pairs = [{"question": f"Question {i}?", "answer": f"Answer {i}."} for i in range(n - 1)]
    return json.dumps({"pairs": [*pairs, {"question": "Final?", "answer": f"Final answer. {last}"}]})


def test_conversation_rules():
    assert len(conversation.parse_reply(_pairs(3))) == 3
    assert len(conversation.parse_reply(_pairs(4))) == 4
    with pytest.raises(ReplyError, match="3 to 4"):
        conversation.parse_reply(_pairs(2))
    with pytest.raises(ReplyError, match="5"):
        conversation.parse_reply(_pairs(5))
    with pytest.raises(ReplyError, match="AI"):
        conversation.parse_reply(_pairs(3, last="That is all."))
    with pytest.raises(ReplyError, match="caption"):
        conversation.parse_reply(_pairs(3, last="The caption says so; I am an AI, not a doctor."))


def test_detail_rules():
    with pytest.raises(ReplyError, match="too short"):
        detail.parse_reply("Tumour.")
    with pytest.raises(ReplyError, match="JSON"):
        detail.parse_reply('{"description": "a long enough description of the tissue here"}')
    assert detail.parse_reply("  Sheets of cells with pink cytoplasm cover the centre of the field.  ").startswith(
        "Sheets"
    )


def test_diagnosis_forms():
    assert diagnosis.parse_reply('{"diagnosis": ["melanoma"], "clues": ["pigment"]}')["diagnosis"] == ["melanoma"]
    normal = diagnosis.parse_reply('{"normal": "Normal histology of kidney.", "clues": []}')
    assert normal["normal"] == "normal histology of kidney" and normal["diagnosis"] == []
    assert diagnosis.parse_reply('{"diagnosis": [], "clues": []}')["diagnosis"] == []
    for bad in (
        '{"normal": "kidney", "clues": []}',
        '{"clues": ["x"]}',
        '{"diagnosis": ["x"], "clues": []}',
        '{"diagnosis": "melanoma", "clues": [3]}',
    ):
        with pytest.raises(ReplyError):
            diagnosis.parse_reply(bad)


def test_reasoning_must_not_name_the_diagnosis():
    case = {"diagnosis": ["Squamous cell carcinoma"], "clues": []}
    parse = reasoning.make_parser(case)
    ok = json.dumps(
        {"question": "What do the pink whorls suggest?", "answer": "A keratinizing process, likely malignant."}
    )
    assert parse(ok)[0].startswith("What")
    bad = json.dumps({"question": "What is it?", "answer": "This is squamous cell carcinoma."})
    with pytest.raises(ReplyError, match="names the diagnosis"):
        parse(bad)


def test_abductive_markers_and_turn_weights():
    text, stop = abductive.parse_teacher("Yes, well reasoned. [CONFIRMED]")
    assert stop and text == "Yes, well reasoned."
    assert abductive.parse_teacher("Look again at the borders of the cells.") == (
        "Look again at the borders of the cells.",
        False,
    )
    with pytest.raises(ReplyError):
        abductive.parse_student("   ")
    gen = abductive.AbductiveGenerator(GeneratorOptions(seed=0))
    from quilt_llava.instruct.generators.base import Unit

    counts = [gen.turns_for(Unit(f"u{i}", "v", [{}])) for i in range(2000)]
    share6 = counts.count(6) / len(counts)
    assert set(counts) == {4, 6} and 0.12 < share6 < 0.18


def test_filter_parsing():
    assert medical_filter.parse_reply('{"medical": "Yes", "diagnosis": "no"}') == {
        "medical": True,
        "diagnosis_discernible": False,
    }
    with pytest.raises(ReplyError):
        medical_filter.parse_reply('{"medical": "maybe", "diagnosis": "no"}')


def test_narrator_questions_span_utterances_and_skip_short_ones(tmp_path):
    row = {
        "utterances": [
            {"start": 0, "end": 1, "text": "Okay? Now look at these cells. What do you think"},
            {"start": 1, "end": 2, "text": "they are? They are plasma cells. Is that clear"},
            {"start": 2, "end": 3, "text": "to everyone?"},
        ]
    }
    qs = vqa.narrator_questions(row)
    assert [q["text"] for q in qs] == ["What do you think they are?", "Is that clear to everyone?"]
    assert (qs[0]["start"], qs[0]["end"]) == (0, 2)


def test_vqa_parser_checks_sources_and_types():
    qs = [{"text": "Do you see the keratin pearls?", "start": 0, "end": 1}]
    parse = vqa.make_parser(qs)
    good = {
        "source": 1,
        "question": "Are keratin pearls present?",
        "answer": "Yes.",
        "answer_type": "CLOSED",
        "yes_no_answer": "yes",
    }
    assert parse(json.dumps({"pairs": [good]}))[0]["yes_no_answer"] == "yes"
    assert parse('{"pairs": []}') == []
    for change in (
        {"source": 2},
        {"answer_type": "MAYBE"},
        {"yes_no_answer": "perhaps"},
        {"answer": "No."},
        {"question": "What colour is the sky?"},
    ):
        with pytest.raises(ReplyError):
            parse(json.dumps({"pairs": [{**good, **change}]}))


@pytest.mark.parametrize(
    ("answer", "yn", "ok"),
    [
        ("Yes.", "yes", True),
        ("Normal lymph node tissue, yes.", "yes", True),  # starts with "no..." but is no "no"
        ("Nothing abnormal is seen.", "no", True),
        ("None are seen.", "no", True),
        ("Notably, yes.", "yes", True),
        ("yes, clearly", "yes", True),
        ("  NO, there are none.", "no", True),
        ("No.", "yes", False),
        ("No, not here.", "yes", False),
        ("Yes, keratin pearls.", "no", False),
    ],
)
def test_vqa_closed_answer_agrees_with_yes_no_by_its_first_word(answer, yn, ok):
    qs = [{"text": "Do you see the keratin pearls?", "start": 0, "end": 1}]
    pair = {
        "source": 1,
        "question": "Are keratin pearls present?",
        "answer": answer,
        "answer_type": "CLOSED",
        "yes_no_answer": yn,
    }
    parse = vqa.make_parser(qs)
    if ok:
        assert parse(json.dumps({"pairs": [pair]}))[0]["yes_no_answer"] == yn
    else:
        with pytest.raises(ReplyError, match="yes_no_answer"):
            parse(json.dumps({"pairs": [pair]}))


def test_redcircle_cluster_choice():
    row = {
        "clusters": [{"box": [0, 0, 0.5, 0.5], "start": 0, "end": 4}, {"box": [0.5, 0.5, 1, 1], "start": 4, "end": 8}]
    }
    assert pick_cluster(row, [5, 6]) == 1
    assert pick_cluster(row, [1, 2]) == 0
    assert pick_cluster(row, [20, 21]) == 1  # nearest in time
    assert pick_cluster(row, None) == 0
    assert pick_cluster({"clusters": []}, [0, 1]) is None
    assert circled_image_path("v/frames/s1.png", 2) == "v/frames/s1_redcircle_c2.png"


def test_rows_and_captions(tmp_path):
    rows = make_rows(tmp_path)
    assert caption_of(rows[0], "grounded").endswith("[0.5, 0.35, 0.9, 0.8]")
    assert "[" not in caption_of(rows[0], "plain")
    assert "box [0.10, 0.20, 0.45, 0.60]" in describe_segment(rows[0])
    assert check_row({"video_id": "v", "segment_id": 1, "image": "x", "clusters": [{"box": [1, 2]}]})
    rows.append(dict(rows[0]))
    path = write_narratives(tmp_path / "n2", rows)
    kept, problems = load_narratives(path)
    assert len(kept) == len(rows) - 1 and "duplicate segment" in problems[0]
