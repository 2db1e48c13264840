"""`eval judge` through the CLI: shared endpoint flags, default cache, dry run, kill-and-resume, key scrubbing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.eval.judge import JUDGE_SYSTEM, REFERENCE_SYSTEM
from quilt_llava.files import read_jsonl
from tests.conftest import REPO_ROOT
from tests.fake_openai import FakeOpenAIServer
from tests.instruct.test_llm import LONG_SECRET, key_fragments

CAPTION = "Nests of atypical cells [0.12, 0.3, 0.55, 0.71] in a desmoplastic stroma [0.6, 0.1, 0.95, 0.5]"


def write_inputs(folder, n: int):
    folder.mkdir(parents=True, exist_ok=True)
    qs = [
        {
            "question_id": f"q{i:02d}",
            "question": f"What is seen in field {i}?",
            "caption": f"{CAPTION} {i}",
            "category": ("conv", "detail")[i % 2],
        }
        for i in range(n)
    ]
    qfile, preds = folder / "questions.jsonl", folder / "tiny.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in qs))
    preds.write_text(
        "".join(json.dumps({"question_id": q["question_id"], "text": f"nests {i}"}) + "\n" for i, q in enumerate(qs))
    )
    return qfile, preds


def responder(messages, body):
    if messages[0]["content"] == REFERENCE_SYSTEM:
        return "Nests of atypical cells in a fibrous stroma."
    assert messages[0]["content"] == JUDGE_SYSTEM
    return "8 6.\nThe second answer is thinner."


def judge_args(qfile, preds, out, srv, *extra):
    return [
        "eval",
        "judge",
        "--questions",
        str(qfile),
        "--predictions",
        str(preds),
        "--out",
        str(out),
        "--base-url",
        srv.base_url,
        "--llm-model",
        "judge-llm",
        "--api-key-env",
        "QL_JUDGE_KEY",
        *extra,
    ]


def invoke(args, **env):
    return CliRunner().invoke(make_app(), args, env=env or None)


def judge_requests(srv):
    return [b for b in srv.requests if b["messages"][0]["content"] == JUDGE_SYSTEM]


def test_judge_uses_shared_endpoint_options_and_caches_next_to_out(tmp_path, monkeypatch):
    monkeypatch.setenv("QL_JUDGE_KEY", "sk-judge")
    qfile, preds = write_inputs(tmp_path / "in", 3)
    out = tmp_path / "res" / "review.jsonl"
    with FakeOpenAIServer(responder=responder) as srv:
        srv.fail_next(1, status=500, retry_after=None)
        opts = [
            "--api-version",
            "2024-06-01",
            "--max-retries",
            "1",
            "--backoff",
            "0.01",
            "--timeout",
            "5",
            "--max-tokens",
            "77",
            "--temperature",
            "0.1",
            "--price-prompt",
            "0.01",
            "--price-completion",
            "0.03",
        ]
        res = invoke(judge_args(qfile, preds, out, srv, *opts, "--json", "-q"))
        assert res.exit_code == 0, res.output
        assert srv.request_headers[0].get("api-key") == "sk-judge"  # Azure header with --api-version
        assert {b["max_tokens"] for b in srv.requests} == {77}
        assert {b["temperature"] for b in judge_requests(srv)} == {0.2}
        assert {b["temperature"] for b in srv.requests if b not in judge_requests(srv)} == {0.1}
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        assert summary["written"] == 3 and summary["llm"]["cost_usd"] > 0 and summary["reference_llm"]["retries"] == 1
        assert (out.parent / "llm_cache.sqlite").exists()  # the default cache, as in `instruct`
        # A re-run against a fresh review file is served from the cache.
        n = len(srv.requests)
        res = invoke(judge_args(qfile, preds, out.with_name("again.jsonl"), srv, *opts, "-q"))
        assert res.exit_code == 0 and len(srv.requests) == n
    rows = read_jsonl(out)
    assert sorted(r["question_id"] for r in rows) == ["q00", "q01", "q02"]
    assert all(r["scores"] == [8.0, 6.0] and r["content"].startswith("8 6\n") for r in rows)


def test_judge_endpoint_and_model_from_the_environment(tmp_path):
    qfile, preds = write_inputs(tmp_path / "in", 2)
    with FakeOpenAIServer(responder=responder) as srv:
        res = invoke(
            [
                "eval",
                "judge",
                "--questions",
                str(qfile),
                "--predictions",
                str(preds),
                "--out",
                str(tmp_path / "r.jsonl"),
                "--api-key-env",
                "",
                "-q",
            ],
            QUILT_LLAVA_LLM_BASE_URL=srv.base_url,
            QUILT_LLAVA_LLM_MODEL="env-judge",
        )
        assert res.exit_code == 0, res.output
        assert {b["model"] for b in srv.requests} == {"env-judge"}


def test_judge_dry_run_sends_and_writes_nothing(tmp_path):
    qfile, preds = write_inputs(tmp_path / "in", 4)
    out = tmp_path / "res" / "review.jsonl"
    with FakeOpenAIServer(responder=responder) as srv:
        res = invoke(judge_args(qfile, preds, out, srv, "--dry-run", "--json", "--api-key-env", ""))
        assert res.exit_code == 0, res.output
        plan = json.loads(res.stdout.strip().splitlines()[-1])
        assert plan["reference_calls_needed"] == 4 and plan["judge_calls_needed"] == 4
        assert srv.requests == [] and not out.parent.exists()
        assert invoke(judge_args(qfile, preds, out, srv, "--api-key-env", "", "-q")).exit_code == 0
        files = sorted(p.name for p in out.parent.iterdir())
        res = invoke(
            judge_args(
                qfile,
                preds,
                tmp_path / "res" / "other.jsonl",
                srv,
                "--dry-run",
                "--json",
                "--api-key-env",
                "",
                "--references",
                str(out.with_name("review.references.jsonl")),
            )
        )
        plan = json.loads(res.stdout.strip().splitlines()[-1])
        assert plan["references_done"] == 4 and plan["reference_calls_needed"] == 0
        assert plan["judge_calls_needed"] == 0 and plan["judge_calls_cached"] == 4
        assert sorted(p.name for p in out.parent.iterdir()) == files


def test_killed_judge_run_resumes_without_redoing_finished_reviews(tmp_path):
    n = 12
    qfile, preds = write_inputs(tmp_path / "in", n)
    out = tmp_path / "res" / "review.jsonl"
    refs = out.with_name("review.references.jsonl")
    with FakeOpenAIServer(responder=responder, latency_s=0.05) as srv:
        args = judge_args(qfile, preds, out, srv, "--concurrency", "1", "--no-cache", "--api-key-env", "", "-q")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "quilt_llava", *args],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60

        def rows(path):
            return path.read_text().count("\n") if path.exists() else 0

        while rows(out) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert rows(refs) == n  # every reference was kept as it arrived
        done_before = len(read_jsonl(out))
        assert 3 <= done_before < n
        before = len(srv.requests)
        res = invoke([*args[:-1], "--json"])
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        assert summary["skipped_existing"] == done_before and summary["written"] == n - done_before
        new = srv.requests[before:]
        assert len(new) == n - done_before and all(b["messages"][0]["content"] == JUDGE_SYSTEM for b in new)
    got = read_jsonl(out)
    assert sorted(r["question_id"] for r in got) == [f"q{i:02d}" for i in range(n)]


def test_long_key_stays_out_of_reviews_cache_and_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("QL_JUDGE_KEY", LONG_SECRET)
    qfile, preds = write_inputs(tmp_path / "in", 3)
    out = tmp_path / "res" / "review.jsonl"
    refs = tmp_path / "res" / "refs.jsonl"
    refs.parent.mkdir()
    refs.write_text("".join(json.dumps({"question_id": f"q{i:02d}", "text": "ref"}) + "\n" for i in range(3)))
    with FakeOpenAIServer(responder=responder) as srv:
        srv.echo_headers_next(3 * 2, status=401, pad=200)
        res = invoke(judge_args(qfile, preds, out, srv, "--references", str(refs), "--retries", "1", "--json"))
        assert srv.request_headers[0]["Authorization"] == f"Bearer {LONG_SECRET}"
    assert res.exit_code == 1
    rows = read_jsonl(out)
    assert len(rows) == 3 and all(r["scores"] is None and "HTTP 401" in r["error"] for r in rows)
    for f in out.parent.iterdir():
        assert key_fragments(f.read_bytes().decode("utf-8", "replace")) == [], f
    assert key_fragments(res.stdout + res.stderr) == []
