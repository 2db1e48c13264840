"""CLI for the instruct stage. Heavy imports live inside command bodies."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="instruction-tuning and evaluation data generated from narratives with an OpenAI-compatible LLM.", no_args_is_help=True)
    app.add_typer(sub, name="instruct")
