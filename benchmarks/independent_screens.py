"""The screen around the tissue for the independent corpus (``independent_videos.py``): where the
viewer puts the tissue area, its chrome (window frame, toolbars, side panel), and the full-frame
screens that are not tissue (a text slide, a camera, a desktop, a blank screen).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from independent_videos import VideoConfig

CHROMES = {  # panel, bar, text, accent
    "light": ((236, 236, 238), (214, 215, 220), (40, 40, 46), (60, 120, 200)),
    "dark": ((38, 40, 46), (28, 29, 33), (220, 222, 228), (250, 170, 40)),
    "blue": ((52, 78, 118), (34, 56, 92), (235, 240, 250), (120, 220, 160)),
}
TOOLBARS = ("none", "top", "bottom")
PANELS = ("none", "left", "right")
OVERVIEWS = ("none", "panel", "overlay")
SCREENS = ("text", "camera", "desktop", "blank")
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
