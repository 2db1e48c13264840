"""LLaVA-format records to ``input_ids`` and ``labels``: where the loss mask is made.

A record ``{id, image?, conversations: [{from, value}, ...]}`` is rendered with a
conversation template into :class:`~quilt_llava.model.conversation.Segment` s;
each segment is tokenized on its own, so the boundary between prompt text (label
-100) and trained text (assistant answers and their end-of-turn token) is exact
whatever the tokenizer merges across it. ``<image>`` is expanded to the
processor's number of image tokens (label -100).

After tokenizing, every trained segment is decoded back and compared with its
text. A record where that fails (a tokenizer that cannot represent the text, a
misaligned template) is *not* trained on: it is returned with ``ok=False`` and a
reason, and :class:`TokenizeReport` counts it by id; callers stop the run when
most records fail instead of training on zero loss.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from quilt_llava.errors import QuiltError
from quilt_llava.model.conversation import IMAGE_TOKEN, ConversationTemplate, Segment

IGNORE_INDEX = -100


@dataclass
class TokenizedSample:
    id: str
    input_ids: list[int]
    labels: list[int]
    has_image: bool
    ok: bool = True
    problem: str = ""
    truncated: bool = False

    @property
    def length(self) -> int:
        return len(self.input_ids)


@dataclass
class TokenizeReport:
    """Counts over a tokenized data set; ``mismatched_ids`` name every record not trained on."""

    total: int = 0
    kept: int = 0
    truncated: int = 0
    mismatched_ids: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)

    def add(self, sample: TokenizedSample) -> None:
        self.total += 1
        if sample.ok:
            self.kept += 1
            self.truncated += int(sample.truncated)
        else:
            self.mismatched_ids.append(sample.id)
            self.problems[sample.id] = sample.problem

    @property
    def mismatch_fraction(self) -> float:
        return len(self.mismatched_ids) / self.total if self.total else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.total,
            "kept": self.kept,
            "truncated": self.truncated,
            "mismatched": len(self.mismatched_ids),
            "mismatched_ids": list(self.mismatched_ids),
        }


class MaskingError(QuiltError):
    """Too many records could not be masked; training would learn from (almost) nothing."""


def record_messages(record: dict[str, Any]) -> list[dict[str, str]]:
    """The record's conversation, with ``<image>`` put first in the first human turn when an image is attached."""
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise ValueError("'conversations' must be a non-empty list of {from, value} turns")
    messages = [dict(m) for m in conv]
    image = record.get("image")
    if isinstance(image, list) and len(image) > 1:
        raise ValueError(f"record has {len(image)} images; one image per record is supported")
    has_image = bool(image)
    key = "value" if "value" in messages[0] else "content"
    text_all = "".join(str(m.get("value", m.get("content", ""))) for m in messages)
    n_tokens = text_all.count(IMAGE_TOKEN)
    if has_image and n_tokens == 0:
        messages[0][key] = f"{IMAGE_TOKEN}\n{messages[0].get(key, '')}"
    elif has_image and n_tokens > 1:
        raise ValueError(f"record has {n_tokens} '{IMAGE_TOKEN}' tokens; one image per record is supported")
    elif not has_image and n_tokens:
        raise ValueError(f"text contains '{IMAGE_TOKEN}' but the record has no image")
    return messages


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _segment_ids(tokenizer, segment: Segment, image_token_id: int, num_image_tokens: int) -> list[int]:
    pieces = segment.text.split(IMAGE_TOKEN)
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        if i:
            ids.extend([image_token_id] * num_image_tokens)
        ids.extend(_encode(tokenizer, piece))
    return ids


def _decodes_to(tokenizer, ids: list[int], text: str) -> bool:
    got = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    # SentencePiece tokenizers may add or eat one leading space at a boundary.
    return got == text or got.strip() == text.strip()


def tensorize_record(
    record: dict[str, Any],
    tokenizer,
    template: ConversationTemplate,
    num_image_tokens: int,
    image_token_id: int,
    max_length: int,
) -> TokenizedSample:
    """Token ids and loss labels for one LLaVA-format record (see module doc)."""
    rid = str(record.get("id", "?"))
    has_image = bool(record.get("image"))
    try:
        segments = template.segments(record_messages(record))
    except ValueError as exc:
        return TokenizedSample(rid, [], [], has_image, ok=False, problem=str(exc))
    input_ids: list[int] = []
    labels: list[int] = []
    if tokenizer.bos_token_id is not None:
        input_ids.append(tokenizer.bos_token_id)
        labels.append(IGNORE_INDEX)
    image_end = 0
    for seg in segments:
        ids = _segment_ids(tokenizer, seg, image_token_id, num_image_tokens)
        if seg.trainable:
            if IMAGE_TOKEN in seg.text:
                return TokenizedSample(rid, [], [], has_image, ok=False, problem="an assistant turn contains <image>")
            if not _decodes_to(tokenizer, ids, seg.text):
                return TokenizedSample(rid, [], [], has_image, ok=False,
                                       problem=f"assistant text does not survive tokenization: {seg.text[:60]!r}")
            labels.extend(ids)
        else:
            labels.extend([IGNORE_INDEX] * len(ids))
        input_ids.extend(ids)
        if IMAGE_TOKEN in seg.text:
            image_end = len(input_ids) - (len(ids) - _last_image_offset(ids, image_token_id))
    if has_image and image_token_id not in input_ids:
        return TokenizedSample(rid, [], [], has_image, ok=False, problem="the template dropped the image token")
    truncated = False
    if len(input_ids) > max_length:
        if image_end > max_length:
            return TokenizedSample(rid, [], [], has_image, ok=False,
                                   problem=f"image tokens end at {image_end} > max_length {max_length}")
        input_ids, labels, truncated = input_ids[:max_length], labels[:max_length], True
    if all(label == IGNORE_INDEX for label in labels):
        return TokenizedSample(rid, [], [], has_image, ok=False, problem="no assistant tokens left to train on")
    return TokenizedSample(rid, input_ids, labels, has_image, truncated=truncated)


def _last_image_offset(ids: list[int], image_token_id: int) -> int:
    """One past the last image token in ``ids`` (0 if none)."""
    for i in range(len(ids) - 1, -1, -1):
        if ids[i] == image_token_id:
            return i + 1
    return 0


def tensorize_all(
    records: Iterable[dict[str, Any]],
    tokenizer,
    template: ConversationTemplate,
    num_image_tokens: int,
    image_token_id: int,
    max_length: int,
    max_mismatch_fraction: float = 0.5,
) -> tuple[list[TokenizedSample], TokenizeReport]:
    """Tokenize every record; raise :class:`MaskingError` when more than ``max_mismatch_fraction`` fail."""
    report = TokenizeReport()
    samples = []
    for record in records:
        sample = tensorize_record(record, tokenizer, template, num_image_tokens, image_token_id, max_length)
        report.add(sample)
        samples.append(sample)
    if report.total and report.mismatch_fraction > max_mismatch_fraction:
        first = ", ".join(f"{i} ({report.problems[i]})" for i in report.mismatched_ids[:5])
        raise MaskingError(
            f"{len(report.mismatched_ids)} of {report.total} records could not be masked for training "
            f"(limit {max_mismatch_fraction:.0%}); first: {first}. Check the conversation template "
            "and the tokenizer."
        )
    return samples, report
