"""The cursor locator on its own thread, fed the analysed frames in order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from quilt_llava.narratives.cursor import AnalysedFrame, CursorHit, CursorLocator

T = TypeVar("T")


class CursorThread:
    """Runs a cursor locator on its own thread, frames in order, ``depth`` at most queued.

    The locator sees exactly the frames it would see inline; the caller reads ``hits``
    (or the locator) only after :meth:`wait`, when every submitted frame is processed, or
    in a function handed to :meth:`call`, which runs on the locator's thread once the frames
    submitted before it are processed, so results do not depend on timing. ``depth <= 0``
    runs the locator inline.

    A deep queue lets decoding and the view analysis run ahead while the locator works
    through a burst: its cost per frame is very uneven (a whole-frame search at a view start
    costs 20-90 ms at 720p, the median frame of a still view about 0.02 ms)."""

    def __init__(self, locator: CursorLocator, hits: dict[int, CursorHit], depth: int) -> None:
        self.locator = locator
        self.hits = hits
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if depth > 0:
            self.queue: queue.Queue[AnalysedFrame | _Call | _Work | None] = queue.Queue(maxsize=depth)
            self.thread = threading.Thread(target=self._run, name="cursor-locator", daemon=True)
            self.thread.start()

    def process(self, frame: AnalysedFrame) -> None:
        """Process ``frame`` now, on the calling thread: the locator's own (the queue's frames, and a
        function handed to :meth:`run_here`, which makes its frames there), or the caller's inline."""
        for hit in self.locator.process(frame):
            self.hits[hit.index] = hit

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if isinstance(item, _Call):
                    item.run(self.error)
                elif isinstance(item, _Work):
                    item.run(self)
                elif self.error is None:
                    self.process(item)
            except BaseException as exc:  # re-raised on the analysing thread
                self.error = exc
            finally:
                self.queue.task_done()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, frame: AnalysedFrame) -> None:
        if self.thread is None:
            self.process(frame)
            return
        self._check()
        self.queue.put(frame)

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """``fn()`` run once every frame submitted so far is processed (on the locator's thread,
        or now when inline): it sees the hits and the locator as :meth:`wait` would, without
        the caller waiting. Its result (or the locator's error) comes in the future."""
        call = _Call(fn)
        if self.thread is None:
            call.run(self.error)
        else:
            self._check()
            self.queue.put(call)
        return call.future

    def run_here(self, work: Callable[[], None]) -> Future[None]:
        """``work()`` run on the locator's thread once the frames submitted before it are processed
        (now when inline), as the locator's own work: it makes frames there and hands them to
        :meth:`process`, so the caller's thread does not make them, and frames made in one piece of
        work (a burst) take one place in the queue. An error it raises is the locator's (re-raised
        by the next :meth:`submit`, :meth:`wait` or :meth:`close`). The future is done once it has
        run (or was skipped after an error before it)."""
        item = _Work(work)
        if self.thread is None:
            work()
            item.future.set_result(None)
        else:
            self._check()
            self.queue.put(item)
        return item.future

    def wait(self) -> None:
        """Block until every submitted frame has been processed."""
        if self.thread is not None:
            self.queue.join()
        self._check()

    def close(self, check: bool = True) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        if check:
            self._check()


class _Call:
    """A function queued behind the frames (see :meth:`CursorThread.call`)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()

    def run(self, error: BaseException | None) -> None:
        if error is not None:  # the locator failed before this point: its state is not to be read
            self.future.set_exception(error)
            return
        try:
            self.future.set_result(self.fn())
        except BaseException as exc:
            self.future.set_exception(exc)


class _Work:
    """The locator's own work queued behind the frames (see :meth:`CursorThread.run_here`)."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.future: Future[None] = Future()

    def run(self, owner: CursorThread) -> None:
        try:
            if owner.error is None:
                self.fn()
        except BaseException as exc:  # re-raised on the caller's thread, as a frame's error is
            owner.error = exc
        finally:
            self.future.set_result(None)
