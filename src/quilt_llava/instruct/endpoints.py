"""Several OpenAI-compatible endpoints serving the same model, used as one.

A lab with a few vLLM servers wants instruction data at the speed of all of them. The
client (:class:`~quilt_llava.instruct.llm.LLMClient`) asks an :class:`EndpointPool` where to
send each request:

- **least outstanding requests**: the endpoint with the fewest requests in flight gets the
  next one (ties: the one that has served fewest), so a slower server gets less work and a
  faster one more, without any weights to tune;
- **an endpoint that goes down** (connection refused or dropped, timeout, 5xx) is left out
  for ``cooldown_s``; the request that met the failure goes at once to another endpoint
  that is up (it does not count as one of its retries), and so does every request after it.
  After the cool-down one request tries the endpoint again. Only when every endpoint is down
  do requests wait and retry as with a single endpoint;
- the response cache is the client's and its key holds no URL, so a reply from any endpoint
  serves every later identical request.

With one endpoint, nothing changes. The client keeps ``concurrency`` requests in flight *per
endpoint*. Not handled: endpoints serving different models or different weights (replies
would differ by endpoint; the cache would mix them), and per-endpoint rate limits (a 429
with ``Retry-After`` holds back every request, as with one endpoint).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from quilt_llava.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class Endpoint:
    url: str
    in_flight: int = 0
    served: int = 0  # replies received
    failures: int = 0  # times it was found down
    down_until: float = 0.0  # clock time before which it gets no request


class EndpointPool:
    """Picks the endpoint for each request; see the module docstring. ``clock`` is injectable for tests."""

    def __init__(self, urls: list[str], cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("an endpoint pool needs at least one URL")
        self.endpoints = [Endpoint(u) for u in dict.fromkeys(urls)]  # one entry per URL
        self.cooldown_s = cooldown_s
        self.clock = clock

    def __len__(self) -> int:
        return len(self.endpoints)

    def up(self) -> list[Endpoint]:
        now = self.clock()
        return [e for e in self.endpoints if e.down_until <= now]

    def pick(self) -> Endpoint:
        """The endpoint that is up with the fewest requests in flight (when none is up: the one back soonest)."""
        up = self.up()
        if not up:
            return min(self.endpoints, key=lambda e: e.down_until)
        return min(up, key=lambda e: (e.in_flight, e.served))

    @contextlib.contextmanager
    def using(self, endpoint: Endpoint) -> Iterator[Endpoint]:
        """Count a request in flight on ``endpoint`` for the block (a reply is counted as served)."""
        endpoint.in_flight += 1
        try:
            yield endpoint
            endpoint.served += 1
        finally:
            endpoint.in_flight -= 1

    def mark_down(self, endpoint: Endpoint, reason: str) -> bool:
        """Leave ``endpoint`` out for the cool-down; returns whether another endpoint is up to take its work.
        A lone endpoint is never left out (its failures are retried as they always were)."""
        if len(self.endpoints) == 1:
            return False
        if endpoint.down_until <= self.clock():  # first to notice: count it once
            endpoint.failures += 1
            log.warning("endpoint %s is down for %.0f s (%s)", endpoint.url, self.cooldown_s, reason)
        endpoint.down_until = self.clock() + self.cooldown_s
        return any(e is not endpoint for e in self.up())

    def summary(self) -> str:
        """``url: N served[, down K times]`` for each endpoint (for the run summary), or "" with one endpoint."""
        if len(self.endpoints) == 1:
            return ""
        return "; ".join(
            f"{e.url}: {e.served} served" + (f", down {e.failures}x" if e.failures else "") for e in self.endpoints
        )


def read_endpoints(path: str | Path) -> list[str]:
    """Base URLs from a file: one a line, ``#`` comments and blank lines skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read the endpoints file ({exc})") from None
    urls = []
    for lineno, line in enumerate(lines, start=1):
        url = line.split("#", 1)[0].strip()
        if not url:
            continue
        if not url.startswith(("http://", "https://")):
            raise InputError(f"{path}:{lineno}", f"{url!r} is not an http:// or https:// base URL")
        urls.append(url)
    if not urls:
        raise InputError(str(path), "the file names no endpoints")
    return urls
