"""CLI for the eval stage: generate, vqa, judge, judge-summary, run, table, report, benchmarks.

Each command builds a typed options object and calls the library function a Python
user would call. Heavy imports (torch, transformers) stay inside the library
functions that need them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from quilt_llava.console import Output
from quilt_llava.instruct.llm_options import EndpointOptions, with_endpoint_options


@dataclass
class PredictionOptions:
    model: Path
    questions: Path
    images: Path | None
    out: Path
    format: str = "quilt"
    batch_size: int = 8
    max_new_tokens: int = 128
    suffix: str = ""
    closed_suffix: str = ""
    choice_suffix: str = ""
    draw_box: bool = False
    conv_template: str | None = None
    model_id: str | None = None
    device: str = "cpu"
    dtype: str | None = None
    limit: int | None = None


@dataclass
class VQAOptions:
    questions: Path
    predictions: Path
    format: str = "quilt"
    n_resamples: int = 1000
    seed: int = 0
    details: Path | None = None
    closed_rule: str = "yes_no"


@dataclass
class JudgeOptions:
    questions: Path
    predictions: Path
    out: Path
    references: Path | None = None
    # The LLM endpoint: the same flags and defaults as `instruct` (quilt_llava.instruct.llm_options);
    # its temperature is the reference writer's, the judge's is judge_temperature.
    endpoint: EndpointOptions = field(default_factory=EndpointOptions)
    reference_model: str | None = None
    retries: int = 2
    judge_temperature: float = 0.2
    model_id: str | None = None


def _emit(out: Output, obj: object, markdown: str) -> None:
    """JSON with --json, else Markdown as plain text (rich would wrap long table rows)."""
    if out.json:
        out.result(obj)
    else:
        typer.echo(markdown)


def _fail_if(failed: list, out: Output, what: str) -> None:
    if failed:
        out.error(f"{len(failed)} {what} failed (first: {failed[0][0]}: {failed[0][1]})")
        raise typer.Exit(1)


def run_generate(opts: PredictionOptions, out: Output) -> None:
    from quilt_llava.eval.generate import PromptStyle, generate_predictions

    report = generate_predictions(
        opts.model,
        opts.questions,
        opts.images,
        opts.out,
        batch_size=opts.batch_size,
        max_new_tokens=opts.max_new_tokens,
        fmt=opts.format,
        style=PromptStyle(opts.suffix, opts.closed_suffix, opts.choice_suffix),
        conv_template=opts.conv_template,
        model_id=opts.model_id,
        device=opts.device,
        dtype=opts.dtype,
        draw_box=opts.draw_box,
        limit=opts.limit,
        output=out,
    )
    summary = {
        "out": report.out_path,
        "written": report.written,
        "skipped_existing": report.skipped_existing,
        "failed": [{"question_id": q, "reason": r} for q, r in report.failed],
    }
    out.result(
        summary,
        human=f"wrote {report.written} predictions to {report.out_path} "
        f"({report.skipped_existing} already there, {len(report.failed)} failed)",
    )
    _fail_if(report.failed, out, "questions")


def run_vqa(opts: VQAOptions, out: Output) -> None:
    from quilt_llava.eval.metrics import METRIC_LABELS, evaluate_vqa
    from quilt_llava.eval.questions import load_questions
    from quilt_llava.files import read_records, write_jsonl

    questions = load_questions(opts.questions, fmt=opts.format)
    result = evaluate_vqa(
        questions,
        read_records(opts.predictions),
        n_resamples=opts.n_resamples,
        seed=opts.seed,
        source=str(opts.predictions),
        closed_rule=opts.closed_rule,
    )
    if opts.details:
        write_jsonl(opts.details, result.per_question)
    s = result.summary
    lines = [
        f"questions: {s['n']} (open {s['n_open']}, closed {s['n_closed']}, choice {s['n_choice']})",
        "",
        "| metric | score | 95% CI |",
        "|---|---:|---:|",
    ]
    for key, label in METRIC_LABELS.items():
        if s.get(key) is not None:
            lo, hi = s[key + "_ci"]
            lines.append(f"| {label} | {s[key]:.2f} | {lo:.2f} - {hi:.2f} |")
    if s["closed_answers_not_yes_no"]:
        out.warn(
            f"{len(s['closed_answers_not_yes_no'])} closed questions have a reference that is neither "
            f"yes nor no (they can never be right under the yes/no rule; see --closed-rule): "
            f"{', '.join(s['closed_answers_not_yes_no'][:10])}"
        )
    if s["answer_types_inferred"]:
        out.warn(
            f"{s['answer_types_inferred']} questions have no answer_type; inferred from the reference "
            "(yes/no -> CLOSED, else OPEN)"
        )
    _emit(out, s, "\n".join(lines))


def run_judge(opts: JudgeOptions, out: Output) -> None:
    from quilt_llava.eval.judge import (
        judge_answers,
        load_judge_questions,
        plan_judge,
        write_references,
    )
    from quilt_llava.instruct.llm import LLMClient

    questions = load_judge_questions(opts.questions)
    refs_path = opts.references or opts.out.with_name(opts.out.stem + ".references.jsonl")
    endpoint = opts.endpoint
    params = {"temperature": opts.judge_temperature}

    def client(model: str) -> LLMClient:
        return LLMClient(endpoint.llm_config(opts.out, model=model), output=out)

    ref_client = client(opts.reference_model or endpoint.model)
    if ref_client.config.api_key_env and not ref_client.has_key:
        out.warn(
            f"${ref_client.config.api_key_env} is not set: calling {', '.join(endpoint.base_urls())} without an API key"
        )
    if endpoint.dry_run:
        judge_client = client(endpoint.model)
        try:
            plan = plan_judge(questions, refs_path, opts.predictions, opts.out, ref_client, judge_client, params)
        finally:
            ref_client.close()
            judge_client.close()
        out.result(
            plan,
            human=(
                f"dry run: {plan['reference_calls_needed']} reference calls "
                f"({plan['reference_calls_cached']} cached), {plan['judge_calls_needed']} judge calls "
                f"({plan['judge_calls_cached']} cached); about {plan['prompt_tokens_estimate']} prompt "
                f"tokens, at most {plan['completion_tokens_at_most']} completion tokens"
            ),
        )
        return
    try:
        refs = write_references(questions, ref_client, refs_path)
        ref_stats = dict(ref_client.stats)
    finally:
        ref_client.close()
    _fail_if(refs.failed, out, "reference answers")
    judge_client = client(endpoint.model)
    try:
        report = judge_answers(
            questions,
            refs_path,
            opts.predictions,
            judge_client,
            opts.out,
            model_id=opts.model_id or opts.predictions.stem,
            retries=opts.retries,
            params=params,
        )
        stats = dict(judge_client.stats)
        summary_line = judge_client.summary_line()
    finally:
        judge_client.close()
    out.info(f"judge LLM: {summary_line}")
    out.result(
        {
            "out": str(opts.out),
            "references": str(refs_path),
            "written": report.written,
            "skipped_existing": report.skipped_existing,
            "failed": len(report.failed),
            "llm": stats,
            "reference_llm": ref_stats,
        },
        human=f"wrote {report.written} reviews to {opts.out} ({report.skipped_existing} already there, "
        f"{len(report.failed)} without two scores); summarise with `quilt-llava eval judge-summary`",
    )
    _fail_if(report.failed, out, "judgements")


@dataclass
class ReportOptions:
    runs: list[Path]
    published: bool = False
    reviews: list[Path] = field(default_factory=list)
    out_md: Path | None = None
    out_csv: Path | None = None


def run_report(opts: ReportOptions, out: Output) -> None:
    from rich.console import Console

    from quilt_llava.eval.judge import read_reviews
    from quilt_llava.eval.report import (
        find_results,
        judge_table,
        load_results,
        to_csv,
        to_markdown,
        to_rich,
        vqa_table,
    )
    from quilt_llava.files import atomic_write_text

    tables = [vqa_table(load_results(find_results(opts.runs)), published=opts.published, output=out)]
    if opts.reviews or opts.published:
        tables.append(judge_table({p.stem: read_reviews(p) for p in opts.reviews}, published=opts.published))
    if opts.out_md:
        atomic_write_text(opts.out_md, "\n\n".join(to_markdown(t) for t in tables) + "\n")
    if opts.out_csv:
        atomic_write_text(opts.out_csv, to_csv(tables[0]))
        if len(tables) > 1:
            atomic_write_text(opts.out_csv.with_suffix(".judge.csv"), to_csv(tables[1]))
    if out.json:
        out.result([t.as_dict() for t in tables])
        return
    console = Console(width=max(120, Console().width))
    for t in tables:
        console.print(to_rich(t))


def generate_cmd(
    model: Path = typer.Option(..., "--model", help="Model directory (Hugging Face Llava layout)."),
    questions: Path = typer.Option(..., "--questions", help="Question file (JSON, JSONL or CSV)."),
    images: Path = typer.Option(None, "--images", help="Folder the question image paths are relative to."),
    out: Path = typer.Option(..., "--out", help="Predictions JSONL (appended; existing ids are skipped)."),
    fmt: str = typer.Option("quilt", "--format", help="quilt, llava_med, slake, vqa_rad or pmc_vqa."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1),
    suffix: str = typer.Option("", "--suffix", help="Text appended to every question (e.g. a red-circle hint)."),
    closed_suffix: str = typer.Option("", "--closed-suffix", help="Text appended to yes/no questions."),
    choice_suffix: str = typer.Option(
        "", "--choice-suffix", help="Text after the options of multiple-choice questions."
    ),
    draw_box: bool = typer.Option(False, "--draw-box", help="Draw a red ellipse around each question's 'box'."),
    conv_template: str = typer.Option(None, "--conv-template", help="Override the checkpoint's template."),
    model_id: str = typer.Option(None, "--model-id", help="Name written in each row (default: model folder name)."),
    device: str = typer.Option("cpu", "--device"),
    dtype: str = typer.Option(None, "--dtype", help="float32, bfloat16, float16 (default: as saved)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N questions."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Answer a question file with batched greedy decoding (resumable)."""
    from quilt_llava.model.hf import quiet_libraries

    quiet_libraries(quiet or as_json)  # transformers' own "Loading weights" bars
    run_generate(
        PredictionOptions(
            model,
            questions,
            images,
            out,
            fmt,
            batch_size,
            max_new_tokens,
            suffix,
            closed_suffix,
            choice_suffix,
            draw_box,
            conv_template,
            model_id,
            device,
            dtype,
            limit,
        ),
        Output(quiet=quiet, json=as_json),
    )


def vqa_cmd(
    questions: Path = typer.Option(..., "--questions", help="Question file with answers."),
    predictions: Path = typer.Option(..., "--predictions", help="Predictions JSONL {question_id, text}."),
    fmt: str = typer.Option("quilt", "--format", help="quilt, llava_med, slake, vqa_rad or pmc_vqa."),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples for the 95% CIs."),
    seed: int = typer.Option(0, "--seed"),
    details: Path = typer.Option(None, "--details", help="Also write per-question scores (JSONL)."),
    closed_rule: str = typer.Option(
        "yes_no",
        "--closed-rule",
        help="Closed questions: yes_no (Quilt-LLaVA: the yes/no label must match) or "
        "answer_in_prediction (LLaVA-Med: the answer must occur in the prediction).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (scores x100 and CIs)."),
) -> None:
    """Score predictions with the published VQA metrics (x100, with 95% bootstrap CIs)."""
    from quilt_llava.errors import ConfigError
    from quilt_llava.eval.metrics import CLOSED_RULES

    if closed_rule not in CLOSED_RULES:
        raise ConfigError(f"--closed-rule must be one of {', '.join(CLOSED_RULES)}, got {closed_rule!r}")
    run_vqa(
        VQAOptions(questions, predictions, fmt, resamples, seed, details, closed_rule),
        Output(quiet=quiet, json=as_json),
    )


@with_endpoint_options
def judge_cmd(
    questions: Path = typer.Option(..., "--questions", help="{question_id, question, caption, category} rows."),
    predictions: Path = typer.Option(..., "--predictions", help="Model answers {question_id, text}."),
    out: Path = typer.Option(..., "--out", help="Review JSONL (appended row by row; reviewed ids are skipped)."),
    references: Path = typer.Option(
        None, "--references", help="Reference answers JSONL (written if missing; default: OUT.references.jsonl)."
    ),
    reference_model: str = typer.Option(
        None, "--reference-model", help="Model for reference answers (default: --model)."
    ),
    retries: int = typer.Option(2, "--retries", min=0, help="Re-asks when a reply lacks two scores."),
    judge_temperature: float = typer.Option(
        0.2, "--judge-temperature", help="The judge's temperature (--temperature is the reference writer's)."
    ),
    model_id: str = typer.Option(None, "--model-id", help="Name of the judged model (default: predictions file name)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
    endpoint: EndpointOptions | None = None,  # the shared endpoint flags (instruct.llm_options)
) -> None:
    """Write reference answers from captions, then have an LLM score reference and model answers 1-10."""
    assert endpoint is not None  # filled in by with_endpoint_options
    run_judge(
        JudgeOptions(
            questions, predictions, out, references, endpoint, reference_model, retries, judge_temperature, model_id
        ),
        Output(quiet=quiet, json=as_json),
    )


def judge_questions_cmd(
    records: Path = typer.Option(..., "--records", help="Held-out instruction records (LLaVA format, JSON/JSONL)."),
    out: Path = typer.Option(..., "--out", help="Judge question JSONL."),
    narratives: Path = typer.Option(None, "--narratives", help="narratives.jsonl holding the grounded captions."),
    categories: str = typer.Option("conv,detail", "--categories", help="Comma list to keep, or 'all'."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Turn held-out conversation/detail records into judge questions with their grounded captions."""
    from quilt_llava.eval.judge import judge_questions_from_records
    from quilt_llava.files import read_records, write_jsonl

    keep = None if categories.strip() == "all" else [c.strip() for c in categories.split(",") if c.strip()]
    rows = judge_questions_from_records(
        read_records(records), read_records(narratives) if narratives else None, categories=keep, source=str(records)
    )
    write_jsonl(out, rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    Output(json=as_json).result(
        {"out": str(out), "questions": len(rows), "by_category": counts},
        human=f"wrote {len(rows)} judge questions to {out} {counts}",
    )


def judge_summary_cmd(
    reviews: list[Path] = typer.Argument(..., help="Review JSONL files (one per judged model)."),
    by: str = typer.Option(None, "--by", help="Second key to break categories down by (e.g. subspecialty)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per category and overall: mean reference and model scores and the relative score."""
    from quilt_llava.eval.judge import format_summary, read_reviews, summarize_reviews

    out = Output(json=as_json)
    tables, objs = [], {}
    any_failed = False
    for path in reviews:
        groups = summarize_reviews(read_reviews(path), by=by)
        tables.append(format_summary(str(path), groups))
        objs[str(path)] = [g.as_dict() for g in groups]
        failed = groups[-1].failed
        if failed:
            any_failed = True
            out.warn(f"{path}: {failed} reviews without two scores are counted as failed")
    _emit(out, objs, "\n\n".join(tables))
    if any_failed:
        raise typer.Exit(1)


def run_cmd(
    benchmark: str = typer.Argument(..., help="Benchmark name (see `eval benchmarks`) or a declaration YAML path."),
    model: Path = typer.Option(..., "--model", help="Model directory."),
    out_dir: Path = typer.Option(Path("eval_results"), "--out", help="Results folder."),
    questions: str = typer.Option(
        None,
        "--questions",
        help="The benchmark's questions in its published layout: a JSON/JSONL or CSV "
        "file, or for Hugging Face datasets a Parquet/Arrow file, a folder of "
        "them, a save_to_disk folder, or a hub id owner/name (online).",
    ),
    images: Path = typer.Option(None, "--images", help="Image folder or zip archive (extracted once into --cache)."),
    data_root: Path = typer.Option(
        None, "--data-root", help="Folder holding the benchmarks' files ($QUILT_LLAVA_DATA)."
    ),
    split: str = typer.Option(None, "--split", help="Split of a Hugging Face dataset (default: the declaration's)."),
    cache: Path = typer.Option(
        None,
        "--cache",
        help="Where images from datasets and archives are extracted "
        "(default: $QUILT_LLAVA_CACHE/benchmarks or ~/.cache/quilt_llava/benchmarks).",
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", min=1),
    device: str = typer.Option("cpu", "--device"),
    dtype: str = typer.Option(None, "--dtype"),
    model_id: str = typer.Option(None, "--model-id"),
    limit: int = typer.Option(None, "--limit", min=1),
    resamples: int = typer.Option(1000, "--resamples", min=0),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Score the answered questions when some failed."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Generate answers for a benchmark and score them (results.json + results.md)."""
    from quilt_llava.eval.benchmarks import RunOptions, results_table, run_benchmark
    from quilt_llava.model.hf import quiet_libraries

    out = Output(quiet=quiet, json=as_json)
    quiet_libraries(quiet or as_json)
    results = run_benchmark(
        RunOptions(
            benchmark,
            model,
            out_dir,
            questions,
            images,
            data_root,
            batch_size,
            max_new_tokens,
            device,
            dtype,
            model_id,
            limit,
            resamples,
            allow_missing,
            split,
            cache,
        ),
        output=out,
    )
    _emit(out, results, results_table([results]))
    _fail_if([(f["question_id"], f["reason"]) for f in results["generation_failures"]], out, "questions")


def table_cmd(
    results: list[Path] = typer.Argument(..., help="results.json files of `eval run`."),
    out_md: Path = typer.Option(None, "--out", help="Also write the Markdown table here."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Lay several models' benchmark results side by side (Markdown or JSON)."""
    from quilt_llava.eval.benchmarks import results_matrix, results_table
    from quilt_llava.eval.report import load_results
    from quilt_llava.files import atomic_write_text

    loaded = load_results(list(results))
    table = results_table(loaded)
    if out_md:
        atomic_write_text(out_md, table + "\n")
    _emit(Output(json=as_json), results_matrix(loaded), table)


def report_cmd(
    runs: list[Path] = typer.Argument(
        ..., help="results.json files of `eval run`, or folders holding them (e.g. its --out folder)."
    ),
    published: bool = typer.Option(False, "--published", help="Add the published reference rows (SPEC.md)."),
    reviews: list[Path] = typer.Option(
        None, "--reviews", help="Judge review JSONL of a model (repeatable); the model is named after the file."
    ),
    out_md: Path = typer.Option(None, "--out-md", help="Also write the tables as Markdown here."),
    out_csv: Path = typer.Option(
        None, "--out-csv", help="Also write the VQA table as CSV here (the judge table next to it, *.judge.csv)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Headline metrics of several models side by side with 95% intervals, beside the published rows."""
    run_report(ReportOptions(list(runs), published, list(reviews or []), out_md, out_csv), Output(json=as_json))


def benchmarks_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the shipped benchmark declarations."""
    from quilt_llava.eval.benchmarks import builtin_benchmarks, describe, load_benchmark

    decls = [describe(load_benchmark(n)) for n in builtin_benchmarks()]
    lines = ["| name | layout | format | questions | images | metrics | source |", "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {d['name']} | {d['layout']} | {d['format']} | {d['questions']} | {d['images'] or '(inside)'} | "
        f"{', '.join(d['headline'])} | {d['source']} |"
        for d in decls
    ]
    _emit(Output(json=as_json), decls, "\n".join(lines))


# `quilt-llava eval NAME` -> the function that runs it.
COMMANDS = {
    "generate": generate_cmd,
    "vqa": vqa_cmd,
    "judge": judge_cmd,
    "judge-questions": judge_questions_cmd,
    "judge-summary": judge_summary_cmd,
    "run": run_cmd,
    "table": table_cmd,
    "report": report_cmd,
    "benchmarks": benchmarks_cmd,
}


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Batched inference, VQA metrics, LLM judge and benchmark declarations.", no_args_is_help=True
    )
    app.add_typer(sub, name="eval")
    for name, command in COMMANDS.items():
        sub.command(name)(command)
