"""Tissue for the independent corpus (``independent_videos.py``): slides larger than the screen.

``ihc.png`` with its DAB stain turned into eosin (an H&E look), a darker and a paler copy of it,
a procedurally drawn tissue (stroma fibres, nuclei, gland lumens over empty glass) and grey-scale
``cell.png``; the small images are mirrored into a mosaic and upscaled to the slide's size.
"""

from __future__ import annotations

import math

import numpy as np

TISSUES = ("he", "dark", "pale", "procedural", "gray")
GLASS = (242, 240, 244)  # an empty slide, and what lies beyond its edges


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
