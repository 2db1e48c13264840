"""Synthetic narrated slide-viewing videos with exact ground truth.

A real tissue image (scikit-image's ``ihc.png`` by default) is mirror-tiled into a
large "slide". A viewer frame shows part of that slide inside a UI (border, toolbar,
status bar); the view pans and zooms between a list of views, an arrow cursor moves
along waypoints (resting still for seconds, sometimes hidden), a narrator webcam box
animates in a corner, and annotation strokes may be drawn. A tour may cut to full-frame screens
that are not tissue (``cuts``: a text slide, the presenter's camera, a desktop, a blank
screen; see :func:`insert_cuts`). The result is encoded to H.264 with PyAV, together with a
Whisper-style transcript and ``truth.json``.

The pointer is either the built-in drawn arrow (``cursor_style``) or a real X11 cursor
theme installed from Debian packages (``cursor_theme``; ``scripts/install_cursor_themes.sh``)
read with :mod:`quilt_llava.narratives.xcursor`: arrows, pointing hands, crosshairs, and the
grabbing hand while the slide is dragged, at the hotspots the cursor files declare.

Per written frame, ``truth.json`` holds ``t`` (the container timestamp), ``cursor``
(the tip, i.e. hotspot, in video pixels; null when hidden or while the view moves),
``pointer`` (where the cursor is drawn, also during pans), ``shape`` and ``pointer_box``
(the drawn sprite's shape and the video pixels it covers), ``stable`` and ``view``
(null during a transition), ``tissue`` (false on a screen view; ``cursor`` is then null),
and ``shift_px`` (how far, in screen pixels, the frame's
view is from the nearest still view: 0 on stable frames, small at the eased start and
end of a pan). It also holds ``content_box`` and ``webcam_box`` (video px), the
``segments`` (one per view, ``end`` = start of the next transition, ``tissue``), the utterances
and the view specs.

Rendering is cheap on purpose: the slide is prepared once (with a small pyramid for
zoomed-out views), the still part of each view is rendered once and reused for every
frame of the view, and per frame only the webcam box, strokes and cursor sprite are
composed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from quilt_llava.errors import ConfigError
from quilt_llava.files import atomic_open, write_json

CURSOR_STYLES = ("arrow", "white", "small")
SCREENS = ("text", "presenter", "desktop", "blank")  # full-frame views that are not tissue
BACKGROUND_RGB = (236, 236, 236)  # what viewers show outside the slide


@dataclass
class Stroke:
    """An annotation stroke drawn progressively between ``start`` and ``end`` (seconds,
    relative to its view) along ``points`` (normalised content coordinates); it stays
    visible until the view ends."""

    start: float
    end: float
    points: list[tuple[float, float]]
    color: tuple[int, int, int] = (20, 180, 40)
    thickness: int = 3


@dataclass
class ViewSpec:
    """One stable view of the slide.

    ``center`` is in normalised slide coordinates; ``zoom`` is screen pixels per slide
    pixel (1.0 = native). ``waypoints`` are ``(t_rel, x, y)`` with x, y normalised to the
    content area; repeating a position makes the cursor rest there. ``hidden`` lists
    ``(t_rel_start, t_rel_end)`` spans with no cursor on screen. ``utterances`` are
    ``(t_rel_start, t_rel_end, text)``. ``screen`` (one of ``SCREENS``) makes the view a cut
    to a full-frame screen that is not tissue (``center`` and ``zoom`` are then unused).
    """

    center: tuple[float, float]
    zoom: float
    duration_s: float
    waypoints: list[tuple[float, float, float]] = field(default_factory=list)
    hidden: list[tuple[float, float]] = field(default_factory=list)
    utterances: list[tuple[float, float, str]] = field(default_factory=list)
    strokes: list[Stroke] = field(default_factory=list)
    screen: str | None = None


@dataclass
class SyntheticConfig:
    name: str = "synthetic"
    width: int = 1280
    height: int = 720
    fps: float = 25.0
    crf: int = 23
    preset: str = "veryfast"  # libx264 preset
    encoder_threads: int = 1  # 0: let x264 choose
    seed: int = 0
    views: list[ViewSpec] | None = None  # None: a random tour of ``n_views`` views
    n_views: int = 4
    view_seconds: tuple[float, float] = (8.0, 12.0)  # duration range of random views
    pan_seconds: float = 1.5  # transition (pan and/or zoom) between consecutive views
    cursor_style: str = "arrow"  # the built-in drawn arrow; ignored when ``cursor_theme`` is set
    # A real X11 cursor theme (e.g. "DMZ-White", "Adwaita", "redglass"; see ``xcursor.installed_themes``)
    # drawn with the hotspots its files declare, ``cursor_size`` video px nominal (HiDPI 2x: twice
    # the usual 24-32). Views cycle through ``cursor_shapes`` (see ``SHAPE_CURSORS``); with
    # ``shape_changes`` each view switches to the next shape half-way; with ``grab_pans`` the
    # pointer is the theme's grabbing hand while it drags the slide between views.
    cursor_theme: str | None = None
    cursor_size: int = 32
    cursor_shapes: tuple[str, ...] = ("arrow",)
    shape_changes: bool = False
    grab_pans: bool = False
    cursor_tint: tuple[int, int, int] | None = (
        None  # RGB the theme's sprites are multiplied by (/255): an amber or blue arrow
    )
    save_clean_views: bool = False  # also write each view's pointer-free render (``<name>.views/<i>.png``)
    webcam: bool = False
    ui: bool = True
    annotations: bool = False  # random tours: draw one stroke in one view
    source_image: str | None = None  # path to an RGB image; None: skimage ihc.png
    slide_tiles: int = 6  # the slide is (tiles x tiles) mirrored copies of the source
    cuts: tuple[str, ...] = ()  # random tours: full-frame screens (SCREENS) cut to between views, in this order

    def validate(self) -> None:
        problems = []
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            problems.append(f"width/height must be even and >= 64, got {self.width}x{self.height}")
        if not 1.0 <= self.fps <= 120.0:
            problems.append(f"fps must be in [1, 120], got {self.fps}")
        if not 0 <= self.crf <= 51:
            problems.append(f"crf must be in [0, 51], got {self.crf}")
        if self.cursor_style not in CURSOR_STYLES:
            problems.append(f"cursor_style must be one of {', '.join(CURSOR_STYLES)}, got {self.cursor_style!r}")
        if self.cursor_theme is not None:
            problems.extend(theme_problems(self.cursor_theme, self.cursor_shapes, self.grab_pans))
            if not 8 <= self.cursor_size <= 128:
                problems.append(f"cursor_size must be in [8, 128] video px, got {self.cursor_size}")
        if self.pan_seconds < 0:
            problems.append(f"pan_seconds must be >= 0, got {self.pan_seconds}")
        bad = [c for c in self.cuts if c not in SCREENS]
        if bad:
            problems.append(f"cuts must be among {', '.join(SCREENS)}, got {bad}")
        if self.slide_tiles < 1:
            problems.append(f"slide_tiles must be >= 1, got {self.slide_tiles}")
        if self.views is not None:
            if not self.views:
                problems.append("views is empty; pass None for a random tour")
            for i, v in enumerate(self.views):
                if v.duration_s <= 0:
                    problems.append(f"views[{i}].duration_s must be > 0")
                if v.screen is not None and v.screen not in SCREENS:
                    problems.append(f"views[{i}].screen must be one of {', '.join(SCREENS)} or None, got {v.screen!r}")
                if v.zoom <= 0:
                    problems.append(f"views[{i}].zoom must be > 0")
                times = [w[0] for w in v.waypoints]
                if times != sorted(times):
                    problems.append(f"views[{i}].waypoints must be sorted by time")
                for a, b in v.hidden:
                    if b <= a:
                        problems.append(f"views[{i}].hidden span ({a}, {b}) ends before it starts")
                for a, b, _ in v.utterances:
                    if b <= a:
                        problems.append(f"views[{i}].utterance ({a}, {b}) ends before it starts")
        elif self.n_views < 1:
            problems.append(f"n_views must be >= 1, got {self.n_views}")
        if problems:
            raise ConfigError(problems, source="SyntheticConfig")


@dataclass
class SyntheticVideo:
    video: Path
    transcript: Path
    truth_path: Path
    truth: dict[str, Any]


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    content_box: tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)
    webcam_box: tuple[int, int, int, int] | None

    @property
    def content_size(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.content_box
        return x1 - x0, y1 - y0


def make_layout(cfg: SyntheticConfig) -> Layout:
    w, h = cfg.width, cfg.height
    if cfg.ui:
        border = max(2, round(w * 0.006))
        toolbar = max(8, round(h * 0.067))
        status = max(4, round(h * 0.033))
        content = (border, toolbar, w - border, h - status)
    else:
        content = (0, 0, w, h)
    webcam = None
    if cfg.webcam:
        ww, wh = round(w * 0.15) // 2 * 2, round(h * 0.2) // 2 * 2
        inset = max(2, round(w * 0.008))
        x1, y1 = content[2] - inset, content[3] - inset
        webcam = (x1 - ww, y1 - wh, x1, y1)
    return Layout(w, h, content, webcam)


def _draw_ui(frame: np.ndarray, layout: Layout) -> None:
    """Viewer chrome: dark toolbar with buttons, a status bar and a thin border."""
    import cv2

    h, w = frame.shape[:2]
    x0, y0, x1, y1 = layout.content_box
    if (x0, y0, x1, y1) == (0, 0, w, h):
        return
    frame[:y0] = (45, 48, 54)
    frame[y1:] = (60, 63, 70)
    frame[:, :x0] = (30, 32, 36)
    frame[:, x1:] = (30, 32, 36)
    bh = max(4, y0 - 2 * max(2, y0 // 5))
    by = (y0 - bh) // 2
    x = max(4, w // 100)
    for i in range(9):  # toolbar buttons
        color = (90, 140, 200) if i == 2 else (110, 114, 122)
        cv2.rectangle(frame, (x, by), (x + bh, by + bh), color, -1, cv2.LINE_AA)
        cv2.rectangle(
            frame,
            (x + bh // 4, by + bh // 4),
            (x + 3 * bh // 4, by + 3 * bh // 4),
            (200, 202, 206),
            1,
            cv2.LINE_AA,
        )
        x += bh + max(2, bh // 3)
    scale = max(0.3, y0 / 60)
    cv2.putText(
        frame,
        "slide_0001.svs",
        (x + bh, by + bh - bh // 5),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (220, 220, 220),
        1,
        cv2.LINE_AA,
    )
    sh = h - y1
    if sh >= 8:
        cv2.putText(
            frame,
            "x20  |  0.50 um/px",
            (x0 + 4, h - sh // 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            max(0.25, sh / 40),
            (200, 200, 200),
            1,
            cv2.LINE_AA,
        )


# --------------------------------------------------------------------------- slide


def load_source_image(path: str | None) -> np.ndarray:
    """The tissue image as RGB uint8; ``None`` gives scikit-image's immunohistochemistry sample."""
    if path is None:
        from skimage import data

        return np.ascontiguousarray(data.immunohistochemistry()[..., :3])
    from quilt_llava.images import open_image

    return np.asarray(open_image(path).convert("RGB"))


def make_slide(source: np.ndarray, tiles: int) -> np.ndarray:
    """Mirror-tile ``source`` into a seamless (tiles*h, tiles*w) slide."""
    rows = []
    for r in range(tiles):
        row = []
        for c in range(tiles):
            tile = source
            if c % 2:
                tile = tile[:, ::-1]
            if r % 2:
                tile = tile[::-1]
            row.append(tile)
        rows.append(np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


class SlideRenderer:
    """Renders a (center, zoom) view of the slide into the content area size."""

    def __init__(self, slide: np.ndarray) -> None:
        import cv2

        self.levels = [slide]
        while min(self.levels[-1].shape[:2]) > 256:
            self.levels.append(cv2.pyrDown(self.levels[-1]))

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.levels[0].shape[:2]
        return w, h

    def render(self, center: tuple[float, float], zoom: float, out_size: tuple[int, int]) -> np.ndarray:
        import cv2

        sw, sh = self.size
        # Pick the pyramid level whose scale keeps the warp from minifying by > 2x.
        level = 0
        while level + 1 < len(self.levels) and zoom * (2 ** (level + 1)) <= 1.0:
            level += 1
        img = self.levels[level]
        s = 2**level
        z = zoom * s  # screen px per level px
        cx, cy = center[0] * sw / s, center[1] * sh / s
        ow, oh = out_size
        # screen (u, v) -> level px: x = cx + (u - ow/2) / z
        m = np.array([[z, 0.0, ow / 2 - z * cx], [0.0, z, oh / 2 - z * cy]], dtype=np.float64)
        return cv2.warpAffine(
            img,
            m,
            (ow, oh),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=BACKGROUND_RGB,
        )


# --------------------------------------------------------------------------- cursor


@dataclass
class CursorSprite:
    rgb: np.ndarray  # (h, w, 3) float32
    alpha: np.ndarray  # (h, w, 1) float32 in [0, 1]
    hotspot: tuple[int, int]  # (x, y) of the tip inside the sprite


# A classic arrow pointer, tip at (0, 0), in units of ~1 px at "arrow" size.
_ARROW = np.array(
    [(0, 0), (0, 17), (4.2, 13.2), (7.2, 19.6), (9.6, 18.6), (6.7, 12.4), (12, 12.2)],
    dtype=np.float64,
)


def make_cursor_sprite(style: str, scale: float = 1.0) -> CursorSprite:
    """Anti-aliased arrow sprite: supersampled polygons for the fill and the outline."""
    import cv2

    if style not in CURSOR_STYLES:
        raise ConfigError(f"cursor_style must be one of {', '.join(CURSOR_STYLES)}, got {style!r}")
    size = scale * (0.6 if style == "small" else 1.0)
    fill, edge = {
        "arrow": ((10, 10, 10), (255, 255, 255)),
        "white": ((255, 255, 255), (150, 150, 150)),
        "small": ((10, 10, 10), (255, 255, 255)),
    }[style]
    edge_px = 1.0 if style != "white" else 0.8
    ss = 8  # supersampling factor
    pad = 3
    pts = _ARROW * size
    w = math.ceil(pts[:, 0].max() + 2 * pad + 1)
    h = math.ceil(pts[:, 1].max() + 2 * pad + 1)
    big_inner = np.zeros((h * ss, w * ss), np.uint8)
    cv2.fillPoly(big_inner, [np.round((pts + pad) * ss).astype(np.int32)], 255, cv2.LINE_AA)
    # The outline is the fill grown by edge_px; the fill's tip is the hotspot.
    r = max(1, round(edge_px * ss))
    big_outer = cv2.dilate(big_inner, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    a_out = cv2.resize(big_outer, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    a_in = cv2.resize(big_inner, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    a_out = np.maximum(a_out, a_in)
    rgb = a_in[..., None] * np.array(fill, np.float32) + (a_out - a_in)[..., None] * np.array(edge, np.float32)
    rgb = rgb / np.maximum(a_out, 1e-6)[..., None]
    return CursorSprite(rgb=rgb, alpha=a_out[..., None], hotspot=(pad, pad))


def _blend(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend a sprite with top-left at (x, y), clipped to the frame."""
    h, w = frame.shape[:2]
    sh, sw = alpha.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, w), min(y + sh, h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    region = region * (1 - a) + rgb[y0 - y : y1 - y, x0 - x : x1 - x] * a
    frame[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)


def draw_cursor(frame: np.ndarray, sprite: CursorSprite, tip: tuple[int, int]) -> None:
    _blend(frame, sprite.rgb, sprite.alpha, tip[0] - sprite.hotspot[0], tip[1] - sprite.hotspot[1])


# --------------------------------------------------------------------------- X11 cursor themes

# Shape -> cursor names to try in a theme, first found wins (themes name the same shape
# differently: DMZ has no "openhand", the glass themes no "grabbing").
SHAPE_CURSORS: dict[str, tuple[str, ...]] = {
    "arrow": ("left_ptr", "default", "arrow"),
    "hand": ("hand2", "pointer", "hand1", "hand"),
    "grab": ("grabbing", "closedhand", "fleur", "all-scroll", "move"),
    "crosshair": ("crosshair", "cross", "tcross"),
}


def theme_problems(theme: str, shapes: tuple[str, ...], grab: bool) -> list[str]:
    """What is wrong with drawing ``shapes`` (and the grabbing hand when ``grab``) from ``theme``."""
    from quilt_llava.narratives.xcursor import cursor_path, installed_themes

    installed = installed_themes()
    if theme not in installed:
        have = ", ".join(installed) or "none; run scripts/install_cursor_themes.sh"
        return [f"cursor_theme {theme!r} is not installed (installed: {have})"]
    problems = []
    if not shapes:
        problems.append("cursor_shapes is empty")
    for shape in (*shapes, *(("grab",) if grab else ())):
        if shape not in SHAPE_CURSORS:
            problems.append(f"cursor shape {shape!r} is not one of {', '.join(SHAPE_CURSORS)}")
        elif not any(cursor_path(theme, n) for n in SHAPE_CURSORS[shape]):
            problems.append(
                f"cursor theme {theme!r} has no {shape} cursor (looked for {', '.join(SHAPE_CURSORS[shape])})"
            )
    return problems


def theme_sprite(theme: str, shape: str, size: int) -> CursorSprite:
    """The ``shape`` cursor of an installed X11 ``theme`` at ``size`` video px nominal: the
    file's image of the nearest nominal size, resampled by size / nominal (premultiplied, so
    edges do not darken), with its declared hotspot scaled alike."""
    import cv2

    from quilt_llava.narratives.xcursor import cursor_path, pick_image, read_xcursor

    path = next((p for p in (cursor_path(theme, n) for n in SHAPE_CURSORS[shape]) if p is not None), None)
    if path is None:
        raise ConfigError(f"cursor theme {theme!r} has no {shape} cursor")
    image = pick_image(read_xcursor(path), size)
    rgba = image.rgba.astype(np.float32) / 255
    premult = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], axis=-1)
    f = size / image.nominal
    hx, hy = image.hotspot
    if abs(f - 1) > 1e-3:
        h, w = rgba.shape[:2]
        out = (max(1, round(w * f)), max(1, round(h * f)))
        premult = cv2.resize(premult, out, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        # Pixel centres scale about the image origin: hotspot pixel centre (hx + 0.5) * f - 0.5.
        hx, hy = round((hx + 0.5) * f - 0.5), round((hy + 0.5) * f - 0.5)
    alpha = np.clip(premult[..., 3:], 0, 1)
    rgb = 255 * premult[..., :3] / np.maximum(alpha, 1e-6)
    return CursorSprite(
        rgb=np.clip(rgb, 0, 255).astype(np.float32), alpha=alpha.astype(np.float32), hotspot=(max(0, hx), max(0, hy))
    )


def sprite_box(sprite: CursorSprite, tip: tuple[int, int], size: tuple[int, int]) -> list[int]:
    """Video px (x0, y0, x1, y1) the sprite covers (alpha > 0) with its hotspot at ``tip``, clipped."""
    ys, xs = np.nonzero(sprite.alpha[..., 0] > 1 / 255)
    x0, y0 = tip[0] - sprite.hotspot[0], tip[1] - sprite.hotspot[1]
    w, h = size
    return [
        max(0, x0 + int(xs.min())),
        max(0, y0 + int(ys.min())),
        min(w, x0 + int(xs.max()) + 1),
        min(h, y0 + int(ys.max()) + 1),
    ]


class PointerSprites:
    """Which sprite is drawn when: a view's shape (``cursor_shapes`` cycled over views, the next
    one from :func:`shape_change_time` on with ``shape_changes``), the grabbing hand during pans with ``grab_pans``,
    or the built-in arrow of ``cursor_style`` when no theme is set."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self._sprites: dict[str, CursorSprite] = {}

    def _get(self, shape: str) -> CursorSprite:
        if shape not in self._sprites:
            cfg = self.cfg
            if cfg.cursor_theme is None:
                sprite = make_cursor_sprite(cfg.cursor_style, scale=max(0.6, cfg.height / 720))
            else:
                sprite = theme_sprite(cfg.cursor_theme, shape, cfg.cursor_size)
                if cfg.cursor_tint is not None:
                    sprite.rgb = sprite.rgb * (np.array(cfg.cursor_tint, np.float32) / 255)
            self._sprites[shape] = sprite
        return self._sprites[shape]

    def shape(self, view: int | None, spec: ViewSpec | None = None, t_rel: float = 0.0) -> str:
        cfg = self.cfg
        if cfg.cursor_theme is None:
            return cfg.cursor_style
        if view is None:
            return "grab" if cfg.grab_pans else cfg.cursor_shapes[0]
        k = view + (1 if cfg.shape_changes and spec is not None and t_rel >= shape_change_time(spec) else 0)
        return cfg.cursor_shapes[k % len(cfg.cursor_shapes)]

    def sprite(self, shape: str) -> CursorSprite:
        return self._get("arrow" if self.cfg.cursor_theme is None else shape)


def shape_change_time(view: ViewSpec) -> float:
    """When a view's pointer takes its second shape: half-way through its first move that starts
    after half the view (a pointer turns into a hand as it moves over a link or a tool, having
    moved in its first shape), else half-way through its last move, else half the view."""
    moves = [(ta + tb) / 2 for (ta, xa, ya), (tb, xb, yb) in itertools.pairwise(view.waypoints) if (xa, ya) != (xb, yb)]
    later = [t for t in moves if t >= view.duration_s / 2]
    return later[0] if later else moves[-1] if moves else view.duration_s / 2


# --------------------------------------------------------------------------- webcam


def draw_webcam(frame: np.ndarray, box: tuple[int, int, int, int], t: float, seed: int) -> None:
    """A talking-head stand-in: moving gradient, a bobbing head, an opening mouth, sensor noise."""
    import cv2

    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = 0.7 * t + seed
    bg = 90 + 40 * np.sin(xx / w * 3 + phase) * np.cos(yy / h * 2 - 0.5 * phase)
    cam = np.stack([bg * 0.8, bg * 0.9, bg * 1.1], -1)
    rng = np.random.default_rng(int(t * 1000) + seed)
    cam += rng.normal(0, 6, cam.shape).astype(np.float32)
    cam = np.clip(cam, 0, 255).astype(np.uint8)
    hx = int(w / 2 + 0.08 * w * math.sin(1.3 * t + seed))
    hy = int(h * 0.45 + 0.04 * h * math.sin(2.1 * t))
    cv2.ellipse(
        cam,
        (hx, int(h * 1.05)),
        (int(w * 0.33), int(h * 0.3)),
        0,
        0,
        360,
        (60, 70, 120),
        -1,
        cv2.LINE_AA,
    )
    cv2.ellipse(cam, (hx, hy), (int(w * 0.17), int(h * 0.25)), 0, 0, 360, (150, 180, 215), -1, cv2.LINE_AA)
    eye = max(1, w // 60)
    for dx in (-1, 1):
        cv2.circle(cam, (hx + dx * int(w * 0.06), hy - int(h * 0.05)), eye, (40, 30, 30), -1, cv2.LINE_AA)
    mouth = max(1, int(h * 0.04 * (0.5 + 0.5 * math.sin(11 * t))))
    cv2.ellipse(
        cam,
        (hx, hy + int(h * 0.12)),
        (int(w * 0.05), mouth),
        0,
        0,
        360,
        (70, 40, 50),
        -1,
        cv2.LINE_AA,
    )
    cv2.rectangle(cam, (0, 0), (w - 1, h - 1), (250, 250, 250), max(1, w // 100))
    frame[y0:y1, x0:x1] = cam


# --------------------------------------------------------------------------- tour


_PHRASES = [
    "here we see the epithelium lining this surface",
    "note the brown staining in these nuclei",
    "this area shows dense inflammatory cells",
    "the stroma here is loose and edematous",
    "look at this cluster of atypical cells",
    "these glands are crowded and irregular",
    "there is a mitotic figure right here",
    "the blue counterstain marks negative nuclei",
    "notice how the staining is strongest at the edge",
    "this is a small vessel with red cells inside",
    "compare it with the normal tissue over here",
    "what do you think this structure is",
    "the membrane staining is complete and intense",
    "there is some necrosis in the center",
    "so this pattern supports the diagnosis",
]


def random_tour(
    cfg: SyntheticConfig, layout: Layout, slide_size: tuple[int, int], rng: np.random.Generator
) -> list[ViewSpec]:
    """A default tour: views at varied zooms, cursor moves with rests, a hidden span, speech.

    Centers are chosen so every view lies inside the slide (no empty background)."""
    cw, ch = layout.content_size
    sw, sh = slide_size
    views = []
    zooms = [1.0, 0.6, 1.4, 0.8, 1.2, 0.5]
    forbidden = None
    if layout.webcam_box is not None:
        x0, y0, _x1, _y1 = layout.webcam_box
        cx0, cy0 = layout.content_box[:2]
        margin = 30
        forbidden = ((x0 - cx0 - margin) / cw, (y0 - cy0 - margin) / ch)

    def point() -> tuple[float, float]:
        while True:
            x, y = rng.uniform(0.08, 0.92), rng.uniform(0.1, 0.9)
            if forbidden is None or not (x > forbidden[0] and y > forbidden[1]):
                return float(x), float(y)

    phrase_order = rng.permutation(len(_PHRASES))
    phrase_i = 0
    for i in range(cfg.n_views):
        dur = float(rng.uniform(*cfg.view_seconds))
        zoom = zooms[i % len(zooms)] * float(rng.uniform(0.9, 1.1))
        hx, hy = min(0.5, cw / (2 * zoom * sw)), min(0.5, ch / (2 * zoom * sh))
        center = (float(rng.uniform(hx, 1 - hx)), float(rng.uniform(hy, 1 - hy)))
        waypoints: list[tuple[float, float, float]] = []
        t = float(rng.uniform(0.0, 0.4))
        p = point()
        waypoints.append((0.0, *p))
        rest_done = False
        while t < dur:
            if not rest_done or rng.random() < 0.35:  # every view has a long rest
                rest = float(rng.uniform(2.0, 3.5)) if not rest_done else float(rng.uniform(0.5, 2.0))
                rest_done = True
                t = min(dur, t + rest)
                waypoints.append((t, *p))
            else:
                p = point()
                t = min(dur, t + float(rng.uniform(0.6, 1.6)))
                waypoints.append((t, *p))
        hidden: list[tuple[float, float]] = []
        if i == 1 or (cfg.n_views == 1 and dur > 4):
            a = float(rng.uniform(0.3, 0.5)) * dur
            hidden.append((a, a + min(2.0, 0.25 * dur)))
        strokes: list[Stroke] = []
        if cfg.annotations and i == min(2, cfg.n_views - 1):
            sx, sy = point()
            r = 0.06
            pts = [(sx + r * math.cos(a), sy + r * 1.6 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 24)]
            strokes.append(Stroke(start=0.3 * dur, end=0.3 * dur + 1.5, points=pts))
        utterances = []
        u = float(rng.uniform(0.2, 0.8))
        while u < dur - 1.0:
            text = _PHRASES[phrase_order[phrase_i % len(_PHRASES)]]
            phrase_i += 1
            length = min(dur - 0.2 - u, 0.32 * len(text.split()) + float(rng.uniform(0, 0.5)))
            if length < 0.8:
                break
            utterances.append((u, u + length, text))
            u += length + float(rng.uniform(0.3, 1.0))
        views.append(
            ViewSpec(
                center=center,
                zoom=zoom,
                duration_s=dur,
                waypoints=waypoints,
                hidden=hidden,
                utterances=utterances,
                strokes=strokes,
            )
        )
    return views


# --------------------------------------------------------------------------- cuts to screens


_SCREEN_PHRASES = {
    "text": "let us go over the learning objectives first",
    "presenter": "before we look at the next slide a few words about the case",
    "desktop": "I will open the next slide from this folder",
    "blank": "give me a second to switch slides",
}


def insert_cuts(views: list[ViewSpec], cuts: tuple[str, ...], cfg: SyntheticConfig) -> list[ViewSpec]:
    """``views`` with a full-frame screen view per entry of ``cuts``, spread between them (never
    first). Uses its own random stream, so a tour is the same with and without cuts."""
    rng = np.random.default_rng(cfg.seed + 7919)
    out = list(views)
    for k, screen in enumerate(cuts):
        dur = float(rng.uniform(*cfg.view_seconds))
        waypoints: list[tuple[float, float, float]] = []
        if screen in ("text", "desktop"):  # the pointer rests on the slide, then moves once
            x, y = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))
            waypoints = [(0.0, x, y), (0.4 * dur, x, y), (0.6 * dur, 1 - x, y), (dur, 1 - x, y)]
        text = _SCREEN_PHRASES[screen]
        start = float(rng.uniform(0.2, 0.6))
        utterances = [(start, min(dur - 0.2, start + 0.32 * len(text.split())), text)]
        at = min(len(out), max(1, round((k + 1) * (len(views) + len(cuts)) / (len(cuts) + 1))))
        out.insert(
            at,
            ViewSpec(
                center=(0.5, 0.5), zoom=1.0, duration_s=dur, waypoints=waypoints, utterances=utterances, screen=screen
            ),
        )
    return out


def transition_seconds(a: ViewSpec, b: ViewSpec, cfg: SyntheticConfig) -> float:
    """A pan between two slide views; a cut (no transition) to or from a screen."""
    return 0.0 if a.screen is not None or b.screen is not None else cfg.pan_seconds


class ScreenRenderer:
    """Frames of screen views: text slides, desktops and blank screens are still; the presenter
    (scikit-image's astronaut photo, full frame) bobs the head and has sensor noise."""

    def __init__(self, size: tuple[int, int], seed: int) -> None:
        self.size = size
        self.seed = seed
        self._still: dict[int, np.ndarray] = {}

    def frame(self, index: int, view: ViewSpec, t_rel: float) -> np.ndarray:
        from quilt_llava.narratives import screens

        if index not in self._still:
            rng = np.random.default_rng(self.seed * 31 + index)
            if view.screen == "presenter":
                from skimage import data

                self._still[index] = screens.presenter(self.size, data.astronaut())
            else:
                draw = {"text": screens.text_slide, "desktop": screens.desktop, "blank": screens.blank}[
                    str(view.screen)
                ]
                self._still[index] = draw(self.size, rng)
        frame = self._still[index].copy()
        if view.screen == "presenter":
            self._move_head(frame, self._still[index], t_rel, index)
        return frame

    def _move_head(self, frame: np.ndarray, still: np.ndarray, t: float, index: int) -> None:
        w, h = self.size
        x0, x1, y1 = round(0.3 * w), round(0.7 * w), round(0.55 * h)
        dx, dy = round(0.006 * w * math.sin(1.3 * t)), round(0.005 * h * math.sin(2.1 * t))
        frame[:y1, x0:x1] = np.roll(still[:y1, x0:x1], (dy, dx), axis=(0, 1))
        rng = np.random.default_rng(int(t * 1000) + index)
        noisy = frame.astype(np.int16) + rng.normal(0, 1.5, frame.shape).astype(np.int16)
        frame[:] = np.clip(noisy, 0, 255).astype(np.uint8)


def view_shift_px(
    center_a: tuple[float, float],
    zoom_a: float,
    center_b: tuple[float, float],
    zoom_b: float,
    slide_size: tuple[int, int],
    content_size: tuple[int, int],
) -> float:
    """Largest on-screen displacement (px) of slide content between two views, over the
    content area's corners and centre: how far a pan/zoom frame is from a still view."""
    sw, sh = slide_size
    cw, ch = content_size
    worst = 0.0
    for u, v in ((0, 0), (cw, 0), (0, ch), (cw, ch), (cw / 2, ch / 2)):
        # screen -> slide px in view a, then slide px -> screen in view b
        px = center_a[0] * sw + (u - cw / 2) / zoom_a
        py = center_a[1] * sh + (v - ch / 2) / zoom_a
        u2 = cw / 2 + zoom_b * (px - center_b[0] * sw)
        v2 = ch / 2 + zoom_b * (py - center_b[1] * sh)
        worst = max(worst, math.hypot(u2 - u, v2 - v))
    return worst


def _smoothstep(a: float) -> float:
    a = min(1.0, max(0.0, a))
    return a * a * (3 - 2 * a)


def cursor_at(view: ViewSpec, t_rel: float) -> tuple[float, float] | None:
    """Normalised cursor position at ``t_rel`` (eased between waypoints), or None if hidden/absent."""
    if not view.waypoints or any(a <= t_rel < b for a, b in view.hidden):
        return None
    wps = view.waypoints
    if t_rel <= wps[0][0]:
        return wps[0][1], wps[0][2]
    for (ta, xa, ya), (tb, xb, yb) in itertools.pairwise(wps):
        if ta <= t_rel < tb:
            s = _smoothstep((t_rel - ta) / (tb - ta))
            return xa + s * (xb - xa), ya + s * (yb - ya)
    return wps[-1][1], wps[-1][2]


def _words(start: float, end: float, text: str) -> list[dict[str, Any]]:
    """Spread word timings over an utterance in proportion to word length (plus a gap)."""
    words = text.split()
    if not words:
        return []
    weights = np.array([len(w) + 1.5 for w in words], dtype=np.float64)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [
        {
            "start": round(float(a), 3),
            "end": round(float(a + 0.9 * (b - a)), 3),
            "word": (" " if i else "") + w,
        }
        for i, (w, a, b) in enumerate(zip(words, edges[:-1], edges[1:]))
    ]


# --------------------------------------------------------------------------- main


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


@dataclass(frozen=True)
class Timeline:
    """When each view starts (s): view 0, a transition, view 1, ...; the video's frame count."""

    starts: list[float]
    total: float
    rate: Fraction
    n_frames: int

    @classmethod
    def of(cls, views: list[ViewSpec], cfg: SyntheticConfig) -> Timeline:
        starts = []
        t = 0.0
        for i, v in enumerate(views):
            if i:
                t += transition_seconds(views[i - 1], v, cfg)
            starts.append(t)
            t += v.duration_s
        rate = _rate(cfg.fps)
        return cls(starts, t, rate, max(1, round(t * rate)))

    def view_at(self, t: float, views: list[ViewSpec]) -> int | None:
        """The view shown at ``t``, or None during a transition."""
        for k, (s, v) in enumerate(zip(self.starts, views)):
            if s - 1e-9 <= t < s + v.duration_s - 1e-9:
                return k
        return None


class FramePainter:
    """Each frame of the video (RGB) and its truth row: a still view (its slide render made once
    and reused, or a screen), or a transition easing centre and log-zoom between two views; then
    the webcam and the pointer on top."""

    def __init__(
        self,
        cfg: SyntheticConfig,
        layout: Layout,
        renderer: SlideRenderer,
        views: list[ViewSpec],
        timeline: Timeline,
        out_dir: Path,
    ) -> None:
        self.cfg, self.layout, self.renderer, self.views, self.timeline = cfg, layout, renderer, views, timeline
        self.out_dir = out_dir
        self.screens = ScreenRenderer((cfg.width, cfg.height), cfg.seed)
        self.sprites = PointerSprites(cfg)
        self.chrome = np.empty((cfg.height, cfg.width, 3), np.uint8)
        self.chrome[:] = BACKGROUND_RGB
        if cfg.ui:
            _draw_ui(self.chrome, layout)
        self.base_cache: dict[int, np.ndarray] = {}

    def view_base(self, center: tuple[float, float], zoom: float) -> np.ndarray:
        cx0, cy0, cx1, cy1 = self.layout.content_box
        frame = self.chrome.copy()
        frame[cy0:cy1, cx0:cx1] = self.renderer.render(center, zoom, self.layout.content_size)
        return frame

    def to_px(self, x: float, y: float) -> tuple[int, int]:
        cx0, cy0, _, _ = self.layout.content_box
        cw, ch = self.layout.content_size
        px = cx0 + min(max(x, 0.0), 1.0) * (cw - 1)
        py = cy0 + min(max(y, 0.0), 1.0) * (ch - 1)
        return round(px), round(py)

    def paint(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Frame ``i`` and its truth row."""
        t = float(i / self.timeline.rate)
        vi = self.timeline.view_at(t, self.views)
        if vi is not None:
            frame, pointer, shape, shift = self._still(vi, t)
        else:
            frame, pointer, shape, shift = self._transition(t)
        if self.layout.webcam_box is not None:
            draw_webcam(frame, self.layout.webcam_box, t, self.cfg.seed)
        if pointer is not None:
            draw_cursor(frame, self.sprites.sprite(shape), pointer)
        return frame, self._truth_row(t, vi, pointer, shape, shift)

    def _still(self, vi: int, t: float) -> tuple[np.ndarray, tuple[int, int] | None, str, float]:
        view = self.views[vi]
        if view.screen is not None:
            frame = self.screens.frame(vi, view, t - self.timeline.starts[vi])
        else:
            if vi not in self.base_cache:
                self.base_cache.clear()
                self.base_cache[vi] = self.view_base(view.center, view.zoom)
                if self.cfg.save_clean_views:
                    _save_clean_view(self.out_dir / f"{self.cfg.name}.views" / f"{vi}.png", self.base_cache[vi])
            frame = self.base_cache[vi].copy()
        t_rel = t - self.timeline.starts[vi]
        _draw_strokes(frame, view, t_rel, self.to_px)
        pos = cursor_at(view, t_rel)
        pointer = self.to_px(*pos) if pos is not None else None
        return frame, pointer, self.sprites.shape(vi, view, t_rel), 0.0

    def _transition(self, t: float) -> tuple[np.ndarray, tuple[int, int] | None, str, float]:
        """A frame between view k and k + 1: centre and log-zoom eased together."""
        starts, views, cfg = self.timeline.starts, self.views, self.cfg
        k = max(j for j, s in enumerate(starts) if s <= t)
        a, b = views[k], views[k + 1]
        # Offset by one frame so neither the first nor the last transition frame
        # shows a still view: every non-stable frame really has moved.
        dt = float(1 / self.timeline.rate)
        s = _smoothstep((t - starts[k] - a.duration_s + dt) / (cfg.pan_seconds + dt))
        center = (
            a.center[0] + s * (b.center[0] - a.center[0]),
            a.center[1] + s * (b.center[1] - a.center[1]),
        )
        zoom = math.exp(math.log(a.zoom) + s * (math.log(b.zoom) - math.log(a.zoom)))
        frame = self.view_base(center, zoom)
        size, content = self.renderer.size, self.layout.content_size
        shift = min(
            view_shift_px(a.center, a.zoom, center, zoom, size, content),
            view_shift_px(b.center, b.zoom, center, zoom, size, content),
        )
        shape = self.sprites.shape(None)
        pa = cursor_at(a, a.duration_s) or (0.5, 0.5)
        pb = cursor_at(b, 0.0) or pa
        pointer = self.to_px(pa[0] + s * (pb[0] - pa[0]), pa[1] + s * (pb[1] - pa[1]))
        return frame, pointer, shape, shift

    def _truth_row(
        self, t: float, vi: int | None, pointer: tuple[int, int] | None, shape: str, shift: float
    ) -> dict[str, Any]:
        cfg = self.cfg
        on_tissue = vi is None or self.views[vi].screen is None
        return {
            "t": round(t, 6),
            "cursor": list(pointer) if (vi is not None and pointer is not None and on_tissue) else None,
            "pointer": list(pointer) if pointer is not None else None,
            "shape": shape if pointer is not None else None,
            "pointer_box": sprite_box(self.sprites.sprite(shape), pointer, (cfg.width, cfg.height))
            if pointer is not None
            else None,
            "stable": vi is not None,
            "view": vi,
            "tissue": on_tissue,
            "shift_px": round(shift, 3),
        }


def encode_frames(video_path: Path, cfg: SyntheticConfig, painter: FramePainter) -> list[dict[str, Any]]:
    """Paint and encode every frame to H.264 (written atomically); returns the truth rows."""
    import av
    import cv2

    rate = painter.timeline.rate
    frames_truth = []
    with atomic_open(video_path, "wb") as fh:
        container = av.open(fh, "w", format="mp4")
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = cfg.width, cfg.height, "yuv420p"
        stream.time_base = 1 / rate
        stream.options = {"crf": str(cfg.crf), "preset": cfg.preset}
        stream.codec_context.thread_count = cfg.encoder_threads
        for i in range(painter.timeline.n_frames):
            frame, row = painter.paint(i)
            frames_truth.append(row)
            vf = av.VideoFrame.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            vf.pts = i
            vf.time_base = 1 / rate
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    return frames_truth


def tour_utterances(views: list[ViewSpec], starts: list[float]) -> list[dict[str, Any]]:
    """Every view's utterances on the video's clock, in time order."""
    utterances = []
    for s, v in zip(starts, views):
        for a, b, text in v.utterances:
            utterances.append({"start": round(s + a, 3), "end": round(s + b, 3), "text": text})
    utterances.sort(key=lambda u: u["start"])
    return utterances


def write_transcript(path: Path, utterances: list[dict[str, Any]]) -> None:
    """A Whisper-style transcript: segments with word timings."""
    segs_out = []
    for u in utterances:
        segs_out.append(
            {"start": u["start"], "end": u["end"], "text": u["text"], "words": _words(u["start"], u["end"], u["text"])}
        )
    transcript = {
        "text": " ".join(u["text"] for u in utterances),
        "segments": segs_out,
        "language": "en",
    }
    write_json(path, transcript)


def video_truth(
    cfg: SyntheticConfig,
    layout: Layout,
    views: list[ViewSpec],
    timeline: Timeline,
    frames_truth: list[dict[str, Any]],
    utterances: list[dict[str, Any]],
) -> dict[str, Any]:
    """``truth.json`` (see the module docstring)."""
    segments = [
        {"start": round(s, 6), "end": round(s + v.duration_s, 6), "view": i, "tissue": v.screen is None}
        for i, (s, v) in enumerate(zip(timeline.starts, views))
    ]
    return {
        "name": cfg.name,
        "width": cfg.width,
        "height": cfg.height,
        "fps": float(timeline.rate),
        "crf": cfg.crf,
        "cursor_style": cfg.cursor_style,
        "cursor_theme": cfg.cursor_theme,
        "cursor_size": cfg.cursor_size if cfg.cursor_theme is not None else None,
        "cursor_tint": list(cfg.cursor_tint) if cfg.cursor_theme is not None and cfg.cursor_tint else None,
        "content_box": list(layout.content_box),
        "webcam_box": list(layout.webcam_box) if layout.webcam_box else None,
        "duration": round(timeline.n_frames / float(timeline.rate), 6),
        "frames": frames_truth,
        "segments": segments,
        "utterances": utterances,
        "views": [_view_json(v) for v in views],
    }


def make_synthetic_video(out_dir: Path | str, config: SyntheticConfig | None = None) -> SyntheticVideo:
    """Render, encode and describe one synthetic video; see the module docstring."""
    cfg = config or SyntheticConfig()
    cfg.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    layout = make_layout(cfg)
    renderer = SlideRenderer(make_slide(load_source_image(cfg.source_image), cfg.slide_tiles))
    views = (
        cfg.views if cfg.views is not None else insert_cuts(random_tour(cfg, layout, renderer.size, rng), cfg.cuts, cfg)
    )
    timeline = Timeline.of(views, cfg)
    video_path = out_dir / f"{cfg.name}.mp4"
    frames_truth = encode_frames(video_path, cfg, FramePainter(cfg, layout, renderer, views, timeline, out_dir))
    utterances = tour_utterances(views, timeline.starts)
    transcript_path = out_dir / f"{cfg.name}.transcript.json"
    write_transcript(transcript_path, utterances)
    truth = video_truth(cfg, layout, views, timeline, frames_truth, utterances)
    truth_path = out_dir / f"{cfg.name}.truth.json"
    write_json(truth_path, truth, indent=None)
    return SyntheticVideo(video=video_path, transcript=transcript_path, truth_path=truth_path, truth=truth)


def _draw_strokes(frame: np.ndarray, view: ViewSpec, t_rel: float, to_px: Any) -> None:
    import cv2

    for stroke in view.strokes:
        if t_rel < stroke.start or len(stroke.points) < 2:
            continue
        frac = 1.0 if stroke.end <= stroke.start else min(1.0, (t_rel - stroke.start) / (stroke.end - stroke.start))
        n = max(2, round(frac * len(stroke.points)))
        pts = np.array([to_px(x, y) for x, y in stroke.points[:n]], np.int32)
        cv2.polylines(frame, [pts], False, stroke.color, stroke.thickness, cv2.LINE_AA)


def _save_clean_view(path: Path, rgb: np.ndarray) -> None:
    """A view's pointer-free render (viewer chrome and tissue; no webcam, strokes or pointer)."""
    import cv2

    from quilt_llava.files import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    atomic_write_bytes(path, png.tobytes())


def _view_json(v: ViewSpec) -> dict[str, Any]:
    d = asdict(v)
    return d
