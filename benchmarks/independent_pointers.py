"""Pointers for the independent corpus (``independent_videos.py``), drawn at quarter-pixel positions.

X11 cursor themes are read with ``quilt_llava.narratives.xcursor`` (images and declared hotspots)
and scaled to the asked size; the other pointers are drawn here, supersampled: a black-outlined
white arrow, one with a soft shadow, an I-beam, a red laser dot with a glow, a translucent ring
highlight and a thin crosshair. Frame coordinates put pixel centres on whole numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from quilt_llava.errors import ConfigError

DRAWN = ("mac", "win", "ibeam", "laser", "ring", "cross")
X11_ROLES = {  # cursor file names tried in order
    "arrow": ("left_ptr", "default", "arrow"),
    "hand": ("hand2", "pointer", "pointing_hand", "hand1"),
    "grab": ("grabbing", "closedhand", "dnd-move", "fleur"),
    "crosshair": ("crosshair", "cross", "tcross"),
    "ibeam": ("xterm", "text"),
}
# what each pointer is, for the scorer's tolerances and tables
CATEGORY = {"mac": "arrow", "win": "arrow", "ibeam": "ibeam", "laser": "dot", "ring": "ring", "cross": "crosshair"}
CATEGORY.update({role: ("hand" if role == "grab" else role) for role in X11_ROLES})


@dataclass
class Sprite:
    """A pointer image (premultiplied RGBA, float 0-1) and the point it points at, drawn at a
    sub-pixel offset: ``draw(frac)`` gives the image whose pixel (0, 0) lies at hotspot - offset."""

    spec: str
    category: str
    size: int
    base: np.ndarray | None = None  # (h, w, 4) premultiplied, for bitmap pointers
    hotspot: tuple[float, float] = (0.0, 0.0)  # in base pixels (pixel centres at integers)
    cache: dict[tuple[int, int], tuple[np.ndarray, int, int]] = field(default_factory=dict)

    def draw(self, x: float, y: float) -> tuple[np.ndarray, int, int]:
        """Premultiplied RGBA image and the frame position (x0, y0) of its pixel (0, 0) for the hotspot at (x, y)."""
        qx, qy = round(x * 4), round(y * 4)  # quarter-pixel positions
        fx, fy = qx % 4, qy % 4
        if (fx, fy) not in self.cache:
            self.cache[(fx, fy)] = self._render(fx / 4, fy / 4)
        img, ox, oy = self.cache[(fx, fy)]
        return img, (qx - fx) // 4 + ox, (qy - fy) // 4 + oy

    def _render(self, fx: float, fy: float) -> tuple[np.ndarray, int, int]:
        """The image for a hotspot at (fx, fy) within pixel (0, 0); returns it and its offset from there."""
        name = self.spec.split(":")[-1]
        if self.base is not None:
            return _shift_bitmap(self.base, self.hotspot, fx, fy)
        return _draw_vector(name, self.size, fx, fy)


def _shift_bitmap(base: np.ndarray, hot: tuple[float, float], fx: float, fy: float) -> tuple[np.ndarray, int, int]:
    import cv2

    h, w = base.shape[:2]
    ox, oy = -math.ceil(hot[0]) - 1, -math.ceil(hot[1]) - 1  # one pixel of margin for the shift
    tx, ty = fx - hot[0] - ox, fy - hot[1] - oy
    m = np.float32([[1, 0, tx], [0, 1, ty]])
    img = cv2.warpAffine(base, m, (w + 3, h + 3), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return img, ox, oy


SS = 4  # supersampling of drawn pointers


def _draw_vector(name: str, size: int, fx: float, fy: float) -> tuple[np.ndarray, int, int]:
    """A drawn pointer with its hotspot at (fx, fy) of pixel (0, 0), supersampled 4x and reduced."""
    import cv2

    pad = int(size * 0.6) + 4
    n = (2 * pad + size) * SS
    hi = np.zeros((n, n, 4), np.float32)  # premultiplied

    # Pixel j of the result is drawn on frame pixel (hotspot's whole part - pad + j), whose centre is a
    # whole frame coordinate, so the hotspot lies at pad + (fx, fy) in result pixel-centre units; the
    # supersampled pixel k has its centre at (k + 0.5) / SS - 0.5 in those units.
    def fine(v: float) -> float:  # result pixel-centre units to supersampled pixel-centre units
        return (v + 0.5) * SS - 0.5

    def P(pts: list[tuple[float, float]]) -> np.ndarray:  # sprite units (hotspot at 0, 0), in 1/4 fine pixels
        return np.array([[fine(pad + fx + x * size) * 4, fine(pad + fy + y * size) * 4] for x, y in pts]).round()

    def mask_of(poly: np.ndarray) -> np.ndarray:
        mask = np.zeros((n, n), np.uint8)
        cv2.fillPoly(mask, [poly.astype(np.int32)], 255, cv2.LINE_8, shift=2)
        return mask

    def fill(poly: np.ndarray, rgb: tuple[float, float, float], alpha: float = 1.0) -> None:
        a = (mask_of(poly).astype(np.float32) / 255 * alpha)[..., None]
        hi[:] = hi * (1 - a) + np.concatenate([np.array(rgb, np.float32) * a, a], axis=-1)

    arrow = [(0, 0), (0, 0.78), (0.2, 0.6), (0.33, 0.9), (0.45, 0.85), (0.32, 0.56), (0.57, 0.56)]
    if name in ("mac", "win"):  # the outline's tip is the hotspot; the white fill lies inside it
        fill_poly = [(0.035 + 0.86 * x, 0.075 + 0.86 * y) for x, y in arrow]
        if name == "win":  # a soft shadow down and right
            shadow = mask_of(P([(x + 0.06, y + 0.06) for x, y in arrow]))
            shadow = cv2.GaussianBlur(shadow, (0, 0), size * SS * 0.05).astype(np.float32) / 255 * 0.45
            hi[..., 3] = shadow
        fill(P(arrow), (0.0, 0.0, 0.0) if name == "mac" else (0.05, 0.05, 0.05))
        fill(P(fill_poly), (1.0, 1.0, 1.0))
    elif name == "ibeam":
        w, h = 0.05, 0.42
        for colour, grow in (((1.0, 1.0, 1.0), 0.035), ((0.0, 0.0, 0.0), 0.0)):
            fill(
                P([(-w - grow, -h - grow), (w + grow, -h - grow), (w + grow, h + grow), (-w - grow, h + grow)]), colour
            )
            for sy in (-h, h - 0.06):
                fill(
                    P(
                        [
                            (-0.18 - grow, sy - grow),
                            (0.18 + grow, sy - grow),
                            (0.18 + grow, sy + 0.06 + grow),
                            (-0.18 - grow, sy + 0.06 + grow),
                        ]
                    ),
                    colour,
                )
    elif name == "cross":
        t = max(1.0 / size, 0.035)  # lines about one pixel wide
        for x0, y0, x1, y1 in (
            (-0.6, -t / 2, -0.08, t / 2),
            (0.08, -t / 2, 0.6, t / 2),
            (-t / 2, -0.6, t / 2, -0.08),
            (-t / 2, 0.08, t / 2, 0.6),
        ):
            fill(P([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]), (0.05, 0.05, 0.05))
        fill(P([(-t, -t), (t, -t), (t, t), (-t, t)]), (0.05, 0.05, 0.05))  # the centre dot
    elif name in ("laser", "ring"):
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        r = np.hypot((xx + 0.5) / SS - 0.5 - pad - fx, (yy + 0.5) / SS - 0.5 - pad - fy) / size
        if name == "laser":  # a red dot with a soft glow
            core = np.clip((0.16 - r) / 0.04 + 0.5, 0, 1)
            glow = 0.55 * np.exp(-((r / 0.3) ** 2))
            a = np.clip(core + glow * (1 - core), 0, 1)
            rgb = np.stack(
                [
                    np.ones_like(r),
                    0.15 + 0.7 * core * np.exp(-((r / 0.08) ** 2)),
                    0.1 + 0.6 * core * np.exp(-((r / 0.08) ** 2)),
                ],
                -1,
            )
        else:  # a translucent yellow ring, as screen recorders highlight the pointer
            a = 0.55 * np.clip(1 - np.abs(r - 0.42) / 0.09, 0, 1)
            rgb = np.stack([np.ones_like(r), 0.85 * np.ones_like(r), 0.1 * np.ones_like(r)], -1)
        hi[:] = np.concatenate([rgb * a[..., None], a[..., None]], -1)
    small = cv2.resize(hi, (n // SS, n // SS), interpolation=cv2.INTER_AREA)
    return small, -pad, -pad


def load_sprite(spec: str, size: int) -> Sprite:
    """The pointer ``spec`` at nominal ``size`` px (see VideoConfig.pointers)."""
    parts = spec.split(":")
    if parts[0] == "drawn":
        return Sprite(spec, CATEGORY[parts[1]], size)
    import cv2

    from quilt_llava.narratives.xcursor import cursor_path, pick_image, read_xcursor

    _, theme, role = parts
    path = next((p for name in X11_ROLES[role] if (p := cursor_path(theme, name)) is not None), None)
    if path is None:
        raise ConfigError([f"cursor theme {theme!r} has no {role} cursor (tried {', '.join(X11_ROLES[role])})"])
    image = pick_image(read_xcursor(path), size)
    scale = size / image.nominal
    rgba = image.rgba.astype(np.float32) / 255
    rgba[..., :3] *= rgba[..., 3:]
    if abs(scale - 1) > 1e-6:
        h, w = rgba.shape[:2]
        rgba = cv2.resize(
            rgba,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
    hx, hy = image.hotspot
    # the hotspot pixel's centre, scaled about pixel edges
    return Sprite(spec, CATEGORY[role], size, rgba, ((hx + 0.5) * scale - 0.5, (hy + 0.5) * scale - 0.5))


def composite(frame: np.ndarray, sprite: Sprite, x: float, y: float) -> None:
    """Draw ``sprite`` with its hotspot at (x, y) onto ``frame`` (uint8 RGB, in place)."""
    img, x0, y0 = sprite.draw(x, y)
    h, w = img.shape[:2]
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, frame.shape[1]), min(y0 + h, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    part = img[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    under = frame[fy0:fy1, fx0:fx1].astype(np.float32) / 255
    out = part[..., :3] + under * (1 - part[..., 3:])
    frame[fy0:fy1, fx0:fx1] = np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)
