"""The bundled demo sample: a narrated slide-viewing video made from a real IHC image.

scikit-image's ``ihc.png`` (tumour glands with brown membranous DAB staining in a
blue, haematoxylin-only stroma) is mirror-tiled into a slide. For each view of a
tour, the regions the narrator talks about are *measured* on the rendered view by
colour deconvolution (DAB and haematoxylin channels): one clearly positive region
and one clearly negative one. The cursor circles each region while the narrator
describes it, so the words spoken near each box truly describe the tissue inside
it, which is what makes the extracted data learnable.

Rendering and encoding reuse :mod:`quilt_llava.narratives.synthetic`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quilt_llava.narratives.synthetic import (
    SlideRenderer,
    SyntheticConfig,
    SyntheticVideo,
    ViewSpec,
    load_source_image,
    make_layout,
    make_slide,
    make_synthetic_video,
)

# Narration, written for this project. Positive sentences use only "positive" words
# (brown, membranous...), negative ones only "negative" words (blue, haematoxylin...),
# so a keyword labeller reads them unambiguously.
POSITIVE_LINES = (
    "Here the tumour gland shows strong brown membranous staining, so these cells are clearly positive.",
    "Look at this cluster of tumour cells, every membrane is outlined in crisp brown chromogen.",
    "This epithelium is strongly positive, with a continuous brown ring around each cell.",
    "Notice the brown signal along the cell borders of this gland, a complete membranous pattern.",
    "These neoplastic cells take up the brown DAB chromogen intensely at their membranes.",
    "In this gland the staining is brown, strong and membranous, a positive result.",
)
NEGATIVE_LINES = (
    "The stroma over here is negative, only blue haematoxylin nuclei of fibroblasts.",
    "Compare the connective tissue on this side, which stays blue and unstained.",
    "This stromal area shows no chromogen at all, just pale blue spindle nuclei, so it is negative.",
    "Around here the fibrous stroma is blue with the haematoxylin counterstain only.",
    "Is there any reaction in these stromal cells? No, they stay blue and negative.",
    "The loose stroma at this spot is unstained, the nuclei are blue from the counterstain alone.",
)
INTRO_LINES = ("Let us look at this field.", "Moving on to the next area.", "Another field of the same tumour.")


@dataclass
class SampleConfig:
    name: str = "ihc_tour"
    n_views: int = 14
    view_seconds: float = 9.0  # the shortest view; a view is longer when its narration needs it
    # Pace the narration is planned for (words per minute): each line gets the time it takes
    # to say at this pace, so a voice (espeak-ng, see voice.py) fits it without rushing.
    speech_wpm: float = 190.0
    pan_seconds: float = 1.0
    width: int = 1280
    height: int = 720
    fps: float = 15.0
    crf: int = 23
    webcam: bool = True
    region_radius: float = 0.13  # of the content height; boxes must pass the 0.02 area filter
    seed: int = 0


@dataclass
class RegionPick:
    positive: tuple[float, float]  # normalised content coords
    negative: tuple[float, float]
    dab_positive: float
    dab_negative: float


def _stain_maps(view_rgb: np.ndarray, radius_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Local means of DAB and of the tissue fraction over a disc-sized window."""
    import cv2
    from skimage.color import rgb2hed

    hed = rgb2hed(view_rgb)
    k = (2 * radius_px + 1, 2 * radius_px + 1)
    dab = cv2.blur(hed[..., 2].astype(np.float32), k)
    tissue = cv2.blur((view_rgb.mean(axis=2) < 232).astype(np.float32), k)
    return dab, tissue


def pick_regions(
    view_rgb: np.ndarray, radius: float, forbidden: tuple[float, float] | None, rng: np.random.Generator
) -> RegionPick | None:
    """Find one strongly DAB-positive and one DAB-negative tissue region in a view, or None."""
    h, w = view_rgb.shape[:2]
    scale = 4  # measure on a quarter-size view: fast and smooth enough
    small = view_rgb[::scale, ::scale]
    r_px = max(2, round(radius * h / scale))
    dab, tissue = _stain_maps(small, r_px)
    sh, sw = dab.shape
    yy, xx = np.mgrid[0:sh, 0:sw]
    nx, ny = xx / (sw - 1), yy / (sh - 1)
    margin_x, margin_y = radius * h / w + 0.04, radius + 0.04
    valid = (nx > margin_x) & (nx < 1 - margin_x) & (ny > margin_y) & (ny < 1 - margin_y)
    if forbidden is not None:
        valid &= ~((nx > forbidden[0]) & (ny > forbidden[1]))
    valid &= tissue > 0.75
    if valid.sum() < 10:
        return None
    pos_score = np.where(valid, dab, -np.inf)
    neg_score = np.where(valid, -dab, -np.inf)
    py, px = np.unravel_index(np.argmax(pos_score + rng.uniform(0, 1e-3, dab.shape)), dab.shape)
    # The negative region must be far from the positive one.
    far = np.hypot((xx - px) * w / h, yy - py) > 3.0 * r_px
    ny_, nx_ = np.unravel_index(np.argmax(np.where(far, neg_score, -np.inf)), dab.shape)
    d_pos, d_neg = float(dab[py, px]), float(dab[ny_, nx_])
    if not (d_pos > 0.09 and d_neg < 0.035 and np.isfinite(neg_score[ny_, nx_])):
        return None
    return RegionPick((px / (sw - 1), py / (sh - 1)), (nx_ / (sw - 1), ny_ / (sh - 1)), d_pos, d_neg)


def _circle(
    center: tuple[float, float],
    rx: float,
    ry: float,
    t0: float,
    t1: float,
    rest_at: float,
    rest_s: float = 0.6,
    loop_s: float = 1.6,
) -> list[tuple[float, float, float]]:
    """Waypoints circling ``center`` from t0 to t1 (one loop per ``loop_s``), resting still
    for ``rest_s`` at ``rest_at`` the way narrators pause on a feature."""
    pts: list[tuple[float, float, float]] = []
    step = 0.1
    t, phase = t0, 0.0
    rested = False
    while t <= t1 + 1e-9:
        p = (center[0] + rx * math.cos(phase), center[1] + ry * math.sin(phase))
        pts.append((round(t, 4), *p))
        if not rested and t >= rest_at and t + rest_s < t1:
            t += rest_s
            pts.append((round(t, 4), *p))
            rested = True
        t += step
        phase += 2 * math.pi * step / loop_s
    return pts


def speech_seconds(text: str, wpm: float) -> float:
    """How long saying ``text`` takes at ``wpm`` words per minute (+ a little for the pauses)."""
    words = text.split()
    return len(words) * 60.0 / wpm + 0.12 * text.count(",") + 0.2


def plan_views(cfg: SampleConfig) -> list[ViewSpec]:
    rng = np.random.default_rng(cfg.seed)
    syn = SyntheticConfig(width=cfg.width, height=cfg.height, webcam=cfg.webcam)
    layout = make_layout(syn)
    cw, ch = layout.content_size
    renderer = SlideRenderer(make_slide(load_source_image(None), syn.slide_tiles))
    sw, sh = renderer.size
    forbidden = None
    if layout.webcam_box is not None:
        x0, y0 = layout.webcam_box[:2]
        forbidden = ((x0 - layout.content_box[0] - 40) / cw, (y0 - layout.content_box[1] - 40) / ch)
    zooms = (1.0, 1.3, 0.8, 1.6, 1.15, 0.9)
    pos_order = rng.permutation(len(POSITIVE_LINES))
    neg_order = rng.permutation(len(NEGATIVE_LINES))
    views: list[ViewSpec] = []
    attempts = 0
    while len(views) < cfg.n_views:
        attempts += 1
        if attempts > 40 * cfg.n_views:
            raise RuntimeError("could not find enough views with clear positive and negative regions")
        zoom = zooms[len(views) % len(zooms)] * float(rng.uniform(0.92, 1.08))
        hx, hy = min(0.5, cw / (2 * zoom * sw)), min(0.5, ch / (2 * zoom * sh))
        center = (float(rng.uniform(hx, 1 - hx)), float(rng.uniform(hy, 1 - hy)))
        view_rgb = renderer.render(center, zoom, (cw, ch))
        pick = pick_regions(view_rgb, cfg.region_radius, forbidden, rng)
        if pick is None:
            continue
        i = len(views)
        rx, ry = cfg.region_radius * ch / cw, cfg.region_radius
        positive = (pick.positive, POSITIVE_LINES[pos_order[i % len(pos_order)]])
        negative = (pick.negative, NEGATIVE_LINES[neg_order[i % len(neg_order)]])
        (first, first_line), (second, second_line) = (positive, negative) if i % 2 == 0 else (negative, positive)
        intro = INTRO_LINES[(i // 4) % len(INTRO_LINES)] if i % 4 == 0 else None
        # Every line gets the time it takes to say; the view lasts at least view_seconds,
        # and the lines keep their places in it (first region ~12-47 %, second ~55-90 %).
        s_intro = speech_seconds(intro, cfg.speech_wpm) if intro else 0.0
        s1, s2 = speech_seconds(first_line, cfg.speech_wpm), speech_seconds(second_line, cfg.speech_wpm)
        d = cfg.view_seconds
        a0 = max(0.12 * d, s_intro + 0.45)
        a1 = max(0.47 * d, a0 + s1)
        b0 = max(0.55 * d, a1 + 0.7)
        b1 = max(0.9 * d, b0 + s2)
        d = max(d, b1 + 0.9)
        start_pt = (float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.3, 0.6)))
        waypoints = [(0.0, *start_pt), (min(0.04 * d, 0.8 * a0), *start_pt)]
        waypoints += _circle(first, rx, ry, a0, a1, rest_at=a0 + 0.4 * (a1 - a0))
        waypoints += _circle(second, rx, ry, b0, d, rest_at=b0 + 0.4 * (b1 - b0))
        utterances = [(a0, a1, first_line), (b0, b1, second_line)]
        hidden = [(d - 0.07 * cfg.view_seconds, d)] if i % 3 == 2 else []
        if intro:
            # Starts a little after the view settles, so no word straddles the segment start.
            utterances.insert(0, (0.25, max(0.11 * cfg.view_seconds, 0.25 + s_intro), intro))
        views.append(
            ViewSpec(center=center, zoom=zoom, duration_s=d, waypoints=waypoints, hidden=hidden, utterances=utterances)
        )
    return views


def build_sample(out_dir: str | Path, cfg: SampleConfig | None = None) -> SyntheticVideo:
    """Render the demo video, its Whisper-style transcript (word timings) and ground truth."""
    cfg = cfg or SampleConfig()
    syn = SyntheticConfig(
        name=cfg.name,
        width=cfg.width,
        height=cfg.height,
        fps=cfg.fps,
        crf=cfg.crf,
        seed=cfg.seed,
        views=plan_views(cfg),
        pan_seconds=cfg.pan_seconds,
        cursor_style="arrow",
        webcam=cfg.webcam,
        ui=True,
    )
    return make_synthetic_video(out_dir, syn)
