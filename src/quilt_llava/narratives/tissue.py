"""Is a view tissue? A cheap colour and texture rule for stained tissue seen through a slide viewer.

Narrated pathology videos cut away from the slide: to title and text slides, to the
presenter's camera, to the desktop, to a blank screen. Those views are not tissue and must
not become rows. :func:`tissue_score` looks at one view image (the content-box crop of a
still view, any size) reduced to 256 px and measures, over its foreground (what is neither
white glass nor black):

- ``stain_texture``: the share that is textured (local spread of the luma over 3 grey
  levels at full contrast; see below) *and* has a stain hue (haematoxylin blue-purple, eosin pink, DAB brown: from blue
  through magenta and red to orange in CIELAB). Tissue is textured in stain colours nearly
  everywhere; slides, desktops and screens are flat or textured in grey;
- ``textured_area``: the share of 16 px blocks (of the foreground) that are mostly textured.
  Tissue is textured all over; a face, a wall, a shirt are smooth in large parts;
- ``flat``: the share with no texture at all (slide and desktop backgrounds, windows);
- ``grey_texture``: the share of textured pixels without colour (text, grey-scale photos);
- ``off_stain``: the share of coloured pixels in hues stains never have (green, yellow, cyan);
- ``foreground``: how much of the view is not white or black (a blank screen has none; a
  zoomed-out slide shows white glass around the tissue, which is fine).

Texture is relative to the view's own contrast: a faded stain or a washed-out scan has weaker
texture in proportion to its weaker contrast, so the spreads that count as texture and as flat are
scaled by the foreground's luma range (5th to 95th percentile) over that of stained tissue at full
contrast (``contrast_reference``), down to ``min_contrast`` of their value and never up. A
washed-out text slide gains nothing from it (its flat parts stay flat, its text stays grey); a
view of pale tissue at 35-60% of the contrast counts as tissue. The luma spread of the
foreground's middle half (25th to 75th percentile, over ``middle_reference``) is a second
measure of the contrast, and the lower one counts: smooth stroma between sparse dark nuclei
(a drawn tissue, a high zoom, a low bit rate) has the full range of stained tissue from its
nuclei, but most of it is as faint as pale tissue (a middle spread of 12-17 grey levels against
40-75 for ``ihc.png``), and its fibres were flat at full contrast's 3 grey levels.

Each feature passes through a linear ramp between two limits (:class:`TissueConfig`) and the
score is their product, in [0, 1]. The limits were set on crops of ``ihc.png`` (the left
half; its pale H&E re-staining for the contrast scaling), rendered text slides and
scikit-image's astronaut (a person) only;
``benchmarks/tissue_bench.py`` reports accuracy on everything else (the right half, an H&E
re-staining, tissue on glass, pale, faded and glass-rich H&E, desktops, blank screens and
nineteen other photos). What it
does not handle (see the README): greyscale images (unstained, electron micrographs,
fluorescence) are not tissue to it, and close photos of brown, orange or pink textured things
(fur, food, wood) can pass as tissue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = ("stain_texture", "textured_area", "flat", "grey_texture", "off_stain", "foreground")
BLOCK = 16  # px of the reduced view per block of ``textured_area``


@dataclass
class TissueConfig:
    threshold: float = 0.5  # a view whose tissue score is below this is not tissue
    stain_texture: tuple[float, float] = (0.2, 0.45)  # ramp up: score 0 below the first, full above the second
    flat: tuple[float, float] = (0.25, 0.45)  # ramp down
    grey_texture: tuple[float, float] = (0.35, 0.6)  # ramp down
    off_stain: tuple[float, float] = (0.35, 0.6)  # ramp down
    foreground: tuple[float, float] = (0.02, 0.08)  # ramp up (a zoomed-out view: tissue on 8% of it counts fully)
    textured_area: tuple[float, float] = (0.6, 0.8)  # ramp up
    side: int = 256  # the view is reduced to this many px on its longer side
    # Texture is measured relative to the view's own contrast: the local spread that counts as
    # texture (and the one under which a pixel is flat) is scaled by the foreground's luma range
    # (5th to 95th percentile) over ``contrast_reference`` or by the spread of its middle half over
    # ``middle_reference``, the lower, never up, and down to ``min_contrast`` at most (a faded
    # stain, a pale scan, smooth stroma between sparse nuclei: texture as much weaker as contrast).
    texture_spread: float = 3.0  # grey levels of local spread that count as texture at full contrast
    flat_spread: float = 1.5  # grey levels of local spread under which a pixel is flat at full contrast
    contrast_reference: float = 70.0  # luma range (grey levels) of stained tissue at full contrast
    middle_reference: float = 30.0  # luma spread of its middle half (25th to 75th percentile) at full contrast
    min_contrast: float = 0.5  # the smallest scale of the spreads above


def _reduced(rgb: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = side / max(h, w)
    if s >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def tissue_features(rgb: np.ndarray, config: TissueConfig | None = None) -> dict[str, float]:
    """The rule's features (see the module docstring) of an (H, W, 3) uint8 RGB view image."""
    import cv2

    cfg = config or TissueConfig()
    side = cfg.side

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    small = _reduced(np.ascontiguousarray(rgb, dtype=np.uint8), side)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    lightness = lab[..., 0] * (100 / 255)
    a, b = lab[..., 1] - 128, lab[..., 2] - 128
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a))  # 0: red/magenta, 90: yellow, 180: green, -90: blue
    foreground = ~((lightness > 88) & (chroma < 8)) & (lightness >= 15)
    g = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(g, (3, 3))
    spread = np.sqrt(np.maximum(cv2.blur(g * g, (3, 3)) - mean * mean, 0.0))
    scale = _contrast_scale(g[foreground], cfg)
    textured = (spread > cfg.texture_spread * scale) & foreground
    stain = (chroma > 4) & (hue > -130) & (hue < 75)
    coloured = (chroma > 8) & foreground
    n_fg = max(1, int(foreground.sum()))
    rows, cols = g.shape[0] // BLOCK, g.shape[1] // BLOCK

    def blocks(mask: np.ndarray) -> np.ndarray:
        return mask[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).mean(axis=(1, 3))

    fg_blocks = blocks(foreground) > 0.5
    textured_area = float((blocks(textured)[fg_blocks] > 0.6).mean()) if fg_blocks.any() else 0.0
    return {
        "textured_area": textured_area,
        "stain_texture": float((textured & stain).sum() / n_fg),
        "flat": float(((spread < cfg.flat_spread * scale) & foreground).sum() / n_fg),
        "grey_texture": float((textured & (chroma <= 4)).sum() / max(1, int(textured.sum()))),
        "off_stain": float((coloured & ~stain).sum() / max(1, int(coloured.sum()))),
        "foreground": float(foreground.mean()),
    }


def _contrast_scale(luma: np.ndarray, cfg: TissueConfig) -> float:
    """How much weaker than full contrast the foreground's luma is, in [min_contrast, 1]: its range
    (5th to 95th percentile) or the spread of its middle half, whichever is the weaker."""
    if luma.size < 16:
        return 1.0
    lo, q1, q3, hi = np.percentile(luma, [5, 25, 75, 95])
    contrast = min((hi - lo) / cfg.contrast_reference, (q3 - q1) / cfg.middle_reference)
    return float(min(1.0, max(cfg.min_contrast, contrast)))


def _ramp(value: float, lo: float, hi: float) -> float:
    return float(min(1.0, max(0.0, (value - lo) / (hi - lo))))


def score_features(features: dict[str, float], config: TissueConfig | None = None) -> float:
    """The tissue score of :func:`tissue_features`' output."""
    cfg = config or TissueConfig()
    return (
        _ramp(features["stain_texture"], *cfg.stain_texture)
        * _ramp(features["foreground"], *cfg.foreground)
        * _ramp(features["textured_area"], *cfg.textured_area)
        * (1 - _ramp(features["flat"], *cfg.flat))
        * (1 - _ramp(features["grey_texture"], *cfg.grey_texture))
        * (1 - _ramp(features["off_stain"], *cfg.off_stain))
    )


def tissue_score(rgb: np.ndarray, config: TissueConfig | None = None) -> float:
    """How much a view image looks like stained tissue, in [0, 1] (see the module docstring)."""
    cfg = config or TissueConfig()
    return score_features(tissue_features(rgb, cfg), cfg)
