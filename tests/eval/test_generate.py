"""Batched generation on the tiny model: output rows, resume, failures, batch invariance."""

from __future__ import annotations

import json

from quilt_llava.eval.generate import (
    PromptStyle,
    generate_predictions,
    load_question_image,
    question_text,
)
from quilt_llava.eval.questions import EvalQuestion, load_questions
from quilt_llava.files import read_jsonl


def test_generate_rows_and_resume(tiny_model_dir, tiny_loaded, vqa_set, tmp_path):
    questions, images = vqa_set
    out = tmp_path / "preds.jsonl"
    report = generate_predictions(
        tiny_model_dir, questions, images, out, batch_size=4, max_new_tokens=4, model_and_processor=tiny_loaded
    )
    assert report.ok and report.written == 5 and report.skipped_existing == 0
    rows = read_jsonl(out)
    assert sorted(r["question_id"] for r in rows) == ["c1", "c2", "c3", "o1", "o2"]
    for r in rows:
        assert set(r) == {"question_id", "prompt", "text", "model_id"}
        assert r["model_id"] == "tiny-eval"
        assert r["prompt"].startswith("A chat between") and "<image>" in r["prompt"]
        assert r["prompt"].rstrip().endswith("ASSISTANT:")
        assert isinstance(r["text"], str)
    # A killed run leaves a prefix (and maybe a torn line); the next run completes it.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:10])
    again = generate_predictions(
        tiny_model_dir, questions, images, out, batch_size=4, max_new_tokens=4, model_and_processor=tiny_loaded
    )
    assert again.skipped_existing == 2 and again.written == 3
    rows2 = read_jsonl(out)
    assert sorted(r["question_id"] for r in rows2) == sorted(r["question_id"] for r in rows)
    by_id = {r["question_id"]: r["text"] for r in rows}
    assert all(by_id[r["question_id"]] == r["text"] for r in rows2)


def test_batched_equals_one_by_one(tiny_model_dir, tiny_loaded, vqa_set, tmp_path):
    questions, images = vqa_set
    batched, single = tmp_path / "b.jsonl", tmp_path / "s.jsonl"
    generate_predictions(
        tiny_model_dir, questions, images, batched, batch_size=5, max_new_tokens=8, model_and_processor=tiny_loaded
    )
    generate_predictions(
        tiny_model_dir, questions, images, single, batch_size=1, max_new_tokens=8, model_and_processor=tiny_loaded
    )
    b = {r["question_id"]: r["text"] for r in read_jsonl(batched)}
    s = {r["question_id"]: r["text"] for r in read_jsonl(single)}
    assert b == s
    assert len(set(b.values())) > 1  # the images/questions do change the answers


def test_missing_image_reported_rest_answered(tiny_model_dir, tiny_loaded, vqa_set, tmp_path):
    questions, images = vqa_set
    (images / "img1.png").unlink()
    out = tmp_path / "p.jsonl"
    report = generate_predictions(
        tiny_model_dir, questions, images, out, batch_size=2, max_new_tokens=2, model_and_processor=tiny_loaded
    )
    assert [qid for qid, _ in report.failed] == ["o2"]
    assert "img1.png" in report.failed[0][1]
    assert len(read_jsonl(out)) == 4


def test_prompt_suffixes():
    style = PromptStyle(
        suffix="Look at the red circle.", closed_suffix="Answer yes or no.", choice_suffix="Reply with the letter."
    )
    closed = EvalQuestion("1", "Is it benign?", "yes", "closed")
    open_q = EvalQuestion("2", "What is it?", "tumor", "open")
    choice = EvalQuestion("3", "Which one?", "B", "choice", choices=["Fibrosis", "Edema"])
    assert question_text(closed, style) == "Is it benign? Answer yes or no. Look at the red circle."
    assert question_text(open_q, style) == "What is it? Look at the red circle."
    assert question_text(choice, PromptStyle(choice_suffix="Reply with the letter.")) == (
        "Which one?\nA. Fibrosis\nB. Edema\nReply with the letter."
    )


def test_draw_box_marks_region(vqa_set, tiny_loaded):
    questions, images = vqa_set
    processor = tiny_loaded[1]
    q = next(x for x in load_questions(questions) if x.question_id == "c2")
    plain = load_question_image(q, images, processor)
    boxed = load_question_image(q, images, processor, draw_box=True)
    assert plain.size == boxed.size == (64, 64)  # padded to square
    assert plain.getpixel((0, 0)) == (122, 116, 104)  # with the image processor's mean colour (CLIP)
    red = [px for px in boxed.getdata() if px == (255, 0, 0)]
    assert red and not [px for px in plain.getdata() if px == (255, 0, 0)]


def test_questions_in_llava_med_form(tiny_model_dir, tiny_loaded, vqa_set, tmp_path):
    _, images = vqa_set
    rows = [
        {
            "id": "p1",
            "image": "img0.png",
            "answer_type": "CLOSED",
            "conversations": [{"from": "human", "value": "<image>\nIs this tissue?"}, {"from": "gpt", "value": "yes"}],
        }
    ]
    qfile = tmp_path / "test.json"
    qfile.write_text(json.dumps(rows))
    out = tmp_path / "p.jsonl"
    generate_predictions(
        tiny_model_dir,
        qfile,
        images,
        out,
        fmt="llava_med",
        max_new_tokens=2,
        model_and_processor=tiny_loaded,
        style=PromptStyle(closed_suffix="Answer with one word: yes or no."),
    )
    (row,) = read_jsonl(out)
    assert "Is this tissue? Answer with one word: yes or no." in row["prompt"]
    assert row["prompt"].count("<image>") == 1


def test_generate_on_checkpoint_converted_from_original_layout(vqa_set, tmp_path):
    """A LlavaLlamaForCausalLM-layout checkpoint, converted, answers through the same path."""
    from quilt_llava.model.convert import ConvertOptions, convert_llava_checkpoint
    from tests.model.test_convert import write_original

    questions, images = vqa_set
    src, tower_dir, *_ = write_original(tmp_path, "mlp2x_gelu")
    dst = tmp_path / "converted"
    convert_llava_checkpoint(ConvertOptions(str(src), str(dst), vision_tower=str(tower_dir)))
    batched, single = tmp_path / "b.jsonl", tmp_path / "s.jsonl"
    report = generate_predictions(dst, questions, images, batched, batch_size=5, max_new_tokens=4)
    assert report.ok and report.written == 5
    generate_predictions(dst, questions, images, single, batch_size=1, max_new_tokens=4)
    b = {r["question_id"]: r["text"] for r in read_jsonl(batched)}
    assert b == {r["question_id"]: r["text"] for r in read_jsonl(single)}
    assert all(r["model_id"] == "converted" for r in read_jsonl(batched))
