"""Red-circle variant of evaluation questions: the same question, asked about a copy of
the image with an ellipse drawn around the region the narrator pointed at while asking.

Reads the ``vqa`` output (``--questions``) and the narratives; writes the circled
images next to the originals (``<stem>_redcircle_c<cluster>.png``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from quilt_llava.errors import ConfigError, InputError
from quilt_llava.files import atomic_open, iter_jsonl
from quilt_llava.images import draw_region_ellipse, open_image
from quilt_llava.instruct.data import _safe
from quilt_llava.instruct.generators.base import Generator, Rejected, Session, Unit

PROMPT_VERSION = "1"


def pick_cluster(row: dict[str, Any], span: list[Any] | None) -> int | None:
    """The cluster most overlapping ``span`` in time, else the nearest in time, else the first."""
    clusters = row.get("clusters") or []
    if not clusters:
        return None
    if not span or span[0] is None or span[1] is None:
        return 0
    s, e = float(span[0]), float(span[1])

    def overlap(c: dict[str, Any]) -> float:
        return min(e, float(c.get("end", 0.0))) - max(s, float(c.get("start", 0.0)))

    def distance(c: dict[str, Any]) -> float:
        return abs((float(c.get("start", 0.0)) + float(c.get("end", 0.0))) / 2 - (s + e) / 2)

    best = max(range(len(clusters)), key=lambda i: overlap(clusters[i]))
    if overlap(clusters[best]) > 0:
        return best
    return min(range(len(clusters)), key=lambda i: distance(clusters[i]))


def circled_image_path(image: str, cluster: int) -> str:
    p = PurePosixPath(image)
    return str(p.with_name(f"{p.stem}_redcircle_c{cluster}.png"))


class RedCircleGenerator(Generator):
    name = "redcircle"
    prompt_version = PROMPT_VERSION
    uses_llm = False
    kind = "table"
    max_calls_per_unit = 0

    def units(self, rows: list[dict[str, Any]]) -> list[Unit]:
        if self.options.questions_path is None:
            raise ConfigError("redcircle needs --questions (the output of `quilt-llava instruct vqa`)")
        by_segment = {(str(r["video_id"]), str(r.get("segment_id"))): r for r in rows}
        units = []
        for q in iter_jsonl(self.options.questions_path):
            qid = str(q.get("question_id") or q.get("id") or "")
            row = by_segment.get((str(q.get("video_id")), str(q.get("segment_id"))))
            units.append(
                Unit(
                    _safe(qid) if qid else f"line{len(units) + 1}",
                    str(q.get("video_id")),
                    [row] if row else [],
                    {"question": q},
                )
            )
        return units

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        q = unit.extra["question"]
        if not unit.rows:
            raise Rejected(f"segment {q.get('video_id')}/{q.get('segment_id')} is not in the narratives", None)
        row = unit.row
        ci = pick_cluster(row, q.get("narrator_time"))
        if ci is None:
            raise Rejected("the segment has no grounded region to circle", None)
        box = row["clusters"][ci]["box"]
        rel = circled_image_path(row["image"], ci)
        dest = Path(self.options.narratives_dir) / rel
        if not dest.exists():
            try:
                image = open_image(Path(self.options.narratives_dir) / row["image"])
            except InputError as exc:
                raise Rejected(str(exc), None) from None
            with atomic_open(dest, "wb") as fh:
                draw_region_ellipse(image, box).save(fh, format="PNG")
        qid = f"{q.get('question_id') or unit.id}-redcircle"
        return [
            {
                **q,
                "id": qid,
                "question_id": qid,
                "image": rel,
                "source_image": row["image"],
                "red_circle_box": box,
                "red_circle_cluster": ci,
                "source_question_id": q.get("question_id"),
                "generator": self.name,
                "prompt_version": self.prompt_version,
            }
        ]
