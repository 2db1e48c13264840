"""Every LLM generator against a real small model (SmolLM2-135M-Instruct) behind `transformers serve`.

The model is far too small to write good data; it is here to produce the failures
real models produce (prose instead of JSON, loops, replies cut at the token limit,
mentions of the narration). Whatever it writes: nothing crashes, every accepted
record passes the gates (and an audit written apart from them), every rejection
names its reason. See tests/transformers_server.py for where the model comes from.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.files import read_jsonl
from quilt_llava.instruct.gates import GateConfig, gate_records
from tests.instruct.conftest import write_narratives

pytestmark = pytest.mark.slow

GENERATORS = ("conversation", "detail", "diagnosis", "filter", "vqa", "reasoning", "abductive")
# Apart from the gates' own patterns: words that give away how the material was made.
GIVEAWAY = re.compile(r"narrat|speaker|transcript|caption|video|the text\b|audience|coordinate|\[\s*0?\.\d+\s*,", re.I)


@pytest.fixture(scope="module")
def real_server():
    from tests.transformers_server import (
        ModelUnavailable,
        TransformersServe,
        cache_dir,
        smollm2_folder,
    )

    pytest.importorskip("gguf")
    try:
        folder = smollm2_folder(cache_dir())
    except ModelUnavailable as exc:
        pytest.skip(str(exc))
    with TransformersServe(folder) as srv:
        yield srv


def _texts(record: dict) -> list[str]:
    if isinstance(record.get("conversations"), list):
        return [str(t["value"]) for t in record["conversations"]]
    return [str(record[k]) for k in ("question", "answer") if k in record]


def test_every_generator_survives_a_real_model(real_server, tmp_path):
    narratives = write_narratives(tmp_path / "nar")
    problems = []
    for gen in GENERATORS:
        out = tmp_path / "out" / f"{gen}.jsonl"
        res = CliRunner().invoke(
            make_app(),
            [
                "instruct",
                gen,
                str(narratives),
                "--out",
                str(out),
                "--base-url",
                real_server.base_url,
                "--model",
                real_server.model,
                "--api-key-env",
                "",
                "--max-tokens",
                "32",
                "--limit",
                "1",
                "--timeout",
                "600",
                "--max-retries",
                "1",
                "--concurrency",
                "1",
                "--json",
                "--quiet",
            ],
        )
        assert res.exception is None or isinstance(res.exception, SystemExit), (gen, res.exception)
        assert res.exit_code in (0, 1), (gen, res.output)
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        assert summary["failed"] == 0 and summary["complete"], (gen, summary)
        # transformers serve 5.x ignores response_format: the probe must notice and fall back.
        if gen != "detail":  # detail asks for prose: no schema, no probe
            assert summary["structured"].startswith("auto: ignored"), (gen, summary["structured"])
        rejects_file = out.with_name(f"{gen}.rejects.jsonl")
        rejects = read_jsonl(rejects_file) if rejects_file.exists() else []
        assert sum(summary["rejects_by_reason"].values()) == len(rejects), (gen, summary, rejects)
        for row in rejects:
            assert row["reason_code"] and row["reason"], (gen, row)
        records = read_jsonl(out) if out.stat().st_size else []
        _, gated = gate_records(records, GateConfig(), gen in ("detail", "reasoning"))
        assert gated == [], (gen, gated)
        for record in records:
            for text in _texts(record):
                if GIVEAWAY.search(text):
                    problems.append((gen, text))
    assert problems == []
