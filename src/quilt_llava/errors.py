"""Exceptions a user can act on.

Every error raised for bad *input* (a file, a row, a config value) is a
:class:`QuiltError` subclass whose message names the offending input, so the CLI
can print it without a traceback and carry on with the remaining inputs.
"""

from __future__ import annotations


class QuiltError(Exception):
    """Base class for expected, user-facing failures."""


class InputError(QuiltError):
    """A file or record could not be used. ``source`` names it (path, ``path:line`` or id)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class ConfigError(QuiltError):
    """One or more configuration values are invalid. All problems are listed at once."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        head = f"invalid configuration{f' in {source}' if source else ''}"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class MissingDependencyError(QuiltError):
    """An optional extra is needed for this feature."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the '{module}' package; install it with `pip install 'quilt-llava[{extra}]'`"
        )
