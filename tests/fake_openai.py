"""A small, real OpenAI-compatible chat-completions server for tests and benchmarks.

It listens on 127.0.0.1 (port 0: the OS picks a free one) in a background thread
and answers ``POST /v1/chat/completions`` with whatever ``responder(messages, body)``
returns. It can be told to misbehave: fail the next n requests with a status and
``Retry-After``, send non-JSON replies, echo the request headers in an error body
(to test that a client scrubs its key), or be slow (``latency_s`` per request).
``capacity`` bounds the requests it works on at once (more wait, as on a loaded GPU
server); ``go_down()`` stops it as a crash would: no new connections, and every request
in progress or arriving on an open connection is dropped without a reply.

Structured outputs: every ``response_format`` it is sent is checked (type ``text``,
``json_object`` or ``json_schema`` with a name, a valid JSON Schema and, when
``strict``, the strict rules: every object lists all its properties as required and
forbids others); a bad one gets HTTP 400 naming the problem. What happens next is set
by ``schemas``:
- ``"ignore"`` (default, like ``transformers serve``): the field has no effect;
- ``"honour"`` (like vLLM or OpenAI): the reply must match the schema, else HTTP 500
  (a responder that breaks its schema is a test bug); a schema with only one valid
  instance is answered with it, as a constrained decoder would;
- ``"reject"`` (like a server without the feature): HTTP 400 for any ``response_format``.

    with FakeOpenAIServer(responder=fn, latency_s=0.0) as srv:
        srv.base_url            # "http://127.0.0.1:PORT/v1"
        srv.requests            # list of request bodies received (every attempt)
        srv.fail_next(2, status=429, retry_after=0.1)
        srv.garbage_next(1)

Run it alone for manual tries: ``python -m tests.fake_openai --port 8000``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[list[dict[str, Any]], dict[str, Any]], str]


def echo_responder(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """Default: repeat the last user message."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return f"echo: {m.get('content', '')}"
    return "echo:"


SCHEMA_MODES = ("ignore", "honour", "reject")


def response_format_problems(fmt: Any) -> list[str]:
    """What is wrong with a request's ``response_format`` (empty when it is well-formed)."""
    import re

    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        return ["response_format.type must be text, json_object or json_schema"]
    if fmt["type"] != "json_schema":
        return []
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        return ["response_format.json_schema must be an object"]
    problems = []
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(spec.get("name", ""))):
        problems.append("json_schema.name must be 1-64 letters, digits, _ or -")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        return [*problems, "json_schema.schema must be an object"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        problems.append(f"json_schema.schema is not a valid JSON Schema: {exc.message}")
    if spec.get("strict"):
        if schema.get("type") != "object":
            problems.append("a strict schema's root must be an object")
        problems += _strict_problems(schema, "schema")
    return problems


def _strict_problems(node: Any, where: str) -> list[str]:
    if not isinstance(node, dict):
        return []
    problems = []
    if "object" in (node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]):
        props = node.get("properties", {})
        if node.get("additionalProperties") is not False:
            problems.append(f"{where}: strict objects need additionalProperties false")
        if sorted(node.get("required", [])) != sorted(props):
            problems.append(f"{where}: strict objects must require every property")
        for name, sub in props.items():
            problems += _strict_problems(sub, f"{where}.{name}")
    if "items" in node:
        problems += _strict_problems(node["items"], f"{where}[]")
    return problems


def forced_instance(schema: dict[str, Any]) -> Any:
    """The only instance an object schema allows (every property one enum value), or None."""
    props = schema.get("properties") or {}
    if schema.get("type") != "object" or not props:
        return None
    out = {}
    for name, sub in props.items():
        values = sub.get("enum") if isinstance(sub, dict) else None
        if not values or len(values) != 1:
            return None
        out[name] = values[0]
    return out


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients connect at once; the default backlog of 5 drops SYNs

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected in tests, not an error to print.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class FakeOpenAIServer:
    def __init__(
        self,
        responder: Responder | None = None,
        latency_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        capacity: int | None = None,
        schemas: str = "ignore",
    ) -> None:
        if schemas not in SCHEMA_MODES:
            raise ValueError(f"schemas must be one of {SCHEMA_MODES}, got {schemas!r}")
        self.schemas = schemas
        self.responder = responder or echo_responder
        self.latency_s = latency_s
        self._slots = threading.BoundedSemaphore(capacity) if capacity else None
        self.is_down = False
        self.answered = 0  # requests answered with 200
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.request_times: list[float] = []  # time.monotonic() at arrival
        self.reply_log: list[tuple[float, int]] = []  # (time.monotonic() when sent, status)
        self._lock = threading.Lock()
        self._faults: list[tuple[str, dict[str, Any]]] = []  # queue of (kind, options)
        self._max_active = 0
        self._active = 0
        self._httpd = _Server((host, port), self._make_handler())
        self._thread: threading.Thread | None = None

    # -- control ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def max_concurrent(self) -> int:
        """Most requests seen in progress at once."""
        return self._max_active

    def fail_next(self, n: int, status: int = 429, retry_after: float | None = 0.1) -> None:
        with self._lock:
            self._faults.extend(("fail", {"status": status, "retry_after": retry_after}) for _ in range(n))

    def garbage_next(self, n: int) -> None:
        with self._lock:
            self._faults.extend(("garbage", {}) for _ in range(n))

    def echo_headers_next(self, n: int, status: int = 401, pad: int = 0, raw: bool = False) -> None:
        """The next n replies are errors whose body repeats the request headers (as some proxies do).

        ``pad`` puts that many filler characters before them (so a client that clips error
        text before scrubbing it would cut the key in two); ``raw`` sends the text as a
        non-JSON body instead of an OpenAI error object (with status 200: an unreadable reply).
        """
        with self._lock:
            self._faults.extend(("echo_headers", {"status": status, "pad": pad, "raw": raw}) for _ in range(n))

    def slow_next(self, n: int, seconds: float) -> None:
        with self._lock:
            self._faults.extend(("slow", {"seconds": seconds}) for _ in range(n))

    def go_down(self) -> None:
        """Crash: drop what is in progress, refuse what comes (callable from a responder)."""
        self.is_down = True
        threading.Thread(target=self.stop, daemon=True).start()  # shutdown() blocks; not on a handler thread

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ------------------------------------------------------------------

    def _next_fault(self) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm on, the
            # client's delayed ACK would add ~40 ms to every reply.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send(
                self,
                status: int,
                payload: bytes,
                content_type: str = "application/json",
                headers: dict[str, str] | None = None,
            ) -> None:
                with server._lock:
                    server.reply_log.append((time.monotonic(), status))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(obj).encode("utf-8"), headers=headers)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if not self.path.split("?")[0].rstrip("/").endswith("/chat/completions"):
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._json(400, {"error": {"message": "request body is not JSON"}})
                    return
                with server._lock:
                    server.requests.append(body)
                    server.request_times.append(time.monotonic())
                    server.request_headers.append(dict(self.headers.items()))
                    server._active += 1
                    server._max_active = max(server._max_active, server._active)
                try:
                    if server._slots is None:
                        self._answer(body)
                    else:
                        with server._slots:
                            self._answer(body)
                finally:
                    with server._lock:
                        server._active -= 1

            def _dropped(self) -> bool:
                if server.is_down:
                    self.close_connection = True  # no reply: the client sees the connection end
                return server.is_down

            def _answer(self, body: dict[str, Any]) -> None:
                fault = server._next_fault()
                delay = server.latency_s
                if fault and fault[0] == "slow":
                    delay = fault[1]["seconds"]
                if delay > 0:
                    time.sleep(delay)
                if self._dropped():
                    return
                if fault and fault[0] == "fail":
                    headers = {}
                    if fault[1]["retry_after"] is not None:
                        headers["Retry-After"] = f"{fault[1]['retry_after']:g}"
                    self._json(fault[1]["status"], {"error": {"message": "injected failure", "type": "fake"}}, headers)
                    return
                if fault and fault[0] == "garbage":
                    self._send(200, b"<html>upstream hiccup, definitely not JSON", content_type="text/html")
                    return
                if fault and fault[0] == "echo_headers":
                    text = "." * fault[1]["pad"] + f"bad request; headers were {dict(self.headers.items())}"
                    if fault[1]["raw"]:
                        self._send(fault[1]["status"], text.encode("utf-8"), content_type="text/plain")
                    else:
                        self._json(fault[1]["status"], {"error": {"message": text}})
                    return
                messages = body.get("messages") or []
                fmt = body.get("response_format")
                if fmt is not None:
                    problems = response_format_problems(fmt)
                    if problems or server.schemas == "reject":
                        message = "; ".join(problems) or "response_format is not supported by this server"
                        self._json(400, {"error": {"message": message, "type": "invalid_request_error"}})
                        return
                schema = (fmt.get("json_schema") or {}).get("schema") if fmt and server.schemas == "honour" else None
                forced = forced_instance(schema) if schema else None
                try:
                    text = json.dumps(forced) if forced is not None else server.responder(messages, body)
                except Exception as exc:  # a responder bug becomes a 500, as a real server would answer
                    self._json(500, {"error": {"message": f"responder failed: {exc}"}})
                    return
                if schema:
                    from jsonschema import Draft202012Validator

                    try:
                        errors = [e.message for e in Draft202012Validator(schema).iter_errors(json.loads(text))]
                    except json.JSONDecodeError:
                        errors = ["the reply is not JSON"]
                    if errors:
                        self._json(500, {"error": {"message": f"reply breaks the schema: {errors[0]}"}})
                        return
                if self._dropped():
                    return
                with server._lock:
                    server.answered += 1
                prompt_tokens = sum(_count_tokens(str(m.get("content", ""))) for m in messages)
                completion_tokens = _count_tokens(text)
                finish = "stop"
                limit = body.get("max_tokens")
                if isinstance(limit, int) and completion_tokens > limit:  # cut at the limit, as a real server
                    text, completion_tokens, finish = " ".join(text.split(" ")[:limit]), limit, "length"
                self._json(
                    200,
                    {
                        "id": f"chatcmpl-fake-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "fake-model"),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                        ],
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": completion_tokens,
                            "total_tokens": prompt_tokens + completion_tokens,
                        },
                    },
                )

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the fake chat-completions API (echo replies).")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=None, help="requests worked on at once (default: no limit)")
    args = parser.parse_args()
    srv = FakeOpenAIServer(latency_s=args.latency, port=args.port, capacity=args.capacity).start()
    print(f"serving on {srv.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
