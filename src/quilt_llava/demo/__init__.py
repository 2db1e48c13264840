"""The end-to-end demo on a bundled sample and its HTML report."""
