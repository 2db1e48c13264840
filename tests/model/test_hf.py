"""Helpers around the HF libraries: quiet progress bars for --quiet/--json, hub load errors a user can act on."""

import pytest
from transformers.utils import logging as hf_logging
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import InputError
from quilt_llava.model.hf import hub_load, quiet_libraries


@pytest.fixture
def bars_on():
    hf_logging.enable_progress_bar()
    yield
    hf_logging.enable_progress_bar()


def test_quiet_libraries(bars_on):
    quiet_libraries(False)
    assert hf_logging.is_progress_bar_enabled()
    quiet_libraries(True)
    assert not hf_logging.is_progress_bar_enabled()


@pytest.mark.parametrize(
    "args",
    [
        [
            "train",
            "--config",
            "tiny_stage1.yaml",
            "--quiet",
            "--set",
            "data_path=/nonexistent/d.json",
            "--set",
            "output_dir=/nonexistent/o",
        ],
        [
            "eval",
            "generate",
            "--model",
            "/nonexistent/m",
            "--questions",
            "/nonexistent/q.jsonl",
            "--out",
            "/nonexistent/p.jsonl",
            "--json",
        ],
        ["eval", "run", "quilt-vqa", "--model", "/nonexistent/m", "--quiet"],
        ["chat", "--model", "/nonexistent/m", "--json"],
    ],
)
def test_quiet_and_json_commands_silence_transformers_bars(bars_on, args):
    CliRunner().invoke(make_app(), args, input="/quit\n")  # fails on the missing paths; the bars are off before
    assert not hf_logging.is_progress_bar_enabled(), args


def test_plain_command_keeps_transformers_bars(bars_on):
    CliRunner().invoke(make_app(), ["chat", "--model", "/nonexistent/m"], input="/quit\n")
    assert hf_logging.is_progress_bar_enabled()


def test_hub_load_names_the_checkpoint_and_suggests_a_local_folder(tmp_path):
    def offline():
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    with pytest.raises(InputError) as err:
        hub_load("LLM", "lmsys/vicuna-7b-v1.5", offline)
    assert err.value.source == "lmsys/vicuna-7b-v1.5"
    assert "local directory" in str(err.value) and "couldn't connect" in str(err.value)
    with pytest.raises(InputError, match="not a complete vision tower"):
        hub_load("vision tower", tmp_path, offline)
    with pytest.raises(InputError, match="no LLM folder at this path"):
        hub_load("LLM", tmp_path / "missing", offline)
    assert hub_load("LLM", "x", lambda: 3) == 3


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_unfetchable_preset_part_is_an_input_error(offline):
    from quilt_llava.model.build import build_model_and_processor

    with pytest.raises(InputError) as err:
        build_model_and_processor("llava-v1.5-7b")
    assert err.value.source == "openai/clip-vit-large-patch14-336"
    assert "vision tower" in err.value.reason and "local directory" in err.value.reason


def test_unfetchable_vision_tower_in_convert_is_an_input_error(offline, tmp_path):
    from quilt_llava.model.convert import ConvertOptions, convert_llava_checkpoint
    from tests.model.test_convert import write_original

    src, *_ = write_original(tmp_path, "linear")  # config names the hub tower wisdomik/QuiltNet-B-32
    with pytest.raises(InputError, match=r"wisdomik/QuiltNet-B-32.*local directory"):
        convert_llava_checkpoint(ConvertOptions(str(src), str(tmp_path / "hf")))
    result = CliRunner().invoke(
        make_app(),
        [
            "train",
            "--config",
            "tiny_stage2.yaml",
            "--quiet",
            "--set",
            f"model_name_or_path={tmp_path / 'nope'}",
            "--set",
            f"data_path={src / 'config.json'}",
            "--set",
            f"output_dir={tmp_path / 'o'}",
        ],
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError) and "no model folder" in str(result.exception)
