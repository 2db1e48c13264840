"""The grey rule (``TissueConfig(grey=True)``): views without colour judged by texture alone.

Grey-scale tissue (a grey scan, a monochrome camera, an electron micrograph) has no stain colour,
which the colour rule relies on. With ``grey=True`` a colourless view is kept when it is textured
nearly everywhere, almost nothing in it is flat and its edges are as steep, for its contrast, as
tissue's. Tissue here: the right half of ``ihc.png`` in grey (its luma);
not tissue: slides and a screenshot drawn here with Pillow and scikit-image's grey photos and
scans, all in grey. The rule stays off by default: a grey view is then never tissue."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from quilt_llava.narratives.tissue import TissueConfig, tissue_features, tissue_score

from .test_tissue import _he, _ihc_right, _jpeg, _not_tissue_views, _tissue_views

cv2 = pytest.importorskip("cv2")
data = pytest.importorskip("skimage.data")

GREY = TissueConfig(grey=True)
THRESHOLD = GREY.threshold


def _grey(rgb: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return np.repeat(g[..., None], 3, axis=2)


def _zoom(rgb: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(rgb, None, fx=factor, fy=factor)


@functools.cache
def _grey_tissue_views() -> dict[str, np.ndarray]:
    right = _ihc_right()
    h, w = right.shape[:2]
    return {
        "ihc right half in grey": _grey(right),
        "ihc right in grey, 1.5x, JPEG 40": _jpeg(_grey(_zoom(right[: h // 2, : w // 2], 1.5)), 40),
        "H&E in grey, 720p": cv2.resize(_grey(_he(right)), (1280, 720)),
    }


@functools.cache
def _grey_not_tissue_views() -> dict[str, np.ndarray]:
    views = {name: _grey(view) for name, view in _not_tissue_views().items()}
    for name in ("cell", "clock", "brick"):
        img = getattr(data, name)()
        views[f"photo {name}"] = _grey(np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3])
    views["grey screen with noise"] = _jpeg(
        np.clip(128 + 3 * np.random.default_rng(0).standard_normal((360, 640, 3)), 0, 255).astype(np.uint8), 40
    )
    return views


@pytest.mark.parametrize("name", list(_grey_tissue_views()))
def test_grey_tissue_is_tissue_to_the_grey_rule(name):
    view = _grey_tissue_views()[name]
    assert tissue_score(view, GREY) >= THRESHOLD
    assert tissue_score(view) < THRESHOLD  # off by default: the colour rule alone


@pytest.mark.parametrize("name", list(_grey_not_tissue_views()))
def test_grey_slides_documents_screens_and_photos_stay_not_tissue(name):
    assert tissue_score(_grey_not_tissue_views()[name], GREY) < THRESHOLD


@pytest.mark.parametrize("name", ["ihc right half", "H&E re-stained", "on white glass (9%)"])
def test_coloured_views_score_as_before(name):
    """The grey rule judges views without colour only: a coloured view's score is the colour rule's."""
    view = _tissue_views()[name]
    assert tissue_score(view, GREY) == tissue_score(view)
    photo = _not_tissue_views()["photo coffee"]
    assert tissue_score(photo, GREY) == tissue_score(photo)


def test_a_faint_grey_field_is_not_tissue():
    """A view whose whole luma range is a few grey levels (an empty background, a blurred field)
    has no texture to judge, whatever its noise: it stays out."""
    rng = np.random.default_rng(1)
    field = cv2.GaussianBlur(rng.standard_normal((360, 480)).astype(np.float32), (0, 0), 6)
    view = np.clip(100 + 3 * field / field.std(), 0, 255).astype(np.uint8)
    view = _jpeg(np.repeat(view[..., None], 3, axis=2), 30)
    features = tissue_features(view, GREY)
    assert features["coloured"] == 0.0
    assert tissue_score(view, GREY) < THRESHOLD
