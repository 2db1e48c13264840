"""Stage B: instruction-tuning and evaluation data generated from narratives with an OpenAI-compatible LLM.

Python entry points:

- :func:`build_alignment_records` (no LLM) for stage-1 data;
- :func:`quilt_llava.instruct.run.run_generator` with flat
  :class:`~quilt_llava.instruct.run.GenerateOptions`, or :func:`~quilt_llava.instruct.run.run_instruct` with
  :class:`~quilt_llava.instruct.run.InstructOptions` for any generator (what the CLI calls);
- :class:`quilt_llava.instruct.llm.LLMClient` for direct chat calls;
- :mod:`quilt_llava.instruct.llm_options`: the endpoint flags (``--base-url``/``QUILT_LLAVA_LLM_BASE_URL``,
  ``--model``/``QUILT_LLAVA_LLM_MODEL``, ``--api-key-env``, ``--api-version``, retries, timeout, cache,
  prices, ``--dry-run``) shared by ``instruct`` and ``eval judge``.
"""

from __future__ import annotations

from quilt_llava.instruct.generators.align import BRIEF_REQUESTS, build_alignment_records

__all__ = ["BRIEF_REQUESTS", "build_alignment_records"]
