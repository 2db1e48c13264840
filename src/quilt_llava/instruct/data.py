"""Reading narratives rows and shaping LLaVA records.

A narratives row (stage A) is one stable segment of a video:
``{video_id, segment_id, start, end, image, width, height, content_box, trace,
utterances: [{start, end, text}], clusters: [{box, start, end, text}], grounded_caption}``
with ``image`` relative to the folder holding ``narratives.jsonl``; rows kept with
``narratives extract --keep-non-tissue`` also carry ``is_tissue: false``. LLaVA records
written here reference images the same way, so that folder is the image folder
for training.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from quilt_llava.files import iter_jsonl

REQUIRED_KEYS = ("video_id", "segment_id", "image")
CAPTION_MODES = ("grounded", "plain")


def segment_uid(row: dict[str, Any]) -> str:
    """A stable id for one segment, safe in file names and record ids."""
    return f"{_safe(row['video_id'])}__{_safe(row['segment_id'])}"


def _safe(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip("-") or "x"


def check_row(row: dict[str, Any]) -> list[str]:
    """Problems that make a row unusable (empty list when fine)."""
    problems = [f"missing key '{k}'" for k in REQUIRED_KEYS if k not in row]
    if not isinstance(row.get("utterances", []), list):
        problems.append("'utterances' must be a list")
    if not isinstance(row.get("clusters", []), list):
        problems.append("'clusters' must be a list")
    for i, c in enumerate(row.get("clusters") or []):
        box = c.get("box") if isinstance(c, dict) else None
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            problems.append(f"clusters[{i}].box must be 4 numbers")
    return problems


def load_narratives(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of ``narratives.jsonl`` and the problems of rows left out (``file:line: reason``)."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[str] = set()
    # iter_jsonl names file:line on bad JSON; line numbers here count non-empty rows.
    for lineno, row in enumerate(iter_jsonl(path), start=1):
        bad = check_row(row)
        if not bad:
            uid = segment_uid(row)
            if uid in seen:
                bad = [f"duplicate segment {row['video_id']}/{row['segment_id']}"]
            seen.add(uid)
        if bad:
            problems.append(f"{path}:{lineno}: {'; '.join(bad)}")
            continue
        rows.append(row)
    return rows, problems


def drop_non_tissue(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rows of tissue views and how many were left out: a row flagged ``is_tissue: false`` (a
    title slide, the presenter's camera, the desktop, kept by ``--keep-non-tissue``) teaches
    nothing about pathology. A row without the flag (another tool's data) counts as tissue."""
    kept = [row for row in rows if row.get("is_tissue") is not False]
    return kept, len(rows) - len(kept)


def plain_caption(row: dict[str, Any]) -> str:
    """The narration of the segment: its utterances joined, in time order."""
    utts = sorted(row.get("utterances") or [], key=lambda u: (u.get("start", 0.0), u.get("end", 0.0)))
    text = " ".join(str(u.get("text", "")).strip() for u in utts)
    return re.sub(r"\s+", " ", text).strip()


def caption_of(row: dict[str, Any], mode: str = "plain") -> str:
    """``plain`` (utterances joined) or ``grounded`` (clusters with boxes; plain if none)."""
    if mode not in CAPTION_MODES:
        raise ValueError(f"caption mode must be one of {CAPTION_MODES}, got {mode!r}")
    if mode == "grounded":
        grounded = str(row.get("grounded_caption") or "").strip()
        if grounded:
            return grounded
    return plain_caption(row)


def format_box(box: list[float]) -> str:
    return "[" + ", ".join(f"{min(1.0, max(0.0, float(v))):.2f}" for v in box) + "]"


def describe_segment(row: dict[str, Any]) -> str:
    """What an LLM is shown about one image: the narration and the regions pointed at."""
    lines = ["Narration spoken while this image was on screen:", plain_caption(row) or "(nothing was said)"]
    clusters = [c for c in row.get("clusters") or [] if str(c.get("text", "")).strip()]
    if clusters:
        lines += [
            "",
            "Regions pointed at while speaking (box = [left, top, right, bottom], fractions of the image size):",
        ]
        for i, c in enumerate(clusters, start=1):
            lines.append(f"{i}. box {format_box(c['box'])}: {str(c['text']).strip()}")
    return "\n".join(lines)


def group_by_video(rows: list[dict[str, Any]]) -> OrderedDict[str, list[dict[str, Any]]]:
    """Rows per video in first-seen order, each video's rows by start time."""
    groups: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for row in rows:
        groups.setdefault(str(row["video_id"]), []).append(row)
    for vid, vrows in groups.items():
        groups[vid] = sorted(vrows, key=lambda r: (float(r.get("start", 0.0) or 0.0), str(r["segment_id"])))
    return groups


def video_transcript(rows: list[dict[str, Any]]) -> str:
    """The whole narration of a video, segment by segment, in time order."""
    parts = []
    for row in rows:
        text = plain_caption(row)
        if text:
            parts.append(text)
    return "\n".join(parts)


def llava_record(
    record_id: str,
    image: str,
    turns: list[tuple[str, str]],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """A LLaVA record from (question, answer) turns; ``<image>`` opens the first human turn."""
    conversations = []
    for i, (question, answer) in enumerate(turns):
        value = f"<image>\n{question}" if i == 0 else question
        conversations.append({"from": "human", "value": value})
        conversations.append({"from": "gpt", "value": answer})
    return {"id": record_id, "image": image, "conversations": conversations, **provenance}


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)
