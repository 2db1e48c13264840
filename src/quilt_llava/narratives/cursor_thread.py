"""The cursor locator on its own thread, fed the analysed frames in order."""

from __future__ import annotations

import queue
import threading

from quilt_llava.narratives.cursor import AnalysedFrame, CursorHit, CursorLocator


class CursorThread:
    """Runs a cursor locator on its own thread, frames in order, ``depth`` at most queued.

    The locator sees exactly the frames it would see inline; the caller reads ``hits``
    (or the locator) only after :meth:`wait`, when every submitted frame is processed,
    so results do not depend on timing. ``depth <= 0`` runs the locator inline."""

    def __init__(self, locator: CursorLocator, hits: dict[int, CursorHit], depth: int) -> None:
        self.locator = locator
        self.hits = hits
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if depth > 0:
            self.queue: queue.Queue[AnalysedFrame | None] = queue.Queue(maxsize=depth)
            self.thread = threading.Thread(target=self._run, name="cursor-locator", daemon=True)
            self.thread.start()

    def _process(self, frame: AnalysedFrame) -> None:
        for hit in self.locator.process(frame):
            self.hits[hit.index] = hit

    def _run(self) -> None:
        while True:
            frame = self.queue.get()
            try:
                if frame is None:
                    return
                if self.error is None:
                    self._process(frame)
            except BaseException as exc:  # re-raised on the analysing thread
                self.error = exc
            finally:
                self.queue.task_done()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, frame: AnalysedFrame) -> None:
        if self.thread is None:
            self._process(frame)
            return
        self._check()
        self.queue.put(frame)

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
