"""The pointer shapes a locator matches, and which of them it matches now.

In: the arrow prior (the first ``generic`` templates), each sprite the learner adds
(:meth:`SpriteSet.add`) and the locator's verified hits (:meth:`SpriteSet.vote`,
:meth:`SpriteSet.credit`). Out: the template indices to match (:meth:`SpriteSet.active`,
:meth:`SpriteSet.unlocked`), the learned sprites that are one shape learned twice
(:meth:`SpriteSet.twins`), and the pixels a pointer covers (:meth:`SpriteSet.footprint`).

- **The lock.** Once ``lock_after`` verified hits agree on one template (and it has three
  quarters of the votes), only it is matched; a sprite just learned unlocks (the lock is earned
  afresh). Templates that are one shape (:meth:`SpriteSet.kin`: a learned sprite that is a twin
  of a prior size or of an earlier sprite, or a part of one, the tip end of a classic arrow) vote
  together, and the lock goes to one of them (a size of the prior before a sprite learned from
  it, a whole shape before a part, then the most votes): the others are left out while it holds.
  Not handled: a learned sliver of texture (it matches any edge, so it is nobody's kin) still
  takes votes of its own, and the lock waits until the pointer's shape has three quarters again.
- **The retired prior.** Once learned sprites have given ``PRIOR_RETIRE_AFTER`` verified hits,
  every size of the arrow prior that has given none since the first sprite was learned is no
  longer matched (a pointer keeps its size through a recording). A size that keeps finding the
  pointer (a classic arrow) stays.
- **Twins.** Learned sprites that look alike (``TWIN_SCORE``) are searched once; the whole-frame
  search checks the first one's peaks with each of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from quilt_llava.narratives.templates import Template, masked_ncc, patch_box, twin_score

if TYPE_CHECKING:
    from quilt_llava.narratives.cursor import CursorConfig

# Verified hits of learned sprites after which the sizes of the arrow prior that gave none since the
# first sprite was learned are no longer matched: the video's own sprites explain its pointer.
PRIOR_RETIRE_AFTER = 30
# Learned sprites that look this alike (``twin_score``) are one shape learned twice (a translucent or tiny
# pointer seen over different tissue): the whole-frame search runs for the first one only, and its peaks
# are checked with each of them. An arrow, a hand and a crosshair of one theme score < 0.5.
TWIN_SCORE = 0.65
# A learned sprite smaller than a template that matches inside it this well (``part_score``) is a part of
# that shape (a learner that kept the tip end of a classic arrow): the two vote as one shape for the lock.
# The same sprites inside other shapes and slivers of texture that match any edge score < 0.8.
PART_SCORE = 0.8


def part_score(part: Template, whole: Template, slack: int = 3) -> float:
    """How well ``part`` matches somewhere inside ``whole`` (padded by ``slack`` px): the best |masked
    NCC|; 0 when ``part`` is not smaller than ``whole`` in both directions."""
    (ph, pw), (wh, ww) = part.image.shape, whole.image.shape
    if ph > wh or pw > ww or (ph, pw) == (wh, ww):
        return 0.0
    res = np.abs(masked_ncc(np.pad(whole.image, slack, mode="edge"), part))
    return float(res.max()) if res.size else 0.0


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
        self._kin_of = -1  # number of templates the kin array below was made for
        self._kin = np.arange(len(templates))
        self._parts: set[int] = set()  # learned sprites of a shape only as a part of it (``PART_SCORE``)

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

    def credit(self, k: int) -> None:
        """Count a verified hit of template ``k`` once a sprite is learned (see :meth:`retired`)."""
        if self.learned_any:
            self.wins += [0] * (len(self.templates) - len(self.wins))
            self.wins[k] += 1

    def active(self) -> list[int]:
        """Templates matched now: the locked one, else every template (the arrow prior and the
        learned sprites, see :meth:`unlocked`)."""
        if self.locked is not None:
            return [self.locked]
        return self.unlocked()

    def vote(self, k: int) -> None:
        """Lock the template once verified pointer hits agree on it: ``lock_after`` hits and three
        quarters of the votes, the votes of templates that are one shape (:meth:`kin`) counted
        together. The lock goes to one of them that found the pointer: a size of the arrow prior
        before a sprite learned from it, a whole shape before a part of it, then the most votes."""
        self.votes[k] += 1
        kin = self.kin()
        together = np.bincount(kin, weights=self.votes, minlength=len(self.templates))
        best = int(np.argmax(together))
        if together[best] >= self.config.lock_after and together[best] >= 0.75 * self.votes.sum():
            # A size of the arrow prior that found the pointer before a sprite learned from it (the
            # exact drawing, with its exact tip; a learned sprite's hotspot is guessed), a whole shape
            # before a sprite that is only a part of it (a part matches more tissue), then the votes.
            self.locked = max(
                (int(m) for m in np.flatnonzero(kin == best) if self.votes[m] > 0),
                key=lambda m: (m < self.generic, m not in self._parts, self.votes[m]),
            )

    def kin(self) -> np.ndarray:
        """For each template, the first template of its shape: a learned sprite that is a twin of an
        earlier template (a size of the arrow prior or a learned sprite; ``TWIN_SCORE``) or a part of
        one (``PART_SCORE``) is of that template's shape, and so is everything of its shape (a part
        of the arrow inside three of the prior's sizes joins the three). One pointer explained by
        two such templates splits its votes between them, and no lock would form alone."""
        if self._kin_of != len(self.templates):
            self._kin_of, kin = len(self.templates), np.arange(len(self.templates))
            self._parts = set()
            for k in range(self.generic, len(self.templates)):
                sprite, twin = self.templates[k], False
                for i in range(k):
                    other = self.templates[i]
                    if twin_score(other, sprite)[0] >= TWIN_SCORE:
                        twin = True
                    elif part_score(sprite, other) < PART_SCORE:
                        continue
                    else:
                        self._parts.add(k)
                    low, high = sorted((int(kin[i]), int(kin[k])))
                    kin[kin == high] = low
                if twin:
                    self._parts.discard(k)
            self._kin = kin
        return self._kin

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
