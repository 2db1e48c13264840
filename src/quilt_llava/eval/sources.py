"""Benchmark files in the layout they are published in, read into canonical questions.

A benchmark declaration names its ``layout``:

- ``hf_dataset`` (Quilt-VQA, Quilt-VQA red circle): a Hugging Face dataset, read through
  ``datasets``: a local Parquet file or folder of Parquet files (what the hub serves), an
  Arrow file, a ``save_to_disk`` folder, or a hub id ``owner/name`` when online. Its image
  column holds the images themselves (the ``Image`` feature: bytes and original path), or
  file names found in the ``images`` folder or zip archive.
- ``csv_zip`` (PMC-VQA): a CSV question file and a zip archive of the figures.
- ``json`` (PathVQA, SLAKE, VQA-RAD in the LLaVA-Med layout): a JSON or JSONL question
  file and an image folder (a zip archive works too).

Images that live inside a dataset or an archive are written once into a cache folder and
the questions then point at those files, so a re-run (or a resumed run) reads no archive
again: dataset images are stored under the hash of their bytes (one file per distinct
image, however many questions share it), archive members under their path in the
archive, in a folder named after the archive's size and modification time so that a new
version of the archive is extracted afresh. A question whose image cannot be found is
reported with the reason and left out; the others go on.

Required columns are checked before any image is touched: the error names each missing
column, what it is for, and the columns that are present.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from quilt_llava.console import Output
from quilt_llava.errors import InputError
from quilt_llava.eval.questions import (
    _ID_KEYS,
    IMAGE_KEYS,
    EvalQuestion,
    _keep,
    _read_rows,
    check_columns,
    convert_rows,
)
from quilt_llava.files import atomic_write_bytes

LAYOUTS = ("json", "csv_zip", "hf_dataset")
CACHE_ENV = "QUILT_LLAVA_CACHE"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SAVE_TO_DISK_MARKERS = ("state.json", "dataset_dict.json")  # what save_to_disk writes


_FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".parquet", ".arrow", ".zip")


def is_hub_id(spec: str) -> bool:
    """``owner/name`` that is not a local path nor a file name we read."""
    return bool(_HUB_ID.match(spec)) and not Path(spec).exists() and not spec.lower().endswith(_FILE_SUFFIXES)


def default_cache_dir() -> Path:
    """``$QUILT_LLAVA_CACHE/benchmarks``, else ``~/.cache/quilt_llava/benchmarks``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "quilt_llava"
    return Path(root) / "benchmarks"


@dataclass
class BenchmarkData:
    """Questions ready for generation, and what reading them took."""

    questions: list[EvalQuestion]
    image_dir: Path | None  # where relative image names are looked up (None: names are absolute)
    source: str  # the question file, folder or hub id that was read
    failures: list[tuple[str, str]] = field(default_factory=list)  # (question_id, why its image is missing)
    images_written: int = 0  # images extracted into the cache by this call
    images_cached: int = 0  # images found in the cache already


# --------------------------------------------------------------------------- tables


def _pick_split(ds: Any, split: str | None, source: str) -> Any:
    """One split of a DatasetDict: the named one, or the only one."""
    if not hasattr(ds, "keys"):
        return ds
    names = list(ds.keys())
    if split is not None:
        if split not in names:
            raise InputError(source, f"split '{split}' not found; the dataset has {', '.join(names)}")
        return ds[split]
    if len(names) == 1:
        return ds[names[0]]
    raise InputError(
        source,
        f"the dataset has several splits ({', '.join(names)}); name one with `split:` in the declaration or --split",
    )


def _parquet_files(folder: Path, split: str | None) -> list[Path]:
    files = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    if split is not None:
        # The hub's layout: data/<split>-00000-of-00001.parquet (or <split>/...parquet).
        chosen = [p for p in files if p.name.startswith(f"{split}-") or split in p.relative_to(folder).parts[:-1]]
        files = chosen or files
    return files


def load_hf_dataset(spec: str, split: str | None = None, cache_dir: Path | None = None) -> Any:
    """A ``datasets.Dataset`` from a local Parquet/Arrow file or folder, a save_to_disk folder, or a hub id."""
    try:
        return _load_hf_dataset(spec, split, cache_dir)
    except InputError:
        raise
    except Exception as exc:  # datasets/pyarrow/hub errors: name the source, keep the library's reason
        where = "from the hub" if is_hub_id(spec) else "as a Hugging Face dataset"
        raise InputError(spec, f"cannot read it {where}: {type(exc).__name__}: {exc}") from exc


def _load_hf_dataset(spec: str, split: str | None, cache_dir: Path | None) -> Any:
    import datasets

    path = Path(spec).expanduser()
    work = str(cache_dir / "hf") if cache_dir is not None else None
    if path.is_dir():
        if any((path / m).exists() for m in _SAVE_TO_DISK_MARKERS):
            return _pick_split(datasets.load_from_disk(str(path)), split, spec)
        files = _parquet_files(path, split)
        if files:
            return datasets.Dataset.from_parquet([str(p) for p in files], cache_dir=work)
        arrows = sorted(path.rglob("*.arrow"))
        if len(arrows) == 1:
            return datasets.Dataset.from_file(str(arrows[0]))
        others = sorted(p.name for p in path.iterdir() if p.suffix.lower() in (".json", ".jsonl", ".csv", ".zip"))
        hint = (
            f"; it holds {', '.join(others[:6])}: give the question file as --questions and the image "
            "folder or archive as --images"
            if others
            else ""
        )
        raise InputError(
            spec,
            "folder holds neither a save_to_disk dataset (state.json / dataset_dict.json) nor "
            f"Parquet files (nor a single Arrow file){hint}",
        )
    if path.is_file():
        if path.suffix == ".parquet":
            return datasets.Dataset.from_parquet(str(path), cache_dir=work)
        if path.suffix == ".arrow":
            return datasets.Dataset.from_file(str(path))
        raise InputError(spec, "a Hugging Face dataset file must be .parquet or .arrow (or give the folder)")
    if is_hub_id(spec):
        return _pick_split(datasets.load_dataset(spec), split, spec)
    raise InputError(
        spec,
        "not found: give a local Parquet or Arrow file, a folder of Parquet files, a "
        "save_to_disk folder, or a hub id 'owner/name' (needs network access)",
    )


@dataclass(frozen=True)
class DatasetImage:
    """A dataset's image left where it is until a kept question needs it (row ``index``, ``column``)."""

    dataset: Any
    column: str
    index: int

    def load(self) -> Any:
        return self.dataset[self.index][self.column]


def _hf_rows(spec: str, split: str | None, cache_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    import datasets

    ds = load_hf_dataset(spec, split, cache_dir)
    image_columns = [name for name, feature in ds.features.items() if isinstance(feature, datasets.Image)]
    for name in image_columns:
        # Bytes and original path, not decoded pictures: they are written to the cache as they are.
        ds = ds.cast_column(name, datasets.Image(decode=False))
    # The text columns at once; the images row by row, only for the questions kept.
    rows = (ds.remove_columns(image_columns) if image_columns else ds).to_list()
    for i, row in enumerate(rows):
        for name in image_columns:
            row[name] = DatasetImage(ds, name, i)
    return rows, list(ds.column_names)


def read_table(
    spec: str, split: str | None = None, cache_dir: Path | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Raw rows and column names of a question source, by what it is.

    A folder, a ``.parquet``/``.arrow`` file or a hub id is read as a Hugging Face dataset;
    a ``.csv``/``.tsv`` file as CSV; any other file as JSON or JSONL (decided by content).
    """
    path = Path(spec).expanduser()
    if path.is_dir() or path.suffix in (".parquet", ".arrow") or is_hub_id(spec):
        return _hf_rows(spec, split, cache_dir or default_cache_dir())
    if not path.exists():
        raise InputError(spec, "question file not found")
    rows = _read_rows(path)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return rows, columns


# --------------------------------------------------------------------------- images


_MAGIC = (
    (b"\x89PNG", ".png"),
    (b"\xff\xd8", ".jpg"),
    (b"GIF8", ".gif"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def _extension(data: bytes, name: str | None) -> str:
    suffix = Path(name).suffix.lower() if name else ""
    if suffix and len(suffix) <= 6:
        return suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), ".img")


class ImageCache:
    """Writes images out of datasets and archives once, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written = 0
        self.cached = 0
        self._archives: dict[Path, tuple[zipfile.ZipFile, dict[str, str], dict[str, list[str]], Path]] = {}

    def _store(self, target: Path, data: bytes | None = None, read: Any = None) -> Path:
        if target.exists():
            self.cached += 1
            return target
        atomic_write_bytes(target, data if data is not None else read())
        self.written += 1
        return target

    def from_bytes(self, data: bytes, name: str | None) -> Path:
        digest = hashlib.sha256(data).hexdigest()[:20]
        return self._store(self.root / "images" / f"{digest}{_extension(data, name)}", data)

    def from_picture(self, picture: Any) -> Path:
        import io

        buf = io.BytesIO()
        picture.save(buf, format="PNG")
        return self.from_bytes(buf.getvalue(), "image.png")

    def _archive(self, archive: Path) -> tuple[zipfile.ZipFile, dict[str, str], dict[str, list[str]], Path]:
        if archive not in self._archives:
            try:
                zf = zipfile.ZipFile(archive)
            except (OSError, zipfile.BadZipFile) as exc:
                raise InputError(str(archive), f"cannot open the image archive: {exc}") from None
            exact = {n: n for n in zf.namelist() if not n.endswith("/")}
            by_base: dict[str, list[str]] = {}
            for n in exact:
                by_base.setdefault(PurePosixPath(n).name, []).append(n)
            st = archive.stat()
            key = hashlib.sha256(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]
            self._archives[archive] = (zf, exact, by_base, self.root / f"{archive.stem}-{key}")
        return self._archives[archive]

    def from_archive(self, archive: Path, name: str) -> Path:
        """The cached copy of archive member ``name`` (matched exactly, by path suffix, or by unique file name)."""
        zf, exact, by_base, folder = self._archive(archive)
        wanted = name.replace("\\", "/").lstrip("./")
        member = exact.get(wanted)
        if member is None:
            tails = [n for n in exact if n.endswith("/" + wanted)]
            if len(tails) == 1:
                member = tails[0]
        if member is None:
            bases = by_base.get(PurePosixPath(wanted).name, [])
            if len(bases) == 1:
                member = bases[0]
            elif len(bases) > 1:
                raise KeyError(
                    f"image '{name}' matches {len(bases)} members of {archive.name}: "
                    f"{', '.join(bases[:3])}; give the path as it is in the archive"
                )
        if member is None:
            raise KeyError(f"image '{name}' is not in the archive {archive}")
        parts = [p for p in PurePosixPath(member).parts if p not in ("", ".", "..", "/")]
        return self._store(folder.joinpath(*parts), read=lambda: zf.read(member))

    def close(self) -> None:
        for zf, *_ in self._archives.values():
            zf.close()
        self._archives.clear()


def _image_value(row: dict[str, Any]) -> tuple[str | None, Any]:
    for key in IMAGE_KEYS:
        if row.get(key) not in (None, ""):
            return key, row[key]
    return None, None


def _without_payload(row: dict[str, Any]) -> dict[str, Any]:
    key, value = _image_value(row)
    return row if key is None or isinstance(value, str) else {**row, key: None}


def _resolve_image(value: Any, cache: ImageCache, images: Path | None) -> str | None:
    """The file a question's image value stands for: a cached copy, or the name as given (for a folder)."""
    if isinstance(value, DatasetImage):
        value = value.load()
    if isinstance(value, dict):  # the datasets Image feature without decoding: {bytes, path}
        if value.get("bytes"):
            return str(cache.from_bytes(value["bytes"], value.get("path")))
        value = value.get("path")
    elif hasattr(value, "save") and hasattr(value, "size"):  # an already decoded picture
        return str(cache.from_picture(value))
    if value is None:
        return None
    if isinstance(value, bytes):
        return str(cache.from_bytes(value, None))
    if images is not None and images.suffix.lower() == ".zip":
        return str(cache.from_archive(images, str(value)))
    return str(value)


# --------------------------------------------------------------------------- the whole source


def load_benchmark_data(
    questions: str,
    *,
    fmt: str,
    images: Path | None = None,
    split: str | None = None,
    where: dict[str, Any] | None = None,
    fields: dict[str, str] | None = None,
    cache_dir: Path | None = None,
    limit: int | None = None,
    output: Output | None = None,
) -> BenchmarkData:
    """Read a benchmark's published files: check columns, cache the images, convert the rows."""
    output = output or Output(quiet=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if images is not None and not images.exists():
        raise InputError(str(images), "image folder or archive not found")
    rows, columns = read_table(questions, split, cache_dir)
    check_columns(columns, fmt, questions, fields)
    absent = [k for k in (where or {}) if k not in columns]
    if absent:
        raise InputError(
            questions,
            f"the declaration filters on column{'s' if len(absent) > 1 else ''} "
            f"{', '.join(repr(k) for k in absent)} (its 'where'), which the file lacks. "
            f"Columns present: {', '.join(columns)}",
        )
    # Ids first (the row's place in the whole table, as load_questions gives id-less rows),
    # then the filter, so each converted question lines up with its raw row and its image.
    rows = [
        row if any(row.get(k) is not None for k in _ID_KEYS) else {**row, "question_id": i}
        for i, row in enumerate(rows)
    ]
    rows = [row for row in rows if not where or _keep(row, where)]
    if limit is not None:
        rows = rows[:limit]
    if fields:
        rows = [{**row, **{ours: row[theirs] for ours, theirs in fields.items() if theirs in row}} for row in rows]
    # Validate every row before touching an image; image payloads are not text, so they stay out.
    qs = convert_rows([_without_payload(row) for row in rows], fmt=fmt, source=questions)
    cache = ImageCache(cache_dir)
    failures: list[tuple[str, str]] = []
    ready: list[EvalQuestion] = []
    try:
        for q, row in output.track(list(zip(qs, rows)), "images"):
            _, value = _image_value(row)
            try:
                resolved = _resolve_image(value, cache, images)
            except KeyError as exc:
                failures.append((q.question_id, str(exc.args[0])))
                continue
            if resolved is not None:
                q.image = resolved
            ready.append(q)
    finally:
        cache.close()
    image_dir = images if images is not None and images.is_dir() else None
    return BenchmarkData(ready, image_dir, questions, failures, cache.written, cache.cached)
