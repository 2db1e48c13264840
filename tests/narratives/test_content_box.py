"""The content box of one still view, judged against the view itself: faint (pale) texture and
empty glass splitting the view, beside chrome that must stay out (a toolbar of buttons, a
thin textured bar beyond a flat gap). Analysis-sized luma frames drawn here."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives.content import ContentConfig, ContentStats

cv2 = pytest.importorskip("cv2")

H, W, SCALE = 180, 320, 4  # an analysis frame of a 1280x720 video
SIZE = (W * SCALE, H * SCALE)
TOP = 12  # toolbar rows


def _texture(h: int, w: int, contrast: float, seed: int = 0) -> np.ndarray:
    """Blurred noise around mid-grey: stained tissue's texture at ``contrast`` (1: full)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.5)
    return np.clip(170 + contrast * 60 * noise / noise.std(), 0, 255).astype(np.uint8)


def _viewer(view: np.ndarray) -> np.ndarray:
    """``view`` below a toolbar with buttons (its rows are a third textured, as a real one's)."""
    frame = np.full((H, W), 210, np.uint8)
    for x in range(6, W - 20, 40):
        frame[3:8, x : x + 8] = 90
    frame[TOP:] = view
    return frame


def _box(frame: np.ndarray, config: ContentConfig | None = None) -> tuple[int, int, int, int]:
    stats = ContentStats(config)
    stats.add(frame)
    return stats.box(SCALE, SIZE)


def _near(box: tuple[int, int, int, int], truth: tuple[int, int, int, int], px: int = 12) -> bool:
    return all(abs(a - b) <= px for a, b in zip(box, truth))


VIEW = (0, TOP * SCALE, W * SCALE, H * SCALE)


def test_pale_texture_is_texture_relative_to_the_view():
    """Tissue at a fifth of full contrast: its local spread is under the absolute 3 grey levels in
    much of it, so the box fell apart; measured against the view's own strong texture it holds."""
    frame = _viewer(_texture(H - TOP, W, 0.06))
    assert _near(_box(frame), VIEW)
    absolute = ContentConfig(relative_texture=0.0, min_texture_threshold=3.0)  # the rule before
    assert not _near(_box(frame, absolute), VIEW)


def test_flat_screens_stay_flat():
    """A flat screen under compression noise has no strong texture: nothing of it becomes texture."""
    rng = np.random.default_rng(1)
    blank = np.clip(200 + rng.normal(0, 0.3, (H, W)), 0, 255).astype(np.uint8)
    stats = ContentStats()
    stats.add(blank)
    assert not stats.content_map().any()
    assert stats.box(SCALE, SIZE) == (0, 0, *SIZE)


def test_empty_glass_across_the_view_does_not_split_its_box():
    """A band of glass (a third of the width, a few fragments in it) splits the view's columns
    into two long runs: both belong to the box."""
    view = _texture(H - TOP, W, 1.0)
    view[:, 110:210] = 242
    view[40:60, 140:170] = _texture(20, 30, 1.0, seed=2)  # a fragment on the glass
    box = _box(_viewer(view))
    assert _near(box, VIEW)
    longest_only = ContentConfig(join_run=1.0)  # no run joins: the longest one alone, as before
    assert not _near(_box(_viewer(view), longest_only), VIEW)


def test_a_textured_bar_beyond_a_flat_gap_stays_out():
    """A status bar with dense text (every row of it content) below a flat gap is shorter than a
    tenth of the frame: it does not join the view's run."""
    frame = _viewer(_texture(H - TOP, W, 1.0))
    frame[150:] = 210  # a flat gap, then a bar of 'text'
    frame[160:172] = _texture(12, W, 1.0, seed=3)
    box = _box(frame)
    assert _near(box, (0, TOP * SCALE, W * SCALE, 150 * SCALE))


def test_a_half_textured_side_panel_beside_the_view_stays_out():
    """A side panel whose columns are just over half content (an overview thumbnail on top, a
    list of text below) right beside the view: the box ends where the view's full columns end."""
    frame = _viewer(_texture(H - TOP, W, 1.0))
    panel = W - 40
    frame[TOP:, panel:] = 40
    frame[TOP : TOP + 67, panel + 4 : W - 4] = _texture(67, 32, 1.0, seed=4)  # the thumbnail
    for y in range(TOP + 80, H - 4, 24):  # lines of text
        frame[y, panel + 4 : W - 6 : 3] = 200
    box = _box(frame)
    assert _near(box, (0, TOP * SCALE, panel * SCALE, H * SCALE))
    no_trim = ContentConfig(edge_fraction=0.0)  # the ends of the run kept, as before
    assert not _near(_box(frame, no_trim), (0, TOP * SCALE, panel * SCALE, H * SCALE))


def test_chrome_that_follows_the_view_stays_out_of_the_merged_tissue_area():
    """An overview thumbnail in a side panel, shaded where the view is: it changes with every pan
    (from one view to the next, as the tissue does) but not within a view. The tissue area merged
    over views holds what each view changed *within* it, so the panel stays out."""
    panel = 60
    merged = ContentStats()
    for k in range(3):
        frame = np.full((H, W), 60, np.uint8)
        frame[:, panel:] = _texture(H, W - panel, 1.0, seed=10 + k)
        frame[6:174, 4:46] = 100 + 40 * k  # a tall thumbnail, shaded where the view is: another grey in each view
        view = ContentStats()
        for _ in range(3):
            view.add(frame)
        merged.merge(view)
    assert _near(merged.box(SCALE, SIZE), (panel * SCALE, 0, W * SCALE, H * SCALE))


def test_a_box_edge_on_the_frame_border_stays_beside_an_overlay():
    """An overview overlay in the view's top-right corner (a bright frame around a thumbnail) is the
    strongest step near the frame's right border, but it crosses a part of the box's rows only:
    the right edge stays on the border. A chrome border along the whole side still snaps it."""
    from quilt_llava.narratives.content import refine_edges

    rng = np.random.default_rng(5)
    h, w, top = 720, 1280, 40
    image = np.full((h, w), 50, np.uint8)
    image[top:] = cv2.GaussianBlur(rng.integers(90, 200, (h - top, w), dtype=np.uint8), (0, 0), 3)
    image[60:240, 1040:1268] = 235  # the overlay's frame...
    image[64:236, 1044:1264] = 120  # ... around its thumbnail
    assert refine_edges(image, (0, top, w, h), search=16) == (0, top, w, h)
    image[top:, w - 10 :] = 30  # a dark window border along the whole right side
    assert refine_edges(image, (0, top, w, h), search=16)[2] == w - 10
