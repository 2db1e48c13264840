"""Screens that are not tissue, rendered for synthetic videos and for the tissue model's corpus.

Narrated pathology videos cut to title and text slides, to the desktop, to a blank screen
and to the presenter's camera. Each function returns an (height, width, 3) uint8 RGB frame
drawn from a random generator, so a seed gives the same screen again. Fonts are the system's
DejaVu fonts when installed, else Pillow's own.
"""

from __future__ import annotations

import functools

import numpy as np

_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSerif-Bold.ttf")
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu")

_WORDS = (
    "tumour",
    "gland",
    "stroma",
    "nuclei",
    "grade",
    "invasion",
    "margin",
    "necrosis",
    "mitoses",
    "pattern",
    "diagnosis",
    "differential",
    "lecture",
    "case",
    "review",
    "staining",
    "membrane",
    "biopsy",
    "colon",
    "breast",
    "lymph",
    "node",
    "atypia",
    "architecture",
    "features",
    "summary",
    "objectives",
    "today",
)

THEMES = (  # (background, title, text)
    ((255, 255, 255), (20, 40, 110), (30, 30, 30)),
    ((250, 246, 232), (120, 20, 30), (40, 40, 40)),
    ((24, 44, 110), (255, 210, 80), (240, 240, 240)),
    ((18, 18, 20), (120, 200, 255), (225, 225, 225)),
    ((236, 242, 236), (20, 100, 60), (20, 20, 20)),
    ((120, 24, 40), (255, 255, 255), (250, 230, 230)),
)


@functools.lru_cache(maxsize=64)
def _font(index: int, size: int):
    from pathlib import Path

    from PIL import ImageFont

    name = _FONT_FILES[index % len(_FONT_FILES)]
    for folder in _FONT_DIRS:
        path = Path(folder) / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def _sentence(rng: np.random.Generator, lo: int, hi: int) -> str:
    words = [str(w) for w in rng.choice(_WORDS, size=int(rng.integers(lo, hi + 1)))]
    return " ".join(words).capitalize()


def text_slide(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A lecture slide: a plain or gradient background, a title, bullet points, sometimes a rule."""
    from PIL import Image, ImageDraw

    w, h = size
    bg, title_colour, text_colour = THEMES[int(rng.integers(len(THEMES)))]
    base = np.empty((h, w, 3), np.float32)
    base[:] = bg
    if rng.random() < 0.4:  # a gentle vertical gradient
        ramp = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None, None] * float(rng.uniform(6, 20))
        base = base + ramp
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    face = int(rng.integers(len(_FONT_FILES)))
    title_size = max(10, round(h * rng.uniform(0.06, 0.1)))
    x = round(w * rng.uniform(0.05, 0.1))
    y = round(h * rng.uniform(0.05, 0.12))
    draw.text((x, y), _sentence(rng, 2, 5), fill=title_colour, font=_font(face + 1, title_size))
    y += round(title_size * 1.6)
    if rng.random() < 0.5:
        draw.rectangle((x, y, w - x, y + max(2, h // 180)), fill=title_colour)
        y += round(title_size * 0.6)
    text_size = max(8, round(h * rng.uniform(0.035, 0.055)))
    while y < h - 2 * text_size:
        draw.ellipse((x, y + text_size // 3, x + text_size // 3, y + 2 * text_size // 3), fill=text_colour)
        draw.text((x + text_size, y), _sentence(rng, 3, 8), fill=text_colour, font=_font(face, text_size))
        y += round(text_size * rng.uniform(1.5, 2.2))
    return np.asarray(img)


def desktop(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A desktop: wallpaper, a task bar, icons and one to three windows with text."""
    import cv2
    from PIL import Image, ImageDraw

    w, h = size
    top = rng.integers(20, 200, 3).astype(np.float32)
    bottom = rng.integers(20, 200, 3).astype(np.float32)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    wall = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).copy()
    if rng.random() < 0.5:  # soft blobs, like a blurred photo wallpaper
        blobs = rng.normal(0, 40, (max(2, h // 64), max(2, w // 64), 3)).astype(np.float32)
        wall += cv2.resize(blobs, (w, h), interpolation=cv2.INTER_CUBIC)
    img = Image.fromarray(np.clip(wall, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    bar = max(12, h // 22)
    draw.rectangle((0, h - bar, w, h), fill=(32, 34, 40))
    for k in range(int(rng.integers(3, 9))):
        draw.rectangle(
            (bar // 4 + k * bar, h - bar + bar // 5, bar // 4 + k * bar + 3 * bar // 4, h - bar // 5),
            fill=tuple(int(c) for c in rng.integers(60, 250, 3)),
        )
    icon = max(16, h // 16)
    for k in range(int(rng.integers(2, 8))):
        y0 = icon // 2 + k * icon * 3 // 2
        draw.rectangle((icon // 2, y0, 3 * icon // 2, y0 + icon), fill=tuple(int(c) for c in rng.integers(80, 255, 3)))
    font = _font(int(rng.integers(len(_FONT_FILES))), max(8, h // 45))
    for _ in range(int(rng.integers(1, 4))):
        ww, wh = int(w * rng.uniform(0.35, 0.7)), int(h * rng.uniform(0.35, 0.7))
        x0, y0 = int(rng.integers(2 * icon, max(2 * icon + 1, w - ww))), int(rng.integers(0, max(1, h - bar - wh)))
        draw.rectangle((x0, y0, x0 + ww, y0 + wh), fill=(246, 246, 246), outline=(150, 150, 150))
        draw.rectangle((x0, y0, x0 + ww, y0 + bar), fill=tuple(int(c) for c in rng.integers(40, 120, 3)))
        y = y0 + bar + bar // 2
        while y < y0 + wh - bar:
            draw.text((x0 + bar // 2, y), _sentence(rng, 3, 9), fill=(40, 40, 40), font=font)
            y += bar
    return np.asarray(img)


def blank(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A blank screen: black, white, grey or a colour, sometimes a gradient."""
    w, h = size
    colour = rng.choice([0, 255, 128, -1])
    c = rng.integers(0, 256, 3) if colour < 0 else np.full(3, colour)
    frame = np.empty((h, w, 3), np.float32)
    frame[:] = c
    if rng.random() < 0.3:
        frame += np.linspace(-25.0, 25.0, w, dtype=np.float32)[None, :, None]
    return np.clip(frame, 0, 255).astype(np.uint8)


def presenter(
    size: tuple[int, int], photo: np.ndarray, zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """A camera view filling the frame: ``photo`` (RGB) cropped to the frame's aspect (its top
    kept: that is where a presenter's face is), ``zoom`` times closer, moved by ``shift``
    (fractions of the frame)."""
    import cv2

    w, h = size
    ph, pw = photo.shape[:2]
    scale = max(w / pw, h / ph) * zoom
    m = np.float32([[scale, 0, (w - pw * scale) / 2 + shift[0] * w], [0, scale, shift[1] * h]])
    return cv2.warpAffine(
        np.ascontiguousarray(photo[..., :3]), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
