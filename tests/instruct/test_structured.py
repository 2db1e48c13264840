"""Structured outputs: the schemas sent, the probe against servers that honour, ignore or reject them."""

from __future__ import annotations

import asyncio
import json

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.instruct import structured
from quilt_llava.instruct.generators import conversation, diagnosis, medical_filter, reasoning, vqa
from quilt_llava.instruct.llm import LLMClient, LLMConfig
from tests.fake_openai import FakeOpenAIServer, response_format_problems
from tests.instruct.conftest import first_bad, good_reply, llm_args

SCHEMAS = [m.REPLY_SCHEMA for m in (conversation, diagnosis, medical_filter, reasoning, vqa)]


@pytest.mark.parametrize("name,schema", SCHEMAS, ids=[s[0] for s in SCHEMAS])
def test_every_schema_is_valid_and_strict(name, schema):
    assert response_format_problems(structured.response_format(name, schema)) == []


def test_fake_server_checks_the_schema_it_is_sent():
    assert response_format_problems(
        {
            "type": "json_schema",
            "json_schema": {
                "name": "x",
                "strict": True,
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        }
    )  # not strict: a not required
    assert response_format_problems({"type": "json_schema", "json_schema": {"name": "bad name!", "schema": {}}})
    assert response_format_problems({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}})
    assert response_format_problems({"type": "xml"})


def _probe(srv: FakeOpenAIServer, tmp_path) -> structured.ProbeResult:
    client = LLMClient(
        LLMConfig(
            base_url=srv.base_url,
            model="m",
            api_key_env=None,
            backoff_base_s=0.01,
            cache_path=tmp_path / "cache.sqlite",
        )
    )

    async def go():
        try:
            return await structured.probe(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    finally:
        client.close()


@pytest.mark.parametrize(
    "mode,supported,detail",
    [
        ("honour", True, "honoured"),
        ("ignore", False, "ignored"),
        ("reject", False, "rejected: HTTP 400"),
    ],
)
def test_probe(mode, supported, detail, tmp_path):
    with FakeOpenAIServer(responder=good_reply, schemas=mode) as srv:
        result = _probe(srv, tmp_path)
        assert result.supported is supported and result.detail.startswith(detail)
        assert len(srv.requests) == 1
        again = _probe(srv, tmp_path)  # the verdict is cached per endpoint
        assert again.supported is supported and again.detail.endswith("(cached)") and len(srv.requests) == 1


def test_unreachable_server_is_not_cached(tmp_path):
    with FakeOpenAIServer(responder=good_reply) as srv:
        srv.fail_next(10, status=503, retry_after=None)
        assert _probe(srv, tmp_path).detail.startswith("unreachable")
        srv._faults.clear()
        assert _probe(srv, tmp_path).detail.startswith("ignored")


@pytest.mark.parametrize(
    "generator,expected",
    [
        ("conversation", 5),
        ("diagnosis", 2),
        ("filter", 5),
        ("vqa", 3),
        ("reasoning", 5),
        ("abductive", 5),
    ],
)
def test_generators_under_a_server_that_honours_schemas(generator, expected, narratives, tmp_path):
    """Every JSON reply is sent with its schema, and the golden replies match them (the server checks)."""
    with FakeOpenAIServer(responder=good_reply, schemas="honour") as srv:
        out = tmp_path / f"{generator}.jsonl"
        res = CliRunner().invoke(
            make_app(), ["instruct", generator, str(narratives), "--out", str(out), *llm_args(srv), "--json", "--quiet"]
        )
        assert res.exit_code == 0, res.output
        s = json.loads(res.stdout.strip().splitlines()[-1])
        assert s["records"] == expected and s["structured"] == "auto: honoured"
        json_requests = [
            b
            for b in srv.requests[1:]
            if b["messages"][0]["content"].startswith("You") and "JSON" in b["messages"][0]["content"]
        ]
        assert json_requests and all(b["response_format"]["type"] == "json_schema" for b in json_requests)
        for body in json_requests:
            Draft202012Validator.check_schema(body["response_format"]["json_schema"]["schema"])


@pytest.mark.parametrize("mode", ["ignore", "reject"])
def test_fallback_sends_no_schema(mode, narratives, tmp_path):
    with FakeOpenAIServer(responder=good_reply, schemas=mode) as srv:
        out = tmp_path / "filter.jsonl"
        res = CliRunner().invoke(
            make_app(), ["instruct", "filter", str(narratives), "--out", str(out), *llm_args(srv), "--json", "--quiet"]
        )
        assert res.exit_code == 0, res.output
        assert all("response_format" not in b for b in srv.requests[1:])  # only the probe carried one
        assert json.loads(res.stdout.strip().splitlines()[-1])["records"] == 5


def test_structured_on_and_off(narratives, tmp_path):
    with FakeOpenAIServer(responder=first_bad("Sure! Medical: yes."), schemas="ignore") as srv:
        args = ["instruct", "filter", str(narratives), *llm_args(srv), "--json", "--quiet"]
        res = CliRunner().invoke(make_app(), [*args, "--out", str(tmp_path / "on.jsonl"), "--structured", "on"])
        assert res.exit_code == 0, res.output
        assert all(b["response_format"]["json_schema"]["name"] == "medical_filter" for b in srv.requests)
        n = len(srv.requests)
        res = CliRunner().invoke(make_app(), [*args, "--out", str(tmp_path / "off" / "f.jsonl"), "--structured", "off"])
        assert all("response_format" not in b for b in srv.requests[n:])
    res = CliRunner().invoke(
        make_app(), ["instruct", "filter", str(narratives), "--out", str(tmp_path / "x.jsonl"), "--structured", "maybe"]
    )
    assert res.exit_code != 0 and "auto, on, off" in str(res.exception)
