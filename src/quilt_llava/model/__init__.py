"""The LLaVA-style model in the Hugging Face shape: assembly, presets, conversation templates, checkpoint import."""
