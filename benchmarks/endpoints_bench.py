"""Stage B over several endpoints: throughput with two servers of one model against one, same run.

Two OpenAI-compatible servers (tests/fake_openai.py, each in its own process on loopback, as
real servers are apart from the client) answer each request after a fixed latency and work on
at most ``--capacity`` requests at once (more wait, as on a GPU server at its batch limit), so
one server's throughput is capacity / latency whatever the client sends. Measured in the same
run, N distinct requests through ``LLMClient`` with ``--concurrency`` per endpoint and a fresh
cache each time:

- ``one``: every request to server A (baseline);
- ``two``: the same requests spread over A and B (least outstanding requests);
- ``two, B killed``: as ``two``, but B's process is killed (SIGKILL) when a quarter of the
  results are in; every request must still be answered.

The goal for ``two`` is >= 1.8x ``one``.

    .venv/bin/python benchmarks/endpoints_bench.py [--n 400] [--latency 0.5] [--capacity 16] [--concurrency 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

from quilt_llava.console import Output  # noqa: E402
from quilt_llava.instruct.llm import ChatRequest, LLMClient, LLMConfig  # noqa: E402


def start_server(latency: float, capacity: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_openai",
            "--port",
            "0",
            "--latency",
            str(latency),
            "--capacity",
            str(capacity),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("serving on "):
        proc.kill()
        raise SystemExit(f"fake server did not start: {line!r}")
    return proc, line.removeprefix("serving on ")


def _run(
    urls: list[str], requests: list[ChatRequest], concurrency: int, cache: Path, on_result=None
) -> tuple[float, LLMClient]:
    client = LLMClient(
        LLMConfig(
            base_url=urls[0],
            extra_base_urls=urls[1:],
            model="bench",
            api_key_env=None,
            concurrency=concurrency,
            cache_path=cache,
            backoff_base_s=0.05,
            timeout_s=30.0,
        ),
        output=Output(quiet=True),
    )
    t0 = time.perf_counter()
    results = client.run(requests, on_result=on_result)
    elapsed = time.perf_counter() - t0
    bad = [r for r in results if not r.ok]
    if bad or [r.key for r in results] != [r.key for r in requests]:
        raise SystemExit(f"benchmark requests failed or went missing: {bad[0].error if bad else 'order'}")
    return elapsed, client


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--capacity", type=int, default=16, help="requests one server works on at once")
    ap.add_argument("--concurrency", type=int, default=16, help="client requests in flight per endpoint")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    reqs = [
        ChatRequest(f"r{i}", [{"role": "user", "content": f"request {i} " + "tissue " * 40}]) for i in range(args.n)
    ]
    servers = [start_server(args.latency, args.capacity) for _ in range(2)]
    (_, url_a), (proc_b, url_b) = servers
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t_one, _ = _run([url_a], reqs, args.concurrency, Path(tmp) / "one.sqlite")
            t_two, two = _run([url_a, url_b], reqs, args.concurrency, Path(tmp) / "two.sqlite")
            spread = [e.served for e in two.endpoints.endpoints]
            done = [0]

            def kill_b_at_a_quarter(i, result) -> None:
                done[0] += 1
                if done[0] == args.n // 4:
                    proc_b.send_signal(signal.SIGKILL)

            t_dies, dies = _run([url_a, url_b], reqs, args.concurrency, Path(tmp) / "dies.sqlite", kill_b_at_a_quarter)
    finally:
        for proc, _ in servers:
            proc.kill()
            proc.wait()
    res = {
        "n": args.n,
        "latency_s": args.latency,
        "capacity": args.capacity,
        "concurrency": args.concurrency,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "one_s": round(t_one, 3),
        "two_s": round(t_two, 3),
        "two_b_killed_s": round(t_dies, 3),
        "speedup_two": round(t_one / t_two, 3),
        "speedup_two_b_killed": round(t_one / t_dies, 3),
        "ideal_one_s": round(args.n * args.latency / args.capacity, 3),
        "served_a_b": spread,
        "b_killed_served_a_b": [e.served for e in dies.endpoints.endpoints],
        "b_killed_failovers": int(dies.stats["failovers"]),
        "b_killed_failures": int(dies.stats["failures"]),
    }
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"N={args.n} requests, latency {args.latency * 1000:.0f} ms, server capacity {args.capacity}, "
            f"client concurrency {args.concurrency} per endpoint"
        )
        print(
            f"  one endpoint (baseline)  : {t_one:.2f} s  ({args.n / t_one:.1f} req/s; ideal {res['ideal_one_s']:.2f} "
            "s)"
        )
        print(
            f"  two endpoints            : {t_two:.2f} s  -> x{res['speedup_two']:.2f} (goal >= 1.8; served A/B "
            f"{spread})"
        )
        print(
            f"  two, B killed at N/4     : {t_dies:.2f} s  -> x{res['speedup_two_b_killed']:.2f}; all {args.n} "
            "answered, "
            f"served A/B {res['b_killed_served_a_b']}, {res['b_killed_failovers']} requests moved to A, "
            f"{res['b_killed_failures']} failed"
        )
    return 0 if res["speedup_two"] >= 1.8 else 1


if __name__ == "__main__":
    sys.exit(main())
