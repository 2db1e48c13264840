"""Several endpoints of one model: least-outstanding spreading, failover, one shared cache."""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from quilt_llava.console import Output
from quilt_llava.errors import InputError
from quilt_llava.instruct.endpoints import EndpointPool, read_endpoints
from quilt_llava.instruct.llm import ChatRequest, LLMClient, LLMConfig
from quilt_llava.instruct.llm_options import DEFAULT_BASE_URL, EndpointOptions
from tests.fake_openai import FakeOpenAIServer, echo_responder


def _requests(n: int) -> list[ChatRequest]:
    return [ChatRequest(f"r{i}", [{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def _client(urls: list[str], tmp_path, concurrency: int = 4, **kw) -> LLMClient:
    cfg = LLMConfig(
        base_url=urls[0],
        extra_base_urls=urls[1:],
        model="m",
        api_key_env=None,
        concurrency=concurrency,
        cache_path=tmp_path / "cache.sqlite",
        backoff_base_s=0.01,
        timeout_s=5.0,
        **kw,
    )
    return LLMClient(cfg, output=Output(quiet=True))


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_pool_picks_the_least_busy_endpoint_that_is_up():
    clock = _Clock()
    pool = EndpointPool(["http://a", "http://b", "http://c", "http://a"], cooldown_s=10, clock=clock)
    assert [e.url for e in pool.endpoints] == ["http://a", "http://b", "http://c"]
    a, b, c = pool.endpoints
    with pool.using(pool.pick()) as first, pool.using(pool.pick()) as second:
        assert (first, second) == (a, b) and pool.pick() is c
        assert pool.mark_down(c, "refused") is True
        assert pool.pick() is a  # c is out; a and b have one each, a is first
    assert a.served == b.served == 1 and a.in_flight == b.in_flight == 0
    assert pool.pick() is a  # ties: fewest served, then order
    clock.now = 9.9
    assert c not in pool.up()
    clock.now = 10.0
    assert pool.pick() is c  # back after the cool-down, and the least used
    for e in (a, b):
        pool.mark_down(e, "x")
    assert pool.mark_down(c, "x") is False  # nobody left to take the work
    clock.now = 10.5
    assert pool.pick() is a  # none up: the one back soonest
    assert "down 2x" in pool.summary() and "http://b: 1 served" in pool.summary()
    alone = EndpointPool(["http://a"], clock=clock)
    assert alone.mark_down(alone.endpoints[0], "x") is False and alone.up() == alone.endpoints
    assert alone.summary() == ""


def test_requests_are_spread_over_two_servers_with_one_cache(tmp_path):
    with FakeOpenAIServer(latency_s=0.02) as a, FakeOpenAIServer(latency_s=0.02) as b:
        client = _client([a.base_url, b.base_url], tmp_path)
        results = client.run(_requests(40))
        assert all(r.ok for r in results) and [r.key for r in results] == [f"r{i}" for i in range(40)]
        assert len(a.requests) + len(b.requests) == 40 and min(len(a.requests), len(b.requests)) >= 12
        assert max(a.max_concurrent, b.max_concurrent) <= 4  # --concurrency is per endpoint
        # The cache is shared: the same requests against one of the servers alone send nothing.
        again = _client([b.base_url], tmp_path).run(_requests(40))
        assert all(r.cached for r in again) and len(a.requests) + len(b.requests) == 40


def test_an_endpoint_going_down_moves_its_work_to_the_other_with_nothing_lost(tmp_path):
    n = 60
    lock = threading.Lock()
    seen = {"b": 0}

    def dies_after_ten(messages, body):
        with lock:
            seen["b"] += 1
            if seen["b"] == 10:
                b.go_down()  # this request and the ones in flight on b get no reply
        return echo_responder(messages, body)

    with FakeOpenAIServer(latency_s=0.03) as a:
        b = FakeOpenAIServer(responder=dies_after_ten, latency_s=0.03).start()
        try:
            client = _client([a.base_url, b.base_url], tmp_path, max_retries=0)  # failover is not a retry
            results = client.run(_requests(n))
        finally:
            b.stop()
    assert [r.key for r in results] == [f"r{i}" for i in range(n)]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert [r.text for r in results] == [f"echo: question {i}" for i in range(n)]
    assert b.answered <= 9 and a.answered + b.answered == n  # every request answered exactly once in all
    assert client.stats["failovers"] >= 1 and client.stats["failures"] == 0 and client.stats["calls"] == n
    assert "down 1x" in client.summary_line()
    assert len(client.cache) == n


def test_all_endpoints_down_fails_after_the_retries(tmp_path):
    with FakeOpenAIServer() as dead, FakeOpenAIServer() as other:
        url, url2 = dead.base_url, other.base_url
    client = _client([url, url2], tmp_path, max_retries=1)
    (result,) = client.run(_requests(1))
    assert not result.ok and "gave up after 2 attempts" in result.error and "connection error" in result.error


def test_endpoint_options_repeat_and_file(tmp_path):
    listing = tmp_path / "endpoints.txt"
    listing.write_text("# the lab's servers\nhttp://gpu1:8000/v1\n\nhttp://gpu2:8000/v1  # spare\n")
    assert read_endpoints(listing) == ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]
    assert EndpointOptions(endpoints=listing).base_urls() == ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]
    both = EndpointOptions(base_url=["http://gpu0/v1", "http://gpu1:8000/v1"], endpoints=listing)
    cfg = both.llm_config(tmp_path / "out.jsonl")
    assert cfg.base_url == "http://gpu0/v1" and cfg.extra_base_urls == ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]
    assert EndpointOptions().base_urls() == [DEFAULT_BASE_URL]
    (tmp_path / "bad.txt").write_text("http://ok/v1\ngpu3:8000\n")
    with pytest.raises(InputError, match=r"bad\.txt:2.*gpu3:8000"):
        read_endpoints(tmp_path / "bad.txt")
    with pytest.raises(InputError, match="names no endpoints"):
        (tmp_path / "empty.txt").write_text("# nothing\n")
        read_endpoints(tmp_path / "empty.txt")


def test_cli_repeated_base_url_uses_both_servers(narratives, tmp_path):
    from quilt_llava.cli import make_app
    from tests.instruct.conftest import good_reply

    with (
        FakeOpenAIServer(responder=good_reply, latency_s=0.05) as a,
        FakeOpenAIServer(responder=good_reply, latency_s=0.05) as b,
    ):
        out = tmp_path / "conv.jsonl"
        res = CliRunner().invoke(
            make_app(),
            [
                "instruct",
                "conversation",
                str(narratives),
                "--out",
                str(out),
                "--base-url",
                a.base_url,
                "--base-url",
                b.base_url,
                "--model",
                "test-model",
                "--api-key-env",
                "",
                "--concurrency",
                "1",
                "--json",
                "--quiet",
            ],
        )
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        assert summary["failed"] == 0 and summary["records"] == 5
        assert a.requests and b.requests


def test_request_defaults_have_one_home():
    """LLMConfig, EndpointOptions, the CLI flags and GenerateOptions share instruct.defaults."""
    import dataclasses

    from quilt_llava.instruct import defaults
    from quilt_llava.instruct.llm import LLMConfig
    from quilt_llava.instruct.llm_options import _params
    from quilt_llava.instruct.run import GenerateOptions

    expected = {
        "temperature": defaults.TEMPERATURE,
        "max_tokens": defaults.MAX_TOKENS,
        "concurrency": defaults.CONCURRENCY,
        "max_retries": defaults.MAX_RETRIES,
        "timeout_s": defaults.TIMEOUT_S,
        "model": defaults.MODEL,
        "api_key_env": defaults.KEY_ENV,
    }
    llm, endpoint = LLMConfig(), EndpointOptions()
    flat = {f.name: f.default for f in dataclasses.fields(GenerateOptions)}
    flags = {name: option.default for name, _, option in _params()}
    for name, value in expected.items():
        assert getattr(llm, name) == value and getattr(endpoint, name) == value and flat[name] == value, name
        assert flags[name] == value, name
    assert llm.base_url == endpoint.base_url == flat["base_url"] == defaults.BASE_URL
    assert llm.backoff_base_s == endpoint.backoff_s == flags["backoff_s"] == defaults.BACKOFF_S
