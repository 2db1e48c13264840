"""What every generator shares: work units, the per-unit LLM session, outcomes.

A generator splits the narratives into *units* (one segment, one video, or one
question), and turns each unit into zero or more output records. Units are the
grain of resuming: the runner stores each finished unit as one line, so a killed
run never leaves half a unit behind.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from quilt_llava.instruct.replies import REPLY_RULE, ReplyError

if TYPE_CHECKING:
    from quilt_llava.instruct.llm import LLMClient

T = TypeVar("T")

REPAIR_INSTRUCTION = (
    "Your previous reply could not be used: {reason}. "
    "Reply again following every instruction exactly, and nothing else."
)


@dataclass
class Unit:
    """One piece of work. ``id`` is stable across runs and unique within a generator."""

    id: str
    video_id: str
    rows: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def row(self) -> dict[str, Any]:
        return self.rows[0]


class Rejected(Exception):
    """The LLM's reply stayed unusable after one repair attempt; ``code`` names why (for the summary)."""

    def __init__(self, reason: str, raw: str | None, code: str = REPLY_RULE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw
        self.code = code


class CallFailed(Exception):
    """The API call itself failed (after the client's retries)."""


class Skip(Exception):
    """Nothing to generate for this unit (e.g. no question asked); not an error."""


def require_narration(row: dict[str, Any]) -> None:
    """Skip a segment nobody spoke over: the text generators have nothing to work from."""
    from quilt_llava.instruct.data import plain_caption

    if not plain_caption(row):
        raise Skip("segment has no narration")


@dataclass
class GeneratorOptions:
    """Settings shared by generators. Paths are resolved by the runner."""

    narratives_dir: Path = Path(".")
    seed: int = 0
    caption: str = "plain"  # stage-1 answer: "plain" (utterances) or "grounded" (with boxes)
    diagnoses_path: Path | None = None  # reuse a `diagnosis` output instead of asking again
    questions_path: Path | None = None  # redcircle: the vqa output to redraw
    model: str | None = None


class Session:
    """LLM access for one unit: call, parse, repair once, count.

    With ``structured`` on, a call given a JSON ``schema`` sends it as the request's
    ``response_format`` (see :mod:`quilt_llava.instruct.structured`). ``replies``
    keeps (text, finish reason) of every reply that was used, for the truncation gate.
    """

    def __init__(self, client: LLMClient | None, structured: bool = False) -> None:
        self.client = client
        self.structured = structured
        self.calls = 0
        self.cached = 0
        self.replies: list[tuple[str, str | None]] = []

    async def ask(
        self,
        messages: list[dict[str, Any]],
        parse: Callable[[str], T],
        schema: tuple[str, dict[str, Any]] | None = None,
        **params: Any,
    ) -> T:
        """``parse`` the reply to ``messages``; ``schema`` is (name, JSON schema) of a JSON reply."""
        if self.client is None:
            raise CallFailed("this generator needs an LLM endpoint")
        if schema is not None and self.structured:
            from quilt_llava.instruct.structured import response_format

            params = {**params, "response_format": response_format(*schema)}
        text, finish = await self._chat(messages, params)
        try:
            value = parse(text)
        except ReplyError as first:
            repair = [
                *messages,
                {"role": "assistant", "content": text},
                {"role": "user", "content": REPAIR_INSTRUCTION.format(reason=str(first).rstrip("."))},
            ]
            text, finish = await self._chat(repair, params)
            try:
                value = parse(text)
            except ReplyError as second:
                raise Rejected(f"{second} (first reply: {first})", text, second.code) from None
        self.replies.append((text, finish))
        return value

    async def _chat(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> tuple[str, str | None]:
        assert self.client is not None
        res = await self.client.achat(messages, **params)
        if res.cached:
            self.cached += 1
        else:
            self.calls += 1
        if res.error is not None or res.text is None:
            raise CallFailed(res.error or "empty reply")
        return res.text, res.finish_reason


class Generator:
    """Base class. Subclasses set ``name``, ``prompt_version`` and implement :meth:`generate`."""

    name: str = ""
    prompt_version: str = "1"
    uses_llm: bool = True
    kind: str = "llava"  # "llava" records, or "table" rows (filter, diagnosis, vqa)
    wants_json: bool = True  # some reply is JSON (a schema can be sent as response_format)
    describes: bool = False  # every answer is a description (the too_short gate asks for more words)
    max_calls_per_unit: int = 1  # upper bound without repairs, for --dry-run

    def __init__(self, options: GeneratorOptions) -> None:
        self.options = options

    def units(self, rows: list[dict[str, Any]]) -> list[Unit]:
        """One unit per segment by default."""
        from quilt_llava.instruct.data import segment_uid

        return [Unit(segment_uid(r), str(r["video_id"]), [r]) for r in rows]

    def rng(self, unit: Unit) -> random.Random:
        """A random source that depends only on the seed and the unit (not on order or --limit)."""
        return random.Random(f"{self.options.seed}:{self.name}:{unit.id}")

    def provenance(self, unit: Unit, row: dict[str, Any] | None = None) -> dict[str, Any]:
        row = row or unit.row
        prov = {
            "video_id": row["video_id"],
            "segment_id": row.get("segment_id"),
            "generator": self.name,
            "prompt_version": self.prompt_version,
            "model": self.options.model if self.uses_llm else None,
        }
        return prov

    def plan(self, unit: Unit) -> list[list[dict[str, Any]]]:
        """Message lists of the calls known up front (for --dry-run); later calls may depend on replies."""
        return []

    def prepare_plan(self, units: Sequence[Unit]) -> list[list[dict[str, Any]]]:
        """Calls :meth:`prepare` would make (for --dry-run)."""
        return []

    async def prepare(self, units: Sequence[Unit], session_factory: Callable[[], Session]) -> dict[str, Any]:
        """Work shared by many units (e.g. per-video diagnoses); returns a summary for the run report."""
        return {}

    async def generate(self, unit: Unit, session: Session) -> list[dict[str, Any]]:
        raise NotImplementedError
