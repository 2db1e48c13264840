"""The one home of the LLM request defaults.

``LLMConfig`` (the library's config), ``EndpointOptions`` and its command-line flags
(``llm_options``) and the flat ``GenerateOptions`` of ``instruct.run`` all read their
defaults from here, so they cannot drift apart. The sampling values are the published
run's (GPT-4 at temperature 0, at most 512 tokens per reply); the rest are ours.
"""

from __future__ import annotations

BASE_URL = "https://api.openai.com/v1"
MODEL = "gpt-4"
KEY_ENV = "OPENAI_API_KEY"  # the variable holding the key; the key itself is never stored
TEMPERATURE = 0.0
MAX_TOKENS = 512
CONCURRENCY = 8  # requests in flight at once, per endpoint
MAX_RETRIES = 5
TIMEOUT_S = 60.0
BACKOFF_S = 1.0  # first retry delay; doubles each retry
