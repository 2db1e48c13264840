"""Running a generator over narratives: resumable, concurrent, with a summary.

Progress is journalled in a hidden work file next to the output
(``.<out name>.work.jsonl``), one line per finished unit (its records, or why it
was rejected, skipped or failed). A killed run is resumed by running the same
command again: finished units are read back, the rest are done (their LLM calls
mostly served by the response cache). The output and the rejects file are written
atomically at the end of every run, in input order, so an interrupted-and-resumed
run ends with exactly the file an uninterrupted run writes. When every unit has
finished without an API failure the work file is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quilt_llava.console import Output
from quilt_llava.errors import ConfigError, InputError, QuiltError
from quilt_llava.files import JsonlAppender, iter_jsonl, write_json, write_jsonl
from quilt_llava.instruct import defaults
from quilt_llava.instruct.data import CAPTION_MODES, drop_non_tissue, load_narratives
from quilt_llava.instruct.gates import GateConfig, gate_records
from quilt_llava.instruct.generators import GENERATORS, Generator, GeneratorOptions
from quilt_llava.instruct.generators.base import CallFailed, Rejected, Session, Skip, Unit
from quilt_llava.instruct.llm import LLMClient, LLMConfig, estimate_tokens
from quilt_llava.instruct.llm_options import default_cache_path
from quilt_llava.instruct.structured import STRUCTURED_MODES, probe

DONE_STATUSES = ("ok", "rejected", "skipped")


@dataclass
class InstructOptions:
    """One generator run. ``llm`` is ignored by generators that need no LLM."""

    generator: str
    narratives: Path
    out: Path
    llm: LLMConfig = field(default_factory=LLMConfig)
    seed: int = 0
    caption: str = "plain"
    diagnoses: Path | None = None
    questions: Path | None = None
    limit: int | None = None
    dry_run: bool = False
    # Keep only segments a `filter` run judged medical (its output file).
    medical_filter: Path | None = None
    # Also use rows flagged ``is_tissue: false`` (kept by ``narratives extract --keep-non-tissue``).
    include_non_tissue: bool = False
    # Quality gates on every LLM-generated record (gates.enabled=False: --no-gates).
    gates: GateConfig = field(default_factory=GateConfig)
    # Send JSON replies' schemas as response_format: "auto" (probe the endpoint), "on", "off".
    structured: str = "auto"

    def validate(self) -> None:
        problems = []
        if self.generator not in GENERATORS:
            problems.append(f"unknown generator {self.generator!r} (valid: {', '.join(GENERATORS)})")
        if self.caption not in CAPTION_MODES:
            problems.append(f"caption must be one of {', '.join(CAPTION_MODES)}, got {self.caption!r}")
        if self.limit is not None and self.limit < 0:
            problems.append(f"limit must be >= 0, got {self.limit}")
        if self.out.suffix not in (".json", ".jsonl"):
            problems.append(f"out must end in .json (LLaVA JSON array) or .jsonl, got {self.out.name!r}")
        if self.structured not in STRUCTURED_MODES:
            problems.append(f"structured must be one of {', '.join(STRUCTURED_MODES)}, got {self.structured!r}")
        if self.generator == "redcircle" and self.questions is None:
            problems.append("redcircle needs questions (the output of the vqa generator)")
        if problems:
            raise ConfigError(problems)

    @property
    def rejects_path(self) -> Path:
        return self.out.with_name(self.out.stem + ".rejects.jsonl")

    @property
    def work_path(self) -> Path:
        return self.out.with_name(f".{self.out.name}.work.jsonl")


def make_generator(options: InstructOptions) -> Generator:
    gen_options = GeneratorOptions(
        narratives_dir=options.narratives.parent,
        seed=options.seed,
        caption=options.caption,
        diagnoses_path=options.diagnoses,
        questions_path=options.questions,
        model=options.llm.model,
    )
    return GENERATORS[options.generator](gen_options)


def medical_segments(path: Path) -> set[tuple[str, str]]:
    """(video_id, segment_id) of segments a ``filter`` output marks as medical."""
    keep = set()
    for i, row in enumerate(iter_jsonl(path), start=1):
        if "medical" not in row or "video_id" not in row:
            raise InputError(f"{path}:{i}", "not a filter record (needs video_id, segment_id, medical)")
        if row["medical"] is True:
            keep.add((str(row["video_id"]), str(row.get("segment_id"))))
    return keep


def _file_id(path: Path | None) -> dict[str, Any] | None:
    """An input file as the journal header records it: path and content hash."""
    if path is None:
        return None
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise InputError(str(path), f"cannot read it ({exc.strerror or exc})") from None
    return {"path": str(Path(path).resolve()), "sha256": digest}


def _header(options: InstructOptions, gen: Generator, structured: bool) -> dict[str, Any]:
    """Everything that shapes a unit's result: a journal with another header is not resumed.

    The gates are not in it: they are applied when the output is written, so a re-run
    with other thresholds (or --no-gates) reuses every finished unit.
    """
    return {
        "generator": gen.name,
        "prompt_version": gen.prompt_version,
        "structured": structured,
        "model": options.llm.model if gen.uses_llm else None,
        # temperature, max_tokens and any extra request parameters
        "llm_params": options.llm.default_params() if gen.uses_llm else None,
        "seed": options.seed,
        "caption": options.caption,
        "inputs": {
            "diagnoses": _file_id(options.diagnoses),
            "medical_filter": _file_id(options.medical_filter),
            "questions": _file_id(options.questions),
        },
    }


def _read_journal(
    options: InstructOptions,
    header: dict[str, Any],
    output: Output,
    discard_foreign: bool = True,
) -> dict[str, dict[str, Any]]:
    """Finished units from an earlier run of the same job (last line per unit wins).

    A journal written with another header (settings or inputs changed) is not used;
    it is deleted unless ``discard_foreign`` is false (a dry run changes nothing).
    """
    path = options.work_path
    if not path.exists():
        return {}
    entries: dict[str, dict[str, Any]] = {}
    first = True
    for row in iter_jsonl(path):
        if first:
            first = False
            if row.get("_header") != header:
                changed = sorted(
                    k
                    for k in set(header) | set(row.get("_header") or {})
                    if header.get(k) != (row.get("_header") or {}).get(k)
                )
                action = "starting over" if discard_foreign else "a real run would start over"
                output.warn(f"{path} is from a different job (changed: {', '.join(changed) or 'header'}); {action}")
                if discard_foreign:
                    path.unlink()
                return {}
            continue
        if "unit" in row:
            entries[str(row["unit"])] = row
    return entries


def run_instruct(options: InstructOptions, output: Output | None = None) -> dict[str, Any]:
    """Run one generator; write the output and rejects files; return the run summary."""
    output = output or Output(quiet=True)
    options.validate()
    gen = make_generator(options)
    rows, bad_rows = load_narratives(options.narratives)
    for problem in bad_rows:
        output.warn(f"row left out: {problem}")
    non_tissue = 0
    if not options.include_non_tissue:
        rows, non_tissue = drop_non_tissue(rows)
        if non_tissue:
            output.info(f"{non_tissue} rows of views that are not tissue left out (--include-non-tissue uses them)")
    filtered_out = 0
    if options.medical_filter is not None:
        keep = medical_segments(options.medical_filter)
        kept = [r for r in rows if (str(r["video_id"]), str(r.get("segment_id"))) in keep]
        filtered_out = len(rows) - len(kept)
        rows = kept
    units = gen.units(rows)
    ids = [u.id for u in units]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise InputError(str(options.narratives), f"two work units share the id {dup!r}")
    if options.limit is not None:
        units = units[: options.limit]

    options.gates.validate()
    llm = options.llm
    if options.dry_run and not llm.cache_read_only:
        llm = dataclasses.replace(llm, cache_read_only=True)  # a dry run writes nothing, not even a cache
    client = LLMClient(llm, output=Output(quiet=True)) if gen.uses_llm else None
    if client is not None and not client.has_key and options.llm.api_key_env:
        output.warn(f"${options.llm.api_key_env} is not set: calling {options.llm.base_url} without an API key")
    try:
        if options.dry_run:
            header = _header(options, gen, options.structured == "on")
            summary = _dry_run(options, gen, units, client, header, output, len(bad_rows))
        else:
            structured, structured_detail = _structured_mode(options, gen, client, bool(units), output)
            header = _header(options, gen, structured)
            journal = _read_journal(options, header, output)
            done = {u.id for u in units if journal.get(u.id, {}).get("status") in DONE_STATUSES}
            pending = [u for u in units if u.id not in done]
            prep = (
                asyncio.run(_process(options, gen, pending, client, header, journal, output, structured))
                if pending
                else {}
            )
            summary = _finish(options, gen, units, journal, client, prep, len(done), len(bad_rows), output)
            if gen.uses_llm and gen.wants_json:
                summary["structured"] = structured_detail
        if options.medical_filter is not None:
            summary["filtered_out_non_medical"] = filtered_out
        summary["non_tissue_skipped"] = non_tissue
        return summary
    finally:
        if client is not None:
            client.close()


def _structured_mode(
    options: InstructOptions,
    gen: Generator,
    client: LLMClient | None,
    has_units: bool,
    output: Output,
) -> tuple[bool, str]:
    """Whether this run sends response_format schemas, and why (probing the endpoint in ``auto``)."""
    if client is None or not gen.wants_json or options.structured == "off":
        return False, "off"
    if options.structured == "on":
        return True, "on (not probed)"
    if not has_units:
        return False, "auto: nothing to do, not probed"
    result = asyncio.run(probe(client))
    if not result.supported:
        output.info(f"structured outputs not used: {options.llm.base_url} {result.detail}")
    return result.supported, f"auto: {result.detail}"


async def _process(
    options: InstructOptions,
    gen: Generator,
    pending: list[Unit],
    client: LLMClient | None,
    header: dict[str, Any],
    journal: dict[str, dict[str, Any]],
    output: Output,
    structured: bool = False,
) -> dict[str, Any]:
    appender = JsonlAppender(options.work_path)  # drops a torn last line left by a kill
    try:
        if options.work_path.stat().st_size == 0:
            appender.write({"_header": header})
        prep = await gen.prepare(pending, lambda: Session(client, structured)) if gen.uses_llm else {}
        limit = asyncio.Semaphore(max(4, 2 * (client.config.concurrency if client else 4)))
        with output.progress() as prog:
            task = prog.add_task(f"{gen.name}", total=len(pending))

            async def one(unit: Unit) -> None:
                async with limit:
                    entry = await _run_unit(gen, unit, client, structured)
                appender.write(entry)  # one line per unit: a kill never splits a unit
                journal[unit.id] = entry
                prog.advance(task)

            await asyncio.gather(*(one(u) for u in pending))
    finally:
        appender.close()
        if client is not None:
            await client.aclose()
    return prep


async def _run_unit(gen: Generator, unit: Unit, client: LLMClient | None, structured: bool = False) -> dict[str, Any]:
    session = Session(client, structured)
    entry: dict[str, Any] = {"unit": unit.id}
    try:
        records = await gen.generate(unit, session)
        entry.update(status="ok", records=records)
        # Replies cut off by the token limit, for the truncation gate (applied in _finish).
        cut = [text for text, finish in session.replies if finish == "length"]
        if cut:
            entry["cut_replies"] = cut
    except Skip as exc:
        entry.update(status="skipped", reason=str(exc))
    except Rejected as exc:
        entry.update(status="rejected", reason=exc.reason, reason_code=exc.code, raw=exc.raw)
    except CallFailed as exc:
        entry.update(status="failed", reason=str(exc), reason_code="call_failed")
    except QuiltError as exc:  # bad input for this unit (e.g. an unreadable image)
        entry.update(status="rejected", reason=str(exc), reason_code="bad_input", raw=None)
    entry.update(calls=session.calls, cached=session.cached)
    return entry


@dataclass
class _Tally:
    """What a run's journal adds up to: accepted records, rejects with reasons, counts."""

    generator: str
    gates: GateConfig | None  # None: no gates (off, or a generator that calls no LLM)
    describes: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    status: Counter[str] = field(default_factory=Counter)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    gated: int = 0

    def add(self, unit_id: str, entry: dict[str, Any]) -> None:
        unit_status = entry["status"]
        if unit_status == "ok" and self.gates is not None:
            unit_status = self._add_gated(unit_id, entry)
        elif unit_status == "ok":
            self.records.extend(entry["records"])
        self.status[unit_status] += 1
        if entry["status"] == "skipped":
            self.skip_reasons[entry.get("reason", "")] += 1
        elif entry["status"] != "ok":
            code = entry.get("reason_code") or ("call_failed" if entry["status"] == "failed" else "rejected")
            self.by_reason[code] += 1
            self.rejects.append(
                {
                    "unit": unit_id,
                    "generator": self.generator,
                    "status": entry["status"],
                    "reason_code": code,
                    "reason": entry.get("reason"),
                    "raw": entry.get("raw"),
                }
            )

    def _add_gated(self, unit_id: str, entry: dict[str, Any]) -> str:
        """Keep the records that pass the gates; the unit counts as rejected if none does."""
        assert self.gates is not None
        kept, failed = gate_records(entry["records"], self.gates, self.describes, entry.get("cut_replies", ()))
        for record, failures in failed:
            self.gated += 1
            self.by_reason[failures[0].gate] += 1
            self.rejects.append(
                {
                    "unit": unit_id,
                    "generator": self.generator,
                    "status": "gated",
                    "reason_code": failures[0].gate,
                    "gates": sorted({f.gate for f in failures}),
                    "reason": "; ".join(str(f) for f in failures),
                    "record": record,
                }
            )
        self.records.extend(kept)
        return "rejected" if failed and not kept else "ok"


def _finish(
    options: InstructOptions,
    gen: Generator,
    units: list[Unit],
    journal: dict[str, dict[str, Any]],
    client: LLMClient | None,
    prep: dict[str, Any],
    previously_done: int,
    bad_rows: int,
    output: Output,
) -> dict[str, Any]:
    gate_on = gen.uses_llm and options.gates.enabled
    tally = _Tally(gen.name, options.gates if gate_on else None, gen.describes)
    for unit in units:
        entry = journal.get(unit.id)
        if entry is not None:
            tally.add(unit.id, entry)
    records, rejects, status = tally.records, tally.rejects, tally.status
    if options.out.suffix == ".json":
        write_json(options.out, records)
    else:
        write_jsonl(options.out, records)
    if rejects or options.rejects_path.exists():
        write_jsonl(options.rejects_path, rejects)
    finished = status["failed"] == 0 and sum(status.values()) == len(units)
    if finished:
        with contextlib.suppress(FileNotFoundError):
            options.work_path.unlink()
    stats = client.stats if client is not None else {}
    summary = {
        "generator": gen.name,
        "out": str(options.out),
        "rejects": str(options.rejects_path) if rejects else None,
        "units": len(units),
        "previously_done": previously_done,
        "accepted_units": status["ok"],
        "records": len(records),
        "rejected": status["rejected"],
        "gated_records": tally.gated,
        "rejects_by_reason": dict(sorted(tally.by_reason.items())),
        "gates": "on" if gate_on else "off",
        "failed": status["failed"],
        "skipped": status["skipped"],
        "skip_reasons": dict(tally.skip_reasons),
        "bad_input_rows": bad_rows,
        "calls": int(stats.get("calls", 0)),
        "cached": int(stats.get("cached", 0)),
        "retries": int(stats.get("retries", 0)),
        "prompt_tokens": int(stats.get("prompt_tokens", 0)),
        "completion_tokens": int(stats.get("completion_tokens", 0)),
        "cost_usd": round(float(stats.get("cost_usd", 0.0)), 6),
        **({"prepare": prep} if prep else {}),
        "complete": finished,
    }
    if client is not None:
        output.info(f"LLM: {client.summary_line()}")
    return summary


def _dry_run(
    options: InstructOptions,
    gen: Generator,
    units: list[Unit],
    client: LLMClient | None,
    header: dict[str, Any],
    output: Output,
    bad_rows: int,
) -> dict[str, Any]:
    """How many calls and tokens the run would need; nothing is sent or written."""
    journal = _read_journal(options, header, output, discard_foreign=False)
    pending = [u for u in units if journal.get(u.id, {}).get("status") not in DONE_STATUSES]
    planned = [m for u in pending for m in gen.plan(u)]
    planned += gen.prepare_plan(pending)
    cached = sum(1 for m in planned if client is not None and client.is_cached(m))
    needed = [m for m in planned if client is None or not client.is_cached(m)]
    prompt_tokens = sum(estimate_tokens(m) for m in needed)
    # Multi-call generators (abductive) make more calls than are known up front.
    extra = sum(max(0, gen.max_calls_per_unit - 1) for u in pending if gen.plan(u))
    max_tokens = options.llm.max_tokens if gen.uses_llm else 0
    summary = {
        "generator": gen.name,
        "dry_run": True,
        "units": len(units),
        "previously_done": len(units) - len(pending),
        "pending_units": len(pending),
        "calls_needed": len(needed),
        "calls_cached": cached,
        "further_calls_at_most": extra,
        "prompt_tokens_estimate": prompt_tokens,
        "completion_tokens_at_most": (len(needed) + extra) * max_tokens,
        "bad_input_rows": bad_rows,
    }
    if client is not None and (options.llm.price_prompt_per_1k or options.llm.price_completion_per_1k):
        summary["cost_usd_at_most"] = round(
            client.cost(prompt_tokens * (1 + (extra / max(1, len(needed)))), summary["completion_tokens_at_most"]), 4
        )
    return summary


def exit_code(summary: dict[str, Any]) -> int:
    """Non-zero when anything was rejected, failed or left out."""
    if summary.get("dry_run"):
        return 0
    return 1 if (summary["rejected"] or summary["failed"] or summary["bad_input_rows"]) else 0


@dataclass
class GenerateOptions:
    """Flat options for Python callers: one generator, one endpoint, defaults as the CLI's."""

    generator: str
    narratives: Path
    out: Path
    base_url: str = defaults.BASE_URL
    model: str = defaults.MODEL
    api_key_env: str | None = defaults.KEY_ENV
    cache: Path | None = None  # default: llm_cache.sqlite next to ``out`` (llm_options.default_cache_path)
    concurrency: int = defaults.CONCURRENCY
    temperature: float = defaults.TEMPERATURE
    max_tokens: int = defaults.MAX_TOKENS
    max_retries: int = defaults.MAX_RETRIES
    timeout_s: float = defaults.TIMEOUT_S
    seed: int = 0
    caption: str = "plain"
    diagnoses: Path | None = None
    questions: Path | None = None
    medical_filter: Path | None = None
    include_non_tissue: bool = False
    limit: int | None = None
    dry_run: bool = False
    gates: GateConfig = field(default_factory=GateConfig)
    structured: str = "auto"

    def to_instruct_options(self) -> InstructOptions:
        out = Path(self.out)
        llm = LLMConfig(
            base_url=self.base_url,
            model=self.model,
            api_key_env=self.api_key_env,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            concurrency=self.concurrency,
            max_retries=self.max_retries,
            timeout_s=self.timeout_s,
            cache_path=self.cache if self.cache is not None else default_cache_path(out),
        )
        return InstructOptions(
            generator=self.generator,
            narratives=Path(self.narratives),
            out=out,
            llm=llm,
            seed=self.seed,
            caption=self.caption,
            diagnoses=self.diagnoses,
            questions=self.questions,
            limit=self.limit,
            dry_run=self.dry_run,
            medical_filter=self.medical_filter,
            include_non_tissue=self.include_non_tissue,
            gates=self.gates,
            structured=self.structured,
        )


def run_generator(options: GenerateOptions | InstructOptions, output: Output | None = None) -> dict[str, Any]:
    """:func:`run_instruct` for either options form; returns the run summary."""
    if isinstance(options, GenerateOptions):
        options = options.to_instruct_options()
    return run_instruct(options, output)
