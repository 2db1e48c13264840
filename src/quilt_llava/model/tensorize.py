"""LLaVA-format records to ``input_ids`` and ``labels``: where the loss mask is made.

A record ``{id, image?, conversations: [{from, value}, ...]}`` is rendered with a
conversation template into one string, with ``<image>`` repeated the processor's
number of image tokens (exactly what ``LlavaProcessor`` does before tokenizing),
and that string is tokenized once, with special tokens (BOS) and character
offsets. Training therefore sees the same ids that inference
(``processor(text=template.prompt(...))``) produces for the same prompt, also for
SentencePiece tokenizers whose pieces depend on the surrounding text. A token is
trained on (label = its id) when its character span lies inside a trainable
segment (an assistant answer and its end-of-turn token); everything else is -100.

The tokens of every trained span are decoded back and compared with its text. A record where that fails (a tokenizer that cannot represent the text, a
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


def _render(segments: list[Segment], num_image_tokens: int) -> tuple[str, list[tuple[int, int]]]:
    """The whole conversation as one string, ``<image>`` expanded as the processor expands it,
    and the character spans ``[start, end)`` of the trainable text (adjacent segments joined)."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for seg in segments:
        text = seg.text.replace(IMAGE_TOKEN, IMAGE_TOKEN * num_image_tokens)
        if seg.trainable and text:
            if spans and spans[-1][1] == pos:
                spans[-1] = (spans[-1][0], pos + len(text))
            else:
                spans.append((pos, pos + len(text)))
        parts.append(text)
        pos += len(text)
    return "".join(parts), spans


def encode_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """``text`` tokenized the way the processor tokenizes a prompt (special tokens added, e.g. BOS),
    with each token's character span."""
    try:
        enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    except NotImplementedError:
        raise QuiltError(
            f"{type(tokenizer).__name__} cannot report character offsets; training needs a fast "
            "(Hugging Face `tokenizers`) tokenizer - load it with AutoTokenizer (use_fast=True)"
        ) from None
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _decodes_to(tokenizer, ids: list[int], text: str) -> bool:
    got = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    # SentencePiece decoders drop the leading space of the first piece they decode; nothing else is forgiven.
    return got == text or (text.startswith(" ") and got == text[1:])


def _fail(rid: str, has_image: bool, problem: str) -> TokenizedSample:
    return TokenizedSample(rid, [], [], has_image, ok=False, problem=problem)


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
        return _fail(rid, has_image, str(exc))
    if any(seg.trainable and IMAGE_TOKEN in seg.text for seg in segments):
        return _fail(rid, has_image, "an assistant turn contains <image>")
    text, spans = _render(segments, num_image_tokens)
    input_ids, offsets = encode_with_offsets(tokenizer, text)  # (seq,), (seq, 2)
    labels = [IGNORE_INDEX] * len(input_ids)
    members: list[list[int]] = [[] for _ in spans]  # token positions inside each span (one pass; offsets ascend)
    j = 0
    for i, (s, e) in enumerate(offsets):
        if e <= s:  # added special tokens (BOS) cover no text
            continue
        while j < len(spans) and spans[j][1] <= s:
            j += 1
        if j == len(spans):
            break
        if spans[j][0] <= s and e <= spans[j][1]:
            members[j].append(i)
            labels[i] = input_ids[i]
    for (start, end), inside in zip(spans, members):
        # Tokens must be contiguous and decode back to the span; a token reaching across the
        # span's edge (merged with prompt text) or an unknown piece makes the record a mismatch.
        contiguous = bool(inside) and inside == list(range(inside[0], inside[-1] + 1))
        answer = text[start:end]
        if not contiguous or not _decodes_to(tokenizer, [input_ids[i] for i in inside], answer):
            return _fail(rid, has_image, f"assistant text does not survive tokenization: {answer[:60]!r}")
    n_image = input_ids.count(image_token_id)
    if n_image != (num_image_tokens if has_image else 0):
        if has_image and IMAGE_TOKEN not in text:
            return _fail(rid, has_image, "the template dropped the image token")
        return _fail(rid, has_image, f"expected {num_image_tokens if has_image else 0} image tokens, the tokenizer "
                     f"gave {n_image} (is {IMAGE_TOKEN} a special token of this tokenizer?)")
    image_end = max((i + 1 for i, t in enumerate(input_ids) if t == image_token_id), default=0)
    truncated = False
    if len(input_ids) > max_length:
        if image_end > max_length:
            return _fail(rid, has_image, f"image tokens end at {image_end} > max_length {max_length}")
        input_ids, labels, truncated = input_ids[:max_length], labels[:max_length], True
    if all(label == IGNORE_INDEX for label in labels):
        return _fail(rid, has_image, "no assistant tokens left to train on")
    return TokenizedSample(rid, input_ids, labels, has_image, truncated=truncated)


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
