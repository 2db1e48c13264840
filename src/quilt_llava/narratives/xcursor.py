"""A reader for X11 cursor files (the ``Xcursor`` format of libXcursor).

Cursor themes (``/usr/share/icons/<theme>/cursors/<name>``) store each cursor as one
file holding images at several nominal sizes (24, 32, 48, ... px), each with its own
hotspot, the pixel the pointer points at. The format is little-endian:

- file header: ``b"Xcur"``, header size (16), version, number of table entries;
- table of contents: (type, subtype, position) per entry; images have type
  ``0xFFFD0002`` and their nominal size as subtype;
- image chunk at ``position``: header size (36), type, nominal size, version, width,
  height, xhot, yhot, delay (ms, animations), then ``width * height`` ARGB pixels as
  32-bit words with premultiplied alpha.

Animated cursors (several images of one size, e.g. ``watch``) give their first frame.
Comments (type ``0xFFFE0001``) are skipped. Only numpy is needed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quilt_llava.errors import InputError

MAGIC = b"Xcur"
IMAGE_TYPE = 0xFFFD0002
ICON_DIRS = (Path("/usr/share/icons"), Path("/usr/local/share/icons"))


@dataclass(frozen=True)
class CursorImage:
    """One image of a cursor file."""

    nominal: int  # the size it was drawn for (24, 32, 48, ...)
    rgba: np.ndarray  # (h, w, 4) uint8, straight (not premultiplied) alpha
    hotspot: tuple[int, int]  # (x, y) the cursor points at, in image pixels
    delay_ms: int = 0


def read_xcursor(path: Path | str) -> list[CursorImage]:
    """Every still image of an X11 cursor file (the first frame per nominal size),
    smallest nominal size first. Raises :class:`InputError` naming the file when it is
    not a readable cursor file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), f"cannot read cursor file: {exc}") from exc
    if len(data) < 16 or data[:4] != MAGIC:
        raise InputError(str(path), "not an X11 cursor file (no 'Xcur' magic)")
    header, _version, ntoc = struct.unpack_from("<III", data, 4)
    if header < 16 or header + 12 * ntoc > len(data):
        raise InputError(str(path), f"truncated cursor file: {ntoc} table entries do not fit in {len(data)} bytes")
    images: dict[int, CursorImage] = {}
    for k in range(ntoc):
        kind, subtype, pos = struct.unpack_from("<III", data, header + 12 * k)
        if kind != IMAGE_TYPE or subtype in images:
            continue
        if pos + 36 > len(data):
            raise InputError(str(path), f"image entry {k} points past the end of the file")
        size, kind2, nominal, _v, w, h, xhot, yhot, delay = struct.unpack_from("<9I", data, pos)
        if kind2 != IMAGE_TYPE or not (0 < w <= 0x7FFF and 0 < h <= 0x7FFF):
            raise InputError(str(path), f"image entry {k}: bad chunk header (type {kind2:#x}, {w}x{h})")
        start = pos + size
        if start + 4 * w * h > len(data):
            raise InputError(str(path), f"image entry {k}: {w}x{h} pixels do not fit in the file")
        argb = np.frombuffer(data, dtype="<u4", count=w * h, offset=start).reshape(h, w)
        images[nominal] = CursorImage(nominal, _unpremultiply(argb), (min(xhot, w - 1), min(yhot, h - 1)), delay)
    if not images:
        raise InputError(str(path), "cursor file holds no image")
    return [images[n] for n in sorted(images)]


def _unpremultiply(argb: np.ndarray) -> np.ndarray:
    """(h, w) premultiplied ARGB words to (h, w, 4) straight-alpha RGBA bytes."""
    a = (argb >> 24) & 0xFF
    rgb = np.stack([(argb >> 16) & 0xFF, (argb >> 8) & 0xFF, argb & 0xFF], axis=-1).astype(np.float64)
    safe = np.maximum(a, 1)[..., None].astype(np.float64)
    straight = np.where(a[..., None] > 0, np.clip(rgb * 255.0 / safe + 0.5, 0, 255), 0)
    return np.concatenate([straight, a[..., None]], axis=-1).astype(np.uint8)


def cursor_path(theme: str, name: str, icon_dirs: tuple[Path, ...] = ICON_DIRS) -> Path | None:
    """The file of cursor ``name`` in ``theme`` (symbolic links followed), or None."""
    for base in icon_dirs:
        path = base / theme / "cursors" / name
        if path.exists():
            return path.resolve()
    return None


def installed_themes(icon_dirs: tuple[Path, ...] = ICON_DIRS) -> list[str]:
    """Names of the cursor themes found under ``icon_dirs`` (those with a ``cursors`` folder)."""
    found = {p.parent.name for base in icon_dirs if base.is_dir() for p in base.glob("*/cursors") if p.is_dir()}
    return sorted(found)


def pick_image(images: list[CursorImage], size: int) -> CursorImage:
    """The image whose nominal size is nearest ``size`` (the larger on a tie)."""
    return min(images, key=lambda im: (abs(im.nominal - size), -im.nominal))
