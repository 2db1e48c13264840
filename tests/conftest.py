"""Shared fixtures. Artifacts a person may want to look at (screenshots, reports)
go under ``test_artifacts/`` at the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = REPO_ROOT / "test_artifacts"
    path.mkdir(exist_ok=True)
    return path
