"""A narrator's hand on a mouse, for the independent corpus (``independent_videos.py``): pointer
positions frame by frame, from minimum-jerk strokes, overshoot and correction, drifts, tremor,
circles around a feature, dwells, hiding, trips onto the viewer's chrome and a hand off the mouse.
"""

from __future__ import annotations

import numpy as np

from independent_screens import Rect

MOTIONS = ("stroke", "overshoot", "drift", "circle", "dwell", "hide", "chrome", "still")


def min_jerk(n: int) -> np.ndarray:
    """Fraction of a stroke done at each of n frames (0 excluded, 1 at the end)."""
    s = np.arange(1, n + 1) / max(n, 1)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


class Hand:
    """Pointer positions frame by frame (None: hidden), as a narrator's hand moves a mouse."""

    def __init__(
        self,
        rng: np.random.Generator,
        fps: float,
        unit: float,
        box: Rect,
        chrome: list[Rect],
        start: tuple[float, float],
    ) -> None:
        self.rng, self.fps, self.unit, self.box, self.chrome = rng, fps, unit, box, chrome
        self.pos = np.array(start, float)
        self.tremor_amp = float(rng.uniform(0.3, 1.0))  # px, whatever the resolution
        self.phase = rng.uniform(0, 2 * np.pi, 4)
        self.freq = rng.uniform(7.0, 11.0, 2)
        self.t = 0.0

    def n(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))

    def target(self, margin: float = 0.08, box: Rect | None = None) -> np.ndarray:
        x0, y0, x1, y1 = box or self.box
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        return np.array([self.rng.uniform(x0 + mx, x1 - mx), self.rng.uniform(y0 + my, y1 - my)])

    def _tremor(self, k: int, amp: float) -> np.ndarray:
        t = self.t + np.arange(k) / self.fps
        dx = np.sin(2 * np.pi * self.freq[0] * t + self.phase[0]) + 0.5 * np.sin(2 * np.pi * 2.3 * t + self.phase[2])
        dy = np.sin(2 * np.pi * self.freq[1] * t + self.phase[1]) + 0.5 * np.sin(2 * np.pi * 1.7 * t + self.phase[3])
        return amp / 1.5 * np.stack([dx, dy], -1)

    def _emit(self, path: np.ndarray, tremor: bool = True) -> list[tuple[float, float] | None]:
        self.pos = path[-1].copy()  # where the hand aims; tremor is drawn on top
        if tremor:
            path = path + self._tremor(len(path), self.tremor_amp)
        self.t += len(path) / self.fps
        return [(float(x), float(y)) for x, y in path]

    def stroke(self, to: np.ndarray, seconds: float | None = None) -> list[tuple[float, float] | None]:
        dist = float(np.hypot(*(to - self.pos)))
        seconds = seconds or float(np.clip(0.25 + 0.0016 * dist / self.unit, 0.25, 1.2)) * self.rng.uniform(0.85, 1.2)
        s = min_jerk(self.n(seconds))[:, None]
        path = self.pos + (to - self.pos) * s
        return self._emit(path, tremor=False)

    def overshoot(self) -> list[tuple[float, float] | None]:
        to = self.target()
        d = to - self.pos
        over = to + d * self.rng.uniform(0.05, 0.12) + self.rng.normal(0, 3 * self.unit, 2)
        return self.stroke(over) + self.stroke(to, float(self.rng.uniform(0.15, 0.3)))

    def dwell(self, seconds: float | None = None) -> list[tuple[float, float] | None]:
        k = self.n(seconds or float(self.rng.uniform(0.2, 5.0)))
        return self._emit(np.repeat(self.pos[None], k, 0))

    def still(self, seconds: float | None = None) -> list[tuple[float, float] | None]:
        k = self.n(seconds or float(self.rng.uniform(1.0, 3.0)))
        return self._emit(np.repeat(self.pos[None], k, 0), tremor=False)

    def drift(self) -> list[tuple[float, float] | None]:
        seconds = float(self.rng.uniform(1.0, 3.0))
        k = self.n(seconds)
        speed = self.rng.uniform(3, 12) * self.unit
        ang = self.rng.uniform(0, 2 * np.pi)
        path = self.pos + np.outer(np.arange(1, k + 1) / self.fps, speed * np.array([np.cos(ang), np.sin(ang)]))
        x0, y0, x1, y1 = self.box
        path = np.clip(path, [x0 + 4, y0 + 4], [x1 - 5, y1 - 5])
        return self._emit(path)

    def circle(self) -> list[tuple[float, float] | None]:
        """1.5-3 loops around a feature near the pointer, as narrators circle what they talk about."""
        r = self.rng.uniform(15, 50) * self.unit
        aspect = self.rng.uniform(0.7, 1.3)
        x0, y0, x1, y1 = self.box
        centre = (
            np.clip(self.pos + self.rng.normal(0, r / 2, 2), [x0 + 2 * r, y0 + 2 * r], [x1 - 2 * r, y1 - 2 * r])
            if x1 - x0 > 4 * r and y1 - y0 > 4 * r
            else self.pos
        )
        loops = self.rng.uniform(1.5, 3.0)
        k = self.n(loops * self.rng.uniform(0.7, 1.3))
        a0 = self.rng.uniform(0, 2 * np.pi)
        a = a0 + np.sign(self.rng.random() - 0.5) * 2 * np.pi * loops * np.arange(1, k + 1) / k
        wobble = 1 + 0.1 * np.sin(3 * a + self.phase[0])
        ring = centre + np.stack([r * np.cos(a) * wobble, r * aspect * np.sin(a) * wobble], -1)
        return self.stroke(ring[0]) + self._emit(ring)

    def hide(self) -> list[tuple[float, float] | None]:
        k = self.n(float(self.rng.uniform(0.5, 3.0)))
        self.t += k / self.fps
        if self.rng.random() < 0.5:
            self.pos = self.target()
        return [None] * k

    def to_chrome(self) -> list[tuple[float, float] | None]:
        """Off the tissue onto a toolbar or panel, a pause there, and back."""
        if not self.chrome:
            return self.overshoot()
        back = self.pos.copy()
        spot = self.target(0.2, self.chrome[int(self.rng.integers(len(self.chrome)))])
        return self.stroke(spot) + self.dwell(float(self.rng.uniform(0.5, 1.5))) + self.stroke(back)

    def move(self, kind: str) -> list[tuple[float, float] | None]:
        if kind == "stroke":
            return self.stroke(self.target())
        return {
            "overshoot": self.overshoot,
            "drift": self.drift,
            "circle": self.circle,
            "dwell": self.dwell,
            "hide": self.hide,
            "chrome": self.to_chrome,
            "still": self.still,
        }[kind]()
