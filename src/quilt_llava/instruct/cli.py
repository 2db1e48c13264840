"""CLI for the instruct stage. Heavy imports live inside command bodies.

    quilt-llava instruct align NARRATIVES --out align.json
    quilt-llava instruct conversation NARRATIVES --out conv.jsonl --base-url URL --model gpt-4
    quilt-llava instruct redcircle NARRATIVES --questions vqa.jsonl --out vqa_redcircle.jsonl
    quilt-llava instruct report conv.jsonl

Every LLM command shares the endpoint options (quilt_llava.instruct.llm_options, the
same as `eval judge`); the response cache defaults to
``llm_cache.sqlite`` next to the output, so generators writing to one folder share
it (``reasoning`` and ``abductive`` then reuse the ``diagnosis`` replies for free).
"""

from __future__ import annotations

from pathlib import Path

import typer

from quilt_llava.instruct.llm_options import EndpointOptions, with_endpoint_options

LLM_GENERATORS = {
    "conversation": "3-4 independent Q/A pairs about the visible content of each segment image.",
    "detail": "A detailed description of each segment image.",
    "diagnosis": "Diagnosis and supporting clues per video, from its whole transcript.",
    "reasoning": "One exchange per image reasoning toward the video's diagnosis without naming it.",
    "abductive": "Student/teacher dialogues (4 or 6 turns) reasoning from an image to the diagnosis.",
    "filter": "Yes/no: medical content, and a discernible diagnosis, per segment.",
    "vqa": "Quilt-VQA-style evaluation Q/A from the questions the narrator asked (open/closed).",
}


# One flag for every generator that reads narratives rows.
INCLUDE_NON_TISSUE_HELP = (
    "Also use rows flagged is_tissue: false (views that are not tissue, kept by "
    "`narratives extract --keep-non-tissue`); by default they are left out and counted."
)


def _include_non_tissue_option():
    return typer.Option(False, "--include-non-tissue", help=INCLUDE_NON_TISSUE_HELP)


def _run(options, quiet: bool, json_out: bool) -> None:
    from quilt_llava.console import Output
    from quilt_llava.instruct.run import exit_code, run_instruct

    out = Output(quiet=quiet, json=json_out)
    summary = run_instruct(options, out)
    human = None
    if not summary.get("dry_run"):
        human = (
            f"{summary['generator']}: {summary['records']} records from {summary['accepted_units']} units "
            f"({summary['previously_done']} done before); rejected {summary['rejected']}, "
            f"failed {summary['failed']}, skipped {summary['skipped']}; "
            f"{summary['calls']} calls, {summary['cached']} cached -> {summary['out']}"
        )
        if summary["rejects"]:
            human += f"\nrejects: {summary['rejects']}"
        if summary.get("non_tissue_skipped"):
            human += f"\n{summary['non_tissue_skipped']} non-tissue rows left out (--include-non-tissue to use them)"
    out.result(summary, human=human)
    code = exit_code(summary)
    if code:
        raise typer.Exit(code)


def _llm_command(name: str, help_text: str):
    @with_endpoint_options
    def command(
        narratives: Path = typer.Argument(..., help="narratives.jsonl from `quilt-llava narratives extract`."),
        out: Path = typer.Option(..., "--out", "-o", help="Output file: .jsonl, or .json for one JSON array."),
        diagnoses: Path | None = typer.Option(
            None, "--diagnoses", help="reasoning/abductive: a `diagnosis` output to use instead of asking."
        ),
        medical_filter: Path | None = typer.Option(
            None, "--medical-filter", help="A `filter` output: keep only segments it judged medical."
        ),
        include_non_tissue: bool = _include_non_tissue_option(),
        seed: int = typer.Option(0, "--seed", help="Seed for drawn questions and turn counts."),
        limit: int | None = typer.Option(None, "--limit", help="Only the first N work units."),
        no_gates: bool = typer.Option(
            False, "--no-gates", help="Keep records that fail the quality gates (see docs/INSTRUCT.md)."
        ),
        gates: Path | None = typer.Option(
            None, "--gates", help="YAML file of quality-gate thresholds (GateConfig fields)."
        ),
        structured: str = typer.Option(
            "auto",
            "--structured",
            help="Send JSON replies' schemas as response_format: auto (probe the endpoint once), on, off.",
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
        endpoint: EndpointOptions | None = None,  # the shared endpoint flags (llm_options)
    ) -> None:
        from quilt_llava.instruct.gates import GateConfig
        from quilt_llava.instruct.run import InstructOptions

        assert endpoint is not None  # filled in by with_endpoint_options
        gate_config = GateConfig.from_yaml(gates) if gates is not None else GateConfig()
        if no_gates:
            gate_config.enabled = False
        options = InstructOptions(
            generator=name,
            narratives=narratives,
            out=out,
            llm=endpoint.llm_config(out),
            seed=seed,
            diagnoses=diagnoses,
            limit=limit,
            dry_run=endpoint.dry_run,
            medical_filter=medical_filter,
            include_non_tissue=include_non_tissue,
            gates=gate_config,
            structured=structured,
        )
        _run(options, quiet, json_out)

    command.__doc__ = help_text
    return command


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Instruction-tuning and evaluation data generated from narratives (LLM via an OpenAI-compatible API).",
        no_args_is_help=True,
    )

    @sub.command("align")
    def align(
        narratives: Path = typer.Argument(..., help="narratives.jsonl from `quilt-llava narratives extract`."),
        out: Path = typer.Option(..., "--out", "-o", help="Output file: .jsonl, or .json for one JSON array."),
        caption: str = typer.Option(
            "plain", "--caption", help="Answer text: plain (utterances) or grounded (with boxes)."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed for the drawn instruction."),
        limit: int | None = typer.Option(None, "--limit", help="Only the first N segments."),
        include_non_tissue: bool = _include_non_tissue_option(),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Stage-1 alignment data (no LLM): each image with its narration as the answer."""
        from quilt_llava.instruct.run import InstructOptions

        options = InstructOptions(
            generator="align",
            narratives=narratives,
            out=out,
            seed=seed,
            caption=caption,
            limit=limit,
            include_non_tissue=include_non_tissue,
        )
        _run(options, quiet, json_out)

    for name, help_text in LLM_GENERATORS.items():
        sub.command(name)(_llm_command(name, help_text))

    @sub.command("redcircle")
    def redcircle(
        narratives: Path = typer.Argument(..., help="narratives.jsonl the questions were made from."),
        questions: Path = typer.Option(..., "--questions", help="Output of `quilt-llava instruct vqa`."),
        out: Path = typer.Option(..., "--out", "-o", help="Output questions (.jsonl or .json)."),
        limit: int | None = typer.Option(None, "--limit", help="Only the first N questions."),
        include_non_tissue: bool = _include_non_tissue_option(),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """The same questions on images with a red ellipse around the grounded region (no LLM)."""
        from quilt_llava.instruct.run import InstructOptions

        options = InstructOptions(
            generator="redcircle",
            narratives=narratives,
            out=out,
            questions=questions,
            limit=limit,
            include_non_tissue=include_non_tissue,
        )
        _run(options, quiet, json_out)

    @sub.command("region-qa")
    def region_qa(
        narratives: Path = typer.Argument(..., help="narratives.jsonl from `quilt-llava narratives extract`."),
        terms: Path = typer.Option(
            ..., "--terms", help="YAML vocabulary of region labels (keywords, description, closed question)."
        ),
        out: Path = typer.Option(
            ...,
            "--out",
            "-o",
            help="Output folder: crops/, segments/, align.jsonl (stage 1), train.jsonl (stage 2), "
            "eval_questions.jsonl, held_out.json.",
        ),
        seed: int | None = typer.Option(None, "--seed", help="Override the vocabulary file's seed."),
        include_non_tissue: bool = _include_non_tissue_option(),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Region Q/A (no LLM): crops of grounded boxes labelled from the narrator's words, split by segment."""
        from quilt_llava.console import Output
        from quilt_llava.instruct.region_qa import RegionQAConfig, write_region_qa

        output = Output(quiet=quiet, json=json_out)
        config = RegionQAConfig.from_yaml(terms)
        if seed is not None:
            config.seed = seed
        summary = write_region_qa(narratives, out, config, include_non_tissue=include_non_tissue)
        for problem in summary["problems"]:
            output.warn(f"row left out: {problem}")
        output.result(
            summary,
            human=(
                f"region-qa: {summary['train_records']} training records, "
                f"{summary['align_records'] + summary['segment_align_records']} "
                f"alignment records, {summary['eval_questions']} evaluation questions, "
                f"labels {summary['label_counts']} -> {out}"
            ),
        )
        if summary["problems"]:
            raise typer.Exit(1)

    @sub.command("report")
    def report_cmd(
        out: Path = typer.Argument(..., help="A generator's output (.jsonl or .json); its .rejects.jsonl is read too."),
        json_out: bool = typer.Option(False, "--json", help="Print the statistics as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Records, rejects by reason, answer lengths, repetition, vocabulary and position-word use of an output."""
        from quilt_llava.console import Output
        from quilt_llava.instruct.report import human_lines, report

        output = Output(quiet=quiet, json=json_out)
        stats = report(out)
        output.result(stats, human=human_lines(stats))

    app.add_typer(sub, name="instruct")
