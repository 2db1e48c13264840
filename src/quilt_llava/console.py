"""Terminal output conventions shared by all commands.

- Human output goes to stderr through rich (progress bars, tables, messages), so
  stdout stays clean for ``--json`` results a script consumes.
- ``--quiet`` silences progress and informational messages; errors still print.
- Nothing here configures global logging; the CLI entry point does that once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


@dataclass
class Output:
    """How a command reports: ``quiet`` hides progress/info, ``json`` prints one JSON object to stdout."""

    quiet: bool = False
    json: bool = False

    def __post_init__(self) -> None:
        self.err = Console(stderr=True, quiet=self.quiet)
        # Errors are never silenced by --quiet.
        self._errors = Console(stderr=True)

    # Messages carry user data (paths, captions, "pip install 'x[extra]'"): they are
    # printed literally unless a caller opts in to rich markup for its own styling.
    def info(self, message: str, markup: bool = False) -> None:
        self.err.print(message if markup else escape(message))

    def warn(self, message: str) -> None:
        self._errors.print(f"[yellow]warning:[/yellow] {escape(message)}")

    def error(self, message: str) -> None:
        self._errors.print(f"[red]error:[/red] {escape(message)}", highlight=False)

    def result(self, obj: Any, human: str | None = None) -> None:
        """Print a command's result: JSON on stdout with ``--json``, else ``human`` (or pretty JSON)."""
        if self.json:
            sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
        elif human is not None:
            Console().print(escape(human) if isinstance(human, str) else human)
        else:
            Console().print_json(data=obj, default=str)

    def progress(self, transient: bool = False) -> Progress:
        return Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=transient,
            disable=self.quiet or self.json,
        )

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterate with a progress bar (hidden when quiet/json)."""
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        with self.progress() as prog:
            task = prog.add_task(description, total=total)
            for item in items:
                yield item
                prog.advance(task)
