"""Turning LLM replies into checked data.

Every parser raises :class:`ReplyError` with a reason a model can act on; the
runner sends that reason back once as a repair instruction and rejects the unit
if the second reply fails too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# reason codes of a rejected reply (the gates add their own names, see gates.py)
NOT_JSON = "not_json"
REPLY_RULE = "reply_rule"
MENTIONS_SOURCE = "mentions_source"


class ReplyError(ValueError):
    """A reply that does not parse or breaks a content rule; ``code`` names the kind of failure."""

    def __init__(self, message: str, code: str = REPLY_RULE) -> None:
        super().__init__(message)
        self.code = code


_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)

# Answers are written as if looking at the image: nothing may refer to the
# material the LLM was given instead of the image. A single decimal in prose
# ("a ratio of 0.80", "p < 0.05") is fine; lists of them and x=/y= pairs are not.
_NUM = r"-?(?:\d+\.\d+|\.\d+|\d+)"
_DEC = r"-?(?:\d+\.\d+|\.\d+)"
_LEAK_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("mentions a caption", re.compile(r"\bcaptions?\b", re.I)),
    ("mentions 'the text'", re.compile(r"\b(?:the|this|that|given|provided)\s+(?:given\s+|provided\s+)?text\b", re.I)),
    (
        "mentions a description it was given",
        re.compile(
            r"\b(?:the|this|that|given|provided|above|image|slide)\s+(?:given\s+|provided\s+)?descriptions?\b"
            r"|\bas\s+(?:(?:was|is|previously|already|just)\s+)?(?:described|stated|mentioned|noted|explained|said)\b",
            re.I,
        ),
    ),
    (
        "mentions a transcript or narration",
        re.compile(
            r"\b(?:transcripts?|transcribed|narration|narrator|narrated|narrative|speaker|presenter|lecturer)\b", re.I
        ),
    ),
    ("mentions the video", re.compile(r"\b(?:videos?|lectures?|recording|footage)\b", re.I)),
    # "the pathologist spoke to the audience", "as the instructor explains"
    (
        "mentions the talk or its audience",
        re.compile(
            r"\b(?:audience|viewers|listeners|spoke|speaking to|on screen|on the screen)\b"
            r"|\b(?:pathologist|instructor|teacher|doctor|presenter)\s+(?:(?:is|was)\s+)?(?:says|said|explains|"
            r"explained|explaining|mentions|mentioned|notes|noted|points|pointed|pointing|describes|described|"
            r"describing|talks|talked|talking|speaking|shows|showed|showing|examined|examines|observed|found)\b",
            re.I,
        ),
    ),
    ("mentions coordinates or boxes", re.compile(r"\b(?:coordinates?|bounding[- ]box(?:es)?|boxes|box)\b", re.I)),
    # [0.1, 0.2, 0.5, 0.6], (0.12, 0.3), [.5, .25]: 2-4 numbers in brackets, at least one a decimal.
    (
        "contains a coordinate list",
        re.compile(rf"[\[(]\s*(?=[^\])]*\d\.\d|[^\])]*\.\d){_NUM}(?:\s*[,;]\s*{_NUM}){{1,3}}\s*[\])]"),
    ),
    ("contains a coordinate list", re.compile(rf"(?<![\w.]){_DEC}(?:\s*,\s*{_DEC}){{2,3}}(?![\w.])")),
    ("contains x/y coordinates", re.compile(rf"\b[xy][01]?\s*[=:]\s*{_NUM}", re.I)),
)


def strip_fences(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in ``text`` (code fences and prose around it tolerated)."""
    body = strip_fences(text.strip()).strip()
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end <= start:
            raise ReplyError("the reply is not a JSON object", NOT_JSON) from None
        try:
            obj = json.loads(body[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ReplyError(f"the reply is not valid JSON ({exc.msg} at character {exc.pos})", NOT_JSON) from None
    if not isinstance(obj, dict):
        raise ReplyError("the reply must be one JSON object", NOT_JSON)
    return obj


def leak_problems(text: str) -> list[str]:
    """Reasons ``text`` refers to the source material instead of the image."""
    return list(dict.fromkeys(reason for reason, pattern in _LEAK_PATTERNS if pattern.search(text)))


def check_no_leaks(texts: Iterable[str], what: str = "answer") -> None:
    for text in texts:
        problems = leak_problems(text)
        if problems:
            raise ReplyError(
                f"an {what} {', '.join(problems)}; write as if looking at the image, "
                "with positions in words and no mention of captions, descriptions, narration, the video, text, "
                "boxes or coordinates",
                MENTIONS_SOURCE,
            )


def require_str(obj: dict[str, Any], key: str, where: str = "") -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ReplyError(f"{where}'{key}' must be a non-empty string")
    return value.strip()


def require_str_list(obj: dict[str, Any], key: str, allow_empty: bool = True) -> list[str]:
    value = obj.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReplyError(f"'{key}' must be a list of strings")
    value = [v.strip() for v in value if v.strip()]
    if not value and not allow_empty:
        raise ReplyError(f"'{key}' must not be empty")
    return value


def yes_no(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower().rstrip(".") in ("yes", "no"):
        return value.strip().lower().startswith("y")
    raise ReplyError(f'\'{key}\' must be "yes" or "no"')


def parse_qa_pairs(text: str, min_pairs: int, max_pairs: int) -> list[tuple[str, str]]:
    """``{"pairs": [{"question", "answer"}, ...]}`` with a pair count in range."""
    obj = parse_json_object(text)
    pairs = obj.get("pairs")
    if not isinstance(pairs, list):
        raise ReplyError("the object needs a 'pairs' list")
    if not min_pairs <= len(pairs) <= max_pairs:
        raise ReplyError(f"write {min_pairs} to {max_pairs} pairs, not {len(pairs)}")
    out = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, dict):
            raise ReplyError(f"pairs[{i}] must be an object with 'question' and 'answer'")
        out.append((require_str(pair, "question", f"pairs[{i}]."), require_str(pair, "answer", f"pairs[{i}].")))
    return out


def mentions_any(text: str, phrases: Iterable[str]) -> str | None:
    """The first phrase (case-insensitive, whole words) found in ``text``."""
    lowered = text.lower()
    for phrase in phrases:
        p = phrase.strip().lower()
        if p and re.search(r"(?<!\w)" + re.escape(p) + r"(?!\w)", lowered):
            return phrase
    return None
