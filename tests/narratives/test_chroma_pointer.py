"""A pointer whose contrast lies in colour, not brightness (``chroma_pointer``)."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives.chroma_pointer import (
    HOLD,
    RUN,
    SKIP,
    ChromaConfig,
    ChromaPointer,
    LumaGate,
    chroma_gain,
    sparse_views,
)
from quilt_llava.narratives.cursor import CursorConfig, CursorHit
from quilt_llava.narratives.hotspot import decide_hotspot
from quilt_llava.narratives.pipeline import ExtractConfig, analyse
from quilt_llava.narratives.segments import Segment
from quilt_llava.narratives.stability import Span
from quilt_llava.narratives.video import ArraySource, Frame

H, W = 288, 512
FPS = 25.0


def _yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 full-range YUV to RGB (the inverse of what ``Frame.chroma`` and ``ArraySource`` use)."""
    u, v = u - 128.0, v - 128.0
    rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], -1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def _path(n: int, seed: int) -> list[tuple[float, float]]:
    """The pointer's centre per frame: rests, moves along a loop, rests, moves again."""
    rng = np.random.default_rng(seed)
    pts = []
    x, y = 150.0, 120.0
    for i in range(n):
        if 20 <= i < 60 or 80 <= i < 120:
            a = i * 0.04
            x, y = 250 + 110 * np.cos(a) + rng.normal(0, 0.3), 140 + 70 * np.sin(a) + rng.normal(0, 0.3)
        pts.append((x, y))
    return pts


def _clip(
    n: int = 130, seed: int = 3, colour: tuple[float, float] = (40, 200)
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A still view of pink, textured "tissue" with a translucent coloured ring moving over it:
    the ring shifts U and V by tens of levels toward ``colour`` (U, V; a yellow's unless given)
    and leaves Y as it is (no luma contrast at all)."""
    rng = np.random.default_rng(seed)
    import cv2

    noise = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 3)
    luma = 170 + 25 * noise / noise.std()
    u0 = 140 + 4 * noise / noise.std()
    v0 = 160 + 4 * noise / noise.std()
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    path = _path(n, seed)
    frames = np.empty((n, H, W, 3), np.uint8)
    for i, (cx, cy) in enumerate(path):
        r = np.hypot(xx - cx, yy - cy)
        a = 0.55 * np.clip(1 - np.abs(r - 9.0) / 3.0, 0, 1)  # a ring of radius 9 px, 6 px wide
        u = u0 + a * (colour[0] - u0)
        v = v0 + a * (colour[1] - v0)
        frames[i] = _yuv_to_rgb(luma, u, v)
    return frames, path


def _found(hits: dict[int, CursorHit], path: list[tuple[float, float]], tol: float = 5.0) -> float:
    frames = range(25, len(path))  # after the ring first moved
    good = sum(1 for i in frames if i in hits and np.hypot(hits[i].x - path[i][0], hits[i].y - path[i][1]) <= tol)
    return good / len(frames)


def test_a_pointer_seen_only_in_colour_is_found_at_its_centre() -> None:
    frames, path = _clip()
    cfg = ExtractConfig(min_segment_s=2.0, prefetch=0)
    found = _found(analyse(ArraySource(frames, fps=FPS), cfg).hits, path)
    assert found >= 0.6, found
    # The luma locator alone does not see it: the ring leaves the luma as it was.
    cfg.chroma = ChromaConfig(enabled=False)
    assert _found(analyse(ArraySource(frames, fps=FPS), cfg).hits, path) == 0.0


def test_a_highlight_as_far_from_grey_as_the_tissue_is_found_by_its_distance_from_the_tissue() -> None:
    """A ring pulling the tissue's colour (U 140, V 160) toward U 172, V 128 leaves each pixel's
    distance from grey (|U - 128| + |V - 128| = 44) as it was, while moving its colour by up to 35
    levels: the plane is the distance from the view's own colour (``ChromaConfig.dominant``)."""
    frames, path = _clip(colour=(172, 128))
    cfg = ExtractConfig(min_segment_s=2.0, prefetch=0)
    assert _found(analyse(ArraySource(frames, fps=FPS), cfg).hits, path) >= 0.6
    cfg.chroma = ChromaConfig(dominant=False)  # the distance from grey: the ring is not there
    assert _found(analyse(ArraySource(frames, fps=FPS), cfg).hits, path) < 0.1


def test_the_dominant_colour_is_what_most_of_the_frame_shows() -> None:
    img = np.zeros((40, 60, 3), np.uint8)
    img[:] = (220, 150, 190)  # pink
    img[5:15, 5:25] = (255, 217, 25)  # a yellow patch, a tenth of the frame
    frame = Frame(0, 0.0, img[..., 0], _Rgb(img))
    u, v = frame.chroma_centre()
    # pink: U = 128 - 0.1687 * 220 - 0.3313 * 150 + 0.5 * 190, V = 128 + 0.5 * 220 - 0.4187 * 150 - 0.0813 * 190
    assert (u, v) == (136, 159)
    dist = frame.chroma((u, v))
    assert dist[30, 40] <= 1 and dist[10, 10] > 100  # the pink is near nothing, the yellow far
    assert Frame(0, 0.0, img[..., 0]).chroma_centre() is None  # no colour


def test_the_chroma_plane_is_the_distance_from_neutral() -> None:
    grey = np.full((4, 6, 3), 120, np.uint8)
    assert not Frame(0, 0.0, grey[..., 0], _Rgb(grey)).chroma().any()
    red = np.zeros((4, 6, 3), np.uint8)
    red[..., 0] = 255
    dist = Frame(0, 0.0, red[..., 0], _Rgb(red)).chroma()
    # red: U = 128 - 43, V = 128 + 127.5 (saturating): |U - 128| + |V - 128| = 170
    assert dist.shape == (4, 6) and abs(int(dist[0, 0]) - 170) <= 1
    assert Frame(0, 0.0, grey[..., 0]).chroma() is None  # no colour: no plane


class _Rgb:
    def __init__(self, img: np.ndarray) -> None:
        self.img = img
        self.converted = 0

    def to_ndarray(self, format: str = "rgb24") -> np.ndarray:
        self.converted += 1
        return self.img


def test_an_rgb_frame_is_converted_to_u_and_v_once() -> None:
    """The two chroma locators and the dominant colour read one frame's U and V: an RGB input is
    converted once, and each plane is the same as from a fresh frame."""
    img = np.zeros((8, 10, 3), np.uint8)
    img[:] = (220, 150, 190)
    img[2:5, 3:7] = (255, 217, 25)
    source = _Rgb(img)
    frame = Frame(0, 0.0, img[..., 0], source)
    centre = frame.chroma_centre()
    assert centre is not None
    own, grey = frame.chroma_distance(centre), frame.chroma_distance()
    assert source.converted == 1
    assert np.array_equal(own, Frame(0, 0.0, img[..., 0], _Rgb(img)).chroma_distance(centre))
    assert np.array_equal(grey, Frame(0, 0.0, img[..., 0], _Rgb(img)).chroma_distance())


@pytest.mark.parametrize(("top", "gain"), [(70, 2), (36, 4), (0, 8), (200, 1)])
def test_the_gain_stretches_the_first_frames_colour(top: int, gain: int) -> None:
    dist = np.full((40, 40), top, np.uint8)
    assert chroma_gain(dist, ChromaConfig()) == gain


def _segment(start: int, end: int) -> Segment:
    return Segment(Span(start, end), start / FPS, (end + 1) / FPS, np.empty(0), [])


def test_chroma_hits_fill_only_views_the_luma_locator_left_nearly_empty() -> None:
    tracked, sparse, empty = _segment(0, 99), _segment(100, 199), _segment(200, 299)
    luma = {i: CursorHit(i, 1.0, 1.0, 0.9) for i in [*range(0, 90), 100, 101, 102]}
    chroma = ChromaPointer(720, ChromaConfig(), CursorConfig(), 0)
    chroma.hits.update({i: CursorHit(i, 5.0 + i % 40, 5.0, 0.7) for i in range(0, 300)})
    assert sparse_views([tracked, sparse, empty], luma, 0.2) == [sparse, empty]
    hits = dict(luma)
    added = chroma.fill([tracked, sparse, empty], hits)
    assert added == 97 + 100
    assert all(hits[i].x == 1.0 for i in range(0, 90))  # a tracked view keeps its own hits alone
    assert all(i not in hits for i in range(90, 100))
    assert hits[100].x == 1.0 and hits[150].x == 5.0 + 150 % 40 and hits[250].x == 5.0 + 250 % 40


def test_a_second_chroma_locator_fills_the_views_left_sparse_by_the_luma_locator() -> None:
    """The locator on the plane from the view's colour fills after the one on the plane from grey,
    in the views the luma locator left sparse (found before either filled): a view the first
    locator covered in part is still filled by the second on the frames left without a hit."""
    view = _segment(0, 99)
    luma = {i: CursorHit(i, 1.0, 1.0, 0.9) for i in range(0, 5)}
    grey, own = (ChromaPointer(720, ChromaConfig(), CursorConfig(), 0, dominant=d) for d in (False, True))
    grey.hits.update({i: CursorHit(i, 5.0 + i % 40, 5.0, 0.7) for i in range(5, 60)})
    own.hits.update({i: CursorHit(i, 7.0 + i % 40, 5.0, 0.7) for i in range(0, 100)})
    hits = dict(luma)
    sparse = sparse_views([view], hits, ChromaConfig().sparse_share)
    assert grey.fill([view], hits, sparse) == 55
    assert own.fill([view], dict(hits)) == 0  # asked afresh, the view is no longer sparse
    assert own.fill([view], hits, sparse) == 40
    assert hits[30].x == 5.0 + 30 and hits[80].x == 7.0 + 80 % 40 and hits[2].x == 1.0


def test_a_blunt_ragged_blob_points_at_its_middle() -> None:
    """A round shape learned with a ragged edge (a filled ring from a blocky chroma plane) is not
    quite symmetric enough for the symmetry test, and has no extreme sharper than the rest."""
    rows = [
        "....####.....",
        ".#######..#..",
        "######...##..",
        "###########..",
        ".##########..",
        "#############",
        "#############",
        ".##########..",
        "###########..",
        "###########..",
        ".#########...",
        "..##...##....",
    ]
    mask = np.array([[c == "#" for c in r] for r in rows])
    x, y = decide_hotspot(mask, blunt=ChromaConfig().sprite.blunt)
    ys, xs = np.nonzero(mask)
    assert abs(x - xs.mean()) <= 0.5 and abs(y - ys.mean()) <= 0.5


def test_an_arrow_still_points_with_its_tip() -> None:
    from quilt_llava.narratives.templates import make_templates

    for t in make_templates((0.6, 1.0, 1.6), 720):
        assert decide_hotspot(t.mask > 0, blunt=ChromaConfig().sprite.blunt) == pytest.approx(t.hotspot, abs=2)


def test_chroma_hits_that_never_travel_are_not_taken() -> None:
    view = _segment(0, 99)
    chroma = ChromaPointer(720, ChromaConfig(), CursorConfig(), 0)
    chroma.hits.update({i: CursorHit(i, 300.0 + (i % 3), 200.0, 0.91) for i in range(0, 100)})
    hits: dict[int, CursorHit] = {}
    assert chroma.fill([view], hits) == 0 and not hits


def test_chroma_hits_of_a_pointer_drifting_a_few_pixels_are_taken() -> None:
    """A ring or dot held by hand drifts and dwells: over a view its hits span about ten pixels,
    not the 20 px a stroke travels; the jitter of a match on still colour spans a pixel or two."""
    view = _segment(0, 99)
    chroma = ChromaPointer(720, ChromaConfig(), CursorConfig(), 0)
    chroma.hits.update({i: CursorHit(i, 300.0 + 0.1 * i, 200.0 + 0.05 * i, 0.9) for i in range(0, 100)})
    hits: dict[int, CursorHit] = {}
    assert chroma.fill([view], hits) == 100
    brief = {i: CursorHit(i, 300.0 + 2.0 * i, 200.0, 0.9) for i in range(0, 8)}  # 14 px in 0.3 s
    chroma = ChromaPointer(720, ChromaConfig(), CursorConfig(), 0)
    chroma.hits.update(brief)
    assert chroma.fill([view], {}) == 0


def test_a_still_run_both_chroma_locators_find_is_taken_where_they_agree() -> None:
    """A dot resting through a view: each plane's locator holds it still; where the two put it
    within a few pixels of each other it is taken, and a still match on one plane alone is not."""
    view = _segment(0, 99)
    grey, own = (ChromaPointer(720, ChromaConfig(), CursorConfig(), 0, dominant=d) for d in (False, True))
    grey.hits.update({i: CursorHit(i, 300.0, 200.0, 0.7) for i in range(0, 60)})
    grey.hits.update({i: CursorHit(i, 900.0, 500.0, 0.9) for i in range(60, 100)})  # on one plane only
    own.hits.update({i: CursorHit(i, 302.0, 198.0, 0.8) for i in range(10, 70)})
    hits: dict[int, CursorHit] = {}
    assert grey.fill([view], hits, None, [own.hits]) == 50
    assert min(hits) == 10 and max(hits) == 59 and hits[30].x == 300.0
    assert own.fill([view], hits, [view], [grey.hits]) == 0  # its agreeing frames are taken; 60-69 agree with none
    assert grey.fill([view], {}, None, None) == 0  # alone, as before


def test_a_still_run_beside_a_moving_one_is_left_out() -> None:
    view = _segment(0, 199)
    chroma = ChromaPointer(720, ChromaConfig(), CursorConfig(), 0)
    chroma.hits.update({i: CursorHit(i, 1000.0, 200.0, 0.91) for i in range(0, 150)})  # never moves
    chroma.hits.update({i: CursorHit(i, 300.0 + 3 * (i - 150), 100.0, 0.8) for i in range(150, 200)})
    hits: dict[int, CursorHit] = {}
    assert chroma.fill([view], hits) == 50 and min(hits) == 150


def _arrow_clip(n: int = 200, seed: int = 3) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The ring clip's tissue with a dark arrow (luma contrast) on the same course, longer."""
    import cv2

    from quilt_llava.narratives.synthetic import draw_cursor, make_cursor_sprite

    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 3)
    tissue = _yuv_to_rgb(
        170 + 25 * noise / noise.std(), 140 + 4 * noise / noise.std() + 0 * noise, 160 + 4 * noise / noise.std()
    )
    path = [(250 + 110 * np.cos(i * 0.04), 140 + 70 * np.sin(i * 0.04)) for i in range(n)]
    sprite = make_cursor_sprite("arrow")
    frames = np.empty((n, H, W, 3), np.uint8)
    for i, (x, y) in enumerate(path):
        frames[i] = tissue
        draw_cursor(frames[i], sprite, (round(x), round(y)))
    return frames, path


def test_the_chroma_locator_does_not_run_in_a_view_the_luma_locator_tracks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dark arrow the luma locator tracks: the chroma locator holds the view's first second and
    a bit (``hold_s``, read ``gate_lag`` frames later) and, once the gate closes, drops them: it
    runs on no frame, and no full-size plane is made but the first frame's (its gain); the luma
    locator's hits are the same as without it."""
    frames, path = _arrow_clip()
    seen: list[int] = []
    planes: list[int] = []
    held: list[int] = []
    real_submit, real_chroma, real_distance = ChromaPointer.submit, Frame.chroma, Frame.chroma_distance

    def submit(self: ChromaPointer, index: int, *args: object) -> None:
        seen.append(index)
        real_submit(self, index, *args)  # type: ignore[arg-type]

    def chroma(self: Frame, *args: tuple[int, int]) -> np.ndarray | None:
        planes.append(self.index)
        return real_chroma(self, *args)

    def distance(self: Frame, *args: tuple[int, int]) -> np.ndarray | None:
        held.append(self.index)
        return real_distance(self, *args)

    monkeypatch.setattr(ChromaPointer, "submit", submit)
    monkeypatch.setattr(Frame, "chroma", chroma)
    monkeypatch.setattr(Frame, "chroma_distance", distance)
    for prefetch in (0, 8):  # inline and threaded: the same frames
        seen.clear()
        held.clear()
        cfg = ExtractConfig(min_segment_s=2.0, prefetch=prefetch)
        result = analyse(ArraySource(frames, fps=FPS), cfg)
        assert _found(result.hits, path, 3.0) > 0.9
        assert seen == []
        # the frames held: those before the count over ``hold_s`` (at frame 24: 25 frames) is read
        assert set(held) == set(range(24 + cfg.chroma.gate_lag)), held
    assert planes == [0, 0, 0, 0]  # the two locators' gains, inline and threaded
    cfg = ExtractConfig(min_segment_s=2.0, prefetch=0)
    cfg.chroma = ChromaConfig(enabled=False)
    assert analyse(ArraySource(frames, fps=FPS), cfg).hits == result.hits


@pytest.mark.parametrize(
    ("release_s", "held_mb"),
    [(8.0, 64.0), (2.0, 64.0), (8.0, 0.0)],
    ids=["released-at-the-end", "released-after-2s", "too-much-to-hold"],
)
def test_held_frames_are_run_as_they_were_when_every_frame_ran(
    monkeypatch: pytest.MonkeyPatch, release_s: float, held_mb: float
) -> None:
    """The ring (no luma hit, a 5.2 s view): the frames held are run when the video ends, or
    once the view has lasted ``release_s``, or as they come when ``held_mb`` cannot hold them,
    with the same planes and motion, in the same order, as when every frame ran as it came (the
    gate answering ``RUN`` to every frame); so are the hits."""
    from quilt_llava.narratives import chroma_pointer

    frames, _ = _clip()
    record: list[tuple[bool, int, bytes, bytes | None]] = []
    real_submit = ChromaPointer.submit

    def submit(self: ChromaPointer, index: int, t: float, plane: np.ndarray, small: np.ndarray, *args: object) -> None:
        before = None if self.prev_small is None else self.prev_small.tobytes()
        record.append((self.dominant, index, plane.tobytes(), before))
        real_submit(self, index, t, plane, small, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ChromaPointer, "submit", submit)
    cfg = ExtractConfig(min_segment_s=2.0, prefetch=0)
    cfg.chroma.release_s, cfg.chroma.held_mb = release_s, held_mb
    gated = analyse(ArraySource(frames, fps=FPS), cfg).hits
    runs = list(record)
    record.clear()
    monkeypatch.setattr(LumaGate, "wanted", lambda self, index, start, interval: chroma_pointer.RUN)
    assert analyse(ArraySource(frames, fps=FPS), cfg).hits == gated
    # each of the two locators (their frames may interleave otherwise)
    assert sorted(record, key=lambda r: r[0]) == sorted(runs, key=lambda r: r[0]) and len(runs) == 2 * len(frames)


def test_the_chroma_locator_runs_on_every_frame_of_a_view_the_luma_locator_leaves_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frames, _ = _clip()
    seen: list[int] = []
    real_submit = ChromaPointer.submit

    def submit(self: ChromaPointer, index: int, *args: object) -> None:
        seen.append(index)
        real_submit(self, index, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ChromaPointer, "submit", submit)
    analyse(ArraySource(frames, fps=FPS), ExtractConfig(min_segment_s=2.0, prefetch=0))
    assert sorted(seen) == [i for i in range(len(frames)) for _ in range(2)]  # each of the two locators


def test_the_luma_gate_reads_its_counts_late_and_per_view() -> None:
    from concurrent.futures import Future

    asked: list[tuple[int, int]] = []

    def count(start: int, end: int) -> Future[tuple[int, int]]:
        asked.append((start, end))
        f: Future[tuple[int, int]] = Future()
        f.set_result((end - start + 1 if start < 100 else 0, end - start + 1))  # view 0 tracked, view 100 not
        return f

    cfg = ChromaConfig(hold_s=1.0, gate_every=8, gate_lag=24)
    gate = LumaGate(cfg, count)
    wanted = [gate.wanted(i, 0, 1 / FPS) for i in range(100)]
    # the count at frame 24 (25 frames, a second) is read at frame 48; the frames before it are held
    assert wanted == [HOLD] * 48 + [SKIP] * 52
    assert asked[-1] == (0, 48)  # no more counts once the view is skipped
    assert gate.wanted(100, None, 1 / FPS) == RUN  # a moving frame
    wanted = [gate.wanted(i, 101, 1 / FPS) for i in range(101, 400)]  # a view the luma locator leaves empty
    assert wanted == [HOLD] * round(cfg.release_s * FPS) + [RUN] * (299 - round(cfg.release_s * FPS))


def test_the_second_locator_holds_a_view_until_it_ends_and_drops_it_when_the_gate_closes_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A view the gate closes after ``release_s`` (the luma locator confirmed its track late): the
    locator on the plane from grey ran its frames up to then, as before; the one on the plane
    from the view's colour held them all and drops them, so it runs on none of them
    (``ChromaConfig.dominant_holds_view``). Without the setting it runs them as the first does."""
    frames, _ = _clip()
    ran: list[tuple[bool, int]] = []
    real_submit = ChromaPointer.submit

    def submit(self: ChromaPointer, index: int, *args: object) -> None:
        ran.append((self.dominant, index))
        real_submit(self, index, *args)  # type: ignore[arg-type]

    def wanted(self: LumaGate, index: int, start: int | None, interval: float) -> str:
        if start is None:
            return RUN
        return HOLD if index - start < 50 else RUN if index - start < 100 else SKIP  # closed at 4 s

    monkeypatch.setattr(ChromaPointer, "submit", submit)
    monkeypatch.setattr(LumaGate, "wanted", wanted)
    for holds in (True, False):
        ran.clear()
        cfg = ExtractConfig(min_segment_s=2.0, prefetch=0)
        cfg.chroma.dominant_holds_view = holds
        analyse(ArraySource(frames, fps=FPS), cfg)
        grey = [i for d, i in ran if not d]
        own = [i for d, i in ran if d]
        assert grey == list(range(100))  # (the clip is one still view from frame 0)
        assert own == ([] if holds else grey)


def test_the_second_locator_runs_a_view_the_gate_leaves_open_when_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ring's view, never closed: the locator on the plane from the view's colour runs every
    frame, in order, once the view ends (here the video's end); the first ran them once the view
    had lasted ``release_s``, the rest as they came. (Their planes and motion are those of frames
    run as they come: ``test_held_frames_are_run_as_they_were_when_every_frame_ran``.)"""
    frames, _ = _clip()
    order: list[tuple[bool, int, int]] = []  # (dominant, index, frames analysed when run)
    real_submit, real_offer = ChromaPointer.submit, ChromaPointer.offer
    analysed = [0]

    def offer(self: ChromaPointer, index: int, *args: object) -> None:
        analysed[0] = max(analysed[0], index + 1)
        real_offer(self, index, *args)  # type: ignore[arg-type]

    def submit(self: ChromaPointer, index: int, *args: object) -> None:
        order.append((self.dominant, index, analysed[0]))
        real_submit(self, index, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ChromaPointer, "offer", offer)
    monkeypatch.setattr(ChromaPointer, "submit", submit)
    analyse(ArraySource(frames, fps=FPS), ExtractConfig(min_segment_s=2.0, prefetch=0))
    own = [(i, seen) for d, i, seen in order if d]
    assert [i for i, _ in own] == list(range(len(frames)))
    assert all(seen == len(frames) for _, seen in own)  # none before the view ended
    assert max(seen for d, _, seen in order if not d) == len(frames)
    assert min(seen for d, _, seen in order if not d) < len(frames)  # the first ran as they came


def test_the_planes_are_made_on_the_locators_threads_not_the_analysing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threaded (``prefetch`` > 0), each chroma locator makes its planes on its own thread: the
    analysing thread only reads the U and V planes' distance (a quarter of the pixels) and hands
    it over. Inline, all of it runs on the calling thread, as before; the hits are the same."""
    import threading

    from quilt_llava.narratives import chroma_pointer

    frames, _ = _clip()
    made_on: list[int] = []
    real_plane = chroma_pointer.chroma_plane

    def plane(chroma: np.ndarray, gain: int) -> np.ndarray:
        made_on.append(threading.get_ident())
        return real_plane(chroma, gain)

    monkeypatch.setattr(chroma_pointer, "chroma_plane", plane)
    hits = {}
    for prefetch in (8, 0):
        made_on.clear()
        hits[prefetch] = analyse(ArraySource(frames, fps=FPS), ExtractConfig(min_segment_s=2.0, prefetch=prefetch)).hits
        assert len(made_on) == 2 * len(frames)  # the ring's view: each of the two locators on every frame
        on_caller = sum(ident == threading.get_ident() for ident in made_on)
        assert on_caller == (0 if prefetch else len(made_on)), (prefetch, on_caller)
    assert hits[8] == hits[0]


def test_a_views_held_frames_go_to_the_locator_in_one_piece() -> None:
    """A view's frames held until it ends are handed to the locator's thread as one piece of work:
    the caller goes on while the locator works through them (here stalled), where each took a place
    in the locator's queue (4 deep) and the caller waited for all but the last 4; they run as they
    would have, in order."""
    import threading

    frames = list(ArraySource(_clip(n=40)[0], fps=FPS).frames())
    chroma = ChromaPointer(H, ChromaConfig(), CursorConfig(), 4, dominant=True, hold_view=True)
    go, released = threading.Event(), threading.Event()
    seen: list[int] = []
    real_process = chroma.locator.process

    def process(frame):  # type: ignore[no-untyped-def]
        go.wait(10.0)
        seen.append(frame.index)
        return real_process(frame)

    chroma.locator.process = process  # type: ignore[method-assign]
    for f in frames[:-1]:
        chroma.offer(f.index, f, False, None, 1, RUN, 0)  # held: the view has not ended
    assert seen == [] and len(chroma.held) == 39

    def end_view() -> None:
        chroma.offer(39, frames[-1], True, None, 1, RUN, None)  # a moving frame ends the view
        released.set()

    caller = threading.Thread(target=end_view)
    caller.start()
    try:
        assert released.wait(5.0), "the caller waited for the locator to run the view's frames"
    finally:
        go.set()
        caller.join()
    chroma.close()
    assert seen == list(range(40))
