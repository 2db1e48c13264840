"""End-to-end training on the tiny preset (CPU): trainability, resume, LoRA, CLI, learning, 2 processes."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import LlavaForConditionalGeneration
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import ConfigError
from quilt_llava.model import build_model_and_processor, conv_template_of
from quilt_llava.model.tensorize import MaskingError
from quilt_llava.train import TrainConfig, train
from quilt_llava.train.synthetic import evaluate_task, write_task


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return write_task(tmp_path_factory.mktemp("task"), n_train=48, n_test=8)


def run_paths(task, stage, out):
    data = task["stage1"] if stage == 1 else task["stage2"]
    return {"data_path": str(data), "image_folder": str(task["images"]), "output_dir": str(out)}


@pytest.fixture(scope="module")
def stage1_dir(task, tmp_path_factory):
    out = tmp_path_factory.mktemp("s1")
    cfg = TrainConfig.from_yaml("tiny_stage1.yaml", overrides=run_paths(task, 1, out) | {"max_steps": 3})
    summary = train(cfg)
    assert summary["steps"] == 3 and summary["mismatched_ids"] == []
    return out


def parts(model):
    sd = model.state_dict()
    pick = lambda key: {k: v for k, v in sd.items() if key in k}  # noqa: E731
    return pick("vision_tower"), pick("multi_modal_projector"), pick("language_model")


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_stage1_trains_only_projector_and_saves_hf_layout(stage1_dir):
    init, _ = build_model_and_processor("tiny", seed=0)
    trained = LlavaForConditionalGeneration.from_pretrained(stage1_dir)
    (v0, p0, l0), (v1, p1, l1) = parts(init), parts(trained)
    assert same(v0, v1) and same(l0, l1) and not same(p0, p1)
    assert conv_template_of(stage1_dir) == "plain"
    history = [json.loads(line) for line in (stage1_dir / "log_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"step", "loss", "learning_rate", "epoch"}
    for name in ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json", "quilt_llava.json"):
        assert (stage1_dir / name).exists()


def test_stage2_from_stage1_trains_llm_and_projector_not_vision(task, stage1_dir, tmp_path):
    cfg = TrainConfig.from_yaml(
        "tiny_stage2.yaml",
        overrides=run_paths(task, 2, tmp_path)
        | {"model_name_or_path": str(stage1_dir), "max_steps": 2, "projector_lr": 1e-4, "gradient_checkpointing": True},
    )
    summary = train(cfg)
    assert len(summary["log_history"]) == 2 and summary["final_loss"] == summary["log_history"][-1]["loss"]
    before = LlavaForConditionalGeneration.from_pretrained(stage1_dir)
    after = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    (v0, p0, l0), (v1, p1, l1) = parts(before), parts(after)
    assert same(v0, v1) and not same(p0, p1) and not same(l0, l1)
    assert conv_template_of(tmp_path) == "vicuna_v1"


def test_projector_learning_rate_is_separate(task, stage1_dir, tmp_path):
    cfg = TrainConfig.from_yaml(
        "tiny_stage2.yaml",
        overrides=run_paths(task, 2, tmp_path)
        | {
            "model_name_or_path": str(stage1_dir),
            "max_steps": 2,
            "learning_rate": 1e-2,
            "projector_lr": 1e-12,
            "warmup_ratio": 0.0,
        },
    )
    train(cfg)
    (_, p0, l0), (_, p1, l1) = (
        parts(LlavaForConditionalGeneration.from_pretrained(stage1_dir)),
        parts(LlavaForConditionalGeneration.from_pretrained(tmp_path)),
    )
    assert max((p0[k] - p1[k]).abs().max().item() for k in p0) < 1e-9
    assert max((l0[k] - l1[k]).abs().max().item() for k in l0) > 1e-3


def test_resume_gives_the_same_losses(task, stage1_dir, tmp_path):
    base = run_paths(task, 2, tmp_path / "full") | {
        "model_name_or_path": str(stage1_dir),
        "max_steps": 4,
        "save_steps": 2,
        "save_total_limit": None,
        "global_batch_size": 8,
        "per_device_batch_size": 4,
    }
    full = train(TrainConfig.from_yaml("tiny_stage2.yaml", overrides=base))
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(tmp_path / "full" / "checkpoint-2", resumed_dir / "checkpoint-2")
    resumed = train(
        TrainConfig.from_yaml(
            "tiny_stage2.yaml", overrides=base | {"output_dir": str(resumed_dir), "resume_from_checkpoint": "auto"}
        )
    )
    assert [h["step"] for h in resumed["log_history"]] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed["log_history"]] == [h["loss"] for h in full["log_history"]]


def test_lora_stage2_merges_into_hf_layout(task, stage1_dir, tmp_path):
    cfg = TrainConfig.from_yaml(
        "tiny_stage2.yaml",
        overrides=run_paths(task, 2, tmp_path)
        | {
            "model_name_or_path": str(stage1_dir),
            "max_steps": 2,
            "lora": True,
            "lora_r": 4,
            "lora_alpha": 8,
            "learning_rate": 1e-2,
            "projector_lr": 1e-3,
        },
    )
    summary = train(cfg)
    assert summary["parameters"]["trainable"] < summary["parameters"]["total"] / 2
    merged = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    assert not any("lora" in k for k in merged.state_dict())
    before = LlavaForConditionalGeneration.from_pretrained(stage1_dir)
    (v0, p0, l0), (v1, p1, l1) = parts(before), parts(merged)
    assert same(v0, v1) and not same(p0, p1) and not same(l0, l1)


def test_unmaskable_records_are_reported_by_id(task, tmp_path):
    rows = [json.loads(line) for line in task["stage1"].read_text().splitlines()][:7]
    rows.append({"id": "broken-7", "image": rows[0]["image"], "conversations": [{"from": "gpt", "value": "x"}]})
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    summary = train(
        TrainConfig.from_yaml(
            "tiny_stage1.yaml", overrides=run_paths(task, 1, tmp_path / "o") | {"data_path": str(data), "max_steps": 1}
        )
    )
    assert summary["mismatched_ids"] == ["broken-7"] and summary["data"]["mismatched"] == 1
    saved = json.loads((tmp_path / "o" / "quilt_llava.json").read_text())
    assert saved["trained"]["data"]["mismatched_ids"] == ["broken-7"]


def test_mostly_unmaskable_data_stops_before_training(task, tmp_path):
    rows = [{"id": f"bad{i}", "conversations": [{"from": "gpt", "value": "x"}]} for i in range(3)]
    rows.append({"id": "ok", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]})
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = TrainConfig.from_yaml(
        "tiny_stage1.yaml", overrides={"data_path": str(data), "output_dir": str(tmp_path / "o")}
    )
    with pytest.raises(MaskingError, match="bad0"):
        train(cfg)
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_cli_train_and_convert(task, tmp_path):
    from tests.model.test_convert import write_original

    runner = CliRunner()
    args = ["train", "--config", "tiny_stage1.yaml", "--json", "--quiet"]
    for k, v in (run_paths(task, 1, tmp_path / "cli") | {"max_steps": 1}).items():
        args += ["--set", f"{k}={v}"]
    result = runner.invoke(make_app(), args)
    assert result.exit_code == 0, result.output
    assert json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])["steps"] == 1
    src, tower, *_ = write_original(tmp_path, "mlp2x_gelu")
    result = runner.invoke(
        make_app(), ["train", "convert-llava", str(src), str(tmp_path / "hf"), "--vision-tower", str(tower), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert LlavaForConditionalGeneration.from_pretrained(tmp_path / "hf").config.projector_hidden_act == "gelu"
    result = runner.invoke(make_app(), ["train", "--config", "tiny_stage1.yaml", "--set", "group_by=zigzag"])
    assert result.exit_code != 0 and "group_by" in str(result.exception)


@pytest.mark.slow
def test_two_gloo_processes_match_one(task, tmp_path):
    sets = run_paths(task, 1, tmp_path / "ddp") | {"max_steps": 3, "global_batch_size": 8, "per_device_batch_size": 4}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29533",
        "-m",
        "quilt_llava",
        "train",
        "--config",
        "tiny_stage1.yaml",
        "--json",
        "--quiet",
    ]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(proc.stdout.strip().splitlines()[-1])
    assert two["world_size"] == 2 and two["gradient_accumulation_steps"] == 1
    one = train(
        TrainConfig.from_yaml(
            "tiny_stage1.yaml", overrides=sets | {"output_dir": str(tmp_path / "one"), "per_device_batch_size": 8}
        )
    )
    assert one["world_size"] == 1
    two_losses = [
        json.loads(line)["loss"] for line in (tmp_path / "ddp" / "log_history.jsonl").read_text().splitlines()
    ]
    print("1 process:", [h["loss"] for h in one["log_history"]], "2 processes:", two_losses)
    torch.testing.assert_close(
        torch.tensor(two_losses), torch.tensor([h["loss"] for h in one["log_history"]]), rtol=1e-5, atol=1e-5
    )


@pytest.mark.slow
def test_tiny_model_learns_the_blob_task(tmp_path):
    """Stage 1 then stage 2 from scratch on CPU; held-out accuracy far above the majority answer."""
    task = write_task(tmp_path / "task", n_train=512, n_test=96, seed=3)
    train(
        TrainConfig.from_yaml(
            "tiny_stage1.yaml",
            overrides={
                "data_path": str(task["stage1"]),
                "image_folder": str(task["images"]),
                "output_dir": str(tmp_path / "s1"),
                "max_steps": 16,
            },
        )
    )
    train(
        TrainConfig.from_yaml(
            "tiny_stage2.yaml",
            overrides={
                "model_name_or_path": str(tmp_path / "s1"),
                "data_path": str(task["stage2"]),
                "image_folder": str(task["images"]),
                "output_dir": str(tmp_path / "s2"),
                "num_train_epochs": 6,
            },
        )
    )
    result = evaluate_task(tmp_path / "s2", task["test"], task["images"])
    print(
        f"held-out accuracy {result['accuracy']:.3f} vs majority baseline {result['majority_baseline']:.3f} "
        f"(n={result['n']})"
    )
    assert result["accuracy"] >= result["majority_baseline"] + 0.25


def test_rerun_resumes_and_a_fresh_start_needs_overwrite(task, tmp_path, caplog):
    out = tmp_path / "rerun"
    sets = run_paths(task, 1, out) | {
        "max_steps": 2,
        "save_steps": 1,
        "save_total_limit": None,
        "global_batch_size": 4,
        "per_device_batch_size": 4,
    }
    first = train(TrainConfig.from_yaml("tiny_stage1.yaml", overrides=sets))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    with caplog.at_level("INFO", logger="quilt_llava.train.trainer"):
        again = train(TrainConfig.from_yaml("tiny_stage1.yaml", overrides=sets | {"max_steps": 3}))
    assert f"resuming from {out / 'checkpoint-2'}" in caplog.text
    assert [h["loss"] for h in again["log_history"]][:2] == [h["loss"] for h in first["log_history"]]
    with pytest.raises(ConfigError, match="overwrite_output_dir"):
        train(TrainConfig.from_yaml("tiny_stage1.yaml", overrides=sets | {"resume_from_checkpoint": "none"}))
    fresh = train(
        TrainConfig.from_yaml(
            "tiny_stage1.yaml",
            overrides=sets | {"resume_from_checkpoint": "none", "overwrite_output_dir": True, "max_steps": 1},
        )
    )
    assert fresh["steps"] == 1
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]  # no stale checkpoint-3 left


def test_cli_shows_a_training_progress_bar(task, tmp_path):
    args = ["train", "--config", "tiny_stage1.yaml"]
    for k, v in (
        run_paths(task, 1, tmp_path / "bar") | {"max_steps": 2, "global_batch_size": 4, "per_device_batch_size": 4}
    ).items():
        args += ["--set", f"{k}={v}"]
    result = CliRunner().invoke(make_app(), args)
    assert result.exit_code == 0, result.output
    assert "training" in result.stderr and "2/2" in result.stderr
    quiet = CliRunner().invoke(make_app(), [*args, "--quiet", "--set", f"output_dir={tmp_path / 'q'}"])
    assert quiet.exit_code == 0 and "training" not in quiet.stderr
