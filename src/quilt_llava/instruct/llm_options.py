"""Endpoint options shared by every command that calls an LLM (``instruct <generator>``, ``eval judge``).

One definition of the flags, their defaults and environment variables, so the
commands cannot drift apart:

- ``--base-url`` (env ``QUILT_LLAVA_LLM_BASE_URL``; repeat it, or list URLs in a file given to
  ``--endpoints``, to spread requests over several servers of one model), ``--model``/``--llm-model`` (env
  ``QUILT_LLAVA_LLM_MODEL``, default ``gpt-4``), ``--api-key-env`` (default
  ``OPENAI_API_KEY``), ``--api-version`` (Azure OpenAI);
- ``--temperature``, ``--max-tokens``, ``--concurrency``, ``--max-retries``,
  ``--timeout``, ``--backoff``;
- ``--cache`` (default ``llm_cache.sqlite`` in the output's folder), ``--no-cache``;
- ``--price-prompt``, ``--price-completion`` (USD per 1k tokens, for the cost line);
- ``--dry-run`` (report the calls needed; send nothing, write nothing).

:func:`with_endpoint_options` adds them to a typer command function, which then
receives one :class:`EndpointOptions` as its ``endpoint`` argument;
:meth:`EndpointOptions.llm_config` turns that into an
:class:`~quilt_llava.instruct.llm.LLMConfig`. Nothing heavy is imported here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from quilt_llava.instruct import defaults

if TYPE_CHECKING:
    from quilt_llava.instruct.llm import LLMConfig

ENV_BASE_URL = "QUILT_LLAVA_LLM_BASE_URL"
ENV_MODEL = "QUILT_LLAVA_LLM_MODEL"
DEFAULT_BASE_URL = defaults.BASE_URL
DEFAULT_MODEL = defaults.MODEL
DEFAULT_KEY_ENV = defaults.KEY_ENV
CACHE_NAME = "llm_cache.sqlite"


def default_cache_path(out: str | Path) -> Path:
    """Where the response cache lives unless told otherwise: next to the output file."""
    return Path(out).parent / CACHE_NAME


@dataclass
class EndpointOptions:
    """The endpoint flags of one command, as parsed (see the module docstring)."""

    base_url: str | list[str] = DEFAULT_BASE_URL  # several: requests are spread over them
    endpoints: Path | None = None  # a file of further base URLs, one a line
    model: str = DEFAULT_MODEL
    api_key_env: str | None = DEFAULT_KEY_ENV
    api_version: str | None = None
    temperature: float = defaults.TEMPERATURE
    max_tokens: int = defaults.MAX_TOKENS
    concurrency: int = defaults.CONCURRENCY
    max_retries: int = defaults.MAX_RETRIES
    timeout_s: float = defaults.TIMEOUT_S
    backoff_s: float = defaults.BACKOFF_S
    cache: Path | None = None  # None: default_cache_path(out)
    no_cache: bool = False
    price_prompt: float | None = None
    price_completion: float | None = None
    dry_run: bool = False

    def base_urls(self) -> list[str]:
        """Every endpoint given: ``--base-url`` (once or more) then the ``--endpoints`` file."""
        from quilt_llava.instruct.endpoints import read_endpoints

        given = [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)
        from_file = read_endpoints(self.endpoints) if self.endpoints is not None else []
        if not given or (from_file and given == [DEFAULT_BASE_URL]):
            given = []  # the default stands in only when no endpoint is named at all
        return list(dict.fromkeys(given + from_file)) or [DEFAULT_BASE_URL]

    def cache_path(self, out: str | Path) -> Path | None:
        if self.no_cache:
            return None
        return Path(self.cache) if self.cache is not None else default_cache_path(out)

    def llm_config(self, out: str | Path, model: str | None = None) -> LLMConfig:
        """An :class:`LLMConfig` for a run writing ``out`` (``model`` overrides the model name).

        In a dry run the cache is only read, and only if it exists.
        """
        from quilt_llava.instruct.llm import LLMConfig

        first, *more = self.base_urls()
        return LLMConfig(
            base_url=first,
            extra_base_urls=more,
            model=model or self.model,
            api_key_env=self.api_key_env or None,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            concurrency=self.concurrency,
            max_retries=self.max_retries,
            timeout_s=self.timeout_s,
            backoff_base_s=self.backoff_s,
            cache_path=self.cache_path(out),
            cache_read_only=self.dry_run,
            api_version=self.api_version,
            price_prompt_per_1k=self.price_prompt,
            price_completion_per_1k=self.price_completion,
        )


def _params() -> list[tuple[str, Any, Any]]:
    """(field name, annotation, typer option) for every :class:`EndpointOptions` field."""
    return [
        (
            "base_url",
            list[str],
            typer.Option(
                [DEFAULT_BASE_URL],
                "--base-url",
                envvar=ENV_BASE_URL,
                help="OpenAI-compatible endpoint (OpenAI, Azure deployment URL, vLLM, "
                "Ollama, llama.cpp). Repeat it for several servers of one model: "
                "each request goes to the least busy one that is up.",
            ),
        ),
        (
            "endpoints",
            Path | None,
            typer.Option(
                None,
                "--endpoints",
                help="File of further endpoint base URLs, one a line (used with the --base-url ones).",
            ),
        ),
        (
            "model",
            str,
            typer.Option(
                DEFAULT_MODEL, "--model", "--llm-model", envvar=ENV_MODEL, help="LLM (or Azure deployment) name."
            ),
        ),
        (
            "api_key_env",
            str,
            typer.Option(
                DEFAULT_KEY_ENV,
                "--api-key-env",
                help="Name of the environment variable holding the API key ('' for none).",
            ),
        ),
        (
            "api_version",
            str | None,
            typer.Option(None, "--api-version", help="Azure OpenAI api-version (sends an api-key header)."),
        ),
        ("temperature", float, typer.Option(defaults.TEMPERATURE, "--temperature", help="Sampling temperature.")),
        ("max_tokens", int, typer.Option(defaults.MAX_TOKENS, "--max-tokens", min=1, help="Most tokens per reply.")),
        (
            "concurrency",
            int,
            typer.Option(
                defaults.CONCURRENCY, "--concurrency", "-c", min=1, help="Requests in flight at once, per endpoint."
            ),
        ),
        (
            "max_retries",
            int,
            typer.Option(
                defaults.MAX_RETRIES, "--max-retries", min=0, help="Retries on rate limits, server errors and timeouts."
            ),
        ),
        ("timeout_s", float, typer.Option(defaults.TIMEOUT_S, "--timeout", help="Seconds per request.")),
        (
            "backoff_s",
            float,
            typer.Option(defaults.BACKOFF_S, "--backoff", help="First retry delay in seconds (doubles each retry)."),
        ),
        # No square brackets here: rich help would read "[default: ...]" as markup and drop it.
        (
            "cache",
            Path | None,
            typer.Option(
                None, "--cache", help=f"SQLite response cache (default: {CACHE_NAME} in the output's folder)."
            ),
        ),
        ("no_cache", bool, typer.Option(False, "--no-cache", help="Do not read or write a response cache.")),
        (
            "price_prompt",
            float | None,
            typer.Option(None, "--price-prompt", help="USD per 1k prompt tokens, for the cost line."),
        ),
        (
            "price_completion",
            float | None,
            typer.Option(None, "--price-completion", help="USD per 1k completion tokens."),
        ),
        (
            "dry_run",
            bool,
            typer.Option(False, "--dry-run", help="Report the calls and tokens needed; send nothing, write nothing."),
        ),
    ]


_FIELDS = {f.name for f in fields(EndpointOptions)}


def with_endpoint_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a typer command taking ``endpoint: EndpointOptions``: the flags replace that argument."""
    specs = _params()
    assert {name for name, _, _ in specs} == _FIELDS  # every field has exactly one flag
    prefix = "llm_opt_"  # keeps the added parameter names clear of the command's own
    sig = inspect.signature(func)
    own = [p for p in sig.parameters.values() if p.name != "endpoint"]
    added = [
        inspect.Parameter(prefix + name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=ann)
        for name, ann, option in specs
    ]
    own_kw = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        values = {name: kwargs.pop(prefix + name) for name, _, _ in specs}
        return func(endpoint=EndpointOptions(**values), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own_kw + added)  # type: ignore[attr-defined]
    annotations = dict(getattr(func, "__annotations__", {}))
    annotations.pop("endpoint", None)
    annotations.update({prefix + name: ann for name, ann, _ in specs})
    wrapper.__annotations__ = annotations
    return wrapper
