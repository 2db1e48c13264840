"""Batched greedy answers to a question file, written as resumable prediction JSONL.

Each output row is ``{question_id, prompt, text, model_id}``. The published scripts
answer one question at a time; here questions are grouped into batches, padded on
the left (so every row's generated tokens start at the same position), and decoded
greedily. Rows are appended one batch at a time, so a killed run resumes where it
stopped: question ids already present in the output are skipped.

Works with any ``LlavaForConditionalGeneration`` checkpoint in the Hugging Face
layout (including ones converted from the original LLaVA layout), through
:func:`quilt_llava.model.load_model_and_processor`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quilt_llava.console import Output
from quilt_llava.errors import ConfigError, InputError
from quilt_llava.eval.questions import (
    CHOICE,
    CHOICE_LETTERS,
    CLOSED,
    EvalQuestion,
    as_questions,
    existing_ids,
    load_questions,
)
from quilt_llava.files import JsonlAppender
from quilt_llava.images import draw_region_ellipse, open_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptStyle:
    """How a benchmark phrases its questions to the model.

    ``suffix`` goes after every question (e.g. the red-circle hint),
    ``closed_suffix`` after yes/no questions only, and multiple-choice questions get
    their options listed one per line (``A. text``) followed by ``choice_suffix``.
    """

    suffix: str = ""
    closed_suffix: str = ""
    choice_suffix: str = ""


def question_text(question: EvalQuestion, style: PromptStyle | None = None) -> str:
    """The user-turn text for ``question`` (without the conversation template)."""
    style = style or PromptStyle()
    text = question.question.strip()
    if question.answer_type == CHOICE and question.choices:
        options = "\n".join(f"{CHOICE_LETTERS[i]}. {c}" for i, c in enumerate(question.choices))
        text = f"{text}\n{options}"
        if style.choice_suffix:
            text += "\n" + style.choice_suffix.strip()
    if question.answer_type == CLOSED and style.closed_suffix:
        text += " " + style.closed_suffix.strip()
    if style.suffix:
        text += " " + style.suffix.strip()
    return text


@dataclass
class GenerateReport:
    out_path: str
    written: int = 0
    skipped_existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (question_id, reason)

    @property
    def ok(self) -> bool:
        return not self.failed


def _resolve_image(question: EvalQuestion, image_dir: str | os.PathLike[str] | None) -> Path:
    if not question.image:
        raise InputError(f"question {question.question_id}", "has no image")
    path = Path(question.image)
    if not path.is_absolute() and image_dir is not None:
        path = Path(image_dir) / path
    return path


def load_question_image(
    question: EvalQuestion, image_dir: str | os.PathLike[str] | None, processor: Any, draw_box: bool = False
):
    """Open the question's image, with the region ellipse drawn when asked, padded to a square with
    ``processor``'s mean colour."""
    from quilt_llava.model import prepare_image

    image = open_image(_resolve_image(question, image_dir))
    if draw_box and question.box is not None:
        image = draw_region_ellipse(image, question.box)
    return prepare_image(image, processor)


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def generate_answers(
    model: Any,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Any],
    max_new_tokens: int = 128,
    **generate_kwargs: Any,
) -> list[str]:
    """Greedy answers for one batch; prompts already hold the template and ``<image>`` token, images are
    prepared (:func:`quilt_llava.model.prepare_image`).

    Prompts are tokenized as in training (:func:`quilt_llava.model.prompt.encode_prompts`) and padded
    on the left, so every row's generated tokens start at the same column.
    ``generate_kwargs`` go to ``model.generate`` (e.g. ``min_new_tokens`` in benchmarks).
    """
    import torch

    from quilt_llava.model.prompt import encode_prompts

    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        # Llama-family tokenizers (e.g. in converted LLaVA checkpoints) ship without one;
        # pad positions are masked out, so any existing token serves.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    inputs = encode_prompts(processor, list(prompts), list(images) or None, padding_side="left")
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
            **generate_kwargs,
        )  # (batch, prompt_len + new)
    new_tokens = out[:, inputs["input_ids"].shape[1] :]
    return [t.strip() for t in processor.batch_decode(new_tokens, skip_special_tokens=True)]


def generate_predictions(
    model_dir: str | os.PathLike[str] | None,
    questions: str | os.PathLike[str] | Sequence[EvalQuestion | dict[str, Any]],
    image_dir: str | os.PathLike[str] | None,
    out_path: str | os.PathLike[str],
    batch_size: int = 8,
    *,
    max_new_tokens: int = 128,
    style: PromptStyle | None = None,
    fmt: str = "quilt",
    conv_template: str | None = None,
    model_id: str | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    draw_box: bool = False,
    limit: int | None = None,
    sort_by_length: bool = True,
    model_and_processor: tuple[Any, Any] | None = None,
    output: Output | None = None,
) -> GenerateReport:
    """Answer every question not yet in ``out_path`` and append the predictions.

    ``questions`` is a question file (any format of :mod:`quilt_llava.eval.questions`)
    or a list of questions. ``model_and_processor`` skips loading when given (then
    ``model_dir`` only names the template and default ``model_id``). Questions whose
    image is missing or unreadable are reported in ``GenerateReport.failed``; the rest
    go on.
    """
    from quilt_llava.model import get_template, resolve_conv_template

    output = output or Output(quiet=True)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if isinstance(questions, (str, os.PathLike)):
        qs = load_questions(questions, fmt=fmt)
    else:
        qs = as_questions(questions, fmt=fmt)
    if limit is not None:
        qs = qs[:limit]
    report = GenerateReport(out_path=str(out_path))
    done = existing_ids(out_path)
    pending = [q for q in qs if q.question_id not in done]
    report.skipped_existing = len(qs) - len(pending)
    if not pending:
        return report

    model, processor = model_and_processor or _load_model(model_dir, dtype, device)
    model.eval()
    template = get_template(resolve_conv_template(conv_template, model=model, model_dir=model_dir))
    if model_id is None:
        model_id = Path(model_dir).name if model_dir is not None else "model"

    prompts = {q.question_id: template.prompt(question_text(q, style)) for q in pending}
    if sort_by_length:
        # Similar lengths in one batch waste less compute on padding; the output is matched by id.
        pending = sorted(pending, key=lambda q: len(prompts[q.question_id]))

    _answer_pending(
        model,
        processor,
        pending,
        prompts,
        image_dir,
        report,
        output,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        draw_box=draw_box,
        model_id=model_id,
    )
    return report


def _load_model(model_dir: str | os.PathLike[str] | None, dtype: str | None, device: str) -> tuple[Any, Any]:
    """The checkpoint in ``model_dir``, with an error naming it when it is not one."""
    from quilt_llava.model import load_model_and_processor

    if model_dir is None:
        raise ConfigError("model_dir is required when no loaded model is given")
    if not (Path(model_dir) / "config.json").exists():
        raise InputError(
            str(model_dir),
            "not a model directory (no config.json); give a saved or converted Hugging Face Llava checkpoint",
        )
    return load_model_and_processor(model_dir, dtype=dtype, device=device)


def _answer_pending(
    model: Any,
    processor: Any,
    pending: Sequence[EvalQuestion],
    prompts: dict[str, str],
    image_dir: str | os.PathLike[str] | None,
    report: GenerateReport,
    output: Output,
    *,
    batch_size: int,
    max_new_tokens: int,
    draw_box: bool,
    model_id: str,
) -> None:
    """Answer ``pending`` batch by batch, appending each prediction to ``report.out_path`` as it is
    made; a question whose image cannot be read goes to ``report.failed`` and the rest go on."""
    with JsonlAppender(report.out_path) as sink, output.progress() as prog:
        task = prog.add_task("answering", total=len(pending))
        for batch in _batches(pending, batch_size):
            ready, images = [], []
            for q in batch:
                try:
                    images.append(load_question_image(q, image_dir, processor, draw_box=draw_box))
                    ready.append(q)
                except InputError as exc:
                    report.failed.append((q.question_id, str(exc)))
                    output.error(f"question {q.question_id}: {exc}")
            if ready:
                texts = generate_answers(
                    model, processor, [prompts[q.question_id] for q in ready], images, max_new_tokens=max_new_tokens
                )
                for q, text in zip(ready, texts):
                    sink.write(
                        {
                            "question_id": q.question_id,
                            "prompt": prompts[q.question_id],
                            "text": text,
                            "model_id": model_id,
                        }
                    )
                    report.written += 1
            prog.advance(task, len(batch))
