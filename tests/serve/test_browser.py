"""End to end: ``quilt-llava serve`` on loopback with the tiny model, driven in headless Chromium.

The browser is Debian's chromium (``scripts/install_chromium.sh``), never a download.
Locally a missing browser skips this test; in CI (``CI=true``) it fails it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from quilt_llava.serve.session import ChatSession, DecodingOptions
from tests.browser import CHROMIUM_ARGS, chromium_executable

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MAX_NEW_TOKENS = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [
        sys.executable, "-m", "quilt_llava", "serve",
        "--model", str(tiny_model_dir), "--port", str(port), "--device", "cpu",
        "--max-new-tokens", str(MAX_NEW_TOKENS), "--max-pixels", "1000000",
    ]  # fmt: skip
    with log.open("w") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer within 120 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _letters(text: str) -> str:
    # Markdown rendering may eat punctuation of a random model's output; compare letters and digits.
    return re.sub(r"[^A-Za-z0-9]", "", text)


def test_upload_ask_and_read_the_streamed_answer(server, chat_model, tissue_png, png_bomb, artifacts_dir):
    from playwright.sync_api import expect, sync_playwright

    question = "What tissue is shown inside the circle?"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(server)
            status = page.locator("#status")

            # 0. the bundled example loads with a click
            page.locator("#examples img").first.click()
            expect(status).to_contain_text("Loaded ihc_crop.png (240x192)")

            # 1. upload a tissue image, type a region, ask
            page.set_input_files("#upload input[type=file]", str(tissue_png))
            expect(status).to_contain_text("Loaded tissue.png (160x120)")
            page.locator("#region textarea").fill("0.2, 0.2, 0.8, 0.8")
            page.locator("#question textarea").fill(question)
            page.click("#ask")
            expect(status).to_contain_text("Done (region [0.2, 0.2, 0.8, 0.8] circled)")
            bot = page.locator("#chat [data-testid='bot']")
            expect(bot).to_have_count(1)
            shown = bot.first.inner_text()
            expected = ChatSession(
                chat_model,
                DecodingOptions(max_new_tokens=MAX_NEW_TOKENS),
                image=Image.open(tissue_png).convert("RGB"),
                region=(0.2, 0.2, 0.8, 0.8),
            ).ask(question)
            assert _letters(shown) and _letters(shown) == _letters(expected), (shown, expected)
            expect(page.locator("#chat [data-testid='user']").first).to_have_text(question)

            # 2. paint a region instead of typing one; the conversation continues
            page.locator("#region textarea").fill("")
            page.locator("#editor button[aria-label='Brush']").first.click()
            canvas = page.locator("#editor canvas").first.bounding_box()
            x, y = canvas["x"] + canvas["width"] * 0.45, canvas["y"] + canvas["height"] * 0.45
            page.mouse.move(x, y)
            page.mouse.down()
            for step in range(1, 9):
                page.mouse.move(x + 6 * step, y + 4 * step)
            page.mouse.up()
            page.locator("#question textarea").fill("And the stain?")
            page.locator("#question textarea").press("Enter")
            expect(bot).to_have_count(2)
            expect(status).to_contain_text(re.compile(r"Done \(region \[[0-9., ]+\] circled\)"))
            page.screenshot(path=str(artifacts_dir / "serve_web_chat.png"), full_page=True)

            # 3. a decompression bomb is refused with a message, and the image stays
            page.set_input_files("#upload input[type=file]", str(png_bomb))
            expect(status).to_contain_text("Upload rejected")
            expect(status).to_contain_text("decompression bomb")
            page.screenshot(path=str(artifacts_dir / "serve_web_rejected_upload.png"), full_page=True)
            expect(bot).to_have_count(2)
        finally:
            browser.close()
