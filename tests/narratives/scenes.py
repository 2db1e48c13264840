"""Small still scenes for the pointer locator's parts: a smooth tissue-like texture and a
template pasted on it with its hotspot at a given tip."""

from __future__ import annotations

import numpy as np


def texture(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """Smooth grey tissue-like texture (no arrow-like structure)."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h // 8, w // 8), dtype=np.uint8)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)


def with_pointer(luma: np.ndarray, tip: tuple[int, int], t) -> np.ndarray:
    """``luma`` with template ``t`` pasted (its mask) so that its hotspot lies at ``tip``."""
    out = luma.copy()
    th, tw = t.image.shape
    x0, y0 = tip[0] - t.hotspot[0], tip[1] - t.hotspot[1]
    region = out[y0 : y0 + th, x0 : x0 + tw]
    region[t.mask > 0] = t.image[t.mask > 0]
    return out


def with_cursor(luma: np.ndarray, theme: str, shape: str, size: int, tip: tuple[int, int]) -> np.ndarray:
    """``luma`` with an installed X11 cursor theme's ``shape`` cursor at ``size`` px drawn (alpha
    blended, as the generator draws it) with its declared hotspot at ``tip``."""
    from quilt_llava.narratives.synthetic import theme_sprite

    s = theme_sprite(theme, shape, size)
    grey = s.rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    alpha = s.alpha[..., 0]
    out = luma.astype(np.float32)
    h, w = grey.shape
    x0, y0 = tip[0] - s.hotspot[0], tip[1] - s.hotspot[1]
    out[y0 : y0 + h, x0 : x0 + w] = (1 - alpha) * out[y0 : y0 + h, x0 : x0 + w] + alpha * grey
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def located(loc, frames) -> dict[int, tuple[float, float]]:
    """Every hit of the pointer locator ``loc`` fed ``frames``, each a luma image or a pair (luma,
    the view moving); motion is the difference of the quarter-size frames on still ones."""
    import cv2

    from quilt_llava.narratives.cursor import AnalysedFrame

    hits, prev = {}, None
    for i, frame in enumerate(frames):
        luma, moving = frame if isinstance(frame, tuple) else (frame, False)
        h, w = luma.shape
        small = cv2.resize(luma, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        motion = None if prev is None or moving else cv2.absdiff(small, prev)
        prev = small
        for hit in loc.process(AnalysedFrame(i, i / 25, luma, motion, moving)):
            hits[hit.index] = (hit.x, hit.y)
    for hit in loc.finish():
        hits[hit.index] = (hit.x, hit.y)
    return hits
