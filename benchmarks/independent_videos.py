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

Its parts, each one concern: ``independent_tissue.py`` (slides), ``independent_pointers.py``
(cursor images and drawn pointers at sub-pixel positions), ``independent_screens.py`` (layout,
chrome, non-tissue screens), ``independent_hand.py`` (the mouse hand); this module holds the
configuration, the shots (``Director``), the drawing (``Painter``), encoding and the truth.

Truth per frame: time, view id, whether the view is still, whether it is tissue, the
pointer's hotspot in frame pixels (or none), its kind and category, whether it is over the
tissue area; per view: start, end, tissue flag and the tissue area's box (the content box).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from independent_hand import MOTIONS, Hand, min_jerk
from independent_pointers import CATEGORY, DRAWN, X11_ROLES, Sprite, composite, load_sprite
from independent_screens import (
    CHROMES,
    OVERVIEWS,
    PANELS,
    SCREENS,
    TOOLBARS,
    draw_chrome,
    make_layout,
    screen_image,
)
from independent_tissue import GLASS, TISSUES, make_slide
from quilt_llava.errors import ConfigError

MOVES = ("drag", "zoom", "pan", "cut", "fade")
CODECS = ("libx264", "mpeg4")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")
# the modules a render depends on (their source is part of a render's key)
PARTS = ("independent_videos", "independent_tissue", "independent_pointers", "independent_screens", "independent_hand")


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
        """What a render depends on: these settings and the source of the generator's modules."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        for part in PARTS:
            digest.update((Path(__file__).with_name(f"{part}.py")).read_bytes())
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
