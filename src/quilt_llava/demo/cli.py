"""CLI for the demo. Heavy imports live inside command bodies."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
