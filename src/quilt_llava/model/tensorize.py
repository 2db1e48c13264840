"""LLaVA-format records to ``input_ids`` and ``labels``: where the loss mask is made.

Token ids and mask are the released LLaVA training code's (``preprocess_v1`` /
``preprocess_plain`` with the transformers-4.31 sentencepiece tokenizer), so a
released checkpoint fine-tuned here, and a model trained here, see what the release
saw:

- the record's turns are laid out image first and rendered with the conversation
  template (:mod:`quilt_llava.model.conversation`); the prompt is tokenized piece by
  piece around ``<image>`` (:func:`quilt_llava.model.prompt.tokenize_prompt`, the
  same function evaluation and chat use), then the image placeholder becomes the
  processor's number of image tokens (never trained on);
- the mask, for templates whose answers end on an end-of-sequence token
  (``vicuna_v1``, ``mistral_instruct``) that is one special token of the tokenizer, is the
  release's round rule: the prompt is
  split into rounds at ``</s>``, each round at the assistant separator, and the
  instruction's token count (its own tokenization, less BOS and the separator's
  trailing space) is masked; a round count that does not add up to the sequence
  length means the mask cannot be aligned. For the other templates (``plain``:
  image, caption, newline) every template segment is located by tokenizing the
  prompt up to it, which for stage-1 records is exactly the release's rule (mask
  BOS and the image, train on the caption and its newline).

Records the release silently masks out entirely (an empty answer, an answer holding
a literal ``</s>``, a mask that cannot be aligned) are counted by kind in
:class:`TokenizeReport` and skipped, never trained on silently; with
``keep_masked_out=True`` they are kept with the per-segment mask instead (an empty
answer then trains on its end token alone). Every mask is also checked: the trained
tokens must decode to the assistant text (ignoring whitespace), else the record is an
``unaligned`` skip. Callers stop the run when most records fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from quilt_llava.errors import QuiltError
from quilt_llava.model.conversation import IMAGE_TOKEN, ConversationTemplate, Segment
from quilt_llava.model.prompt import tokenize_prompt

IGNORE_INDEX = -100
# Kinds of records the release masks out entirely (skipped by default, see module doc).
EMPTY_ANSWER, EOS_IN_ANSWER, UNALIGNED = "empty_answer", "eos_in_answer", "unaligned"
MASKED_OUT_KINDS = (EMPTY_ANSWER, EOS_IN_ANSWER, UNALIGNED)
INVALID = "invalid"  # a record that cannot be used at all (bad roles, image problems, too long)


@dataclass
class TokenizedSample:
    id: str
    input_ids: list[int]
    labels: list[int]
    has_image: bool
    ok: bool = True
    problem: str = ""
    truncated: bool = False
    kind: str = ""  # why it is not trained on (one of MASKED_OUT_KINDS or INVALID), or which kind it was kept despite

    @property
    def length(self) -> int:
        return len(self.input_ids)


@dataclass
class TokenizeReport:
    """Counts over a tokenized data set; ``mismatched_ids`` name every record not trained on.

    ``skipped`` counts records not trained on by kind; ``kept_masked_out`` counts records the
    release would mask out that were kept (``keep_masked_out=True``)."""

    total: int = 0
    kept: int = 0
    truncated: int = 0
    mismatched_ids: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    kept_masked_out: Counter = field(default_factory=Counter)

    def add(self, sample: TokenizedSample) -> None:
        self.total += 1
        if sample.ok:
            self.kept += 1
            self.truncated += int(sample.truncated)
            if sample.kind:
                self.kept_masked_out[sample.kind] += 1
        else:
            self.mismatched_ids.append(sample.id)
            self.problems[sample.id] = sample.problem
            self.skipped[sample.kind or INVALID] += 1

    @property
    def mismatch_fraction(self) -> float:
        return len(self.mismatched_ids) / self.total if self.total else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.total,
            "kept": self.kept,
            "truncated": self.truncated,
            "mismatched": len(self.mismatched_ids),
            "skipped": {k: self.skipped[k] for k in (*MASKED_OUT_KINDS, INVALID) if self.skipped[k]},
            "kept_masked_out": dict(self.kept_masked_out),
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


def _answers(messages: list[dict[str, str]]) -> list[str]:
    return [str(m.get("value", m.get("content", ""))) for i, m in enumerate(messages) if i % 2 == 1]


def masked_out_kind(answers: list[str], template: ConversationTemplate, eos_token: str | None) -> str:
    """Why the release would mask this record out entirely before tokenizing (``""``: it would not)."""
    ends = {t for t in (template.assistant_end.strip(), eos_token) if t}
    if any(not a.strip() for a in answers):
        return EMPTY_ANSWER
    if any(end in a for a in answers for end in ends):
        return EOS_IN_ANSWER
    return ""


def uses_round_rule(template: ConversationTemplate, tokenizer) -> bool:
    """The release's round rule applies when answers end on text that is one special token of this tokenizer
    (``</s>`` for Llama/Vicuna/Mistral); other tokenizers (e.g. a byte-level BPE without ``</s>``) get the
    per-segment mask."""
    end = template.assistant_end.strip()
    return bool(end) and end in getattr(tokenizer, "all_special_tokens", ())


def release_round_labels(
    template: ConversationTemplate, tokenizer, text: str, ids: list[int], image_token_id: int, max_length: int
) -> list[int] | None:
    """The release's round rule (``preprocess_v1``); ``None`` when its counts do not add up (see module doc).

    ``ids`` are ``tokenize_prompt(text)`` with one placeholder per image, as in the release."""
    end = template.assistant_end.strip()
    sep = template.turn_sep + template.assistant_prefix + template.answer_lead

    def count(t: str) -> int:
        return len(tokenize_prompt(tokenizer, t, image_token_id, 1))

    labels = list(ids)
    pad = tokenizer.pad_token_id
    total = sum(1 for t in ids if t != pad)
    bos = 1 if tokenizer.bos_token_id is not None and ids[:1] == [tokenizer.bos_token_id] else 0
    cur = bos
    labels[:cur] = [IGNORE_INDEX] * cur
    for rou in text.split(end):
        if rou == "":
            break
        parts = rou.split(sep)
        if len(parts) != 2:
            break
        # the instruction alone, less its BOS and the token of the separator's trailing space (the release's "- 2")
        instruction = max(0, count(parts[0] + sep) - bos - 1)
        labels[cur : cur + instruction] = [IGNORE_INDEX] * len(labels[cur : cur + instruction])
        cur += count(rou) - bos + 1  # the round's tokens and its end token (the release counts the round's BOS)
    labels[cur:] = [IGNORE_INDEX] * max(0, len(labels) - cur)
    if cur < max_length and cur != total:
        return None
    return labels


def segment_labels(segments: list[Segment], tokenizer, ids: list[int], image_token_id: int) -> list[int] | None:
    """Trainable stretches located by tokenizing the prompt up to each place where trainability changes;
    ``None`` when such a prefix's tokens are not a prefix of the whole prompt's (a token reaches across)."""
    labels = [IGNORE_INDEX] * len(ids)
    prefix, pos = "", 0
    for i, seg in enumerate(segments):
        prefix += seg.text
        if i + 1 < len(segments) and segments[i + 1].trainable == seg.trainable:
            continue  # no edge here
        upto = tokenize_prompt(tokenizer, prefix, image_token_id, 1)
        if upto != ids[: len(upto)]:
            return None
        if seg.trainable:
            labels[pos : len(upto)] = ids[pos : len(upto)]
        pos = len(upto)
    return labels


def _trained_text_matches(tokenizer, ids: list[int], labels: list[int], segments: list[Segment]) -> bool:
    """The trained tokens decode to the trainable text (whitespace aside: sentencepiece moves it)."""
    trained = [t for t, label in zip(ids, labels) if label != IGNORE_INDEX]
    got = tokenizer.decode(trained, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    want = "".join(seg.text for seg in segments if seg.trainable)
    return "".join(got.split()) == "".join(want.split())


def _fail(rid: str, has_image: bool, problem: str, kind: str = INVALID) -> TokenizedSample:
    return TokenizedSample(rid, [], [], has_image, ok=False, problem=problem, kind=kind)


def _expand_images(ids: list[int], labels: list[int], image_token_id: int, n: int) -> tuple[list[int], list[int]]:
    out_ids: list[int] = []
    out_labels: list[int] = []
    for t, label in zip(ids, labels):
        if t == image_token_id:
            out_ids.extend([image_token_id] * n)
            out_labels.extend([IGNORE_INDEX] * n)
        else:
            out_ids.append(t)
            out_labels.append(label)
    return out_ids, out_labels


def tensorize_record(
    record: dict[str, Any],
    tokenizer,
    template: ConversationTemplate,
    num_image_tokens: int,
    image_token_id: int,
    max_length: int,
    keep_masked_out: bool = False,
) -> TokenizedSample:
    """Token ids and loss labels for one LLaVA-format record (see module doc)."""
    rid = str(record.get("id", "?"))
    has_image = bool(record.get("image"))
    try:
        messages = record_messages(record)
        segments = template.segments(messages)
    except ValueError as exc:
        return _fail(rid, has_image, str(exc))
    if any(seg.trainable and IMAGE_TOKEN in seg.text for seg in segments):
        return _fail(rid, has_image, "an assistant turn contains <image>")
    kind = masked_out_kind(_answers(messages), template, getattr(tokenizer, "eos_token", None))
    if kind and not keep_masked_out:
        what = "an empty answer" if kind == EMPTY_ANSWER else "an answer holding the end-of-sequence text"
        return _fail(
            rid, has_image, f"{what}: the release masks such records out; skipped (keep_masked_out keeps them)", kind
        )
    text = "".join(seg.text for seg in segments)
    ids = tokenize_prompt(tokenizer, text, image_token_id, 1)  # (seq,) one placeholder per image
    labels = None
    if not kind and uses_round_rule(template, tokenizer):
        labels = release_round_labels(template, tokenizer, text, ids, image_token_id, max_length)
        if labels is not None and not _trained_text_matches(tokenizer, ids, labels, segments):
            labels = None
        if labels is None and not keep_masked_out:
            answer = next((seg.text for seg in segments if seg.trainable), "")
            return _fail(
                rid,
                has_image,
                "the loss mask does not line up with the tokens (the release masks such "
                f"records out; keep_masked_out keeps them): {answer[:60]!r}",
                UNALIGNED,
            )
        if labels is None:
            kind = UNALIGNED
    if labels is None:
        labels = segment_labels(segments, tokenizer, ids, image_token_id)
        if labels is None or not _trained_text_matches(tokenizer, ids, labels, segments):
            answer = next((seg.text for seg in segments if seg.trainable), "")
            return _fail(rid, has_image, f"the loss mask does not line up with the tokens: {answer[:60]!r}", UNALIGNED)
    input_ids, labels = _expand_images(ids, labels, image_token_id, num_image_tokens)
    n_image = input_ids.count(image_token_id)
    if n_image != (num_image_tokens if has_image else 0):
        if has_image and IMAGE_TOKEN not in text:
            return _fail(rid, has_image, "the template dropped the image token")
        return _fail(
            rid,
            has_image,
            f"expected {num_image_tokens if has_image else 0} image tokens, the tokenizer "
            f"gave {n_image} (is {IMAGE_TOKEN} a special token of this tokenizer?)",
        )
    image_end = max((i + 1 for i, t in enumerate(input_ids) if t == image_token_id), default=0)
    truncated = False
    if len(input_ids) > max_length:
        if image_end > max_length:
            return _fail(rid, has_image, f"image tokens end at {image_end} > max_length {max_length}")
        input_ids, labels, truncated = input_ids[:max_length], labels[:max_length], True
    if all(label == IGNORE_INDEX for label in labels):
        return _fail(rid, has_image, "no assistant tokens left to train on")
    return TokenizedSample(rid, input_ids, labels, has_image, truncated=truncated, kind=kind)


def tensorize_all(
    records: Iterable[dict[str, Any]],
    tokenizer,
    template: ConversationTemplate,
    num_image_tokens: int,
    image_token_id: int,
    max_length: int,
    max_mismatch_fraction: float = 0.5,
    keep_masked_out: bool = False,
) -> tuple[list[TokenizedSample], TokenizeReport]:
    """Tokenize every record; raise :class:`MaskingError` when more than ``max_mismatch_fraction`` fail."""
    report = TokenizeReport()
    samples = []
    for record in records:
        sample = tensorize_record(
            record, tokenizer, template, num_image_tokens, image_token_id, max_length, keep_masked_out=keep_masked_out
        )
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
