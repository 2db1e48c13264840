"""quilt-llava: grounded pathology image-text data, instruction tuning, evaluation and serving."""

__version__ = "0.1.0"
