"""Benchmarks as data: a small YAML declaration per benchmark, and one runner for all.

A declaration names where the benchmark is published (``source``, ``hub_id``), the
layout it is published in (``layout``: ``json``, ``csv_zip`` or ``hf_dataset``, read by
:mod:`quilt_llava.eval.sources`), the question source and images (relative to a data
root, or to the declaration file for a user's own benchmark; a dataset split), the
question format (see :mod:`quilt_llava.eval.questions`), optional row filter and field
renames, the
prompt suffixes, the headline metrics and ``closed_rule``, how closed questions
are scored: ``yes_no`` (default; Quilt-LLaVA's rule: the prediction's yes/no label
must equal the reference) or ``answer_in_prediction`` (LLaVA-Med's rule for closed
sets: the normalised reference must occur, as whole words, in the normalised
prediction; SLAKE and VQA-RAD use it because many of their closed answers are not
yes/no, such as "left lung" or "CT", and could never be right under ``yes_no``). The shipped declarations live next to
this module in ``declarations/*.yaml``; nothing is downloaded unless a hub id is given
explicitly as ``questions``: point ``data_root`` (or explicit ``questions``/``images``)
at local copies.

:func:`run_benchmark` generates answers (resumable) and scores them, writing
``predictions.jsonl``, ``results.json`` and ``results.md`` under
``out_dir/<benchmark>/<model_id>/``. :func:`results_table` lays several
``results.json`` side by side in one Markdown table; :mod:`quilt_llava.eval.report`
builds the fuller report (published rows, CSV, judge scores).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from quilt_llava.console import Output
from quilt_llava.errors import ConfigError, InputError
from quilt_llava.eval.metrics import CLOSED_RULES, HEADLINE_METRICS, METRIC_LABELS, evaluate_vqa
from quilt_llava.eval.questions import ADAPTERS
from quilt_llava.eval.sources import LAYOUTS, is_hub_id, load_benchmark_data
from quilt_llava.files import atomic_write_text, read_jsonl, write_json

DATA_ROOT_ENV = "QUILT_LLAVA_DATA"
_KNOWN_KEYS = {
    "name",
    "description",
    "source",
    "format",
    "layout",
    "hub_id",
    "split",
    "questions",
    "images",
    "where",
    "fields",
    "prompt",
    "draw_box",
    "max_new_tokens",
    "headline",
    "metric",
    "closed_rule",
}
_PROMPT_KEYS = {"suffix", "closed_suffix", "choice_suffix"}


@dataclass
class Benchmark:
    name: str
    questions: str
    description: str = ""
    source: str = ""
    format: str = "quilt"
    layout: str = "json"  # how the files are published: json, csv_zip or hf_dataset (see eval.sources)
    hub_id: str | None = None  # the Hugging Face dataset id, for hf_dataset benchmarks
    split: str | None = None  # which split of a Hugging Face dataset holds the questions
    images: str | None = None
    where: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    prompt: dict[str, str] = field(default_factory=dict)
    draw_box: bool = False
    max_new_tokens: int = 128
    headline: list[str] = field(default_factory=lambda: ["open_recall", "closed_accuracy"])
    metric: str = "vqa"
    closed_rule: str = "yes_no"  # or "answer_in_prediction" (see the module docstring)
    base_dir: str | None = None  # where relative paths of a user's declaration are resolved

    def prompt_style(self):
        from quilt_llava.eval.generate import PromptStyle

        return PromptStyle(**{k: str(v) for k, v in self.prompt.items()})

    def resolve(self, relative: str | None, data_root: str | os.PathLike[str] | None) -> Path | None:
        if relative is None:
            return None
        path = Path(relative).expanduser()
        if path.is_absolute():
            return path
        if self.base_dir is not None:
            return Path(self.base_dir) / path
        root = data_root or os.environ.get(DATA_ROOT_ENV) or "data/benchmarks"
        return Path(root) / path


def parse_benchmark(data: Any, source: str, base_dir: str | None = None) -> Benchmark:
    """Validate a declaration mapping; all problems are reported at once."""
    if not isinstance(data, dict):
        raise ConfigError("a benchmark declaration must be a YAML mapping", source)
    problems = []
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        problems.append(f"unknown keys {unknown}; known keys: {sorted(_KNOWN_KEYS)}")
    for key in ("name", "questions"):
        if not isinstance(data.get(key), str) or not data.get(key):
            problems.append(f"'{key}' is required (a string)")
    fmt = data.get("format", "quilt")
    if fmt not in ADAPTERS:
        problems.append(f"format '{fmt}' is not one of {sorted(ADAPTERS)}")
    layout = data.get("layout", "json")
    if layout not in LAYOUTS:
        problems.append(f"layout '{layout}' is not one of {', '.join(LAYOUTS)}")
    for key in ("hub_id", "split"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"'{key}' must be a string")
    if data.get("metric", "vqa") != "vqa":
        problems.append(
            f"metric '{data.get('metric')}' is not supported; use 'vqa' (open/closed/choice by question type)"
        )
    prompt = data.get("prompt") or {}
    if not isinstance(prompt, dict) or set(prompt) - _PROMPT_KEYS:
        problems.append(f"'prompt' must be a mapping with keys among {sorted(_PROMPT_KEYS)}")
    for key in ("where", "fields"):
        if key in data and not isinstance(data[key], dict):
            problems.append(f"'{key}' must be a mapping")
    headline = data.get("headline", ["open_recall", "closed_accuracy"])
    if not isinstance(headline, list) or any(h not in METRIC_LABELS for h in headline):
        problems.append(f"'headline' must list metrics among {sorted(METRIC_LABELS)}")
    closed_rule = data.get("closed_rule", "yes_no")
    if closed_rule not in CLOSED_RULES:
        problems.append(f"'closed_rule' must be one of {', '.join(CLOSED_RULES)}, got {closed_rule!r}")
    mnt = data.get("max_new_tokens", 128)
    if not isinstance(mnt, int) or mnt < 1:
        problems.append("'max_new_tokens' must be a positive integer")
    if problems:
        raise ConfigError(problems, source)
    return Benchmark(
        name=data["name"],
        questions=data["questions"],
        description=data.get("description", ""),
        source=data.get("source", ""),
        format=fmt,
        layout=layout,
        hub_id=data.get("hub_id"),
        split=data.get("split"),
        images=data.get("images"),
        where=dict(data.get("where") or {}),
        fields=dict(data.get("fields") or {}),
        prompt=dict(prompt),
        draw_box=bool(data.get("draw_box", False)),
        max_new_tokens=mnt,
        headline=list(headline),
        closed_rule=closed_rule,
        base_dir=base_dir,
    )


def builtin_benchmarks() -> list[str]:
    folder = resources.files("quilt_llava.eval") / "declarations"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_benchmark(name_or_path: str | os.PathLike[str]) -> Benchmark:
    """A shipped declaration by name (``quilt_vqa``...) or a user's YAML file by path."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise InputError(text, "benchmark declaration file not found")
        return parse_benchmark(yaml.safe_load(path.read_text(encoding="utf-8")), text, base_dir=str(path.parent))
    key = text.replace("-", "_").lower()
    names = builtin_benchmarks()
    if key not in names:
        raise ConfigError(f"unknown benchmark '{text}'; choose one of {', '.join(names)} or give a YAML file path")
    resource = resources.files("quilt_llava.eval") / "declarations" / f"{key}.yaml"
    return parse_benchmark(yaml.safe_load(resource.read_text(encoding="utf-8")), f"benchmark {key}")


# --------------------------------------------------------------------------- run


@dataclass
class RunOptions:
    benchmark: str
    model: Path
    out_dir: Path = Path("eval_results")
    questions: str | os.PathLike[str] | None = None  # a path, or a hub id for hf_dataset benchmarks
    images: Path | None = None
    data_root: Path | None = None
    batch_size: int = 8
    max_new_tokens: int | None = None
    device: str = "cpu"
    dtype: str | None = None
    model_id: str | None = None
    limit: int | None = None
    n_resamples: int = 1000
    allow_missing: bool = False
    split: str | None = None  # overrides the declaration's split of a Hugging Face dataset
    cache_dir: Path | None = None  # where images from datasets and archives are extracted (sources.default_cache_dir)


def run_benchmark(
    options: RunOptions, output: Output | None = None, model_and_processor: tuple[Any, Any] | None = None
) -> dict[str, Any]:
    """Generate answers for a benchmark and score them; returns the results object."""
    from quilt_llava.eval.generate import generate_predictions

    output = output or Output(quiet=True)
    bench = load_benchmark(options.benchmark)
    q_path = str(options.questions or bench.resolve(bench.questions, options.data_root))
    img_path = options.images or bench.resolve(bench.images, options.data_root)
    if not Path(q_path).exists() and not (bench.layout == "hf_dataset" and is_hub_id(q_path)):
        hub = f"; or read it from the hub (online) with --questions {bench.hub_id}" if bench.hub_id else ""
        raise InputError(
            q_path,
            f"questions of benchmark '{bench.name}' not found; download them from "
            f"{bench.source or 'its source'} and pass --questions/--images or --data-root{hub}",
        )
    if bench.images and options.images is None and img_path is not None and not img_path.exists():
        raise InputError(
            str(img_path),
            f"images of benchmark '{bench.name}' not found (the declaration's "
            f"'images: {bench.images}'); pass --images or --data-root",
        )
    data = load_benchmark_data(
        q_path,
        fmt=bench.format,
        images=img_path,
        split=options.split or bench.split,
        where=bench.where,
        fields=bench.fields,
        cache_dir=options.cache_dir,
        limit=options.limit,
        output=output,
    )
    questions = data.questions
    if not questions and not data.failures:
        raise InputError(q_path, "no questions left after the declaration's filter")
    if data.images_written or data.images_cached:
        output.info(f"images: {data.images_written} extracted, {data.images_cached} already in the cache")
    for qid, why in data.failures[:10]:
        output.warn(f"question {qid}: {why}")
    model_id = options.model_id or Path(options.model).name
    run_dir = Path(options.out_dir) / bench.name / model_id
    pred_path = run_dir / "predictions.jsonl"
    output.info(f"{bench.name}: {len(questions)} questions -> {pred_path}")
    gen = generate_predictions(
        options.model,
        questions,
        data.image_dir,
        pred_path,
        batch_size=options.batch_size,
        max_new_tokens=options.max_new_tokens or bench.max_new_tokens,
        style=bench.prompt_style(),
        model_id=model_id,
        device=options.device,
        dtype=options.dtype,
        draw_box=bench.draw_box,
        model_and_processor=model_and_processor,
        output=output,
    )
    predictions = read_jsonl(pred_path)
    answered = {str(p["question_id"]) for p in predictions}
    failed = [*data.failures, *gen.failed]  # images not found in the source, then generation failures
    missing = [qid for qid, _ in data.failures] + [q.question_id for q in questions if q.question_id not in answered]
    partial = False
    if missing:
        if not options.allow_missing:
            raise InputError(
                str(pred_path),
                f"{len(missing)} questions have no prediction "
                f"(first: {', '.join(missing[:10])}); fix them and re-run (finished answers are "
                "kept), or pass --allow-missing to score the rest",
            )
        questions = [q for q in questions if q.question_id in answered]
        partial = True
    wanted = {q.question_id for q in questions}
    predictions = [p for p in predictions if str(p["question_id"]) in wanted]
    scored = evaluate_vqa(
        questions, predictions, n_resamples=options.n_resamples, source=str(pred_path), closed_rule=bench.closed_rule
    )
    odd = scored.summary["closed_answers_not_yes_no"]
    if odd:
        output.warn(
            f"{len(odd)} closed questions have a reference that is neither yes nor no and can never be "
            f"right under the yes/no rule (first: {', '.join(odd[:5])}); Quilt-VQA's yes/no references are "
            "in its 'yes_no_answer' column (the released quiltvqa_test_w_ans.json has it)"
        )
    results = {
        "benchmark": bench.name,
        "description": bench.description,
        "model_id": model_id,
        "model": str(options.model),
        "questions": q_path,
        "n_questions": len(questions),
        "partial": partial,
        "layout": bench.layout,
        "generation_failures": [{"question_id": qid, "reason": why} for qid, why in failed],
        "headline": bench.headline,
        "prompt": bench.prompt,
        "closed_rule": bench.closed_rule,
        "metrics": scored.summary,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(run_dir / "results.json", results)
    atomic_write_text(run_dir / "results.md", results_table([results]) + "\n")
    from quilt_llava.files import write_jsonl

    write_jsonl(run_dir / "per_question.jsonl", scored.per_question)
    return results


# --------------------------------------------------------------------------- tables


def _cell(metrics: dict[str, Any], key: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "-"
    ci = metrics.get(key + "_ci")
    return f"{value:.2f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else f"{value:.2f}"


def results_matrix(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Models as rows, (benchmark, metric) as columns; JSON-friendly."""
    columns: list[tuple[str, str]] = []
    for r in results:
        for metric in r.get("headline") or HEADLINE_METRICS:
            if (r["benchmark"], metric) not in columns and r["metrics"].get(metric) is not None:
                columns.append((r["benchmark"], metric))
    models: list[str] = []
    for r in results:
        if r["model_id"] not in models:
            models.append(r["model_id"])
    rows = []
    for m in models:
        cells: dict[str, Any] = {}
        for r in results:
            if r["model_id"] != m:
                continue
            for bench, metric in columns:
                if bench == r["benchmark"]:
                    cells[f"{bench}/{metric}"] = {
                        "value": r["metrics"].get(metric),
                        "ci": r["metrics"].get(metric + "_ci"),
                        "n": r.get("n_questions"),
                        "partial": r.get("partial", False),
                    }
        rows.append({"model_id": m, "cells": cells})
    return {"columns": [f"{b}/{m}" for b, m in columns], "rows": rows}


def results_table(results: list[dict[str, Any]]) -> str:
    """A Markdown table (value x100 and 95% interval per headline metric), one row per model."""
    matrix = results_matrix(results)
    head = ["model"] + [
        f"{c.split('/')[0]} {METRIC_LABELS.get(c.split('/')[1], c.split('/')[1])}" for c in matrix["columns"]
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * len(matrix["columns"])]
    for row in matrix["rows"]:
        cells = []
        for c in matrix["columns"]:
            cell = row["cells"].get(c)
            if cell is None or cell["value"] is None:
                cells.append("-")
            else:
                metric = c.split("/")[1]
                text = _cell({metric: cell["value"], metric + "_ci": cell["ci"]}, metric)
                cells.append(text + (" (partial)" if cell["partial"] else ""))
        lines.append("| " + " | ".join([row["model_id"], *cells]) + " |")
    return "\n".join(lines)


def describe(bench: Benchmark) -> dict[str, Any]:
    d = asdict(bench)
    d.pop("base_dir", None)
    return d
