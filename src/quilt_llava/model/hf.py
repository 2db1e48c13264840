"""Small helpers around the Hugging Face libraries, shared by the train, eval and serve commands.

- :func:`quiet_libraries` turns off transformers' own progress bars ("Loading
  weights", "Writing model shards") for ``--quiet`` / ``--json`` runs. It is called
  inside command bodies, never at import, and imports transformers lazily.
- :func:`hub_load` runs a ``from_pretrained`` call and turns the ``OSError`` of a
  checkpoint that cannot be fetched (offline, typo, gated) into an
  :class:`~quilt_llava.errors.InputError` naming the checkpoint id.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from quilt_llava.errors import InputError

T = TypeVar("T")


def quiet_libraries(quiet: bool = True) -> None:
    """Hide transformers' progress bars when ``quiet`` (a no-op otherwise)."""
    if not quiet:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def hub_load(what: str, checkpoint: str | os.PathLike[str], load: Callable[[], T]) -> T:
    """``load()``, with an unreachable/missing ``checkpoint`` reported as an :class:`InputError`.

    ``what`` says which part is loaded ("vision tower", "LLM", "tokenizer", ...).
    """
    try:
        return load()
    except OSError as exc:
        ident = str(checkpoint)
        if os.path.isdir(ident):
            hint = f"the folder is not a complete {what} checkpoint ({_first_line(exc)})"
        elif os.path.isabs(ident) or ident.startswith((".", "~")) or ident.count("/") > 1:
            hint = f"no {what} folder at this path ({_first_line(exc)})"
        else:
            hint = (
                f"could not load the {what} '{ident}' from the Hugging Face hub ({_first_line(exc)}). Without "
                "network access (or for a gated model), download it once elsewhere (e.g. `huggingface-cli download "
                f"{ident} --local-dir DIR`) and pass the local directory instead of the hub id"
            )
        raise InputError(ident, hint) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


__all__ = ["hub_load", "quiet_libraries"]
