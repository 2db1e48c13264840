"""Every shipped config loads and validates; errors are reported all at once."""

import json

import pytest
import yaml

from quilt_llava.errors import ConfigError
from quilt_llava.train.config import (
    TrainConfig,
    parse_overrides,
    resolve_config_path,
    shipped_configs,
)

RUN = {"data_path": "data.jsonl", "output_dir": "out"}


@pytest.mark.parametrize("name", shipped_configs())
def test_shipped_training_config_validates(name):
    cfg = TrainConfig.from_yaml(
        name, overrides=RUN | ({"model_name_or_path": "stage1-out"} if name == "tiny_stage2.yaml" else {})
    )
    cfg.require_run_paths()
    assert not cfg.problems()


def test_published_hyperparameters():
    s1 = TrainConfig.from_yaml("stage1.yaml")
    assert (s1.global_batch_size, s1.learning_rate, s1.num_train_epochs, s1.lr_scheduler_type) == (
        256,
        1e-3,
        1,
        "cosine",
    )
    assert (s1.warmup_ratio, s1.max_length, s1.weight_decay, s1.conv_template) == (0.03, 2048, 0.0, "plain")
    assert (s1.train_vision, s1.train_projector, s1.train_llm) == (False, True, False)
    s2 = TrainConfig.from_yaml("stage2.yaml")
    assert (s2.global_batch_size, s2.learning_rate, s2.num_train_epochs) == (128, 2e-5, 1)
    assert (s2.train_vision, s2.train_projector, s2.train_llm, s2.conv_template) == (False, True, True, "vicuna_v1")
    lora = TrainConfig.from_yaml("stage2_lora.yaml")
    assert (lora.lora, lora.lora_r, lora.lora_alpha, lora.learning_rate, lora.projector_lr) == (
        True,
        128,
        256,
        2e-4,
        2e-5,
    )
    q = TrainConfig.from_yaml("stage2_qlora.yaml")
    assert q.qlora and q.lora and q.lora_r == 128


def test_all_errors_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model_preset": "tiny",
                "learning_rate": -1,
                "group_by": "random",
                "train_llm": "yes",
                "typo_setting": 3,
                "global_batch_size": 10,
                "per_device_batch_size": 4,
                "train_projector": False,
            }
        )
    )
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_yaml(path)
    text = str(err.value)
    for needle in ("learning_rate", "group_by", "train_llm", "typo_setting", "not a multiple", str(path)):
        assert needle in text
    assert len(err.value.problems) >= 5


def test_overrides_parse_yaml_scalars():
    assert parse_overrides(["lora=true", "output_dir=/x", "save_total_limit=null", "max_steps=3"]) == {
        "lora": True,
        "output_dir": "/x",
        "save_total_limit": None,
        "max_steps": 3,
    }
    with pytest.raises(ConfigError):
        parse_overrides(["novalue"])
    cfg = TrainConfig.from_yaml("tiny_stage1.yaml", overrides={**parse_overrides(["learning_rate=5e-3"]), **RUN})
    assert cfg.learning_rate == 5e-3
    from pathlib import Path

    assert TrainConfig.from_yaml("tiny_stage1.yaml", overrides={"output_dir": Path("/tmp/x")}).output_dir == "/tmp/x"


def test_run_paths_required_and_model_source_exclusive():
    with pytest.raises(ConfigError, match="data_path"):
        TrainConfig.from_yaml("tiny_stage1.yaml").require_run_paths()
    with pytest.raises(ConfigError, match="exactly one"):
        TrainConfig.from_yaml("tiny_stage1.yaml", overrides={"model_name_or_path": "x"})
    with pytest.raises(ConfigError, match="train_llm"):
        TrainConfig.from_yaml("stage2.yaml", overrides={"lora": True, "train_llm": False})


@pytest.mark.parametrize("name", [n for n in shipped_configs(include_accelerate=True) if n.startswith("accelerate/")])
def test_accelerate_and_deepspeed_configs_parse(name):
    path = resolve_config_path(name)
    if name.endswith(".json"):
        ds = json.loads(path.read_text())
        assert ds["zero_optimization"]["stage"] in (2, 3)
        assert ds["train_micro_batch_size_per_gpu"] == "auto"
        return
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(path))
    assert cfg.num_processes == 4
    if "deepspeed" in name:
        assert cfg.deepspeed_config["zero_stage"] == int(name[-6])
    if "fsdp" in name:
        assert cfg.fsdp_config["fsdp_use_orig_params"] is True


def test_all_expected_configs_shipped():
    names = set(shipped_configs(include_accelerate=True))
    assert {
        "stage1.yaml",
        "stage2.yaml",
        "stage2_lora.yaml",
        "stage2_qlora.yaml",
        "tiny_stage1.yaml",
        "tiny_stage2.yaml",
        "accelerate/ddp.yaml",
        "accelerate/fsdp.yaml",
        "accelerate/deepspeed_zero2.yaml",
        "accelerate/deepspeed_zero2.json",
        "accelerate/deepspeed_zero3.yaml",
        "accelerate/deepspeed_zero3.json",
    } <= names


def test_template_defaults_to_the_checkpoints_own(tmp_path):
    """An imported LLaVA-Med (Mistral) checkpoint fine-tunes with its own template unless told otherwise;
    stage 1's training-only "plain" template is not carried into stage 2."""

    def checkpoint(template: str) -> str:
        path = tmp_path / template
        path.mkdir()
        (path / "quilt_llava.json").write_text(json.dumps({"format_version": 1, "conv_template": template}))
        return str(path)

    assert TrainConfig(model_preset="tiny").template_name() == "vicuna_v1"
    assert TrainConfig(model_name_or_path=checkpoint("mistral_instruct")).template_name() == "mistral_instruct"
    assert TrainConfig(model_name_or_path=checkpoint("plain")).template_name() == "vicuna_v1"
    explicit = TrainConfig(model_name_or_path=str(tmp_path / "mistral_instruct"), conv_template="vicuna_v1")
    assert explicit.template_name() == "vicuna_v1"
    assert all(
        "conv_template" not in p for p in TrainConfig(model_preset="tiny", conv_template="mistral_instruct").problems()
    )
    assert any("conv_template" in p for p in TrainConfig(model_preset="tiny", conv_template="alpaca").problems())
