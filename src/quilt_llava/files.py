"""Plain-file I/O shared by every stage: atomic writes and JSONL.

Long runs must never leave half-written files behind: every whole-file write goes
to a temporary sibling and is renamed into place. Append-only JSONL outputs used
for resumable runs are flushed and fsynced one record at a time, and readers
ignore a torn last line (what a killed writer can leave).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from quilt_llava.errors import InputError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), "file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}", f"invalid JSON ({exc.msg})") from None


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write all rows atomically; returns the number written."""
    n = 0
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_jsonl(path: str | os.PathLike[str], *, tolerate_torn_tail: bool = True) -> Iterator[dict[str, Any]]:
    """Yield JSON objects from a JSONL file, naming ``file:line`` on a bad row.

    A final line without a newline that fails to parse is what a killed appender
    leaves; with ``tolerate_torn_tail`` it is skipped instead of raising.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "file not found")
    with path.open("r", encoding="utf-8") as fh:
        lines = fh.readlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            torn = lineno == len(lines) and not line.endswith("\n")
            if torn and tolerate_torn_tail:
                return
            raise InputError(f"{path}:{lineno}", f"invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}:{lineno}", "expected a JSON object per line")
        yield obj


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON array file or a JSONL file (decided by content, not extension)."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "file not found")
    with path.open("r", encoding="utf-8") as fh:
        head = fh.read(1 << 12).lstrip()
    if head.startswith("["):
        data = read_json(path)
        bad = [i for i, r in enumerate(data) if not isinstance(r, dict)]
        if bad:
            raise InputError(str(path), f"items {bad[:5]} are not JSON objects")
        return data
    return read_jsonl(path)


class JsonlAppender:
    """Append records durably, one line at a time, for resumable runs.

    Opening repairs a torn tail (a last line without newline) left by a killed
    run, so the file is always a valid JSONL prefix of the full output.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_torn_tail()
        self._fh = self.path.open("a", encoding="utf-8")

    def _truncate_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as fh:
                fh.truncate(cut)

    def write(self, row: dict[str, Any]) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
