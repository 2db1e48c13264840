"""Structured outputs: sending a JSON reply's schema with the request.

OpenAI, vLLM and llama.cpp's server accept ``response_format = {"type":
"json_schema", "json_schema": {"name", "schema", "strict"}}`` and then decode only
replies that match the schema, so a small local model returns parseable JSON and no
repair call is paid for. Other servers reject the field (HTTP 400/422) or ignore it
(``transformers serve`` 5.x logs "Ignoring unsupported fields" and decodes freely).

Mode ``auto`` (the default) sends one probe request first: a schema whose only valid
reply is a fixed object that no model writes unprompted. The field is then used only
when the reply matches it (the server honours schemas); a rejected or ignored field is
left out of every request of the run. ``on`` sends schemas without probing, ``off``
never sends them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quilt_llava.instruct.llm import LLMClient

STRUCTURED_MODES = ("auto", "on", "off")
PROBE_NAME = "quilt_llava_probe"
PROBE_VALUE = {"probe": "quilt-llava-schema-check", "n": 417}
PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "probe": {"type": "string", "enum": [PROBE_VALUE["probe"]]},
        "n": {"type": "integer", "enum": [PROBE_VALUE["n"]]},
    },
    "required": ["probe", "n"],
    "additionalProperties": False,
}
PROBE_MESSAGES = [{"role": "user", "content": "Name one organ of the human body in one word."}]


def response_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The ``response_format`` request field for a reply that must match ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def strict_object(properties: dict[str, Any]) -> dict[str, Any]:
    """An object schema in the strict form (every property required, no others allowed)."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


STRING = {"type": "string"}
STRING_LIST = {"type": "array", "items": STRING}


@dataclass
class ProbeResult:
    supported: bool
    detail: str  # "honoured", "ignored: ...", "rejected: HTTP 400 ...", "unreachable: ..."


async def probe(client: LLMClient) -> ProbeResult:
    """Whether the endpoint honours ``response_format`` json_schema: one request, its verdict cached.

    The verdict is kept in the client's response cache under the endpoint's URL and
    model (a re-run makes no request); a failed probe (server unreachable) is not kept.
    """
    from quilt_llava.instruct.llm import cache_key

    key = cache_key(client.config.model, [{"role": "probe", "content": client.url}], {"probe": PROBE_NAME})
    hit = client.cache.get(key) if client.cache is not None else None
    if hit is not None:
        verdict = json.loads(hit[0])
        return ProbeResult(bool(verdict["supported"]), str(verdict["detail"]) + " (cached)")
    result = await _probe_request(client)
    if client.cache is not None and not result.detail.startswith("unreachable"):
        client.cache.put(key, client.config.model, json.dumps(dataclasses.asdict(result)), {})
    return result


async def _probe_request(client: LLMClient) -> ProbeResult:
    from quilt_llava.instruct.llm import LLMClient

    # No cache (the answer belongs to this server, not to the model name) and few retries.
    config = dataclasses.replace(
        client.config, cache_path=None, max_retries=min(1, client.config.max_retries), max_tokens=32, temperature=0.0
    )
    probe_client = LLMClient(config, output=client.output, sleep=client._sleep)
    try:
        res = await probe_client.achat(PROBE_MESSAGES, response_format=response_format(PROBE_NAME, PROBE_SCHEMA))
    finally:
        await probe_client.aclose()
        probe_client.close()
    if res.error is not None:
        status = res.error.split(" from ")[0]
        if status.startswith("HTTP 4"):
            return ProbeResult(False, f"rejected: {res.error}")
        return ProbeResult(False, f"unreachable: {res.error}")
    try:
        reply = json.loads((res.text or "").strip())
    except json.JSONDecodeError:
        reply = None
    if reply == PROBE_VALUE:
        return ProbeResult(True, "honoured")
    return ProbeResult(False, f"ignored: the reply does not match the schema ({(res.text or '')[:60]!r})")
