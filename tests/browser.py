"""Headless Chromium for tests: Debian's package (scripts/install_chromium.sh), never a download.

Locally a missing browser skips the test; in CI (``CI=true``) it fails it.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_executable() -> str:
    exe = os.environ.get("QUILT_LLAVA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    message = "chromium not found; run scripts/install_chromium.sh or set QUILT_LLAVA_CHROMIUM"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
