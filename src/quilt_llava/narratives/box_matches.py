"""A frame's candidate boxes matched with the pointer's templates, each pair once.

In: a frame's luma, search boxes (top-left positions, full resolution; a whole-frame search's
peak box carries a fifth entry, the learned sprite it belongs to) and the template indices to
try. Out: the best match per box (:data:`~quilt_llava.narratives.cursor_hits.Match`, strongest
first, none under ``min_score``) from :meth:`BoxMatcher.candidates`, or one pair's
:func:`~quilt_llava.narratives.templates.match_in` result from :meth:`BoxMatcher.match`.

A frame's candidates are gathered in several rounds that share boxes, so each (box, template)
pair is matched once per frame; a pair whose pixels are the same as when it was last matched, up
to ``EARLIER_FRAMES`` matched frames back (a still view often decodes to identical pixels, and a
whole-frame search's peak boxes come back 25 or 50 frames later), keeps that result. Pairs matched mostly
in OpenCV are shared between the calling thread and a helper
(:class:`~quilt_llava.narratives.split_work.SplitRunner`) when there are enough of them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.split_work import SplitRunner
from quilt_llava.narratives.templates import Template, in_opencv, match_in

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig
    from quilt_llava.narratives.cursor_hits import Match

# A frame's matches are shared with the helper thread (``CursorConfig.match_threads``) only from this
# many (box, template) pairs: handing a few over (~0.1 ms each time) costs more than it saves.
SPLIT_MIN_PAIRS = 6
# A pair's last result is kept for this many matched frames, with the pixels it was matched on (the
# bytes of its region, a few kB): the peak boxes of a repeat search 25 or 50 frames on are matched again, and
# in a compressed still view most of them read the very same pixels.
EARLIER_FRAMES = 60


class BoxMatcher:
    """Matches boxes of a frame with templates (the list is shared with the locator and grows)."""

    def __init__(self, templates: list[Template], config: CursorConfig, split: SplitRunner) -> None:
        self.templates = templates
        self.config = config
        self._split = split
        # This frame's matches so far, (box, template index) -> match_in's result (see ``match``).
        self._matched_luma: np.ndarray | None = None
        self._matched: dict[tuple[int, int, int, int, int], tuple[float, float, float]] = {}
        # Each pair's last result in an earlier frame: (frame number, the region's pixels, result); a
        # pair whose pixels are the same in this frame has the same result (``EARLIER_FRAMES``).
        self._frame_no = 0  # frames matched so far
        self._earlier: dict[tuple[int, int, int, int, int], tuple[int, bytes, tuple[float, float, float]]] = {}
        self._computed: list[tuple[int, int, int, int, int]] = []  # pairs matched afresh in this frame

    def candidates(self, luma: np.ndarray, boxes: list[tuple[int, ...]], templates: list[int]) -> list[Match]:
        """Best match per box: (score, x, y, template, box index), strongest first. A box with
        a fifth entry (a learned sprite's search peak) is matched with that template alone
        when it is among ``templates``."""
        pairs = [(box, k) for box in boxes for k in self.box_templates(box, templates)]
        self._match_all(luma, pairs)
        found = []
        for b, box in enumerate(boxes):
            best = (0.0, 0.0, 0.0, -1, b)
            for k in self.box_templates(box, templates):
                score, x, y = self.match(luma, box, k)
                if score > best[0]:
                    best = (score, x, y, k, b)
            if best[0] >= self.config.min_score:
                found.append(best)
        return sorted(found, reverse=True)

    @staticmethod
    def box_templates(box: tuple[int, ...], templates: list[int]) -> tuple[int, ...] | list[int]:
        """The templates a box is matched with: a search peak's own (fifth entry) when it is among
        ``templates``, else all of them."""
        own = box[4] if len(box) > 4 else -1
        return (own,) if own in templates else templates

    def _known_match(self, luma: np.ndarray, box: tuple[int, ...], k: int) -> tuple[float, float, float] | None:
        """``match_in`` of template ``k`` in ``box`` when already known: matched in this frame, or in
        an earlier frame with the same pixels there (``EARLIER_FRAMES``; then recorded for this frame)."""
        if self._matched_luma is not luma:
            self._next_frame(luma)
        key = (box[0], box[1], box[2], box[3], k)
        found = self._matched.get(key)
        if found is None:
            earlier = self._earlier.get(key)
            if earlier is None or _pixels(luma, box, self.templates[k]) != earlier[1]:
                return None
            found = self._matched[key] = earlier[2]
            self._earlier[key] = (self._frame_no + 1, earlier[1], found)  # read in this frame: kept as long again
        return found

    def _next_frame(self, luma: np.ndarray) -> None:
        """Matching moves on to ``luma``: the pairs matched afresh in the frame before are kept with
        their pixels; results older than ``EARLIER_FRAMES`` matched frames are dropped."""
        before = self._matched_luma
        if before is not None and before.shape != luma.shape:
            self._earlier, before = {}, None  # another frame size: the same bytes are other pixels
        if before is not None:
            self._frame_no += 1
            for key in self._computed:
                self._earlier[key] = (
                    self._frame_no,
                    _pixels(before, key, self.templates[key[4]]),
                    self._matched[key],
                )
            if self._frame_no % (EARLIER_FRAMES // 6) == 0:  # (12 MB at most on redglass-crf36, 720p)
                oldest = self._frame_no - EARLIER_FRAMES
                self._earlier = {key: e for key, e in self._earlier.items() if e[0] > oldest}
        self._matched_luma, self._matched, self._computed = luma, {}, []

    def match(self, luma: np.ndarray, box: tuple[int, ...], k: int) -> tuple[float, float, float]:
        """``match_in`` of template ``k`` in ``box``, each pair matched once per frame: a frame's
        candidates are gathered in several rounds (the active templates, then every one; the blobs,
        then the tracking window and search peaks with the blobs again) that share boxes."""
        found = self._known_match(luma, box, k)
        if found is None:
            key = (box[0], box[1], box[2], box[3], k)
            found = self._matched[key] = match_in(luma, box, self.templates[k], self.config.min_contrast)
            self._computed.append(key)
        return found

    def _match_all(self, luma: np.ndarray, pairs: list[tuple[tuple[int, ...], int]]) -> None:
        """Match every (box, template) pair not yet known (see :meth:`match`) whose match runs mostly
        in OpenCV (:func:`in_opencv`), the templates shared between this thread and a helper
        (``CursorConfig.match_threads``): each template's pairs on one thread (a template builds
        caches as it matches), results recorded as :meth:`match` would. The others (a few dozen
        positions, correlated with numpy in small steps that hold the GIL) are matched as they are
        read: shared, they cost more CPU than they save time."""
        todo: dict[int, list[tuple[int, ...]]] = {}
        for box, k in pairs:
            if (
                in_opencv(luma.shape, box, self.templates[k])
                and self._known_match(luma, box, k) is None
                and box[:4] not in todo.setdefault(k, [])
            ):
                todo[k].append(box[:4])
        todo = {k: boxes for k, boxes in todo.items() if boxes}
        if len(todo) < 2 or sum(map(len, todo.values())) < SPLIT_MIN_PAIRS:
            return  # one template, or a few pairs (handing over costs more): matched as they are read
        min_contrast = self.config.min_contrast
        groups = [
            [functools.partial(match_in, luma, box, self.templates[k], min_contrast) for box in boxes]
            for k, boxes in todo.items()
        ]
        costs = [len(boxes) * self.templates[k].image.size for k, boxes in todo.items()]
        for (k, boxes), results in zip(todo.items(), self._split.run(groups, costs)):
            for box, found in zip(boxes, results):
                self._matched[(*box, k)] = found
                self._computed.append((*box, k))


def _pixels(luma: np.ndarray, box: tuple[int, ...], t: Template) -> bytes:
    """The pixels :func:`match_in` reads for template ``t`` in ``box`` (bytes: compared faster than arrays)."""
    th, tw = t.image.shape
    x0, y0 = box[0], box[1]
    return luma[(y0 if y0 > 0 else 0) : box[3] + th, (x0 if x0 > 0 else 0) : box[2] + tw].tobytes()
