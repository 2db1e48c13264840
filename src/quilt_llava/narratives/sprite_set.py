"""The pointer shapes a locator matches, and which of them it matches now.

In: the arrow prior (the first ``generic`` templates), each sprite the learner adds
(:meth:`SpriteSet.add`) and the locator's verified hits (:meth:`SpriteSet.vote`,
:meth:`SpriteSet.credit`). Out: the template indices to match (:meth:`SpriteSet.active`,
:meth:`SpriteSet.unlocked`), the learned sprites that are one shape learned twice
(:meth:`SpriteSet.twins`), and the pixels a pointer covers (:meth:`SpriteSet.footprint`).

- **The lock.** Once ``lock_after`` verified hits agree on one template (and it has three
  quarters of the votes), only it is matched; a sprite just learned unlocks (the lock is earned
  afresh).
- **The retired prior.** Once learned sprites have given ``PRIOR_RETIRE_AFTER`` verified hits,
  every size of the arrow prior that has given none since the first sprite was learned is no
  longer matched (a pointer keeps its size through a recording). A size that keeps finding the
  pointer (a classic arrow) stays. Only the prior's hits that its track moved to count: a size
  that holds one still spot (a lookalike, while the pointer is hidden or is another shape) has
  found no pointer.
- **Twins.** Learned sprites that look alike (``TWIN_SCORE``) are searched once; the whole-frame
  search checks the first one's peaks with each of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.templates import Template, patch_box, twin_score

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig

# Verified hits of learned sprites after which the sizes of the arrow prior that gave none since the
# first sprite was learned are no longer matched: the video's own sprites explain its pointer.
PRIOR_RETIRE_AFTER = 30
# Learned sprites that look this alike (``twin_score``) are one shape learned twice (a translucent or tiny
# pointer seen over different tissue): the whole-frame search runs for the first one only, and its peaks
# are checked with each of them. An arrow, a hand and a crosshair of one theme score < 0.5.
TWIN_SCORE = 0.65


class SpriteSet:
    """The arrow prior and the learned sprites, with the lock, the votes and the retired sizes."""

    def __init__(self, templates: list[Template], config: CursorConfig) -> None:
        self.templates = templates
        self.generic = len(templates)  # the first ``generic`` templates are the arrow prior; learned ones follow
        self.config = config
        self.last_learned = -1  # template index of the learned sprite last tracked
        self.locked: int | None = None
        self.votes = np.zeros(len(templates), dtype=int)
        # Verified hits of each template since the first sprite was learned.
        self.wins: list[int] = []
        self._twins_of = -1  # number of templates the twin map below was made for
        self._twin_map: dict[int, tuple[int, int, int]] = {}

    @property
    def learned_any(self) -> bool:
        """Has a sprite been learned from the video (beside the arrow prior)?"""
        return len(self.templates) > self.generic

    def add(self, template: Template) -> int:
        """A sprite just learned joins the templates and unlocks them; returns its index."""
        self.templates.append(template)
        self.votes = np.zeros(len(self.templates), dtype=int)  # a new shape: the lock is earned afresh
        self.locked = None
        return len(self.templates) - 1

    def unlocked(self) -> list[int]:
        """Every template the lock may have left out: the arrow prior and the learned sprites
        (a classic arrow keeps matching its exact template, with its exact tip), less the
        prior's sizes that are retired (see :meth:`retired`)."""
        retired = self.retired()
        return [k for k in range(len(self.templates)) if k not in retired]

    def retired(self) -> set[int]:
        """Arrow-prior templates no longer matched: once learned sprites have given
        ``PRIOR_RETIRE_AFTER`` verified hits, every size of the prior that has given none since
        the first sprite was learned (a pointer keeps its size through a recording; the video's
        own sprites explain it, and matching the whole prior beside them costs more than all of
        them together). A size that keeps finding the pointer (a classic arrow) stays."""
        if sum(self.wins[self.generic :]) < PRIOR_RETIRE_AFTER:
            return set()
        return {k for k in range(self.generic) if self.wins[k] == 0}

    def credit(self, k: int, moved: bool = True) -> None:
        """Count a verified hit of template ``k`` once a sprite is learned (see :meth:`retired`).
        ``moved``: the track moved to it from its last hit. A size of the prior counts only hits
        that moved: one that keeps matching a still spot (a lookalike in the tissue or the chrome,
        held while the pointer is hidden or is a shape the prior does not match) has not found the
        pointer, and is retired as one that found nothing."""
        if self.learned_any and (moved or k >= self.generic):
            self.wins += [0] * (len(self.templates) - len(self.wins))
            self.wins[k] += 1

    def active(self) -> list[int]:
        """Templates matched now: the locked one, else every template (the arrow prior and the
        learned sprites, see :meth:`unlocked`)."""
        if self.locked is not None:
            return [self.locked]
        return self.unlocked()

    def vote(self, k: int) -> None:
        """Lock the template size once verified pointer hits agree on it."""
        self.votes[k] += 1
        best = int(np.argmax(self.votes))
        if self.votes[best] >= self.config.lock_after and self.votes[best] >= 0.75 * self.votes.sum():
            self.locked = best

    def twins(self) -> dict[int, tuple[int, int, int]]:
        """Learned sprites that are twins of an earlier one (``TWIN_SCORE``): index -> (that sprite's
        index, where this one's top-left lies from its top-left)."""
        if self._twins_of != len(self.templates):
            self._twins_of, self._twin_map = len(self.templates), {}
            firsts: list[int] = []
            for k in range(self.generic, len(self.templates)):
                for first in firsts:
                    score, dx, dy = twin_score(self.templates[first], self.templates[k])
                    if score >= TWIN_SCORE:
                        self._twin_map[k] = (first, dx, dy)
                        break
                else:
                    firsts.append(k)
        return self._twin_map

    def footprint(self, x: float, y: float, frame_size: tuple[int, int], margin: int = 3) -> tuple[int, int, int, int]:
        """Pixels a pointer with its tip at (x, y) covers (x0, y0, x1, y1), clipped to the frame: the
        union of every template's box (retired sizes of the prior and unlocked shapes included: a
        learned sprite may miss a shadow or a translucent edge that the wider union still covers)."""
        boxes = [patch_box(x, y, t) for t in self.templates]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        w, h = frame_size
        return max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)
