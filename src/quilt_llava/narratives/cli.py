"""CLI for the narratives stage. Heavy imports live inside command bodies."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="localized narratives (stable segments, cursor traces, grounded captions) from narrated slide-viewing videos.", no_args_is_help=True)
    app.add_typer(sub, name="narratives")
