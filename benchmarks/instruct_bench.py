"""Stage B speed: LLM calls at concurrency C against the same calls one at a time.

A local OpenAI-compatible server (tests/fake_openai.py) answers every request
after a fixed latency, standing in for a remote model. Measured in the same run:

- ``sequential``: N distinct requests through LLMClient with concurrency 1 (baseline);
- ``concurrent``: the same N requests with concurrency C (fresh cache);
- ``cached rerun``: the concurrent batch again, answered from the SQLite cache;
- ``generator``: the ``conversation`` generator end to end (runner, parsing,
  journal, output) over N segments at concurrency C, against its own sequential run.

Figures are speed-ups (baseline wall time / wall time). With latency L, the ideal
concurrent speed-up is C; the gap shows the client's overhead.

    .venv/bin/python benchmarks/instruct_bench.py --n 64 --concurrency 8 --latency 0.1 [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # for tests.fake_openai

from tests.fake_openai import FakeOpenAIServer  # noqa: E402

from quilt_llava.console import Output  # noqa: E402
from quilt_llava.instruct.llm import ChatRequest, LLMClient, LLMConfig  # noqa: E402


def _client(srv: FakeOpenAIServer, concurrency: int, cache: Path | None) -> LLMClient:
    return LLMClient(
        LLMConfig(
            base_url=srv.base_url,
            model="bench",
            api_key_env=None,
            concurrency=concurrency,
            cache_path=cache,
            backoff_base_s=0.01,
        ),
        output=Output(quiet=True),
    )


def _timed_run(client: LLMClient, requests: list[ChatRequest]) -> float:
    t0 = time.perf_counter()
    results = client.run(requests)
    elapsed = time.perf_counter() - t0
    bad = [r for r in results if not r.ok]
    if bad:
        raise SystemExit(f"benchmark requests failed: {bad[0].error}")
    return elapsed


def bench_client(n: int, concurrency: int, latency: float, tmp: Path) -> dict[str, float]:
    reqs = [
        ChatRequest(f"r{i}", [{"role": "user", "content": f"request number {i} " + "tissue " * 50}]) for i in range(n)
    ]
    with FakeOpenAIServer(latency_s=latency) as srv:
        t_seq = _timed_run(_client(srv, 1, None), reqs)
        cache = tmp / "bench_cache.sqlite"
        t_conc = _timed_run(_client(srv, concurrency, cache), reqs)
        t_cached = _timed_run(_client(srv, concurrency, cache), reqs)
        max_seen = srv.max_concurrent
    return {
        "sequential_s": t_seq,
        "concurrent_s": t_conc,
        "cached_s": t_cached,
        "speedup_concurrent": t_seq / t_conc,
        "speedup_cached": t_seq / t_cached,
        "efficiency": (t_seq / t_conc) / concurrency,
        "server_max_in_flight": max_seen,
    }


def bench_generator(n: int, concurrency: int, latency: float, tmp: Path) -> dict[str, float]:
    from tests.instruct.conftest import good_reply, make_rows

    from quilt_llava.instruct.run import InstructOptions, run_instruct

    folder = tmp / "nar"
    folder.mkdir()
    base = make_rows(folder)
    rows = []
    for i in range(n):
        row = dict(base[i % len(base)])
        row["segment_id"] = i
        # Distinct prompts: identical ones would share one call and flatter the figure.
        row["utterances"] = [{**u, "text": f"{u['text']} (field {i})"} for u in row["utterances"]]
        rows.append(row)
    nar = folder / "narratives.jsonl"
    nar.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    times = {}
    with FakeOpenAIServer(responder=good_reply, latency_s=latency) as srv:
        for c in (1, concurrency):
            llm = LLMConfig(base_url=srv.base_url, model="bench", api_key_env=None, concurrency=c, cache_path=None)
            opts = InstructOptions(generator="conversation", narratives=nar, out=tmp / f"conv_c{c}.jsonl", llm=llm)
            t0 = time.perf_counter()
            summary = run_instruct(opts)
            times[c] = time.perf_counter() - t0
            if summary["records"] != n:
                raise SystemExit(f"generator run produced {summary['records']} records, expected {n}")
    return {
        "generator_sequential_s": times[1],
        "generator_concurrent_s": times[concurrency],
        "generator_speedup": times[1] / times[concurrency],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="requests (and segments for the generator run)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server waits before each reply")
    parser.add_argument("--skip-generator", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        result: dict[str, object] = {
            "n": args.n,
            "concurrency": args.concurrency,
            "latency_s": args.latency,
            "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(),
        }
        result.update(bench_client(args.n, args.concurrency, args.latency, tmp))
        if not args.skip_generator:
            result.update(bench_generator(args.n, args.concurrency, args.latency, tmp))
    if args.json:
        print(json.dumps(result))
        return
    print(f"N={args.n} requests, latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}")
    print(f"  client, sequential (baseline) : {result['sequential_s']:.2f} s")
    print(
        f"  client, concurrent            : {result['concurrent_s']:.2f} s  -> x{result['speedup_concurrent']:.2f} "
        f"(ideal x{args.concurrency}, efficiency {result['efficiency']:.0%}, max in flight "
        f"{result['server_max_in_flight']})"
    )
    print(f"  client, cached re-run         : {result['cached_s']:.3f} s  -> x{result['speedup_cached']:.1f}")
    if "generator_speedup" in result:
        print(f"  conversation generator c=1    : {result['generator_sequential_s']:.2f} s")
        print(
            f"  conversation generator c={args.concurrency}    : {result['generator_concurrent_s']:.2f} s  -> "
            f"x{result['generator_speedup']:.2f}"
        )


if __name__ == "__main__":
    main()
