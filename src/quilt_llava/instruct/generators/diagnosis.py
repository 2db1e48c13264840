"""Diagnosis and supporting clues per video, from the whole transcript."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from quilt_llava.errors import InputError
from quilt_llava.files import iter_jsonl
from quilt_llava.instruct.data import _safe, group_by_video, video_transcript
from quilt_llava.instruct.generators.base import (
    CallFailed,
    Generator,
    Rejected,
    Session,
    Skip,
    Unit,
)
from quilt_llava.instruct.replies import ReplyError, parse_json_object, require_str_list
from quilt_llava.instruct.structured import STRING_LIST, strict_object

PROMPT_VERSION = "1"
NORMAL_PREFIX = "normal histology of "
MAX_TRANSCRIPT_CHARS = 24_000
# One object shape covers the three reply forms of the prompt ("normal" null unless normal tissue).
REPLY_SCHEMA = (
    "diagnosis",
    strict_object({"diagnosis": STRING_LIST, "normal": {"type": ["string", "null"]}, "clues": STRING_LIST}),
)

SYSTEM = """You read the full transcript of a pathology teaching video and extract the case it presents.

Reply with JSON only, in one of these forms:
1. The narrator reaches or clearly implies one or more diagnoses:
   {"diagnosis": ["<diagnosis>", ...], "clues": ["<finding>", ...]}
2. The video only shows normal tissue:
   {"normal": "normal histology of <tissue or organ>", "clues": ["<finding>", ...]}
3. Neither can be told from the transcript:
   {"diagnosis": [], "clues": []}

"clues" lists the short, concrete observations from the transcript that support the answer: morphology, architecture, cell features, stains and their results, clinical facts. Use the transcript's facts only; do not add your own."""


def messages_for(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    transcript = video_transcript(rows)
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        transcript = transcript[:MAX_TRANSCRIPT_CHARS] + "\n(transcript cut here)"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Transcript:\n{transcript}"}]


def parse_reply(text: str) -> dict[str, Any]:
    obj = parse_json_object(text)
    clues = require_str_list(obj, "clues")
    normal = obj.get("normal")
    if isinstance(normal, str) and not normal.strip():
        normal = None  # the schema's form of "not normal tissue"
    if normal is not None:
        if not isinstance(normal, str) or not normal.strip().lower().startswith(NORMAL_PREFIX):
            raise ReplyError(f"'normal' must read \"{NORMAL_PREFIX}<tissue>\"")
        tissue = normal.strip()[len(NORMAL_PREFIX) :].strip(" .")
        if not tissue:
            raise ReplyError("'normal' must name the tissue")
        return {"diagnosis": [], "normal": NORMAL_PREFIX + tissue, "clues": clues}
    if "diagnosis" not in obj:
        raise ReplyError("the object needs 'diagnosis' (or 'normal') and 'clues'")
    diagnosis = require_str_list(obj, "diagnosis")
    if diagnosis and not clues:
        raise ReplyError("give at least one clue supporting the diagnosis")
    return {"diagnosis": diagnosis, "normal": None, "clues": clues}


def case_known(case: dict[str, Any] | None) -> bool:
    return bool(case and (case.get("diagnosis") or case.get("normal")))


def case_answer_terms(case: dict[str, Any]) -> list[str]:
    """What must not be named before the student or reader reaches it."""
    return list(case.get("diagnosis") or []) + ([case["normal"]] if case.get("normal") else [])


def video_units(rows: list[dict[str, Any]]) -> list[Unit]:
    return [Unit(_safe(vid), vid, vrows) for vid, vrows in group_by_video(rows).items()]


def load_diagnoses(path: str | Path) -> dict[str, dict[str, Any]]:
    """Cases by video id from a ``diagnosis`` output file."""
    out = {}
    for i, row in enumerate(iter_jsonl(path), start=1):
        if "video_id" not in row or not isinstance(row.get("clues", []), list):
            raise InputError(f"{path}:{i}", "not a diagnosis record (needs video_id, diagnosis/normal, clues)")
        out[str(row["video_id"])] = {
            "diagnosis": row.get("diagnosis") or [],
            "normal": row.get("normal"),
            "clues": row.get("clues") or [],
        }
    return out


class DiagnosisGenerator(Generator):
    name = "diagnosis"
    prompt_version = PROMPT_VERSION
    kind = "table"

    def units(self, rows: list[dict[str, Any]]) -> list[Unit]:
        return video_units(rows)

    def plan(self, unit: Unit) -> list[list[dict[str, Any]]]:
        return [messages_for(unit.rows)] if video_transcript(unit.rows) else []

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        if not video_transcript(unit.rows):
            raise Skip("video has no narration")
        case = await session.ask(messages_for(unit.rows), parse_reply, REPLY_SCHEMA)
        prov = self.provenance(unit)
        prov.pop("segment_id")
        return [{"id": f"{unit.id}-diagnosis", **case, "segments": [r.get("segment_id") for r in unit.rows], **prov}]


class CaseBook:
    """Per-video cases for generators that reason toward a diagnosis.

    Read from ``--diagnoses`` when given; otherwise asked from the LLM with the
    diagnosis prompt (a shared cache makes that free after a ``diagnosis`` run).
    """

    def __init__(self, diagnoses_path: Path | None) -> None:
        self.path = diagnoses_path
        self.cases: dict[str, dict[str, Any]] = {}
        self.problems: dict[str, str] = {}
        self.failed: set[str] = set()  # videos whose diagnosis call failed (worth a re-run)

    def plan(self, units: Sequence[Unit]) -> list[list[dict[str, Any]]]:
        if self.path is not None:
            return []
        return [messages_for(vrows) for vrows in self._videos(units).values() if video_transcript(vrows)]

    @staticmethod
    def _videos(units: Sequence[Unit]) -> dict[str, list[dict[str, Any]]]:
        rows = {}
        for u in units:
            for r in u.extra.get("video_rows", u.rows):
                rows.setdefault(str(r["video_id"]), {})[str(r.get("segment_id"))] = r
        return {vid: list(segs.values()) for vid, segs in rows.items()}

    async def load(self, units: Sequence[Unit], session_factory: Callable[[], Session]) -> dict[str, Any]:
        import asyncio

        if self.path is not None:
            self.cases = load_diagnoses(self.path)
            return {"diagnoses_from": str(self.path), "videos": len(self.cases)}
        videos = {vid: group_by_video(vrows)[vid] for vid, vrows in self._videos(units).items()}
        sessions: list[Session] = []

        async def one(vid: str, vrows: list[dict[str, Any]]) -> None:
            if not video_transcript(vrows):
                self.problems[vid] = "video has no narration"
                return
            session = session_factory()
            sessions.append(session)
            try:
                self.cases[vid] = await session.ask(messages_for(vrows), parse_reply, REPLY_SCHEMA)
            except Rejected as exc:
                self.problems[vid] = f"diagnosis reply rejected: {exc.reason}"
            except CallFailed as exc:
                self.problems[vid] = f"diagnosis call failed: {exc}"
                self.failed.add(vid)

        await asyncio.gather(*(one(v, r) for v, r in videos.items()))
        return {
            "diagnosis_calls": sum(s.calls for s in sessions),
            "diagnosis_cached": sum(s.cached for s in sessions),
            "videos": len(videos),
            "videos_without_case": len(self.problems),
        }

    def case_for(self, video_id: str) -> dict[str, Any]:
        case = self.cases.get(str(video_id))
        if case_known(case):
            assert case is not None
            return case
        reason = self.problems.get(str(video_id), "no diagnosis could be told for this video")
        if str(video_id) in self.failed:
            raise CallFailed(reason)
        raise Skip(f"no case for video {video_id}: {reason}")
