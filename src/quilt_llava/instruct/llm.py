"""A small client for OpenAI-compatible chat-completions endpoints.

Works with OpenAI, Azure OpenAI (``api_version`` + ``api-key`` header), vLLM,
llama.cpp server and Ollama. What it adds over a bare HTTP call:

- bounded concurrency (one :class:`asyncio.Semaphore` per client and event loop);
- retries with exponential backoff and jitter on 429, 5xx, timeouts, connection
  errors and unreadable replies, honouring ``Retry-After`` (seconds or HTTP date);
- a persistent SQLite response cache keyed by a hash of (model, messages,
  parameters), written one reply at a time, so a re-run or a resumed run makes no
  new calls for what it already has;
- token and cost accounting in :attr:`LLMClient.stats`;
- several endpoints serving the same model (``extra_base_urls``): each request goes to the
  least busy one, and one that goes down has its requests moved to the others
  (:mod:`quilt_llava.instruct.endpoints`).

The API key is read from an environment variable when the client is created and
kept in one private attribute. It is never logged, cached, written, shown in a
repr, nor left in an error message (every error text is scrubbed of it, including
server replies that echo request headers back).

Failures are not raised: :meth:`LLMClient.achat` and :meth:`LLMClient.run` return
:class:`ChatResult` objects whose ``error`` names what went wrong, so one bad
request never stops a batch.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from quilt_llava.console import Output
from quilt_llava.errors import ConfigError
from quilt_llava.instruct import defaults
from quilt_llava.instruct.endpoints import EndpointPool

log = logging.getLogger(__name__)

# Statuses worth another try: rate limits, server trouble, request timeouts.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
AUTH_MODES = ("auto", "bearer", "api-key", "none")
REDACTED = "[REDACTED]"
FINISH_KEY = "finish_reason"  # stored inside a cached reply's usage JSON


@dataclass
class LLMConfig:
    """Where and how to call the model. The key itself is never stored here, only its variable."""

    base_url: str = defaults.BASE_URL
    # More endpoints serving the same model; requests are spread over all (see instruct/endpoints.py).
    extra_base_urls: list[str] = field(default_factory=list)
    endpoint_cooldown_s: float = 30.0  # how long an endpoint found down gets no requests
    model: str = defaults.MODEL
    api_key_env: str | None = defaults.KEY_ENV
    temperature: float = defaults.TEMPERATURE
    max_tokens: int = defaults.MAX_TOKENS
    concurrency: int = defaults.CONCURRENCY
    max_retries: int = defaults.MAX_RETRIES
    timeout_s: float = defaults.TIMEOUT_S
    cache_path: str | Path | None = None
    # Only read the cache, and only if it exists (dry runs write nothing).
    cache_read_only: bool = False
    # Azure OpenAI: base_url = https://<resource>.openai.azure.com/openai/deployments/<deployment>
    api_version: str | None = None
    # "auto": "api-key" header when api_version is set (Azure), else "Authorization: Bearer".
    auth: str = "auto"
    backoff_base_s: float = defaults.BACKOFF_S
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 300.0
    # Optional USD prices per 1,000 tokens, for the cost line of the run summary.
    price_prompt_per_1k: float | None = None
    price_completion_per_1k: float | None = None
    extra_params: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        problems = []
        for url in (self.base_url, *self.extra_base_urls):
            if not url.startswith(("http://", "https://")):
                problems.append(f"base_url must start with http:// or https://, got {url!r}")
        if not self.model:
            problems.append("model must not be empty")
        if self.concurrency < 1:
            problems.append(f"concurrency must be >= 1, got {self.concurrency}")
        if self.max_retries < 0:
            problems.append(f"max_retries must be >= 0, got {self.max_retries}")
        if self.timeout_s <= 0:
            problems.append(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_tokens < 1:
            problems.append(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.auth not in AUTH_MODES:
            problems.append(f"auth must be one of {', '.join(AUTH_MODES)}, got {self.auth!r}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            problems.append("backoff_base_s and backoff_max_s must be >= 0")
        if problems:
            raise ConfigError(problems)

    def default_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, **self.extra_params}


@dataclass
class ChatRequest:
    """One chat call in a batch; ``key`` is the caller's id and comes back on the result."""

    key: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChatResult:
    key: str
    text: str | None
    error: str | None = None
    cached: bool = False
    usage: dict[str, int] = field(default_factory=dict)
    # The server's choices[0].finish_reason ("stop", "length", ...), None when it sent none.
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


class _Secret:
    """Holds the API key; its repr, str and pickling never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "_Secret(***)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("the API key holder cannot be pickled")


class _RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None, endpoint_down: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.endpoint_down = endpoint_down  # the server, not the request, failed: another endpoint may serve it


class _FatalError(Exception):
    pass


def cache_key(model: str, messages: Sequence[dict[str, Any]], params: dict[str, Any]) -> str:
    """Stable hash of what determines a reply."""
    blob = json.dumps(
        {"model": model, "messages": list(messages), "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def estimate_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """A tokenizer-free estimate (about 4 characters per token, plus per-message overhead)."""
    total = 3
    for m in messages:
        content = m.get("content", "")
        if not isinstance(content, str):
            content = json.dumps(content)
        total += 4 + (len(content) + 3) // 4
    return total


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date converted to a delay from now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class ResponseCache:
    """SQLite table of replies keyed by :func:`cache_key`. Holds reply text and usage only."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.read_only = read_only
        if read_only:
            # Nothing is created or changed: no folder, no -wal/-shm files, no table.
            uri = self.path.resolve().as_uri() + "?mode=ro&immutable=1"
            self._db = sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # Commits survive a killed process without an fsync each; they run on the event loop.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS replies ("
                " key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL,"
                " usage TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._db.commit()

    def get(self, key: str) -> tuple[str, dict[str, int], str | None] | None:
        """(text, usage, finish reason); the finish reason is kept in the usage JSON."""
        with self._lock:
            try:
                row = self._db.execute("SELECT text, usage FROM replies WHERE key = ?", (key,)).fetchone()
            except sqlite3.OperationalError:
                if not self.read_only:
                    raise
                row = None  # a read-only look into a file that is no cache (yet)
        if row is None:
            return None
        usage = json.loads(row[1])
        finish = usage.pop(FINISH_KEY, None)
        return row[0], usage, finish

    def put(self, key: str, model: str, text: str, usage: dict[str, int], finish_reason: str | None = None) -> None:
        if self.read_only:
            return
        if finish_reason is not None:
            usage = {**usage, FINISH_KEY: finish_reason}
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies (key, model, text, usage, created) VALUES (?, ?, ?, ?, ?)",
                (key, model, text, json.dumps(usage), time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _empty_stats() -> dict[str, float]:
    return {
        "calls": 0,
        "cached": 0,
        "failures": 0,
        "retries": 0,
        "failovers": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
    }


class LLMClient:
    """Async chat-completions client with cache, retries and accounting. See the module docstring."""

    def __init__(
        self,
        config: LLMConfig,
        output: Output | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.output = output or Output()
        self._sleep = sleep or asyncio.sleep
        self._key = _Secret(read_api_key(config.api_key_env))
        self.cache: ResponseCache | None = None
        if config.cache_path and not config.cache_read_only:
            self.cache = ResponseCache(config.cache_path)
        elif config.cache_path and Path(config.cache_path).is_file():
            self.cache = ResponseCache(config.cache_path, read_only=True)
        self.stats: dict[str, float] = _empty_stats()
        self.endpoints = EndpointPool([config.base_url, *config.extra_base_urls], config.endpoint_cooldown_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future[ChatResult]] = {}
        self._pause_until = 0.0  # event-loop time before which no request is sent (Retry-After)
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"LLMClient(base_url={c.base_url!r}, model={c.model!r}, api_key_env={c.api_key_env!r}, "
            f"key_set={bool(self._key)}, concurrency={c.concurrency})"
        )

    # -- public API ---------------------------------------------------------------

    @property
    def has_key(self) -> bool:
        return bool(self._key)

    @property
    def url(self) -> str:
        return self.url_for(self.config.base_url)

    def url_for(self, base_url: str) -> str:
        url = base_url.rstrip("/") + "/chat/completions"
        if self.config.api_version:
            url += f"?api-version={self.config.api_version}"
        return url

    def request_params(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The effective parameters of a call: config defaults overridden by ``params``."""
        merged = self.config.default_params()
        merged.update(params or {})
        return merged

    def key_for(self, messages: Sequence[dict[str, Any]], params: dict[str, Any] | None = None) -> str:
        return cache_key(self.config.model, messages, self.request_params(params))

    def is_cached(self, messages: Sequence[dict[str, Any]], params: dict[str, Any] | None = None) -> bool:
        return self.cache is not None and self.cache.get(self.key_for(messages, params)) is not None

    async def achat(self, messages: Sequence[dict[str, Any]], *, key: str | None = None, **params: Any) -> ChatResult:
        """One call. Served from the cache when possible; never raises for API failures."""
        self._bind_loop()
        messages = list(messages)
        effective = self.request_params(params)
        ckey = cache_key(self.config.model, messages, effective)
        result_key = key if key is not None else ckey
        if self.cache is not None:
            hit = self.cache.get(ckey)
            if hit is not None:
                self._bump("cached")
                return ChatResult(result_key, hit[0], None, True, hit[1], hit[2])
        # Identical requests in flight share one HTTP call.
        pending = self._inflight.get(ckey)
        if pending is not None:
            shared = await asyncio.shield(pending)
            return ChatResult(
                result_key, shared.text, shared.error, shared.cached, dict(shared.usage), shared.finish_reason
            )
        future: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        self._inflight[ckey] = future
        try:
            result = await self._call(messages, effective, ckey)
            future.set_result(result)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(ckey, None)
        return ChatResult(
            result_key, result.text, result.error, result.cached, dict(result.usage), result.finish_reason
        )

    async def arun(
        self,
        requests: Sequence[ChatRequest],
        description: str = "LLM calls",
        on_result: Callable[[int, ChatResult], None] | None = None,
    ) -> list[ChatResult]:
        """All ``requests`` concurrently (bounded); results in input order, with a progress bar.

        ``on_result(index, result)`` is called as each one finishes (e.g. to append it to
        a file, so a killed run keeps what it had).
        """
        self._bind_loop()
        results: list[ChatResult | None] = [None] * len(requests)
        with self.output.progress() as prog:
            task = prog.add_task(description, total=len(requests))

            async def one(i: int, req: ChatRequest) -> None:
                results[i] = res = await self.achat(req.messages, key=req.key, **req.params)
                if on_result is not None:
                    on_result(i, res)
                prog.advance(task)

            await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        return [r for r in results if r is not None]

    def run(
        self,
        requests: Sequence[ChatRequest],
        description: str = "LLM calls",
        on_result: Callable[[int, ChatResult], None] | None = None,
    ) -> list[ChatResult]:
        """Blocking form of :meth:`arun` (runs its own event loop; use ``arun`` inside one)."""

        async def main() -> list[ChatResult]:
            try:
                return await self.arun(requests, description, on_result)
            finally:
                await self.aclose()

        return asyncio.run(main())

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        self._http, self._sem, self._loop = None, None, None

    def close(self) -> None:
        """Close the cache (the HTTP session closes with its event loop via :meth:`aclose`)."""
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    async def __aenter__(self) -> LLMClient:
        self._bind_loop()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        c = self.config
        return (
            (c.price_prompt_per_1k or 0.0) * prompt_tokens + (c.price_completion_per_1k or 0.0) * completion_tokens
        ) / 1000.0

    def summary_line(self) -> str:
        s = self.stats
        line = (
            f"{int(s['calls'])} calls, {int(s['cached'])} cached, {int(s['failures'])} failed, "
            f"{int(s['retries'])} retries; tokens: {int(s['prompt_tokens'])} prompt + "
            f"{int(s['completion_tokens'])} completion"
        )
        if self.config.price_prompt_per_1k is not None or self.config.price_completion_per_1k is not None:
            line += f"; cost ${s['cost_usd']:.4f}"
        if len(self.endpoints) > 1:
            line += f"; {int(s['failovers'])} moved to another endpoint; {self.endpoints.summary()}"
        return line

    def redact(self, text: str) -> str:
        """``text`` with the API key (and its bearer form) replaced."""
        key = self._key.reveal()
        if key and key in text:
            text = text.replace(key, REDACTED)
        return text

    # -- internals ----------------------------------------------------------------

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A client reused across asyncio.run() calls gets a fresh session and semaphore.
            self._loop = loop
            in_flight = self.config.concurrency * len(self.endpoints)  # concurrency per endpoint
            self._sem = asyncio.Semaphore(in_flight)
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.config.timeout_s),
                limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight),
            )
            self._inflight = {}
            self._pause_until = 0.0

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        mode = self.config.auth
        if mode == "auto":
            mode = "api-key" if self.config.api_version else "bearer"
        key = self._key.reveal()
        if key and mode == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        elif key and mode == "api-key":
            headers["api-key"] = key
        return headers

    def _bump(self, name: str, amount: float = 1) -> None:
        with self._stats_lock:
            self.stats[name] += amount

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.retry_after_max_s) * random.uniform(1.0, 1.1)
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt)
        return random.uniform(0.5, 1.0) * ceiling  # jitter spreads out synchronized retries

    async def _wait_for_rate_limit(self) -> None:
        while True:
            delay = self._pause_until - asyncio.get_running_loop().time()
            if delay <= 0:
                return
            await self._sleep(delay)

    async def _call(self, messages: list[dict[str, Any]], params: dict[str, Any], ckey: str) -> ChatResult:
        body = {"model": self.config.model, "messages": messages, **params}
        last_error = "no attempt made"
        attempt = failovers = 0
        while attempt <= self.config.max_retries:
            endpoint = None
            try:
                assert self._sem is not None  # set by _bind_loop
                async with self._sem:
                    await self._wait_for_rate_limit()
                    endpoint = self.endpoints.pick()
                    with self.endpoints.using(endpoint):
                        text, usage, finish = await self._post(body, endpoint.url)
            except _RetryableError as exc:
                last_error = self.redact(str(exc))
                if (
                    exc.endpoint_down
                    and endpoint is not None
                    and self.endpoints.mark_down(endpoint, last_error)
                    and failovers < 2 * len(self.endpoints)
                ):
                    failovers += 1  # another endpoint is up: send it there now; not one of the retries
                    self._bump("failovers")
                    continue
                if exc.retry_after is not None:
                    # The server asked everyone to wait: hold back every request, not just this one.
                    loop = asyncio.get_running_loop()
                    self._pause_until = max(
                        self._pause_until, loop.time() + min(exc.retry_after, self.config.retry_after_max_s)
                    )
                if attempt >= self.config.max_retries:
                    break
                delay = self._backoff(attempt, exc.retry_after)
                self._bump("retries")
                log.debug("retry %d after %.2fs: %s", attempt + 1, delay, last_error)
                await self._sleep(delay)
                attempt += 1
                continue
            except _FatalError as exc:
                self._bump("failures")
                return ChatResult(ckey, None, self.redact(str(exc)))
            self._bump("calls")
            pt, ct = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
            self._bump("prompt_tokens", pt)
            self._bump("completion_tokens", ct)
            self._bump("cost_usd", self.cost(pt, ct))
            if self.cache is not None:
                self.cache.put(ckey, self.config.model, text, usage, finish)
            return ChatResult(ckey, text, None, False, usage, finish)
        self._bump("failures")
        return ChatResult(ckey, None, f"gave up after {self.config.max_retries + 1} attempts: {last_error}")

    async def _post(self, body: dict[str, Any], base_url: str | None = None) -> tuple[str, dict[str, int], str | None]:
        assert self._http is not None  # set by _bind_loop
        base_url = base_url or self.config.base_url
        try:
            resp = await self._http.post(self.url_for(base_url), json=body, headers=self._headers())
        except httpx.TimeoutException as exc:
            raise _RetryableError(
                f"timed out after {self.config.timeout_s:g}s at {base_url} ({type(exc).__name__})", endpoint_down=True
            ) from None
        except httpx.TransportError as exc:
            detail = _clip(self.redact(str(exc)), 300)
            raise _RetryableError(
                f"connection error to {base_url}: {type(exc).__name__}: {detail}", endpoint_down=True
            ) from None
        if resp.status_code != 200:
            # Scrub the whole text first: clipping first could cut a long key in two and let half escape.
            detail = _clip(self.redact(_error_detail(resp)), 300)
            message = f"HTTP {resp.status_code} from {base_url}: {detail}"
            if resp.status_code in RETRY_STATUSES:
                raise _RetryableError(
                    message, parse_retry_after(resp.headers.get("retry-after")), endpoint_down=resp.status_code >= 500
                )
            raise _FatalError(message)
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"]["content"]
            finish = choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError):
            raise _RetryableError(
                f"unreadable reply (not a chat completion): {_clip(self.redact(resp.text), 200)!r}"
            ) from None
        if not isinstance(text, str):
            raise _RetryableError("reply has no text content")
        usage_raw = data.get("usage") or {}
        usage = {
            k: int(usage_raw[k])
            for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            if isinstance(usage_raw.get(k), (int, float))
        }
        return text, usage, finish if isinstance(finish, str) else None


def _error_detail(resp: httpx.Response) -> str:
    """The whole error text of a reply (the caller redacts it, then clips it)."""
    try:
        data = resp.json()
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return str(data["error"].get("message", data["error"]))
        return json.dumps(data)
    except ValueError:
        return resp.text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def read_api_key(env_var: str | None) -> str:
    """The API key in ``env_var`` (surrounding whitespace stripped), or "" when unset.

    A key holding control or non-ASCII characters cannot go into an HTTP header: it is
    refused with a :class:`ConfigError` naming the variable (never the value).
    """
    if not env_var:
        return ""
    key = os.environ.get(env_var, "").strip()
    bad = [c for c in key if ord(c) < 0x20 or ord(c) == 0x7F or ord(c) > 0x7E]
    if bad:
        kinds = sorted(
            {"control characters" if ord(c) < 0x20 or ord(c) == 0x7F else "non-ASCII characters" for c in bad}
        )
        raise ConfigError(
            [
                f"the API key in ${env_var} contains {' and '.join(kinds)} "
                f"(a stray quote, line break or typographic character?); set it again to the plain key"
            ]
        )
    return key
