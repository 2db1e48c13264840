"""A batch of independent calls split between the calling thread and one helper thread.

The cursor locator matches every (box, template) pair of a frame before choosing among them;
the matches do not depend on each other, and most of their time is spent in OpenCV and numpy
calls that release the GIL, so a second thread can run part of them while the locator's own
thread runs the rest. Results come back in the order of the calls, so whoever reads them sees
exactly what the same calls made one after another would give. Calls that share mutable state
(a template's lazily built caches) must go in the same group: each group runs on one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def balanced_halves(costs: Sequence[float]) -> tuple[list[int], list[int]]:
    """Indices of ``costs`` in two sets of about equal total cost (largest first, each to the
    lighter set); the first set is the heavier or equal one."""
    a: list[int] = []
    b: list[int] = []
    load_a = load_b = 0.0
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        if load_a <= load_b:
            a.append(i)
            load_a += costs[i]
        else:
            b.append(i)
            load_b += costs[i]
    return (a, b) if load_a >= load_b else (b, a)


class SplitRunner:
    """Runs groups of calls, part on a helper thread (started on first use), part on the caller's.

    ``enabled=False`` runs everything on the caller's thread (the same results, in the same
    order). The helper is a daemon-less pool thread: call :meth:`close` when done (an unclosed
    runner's thread ends when the runner is garbage collected)."""

    def __init__(self, enabled: bool = True, min_groups: int = 2) -> None:
        self.enabled = enabled
        self.min_groups = min_groups
        self._pool: Any = None

    def run(self, groups: Sequence[Sequence[Callable[[], T]]], costs: Sequence[float] | None = None) -> list[list[T]]:
        """The results of each group's calls, group by group, each in its calls' order. Each group
        runs on one thread, its calls one after another; with ``costs`` (one per group) the
        groups are shared out so both threads get about the same."""
        if not self.enabled or len(groups) < self.min_groups:
            return [[call() for call in group] for group in groups]
        mine, theirs = balanced_halves(costs if costs is not None else [len(g) for g in groups])
        if not theirs:
            return [[call() for call in group] for group in groups]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="split-work")

        def helper() -> list[list[T]]:
            return [[call() for call in groups[i]] for i in theirs]

        future = self._pool.submit(helper)
        out: list[list[T] | None] = [None] * len(groups)
        try:
            for i in mine:
                out[i] = [call() for call in groups[i]]
        finally:
            done = future.result()  # waits for the helper even when the caller's share raised
        for i, results in zip(theirs, done):
            out[i] = results
        return out  # type: ignore[return-value]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
