"""Tissue benchmark: is a view tissue? Accuracy per source, on sources the rule was not tuned on.

A corpus is built offline from images we did not make and screens we render:

- tissue: crops of scikit-image's ``ihc.png`` (immunohistochemistry, DAB + haematoxylin) at
  zooms 0.5-4x, JPEG quality 20-95 and brightness changes, in two sources (left and right
  half of the image, so no crop is in both); the same crops re-stained as H&E (colour
  deconvolution: haematoxylin kept, DAB swapped for eosin); crops on white glass (a
  zoomed-out slide, tissue covering 25-70% of the view); pale H&E (the re-staining washed out to
  35-60% of its contrast, left and right half apart); faded H&E (both stains at 25-50% of their
  optical density); H&E as fragments on glass (30-55% of the view empty, irregular edges);
- not tissue: scikit-image's photos (astronaut, coffee, chelsea, rocket, motorcycle, horse,
  coins, camera, page, text, brick, grass, gravel, moon, hubble deep field, retina, logo,
  colour wheel, cell, clock) as random crops, text slides, desktops and blank screens from
  ``quilt_llava.narratives.screens``.

The limits of ``quilt_llava.narratives.tissue`` were set on a few sources (``TUNING``: the left
half of ``ihc.png`` and of its pale re-staining, text slides and the astronaut, a person); every
other source is held out, and the accuracy at the
shipped threshold is printed per source. Only one real stained image ships offline
(``ihc.png``), so the tissue side of the held-out figures is weaker than the other side:
held-out tissue is another region of the same slide, its re-staining, or it on glass.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tissue_bench.py [--per-source N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from quilt_llava.narratives import screens
from quilt_llava.narratives.tissue import TissueConfig, tissue_score

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "stereo_motorcycle",
    "horse",
    "coins",
    "camera",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
    "moon",
    "hubble_deep_field",
    "retina",
    "logo",
    "colorwheel",
    "cell",
    "clock",
)


def _rgb(image: np.ndarray | tuple) -> np.ndarray:
    if isinstance(image, tuple):
        image = image[0]
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    _, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])


def _view(rgb: np.ndarray, rng: np.random.Generator, size: tuple[int, int] | None = None) -> np.ndarray:
    """A random crop of ``rgb`` seen at a random zoom and compression, as a video view would show it."""
    import cv2

    h, w = rgb.shape[:2]
    # Up to 2.5x: beyond, the 512 px source image is only interpolated (a slide viewer zooming
    # into a scan shows more detail, not blur).
    zoom = float(np.exp(rng.uniform(np.log(0.5), np.log(2.5))))
    out_w, out_h = size or (int(rng.integers(240, 720)), int(rng.integers(180, 480)))
    cw, ch = min(w, max(8, round(out_w / zoom))), min(h, max(8, round(out_h / zoom)))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = cv2.resize(rgb[y0 : y0 + ch, x0 : x0 + cw], (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    crop = np.clip(crop.astype(np.float32) * rng.uniform(0.85, 1.1) + rng.uniform(-12, 12), 0, 255).astype(np.uint8)
    return _jpeg(crop, int(rng.integers(20, 96)))


def _restain_he(ihc: np.ndarray, strength: float) -> np.ndarray:
    from skimage.color import hed2rgb, rgb2hed

    hed = rgb2hed(ihc)
    he = np.zeros_like(hed)
    he[..., 0] = hed[..., 0]
    he[..., 1] = hed[..., 2] * strength + 0.01  # DAB -> eosin, plus an eosin background
    return (np.clip(hed2rgb(he), 0, 1) * 255).astype(np.uint8)


def _on_glass(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    h, w = int(rng.integers(240, 480)), int(rng.integers(320, 720))
    frame = np.full((h, w, 3), int(rng.integers(232, 250)), np.uint8)
    cover = rng.uniform(0.25, 0.7)
    th, tw = round(h * np.sqrt(cover)), round(w * np.sqrt(cover))
    y0, x0 = int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1))
    frame[y0 : y0 + th, x0 : x0 + tw] = cv2.resize(tissue, (tw, th), interpolation=cv2.INTER_AREA)
    return _jpeg(frame, int(rng.integers(40, 96)))


def _pale(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``rgb`` washed out towards white (a faded stain, an over-exposed scan): 35-60% of its contrast."""
    keep = rng.uniform(0.35, 0.6)
    return (255 - keep * (255 - rgb.astype(np.float32)) + 0.5).astype(np.uint8)


def _faded_he(ihc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An H&E re-staining of ``ihc`` with both stains at 25-50% of their optical density
    (colour deconvolution, each stain scaled on its own)."""
    from skimage.color import hed2rgb, rgb2hed

    hed = rgb2hed(ihc)
    he = np.zeros_like(hed)
    he[..., 0] = hed[..., 0] * rng.uniform(0.25, 0.5)
    he[..., 1] = (hed[..., 2] * rng.uniform(0.5, 1.2) + 0.01) * rng.uniform(0.25, 0.5)
    return (np.clip(hed2rgb(he), 0, 1) * 255).astype(np.uint8)


def _glass_rich(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``tissue`` as irregular fragments on white glass (smoothed-noise blobs, 30-55% of the view
    empty), the way a section with holes and torn edges looks zoomed out."""
    import cv2

    h, w = tissue.shape[:2]
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), max(h, w) / 12)
    empty = rng.uniform(0.3, 0.55)
    glass = noise < np.quantile(noise, empty)
    out = tissue.copy()
    out[glass] = int(rng.integers(232, 250))
    return _jpeg(out, int(rng.integers(40, 96)))


def sources() -> dict[str, tuple[int, Callable[[np.random.Generator], np.ndarray]]]:
    """source name -> (label: 1 tissue, 0 not, make one example)."""
    from skimage import data

    ihc = _rgb(data.immunohistochemistry())
    half = ihc.shape[1] // 2
    left, right = ihc[:, :half], ihc[:, half:]
    he = {s: _restain_he(ihc, s) for s in (0.5, 0.8, 1.2)}
    out: dict[str, tuple[int, Callable[[np.random.Generator], np.ndarray]]] = {
        "ihc-left": (1, lambda rng: _view(left, rng)),
        "ihc-right": (1, lambda rng: _view(right, rng)),
        "he-restained": (1, lambda rng: _view(he[float(rng.choice(list(he)))], rng)),
        "ihc-on-glass": (1, lambda rng: _on_glass(_view(ihc, rng), rng)),
        "text-slides": (
            0,
            lambda rng: _jpeg(
                screens.text_slide((int(rng.integers(320, 960)), int(rng.integers(240, 540))), rng),
                int(rng.integers(30, 96)),
            ),
        ),
        "desktops": (
            0,
            lambda rng: _jpeg(
                screens.desktop((int(rng.integers(320, 960)), int(rng.integers(240, 540))), rng),
                int(rng.integers(30, 96)),
            ),
        ),
        "blank-screens": (
            0,
            lambda rng: _jpeg(
                screens.blank((int(rng.integers(320, 960)), int(rng.integers(240, 540))), rng),
                int(rng.integers(30, 96)),
            ),
        ),
    }
    for name in PHOTOS:
        photo = _rgb(getattr(data, name)())
        out[f"photo-{name}"] = (
            0,
            lambda rng, photo=photo: _view(photo, rng) if rng.random() < 0.7 else _jpeg(photo, 80),
        )
    # Added in the tenth pass, after the others so that their seeds (and figures) stay as recorded.
    out.update(
        {
            "pale-he-left": (1, lambda rng: _view(_pale(he[0.8][:, :half], rng), rng)),
            "pale-he-right": (1, lambda rng: _view(_pale(he[0.8][:, half:], rng), rng)),
            "faded-he": (1, lambda rng: _view(_faded_he(ihc, rng), rng)),
            "he-glass-rich": (1, lambda rng: _glass_rich(_view(he[float(rng.choice(list(he)))], rng), rng)),
        }
    )
    return out


TUNING = (
    "ihc-left",
    "pale-he-left",
    "text-slides",
    "photo-astronaut",
)  # the sources the rule's limits were set on; every other one is held out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-source", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cfg = TissueConfig()
    results: dict[str, dict[str, float]] = {}
    seconds, n = 0.0, 0
    for k, (name, (label, make)) in enumerate(sources().items()):
        rng = np.random.default_rng(args.seed * 1000 + k)
        scores = []
        for _ in range(args.per_source):
            view = make(rng)
            t0 = time.perf_counter()
            scores.append(tissue_score(view, cfg))
            seconds += time.perf_counter() - t0
            n += 1
        flags = np.array(scores) >= cfg.threshold
        results[name] = {
            "label": label,
            "tuning": name in TUNING,
            "accuracy": float((flags == bool(label)).mean()),
            "mean_score": float(np.mean(scores)),
        }
    held = {k: v for k, v in results.items() if not v["tuning"]}
    tissue = [v["accuracy"] for v in held.values() if v["label"]]
    other = [v["accuracy"] for v in held.values() if not v["label"]]
    screens_only = [v["accuracy"] for k, v in held.items() if k in ("desktops", "blank-screens")]
    summary = {
        "views": n,
        "per_source": args.per_source,
        "score_ms": round(1000 * seconds / n, 2),
        "held_out_tissue_accuracy": float(np.mean(tissue)),
        "held_out_non_tissue_accuracy": float(np.mean(other)),
        "held_out_screens_accuracy": float(np.mean(screens_only)),
        "worst_held_out_source": min(held, key=lambda k: held[k]["accuracy"]),
        "sources": results,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{n} views, {args.per_source} per source; {summary['score_ms']:.1f} ms per view")
    print(f"{'source':24s} {'label':>6s} {'set':>8s} {'accuracy':>8s} {'mean score':>10s}")
    for name, v in results.items():
        print(
            f"{name:24s} {('tissue' if v['label'] else 'not'):>6s} {('tuning' if v['tuning'] else 'held-out'):>8s} "
            f"{v['accuracy']:8.3f} {v['mean_score']:10.3f}"
        )
    print(
        f"held-out accuracy: tissue {summary['held_out_tissue_accuracy']:.3f}, not tissue "
        f"{summary['held_out_non_tissue_accuracy']:.3f} (desktops and blank screens: "
        f"{summary['held_out_screens_accuracy']:.3f}); worst held-out source: {summary['worst_held_out_source']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
