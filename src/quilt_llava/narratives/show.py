"""A visual check of extracted narratives: traces and boxes drawn on segment images.

``write_show(DIR)`` reads ``DIR/narratives.jsonl`` and writes, under ``DIR/show/`` by
default, one PNG per segment (the cursor trace coloured by time, early = dark purple,
late = yellow, and the cluster boxes numbered and coloured) and ``index.html``: a
self-contained page listing every segment with its times, grounded caption and
clusters. Images are referenced by relative paths so the folder can be moved or
zipped as is; every caption is HTML-escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from quilt_llava.errors import InputError
from quilt_llava.files import atomic_open, atomic_write_text, iter_jsonl

# Distinct box colours (RGB), cycled by cluster index.
BOX_COLORS = [
    (230, 25, 75),
    (0, 130, 200),
    (245, 130, 48),
    (60, 180, 75),
    (145, 30, 180),
    (240, 50, 230),
]
MIN_DRAW_WIDTH = 480  # smaller segment images are enlarged so the drawing stays legible


@dataclass
class ShowEntry:
    row: dict[str, Any]
    png: str | None  # relative to the HTML page; None when the segment image was unusable
    problem: str | None = None


def time_colors(n: int) -> np.ndarray:
    """``n`` RGB colours from the viridis colormap, first = earliest."""
    import cv2

    if n <= 0:
        return np.zeros((0, 3), np.uint8)
    ramp = np.linspace(0, 255, n).round().astype(np.uint8).reshape(-1, 1)
    bgr = cv2.applyColorMap(ramp, cv2.COLORMAP_VIRIDIS).reshape(-1, 3)
    return bgr[:, ::-1].copy()


def draw_segment(image: Image.Image, trace: list[list[float]], clusters: list[dict[str, Any]]) -> Image.Image:
    """Return a copy of ``image`` with the trace (colour = time) and numbered cluster boxes."""
    img = image.convert("RGB")
    if img.width < MIN_DRAW_WIDTH:
        scale = MIN_DRAW_WIDTH / img.width
        img = img.resize((MIN_DRAW_WIDTH, max(1, round(img.height * scale))), Image.Resampling.BICUBIC)
    w, h = img.size
    draw = ImageDraw.Draw(img)
    lw = max(2, round(min(w, h) / 250))
    points = [(float(x) * w, float(y) * h) for _, x, y in trace]
    times = [float(t) for t, _, _ in trace]
    colors = [tuple(int(v) for v in c) for c in time_colors(len(points))]
    gaps = np.diff(times) if len(times) > 1 else np.zeros(0)
    # Join consecutive points unless the cursor was absent for a while in between.
    max_gap = max(0.5, 3 * float(np.median(gaps))) if len(gaps) else 0.0
    for i in range(1, len(points)):
        if gaps[i - 1] <= max_gap:
            draw.line([points[i - 1], points[i]], fill=colors[i], width=lw)
    r = lw + 1
    for (x, y), c in zip(points, colors):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=c)
    for k, cluster in enumerate(clusters):
        x1, y1, x2, y2 = (float(v) for v in cluster["box"])
        color = BOX_COLORS[k % len(BOX_COLORS)]
        box = [min(x1, x2) * w, min(y1, y2) * h, max(x1, x2) * w, max(y1, y2) * h]
        draw.rectangle(box, outline=color, width=lw + 1)
        label = str(k + 1)
        tx, ty = box[0] + lw + 2, box[1] + lw + 1
        draw.rectangle([tx - 2, ty - 1, tx + 8 * len(label) + 2, ty + 12], fill=color)
        draw.text((tx, ty), label, fill=(255, 255, 255))
    return img


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:80] or "segment"


def show_image_name(index: int, row: dict[str, Any]) -> str:
    """File name (under ``<show>/images/``) of the drawing of row ``index`` of narratives.jsonl."""
    return f"{index:05d}_{_slug(str(row.get('video_id', '')))}_{_slug(str(row.get('segment_id', index)))}.png"


def write_show(narratives_dir: Path | str, out_dir: Path | str | None = None) -> Path:
    """Draw every row of ``narratives_dir/narratives.jsonl``; return the path of the HTML page."""
    narratives_dir = Path(narratives_dir)
    jsonl = narratives_dir / "narratives.jsonl"
    if not jsonl.is_file():
        raise InputError(str(jsonl), "no narratives.jsonl here; run `quilt-llava narratives extract` first")
    out = Path(out_dir) if out_dir is not None else narratives_dir / "show"
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    entries: list[ShowEntry] = []
    for i, row in enumerate(iter_jsonl(jsonl)):
        name = show_image_name(i, row)
        image_rel = row.get("image")
        if not isinstance(image_rel, str):
            entries.append(ShowEntry(row, None, "row has no segment image path"))
            continue
        src = narratives_dir / image_rel
        try:
            with Image.open(src) as im:
                im.load()
                drawn = draw_segment(im, row.get("trace") or [], row.get("clusters") or [])
        except (OSError, ValueError) as exc:
            entries.append(ShowEntry(row, None, f"cannot read {image_rel}: {exc}"))
            continue
        with atomic_open(images_dir / name, "wb") as fh:
            drawn.save(fh, format="PNG")
        entries.append(ShowEntry(row, f"images/{name}"))
    page = out / "index.html"
    atomic_write_text(page, render_html(entries, title=f"Narratives: {narratives_dir.name}"))
    return page


def _fmt_time(t: Any) -> str:
    try:
        return f"{float(t):.2f}s"
    except (TypeError, ValueError):
        return "?"


def render_html(entries: list[ShowEntry], title: str) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>",
        "body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}",
        ".seg{display:flex;gap:1.5em;align-items:flex-start;background:#fff;border:1px solid #ddd;"
        "border-radius:6px;padding:1em;margin-bottom:1.2em}",
        ".seg img{max-width:60vw;height:auto;border:1px solid #ccc}",
        ".meta{color:#666;font-size:.9em}.caption{font-size:1.05em;line-height:1.45}",
        ".chip{display:inline-block;width:.9em;height:.9em;border-radius:2px;margin-right:.4em;vertical-align:middle}",
        ".legend{height:.8em;width:16em;display:inline-block;vertical-align:middle;"
        "background:linear-gradient(to right,#440154,#3b528b,#21918c,#5ec962,#fde725)}",
        ".problem{color:#b00}",
        "</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p>{len(entries)} segments. Trace colour = time: start <span class="legend"></span> end. '
        "Boxes are the clusters, numbered as listed.</p>",
    ]
    for entry in entries:
        row = entry.row
        head = (
            f"{e(str(row.get('video_id', '?')))} / segment {e(str(row.get('segment_id', '?')))}"
            f" &middot; {_fmt_time(row.get('start'))} - {_fmt_time(row.get('end'))}"
            f" &middot; {len(row.get('trace') or [])} trace points"
        )
        if row.get("is_tissue") is False:  # kept with --keep-non-tissue
            head += f" &middot; not tissue (score {float(row.get('tissue', 0.0)):.2f})"
        parts.append('<div class="seg">')
        if entry.png is not None:
            parts.append(f'<a href="{e(entry.png)}"><img src="{e(entry.png)}" alt="segment image"></a>')
        parts.append("<div>")
        parts.append(f'<div class="meta">{head}</div>')
        if entry.problem:
            parts.append(f'<p class="problem">{e(entry.problem)}</p>')
        parts.append(f'<p class="caption">{e(str(row.get("grounded_caption", "")))}</p>')
        clusters = row.get("clusters") or []
        if clusters:
            parts.append("<ol>")
            for k, c in enumerate(clusters):
                r, g, b = BOX_COLORS[k % len(BOX_COLORS)]
                box = ", ".join(f"{float(v):.2f}" for v in c.get("box", []))
                parts.append(
                    f'<li><span class="chip" style="background:rgb({r},{g},{b})"></span>'
                    f"[{e(box)}] {_fmt_time(c.get('start'))} - {_fmt_time(c.get('end'))}: "
                    f"{e(str(c.get('text', '')))}</li>"
                )
            parts.append("</ol>")
        utts = row.get("utterances") or []
        if utts:
            parts.append("<details><summary>utterances</summary><ul>")
            for u in utts:
                parts.append(f"<li>{_fmt_time(u.get('start'))}: {e(str(u.get('text', '')))}</li>")
            parts.append("</ul></details>")
        parts.append("</div></div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
