"""The ``quilt-llava`` command: one entry point, one sub-command per stage.

Each stage module owns its commands in ``<stage>/cli.py`` and exposes
``register(app)``. Those modules keep heavy imports (torch, av, gradio) inside the
command bodies, so ``quilt-llava --help`` stays fast and works with only the core
installed.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

from quilt_llava import __version__
from quilt_llava.errors import MissingDependencyError, QuiltError

# Stage modules whose ``register(app)`` adds commands, in help order.
STAGE_MODULES = (
    "quilt_llava.narratives.cli",
    "quilt_llava.instruct.cli",
    "quilt_llava.train.cli",
    "quilt_llava.eval.cli",
    "quilt_llava.serve.cli",
    "quilt_llava.demo.cli",
)


# Top-level module of an optional dependency -> the extra that installs it.
EXTRA_OF_MODULE = {
    "torch": "train",
    "transformers": "train",
    "accelerate": "train",
    "peft": "train",
    "safetensors": "train",
    "tokenizers": "train",
    "matplotlib": "train",
    "pyarrow": "train",
    "datasets": "eval",
    "av": "video",
    "cv2": "video",
    "skimage": "video",
    "gradio": "serve",
    "faster_whisper": "asr",
    "bitsandbytes": "quant",
    "deepspeed": "deepspeed",
    "ray": "distributed",
}


def missing_dependency(exc: ModuleNotFoundError) -> MissingDependencyError | None:
    """The install hint for an optional dependency that is not installed, if ``exc`` is one."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    return MissingDependencyError(top, extra) if extra else None


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


def make_app() -> typer.Typer:
    app = typer.Typer(
        name="quilt-llava",
        help="Narrated pathology videos to grounded data, instruction tuning, evaluation and chat.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    ) -> None:
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )

    for module_name in STAGE_MODULES:
        importlib.import_module(module_name).register(app)
    return app


def main() -> None:
    # Tokenizers' fork warning is noise for a CLI that forks DataLoader workers.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app = make_app()
    try:
        app()
    except QuiltError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        hint = missing_dependency(exc)
        if hint is None:
            raise
        typer.secho(f"error: {hint}", fg=typer.colors.RED, err=True)
        sys.exit(2)
