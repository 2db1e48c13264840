"""The chat client against a real loopback HTTP server."""

from __future__ import annotations

import asyncio
import logging
import pickle
import time

import pytest

from quilt_llava.console import Output
from quilt_llava.errors import ConfigError
from quilt_llava.instruct.llm import (
    ChatRequest,
    LLMClient,
    LLMConfig,
    cache_key,
    estimate_tokens,
    parse_retry_after,
)
from tests.fake_openai import FakeOpenAIServer

SECRET = "sk-test-7f3a9c-DO-NOT-LEAK"


def make_client(srv: FakeOpenAIServer, tmp_path=None, **over) -> LLMClient:
    cfg = dict(
        base_url=srv.base_url,
        model="gpt-4",
        api_key_env="QL_TEST_KEY",
        concurrency=4,
        max_retries=3,
        timeout_s=5.0,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        cache_path=(tmp_path / "cache.sqlite") if tmp_path is not None else None,
    )
    cfg.update(over)
    return LLMClient(LLMConfig(**cfg), output=Output(quiet=True))


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("QL_TEST_KEY", SECRET)


def reqs(n: int) -> list[ChatRequest]:
    return [ChatRequest(key=f"q{i}", messages=[{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def test_run_returns_results_in_order_with_usage_and_auth():
    with FakeOpenAIServer() as srv:
        client = make_client(srv)
        results = client.run(reqs(6), description="t")
    assert [r.key for r in results] == [f"q{i}" for i in range(6)]
    assert [r.text for r in results] == [f"echo: question {i}" for i in range(6)]
    assert all(r.ok and not r.cached and r.usage["completion_tokens"] == 3 for r in results)
    assert client.stats["calls"] == 6 and client.stats["failures"] == 0
    assert client.stats["prompt_tokens"] == 12 and client.stats["completion_tokens"] == 18
    assert srv.requests[0]["model"] == "gpt-4"
    assert srv.requests[0]["temperature"] == 0.0 and srv.requests[0]["max_tokens"] == 512
    assert srv.request_headers[0]["Authorization"] == f"Bearer {SECRET}"


def test_params_override_and_cache_makes_rerun_free(tmp_path):
    with FakeOpenAIServer() as srv:
        client = make_client(srv, tmp_path)
        batch = [*reqs(3), ChatRequest("warm", [{"role": "user", "content": "question 0"}], {"temperature": 0.7})]
        first = client.run(batch)
        assert srv.requests[-1]["temperature"] == 0.7 or any(r["temperature"] == 0.7 for r in srv.requests)
        n_sent = len(srv.requests)
        assert n_sent == 4  # a different temperature is a different cache key
        client2 = make_client(srv, tmp_path)
        second = client2.run(batch)
    assert len(srv.requests) == n_sent
    assert [r.text for r in second] == [r.text for r in first]
    assert all(r.cached for r in second)
    assert client2.stats["calls"] == 0 and client2.stats["cached"] == 4


def test_retries_429_honouring_retry_after_then_succeeds():
    with FakeOpenAIServer() as srv:
        srv.fail_next(2, status=429, retry_after=0.3)
        client = make_client(srv, concurrency=1)
        t0 = time.perf_counter()
        [res] = client.run(reqs(1))
        elapsed = time.perf_counter() - t0
    assert res.ok
    assert client.stats["retries"] == 2
    assert elapsed >= 0.6  # two waits of Retry-After, not the 0.01 s backoff
    assert len(srv.requests) == 3


@pytest.mark.parametrize("fault", ["500", "garbage", "slow"])
def test_retries_server_errors_garbage_and_timeouts(fault):
    with FakeOpenAIServer() as srv:
        if fault == "500":
            srv.fail_next(2, status=500, retry_after=None)
        elif fault == "garbage":
            srv.garbage_next(2)
        else:
            srv.slow_next(1, seconds=1.0)
        client = make_client(srv, concurrency=1, timeout_s=0.3)
        [res] = client.run(reqs(1))
    assert res.ok, res.error
    assert client.stats["retries"] >= 1


def test_gives_up_after_max_retries_and_fatal_4xx_is_not_retried():
    with FakeOpenAIServer() as srv:
        srv.fail_next(10, status=503, retry_after=None)
        client = make_client(srv, concurrency=1, max_retries=2)
        [res] = client.run(reqs(1))
        assert not res.ok and "gave up after 3 attempts" in res.error and "503" in res.error
        assert len(srv.requests) == 3
        srv._faults.clear()
        srv.fail_next(1, status=400, retry_after=None)
        [res] = client.run(reqs(1))
        assert not res.ok and "HTTP 400" in res.error
        assert len(srv.requests) == 4
    assert client.stats["failures"] == 2


def test_connection_refused_is_an_error_not_an_exception():
    srv = FakeOpenAIServer()
    url = srv.base_url
    srv._httpd.server_close()  # nothing listens there now
    client = LLMClient(LLMConfig(base_url=url, max_retries=1, backoff_base_s=0.0), output=Output(quiet=True))
    [res] = client.run(reqs(1))
    assert not res.ok and "connection error" in res.error


def test_concurrency_is_bounded():
    with FakeOpenAIServer(latency_s=0.05) as srv:
        client = make_client(srv, concurrency=3)
        client.run(reqs(12))
    assert 2 <= srv.max_concurrent <= 3


def test_identical_inflight_requests_share_one_call():
    with FakeOpenAIServer(latency_s=0.05) as srv:
        client = make_client(srv)
        same = [ChatRequest(f"k{i}", [{"role": "user", "content": "same"}]) for i in range(5)]
        results = client.run(same)
    assert len(srv.requests) == 1
    assert [r.key for r in results] == [f"k{i}" for i in range(5)]
    assert all(r.text == "echo: same" for r in results)


def test_achat_single_call_async():
    with FakeOpenAIServer() as srv:
        client = make_client(srv)

        async def go():
            async with client:
                return await client.achat([{"role": "user", "content": "hi"}], temperature=0.2)

        res = asyncio.run(go())
    assert res.text == "echo: hi" and srv.requests[0]["temperature"] == 0.2


def test_azure_mode_uses_api_key_header_and_version():
    with FakeOpenAIServer() as srv:
        client = make_client(srv, api_version="2024-06-01")
        client.run(reqs(1))
    headers = srv.request_headers[0]
    assert headers.get("api-key") == SECRET and "Authorization" not in headers


def test_no_key_sends_no_auth_header(monkeypatch):
    monkeypatch.delenv("QL_TEST_KEY")
    with FakeOpenAIServer() as srv:
        client = make_client(srv)
        [res] = client.run(reqs(1))
    assert res.ok and "Authorization" not in srv.request_headers[0]


def test_cost_accounting():
    with FakeOpenAIServer() as srv:
        client = make_client(srv, price_prompt_per_1k=0.03, price_completion_per_1k=0.06)
        client.run(reqs(2))
    assert client.stats["cost_usd"] == pytest.approx((4 * 0.03 + 6 * 0.06) / 1000)
    assert "cost $" in client.summary_line()


def test_api_key_never_leaks(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer() as srv:
        srv.echo_headers_next(1, status=401)
        srv.echo_headers_next(2, status=500)
        client = make_client(srv, tmp_path, concurrency=1, max_retries=1)
        [bad] = client.run(reqs(1))
        [retried_bad] = client.run([ChatRequest("x", [{"role": "user", "content": "other"}])])
        [good] = client.run([ChatRequest("y", [{"role": "user", "content": "fine"}])])
    # the server really did echo the key back...
    assert "headers were" in bad.error and "Bearer" in bad.error
    texts = [
        bad.error,
        retried_bad.error,
        repr(client),
        repr(client.config),
        str(client.stats),
        caplog.text,
        repr(bad),
        repr(good),
        repr(vars(client)),
        str(vars(client)),
    ]
    for text in texts:
        assert SECRET not in text
    assert "[REDACTED]" in bad.error
    with pytest.raises(TypeError):
        pickle.dumps(client._key)
    client.close()
    for f in tmp_path.iterdir():
        assert SECRET.encode() not in f.read_bytes(), f


def test_config_validation_lists_all_problems():
    with pytest.raises(ConfigError) as err:
        LLMClient(LLMConfig(base_url="localhost:8000", concurrency=0, auth="token"))
    msg = str(err.value)
    assert "base_url" in msg and "concurrency" in msg and "auth" in msg


def test_helpers():
    a = cache_key("m", [{"role": "user", "content": "x"}], {"temperature": 0, "max_tokens": 5})
    b = cache_key("m", [{"role": "user", "content": "x"}], {"max_tokens": 5, "temperature": 0})
    assert a == b and a != cache_key("m2", [{"role": "user", "content": "x"}], {"temperature": 0, "max_tokens": 5})
    assert estimate_tokens([{"role": "user", "content": "x" * 400}]) == 3 + 4 + 100
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_retry_after_pauses_every_request():
    with FakeOpenAIServer(latency_s=0.05) as srv:
        srv.fail_next(1, status=429, retry_after=0.4)
        client = make_client(srv, concurrency=2)
        results = client.run(reqs(8))
    assert all(r.ok for r in results)
    [t429] = [t for t, status in srv.reply_log if status == 429]
    # Requests already on the wire when the 429 left the server may land just after it;
    # after the client has read it, nobody sends until Retry-After has passed.
    during = [t - t429 for t in srv.request_times if t429 + 0.05 < t < t429 + 0.38]
    assert during == []
    assert any(t >= t429 + 0.38 for t in srv.request_times)


# A key as long as OpenAI project keys: clipping an error text before scrubbing it would cut it in two.
LONG_SECRET = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 5


def key_fragments(text: str, key: str = LONG_SECRET, size: int = 16) -> list[str]:
    """Pieces of ``key`` (``size`` characters or more) found in ``text``."""
    return [key[i : i + size] for i in range(len(key) - size + 1) if key[i : i + size] in text]


@pytest.mark.parametrize(("status", "raw"), [(401, False), (500, False), (200, True), (400, True)])
@pytest.mark.parametrize("pad", [0, 150, 250])
def test_long_key_is_scrubbed_before_error_text_is_clipped(monkeypatch, status, raw, pad):
    monkeypatch.setenv("QL_TEST_KEY", LONG_SECRET)
    with FakeOpenAIServer() as srv:
        srv.echo_headers_next(2, status=status, pad=pad, raw=raw)
        [res] = make_client(srv, concurrency=1, max_retries=1).run(reqs(1))
    assert not res.ok and (("unreadable reply" in res.error) if status == 200 else ("HTTP" in res.error))
    assert key_fragments(res.error) == []


@pytest.mark.parametrize("raw", [LONG_SECRET + "\r", LONG_SECRET + "\n", f"  {LONG_SECRET}\t"])
def test_key_whitespace_is_stripped(monkeypatch, raw):
    monkeypatch.setenv("QL_TEST_KEY", raw)
    with FakeOpenAIServer() as srv:
        [res] = make_client(srv).run(reqs(1))
    assert res.ok and srv.request_headers[0]["Authorization"] == f"Bearer {LONG_SECRET}"


@pytest.mark.parametrize("raw", ["sk-abc\rdef", "sk-abc\x7fdef", "sk-abc\u2019def", "sk-\u00e9abc"])
def test_key_with_control_or_non_ascii_characters_is_refused_without_showing_it(monkeypatch, raw):
    monkeypatch.setenv("QL_TEST_KEY", raw)
    with pytest.raises(ConfigError) as err:
        LLMClient(LLMConfig(api_key_env="QL_TEST_KEY"))
    msg = str(err.value)
    assert "$QL_TEST_KEY" in msg and "abc" not in msg and "def" not in msg


def test_finish_reason_is_kept_and_cached(tmp_path):
    with FakeOpenAIServer(responder=lambda m, b: "one two three four five six") as srv:
        client = make_client(srv, tmp_path)
        [cut, whole] = client.run(
            [
                ChatRequest("a", [{"role": "user", "content": "x"}], {"max_tokens": 3}),
                ChatRequest("b", [{"role": "user", "content": "y"}]),
            ]
        )
        assert (cut.text, cut.finish_reason) == ("one two three", "length") and whole.finish_reason == "stop"
        again = make_client(srv, tmp_path).run(
            [ChatRequest("a", [{"role": "user", "content": "x"}], {"max_tokens": 3})]
        )[0]
        assert again.cached and again.finish_reason == "length" and "finish_reason" not in again.usage
        assert len(srv.requests) == 2
