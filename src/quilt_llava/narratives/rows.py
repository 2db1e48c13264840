"""Rows: an analysis and a transcript to one ``narratives.jsonl`` row per segment (SPEC A)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from quilt_llava.files import iter_jsonl, write_jsonl
from quilt_llava.narratives.caption import grounded_caption
from quilt_llava.narratives.clustering import ground, make_clusterer
from quilt_llava.narratives.segments import Analysis
from quilt_llava.narratives.transcript import Transcript, Utterance


def video_id_for(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._") or "video"


def segment_utterances(transcript: Transcript | None, start: float, end: float) -> list[Utterance]:
    """Speech belonging to [start, end]: words (or, without word timings, utterances) whose midpoint lies inside."""
    if transcript is None:
        return []
    out: list[Utterance] = []
    for u in transcript.utterances:
        if u.words:
            words = [w for w in u.words if start <= 0.5 * (w.start + w.end) < end]
            if words:
                out.append(Utterance(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words)))
        elif start <= 0.5 * (u.start + u.end) < end:
            out.append(u)
    return out


def build_rows(
    analysis: Analysis, video_id: str, transcript: Transcript | None, method: str, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per segment, non-tissue views included (flagged: ``is_tissue`` false); trace
    points are fractions of the segment's own content box. ``seed`` seeds the clusterer's KMeans."""
    clusterer = make_clusterer(method, seed=seed)
    rows = []
    for i, seg in enumerate(analysis.segments):
        x0, y0, x1, y1 = seg.box or analysis.content_box
        cw, ch = x1 - x0, y1 - y0
        segment_id = f"{video_id}_{i:03d}"
        trace = [[round(t, 3), round((x - x0) / cw, 4), round((y - y0) / ch, 4)] for t, x, y in seg.trace]
        utterances = segment_utterances(transcript, seg.start, seg.end)
        spoken = [(u.start, u.end, u.text) for u in utterances]
        clusters = ground(trace, spoken, method=method, clusterer=clusterer)
        caption = grounded_caption([(c.text, c.box) for c in clusters], " ".join(u.text for u in utterances))
        rows.append(
            {
                "video_id": video_id,
                "segment_id": segment_id,
                "start": round(seg.start, 3),
                "end": round(seg.end, 3),
                "image": f"{video_id}/frames/{segment_id}.png",
                "width": cw,
                "height": ch,
                "content_box": [x0, y0, x1, y1],
                "trace": trace,
                "utterances": [u.to_dict() for u in utterances],
                "clusters": [c.to_dict() for c in clusters],
                "grounded_caption": caption,
                "tissue": round(seg.tissue, 3),
                "is_tissue": seg.is_tissue,
                # boxes (video px) of a pointer left in the view's median and taken out of the image;
                # known once the image is made (``Segment.ready()``): see ``pipeline.process_video``
                "pointer_removed": [list(r.box) for r in seg.removed],
            }
        )
    return rows


ROWS_FILE = "rows.jsonl"  # out_dir/<video_id>/rows.jsonl: a finished video's rows (its presence marks it done)
NARRATIVES_FILE = "narratives.jsonl"


def rebuild_narratives(out_dir: Path) -> int:
    """Rewrite ``out_dir/narratives.jsonl`` atomically from every finished video; returns the row count."""
    rows: list[dict[str, Any]] = []
    for rows_file in sorted(Path(out_dir).glob(f"*/{ROWS_FILE}")):
        rows.extend(iter_jsonl(rows_file, tolerate_torn_tail=False))
    return write_jsonl(Path(out_dir) / NARRATIVES_FILE, rows)
