"""LLM judge: prompt snapshots, score parsing, retries against a fake server, summaries."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quilt_llava.eval.judge import (
    JUDGE_REMINDER,
    JUDGE_SYSTEM,
    REFERENCE_SYSTEM,
    ajudge_answers,
    awrite_references,
    judge_answers,
    judge_messages,
    parse_scores,
    read_reviews,
    reference_messages,
    summarize_reviews,
    to_judge_questions,
    write_references,
)
from quilt_llava.files import read_jsonl
from quilt_llava.instruct.llm import LLMClient, LLMConfig
from tests.fake_openai import FakeOpenAIServer

GOLDEN = Path(__file__).parent / "golden"
CAPTION = "Nests of atypical cells [0.12, 0.3, 0.55, 0.71], with a desmoplastic stroma [0.6, 0.1, 0.95, 0.5]"


def _render(messages: list[dict[str, str]]) -> str:
    return "".join(f"=== {m['role']} ===\n{m['content']}\n" for m in messages)


@pytest.mark.parametrize(
    ("name", "messages"),
    [
        ("reference_prompt.txt", reference_messages("What pattern do the cells form?", CAPTION)),
        (
            "judge_prompt.txt",
            judge_messages("What pattern do the cells form?", CAPTION, "The cells form nests.", "They form sheets."),
        ),
        ("judge_reminder.txt", [{"role": "user", "content": JUDGE_REMINDER}]),
    ],
)
def test_prompt_snapshots(name, messages):
    text = _render(messages)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), (
        f"prompt changed; if deliberate, rerun with UPDATE_GOLDEN=1 ({name})"
    )


@pytest.mark.parametrize(
    ("content", "scores"),
    [
        ("8 6\nAssistant 1 is better.", (8.0, 6.0)),
        ("8, 6", (8.0, 6.0)),
        ("\n  7.5 9\nbecause", (7.5, 9.0)),
        ("8/10 6/10", (8.0, 6.0)),
        ("**9 4**", (9.0, 4.0)),
        ("Assistant 1: 8, Assistant 2: 6", (8.0, 6.0)),
        ("Scores: 10 3", (10.0, 3.0)),
        ("Both answers are fine.\n8 6", None),  # scores must be on the first line
        ("8 6 7", None),
        ("8", None),
        ("12 6", None),
        ("8 6.", (8.0, 6.0)),  # a full stop after the second score
        ("8, 6.\nreason", (8.0, 6.0)),
        ("7.5 9.", (7.5, 9.0)),
        ("-1 -1", None),  # LLaVA's failure marker is not a pair of 1s
        ("-1 -1\nfailed", None),
        ("8 -1", None),
        ("-1 8 6", None),
        ("0 0", None),  # scores run from 1 to 10
        ("0 7", None),
        ("10 1", (10.0, 1.0)),
        ("A: 8, B: 6", (8.0, 6.0)),
        ("Answer A: 7/10, Answer B: 5/10", (7.0, 5.0)),
        ("8.5.6 2", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_scores(content, scores):
    assert parse_scores(content) == scores


QUESTIONS = [
    {
        "question_id": "q1",
        "question": "What pattern?",
        "caption": CAPTION,
        "category": "conv",
        "subspecialty": "breast",
    },
    {
        "question_id": "q2",
        "question": "Describe the image.",
        "caption": CAPTION,
        "category": "detail",
        "subspecialty": "lung",
    },
    {"question_id": "bad", "question": "Any necrosis?", "caption": CAPTION, "category": "conv", "subspecialty": "lung"},
    {"question_id": "never", "question": "Grade?", "caption": CAPTION, "category": "conv", "subspecialty": "breast"},
]


def _responder(messages, body):
    if messages[0]["content"] == REFERENCE_SYSTEM:
        q = messages[1]["content"].split("Question: ")[1].split("\n")[0]
        return f"Reference answer to '{q}'."
    assert messages[0]["content"] == JUDGE_SYSTEM
    user = messages[1]["content"]
    if "Grade?" in user:
        return "I cannot grade these."
    if "Any necrosis?" in user and messages[-1]["content"] != JUDGE_REMINDER:
        return "Both are reasonable.\n7 5"
    if "Any necrosis?" in user:
        return "7 5\nThe first is more precise."
    if "Describe the image." in user:
        return "**Assistant 1: 9, Assistant 2: 3**\nThe second misses the stroma."
    return "8 6\nThe second answer is less specific."


def test_async_steps_run_inside_a_running_event_loop(tmp_path):
    """The coroutine forms work where the blocking ones cannot (a caller's own event loop),
    and write the same rows."""
    import asyncio

    questions = to_judge_questions(QUESTIONS)
    preds = [{"question_id": q["question_id"], "text": f"model answer {i}"} for i, q in enumerate(QUESTIONS)]
    refs_path, review = tmp_path / "refs.jsonl", tmp_path / "review.jsonl"

    async def caller(client):
        assert asyncio.get_running_loop() is not None
        with pytest.raises(RuntimeError):  # the blocking form refuses to nest an event loop
            write_references(questions, client, tmp_path / "unused.jsonl")
        refs = await awrite_references(questions, client, refs_path)
        reviews = await ajudge_answers(questions, refs_path, preds, client, review, model_id="tiny", retries=1)
        await client.aclose()
        return refs, reviews

    with FakeOpenAIServer(responder=_responder) as srv:
        cfg = LLMConfig(base_url=srv.base_url, model="judge-llm", api_key_env=None, concurrency=2, max_retries=0)
        refs, reviews = asyncio.run(caller(LLMClient(cfg)))
    assert refs.written == 4 and not refs.failed
    assert reviews.written == 4 and [qid for qid, _ in reviews.failed] == ["never"]
    rows = {r["question_id"]: r for r in read_jsonl(review)}
    assert rows["q1"]["scores"] == [8.0, 6.0] and rows["bad"]["attempts"] == 2
    assert not (tmp_path / "unused.jsonl").exists()


def test_references_and_judge_end_to_end(tmp_path):
    questions = to_judge_questions(QUESTIONS)
    preds = [{"question_id": q["question_id"], "text": f"model answer {i}"} for i, q in enumerate(QUESTIONS)]
    with FakeOpenAIServer(responder=_responder) as srv:
        cfg = LLMConfig(base_url=srv.base_url, model="judge-llm", api_key_env=None, concurrency=2, max_retries=0)
        client = LLMClient(cfg)
        refs_path = tmp_path / "refs.jsonl"
        rep = write_references(questions, client, refs_path)
        assert rep.written == 4 and not rep.failed
        refs = {r["question_id"]: r["text"] for r in read_jsonl(refs_path)}
        assert refs["q1"] == "Reference answer to 'What pattern?'."
        review = tmp_path / "review.jsonl"
        rep = judge_answers(questions, refs_path, preds, client, review, model_id="tiny", retries=1)
        judge_bodies = [b for b in srv.requests if b["messages"][0]["content"] == JUDGE_SYSTEM]
        assert {b["temperature"] for b in judge_bodies} == {0.2}
        # 4 first tries + 2 retries ("bad" and "never"); "never" fails twice.
        assert len(judge_bodies) == 6
        n_before = len(srv.requests)
        # Resuming: references and scored reviews are not asked again; the failed one is.
        assert write_references(questions, client, refs_path).skipped_existing == 4
        rep2 = judge_answers(questions, refs_path, preds, client, review, model_id="tiny", retries=0)
        assert rep2.skipped_existing == 3 and len(rep2.failed) == 1
        assert len(srv.requests) == n_before + 1
    assert [qid for qid, _ in rep.failed] == ["never"]
    rows = {r["question_id"]: r for r in read_jsonl(review)}
    assert rows["q1"]["content"].splitlines()[0] == "8 6" and rows["q1"]["scores"] == [8.0, 6.0]
    assert rows["q1"]["category"] == "conv" and rows["q1"]["subspecialty"] == "breast"
    assert rows["q1"]["answer2_id"] == "tiny" and rows["q1"]["judge"] == "judge-llm"
    assert rows["bad"]["scores"] == [7.0, 5.0] and rows["bad"]["attempts"] == 2
    assert rows["q2"]["content"] == "9 3\nThe second misses the stroma."
    assert rows["q2"]["judge_reply"].startswith("**Assistant 1: 9") and "judge_reply" not in rows["q1"]
    assert rows["never"]["scores"] is None and "two scores" in rows["never"]["error"]
    summary = {g.name: g for g in summarize_reviews(read_reviews(review))}
    assert summary["overall"].failed == 1 and summary["overall"].n == 4
    # conv: (8,6) and (7,5) -> 7.5 / 5.5; detail: (9,3)
    assert (summary["conv"].reference, summary["conv"].model, summary["conv"].relative) == (7.5, 5.5, 73.3)
    assert (summary["detail"].reference, summary["detail"].model, summary["detail"].relative) == (9.0, 3.0, 33.3)
    assert summary["overall"].relative == round(100 * (14 / 3) / 8, 1)


def test_summary_by_hand_and_second_key(tmp_path):
    rows = [
        {"question_id": 1, "category": "conv", "content": "8 6", "scores": [8, 6], "site": "skin"},
        {"question_id": 2, "category": "conv", "content": "6 6", "scores": [6, 6], "site": "lung"},
        {"question_id": 3, "category": "detail", "content": "10 5", "scores": [10, 5], "site": "skin"},
        {"question_id": 4, "category": "reasoning", "content": "nonsense", "scores": None, "site": "lung"},
        {"question_id": 5, "category": "conv", "content": "4 2\n", "tuple": [4, 2]},  # LLaVA layout
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    groups = summarize_reviews(read_reviews(path), by="site")
    by = {g.name: g for g in groups}
    assert [g.name for g in groups][:3] == ["conv", "detail", "reasoning"]
    assert (by["conv"].reference, by["conv"].model, by["conv"].relative) == (6.0, 4.7, 77.8)
    assert by["reasoning"].failed == 1 and by["reasoning"].relative is None
    assert by["conv / site=skin"].relative == 75.0
    assert by["all / site=skin"].reference == 9.0 and by["all / site=skin"].relative == 61.1
    assert by["all / site=(none)"].n == 1
    overall = by["overall"]
    lo, hi = overall.relative_ci
    assert lo <= overall.relative <= hi and by["detail"].relative_ci is None  # one question: no interval
    assert (overall.n, overall.failed) == (5, 1)
    assert overall.relative == round(100 * (19 / 4) / (28 / 4), 1)


def test_last_review_row_wins(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(
        json.dumps({"question_id": "a", "category": "conv", "content": "x", "scores": None})
        + "\n"
        + json.dumps({"question_id": "a", "category": "conv", "content": "5 5", "scores": [5, 5]})
        + "\n"
    )
    (row,) = read_reviews(path)
    assert row["scores"] == [5, 5]


def test_judge_questions_from_records():
    from quilt_llava.eval.judge import judge_questions_from_records

    records = [
        {
            "id": "v1__s0-conv",
            "image": "v1/s0.png",
            "generator": "conversation",
            "video_id": "v1",
            "segment_id": "s0",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is seen?"},
                {"from": "gpt", "value": "Nests."},
                {"from": "human", "value": "Where?"},
                {"from": "gpt", "value": "Upper left."},
            ],
        },
        {
            "id": "v1__s0-detail",
            "image": "v1/s0.png",
            "generator": "detail",
            "video_id": "v1",
            "segment_id": "s0",
            "conversations": [
                {"from": "human", "value": "Describe the image.\n<image>"},
                {"from": "gpt", "value": "..."},
            ],
        },
        {
            "id": "v1__s0-align",
            "image": "v1/s0.png",
            "generator": "align",
            "video_id": "v1",
            "segment_id": "s0",
            "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "caption"}],
        },
    ]
    narratives = [{"video_id": "v1", "segment_id": "s0", "grounded_caption": CAPTION}]
    rows = judge_questions_from_records(records, narratives)
    assert [(r["question_id"], r["category"], r["question"]) for r in rows] == [
        ("v1__s0-conv_t0", "conv", "What is seen?"),
        ("v1__s0-conv_t1", "conv", "Where?"),
        ("v1__s0-detail_t0", "detail", "Describe the image."),
    ]
    assert all(r["caption"] == CAPTION for r in rows)
    assert len(to_judge_questions(rows)) == 3
    with pytest.raises(Exception, match="no caption"):
        judge_questions_from_records(records, [])


def test_failed_judgements_in_llava_layout_count_as_failed(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [
        {"question_id": 1, "category": "conv", "content": "-1 -1\n", "tuple": [-1, -1]},
        {"question_id": 2, "category": "conv", "content": "0 0\n"},
        {"question_id": 3, "category": "conv", "content": "8 6.\nfine"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = {r["question_id"]: r["scores"] for r in read_reviews(path)}
    assert got == {1: None, 2: None, 3: [8.0, 6.0]}
    overall = summarize_reviews(read_reviews(path))[-1]
    assert (overall.n, overall.failed, overall.relative) == (3, 2, 75.0)


def test_judge_prompt_is_not_the_llava_layout():
    user = judge_messages("Q?", CAPTION, "a1", "a2")[1]["content"]
    for llava_marker in ("[Question]", "[Assistant 1]", "[End of Assistant", "helpfulness, relevance, accuracy"):
        assert llava_marker not in user + JUDGE_SYSTEM + JUDGE_REMINDER
