"""Stage B: instruction-tuning and evaluation data generated from narratives with an OpenAI-compatible LLM."""
