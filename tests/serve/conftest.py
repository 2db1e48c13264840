"""Fixtures for the serving tests: one tiny random LLaVA checkpoint saved once per session."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from quilt_llava.model import build_model_and_processor

    out = tmp_path_factory.mktemp("tiny_llava")
    model, processor = build_model_and_processor("tiny", seed=0)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def chat_model(tiny_model_dir: Path):
    from quilt_llava.serve.session import ChatModel, LoadOptions

    return ChatModel.load(LoadOptions(tiny_model_dir, device="cpu"))


@pytest.fixture()
def tissue_png(tmp_path: Path) -> Path:
    """A small real tissue image (the bundled IHC crop), non-square on purpose."""
    from quilt_llava.serve.web import bundled_example

    path = tmp_path / "tissue.png"
    Image.open(bundled_example()).crop((0, 0, 160, 120)).save(path)
    return path


def write_png_bomb(path: Path, side: int = 100_000) -> Path:
    """A ~100-byte PNG whose header claims side x side pixels (10 gigapixels for the default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


@pytest.fixture()
def png_bomb(tmp_path: Path) -> Path:
    return write_png_bomb(tmp_path / "bomb.png")
