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


@pytest.mark.parametrize("args", [
    ["train", "--config", "tiny_stage1.yaml", "--quiet", "--set", "data_path=/nonexistent/d.json",
     "--set", "output_dir=/nonexistent/o"],
    ["eval", "generate", "--model", "/nonexistent/m", "--questions", "/nonexistent/q.jsonl", "--out", "/nonexistent/p.jsonl",
     "--json"],
    ["eval", "run", "quilt-vqa", "--model", "/nonexistent/m", "--quiet"],
    ["chat", "--model", "/nonexistent/m", "--json"],
])
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
    assert hub_load("LLM", "x", lambda: 3) == 3
