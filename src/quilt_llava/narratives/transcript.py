"""Transcript readers: SRT, WebVTT, Whisper / faster-whisper JSON, plain JSON lists.

Every reader returns a :class:`Transcript` (utterances in time order, with word
timings when the source has them) or raises :class:`InputError` naming the file and
the entry that is wrong: a malformed time, an end before its start, or two entries
that overlap. Speech recognition lives in :mod:`quilt_llava.narratives.asr`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quilt_llava.errors import InputError

# Consecutive entries may touch; a tiny overlap is rounding in the writer, not an error.
OVERLAP_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Utterance:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}


@dataclass
class Transcript:
    utterances: list[Utterance] = field(default_factory=list)
    source: str = ""

    @property
    def end(self) -> float:
        return max((u.end for u in self.utterances), default=0.0)

    @property
    def has_words(self) -> bool:
        return any(u.words for u in self.utterances)

    def text(self) -> str:
        return " ".join(u.text for u in self.utterances).strip()

    def to_whisper_json(self) -> dict[str, Any]:
        """The Whisper JSON layout (``segments[].words[]``) that :func:`read_transcript` reads back."""
        return {
            "segments": [
                {
                    "start": u.start,
                    "end": u.end,
                    "text": u.text,
                    "words": [{"start": w.start, "end": w.end, "word": w.text} for w in u.words],
                }
                for u in self.utterances
            ]
        }


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------- SRT / VTT

_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})$")
_TAG = re.compile(r"<[^>]*>")


def _parse_clock(value: str, source: str) -> float:
    m = _TIME.match(value.strip())
    if not m:
        raise InputError(source, f"malformed timestamp {value.strip()!r} (expected HH:MM:SS,mmm)")
    hours, minutes, seconds, frac = m.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        raise InputError(source, f"malformed timestamp {value.strip()!r} (minutes/seconds >= 60)")
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(frac.ljust(3, "0")) / 1000


def _cue_blocks(text: str) -> list[tuple[int, list[str]]]:
    """Split into blank-line separated blocks, each with its 1-based first line number."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if not current:
                start = lineno
            current.append(line.rstrip())
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _read_cues(path: Path, text: str, *, vtt: bool) -> Transcript:
    utterances: list[Utterance] = []
    wheres: list[str] = []
    blocks = _cue_blocks(text.lstrip("\ufeff"))
    if vtt:
        if not blocks or not blocks[0][1][0].startswith("WEBVTT"):
            raise InputError(str(path), "a WebVTT file must start with 'WEBVTT'")
        blocks = blocks[1:]
    for lineno, lines in blocks:
        if vtt and lines[0].split(" ", 1)[0] in ("NOTE", "STYLE", "REGION"):
            continue
        arrow = next((i for i, line in enumerate(lines) if "-->" in line), None)
        where = f"{path}:{lineno}"
        if arrow is None or arrow > 1:
            raise InputError(where, "cue without a 'start --> end' timing line")
        left, right = lines[arrow].split("-->", 1)
        end_token = right.strip().split()[0] if right.strip() else ""
        start, end = _parse_clock(left, where), _parse_clock(end_token, where)
        _check_interval(start, end, where)
        body = _clean(_TAG.sub("", " ".join(lines[arrow + 1 :])))
        if body:
            utterances.append(Utterance(start, end, body))
            wheres.append(where)
    return _validated(Transcript(utterances, str(path)), wheres)


# --------------------------------------------------------------------------- JSON


def _num(entry: dict[str, Any], key: str, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(where, f"'{key}' must be a number of seconds, got {value!r}")
    if value != value or value < 0:  # NaN or negative
        raise InputError(where, f"'{key}' must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _read_json_transcript(path: Path, data: Any) -> Transcript:
    if isinstance(data, dict):
        if "segments" not in data or not isinstance(data["segments"], list):
            raise InputError(str(path), "JSON transcript object needs a 'segments' list (Whisper format)")
        entries = data["segments"]
        label = "segments"
    elif isinstance(data, list):
        entries = data
        label = "entry"
    else:
        raise InputError(str(path), "JSON transcript must be a list of {start, end, text} or a Whisper object")
    utterances: list[Utterance] = []
    wheres: list[str] = []
    for i, entry in enumerate(entries):
        where = f"{path}: {label}[{i}]"
        if not isinstance(entry, dict):
            raise InputError(where, "expected an object with start, end and text")
        start, end = _num(entry, "start", where), _num(entry, "end", where)
        _check_interval(start, end, where)
        text = entry.get("text")
        if not isinstance(text, str):
            raise InputError(where, f"'text' must be a string, got {text!r}")
        words: list[Word] = []
        for j, w in enumerate(entry.get("words") or []):
            wwhere = f"{where}.words[{j}]"
            if not isinstance(w, dict):
                raise InputError(wwhere, "expected an object with start, end and word")
            token = w.get("word", w.get("text"))
            if not isinstance(token, str):
                raise InputError(wwhere, "a word needs a 'word' string")
            ws, we = _num(w, "start", wwhere), _num(w, "end", wwhere)
            _check_interval(ws, we, wwhere)
            if token.strip():
                words.append(Word(ws, we, token.strip()))
        if _clean(text):
            utterances.append(Utterance(start, end, _clean(text), tuple(words)))
            wheres.append(where)
    return _validated(Transcript(utterances, str(path)), wheres)


# --------------------------------------------------------------------------- checks


def _check_interval(start: float, end: float, where: str) -> None:
    if end < start:
        raise InputError(where, f"end {end:.3f} s is before start {start:.3f} s")


def _validated(transcript: Transcript, wheres: list[str]) -> Transcript:
    """Reject overlapping entries, naming the second of the pair."""
    previous: Utterance | None = None
    for u, where in zip(transcript.utterances, wheres):
        if previous is not None and u.start < previous.end - OVERLAP_TOLERANCE_S:
            raise InputError(
                where,
                f"entry starting at {u.start:.3f} s overlaps the previous one "
                f"({previous.start:.3f}-{previous.end:.3f} s); entries must be in time order without overlap",
            )
        previous = u
    return transcript


def read_transcript(path: str | Path) -> Transcript:
    """Read a transcript, choosing the format from the extension (``.srt``, ``.vtt``, ``.json``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "transcript file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text ({exc.reason})") from None
    suffix = path.suffix.lower()
    if suffix == ".srt":
        return _read_cues(path, text, vtt=False)
    if suffix == ".vtt":
        return _read_cues(path, text, vtt=True)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}", f"invalid JSON ({exc.msg})") from None
        return _read_json_transcript(path, data)
    raise InputError(str(path), f"unknown transcript type {suffix or '(none)'}; use .srt, .vtt or .json")


def transcript_from_records(records: list[dict[str, Any]], source: str = "<records>") -> Transcript:
    """Build a transcript from in-memory ``{start, end, text[, words]}`` dicts (validated like a file)."""
    return _read_json_transcript(Path(source), records)
