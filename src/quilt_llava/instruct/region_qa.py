"""Region question/answer data from grounded narratives, without an LLM.

Each grounded cluster of a narrative row (its box and the words the narrator spoke
while pointing there) is turned into image crops of the box and questions whose
answers follow from the narrator's words:

- a *label* is assigned to the cluster from a user-given vocabulary: each label
  lists keywords; the label with the most keyword hits in the cluster text wins,
  and clusters with no hit or a tie are skipped (and counted);
- for every label with a closed question, a yes/no question is asked ("yes" when
  the cluster's label is that label);
- an open question is answered with the label's description.

The output is LLaVA-format training records and Quilt-VQA-form evaluation
questions, split by segment so that no evaluated view was seen in training. This
is a cheap, transparent probe set for a pathology vocabulary of your choice (stain
status, tissue type...), and what the end-to-end demo trains and evaluates on.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from quilt_llava.errors import ConfigError, InputError
from quilt_llava.files import atomic_open

OPEN_TYPE = "OPEN"
CLOSED_TYPE = "CLOSED"


@dataclass
class RegionLabel:
    """One answerable property of a region."""

    name: str
    keywords: list[str]
    description: str  # the open answer for regions with this label
    closed_question: str | None = None  # answered "Yes"/"No"


@dataclass
class RegionQAConfig:
    labels: list[RegionLabel]
    open_question: str = "What does the marked region show?"
    crops_per_cluster: int = 8
    eval_crops_per_cluster: int = 2
    min_crop_fraction: float = 0.6  # crop side as a fraction of the box's shorter side
    min_crop_px: int = 24
    max_saved_side: int | None = None  # downscale saved crops to this side (the model sees small inputs anyway)
    eval_fraction: float = 0.3  # share of segments held out for evaluation
    seed: int = 0

    def validate(self) -> None:
        problems = []
        names = [lab.name for lab in self.labels]
        if len(self.labels) < 2:
            problems.append("labels: at least two labels are needed")
        if len(set(names)) != len(names):
            problems.append(f"labels: duplicate names in {names}")
        for lab in self.labels:
            if not lab.keywords:
                problems.append(f"labels.{lab.name}: keywords must not be empty")
        if not 0.0 < self.eval_fraction < 1.0:
            problems.append(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        if not 0.0 < self.min_crop_fraction <= 1.0:
            problems.append(f"min_crop_fraction must be in (0, 1], got {self.min_crop_fraction}")
        if self.crops_per_cluster < 1 or self.eval_crops_per_cluster < 1:
            problems.append("crops_per_cluster and eval_crops_per_cluster must be >= 1")
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegionQAConfig:
        data = dict(data)
        try:
            labels = [RegionLabel(**lab) for lab in data.pop("labels")]
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"labels: {exc}") from None
        known = set(cls.__dataclass_fields__) - {"labels"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError([f"unknown key '{k}' (valid: {sorted(known)})" for k in unknown])
        cfg = cls(labels=labels, **data)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> RegionQAConfig:
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(str(path), "config file not found") from None
        except yaml.YAMLError as exc:
            raise InputError(str(path), f"invalid YAML ({exc})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(exc.problems, source=str(path)) from None


@dataclass
class RegionQAResult:
    train_records: list[dict[str, Any]] = field(default_factory=list)
    align_records: list[dict[str, Any]] = field(default_factory=list)
    eval_questions: list[dict[str, Any]] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    skipped_clusters: list[dict[str, str]] = field(default_factory=list)
    eval_segments: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "train_records": len(self.train_records),
            "align_records": len(self.align_records),
            "eval_questions": len(self.eval_questions),
            "label_counts": self.label_counts,
            "skipped_clusters": len(self.skipped_clusters),
            "eval_segments": len(self.eval_segments),
        }


_WORD = re.compile(r"[a-z0-9']+")


def label_text(text: str, labels: list[RegionLabel]) -> str | None:
    """The label with the most keyword hits in ``text``; ``None`` on no hit or a tie."""
    lowered = " " + " ".join(_WORD.findall(text.lower())) + " "
    hits = {
        lab.name: sum(lowered.count(" " + " ".join(_WORD.findall(k.lower())) + " ") for k in lab.keywords)
        for lab in labels
    }
    best = max(hits.values())
    if best == 0 or list(hits.values()).count(best) > 1:
        return None
    return next(name for name, n in hits.items() if n == best)


def segment_key(row: dict[str, Any]) -> str:
    return f"{row['video_id']}/{row['segment_id']}"


def split_segments(rows: list[dict[str, Any]], eval_fraction: float, seed: int) -> set[str]:
    """Choose held-out segments deterministically (by a seeded hash order, not file order)."""
    keys = sorted({segment_key(r) for r in rows})
    keys.sort(key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    n_eval = max(1, round(len(keys) * eval_fraction)) if len(keys) > 1 else 0
    return set(keys[:n_eval])


def _crop_boxes(
    box_px: tuple[int, int, int, int], n: int, cfg: RegionQAConfig, rng: random.Random
) -> list[tuple[int, int, int, int]]:
    x0, y0, x1, y1 = box_px
    bw, bh = x1 - x0, y1 - y0
    short = min(bw, bh)
    out = []
    for _ in range(n):
        side = max(cfg.min_crop_px, round(short * rng.uniform(cfg.min_crop_fraction, 1.0)))
        side_w, side_h = min(side, bw), min(side, bh)
        cx = x0 + rng.randint(0, max(0, bw - side_w))
        cy = y0 + rng.randint(0, max(0, bh - side_h))
        out.append((cx, cy, cx + side_w, cy + side_h))
    return out


def build_region_qa(
    rows: list[dict[str, Any]],
    narratives_dir: str | Path,
    out_dir: str | Path,
    config: RegionQAConfig,
) -> RegionQAResult:
    """Write crops under ``out_dir/crops`` and return records (image paths relative to ``out_dir``)."""
    config.validate()
    narratives_dir, out_dir = Path(narratives_dir), Path(out_dir)
    (out_dir / "crops").mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    held_out = split_segments(rows, config.eval_fraction, config.seed)
    result = RegionQAResult(eval_segments=sorted(held_out))
    counts: Counter[str] = Counter()
    for row in rows:
        if row.get("clusters"):
            _add_segment(row, narratives_dir, out_dir, segment_key(row) in held_out, config, rng, result, counts)
    result.label_counts = dict(sorted(counts.items()))
    return result


def _add_segment(
    row: dict[str, Any],
    narratives_dir: Path,
    out_dir: Path,
    is_eval: bool,
    config: RegionQAConfig,
    rng: random.Random,
    result: RegionQAResult,
    counts: Counter[str],
) -> None:
    """Crops and records of one segment's labelled clusters (``rng`` is drawn in a fixed order)."""
    key = segment_key(row)
    image_path = narratives_dir / row["image"]
    try:
        with Image.open(image_path) as im:
            image = im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise InputError(str(image_path), f"segment image of {key} is unreadable ({exc})") from None
    w, h = image.size
    for ci, cluster in enumerate(row["clusters"]):
        label = label_text(cluster.get("text", ""), config.labels)
        if label is None:
            result.skipped_clusters.append({"segment": key, "cluster": str(ci), "reason": "no unique label in text"})
            continue
        x0, y0, x1, y1 = cluster["box"]
        box_px = (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h))
        if box_px[2] - box_px[0] < 4 or box_px[3] - box_px[1] < 4:
            result.skipped_clusters.append({"segment": key, "cluster": str(ci), "reason": "box too small"})
            continue
        counts[label] += 1
        provenance = {
            "video_id": row["video_id"],
            "segment_id": row["segment_id"],
            "cluster": ci,
            "label": label,
            "box": cluster["box"],
            "generator": "region_qa",
        }
        questions = _questions_for(label, config)
        n = config.eval_crops_per_cluster if is_eval else config.crops_per_cluster
        for k, crop in enumerate(_crop_boxes(box_px, n, config, rng)):
            stem = f"{row['video_id']}_{row['segment_id']}_c{ci}_{k}".replace("/", "_")
            rel = f"crops/{stem}.png"
            _save_patch(
                image.crop(crop),
                out_dir / rel,
                mirror=not is_eval and rng.random() < 0.5,
                max_side=config.max_saved_side,
            )
            if is_eval:
                result.eval_questions.extend(_eval_items(stem, rel, questions, provenance))
            else:
                _add_training_records(result, stem, rel, cluster["text"].strip(), questions, provenance)


def _questions_for(label: str, config: RegionQAConfig) -> list[tuple[str, str, str, str | None]]:
    """(question, answer, answer type, yes/no or None): the open question, then each closed one."""
    description = {lab.name: lab for lab in config.labels}[label].description
    questions: list[tuple[str, str, str, str | None]] = [(config.open_question, description, OPEN_TYPE, None)]
    for lab in config.labels:
        if lab.closed_question:
            yn = "yes" if lab.name == label else "no"
            questions.append((lab.closed_question, f"{yn.capitalize()}.", CLOSED_TYPE, yn))
    return questions


def _save_patch(patch: Image.Image, path: Path, mirror: bool, max_side: int | None) -> None:
    """Mirror and shrink as asked, then write the PNG atomically."""
    if mirror:
        patch = ImageOps.mirror(patch)
    if max_side and max(patch.size) > max_side:
        patch.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    with atomic_open(path, "wb") as fh:
        patch.save(fh, format="PNG")


def _eval_items(
    stem: str, rel: str, questions: list[tuple[str, str, str, str | None]], provenance: dict[str, Any]
) -> list[dict[str, Any]]:
    items = []
    for qi, (q, a, qtype, yn) in enumerate(questions):
        item = {
            "question_id": f"{stem}_q{qi}",
            "image": rel,
            "question": q,
            "answer": a,
            "answer_type": qtype,
            **provenance,
        }
        if yn is not None:
            item["yes_no_answer"] = yn
        items.append(item)
    return items


def _add_training_records(
    result: RegionQAResult,
    stem: str,
    rel: str,
    words: str,
    questions: list[tuple[str, str, str, str | None]],
    provenance: dict[str, Any],
) -> None:
    result.align_records.append(
        {
            "id": f"{stem}_align",
            "image": rel,
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe this region briefly."},
                {"from": "gpt", "value": words},
            ],
            **provenance,
        }
    )
    for qi, (q, a, qtype, _) in enumerate(questions):
        result.train_records.append(
            {
                "id": f"{stem}_q{qi}",
                "image": rel,
                "conversations": [
                    {"from": "human", "value": f"<image>\n{q}"},
                    {"from": "gpt", "value": a},
                ],
                "answer_type": qtype,
                **provenance,
            }
        )


def majority_predictions(
    train_records: list[dict[str, Any]], eval_questions: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """The majority baseline as predictions: for each evaluation question, the answer given
    most often to the same question text in training (score them like a model's)."""
    per_question: dict[str, Counter[str]] = {}
    for rec in train_records:
        q = rec["conversations"][0]["value"].replace("<image>\n", "")
        per_question.setdefault(q, Counter())[rec["conversations"][1]["value"]] += 1
    overall = Counter(rec["conversations"][1]["value"] for rec in train_records)
    fallback = overall.most_common(1)[0][0] if overall else ""
    preds = []
    for q in eval_questions:
        counter = per_question.get(q["question"])
        preds.append({"question_id": q["question_id"], "text": counter.most_common(1)[0][0] if counter else fallback})
    return preds


def write_region_qa(
    narratives: str | Path,
    out_dir: str | Path,
    config: RegionQAConfig,
    seed: int | None = None,
    include_non_tissue: bool = False,
) -> dict[str, Any]:
    """Everything a two-stage run needs, under ``out_dir`` (all image paths relative to it):

    - ``align.jsonl``: stage-1 records, the training segments' images (copied to
      ``segments/``) with their narration, plus each training crop with its cluster's words;
    - ``train.jsonl``: stage-2 region questions on training crops;
    - ``eval_questions.jsonl`` (Quilt-VQA form) on held-out segments, ``held_out.json``;
    - ``summary.json``. Bad narrative rows are left out and counted (``bad_input_rows``), and so
      are rows flagged ``is_tissue: false`` unless ``include_non_tissue`` (``non_tissue_skipped``).
    """
    from quilt_llava.files import atomic_write_bytes, write_json, write_jsonl
    from quilt_llava.instruct.data import drop_non_tissue, load_narratives
    from quilt_llava.instruct.generators.align import build_alignment_records

    narratives, out_dir = Path(narratives), Path(out_dir)
    rows, problems = load_narratives(narratives)
    non_tissue = 0
    if not include_non_tissue:
        rows, non_tissue = drop_non_tissue(rows)
    res = build_region_qa(rows, narratives.parent, out_dir, config)
    held = set(res.eval_segments)
    train_rows = [r for r in rows if segment_key(r) not in held]
    segment_align = build_alignment_records(train_rows, seed=config.seed if seed is None else seed)
    for rec in segment_align:
        atomic_write_bytes(out_dir / "segments" / rec["image"], (narratives.parent / rec["image"]).read_bytes())
        rec["image"] = f"segments/{rec['image']}"
    write_jsonl(out_dir / "align.jsonl", segment_align + res.align_records)
    write_jsonl(out_dir / "train.jsonl", res.train_records)
    write_jsonl(out_dir / "eval_questions.jsonl", res.eval_questions)
    write_json(out_dir / "held_out.json", sorted(held))
    summary = {
        **res.summary(),
        "segment_align_records": len(segment_align),
        "out": str(out_dir),
        "bad_input_rows": len(problems),
        "non_tissue_skipped": non_tissue,
        "problems": problems,
    }
    write_json(out_dir / "summary.json", summary)
    return summary
