"""An independent generator of narrated slide-viewing videos with per-frame truth.

Written without reading the project's own generator (``quilt_llava.narratives.synthetic``)
or the pointer locator, so that the extractor is also checked on videos whose drawing,
motion and layout were decided by someone else. It shares nothing with them but the output
format the scorer reads (a video, a transcript, a truth JSON).

A video is a list of *shots* (``VideoConfig.plan``): still tissue views in which a narrator
moves the mouse like a hand does (minimum-jerk strokes, overshoot and correction, drifts,
tremor, circles around a feature, dwells, hiding, leaving the tissue onto the viewer's
chrome, a pointer that never moves), joined by drags (the slide follows a grabbing pointer),
smooth zooms about the pointer, keyboard pans with no pointer, hard cuts and cross-fades,
and cuts to screens that are not tissue (a text slide, a camera, a desktop, a blank
screen). The slide is larger than the screen, so pans reveal new tissue. Five tissue looks
(``ihc.png`` recoloured to H&E, darker, paler, a procedurally drawn tissue, grey-scale
``cell.png``), viewer layouts (toolbars, side panel, overview thumbnail, scale bar, window
frame, letterbox, three chrome colours), X11 cursor themes read with
``quilt_llava.narratives.xcursor`` and pointers drawn here (macOS- and Windows-like arrows,
an I-beam, a laser dot, a ring highlight, a thin crosshair), placed at sub-pixel positions.
Encoded with PyAV (libx264 at any CRF and preset, or MPEG-4 part 2 at a bit rate).

Truth per frame: time, view id, whether the view is still, whether it is tissue, the
pointer's hotspot in frame pixels (or none), its kind and category, whether it is over the
tissue area; per view: start, end, tissue flag and the tissue area's box (the content box).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from quilt_llava.errors import ConfigError

TISSUES = ("he", "dark", "pale", "procedural", "gray")
GLASS = (242, 240, 244)  # an empty slide, and what lies beyond its edges
CHROMES = {  # panel, bar, text, accent
    "light": ((236, 236, 238), (214, 215, 220), (40, 40, 46), (60, 120, 200)),
    "dark": ((38, 40, 46), (28, 29, 33), (220, 222, 228), (250, 170, 40)),
    "blue": ((52, 78, 118), (34, 56, 92), (235, 240, 250), (120, 220, 160)),
}
TOOLBARS = ("none", "top", "bottom")
PANELS = ("none", "left", "right")
OVERVIEWS = ("none", "panel", "overlay")
SCREENS = ("text", "camera", "desktop", "blank")
MOVES = ("drag", "zoom", "pan", "cut", "fade")
MOTIONS = ("stroke", "overshoot", "drift", "circle", "dwell", "hide", "chrome", "still")
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
CODECS = ("libx264", "mpeg4")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


@dataclass(frozen=True)
class VideoConfig:
    """One video of the corpus. Pixel sizes of motion are given at 720p and scaled with the frame height."""

    name: str
    seed: int
    width: int = 1280
    height: int = 720
    fps: float = 25.0
    codec: str = "libx264"
    crf: int = 23  # libx264
    preset: str = "medium"  # libx264
    bitrate_kbps: int = 2000  # mpeg4
    tissue: str = "he"
    toolbar: str = "none"
    panel: str = "none"
    overview: str = "none"
    scale_bar: bool = False
    window: bool = False  # the viewer in a window on a desktop (title bar, border)
    letterbox: bool = False  # a 4:3 screen recorded into the frame with black bars
    chrome: str = "light"
    # pointers the views cycle through: "x11:THEME:ROLE" (ROLE one of X11_ROLES) or "drawn:NAME" (NAME in DRAWN)
    pointers: tuple[str, ...] = ("drawn:mac",)
    pointer_px: int = 24  # nominal pointer size in frame pixels
    grab: str | None = None  # pointer shown while the slide is dragged (default: the view's own)
    shape_change: bool = False  # the pointer turns into the next of ``pointers`` during a stroke in each view
    # shots after the first view: a move (MOVES) or a screen (SCREENS), each followed by a new still view
    plan: tuple[str, ...] = ("drag", "zoom", "cut")
    view_seconds: tuple[float, float] = (4.0, 7.0)
    screen_seconds: tuple[float, float] = (3.0, 4.5)
    motions: tuple[str, ...] = MOTIONS
    still_views: tuple[int, ...] = ()  # views (0-based) whose pointer never moves
    hidden_views: tuple[int, ...] = ()  # views with no pointer at all
    zoom_range: tuple[float, float] = (0.7, 1.6)  # screen px per slide px

    def validate(self) -> None:
        """Raise ConfigError listing every bad value."""
        p: list[str] = []
        if self.width < 160 or self.height < 120 or self.width % 2 or self.height % 2:
            p.append(f"width x height must be even and at least 160x120, got {self.width}x{self.height}")
        if not 5 <= self.fps <= 120:
            p.append(f"fps must be in [5, 120], got {self.fps}")
        if self.codec not in CODECS:
            p.append(f"codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if not 0 <= self.crf <= 51:
            p.append(f"crf must be in [0, 51], got {self.crf}")
        if self.preset not in PRESETS:
            p.append(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.bitrate_kbps < 50:
            p.append(f"bitrate_kbps must be >= 50, got {self.bitrate_kbps}")
        for name, value, choices in (
            ("tissue", self.tissue, TISSUES),
            ("toolbar", self.toolbar, TOOLBARS),
            ("panel", self.panel, PANELS),
            ("overview", self.overview, OVERVIEWS),
            ("chrome", self.chrome, tuple(CHROMES)),
        ):
            if value not in choices:
                p.append(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        if self.overview == "panel" and self.panel == "none":
            p.append("overview='panel' needs a side panel (panel='left' or 'right')")
        if not self.pointers:
            p.append("pointers must name at least one pointer")
        for spec in (*self.pointers, *([self.grab] if self.grab else [])):
            problem = pointer_spec_problem(spec)
            if problem:
                p.append(problem)
        if not 8 <= self.pointer_px <= 128:
            p.append(f"pointer_px must be in [8, 128], got {self.pointer_px}")
        bad = [s for s in self.plan if s not in MOVES + SCREENS]
        if bad:
            p.append(f"plan steps {bad} unknown; choose from {', '.join(MOVES + SCREENS)}")
        for name, (lo, hi), least in (
            ("view_seconds", self.view_seconds, 3.5),
            ("screen_seconds", self.screen_seconds, 0.5),
        ):
            if not least <= lo <= hi:
                p.append(f"{name} must be (lo, hi) with {least} <= lo <= hi, got ({lo}, {hi})")
        bad = [m for m in self.motions if m not in MOTIONS]
        if bad or not self.motions:
            p.append(f"motions {bad or '()'} invalid; choose from {', '.join(MOTIONS)}")
        lo, hi = self.zoom_range
        if not 0.3 <= lo <= hi <= 4.0:
            p.append(f"zoom_range must be (lo, hi) with 0.3 <= lo <= hi <= 4, got ({lo}, {hi})")
        if p:
            raise ConfigError(p, source=f"VideoConfig {self.name!r}")

    def key(self) -> str:
        """What a render depends on: these settings and this file's source."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        digest.update(Path(__file__).read_bytes())
        return digest.hexdigest()


def pointer_spec_problem(spec: str) -> str | None:
    parts = spec.split(":")
    if parts[0] == "drawn" and len(parts) == 2 and parts[1] in DRAWN:
        return None
    if parts[0] == "x11" and len(parts) == 3 and parts[2] in X11_ROLES:
        from quilt_llava.narratives.xcursor import installed_themes

        themes = installed_themes()
        if parts[1] not in themes:
            installed = ", ".join(themes) or "none"
            return f"pointer {spec!r}: cursor theme {parts[1]!r} is not installed (installed: {installed})"
        return None
    drawn, roles = ", ".join(DRAWN), ", ".join(X11_ROLES)
    return f"pointer {spec!r} must be 'drawn:NAME' (NAME in {drawn}) or 'x11:THEME:ROLE' (ROLE in {roles})"


# --------------------------------------------------------------------------- tissue


def _he_from_ihc() -> np.ndarray:
    """``ihc.png`` with its DAB stain turned into eosin: an H&E look (float RGB 0-1)."""
    from skimage import data
    from skimage.color import hed2rgb, rgb2hed

    hed = rgb2hed(data.immunohistochemistry())
    h, d = hed[..., 0], hed[..., 2]
    lo, hi = np.percentile(d, [5, 95])
    eosin = 0.03 * np.clip((d - lo) / (hi - lo), 0, 1.5) + 0.012  # optical density, as hed2rgb scales it
    return np.clip(hed2rgb(np.stack([h, eosin, np.zeros_like(h)], axis=-1)), 0, 1)


def _tile(img: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """``img`` mirrored into a 3x3 mosaic of flipped copies, upscaled and cropped to width x height."""
    import cv2

    row = np.concatenate([img, img[:, ::-1], img], axis=1)
    mosaic = np.concatenate([row, row[::-1], row], axis=0)
    scale = max(width / mosaic.shape[1], height / mosaic.shape[0]) * rng.uniform(1.05, 1.25)
    big = cv2.resize(
        mosaic, (math.ceil(mosaic.shape[1] * scale), math.ceil(mosaic.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
    )
    y0 = int(rng.integers(0, big.shape[0] - height + 1))
    x0 = int(rng.integers(0, big.shape[1] - width + 1))
    return big[y0 : y0 + height, x0 : x0 + width]


def _procedural(width: int, height: int, rng: np.random.Generator, unit: float) -> np.ndarray:
    """Stroma fibres, nuclei and gland lumens over glass, drawn from noise (float RGB 0-1)."""
    import cv2

    def field(sigma_x: float, sigma_y: float | None = None) -> np.ndarray:
        f = cv2.GaussianBlur(
            rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma_x, sigmaY=sigma_y or sigma_x
        )
        return (f - f.mean()) / (f.std() + 1e-6)

    density = field(60 * unit)
    fibres = 0.6 * field(9 * unit, 1.2 * unit) + 0.4 * field(1.2 * unit, 9 * unit)  # two fibre directions
    tissue = density > -0.6  # empty glass where the density is low
    stain = np.clip(0.55 + 0.12 * fibres + 0.1 * density, 0, 1)[..., None]
    pink = np.array([0.93, 0.62, 0.76], np.float32)
    rgb = np.where(tissue[..., None], 1 - stain * (1 - pink), np.array(GLASS, np.float32) / 255)
    canvas = (rgb * 255).astype(np.uint8)
    for _ in range(int(width * height / (120_000 * unit * unit))):  # gland lumens lined with nuclei
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        if not tissue[cy, cx]:
            continue
        ax, ay = rng.uniform(25, 70, 2) * unit
        ang = float(rng.uniform(0, 180))
        cv2.ellipse(canvas, (cx, cy), (int(ax), int(ay)), ang, 0, 360, (246, 232, 240), -1, cv2.LINE_AA)
        for k in range(int(2 * math.pi * max(ax, ay) / (9 * unit))):
            a = 2 * math.pi * k / max(1, int(2 * math.pi * max(ax, ay) / (9 * unit)))
            x = (
                cx
                + (ax + 4 * unit) * math.cos(a) * math.cos(math.radians(ang))
                - (ay + 4 * unit) * math.sin(a) * math.sin(math.radians(ang))
            )
            y = (
                cy
                + (ax + 4 * unit) * math.cos(a) * math.sin(math.radians(ang))
                + (ay + 4 * unit) * math.sin(a) * math.cos(math.radians(ang))
            )
            cv2.ellipse(
                canvas,
                (int(x), int(y)),
                (int(5 * unit), int(3 * unit)),
                math.degrees(a),
                0,
                360,
                (84, 44, 122),
                -1,
                cv2.LINE_AA,
            )
    n = int(tissue.mean() * width * height / (260 * unit * unit))
    xs, ys = rng.integers(0, width, n), rng.integers(0, height, n)
    keep = tissue[ys, xs] & (rng.random(n) < np.clip(0.5 + 0.35 * density[ys, xs], 0.05, 1))
    for x, y in zip(xs[keep], ys[keep]):  # nuclei, denser where the tissue is denser
        r = rng.uniform(2.5, 5.5) * unit
        shade = rng.uniform(-25, 25)
        colour = (
            int(np.clip(95 + shade, 0, 255)),
            int(np.clip(50 + shade / 2, 0, 255)),
            int(np.clip(135 + shade, 0, 255)),
        )
        axes = (max(1, int(r)), max(1, int(r * rng.uniform(0.6, 1.0))))
        cv2.ellipse(canvas, (int(x), int(y)), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    out = cv2.GaussianBlur(canvas, (0, 0), 0.7 * unit).astype(np.float32) / 255
    return np.clip(out + 0.015 * rng.standard_normal(out.shape).astype(np.float32), 0, 1)


def make_slide(kind: str, width: int, height: int, rng: np.random.Generator, unit: float) -> np.ndarray:
    """A slide of ``kind`` (TISSUES) as (height, width, 3) uint8 RGB."""
    if kind == "procedural":
        rgb = _procedural(width, height, rng, unit)
    elif kind == "gray":
        from skimage import data

        cell = data.cell().astype(np.float32) / 255
        rgb = np.repeat(_tile(cell, width, height, rng)[..., None], 3, axis=-1)
    else:
        rgb = _tile(_he_from_ihc().astype(np.float32), width, height, rng)
        if kind == "dark":
            rgb = np.clip(rgb, 0, 1) ** 1.7 * 0.92
        elif kind == "pale":
            rgb = 1 - 0.45 * (1 - np.clip(rgb, 0, 1))
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- pointers


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


# --------------------------------------------------------------------------- screen layout

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


@dataclass
class Layout:
    """Where things are on the frame: the recorded screen, the viewer window, its chrome, the tissue area."""

    screen: Rect
    window: Rect
    viewport: Rect  # the tissue area (content box)
    chrome: list[Rect]  # toolbars and panels, where the pointer may wander
    overview: Rect | None  # the overview thumbnail, in the panel or over the viewport's corner


def make_layout(cfg: VideoConfig) -> Layout:
    W, H = cfg.width, cfg.height
    unit = H / 720
    screen: Rect = (0, 0, W, H)
    if cfg.letterbox:  # a 4:3 screen in the frame, bars left and right (or top and bottom)
        sw = min(W, round(H * 4 / 3)) // 2 * 2
        sh = min(H, round(sw * 3 / 4)) // 2 * 2
        x0, y0 = (W - sw) // 2, (H - sh) // 2
        screen = (x0, y0, x0 + sw, y0 + sh)
    x0, y0, x1, y1 = screen
    s_unit = (y1 - y0) / 720 if cfg.letterbox else unit
    if cfg.window:  # desktop margin, border and title bar
        m = round(26 * s_unit)
        x0, y0, x1, y1 = x0 + m, y0 + m, x1 - m, y1 - round(52 * s_unit)
    window: Rect = (x0, y0, x1, y1)
    chrome: list[Rect] = []
    if cfg.window:
        title = (x0, y0, x1, y0 + round(28 * s_unit))
        chrome.append(title)
        y0 = title[3]
        b = max(1, round(2 * s_unit))
        x0, x1, y1 = x0 + b, x1 - b, y1 - b
    bar = round(40 * s_unit)
    if cfg.toolbar == "top":
        chrome.append((x0, y0, x1, y0 + bar))
        y0 += bar
    elif cfg.toolbar == "bottom":
        chrome.append((x0, y1 - bar, x1, y1))
        y1 -= bar
    panel_w = round(0.2 * (x1 - x0))
    overview = None
    if cfg.panel == "left":
        chrome.append((x0, y0, x0 + panel_w, y1))
        x0 += panel_w
    elif cfg.panel == "right":
        chrome.append((x1 - panel_w, y0, x1, y1))
        x1 -= panel_w
    if cfg.overview == "panel":
        px0 = chrome[-1][0]
        m = round(10 * s_unit)
        overview = (px0 + m, y0 + m, px0 + panel_w - m, y0 + m + round((panel_w - 2 * m) * 0.75))
    elif cfg.overview == "overlay":
        ow = round(0.2 * (x1 - x0))
        m = round(12 * s_unit)
        overview = (x1 - m - ow, y0 + m, x1 - m, y0 + m + round(ow * 0.75))
    return Layout(screen, window, (x0, y0, x1, y1), chrome, overview)


def _font(px: float) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=max(8, round(px)))


def draw_chrome(cfg: VideoConfig, layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """The frame around the tissue area: black bars, desktop, window frame, toolbar, panel (uint8 RGB)."""
    from PIL import Image, ImageDraw

    W, H = cfg.width, cfg.height
    panel, bar, text, accent = CHROMES[cfg.chrome]
    img = Image.new("RGB", (W, H), (0, 0, 0))
    d = ImageDraw.Draw(img)
    unit = (layout.screen[3] - layout.screen[1]) / 720
    if cfg.window:
        sx0, _, sx1, sy1 = layout.screen
        d.rectangle(layout.screen, fill=(46, 84, 110))  # desktop wallpaper
        d.rectangle((sx0, sy1 - round(26 * unit), sx1, sy1), fill=(22, 24, 30))  # taskbar
        wx0, wy0, wx1, wy1 = layout.window
        d.rectangle((wx0, wy0, wx1 - 1, wy1 - 1), fill=bar, outline=(10, 10, 12))
        t = layout.chrome[0]
        d.rectangle((t[0], t[1], t[2] - 1, t[3] - 1), fill=bar)
        d.text((t[0] + 10 * unit, t[1] + 6 * unit), "slide_0427.svs - Viewer", fill=text, font=_font(14 * unit))
        for k, colour in enumerate(((230, 80, 70), (240, 190, 60), (90, 190, 90))):
            cx = t[2] - (20 + 22 * k) * unit
            d.ellipse((cx - 6 * unit, t[1] + 8 * unit, cx + 6 * unit, t[1] + 20 * unit), fill=colour)
    for r in layout.chrome[1 if cfg.window else 0 :]:
        x0, y0, x1, y1 = r
        d.rectangle((x0, y0, x1 - 1, y1 - 1), fill=panel)
        if x1 - x0 > y1 - y0:  # a toolbar: buttons and a zoom label
            step = 36 * unit
            for k in range(int(min(12, (x1 - x0 - 200 * unit) / step))):
                bx = x0 + 10 * unit + k * step
                d.rounded_rectangle(
                    (bx, y0 + 7 * unit, bx + 26 * unit, y1 - 7 * unit),
                    radius=4 * unit,
                    fill=bar,
                    outline=accent if k == 2 else None,
                )
            d.text((x1 - 170 * unit, y0 + 12 * unit), "Zoom 20x   1.25 um/px", fill=text, font=_font(13 * unit))
        else:  # a side panel: a list of annotations
            font = _font(13 * unit)
            top = (
                layout.overview[3] if layout.overview and layout.overview[0] >= x0 and layout.overview[2] <= x1 else y0
            )
            for k, label in enumerate(
                ("Annotations", "  region 1", "  region 2", "Layers", "  H&E", "Metadata", "  scanner 40x")
            ):
                d.text((x0 + 10 * unit, top + (14 + 24 * k) * unit), label, fill=text, font=font)
    arr = np.array(img)
    vx0, vy0, vx1, vy1 = layout.viewport
    arr[vy0:vy1, vx0:vx1] = 0
    return arr


def screen_image(kind: str, cfg: VideoConfig, rng: np.random.Generator) -> np.ndarray:
    """A full-frame screen that is not tissue (SCREENS) as uint8 RGB."""
    import cv2
    from PIL import Image, ImageDraw

    W, H = cfg.width, cfg.height
    unit = H / 720
    if kind == "camera":
        from skimage import data

        photo = data.astronaut() if rng.random() < 0.5 else data.coffee()
        scale = max(W / photo.shape[1], H / photo.shape[0])
        big = cv2.resize(
            photo, (math.ceil(photo.shape[1] * scale), math.ceil(photo.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
        )
        y0, x0 = (big.shape[0] - H) // 2, (big.shape[1] - W) // 2
        return np.ascontiguousarray(big[y0 : y0 + H, x0 : x0 + W])
    if kind == "blank":
        return np.full((H, W, 3), int(rng.choice([0, 16, 255])), np.uint8)
    if kind == "text":
        dark = rng.random() < 0.4
        img = Image.new("RGB", (W, H), (24, 32, 48) if dark else (250, 250, 246))
        d = ImageDraw.Draw(img)
        ink = (235, 235, 240) if dark else (30, 30, 40)
        d.rectangle((0, 0, W, round(8 * unit)), fill=(170, 40, 60))
        d.text((70 * unit, 60 * unit), "Chronic gastritis: what to look for", fill=ink, font=_font(44 * unit))
        lines = (
            "- lamina propria expanded by plasma cells",
            "- lymphoid aggregates near the muscularis",
            "- intestinal metaplasia: goblet cells",
            "- look for H. pylori on the surface mucus",
        )
        for k, line in enumerate(lines):
            d.text((90 * unit, (180 + 70 * k) * unit), line, fill=ink, font=_font(30 * unit))
        return np.array(img)
    # desktop: a gradient wallpaper, icons, a taskbar
    yy = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    xx = np.linspace(0, 1, W, dtype=np.float32)[None, :, None]
    top, bottom = np.array([40, 90, 150], np.float32), np.array([150, 70, 120], np.float32)
    wall = top * (1 - yy) + bottom * yy + 25 * xx
    img = Image.fromarray(np.clip(wall, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for k, label in enumerate(("Home", "Slides", "lecture.pptx", "Trash")):
        y = (30 + 100 * k) * unit
        d.rounded_rectangle(
            (30 * unit, y, 80 * unit, y + 50 * unit),
            radius=8 * unit,
            fill=(235, 225, 150) if k % 2 else (200, 210, 230),
        )
        d.text((22 * unit, y + 56 * unit), label, fill=(255, 255, 255), font=_font(13 * unit))
    d.rectangle((0, H - 40 * unit, W, H), fill=(20, 22, 28))
    d.text((W - 80 * unit, H - 28 * unit), "14:05", fill=(230, 230, 230), font=_font(15 * unit))
    return np.array(img)


# --------------------------------------------------------------------------- a hand on a mouse


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


# --------------------------------------------------------------------------- shots to frames

View = tuple[float, float, float]  # slide x, slide y at the tissue area's centre; zoom (screen px per slide px)


@dataclass
class FramePlan:
    """What one frame shows, and its truth."""

    background: tuple[Any, ...]  # ("view", View) | ("fade", View, View, alpha) | ("screen", name)
    pointer: tuple[float, float] | None
    sprite: str | None
    view: int | None  # still span id (None: the view moves)
    tissue: bool
    shift_px: float  # how far the view moved since the last frame (inf at a cut)
    motion: str = ""  # what the hand was doing (a MOTIONS name, "never-moves", "hidden", a move or a screen)


class Director:
    """Turns a VideoConfig into a frame plan: still views, moves and screens, and the pointer over them."""

    def __init__(self, cfg: VideoConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.unit = cfg.height / 720
        self.layout = make_layout(cfg)
        x0, y0, x1, y1 = self.layout.viewport
        self.vw, self.vh = x1 - x0, y1 - y0
        zlo = cfg.zoom_range[0]
        self.slide_w = round(self.vw / zlo * 2.0)
        self.slide_h = round(self.vh / zlo * 2.0)
        self.plans: list[FramePlan] = []
        self.span = 0
        self.tissue_views = 0
        self.view = self.random_view()
        self.hand = Hand(
            self.rng, cfg.fps, self.unit, self.layout.viewport, self.layout.chrome, ((x0 + x1) / 2, (y0 + y1) / 2)
        )
        self.spec = cfg.pointers[0]

    # views -----------------------------------------------------------------
    def clamp(self, cx: float, cy: float, z: float) -> View:
        hw, hh = self.vw / (2 * z), self.vh / (2 * z)
        return (float(np.clip(cx, hw, self.slide_w - hw)), float(np.clip(cy, hh, self.slide_h - hh)), z)

    def random_view(self) -> View:
        z = float(self.rng.uniform(*self.cfg.zoom_range))
        return self.clamp(self.rng.uniform(0, self.slide_w), self.rng.uniform(0, self.slide_h), z)

    def emit(
        self,
        background: tuple[Any, ...],
        pointers: list,
        sprites: list[str | None],
        view: int | None,
        tissue: bool,
        shifts: list[float],
        labels: list[str],
    ) -> None:
        for p, s, sh, label in zip(pointers, sprites, shifts, labels):
            self.plans.append(FramePlan(background, p, s if p is not None else None, view, tissue, sh, label))

    # shots -----------------------------------------------------------------
    def still_view(self, first_shift: float) -> None:
        cfg, hand, k = self.cfg, self.hand, self.tissue_views
        n = hand.n(float(self.rng.uniform(*cfg.view_seconds)))
        self.spec = cfg.pointers[k % len(cfg.pointers)]
        if k in cfg.hidden_views:
            pointers: list = [None] * n
            labels = ["hidden"] * n
        elif k in cfg.still_views:
            pointers = hand.still(n / cfg.fps)
            labels = ["never-moves"] * n
        else:
            pointers, labels = [], []
            while len(pointers) < n:
                kind = str(self.rng.choice(cfg.motions))
                chunk = hand.move(kind)
                pointers += chunk
                labels += [kind] * len(chunk)
            pointers, labels = pointers[:n], labels[:n]
            last = next((p for p in reversed(pointers) if p is not None), None)
            if last is not None:
                hand.pos = np.array(last)
        sprites = [self.spec] * n
        if cfg.shape_change and len(cfg.pointers) > 1 and k not in cfg.still_views:
            turn = int(self.rng.integers(n // 3, 2 * n // 3))
            nxt = cfg.pointers[(k + 1) % len(cfg.pointers)]
            sprites[turn:] = [nxt] * (n - turn)
            self.spec = nxt
        self.emit(("view", self.view), pointers, sprites, self.span, True, [first_shift] + [0.0] * (n - 1), labels)
        self.span += 1
        self.tissue_views += 1

    def _visible_pointer(self) -> np.ndarray:
        if not self._pointer_shown():
            self.hand.pos = self.hand.target(0.2)
        return self.hand.pos

    def _pointer_shown(self) -> bool:
        return bool(self.plans) and self.plans[-1].pointer is not None

    def slide_move(self, kind: str) -> float:
        """A drag (the slide follows a grabbing pointer), a keyboard pan (no pointer) or a zoom about the
        pointer; returns how far the view moves from the move's last frame to the still view after it."""
        cfg, rng, hand = self.cfg, self.rng, self.hand
        k = hand.n(float(rng.uniform(0.6, 1.4)))
        s = min_jerk(k + 1)  # the last fraction (1) is the still view after the move
        cx, cy, z = self.view
        vx0, vy0, vx1, vy1 = self.layout.viewport
        if kind == "zoom":
            p = hand.pos if self._pointer_shown() else np.array([(vx0 + vx1) / 2, (vy0 + vy1) / 2])
            lo, hi = cfg.zoom_range
            f = float(rng.uniform(1.3, 2.0))
            z1 = z * f if (z * f <= hi and (rng.random() < 0.5 or z / f < lo)) else max(lo, z / f)
            off = np.array([p[0] - (vx0 + vx1) / 2, p[1] - (vy0 + vy1) / 2])
            q = np.array([cx, cy]) + off / z
            views = [self.clamp(*(q - off / zz), zz) for zz in z * (z1 / z) ** s]
            pointers = [tuple(p) if self._pointer_shown() else None] * (k + 1)
        else:
            p0 = self._visible_pointer().copy() if kind == "drag" else hand.pos.copy()
            ang = rng.uniform(0, 2 * np.pi)
            d = rng.uniform(0.2, 0.45) * min(self.vw, self.vh) * np.array([np.cos(ang), np.sin(ang)])
            if kind == "drag":  # the pointer's end must stay on the tissue area
                end = np.clip(
                    p0 + d, [vx0 + 0.08 * self.vw, vy0 + 0.08 * self.vh], [vx1 - 0.08 * self.vw, vy1 - 0.08 * self.vh]
                )
                d = end - p0
            target = self.clamp(cx - d[0] / z, cy - d[1] / z, z)
            d = np.array([(cx - target[0]) * z, (cy - target[1]) * z])  # what the slide's edges allow
            views = [(cx - d[0] / z * si, cy - d[1] / z * si, z) for si in s]
            pointers = [tuple(p0 + d * si) for si in s] if kind == "drag" else [None] * (k + 1)
            if kind == "drag":
                hand.pos = p0 + d
        sprite = (cfg.grab or self.spec) if kind == "drag" else self.spec
        shifts = [self.moved(a, b) for a, b in zip([self.view, *views[:-1]], views)]
        for v, p, sh in zip(views[:-1], pointers[:-1], shifts[:-1]):
            self.plans.append(FramePlan(("view", v), p, sprite if p is not None else None, None, True, sh, kind))
        self.view = views[-1]
        return shifts[-1]

    def moved(self, a: View, b: View) -> float:
        """Screen pixels the view moved from a to b (a zoom: how far the tissue area's corners moved)."""
        return float(
            np.hypot((b[0] - a[0]) * b[2], (b[1] - a[1]) * b[2]) + abs(b[2] / a[2] - 1) * np.hypot(self.vw, self.vh) / 2
        )

    def fade(self) -> None:
        new = self.random_view()
        k = self.hand.n(float(self.rng.uniform(0.5, 1.0)))
        p = tuple(self.hand.pos) if self._pointer_shown() else None
        for i in range(k):
            a = (i + 1) / (k + 1)
            self.plans.append(
                FramePlan(("fade", self.view, new, a), p, self.spec if p else None, None, True, float("inf"), "fade")
            )
        self.view = new

    def screen(self, name: str) -> None:
        cfg = self.cfg
        n = self.hand.n(float(self.rng.uniform(*cfg.screen_seconds)))
        if name in ("text", "desktop"):  # the narrator's pointer moves over it
            hand = Hand(self.rng, cfg.fps, self.unit, (0, 0, cfg.width, cfg.height), [], tuple(self.hand.pos))
            pointers: list = []
            while len(pointers) < n:
                pointers += hand.move(str(self.rng.choice(("stroke", "dwell", "drift"))))
            pointers = pointers[:n]
        else:
            pointers = [None] * n
        shifts = [float("inf")] + [0.0] * (n - 1)
        self.emit(("screen", name), pointers, [self.spec] * n, self.span, False, shifts, [name] * n)
        self.span += 1

    def build(self) -> list[FramePlan]:
        self.still_view(float("inf"))
        for step in self.cfg.plan:
            first = float("inf")
            if step in ("drag", "zoom", "pan"):
                first = self.slide_move(step)
            elif step == "fade":
                self.fade()
            elif step == "cut":
                self.view = self.random_view()
            else:
                self.screen(step)
                self.view = self.random_view()
            self.still_view(first)
        return self.plans


# --------------------------------------------------------------------------- drawing and encoding


class Painter:
    """Draws planned frames: the tissue area from the slide, the chrome, overlays, screens, the pointer."""

    def __init__(self, director: Director) -> None:
        import cv2

        cfg = director.cfg
        self.cfg, self.d, self.layout = cfg, director, director.layout
        rng = np.random.default_rng(cfg.seed + 1)
        self.slide = make_slide(cfg.tissue, director.slide_w, director.slide_h, rng, director.unit)
        self.half = cv2.pyrDown(self.slide)  # for zooms below 0.75: less aliasing
        self.chrome = draw_chrome(cfg, self.layout, rng)
        self.screens = {name: screen_image(name, cfg, rng) for name in SCREENS}
        self.noise = [
            rng.integers(-2, 3, (cfg.height, cfg.width, 3)).astype(np.int16) for _ in range(3)
        ]  # camera sensor noise
        self.sprites: dict[str, Sprite] = {}
        self.thumb = None
        if self.layout.overview:
            x0, y0, x1, y1 = self.layout.overview
            self.thumb = cv2.resize(self.slide, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        self.cache: tuple[Any, np.ndarray] | None = None

    def sprite(self, spec: str) -> Sprite:
        if spec not in self.sprites:
            self.sprites[spec] = load_sprite(spec, self.cfg.pointer_px)
        return self.sprites[spec]

    def tissue_area(self, view: View) -> np.ndarray:
        import cv2

        cx, cy, z = view
        src, zz, sx, sy = (self.half, z * 2, cx / 2, cy / 2) if z < 0.75 else (self.slide, z, cx, cy)
        m = np.float32([[zz, 0, self.d.vw / 2 - sx * zz], [0, zz, self.d.vh / 2 - sy * zz]])
        return cv2.warpAffine(
            src,
            m,
            (self.d.vw, self.d.vh),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=GLASS,
        )

    def glass_share(self, view: View) -> float:
        """Share of the tissue area's pixels within 14 grey levels of the glass colour in every channel."""
        area = self.tissue_area(view).astype(np.int16)
        return float((np.abs(area - np.array(GLASS, np.int16)).max(axis=-1) <= 14).mean())

    def view_frame(self, view: View) -> np.ndarray:
        import cv2

        frame = self.chrome.copy()
        x0, y0, x1, y1 = self.layout.viewport
        frame[y0:y1, x0:x1] = self.tissue_area(view)
        unit = self.d.unit
        accent = CHROMES[self.cfg.chrome][3]
        if self.layout.overview and self.thumb is not None:
            ox0, oy0, ox1, oy1 = self.layout.overview
            thumb = self.thumb.copy()
            sx, sy = (ox1 - ox0) / self.d.slide_w, (oy1 - oy0) / self.d.slide_h
            cx, cy, z = view
            hw, hh = self.d.vw / (2 * z), self.d.vh / (2 * z)
            cv2.rectangle(
                thumb,
                (round((cx - hw) * sx), round((cy - hh) * sy)),
                (round((cx + hw) * sx), round((cy + hh) * sy)),
                accent,
                max(1, round(2 * unit)),
            )
            frame[oy0:oy1, ox0:ox1] = thumb
            cv2.rectangle(frame, (ox0, oy0), (ox1 - 1, oy1 - 1), (20, 20, 20), 1)
        if self.cfg.scale_bar:
            bx, by = x0 + round(16 * unit), y1 - round(40 * unit)
            length = round(100 * unit)
            cv2.rectangle(
                frame, (bx - 6, by - round(18 * unit)), (bx + length + 6, by + round(14 * unit)), (255, 255, 255), -1
            )
            cv2.rectangle(frame, (bx, by), (bx + length, by + max(2, round(4 * unit))), (0, 0, 0), -1)
            label = f"{round(100 / view[2] * 0.5)} um"
            cv2.putText(
                frame,
                label,
                (bx, by - round(5 * unit)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * unit,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
        return frame

    def background(self, plan: FramePlan, index: int) -> np.ndarray:
        bg = plan.background
        if bg[0] == "fade":
            a = bg[3]
            return (self.view_frame(bg[1]) * (1 - a) + self.view_frame(bg[2]) * a + 0.5).astype(np.uint8)
        if self.cache is not None and self.cache[0] == bg:
            frame = self.cache[1]
        else:
            frame = self.view_frame(bg[1]) if bg[0] == "view" else self.screens[bg[1]]
            self.cache = (bg, frame)
        if bg[0] == "screen" and bg[1] == "camera":
            return np.clip(frame.astype(np.int16) + self.noise[index % 3], 0, 255).astype(np.uint8)
        return frame.copy()

    def paint(self, plan: FramePlan, index: int) -> np.ndarray:
        frame = self.background(plan, index)
        if plan.pointer is not None and plan.sprite is not None:
            composite(frame, self.sprite(plan.sprite), *plan.pointer)
        return frame


def _rate(fps: float) -> Fraction:
    for num, den in ((24000, 1001), (30000, 1001), (60000, 1001)):
        if abs(fps - num / den) < 0.005:
            return Fraction(num, den)
    return Fraction(fps).limit_denominator(1000)


def encode(path: Path, cfg: VideoConfig, frames: Any) -> int:
    """Encode RGB frames with PyAV into ``path`` (written beside it, then renamed); returns the frame count."""
    import av

    part = path.with_name(path.name + ".part.mp4")
    n = 0
    with av.open(str(part), "w") as container:
        stream = container.add_stream(cfg.codec, rate=_rate(cfg.fps))
        stream.width, stream.height, stream.pix_fmt = cfg.width, cfg.height, "yuv420p"
        if cfg.codec == "libx264":
            stream.options = {"crf": str(cfg.crf), "preset": cfg.preset}
        else:
            stream.bit_rate = cfg.bitrate_kbps * 1000
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
            n += 1
        for packet in stream.encode():
            container.mux(packet)
    part.replace(path)
    return n


SENTENCES = (
    "Here the mucosa is thickened and the glands are crowded together.",
    "Look at these cells along the edge, their nuclei are large and dark.",
    "This pink material in the middle is fibrous stroma.",
    "Notice the small round cells scattered through the lamina propria, mostly lymphocytes.",
    "Over here the architecture breaks down into solid sheets.",
    "These spaces are empty lumens lined by a single layer of cells.",
    "The nuclei in this area show coarse chromatin and visible nucleoli.",
    "Let me move to another part of the slide to compare.",
)


def transcript(duration: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Narration over the whole video: one sentence every 2-4 s (plain JSON transcript format)."""
    out, t = [], 0.3
    while t < duration - 1.0:
        end = min(duration - 0.1, t + float(rng.uniform(2.0, 3.6)))
        out.append({"start": round(t, 3), "end": round(end, 3), "text": str(rng.choice(SENTENCES))})
        t = end + float(rng.uniform(0.1, 0.6))
    return out


def truth_of(
    cfg: VideoConfig, director: Director, plans: list[FramePlan], painter: Painter | None = None
) -> dict[str, Any]:
    """Per-frame and per-view truth as JSON-ready values (times are frame index / frame rate); with
    ``painter``, each tissue view also says how much of its tissue area is empty glass."""
    rate = _rate(cfg.fps)
    box = director.layout.viewport
    frames = []
    for i, p in enumerate(plans):
        on = p.pointer is not None and box[0] <= p.pointer[0] < box[2] and box[1] <= p.pointer[1] < box[3]
        frames.append(
            {
                "t": round(float(i / rate), 6),
                "view": p.view,
                "stable": p.view is not None,
                "tissue": p.tissue,
                "cursor": [round(p.pointer[0], 3), round(p.pointer[1], 3)] if p.pointer is not None else None,
                "pointer": p.sprite,
                "category": CATEGORY[p.sprite.split(":")[-1]] if p.sprite else None,
                "on_content": bool(on and p.tissue),
                "shift_px": None if math.isinf(p.shift_px) else round(p.shift_px, 3),
                "motion": p.motion,
            }
        )
    segments = []
    for i, p in enumerate(plans):
        if p.view is None:
            continue
        if not segments or segments[-1]["view"] != p.view:
            segments.append(
                {
                    "view": p.view,
                    "start": frames[i]["t"],
                    "end": None,
                    "tissue": p.tissue,
                    "screen": p.background[1] if p.background[0] == "screen" else None,
                }
            )
            if painter is not None and p.tissue:
                segments[-1]["glass_share"] = round(painter.glass_share(p.background[1]), 3)
        segments[-1]["end"] = round(float((i + 1) / rate), 6)
    return {
        "name": cfg.name,
        "config": asdict(cfg),
        "fps": float(rate),
        "width": cfg.width,
        "height": cfg.height,
        "duration": round(float(len(plans) / rate), 6),
        "content_box": list(box),
        "chrome": [list(r) for r in director.layout.chrome],
        "frames": frames,
        "segments": segments,
    }


@dataclass
class Rendered:
    video: Path
    transcript: Path
    truth: dict[str, Any]
    reused: bool
    views: Path  # view-NNN.png: each still tissue view's frame without the pointer, before encoding


def save_clean_views(painter: Painter, plans: list[FramePlan], folder: Path) -> None:
    """The pointer-free frame of every still tissue view, as PNG (RGB), written atomically."""
    import cv2

    from quilt_llava.files import atomic_write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    done: set[int] = set()
    for i, p in enumerate(plans):
        if p.view is None or not p.tissue or p.view in done:
            continue
        done.add(p.view)
        ok, png = cv2.imencode(".png", painter.background(p, i)[..., ::-1])
        if not ok:
            raise RuntimeError(f"could not encode the clean frame of view {p.view} as PNG")
        atomic_write_bytes(folder / f"view-{p.view:03d}.png", png.tobytes())


def render(cfg: VideoConfig, out_dir: Path, reuse: bool = True) -> Rendered:
    """Render ``cfg`` into ``out_dir`` (NAME.mp4, NAME.transcript.json, NAME.truth.json, NAME.views/, NAME.key),
    or reuse the files an earlier render left there when its key (settings + this file's source) is the same."""
    from quilt_llava.files import atomic_write_text, read_json, write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    video, words, truth_file, stamp = (
        out_dir / f"{cfg.name}{ext}" for ext in (".mp4", ".transcript.json", ".truth.json", ".key")
    )
    views = out_dir / f"{cfg.name}.views"
    key = cfg.key()
    made = all(p.is_file() for p in (video, words, truth_file)) and views.is_dir()
    if reuse and stamp.is_file() and stamp.read_text() == key and made:
        return Rendered(video, words, read_json(truth_file), True, views)
    stamp.unlink(missing_ok=True)
    director = Director(cfg)
    plans = director.build()
    painter = Painter(director)
    encode(video, cfg, (painter.paint(p, i) for i, p in enumerate(plans)))
    truth = truth_of(cfg, director, plans, painter)
    save_clean_views(painter, plans, views)
    write_json(words, transcript(truth["duration"], np.random.default_rng(cfg.seed + 2)))
    write_json(truth_file, truth, indent=None)
    atomic_write_text(stamp, key)
    return Rendered(video, words, truth, False, views)
