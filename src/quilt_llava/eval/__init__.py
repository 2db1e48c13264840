"""Stage D: batched inference, VQA metrics, LLM judge and benchmark declarations."""
