"""Training configuration: one dataclass, YAML files per stage, ``key=value`` overrides.

The two published stages differ only in configuration (what is trainable, the
template, learning rate and batch size), see ``configs/stage1.yaml`` and
``configs/stage2.yaml``. Every problem in a config is reported at once as a
:class:`~quilt_llava.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from quilt_llava.errors import ConfigError
from quilt_llava.model.conversation import TEMPLATES
from quilt_llava.model.spec import PROJECTOR_TYPES

SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
GROUPINGS = ("modality_length", "length", "none")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
LLM_LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainConfig:
    # --- model: a saved HF-layout checkpoint (e.g. a stage-1 output) or a preset to assemble
    model_name_or_path: str = ""
    model_preset: str = ""
    vision_tower: str = ""  # preset override: hub id or local directory
    llm: str = ""  # preset override: hub id or local directory
    projector_type: str = "mlp2x_gelu"  # for presets; a loaded checkpoint keeps its own
    model_seed: int = 0
    # --- data
    data_path: str = ""
    image_folder: str = ""
    conv_template: str = ""  # "": the template recorded in model_name_or_path (vicuna_v1 for presets and after "plain")
    max_length: int = 2048
    group_by: str = "modality_length"
    max_mismatch_fraction: float = 0.5
    # Records the release masks out entirely (empty answer, answer holding </s>, a mask that cannot be
    # aligned) are counted and skipped; true keeps them with the per-segment mask (model/tensorize.py).
    keep_masked_out: bool = False
    dataloader_num_workers: int = 0
    # --- what is trained
    train_vision: bool = False
    train_projector: bool = True
    train_llm: bool = False
    lora: bool = False
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: list(LLM_LINEAR_MODULES))
    qlora: bool = False  # 4-bit NF4 base weights + LoRA (needs CUDA and bitsandbytes)
    # --- optimisation
    learning_rate: float = 2e-5
    projector_lr: float | None = None  # None: same as learning_rate
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    num_train_epochs: float = 1.0
    max_steps: int = -1
    global_batch_size: int = 128
    per_device_batch_size: int = 16
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    precision: str = "auto"  # auto: bf16 on CUDA devices that support it, else fp32
    seed: int = 42
    # --- output
    output_dir: str = ""
    logging_steps: int = 1
    save_steps: int = 500
    save_total_limit: int | None = 2
    # "auto": continue from the latest checkpoint-* in output_dir when there is one; "none" (or ""):
    # start fresh, refused when output_dir holds checkpoints unless overwrite_output_dir; or a checkpoint path
    resume_from_checkpoint: str = "auto"
    overwrite_output_dir: bool = False  # with a fresh start: delete output_dir's checkpoint-* first
    report_to: str = "none"
    use_cpu: bool = False
    deepspeed: str = (
        ""  # DeepSpeed JSON (path or shipped name like accelerate/deepspeed_zero3.json), when not set by accelerate
    )

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Read ``path`` (a file, or the name of a shipped config like ``stage1.yaml``), apply overrides, validate."""
        path = resolve_config_path(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}", source=str(path)) from None
        if not isinstance(data, dict):
            raise ConfigError("the file must hold a mapping of settings", source=str(path))
        data.update(overrides or {})
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> TrainConfig:
        problems: list[str] = []
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in fields:
                problems.append(f"unknown setting '{key}'")
                continue
            try:
                values[key] = _coerce(value, hints[key])
            except (TypeError, ValueError) as exc:
                problems.append(f"{key}: {exc}")
        cfg = cls(**values)
        problems.extend(cfg.problems())
        if problems:
            raise ConfigError(problems, source=source)
        return cfg

    def template_name(self) -> str:
        """The conversation template records are rendered with: ``conv_template`` when set, else
        the one recorded in the starting checkpoint; a training-only template (``plain``, stage 1)
        and presets give ``vicuna_v1``."""
        from quilt_llava.model.checkpoint import resolve_conv_template

        return resolve_conv_template(self.conv_template, model_dir=self.model_name_or_path or None, chat_only=True)

    # ------------------------------------------------------------------ validation
    def problems(self) -> list[str]:
        p: list[str] = []
        if self.model_name_or_path and self.model_preset:
            p.append("set exactly one of model_name_or_path (a saved checkpoint) and model_preset, not both")
        if self.conv_template and self.conv_template not in TEMPLATES:
            p.append(
                f"conv_template '{self.conv_template}' is not one of {sorted(TEMPLATES)} (or empty: the checkpoint's "
                "own)"
            )
        if self.group_by not in GROUPINGS:
            p.append(f"group_by '{self.group_by}' is not one of {list(GROUPINGS)}")
        if self.lr_scheduler_type not in SCHEDULERS:
            p.append(f"lr_scheduler_type '{self.lr_scheduler_type}' is not one of {list(SCHEDULERS)}")
        if self.precision not in PRECISIONS:
            p.append(f"precision '{self.precision}' is not one of {list(PRECISIONS)}")
        if self.projector_type not in PROJECTOR_TYPES:
            p.append(f"projector_type '{self.projector_type}' is not one of {list(PROJECTOR_TYPES)}")
        if not (self.train_vision or self.train_projector or self.train_llm):
            p.append("nothing to train: set at least one of train_vision, train_projector, train_llm")
        if (self.lora or self.qlora) and not self.train_llm:
            p.append("lora/qlora adapt the LLM: set train_llm: true")
        if self.qlora and not self.model_name_or_path:
            p.append("qlora loads a saved checkpoint in 4 bit: set model_name_or_path")
        for name in (
            "learning_rate",
            "max_length",
            "global_batch_size",
            "per_device_batch_size",
            "logging_steps",
            "save_steps",
            "num_train_epochs",
        ):
            if getattr(self, name) <= 0:
                p.append(f"{name} must be > 0 (got {getattr(self, name)})")
        if self.projector_lr is not None and self.projector_lr <= 0:
            p.append(f"projector_lr must be > 0 or null (got {self.projector_lr})")
        if self.per_device_batch_size > 0 and self.global_batch_size % self.per_device_batch_size:
            p.append(
                f"global_batch_size {self.global_batch_size} is not a multiple of per_device_batch_size "
                f"{self.per_device_batch_size}"
            )
        if not 0 <= self.warmup_ratio < 1:
            p.append(f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})")
        if self.weight_decay < 0:
            p.append(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if not 0 < self.max_mismatch_fraction <= 1:
            p.append(f"max_mismatch_fraction must be in (0, 1] (got {self.max_mismatch_fraction})")
        if self.deepspeed:
            try:
                resolve_config_path(self.deepspeed)
            except ConfigError:
                p.append(f"deepspeed config '{self.deepspeed}' not found")
        if self.lora and (self.lora_r <= 0 or self.lora_alpha <= 0):
            p.append("lora_r and lora_alpha must be > 0")
        return p

    def require_run_paths(self) -> None:
        """Paths a run needs but a shipped config template leaves empty."""
        p = [
            f"{name} is required for a training run" for name in ("data_path", "output_dir") if not getattr(self, name)
        ]
        if not (self.model_name_or_path or self.model_preset):
            p.append("set model_name_or_path (e.g. the stage-1 output directory) or model_preset")
        if p:
            raise ConfigError(p)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_config_path(path: str | os.PathLike[str]) -> Path:
    """A path on disk, else the shipped config of that name (``stage1.yaml``, ``accelerate/ddp.yaml``)."""
    p = Path(path)
    if p.exists():
        return p
    shipped = resources.files("quilt_llava.train").joinpath("configs", str(path))
    if shipped.is_file():
        return Path(str(shipped))
    raise ConfigError(f"config file '{path}' not found (shipped configs: {', '.join(shipped_configs())})")


def shipped_configs(include_accelerate: bool = False) -> list[str]:
    """Names of the shipped training configs (and ``accelerate/*`` launcher configs)."""
    root = resources.files("quilt_llava.train").joinpath("configs")
    names = sorted(e.name for e in root.iterdir() if e.name.endswith(".yaml"))
    if include_accelerate:
        acc = root.joinpath("accelerate")
        names += sorted(f"accelerate/{e.name}" for e in acc.iterdir() if e.name.endswith((".yaml", ".json")))
    return names


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=1e-3", "lora=true"]`` -> dict, values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    bad = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            bad.append(f"override '{item}' is not key=value")
            continue
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    if bad:
        raise ConfigError(bad)
    return out


def _coerce(value: Any, hint: Any) -> Any:
    """Check ``value`` against a simple type hint; ints are accepted for floats, YAML strings for numbers."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0])
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {value!r}")
        return [_coerce(v, typing.get_args(hint)[0]) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads "1e-3" as a string
            except ValueError:
                pass
        raise TypeError(f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if value is None:
            return ""
        raise TypeError(f"expected a string, got {value!r}")
    return value
