"""A run killed with SIGKILL mid-way and resumed ends with the same output as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.files import read_jsonl
from tests.conftest import REPO_ROOT
from tests.fake_openai import FakeOpenAIServer
from tests.instruct.conftest import (
    KEY_ENV,
    SECRET,
    good_reply,
    llm_args,
    make_rows,
    write_narratives,
)

N_SEGMENTS = 36


def many_rows(folder):
    base = make_rows(folder)
    rows = []
    for i in range(N_SEGMENTS):
        row = dict(base[i % len(base)])
        row["segment_id"] = i  # unique per video; images are shared
        # Distinct text, so no two units share an LLM call.
        row["utterances"] = [{**u, "text": f"{u['text']} (field {i})"} for u in row["utterances"]]
        rows.append(row)
    return rows


def count_units(work_file) -> int:
    if not work_file.exists():
        return 0
    return sum(1 for line in work_file.read_text().splitlines() if line.startswith('{"unit"'))


def test_killed_run_resumes_to_identical_output(tmp_path):
    nar = write_narratives(tmp_path / "nar", many_rows(tmp_path / "nar"))
    with FakeOpenAIServer(responder=good_reply, latency_s=0.02) as srv:
        # Reference: one uninterrupted run.
        ref = tmp_path / "ref" / "abductive.jsonl"
        res = CliRunner().invoke(
            make_app(),
            ["instruct", "abductive", str(nar), "--out", str(ref), *llm_args(srv, "--concurrency", "2"), "--quiet"],
        )
        assert res.exit_code == 0, res.output
        full_calls = len(srv.requests)

        # Same job in a subprocess, killed once some units are journalled.
        out = tmp_path / "run" / "abductive.jsonl"
        work = out.with_name(f".{out.name}.work.jsonl")
        cmd = [
            sys.executable,
            "-m",
            "quilt_llava",
            "instruct",
            "abductive",
            str(nar),
            "--out",
            str(out),
            *llm_args(srv, "--concurrency", "2"),
            "--quiet",
        ]
        env = {**os.environ, KEY_ENV: SECRET, "PYTHONPATH": str(REPO_ROOT / "src")}
        proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while count_units(work) < 6 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        killed_at = count_units(work)
        assert 6 <= killed_at < N_SEGMENTS
        assert not out.exists()  # no half output: it is written only at the end

        before = len(srv.requests)
        res = CliRunner().invoke(
            make_app(),
            [
                "instruct",
                "abductive",
                str(nar),
                "--out",
                str(out),
                *llm_args(srv, "--concurrency", "2"),
                "--quiet",
                "--json",
            ],
        )
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        resumed_calls = len(srv.requests) - before

    assert summary["previously_done"] >= killed_at and summary["complete"]
    assert resumed_calls < full_calls  # the finished units and cached calls were not paid twice
    assert out.read_text() == ref.read_text()
    records = read_jsonl(out)
    assert len(records) == N_SEGMENTS
    assert len({r["id"] for r in records}) == N_SEGMENTS
    assert not work.exists()


def test_torn_journal_line_and_foreign_journal(tmp_path):
    nar = write_narratives(tmp_path / "nar")
    with FakeOpenAIServer(responder=good_reply) as srv:
        out = tmp_path / "o" / "filter.jsonl"
        args = ["instruct", "filter", str(nar), "--out", str(out), *llm_args(srv), "--quiet", "--json"]
        assert CliRunner().invoke(make_app(), args).exit_code == 0
        reference = out.read_text()
        work = out.with_name(f".{out.name}.work.jsonl")

        # A journal cut mid-line by a kill: the finished units are kept, the torn one redone.
        res = CliRunner().invoke(make_app(), [*args, "--limit", "3"])
        assert res.exit_code == 0
        lines = reference.splitlines()
        header = {
            "_header": {
                "generator": "filter",
                "prompt_version": "1",
                "structured": False,
                "model": "test-model",
                "llm_params": {"temperature": 0.0, "max_tokens": 512},
                "seed": 0,
                "caption": "plain",
                "inputs": {"diagnoses": None, "medical_filter": None, "questions": None},
            }
        }
        done = [
            {"unit": r["id"].removesuffix("-filter"), "status": "ok", "records": [r], "calls": 1, "cached": 0}
            for r in map(json.loads, lines[:2])
        ]
        work.write_text(
            json.dumps(header) + "\n" + "".join(json.dumps(d) + "\n" for d in done) + '{"unit": "vidA__2", "sta'
        )
        res = CliRunner().invoke(make_app(), args)
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout.strip().splitlines()[-1])["previously_done"] == 2
        assert out.read_text() == reference

        # A journal from another job (another model) is not trusted.
        work.write_text(
            json.dumps({"_header": {**header["_header"], "model": "other"}}) + "\n" + json.dumps(done[0]) + "\n"
        )
        res = CliRunner().invoke(make_app(), args)
        assert res.exit_code == 0
        assert json.loads(res.stdout.strip().splitlines()[-1])["previously_done"] == 0
        assert "different job" in res.stderr
        assert out.read_text() == reference


def _params_reply(messages, body):
    """A valid reply that also shows the request parameters it was made with."""
    text = good_reply(messages, body)
    return text + f" (max_tokens={body['max_tokens']}, temperature={body['temperature']})"


def test_changed_llm_settings_or_inputs_invalidate_the_journal(tmp_path):
    nar = write_narratives(tmp_path / "nar")
    out = tmp_path / "o" / "detail.jsonl"
    work = out.with_name(f".{out.name}.work.jsonl")

    def run(srv, *extra):
        args = [
            "instruct",
            "detail",
            str(nar),
            "--out",
            str(out),
            *llm_args(srv, "--max-retries", "0"),
            "--concurrency",
            "1",
            "--no-cache",
            "--quiet",
            "--json",
            *extra,
        ]
        res = CliRunner().invoke(make_app(), args)
        return res, json.loads(res.stdout.strip().splitlines()[-1])

    with FakeOpenAIServer(responder=_params_reply) as srv:
        srv.fail_next(1, status=500, retry_after=None)  # one unit fails: the journal stays
        res, s = run(srv, "--max-tokens", "100")
        assert s["failed"] == 1 and work.exists()
        # Same settings: the finished units are kept.
        srv.fail_next(1, status=500, retry_after=None)
        res, s = run(srv, "--max-tokens", "100")
        assert s["previously_done"] == 4
        # Other temperature / max_tokens: nothing is reused, every record has the new settings.
        res, s = run(srv, "--max-tokens", "900", "--temperature", "0.5")
        assert s["previously_done"] == 0 and s["failed"] == 0, res.output
        assert "different job" in res.stderr and "llm_params" in res.stderr
        assert all("(max_tokens=900, temperature=0.5)" in r["conversations"][1]["value"] for r in read_jsonl(out))

        # A changed --medical-filter file also starts over.
        filt = tmp_path / "filter.jsonl"
        filt.write_text(
            "".join(
                json.dumps({"video_id": v, "segment_id": i, "medical": True}) + "\n"
                for v, i in [("vidA", 0), ("vidA", 1), ("vidA", 2), ("vidB", 0)]
            )
        )
        srv.fail_next(1, status=500, retry_after=None)
        res, s = run(srv, "--medical-filter", str(filt))
        assert s["failed"] == 1 and work.exists()
        res, s = run(srv, "--medical-filter", str(filt))
        assert s["previously_done"] == 3 and s["failed"] == 0
        srv.fail_next(1, status=500, retry_after=None)
        run(srv, "--medical-filter", str(filt))
        filt.write_text(filt.read_text().replace('"medical": true}\n', '"medical": false}\n', 1))
        res, s = run(srv, "--medical-filter", str(filt))
        assert s["previously_done"] == 0 and "inputs" in res.stderr


def test_dry_run_writes_nothing_and_does_not_trust_a_foreign_journal(tmp_path):
    nar = write_narratives(tmp_path / "nar")
    out = tmp_path / "o" / "detail.jsonl"
    work = out.with_name(f".{out.name}.work.jsonl")
    with FakeOpenAIServer(responder=good_reply) as srv:
        base = ["instruct", "detail", str(nar), "--out", str(out), *llm_args(srv), "--quiet", "--json"]
        res = CliRunner().invoke(make_app(), [*base, "--dry-run"])
        assert res.exit_code == 0 and not out.parent.exists()  # no cache file, no folder
        srv.fail_next(3, status=500, retry_after=None)
        CliRunner().invoke(make_app(), [*base, "--max-retries", "0", "--concurrency", "1"])
        assert work.exists()
        journal = work.read_bytes()
        cache = out.parent / "llm_cache.sqlite"
        cache_bytes = cache.read_bytes()
        # Same job: finished units and cached replies are counted.
        s = json.loads(CliRunner().invoke(make_app(), [*base, "--dry-run"]).stdout.strip().splitlines()[-1])
        assert s["previously_done"] == 2 and s["calls_needed"] == 3
        # Another job (another max_tokens): the journal is not trusted, nor deleted.
        res = CliRunner().invoke(make_app(), [*base, "--dry-run", "--max-tokens", "64"])
        s = json.loads(res.stdout.strip().splitlines()[-1])
        assert s["previously_done"] == 0 and s["calls_needed"] == 5 and "different job" in res.stderr
        assert work.read_bytes() == journal and cache.read_bytes() == cache_bytes
        assert sorted(p.name for p in out.parent.iterdir()) == sorted(
            [work.name, cache.name, "detail.rejects.jsonl", "detail.jsonl"]
        )
