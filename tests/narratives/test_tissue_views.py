"""Which still views the extractor takes for tissue: a view is judged in its own content box and,
when that fails, in the tissue area of the tissue views before it.

The videos are drawn here (a viewer with a toolbar over the right half of ``ihc.png`` as H&E; a
pale copy of it torn into fragments on glass; a text slide and a photo shown in the viewer's
place) and analysed from memory (``ArraySource``): no generator of the project is involved."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from quilt_llava.errors import ConfigError
from quilt_llava.narratives.pipeline import ExtractConfig, analyse
from quilt_llava.narratives.tissue import TissueConfig, tissue_score
from quilt_llava.narratives.video import ArraySource

cv2 = pytest.importorskip("cv2")
data = pytest.importorskip("skimage.data")

W, H, TOOLBAR = 640, 360, 36
FPS = 12.0
STILL = 45  # frames per view: 3.75 s, over the 3 s a segment needs


def _viewer(content: np.ndarray) -> np.ndarray:
    """``content`` filling a viewer window below a grey toolbar with buttons."""
    frame = np.full((H, W, 3), (200, 203, 210), np.uint8)
    for i in range(8):
        cv2.rectangle(frame, (10 + 40 * i, 8), (34 + 40 * i, 28), (90, 95, 110), -1)
    frame[TOOLBAR:] = cv2.resize(content, (W, H - TOOLBAR), interpolation=cv2.INTER_AREA)
    return frame


@functools.cache
def _views() -> dict[str, np.ndarray]:
    from PIL import Image, ImageDraw, ImageFont
    from skimage.color import hed2rgb, rgb2hed

    ihc = data.immunohistochemistry()[..., :3]
    right = ihc[:, ihc.shape[1] // 2 :]
    hed = rgb2hed(right)
    stains = np.zeros_like(hed)
    stains[..., 0], stains[..., 1] = hed[..., 0], hed[..., 2] + 0.01
    he = (np.clip(hed2rgb(stains), 0, 1) * 255).astype(np.uint8)
    # Pale fragments: 40% of the contrast, half of the view bare glass in smooth blobs.
    pale = cv2.resize((255 - 0.4 * (255 - he[200:].astype(np.float32))).astype(np.uint8), (W, H - TOOLBAR))
    noise = cv2.GaussianBlur(np.random.default_rng(3).standard_normal((H - TOOLBAR, W)).astype(np.float32), (0, 0), 40)
    pale[noise < np.quantile(noise, 0.5)] = 244
    slide = Image.new("RGB", (W, H - TOOLBAR), (250, 250, 250))
    draw = ImageDraw.Draw(slide)
    for i, line in enumerate(["Case 7", "a biopsy of the skin", "what to look at", "summary"]):
        draw.text((40, 30 + 60 * i), line, fill=(30, 30, 30), font=ImageFont.load_default(30))
    return {
        "tissue": _viewer(he[:300]),
        "pale fragments": _viewer(pale),
        "text slide": _viewer(np.asarray(slide)),
        "photo": _viewer(data.astronaut()),
    }


def _analyse(names: list[str]):
    """Each view still for ``STILL`` frames, then three frames panning away (a move ends it)."""
    frames = []
    for name in names:
        view = _views()[name]
        frames += [view] * STILL + [np.roll(view, 5 * j, axis=1) for j in range(1, 4)]
    segments = analyse(ArraySource(np.stack(frames), fps=FPS), ExtractConfig()).segments
    assert len(segments) == len(names), [(s.start, s.end) for s in segments]
    return segments


def test_a_view_whose_own_box_fails_is_judged_in_the_tissue_area_seen_before():
    segments = _analyse(["tissue", "pale fragments", "text slide", "photo"])
    assert [s.is_tissue for s in segments] == [True, True, False, False]
    assert segments[1].tissue >= TissueConfig().threshold
    assert max(s.tissue for s in segments[2:]) < TissueConfig().threshold


def test_without_a_tissue_view_before_it_the_view_is_judged_in_its_own_box_only():
    """The stated limit: the tissue area is known from earlier views only (one pass)."""
    segments = _analyse(["pale fragments", "text slide"])
    assert [s.is_tissue for s in segments] == [False, False]
    # ... though the same image inside the viewer's tissue area is tissue to the rule:
    assert tissue_score(_views()["pale fragments"][TOOLBAR:]) >= TissueConfig().threshold


def test_contrast_settings_are_checked():
    cfg = ExtractConfig(tissue=TissueConfig(min_contrast=0.0, contrast_reference=-1.0, middle_reference=0.0))
    with pytest.raises(ConfigError) as exc:
        cfg.validate()
    for name in ("min_contrast", "contrast_reference", "middle_reference"):
        assert f"tissue.{name}" in str(exc.value)
