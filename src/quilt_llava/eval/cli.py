"""CLI for the eval stage. Heavy imports live inside command bodies."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="batched inference, VQA metrics, LLM judge and benchmark declarations.", no_args_is_help=True)
    app.add_typer(sub, name="eval")
