"""Training data: LLaVA records to batches.

- :func:`load_records` reads LLaVA JSON (a list), JSONL, Parquet (how Hugging Face
  datasets are published) or a ``datasets.save_to_disk`` folder.
- :func:`resolve_image_path` keeps every image path inside the image folder.
- :class:`LlavaDataset` tokenizes every record up front (exact lengths for
  grouping, the masking report before any step runs) and opens images lazily,
  padded to a square with the image processor's mean colour (:func:`quilt_llava.model.prepare_image`).
- :class:`Collator` pads a batch; text-only samples mix with image samples (only
  the images present are stacked into ``pixel_values``).
- :class:`GroupedSampler` builds batches of similar length and one modality, like
  LLaVA's ``group_by_modality_length``; it is deterministic for (seed, epoch), so
  resuming mid-epoch replays the same order.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from quilt_llava.errors import InputError
from quilt_llava.files import iter_jsonl, read_json
from quilt_llava.images import ImageLimits, open_image
from quilt_llava.model.conversation import ConversationTemplate
from quilt_llava.model.processing import prepare_image
from quilt_llava.model.prompt import image_token_count
from quilt_llava.model.tensorize import IGNORE_INDEX, TokenizeReport, tensorize_all

GROUPINGS = ("modality_length", "length", "none")


def load_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """LLaVA-format records from ``.json`` / ``.jsonl`` / ``.parquet`` or a saved HF dataset folder."""
    path = Path(path)
    if path.is_dir():
        try:
            import datasets
        except ImportError:
            raise InputError(
                str(path),
                "a saved Hugging Face dataset folder needs the `datasets` package "
                "(pip install datasets); or give the data as .parquet, .jsonl or .json",
            ) from None
        return [dict(r) for r in datasets.load_from_disk(str(path))]
    if not path.exists():
        raise InputError(str(path), "data file not found")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = list(iter_jsonl(path))
    elif suffix == ".json":
        rows = read_json(path)
        if not isinstance(rows, list):
            raise InputError(str(path), "a LLaVA JSON file must hold a list of records")
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        raise InputError(str(path), f"unknown data format '{suffix}'; use .json, .jsonl, .parquet or a dataset folder")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"{path}:{i + 1}", "record is not an object")
        row.setdefault("id", str(i))
    return rows


def resolve_image_path(image_folder: str | os.PathLike[str] | None, image: str, row_id: str) -> Path:
    """``image`` under ``image_folder``; ``../`` escapes and outside absolute paths are rejected."""
    if image_folder is None:
        raise InputError(f"record {row_id}", f"has image '{image}' but no image_folder was given")
    root = Path(image_folder).resolve()
    candidate = Path(image)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if full != root and root not in full.parents:
        raise InputError(f"record {row_id}", f"image path '{image}' points outside the image folder {root}")
    return full


def image_of(record: dict[str, Any]) -> str:
    """The record's image path (a one-element list, as some LLaVA exports write it, is accepted)."""
    image = record["image"]
    return str(image[0] if isinstance(image, list) else image)


class LlavaDataset(torch.utils.data.Dataset):
    """Tokenized samples (kept records only) with lazily loaded images."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        processor,
        template: ConversationTemplate,
        max_length: int,
        image_folder: str | os.PathLike[str] | None = None,
        num_image_tokens: int | None = None,
        max_mismatch_fraction: float = 0.5,
        check_images: bool = True,
        limits: ImageLimits | None = None,
        keep_masked_out: bool = False,
    ) -> None:
        tokenizer = processor.tokenizer
        self.processor = processor
        self.image_folder = image_folder
        self.limits = limits or ImageLimits()
        self.num_image_tokens = num_image_tokens if num_image_tokens is not None else image_token_count(processor)
        image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
        samples, self.report = tensorize_all(
            records,
            tokenizer,
            template,
            self.num_image_tokens,
            image_token_id,
            max_length,
            max_mismatch_fraction,
            keep_masked_out=keep_masked_out,
        )
        kept = [(s, r) for s, r in zip(samples, records) if s.ok]
        self.samples = [s for s, _ in kept]
        self.image_paths: list[Path | None] = []
        missing: list[str] = []
        for s, r in kept:
            if s.has_image:
                p = resolve_image_path(image_folder, image_of(r), s.id)
                if check_images and not p.is_file():
                    missing.append(f"{s.id} ({p})")
                self.image_paths.append(p)
            else:
                self.image_paths.append(None)
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise InputError(str(image_folder), f"{len(missing)} image(s) not found: " + ", ".join(missing[:10]) + more)
        if not self.samples:
            raise InputError("training data", "no usable records")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def lengths(self) -> list[int]:
        return [s.length for s in self.samples]

    @property
    def has_image(self) -> list[bool]:
        return [s.has_image for s in self.samples]

    def load_pixels(self, index: int) -> torch.Tensor:
        path = self.image_paths[index]
        try:
            image = open_image(path, self.limits)
        except InputError as exc:
            raise InputError(f"record {self.samples[index].id}", exc.reason + f" ({path})") from None
        pixels = self.processor.image_processor(images=[prepare_image(image, self.processor)], return_tensors="pt")[
            "pixel_values"
        ]
        return pixels[0]  # (3, H, W)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        item: dict[str, Any] = {
            "input_ids": torch.tensor(s.input_ids, dtype=torch.long),
            "labels": torch.tensor(s.labels, dtype=torch.long),
        }
        if s.has_image:
            item["pixel_values"] = self.load_pixels(index)
        return item


@dataclass
class Collator:
    """Right-pads ``input_ids`` with the pad id and ``labels`` with -100; stacks present images."""

    pad_token_id: int

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(b["input_ids"]) for b in batch)
        n = len(batch)
        input_ids = torch.full((n, longest), self.pad_token_id, dtype=torch.long)  # (batch, seq)
        labels = torch.full((n, longest), IGNORE_INDEX, dtype=torch.long)  # (batch, seq)
        attention_mask = torch.zeros((n, longest), dtype=torch.long)  # (batch, seq)
        for i, b in enumerate(batch):
            k = len(b["input_ids"])
            input_ids[i, :k] = b["input_ids"]
            labels[i, :k] = b["labels"]
            attention_mask[i, :k] = 1
        out = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        images = [b["pixel_values"] for b in batch if "pixel_values" in b]
        if images:
            out["pixel_values"] = torch.stack(images)  # (n_images, 3, H, W)
        return out


class GroupedSampler(torch.utils.data.Sampler[int]):
    """Indices in ``group_size`` chunks of similar length (and one modality for ``modality_length``).

    ``group_size`` is the global batch (per-device batch x processes x accumulation), so
    every optimizer step sees one group; groups are shuffled. Deterministic for (seed, epoch).
    """

    def __init__(
        self, lengths: list[int], has_image: list[bool], group_size: int, mode: str = "modality_length", seed: int = 0
    ) -> None:
        if mode not in GROUPINGS:
            raise ValueError(f"grouping '{mode}' is not one of {GROUPINGS}")
        self.lengths, self.has_image = lengths, has_image
        self.group_size, self.mode, self.seed = max(1, group_size), mode, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def _groups(self, indices: list[int], rng: random.Random) -> list[list[int]]:
        rng.shuffle(indices)
        # Sort within windows of 50 groups: batches of similar length, order still random.
        window = self.group_size * 50
        groups: list[list[int]] = []
        for start in range(0, len(indices), window):
            chunk = sorted(indices[start : start + window], key=lambda i: -self.lengths[i])
            groups.extend(chunk[j : j + self.group_size] for j in range(0, len(chunk), self.group_size))
        return groups

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        all_idx = list(range(len(self.lengths)))
        if self.mode == "none":
            rng.shuffle(all_idx)
            return iter(all_idx)
        if self.mode == "length":
            groups = self._groups(all_idx, rng)
        else:
            img = [i for i in all_idx if self.has_image[i]]
            txt = [i for i in all_idx if not self.has_image[i]]
            groups = self._groups(img, rng) + self._groups(txt, rng)
        # Partial groups (one per modality at most) go last so full steps stay pure.
        full = [g for g in groups if len(g) == self.group_size]
        partial = [g for g in groups if len(g) < self.group_size]
        rng.shuffle(full)
        return iter([i for g in full + partial for i in g])


def padding_share(batches: list[list[int]], lengths: list[int]) -> float:
    """Share of padding tokens when each batch is padded to its longest sample."""
    total = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    real = sum(lengths[i] for b in batches for i in b)
    return 1.0 - real / total if total else 0.0


__all__ = [
    "GROUPINGS",
    "Collator",
    "GroupedSampler",
    "LlavaDataset",
    "TokenizeReport",
    "load_records",
    "padding_share",
    "resolve_image_path",
]
