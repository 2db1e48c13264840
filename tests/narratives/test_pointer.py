"""The pointer learned from the video: X11 cursor files, the hotspot of an unknown shape, and
the locator on real cursor themes (shape changes, a pointer that never moves, HiDPI sizes, a
theme held out of all tuning)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from quilt_llava.errors import ConfigError, InputError
from quilt_llava.narratives.hotspot import decide_hotspot
from quilt_llava.narratives.xcursor import installed_themes, pick_image, read_xcursor

cv2 = pytest.importorskip("cv2")

THEMES = installed_themes()
needs_themes = pytest.mark.skipif(
    not {"DMZ-Black", "Adwaita", "whiteglass"} <= set(THEMES),
    reason="cursor themes missing: run scripts/install_cursor_themes.sh (make test does)",
)


# --------------------------------------------------------------------------- X11 cursor files


def _xcursor_bytes(images: list[tuple[int, int, int, int, int, np.ndarray]]) -> bytes:
    """An X11 cursor file written from the format's description: (nominal, w, h, xhot, yhot,
    ARGB words premultiplied) per image."""
    header = struct.pack("<4sIII", b"Xcur", 16, 0x10000, len(images))
    toc, chunks = b"", b""
    pos = 16 + 12 * len(images)
    for nominal, w, h, xhot, yhot, argb in images:
        toc += struct.pack("<III", 0xFFFD0002, nominal, pos)
        chunk = struct.pack("<9I", 36, 0xFFFD0002, nominal, 1, w, h, xhot, yhot, 0) + argb.astype("<u4").tobytes()
        chunks += chunk
        pos += len(chunk)
    return header + toc + chunks


def test_xcursor_reader_sizes_hotspots_and_straight_alpha(tmp_path: Path) -> None:
    # 24 px: opaque red top row, half-transparent white (premultiplied 0x80808080) elsewhere.
    big = np.full((24, 24), 0x80808080, np.uint32)
    big[0] = 0xFFFF0000
    small = np.zeros((12, 12), np.uint32)
    small[3, 4] = 0xFF00FF00
    path = tmp_path / "left_ptr"
    path.write_bytes(_xcursor_bytes([(24, 24, 24, 5, 6, big), (12, 12, 12, 1, 2, small)]))
    images = read_xcursor(path)
    assert [im.nominal for im in images] == [12, 24]
    assert images[0].hotspot == (1, 2) and images[1].hotspot == (5, 6)
    rgba = images[1].rgba
    assert rgba[0, 0].tolist() == [255, 0, 0, 255]
    assert rgba[5, 5].tolist() == [255, 255, 255, 128]  # 0x80 premultiplied by 0x80/0xFF is white
    assert images[0].rgba[3, 4].tolist() == [0, 255, 0, 255] and images[0].rgba[0, 0, 3] == 0
    assert pick_image(images, 20).nominal == 24 and pick_image(images, 16).nominal == 12


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"GIF89a", "no 'Xcur' magic"),
        (struct.pack("<4sIII", b"Xcur", 16, 1, 50), "truncated"),
        (struct.pack("<4sIII", b"Xcur", 16, 1, 0), "no image"),
    ],
)
def test_xcursor_bad_file_names_it(tmp_path: Path, data: bytes, needle: str) -> None:
    path = tmp_path / "broken"
    path.write_bytes(data)
    with pytest.raises(InputError) as exc:
        read_xcursor(path)
    assert "broken" in str(exc.value) and needle in str(exc.value)


# --------------------------------------------------------------------------- hotspot of an unknown shape


def _polygon_mask(points: list[tuple[float, float]], size: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    cv2.fillPoly(mask, [np.round(np.array(points)).astype(np.int32)], 255)
    return mask


def test_hotspot_of_drawn_shapes() -> None:
    """Shapes drawn here (not from any theme): where each points is known by construction."""
    arrow = _polygon_mask([(3, 2), (3, 24), (8, 19), (12, 27), (15, 26), (11, 18), (18, 18)], (32, 24))
    x, y = decide_hotspot(arrow)
    assert abs(x - 3) <= 2 and abs(y - 2) <= 2  # the tip
    finger = np.zeros((30, 22), np.uint8)
    finger[2:16, 5:9] = 255  # a finger pointing up over a palm
    finger[14:28, 3:20] = 255
    x, y = decide_hotspot(finger)
    assert 4 <= x <= 9 and y <= 5  # the fingertip
    cross = np.zeros((25, 25), np.uint8)
    cross[11:14, 2:23] = 255
    cross[2:23, 11:14] = 255
    cross[10:15, 10:15] = 0  # a gapped crosshair
    assert decide_hotspot(cross) == (12, 12)
    ring = cv2.circle(np.zeros((21, 21), np.uint8), (10, 10), 7, 255, 2)
    assert decide_hotspot(ring) == (10, 10)
    # A crosshair as a learner keeps it from a video: the horizontal arm 8 px thick, the
    # vertical 6, a corner of one end lost. Mirrored or turned it overlaps itself by 0.8 only
    # about a point a pixel off its box's middle; still its centre, not an arm's end.
    learned = np.zeros((29, 28), np.uint8)
    learned[11:19, 1:27] = 255
    learned[:, 10:16] = 255
    learned[0:2, 10:12] = 0
    x, y = decide_hotspot(learned)
    assert abs(x - 13) <= 1 and abs(y - 14) <= 1, (x, y)


def _glowing_dot(size: int = 13, centre: tuple[float, float] = (6.0, 6.0)) -> np.ndarray:
    """Luma of a round pointer drawn here: a bright core in a darker glow, over pale tissue."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(xx - centre[0], yy - centre[1])
    return np.clip(160 + 60 * np.exp(-((r / 1.6) ** 2)) - 45 * np.exp(-(((r - 3.5) / 1.5) ** 2)), 0, 255).astype(
        np.uint8
    )


def test_a_round_pointer_with_a_ragged_mask_points_at_its_centre() -> None:
    """A dot whose mask lost a different piece of its soft edge at each side (cut where it
    differed from the frames before) is not symmetric as a mask, and its sharpest extreme is a
    corner of the cut; the luma it shows is symmetric about its centre, where it points."""
    image = _glowing_dot()
    mask = np.zeros((13, 13), np.uint8)
    cv2.circle(mask, (6, 6), 6, 255, -1)
    mask[:4, 8:] = 0  # the upper right lost to the tissue beside it
    mask[9:, :5] = 0  # and the lower left
    mask[5:8, 0] = 255
    assert decide_hotspot(mask) != (6, 6)  # as a mask alone it has a tip
    x, y = decide_hotspot(mask, image=image)
    assert abs(x - 6) <= 1 and abs(y - 6) <= 1, (x, y)


def test_an_arrow_with_its_luma_still_points_with_its_tip() -> None:
    from quilt_llava.narratives.templates import make_templates

    for t in make_templates((0.6, 1.0, 1.6), 720):
        image = np.where(t.mask > 0, t.image, 150).astype(np.uint8)
        assert decide_hotspot(t.mask > 0, image=image) == pytest.approx(t.hotspot, abs=2)


# An I-beam as the learner kept it from a 24 px drawn I-beam at CRF 23 (independent corpus): the
# stem's two outline lines, serifs of different widths and raggedness at the two ends.
LEARNED_IBEAM = """
..#######.#
..#########
..########.
.###.######
.....#.....
.....#.....
.....#.#...
.....#.#...
.....#.#...
.....#.#...
.....#.#...
.....#.#...
.....#.#...
.....#.#...
.....#.#...
.....#.#...
.....#.#...
.....#.#...
.....#.#...
####.#.####
#.########.
#.########.
...########
"""


def test_hotspot_of_ragged_line_drawings() -> None:
    """Thin-line shapes as a learner keeps them from compressed video, where two sightings at
    different sub-pixel phases leave the lines a pixel off for part of their length: no mirror
    image overlaps such a mask by 0.8, yet its outline is symmetric to within a pixel, and it
    points at its centre (the independent corpus: the thin crosshair's hotspot was put at an
    arm's end, 15 px off, and the I-beam's at its top, 10 px off)."""
    cross = np.zeros((38, 37), np.uint8)
    cross[0:17, 17] = 255  # the upper arm on one column, the lower on the next
    cross[19:38, 18] = 255
    cross[18, 0:16] = 255  # the left arm on one row, the right on the row above
    cross[17, 21:37] = 255
    cross[17:19, 17:19] = 255  # the centre dot
    x, y = decide_hotspot(cross)
    assert abs(x - 17.5) <= 1 and abs(y - 17.5) <= 1, (x, y)
    ibeam = np.array([[c == "#" for c in row] for row in LEARNED_IBEAM.split()], np.uint8) * 255
    x, y = decide_hotspot(ibeam)
    assert abs(x - 5) <= 1 and abs(y - 11) <= 1, (x, y)  # where the drawing's hotspot fell on it


# Two I-beams as the learner kept them from the independent corpus's 48 px drawn I-beam (MPEG-4 at
# 1500 kb/s): draw 8 (one serif cut short and ragged at its end, tissue beside it) and draw 2 (the lower
# serif widened on one side). Under the worst mirror 0.89 of the outline lands within a pixel of it.
# Where each drawing's hotspot fell on the sprite's grid (the renderer's truth): (8.5, 20.2), (10.0, 19.0).
CUT_SERIF_IBEAMS = (
    (
        """
..###############.
################..
#.###############.
..#######....#####
......###..#......
......####.#......
......#####.......
......######......
......#####.......
"""
        + "......######......\n" * 21
        + """
.....#######......
.....#######......
.....#######......
.....#######......
.....#######......
......#####.......
.......#####......
......######......
.....#...#########
..........#######.
..........###.##..
""",
        (8.5, 20.2),
    ),
    (
        """
..################..
..################..
"""
        + "........####........\n" * 31
        + """
......#.####........
......#.####........
.###.##.####........
##.....#####........
##################..
##################..
###################.
####################
................##..
""",
        (10.0, 19.0),
    ),
)


@pytest.mark.parametrize("drawing,truth", CUT_SERIF_IBEAMS, ids=["draw8", "draw2"])
def test_a_learned_ibeam_with_a_serif_cut_short_points_at_its_middle(drawing: str, truth: tuple[float, float]) -> None:
    """An I-beam learned from two sightings of a compressed video keeps one serif ragged or cut short at
    one end. Its outline is still symmetric to within a pixel for most of its length, and it points at
    its middle, not at a serif's corner (main put both at a corner, 18 px off; in draw 8 every I-beam
    frame was then tracked 18 px off)."""
    ibeam = np.array([[c == "#" for c in row] for row in drawing.split()], np.uint8) * 255
    x, y = decide_hotspot(ibeam)
    assert np.hypot(x - truth[0], y - truth[1]) <= 1.5, (x, y)


# A left-pointing hand as the learner kept it from handhelds-480p (10 x 14 px): a line drawing by its
# stroke, whose outline a mirror maps within a pixel of itself at 0.88, as anything that small does.
SMALL_LEARNED_HAND = """
.....####.....
.....####.....
.....########.
......#######.
#############.
#############.
.#...####.###.
....####..####
.....#....###.
.........#....
"""


def test_a_small_learned_hand_points_with_its_finger() -> None:
    """The looser cover asked of wide line drawings (``OUTLINE_COVER_WIDE``) is not asked of a shape a
    few pixels across: the small hand keeps pointing with its finger's end (rows 4-5, column 0), not at
    its middle."""
    hand = np.array([[c == "#" for c in row] for row in SMALL_LEARNED_HAND.split()], np.uint8) * 255
    x, y = decide_hotspot(hand)
    assert np.hypot(x - 0, y - 4.5) <= 3, (x, y)


def test_a_line_drawn_arrow_still_points_with_its_tip() -> None:
    """An arrow drawn as an outline only (a line drawing, like an I-beam) is not symmetric under any
    mirror: it keeps pointing with its tip, not its middle."""
    arrow = np.zeros((32, 24), np.uint8)
    points = np.array([(3, 2), (3, 24), (8, 19), (12, 27), (15, 26), (11, 18), (18, 18)], np.int32)
    cv2.polylines(arrow, [points], True, 255, 2)
    x, y = decide_hotspot(arrow)
    assert abs(x - 3) <= 2 and abs(y - 2) <= 2, (x, y)


@needs_themes
def test_hotspot_rule_on_every_installed_theme() -> None:
    """The rule, with its defaults, lands near the hotspot each cursor file declares (arrows and
    crosshairs within 5 px, hands within 16 px, at sizes 16-48), also on themes it was not
    looked at for (any theme installed here)."""
    from quilt_llava.narratives.synthetic import SHAPE_CURSORS, theme_sprite
    from quilt_llava.narratives.xcursor import cursor_path

    for theme in THEMES:
        for shape, tol in (("arrow", 5.0), ("crosshair", 5.0), ("hand", 16.0)):
            if not any(cursor_path(theme, n) for n in SHAPE_CURSORS[shape]):
                continue
            for size in (16, 24, 48):
                sprite = theme_sprite(theme, shape, size)
                x, y = decide_hotspot(((sprite.alpha[..., 0] > 0.5) * 255).astype(np.uint8))
                hx, hy = sprite.hotspot
                assert np.hypot(x - hx, y - hy) <= tol * max(1, size / 24), (theme, shape, size, (x, y), (hx, hy))


# --------------------------------------------------------------------------- the generator


@needs_themes
def test_theme_video_truth(tmp_path: Path) -> None:
    from quilt_llava.narratives.synthetic import SyntheticConfig, make_synthetic_video

    cfg = SyntheticConfig(
        name="t",
        width=320,
        height=180,
        fps=8.0,
        n_views=2,
        view_seconds=(4.0, 4.5),
        pan_seconds=0.5,
        cursor_theme="DMZ-Black",
        cursor_size=24,
        cursor_shapes=("arrow", "hand"),
        shape_changes=True,
        grab_pans=True,
        save_clean_views=True,
        seed=2,
    )
    truth = make_synthetic_video(tmp_path, cfg).truth
    frames = truth["frames"]
    assert {f["shape"] for f in frames if not f["stable"] and f["pointer"]} == {"grab"}
    view0 = [f["shape"] for f in frames if f["view"] == 0 and f["shape"]]
    assert view0[0] == "arrow" and view0[-1] == "hand"  # the shape changes mid-view
    for f in frames:
        if f["pointer"]:
            x0, y0, x1, y1 = f["pointer_box"]
            assert x0 <= f["pointer"][0] < x1 and y0 <= f["pointer"][1] < y1  # the hotspot lies on the sprite
    assert (tmp_path / "t.views" / "0.png").exists() and (tmp_path / "t.views" / "1.png").exists()


def test_unknown_theme_is_a_clear_config_error() -> None:
    from quilt_llava.narratives.synthetic import SyntheticConfig

    with pytest.raises(ConfigError) as exc:
        SyntheticConfig(cursor_theme="No-Such-Theme", cursor_shapes=("arrow", "wand")).validate()
    assert "No-Such-Theme" in str(exc.value) and "installed" in str(exc.value)


# --------------------------------------------------------------------------- the locator on real themes


def _recall(tmp_path: Path, **kw) -> tuple[dict[str, float], dict]:
    """Recall per shape (hits within 10 px at 720p, hands 16, scaled) over the frames of each
    view (the views' trace points, from ``analyse``), and the truth."""
    from quilt_llava.narratives.pipeline import ExtractConfig, analyse
    from quilt_llava.narratives.synthetic import SyntheticConfig, make_synthetic_video
    from quilt_llava.narratives.video import PyAVSource

    cfg = SyntheticConfig(**{"name": "v", "width": 640, "height": 360, "fps": 15.0, "pan_seconds": 0.8, **kw})
    sv = make_synthetic_video(tmp_path, cfg)
    analysis = analyse(PyAVSource(sv.video), ExtractConfig(min_segment_s=2.0))
    unit = cfg.height / 720
    found: dict[str, list[bool]] = {}
    for i, f in enumerate(sv.truth["frames"]):
        if f["cursor"] is None:
            continue
        hit = analysis.hits.get(i)
        tol = (16.0 if f["shape"] == "hand" else 10.0) * unit
        ok = hit is not None and np.hypot(hit.x - f["cursor"][0], hit.y - f["cursor"][1]) <= tol
        found.setdefault(f["shape"], []).append(ok)
        found.setdefault(f"view{f['view']}", []).append(ok)
    for i, f in enumerate(sv.truth["frames"]):
        assert (
            f["stable"] or i not in analysis.hits or not any(s.span.start <= i <= s.span.end for s in analysis.segments)
        ), "a trace point on a moving view"
    return {k: float(np.mean(v)) for k, v in found.items()}, sv.truth


def _views(n: int, rest_all_of: int | None = None):
    from quilt_llava.narratives.synthetic import ViewSpec

    views = []
    for i in range(n):
        if i == rest_all_of:
            waypoints = [(0.0, 0.3, 0.4), (5.0, 0.3, 0.4)]  # never moves in this view
        else:
            waypoints = [
                (0.0, 0.2, 0.3),
                (1.2, 0.2, 0.3),
                (2.0, 0.6, 0.5),
                (2.6, 0.6, 0.5),
                (3.4, 0.4, 0.7),
                (5.0, 0.4, 0.7),
            ]
        views.append(
            ViewSpec(center=(0.3 + 0.2 * i, 0.4 + 0.1 * i), zoom=1.0 - 0.2 * i, duration_s=5.0, waypoints=waypoints)
        )
    return views


@needs_themes
def test_shape_change_mid_view(tmp_path: Path) -> None:
    """An arrow that turns into a pointing hand as it moves: both shapes are learned and tracked."""
    recall, _ = _recall(
        tmp_path,
        views=_views(2),
        cursor_theme="DMZ-Black",
        cursor_size=24,
        cursor_shapes=("arrow", "hand"),
        shape_changes=True,
        grab_pans=True,
    )
    assert recall["arrow"] >= 0.9 and recall["hand"] >= 0.9, recall


@needs_themes
def test_never_moving_pointer_found_by_a_sprite_learned_earlier(tmp_path: Path) -> None:
    """The crosshair moves in the first view; in the second it rests the whole view (it is in
    every frame's median and never differs from it): the sprite learned in view 0 finds it."""
    recall, _ = _recall(
        tmp_path, views=_views(2, rest_all_of=1), cursor_theme="Adwaita", cursor_size=24, cursor_shapes=("crosshair",)
    )
    assert recall["view1"] >= 0.9, recall


@needs_themes
def test_hidpi_pointer(tmp_path: Path) -> None:
    """A HiDPI 2x arrow (48 px on a 360p frame, three times the arrow prior's largest size),
    resting before it first moves in both views."""
    recall, _ = _recall(tmp_path, views=_views(2), cursor_theme="Adwaita", cursor_size=48, cursor_shapes=("arrow",))
    assert recall["view0"] >= 0.9 and recall["view1"] >= 0.9, recall


@needs_themes
def test_unknown_theme_held_out(tmp_path: Path) -> None:
    """A theme nothing was tuned on: whiteglass recoloured amber (a translucent, shadowed arrow)."""
    recall, _ = _recall(
        tmp_path,
        views=_views(2),
        cursor_theme="whiteglass",
        cursor_tint=(255, 170, 40),
        cursor_size=32,
        cursor_shapes=("arrow",),
    )
    assert recall["arrow"] >= 0.9, recall


@needs_themes
@pytest.mark.parametrize("shapes", [("arrow",), ("arrow", "hand")])
def test_tiny_pointer_resting_before_it_moves_and_before_it_vanishes(tmp_path: Path, shapes: tuple[str, ...]) -> None:
    """A 16 px pointer at 480p, CRF 33: its sprites and the arrow prior match it at 0.65-0.85
    where it rests, tissue elsewhere as well, so the whole-frame search may hold a lookalike.
    In view 0 it rests 2.4 s and then moves; in view 1 it rests 3 s and then vanishes. Both
    rests are found from the spot the pointer left. With two shapes the arrow turns into a
    pointing hand during the move, and the hand rests in view 1 (turning back into the arrow
    half-way, as the generator changes shape in a view without moves)."""
    from quilt_llava.narratives.synthetic import ViewSpec

    moves = [(0.0, 0.3, 0.4), (2.4, 0.3, 0.4), (3.2, 0.65, 0.55), (5.0, 0.65, 0.55)]
    views = [
        ViewSpec(center=(0.35, 0.4), zoom=1.0, duration_s=5.0, waypoints=moves),
        ViewSpec(
            center=(0.6, 0.55),
            zoom=0.8,
            duration_s=5.0,
            waypoints=[(0.0, 0.55, 0.35), (5.0, 0.55, 0.35)],
            hidden=[(3.0, 5.0)],
        ),
    ]
    recall, _ = _recall(
        tmp_path,
        views=views,
        width=854,
        height=480,
        fps=25.0,
        crf=33,
        cursor_theme="DMZ-Black",
        cursor_size=16,
        cursor_shapes=shapes,
        shape_changes=len(shapes) > 1,
    )
    assert recall["view0"] >= 0.9 and recall["view1"] >= 0.9, recall
