"""The training recipe: one function for both stages, driven by :class:`TrainConfig`.

Built on the Hugging Face ``Trainer`` (a small subclass for the grouped sampler
and the separate projector learning rate), so DDP, FSDP, DeepSpeed ZeRO-2/3,
gradient accumulation, mixed precision, checkpointing and exact resume come
from the engine, launched with ``accelerate launch`` (configs in
``configs/accelerate/``) or ``torchrun``.

Stage 1 and stage 2 differ only in configuration: which of ``train_vision``,
``train_projector``, ``train_llm`` is true, the conversation template and the
optimiser settings. The final model is written in the Hugging Face layout
(``LlavaForConditionalGeneration.from_pretrained`` loads it; LoRA adapters are
merged first) with the processor, ``quilt_llava.json`` and ``log_history.jsonl``.

Re-running a run continues from the latest ``checkpoint-*`` in ``output_dir``
(``resume_from_checkpoint: auto``, the default); a fresh start into a folder that
holds checkpoints must be asked for (``resume_from_checkpoint: none`` with
``overwrite_output_dir: true``).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from quilt_llava.console import Output
from quilt_llava.errors import ConfigError
from quilt_llava.train.config import TrainConfig, resolve_config_path

log = logging.getLogger(__name__)
PROJECTOR_KEY = "multi_modal_projector"
VISION_KEY = "vision_tower"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def close_process_group() -> None:
    """After a launched run (``accelerate launch``/``torchrun``): every rank waits for the others,
    then the process group is destroyed. Left to interpreter shutdown, gloo's threads can abort a
    rank ("terminate called without an active exception", SIGABRT) after its work is done, which
    fails the launch. A no-op in a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def load_for_training(cfg: TrainConfig):
    """The model and processor a run starts from (a saved checkpoint or an assembled preset)."""
    from quilt_llava.model.build import build_model_and_processor
    from quilt_llava.model.checkpoint import load_model_and_processor

    if cfg.model_name_or_path:
        # QLoRA puts the 4-bit base on this process's GPU; otherwise the Trainer places the model.
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if cfg.qlora else None
        model, processor = load_model_and_processor(
            cfg.model_name_or_path, dtype=None, device=device, load_in_4bit=cfg.qlora
        )
    else:
        overrides = {k: v for k, v in (("vision_tower", cfg.vision_tower), ("llm", cfg.llm)) if v}
        model, processor = build_model_and_processor(
            cfg.model_preset, seed=cfg.model_seed, projector_type=cfg.projector_type, **overrides
        )
    from quilt_llava.model.chat_template import chat_template_for

    template = cfg.template_name()
    meta = dict(getattr(model.config, "quilt_llava", None) or {})
    meta.update({"format_version": 1, "conv_template": template})
    model.config.quilt_llava = meta
    processor.chat_template = chat_template_for(template)  # the saved checkpoint chats as it was trained
    return model, processor


def set_trainable(model, cfg: TrainConfig):
    """Freeze/unfreeze the three parts; wrap the LLM with LoRA when asked. Returns the model to train."""
    for name, param in model.named_parameters():
        if VISION_KEY in name:
            param.requires_grad = cfg.train_vision
        elif PROJECTOR_KEY in name:
            param.requires_grad = cfg.train_projector
        else:
            param.requires_grad = cfg.train_llm and not (cfg.lora or cfg.qlora)
    if not (cfg.lora or cfg.qlora):
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    targets = "|".join(cfg.lora_target_modules)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        # Only the LLM's linear layers: the vision tower has q/k/v projections too.
        target_modules=rf".*language_model.*\.({targets})",
        modules_to_save=[PROJECTOR_KEY] if cfg.train_projector else None,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    if cfg.train_vision:
        for name, param in model.named_parameters():
            if VISION_KEY in name and "lora_" not in name:
                param.requires_grad = True
    return model


def count_parameters(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


def _precision_flags(precision: str) -> dict[str, bool]:
    import torch

    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def _checkpointing_args(args_cls, enabled: bool) -> dict[str, Any]:
    """Activation checkpointing under the argument name this transformers version uses."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(args_cls)}
    prefix = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    # Non-reentrant: works with frozen inputs (vision tower, embeddings) and LoRA.
    return {prefix: enabled, f"{prefix}_kwargs": {"use_reentrant": False} if enabled else None}


def make_trainer_class():
    """The ``Trainer`` subclass (built lazily: transformers is imported only when training)."""
    from transformers import Trainer

    from quilt_llava.train.data import GroupedSampler

    class LlavaTrainer(Trainer):
        """Adds modality/length-grouped sampling and a separate projector learning rate."""

        def __init__(
            self, *args: Any, group_by: str = "modality_length", projector_lr: float | None = None, **kwargs: Any
        ) -> None:
            self.group_by = group_by
            self.projector_lr = projector_lr
            super().__init__(*args, **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            ds = train_dataset if train_dataset is not None else self.train_dataset
            a = self.args
            group = a.per_device_train_batch_size * a.world_size * a.gradient_accumulation_steps
            return GroupedSampler(ds.lengths, ds.has_image, group, mode=self.group_by, seed=a.seed)

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            # Checkpoints are written by save_pretrained, which stores Llava weights under their
            # legacy names; Trainer's plain load_state_dict would then match no key and resume
            # from the *initial* weights. from_pretrained applies the name mapping.
            from peft import PeftModel

            model = model if model is not None else self.model
            plain = not (self.is_deepspeed_enabled or self.is_fsdp_enabled or isinstance(model, PeftModel))
            if not plain:
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            param = next(model.parameters())
            loaded = type(model).from_pretrained(resume_from_checkpoint, dtype=param.dtype)
            model.load_state_dict(loaded.state_dict(), strict=True)
            del loaded
            return None

        def create_optimizer(self, model=None):
            if self.optimizer is not None:
                return self.optimizer
            model = self.model
            decay = set(self.get_decay_parameter_names(model))
            groups: dict[tuple[bool, bool], list] = {}
            for name, param in model.named_parameters():
                if not param.requires_grad:
                    continue
                key = (PROJECTOR_KEY in name and self.projector_lr is not None, name in decay)
                groups.setdefault(key, []).append(param)
            param_groups = []
            for (is_proj, has_decay), params in sorted(groups.items()):
                group: dict[str, Any] = {"params": params, "weight_decay": self.args.weight_decay if has_decay else 0.0}
                if is_proj:
                    group["lr"] = self.projector_lr
                param_groups.append(group)
            opt_cls, opt_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = opt_cls(param_groups, **opt_kwargs)
            return self.optimizer

    return LlavaTrainer


def gradient_accumulation(cfg: TrainConfig, ws: int) -> int:
    """Steps accumulated so that ``ws`` processes make one ``global_batch_size`` step."""
    per_step = cfg.per_device_batch_size * ws
    if cfg.global_batch_size % per_step:
        raise ConfigError(
            f"global_batch_size {cfg.global_batch_size} is not divisible by per_device_batch_size "
            f"{cfg.per_device_batch_size} x {ws} processes"
        )
    return cfg.global_batch_size // per_step


def training_dataset(cfg: TrainConfig, processor: Any):
    """The tokenized dataset of ``cfg.data_path``, logging the records it does not train on."""
    from quilt_llava.model.conversation import get_template
    from quilt_llava.train.data import LlavaDataset, load_records

    dataset = LlavaDataset(
        load_records(cfg.data_path),
        processor,
        get_template(cfg.template_name()),
        cfg.max_length,
        image_folder=cfg.image_folder or None,
        max_mismatch_fraction=cfg.max_mismatch_fraction,
        keep_masked_out=cfg.keep_masked_out,
    )
    report = dataset.report
    if report.mismatched_ids:
        kinds = ", ".join(f"{k}: {n}" for k, n in report.summary()["skipped"].items())
        log.warning(
            "%d of %d records are not trained on (%s): %s",
            len(report.mismatched_ids),
            report.total,
            kinds,
            ", ".join(report.mismatched_ids[:20]),
        )
    if report.kept_masked_out:
        log.warning("kept %s records the release masks out (keep_masked_out)", dict(report.kept_masked_out))
    return dataset


def training_arguments(cfg: TrainConfig, accum: int, all_have_images: bool):
    """``TrainingArguments`` for ``cfg`` (``ddp_find_unused_parameters`` when some records have no image)."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=accum,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        # transformers >= 5 (pinned in pyproject) has no ``warmup_ratio`` argument: ``warmup_steps``
        # below 1 is read as a fraction of the total steps, and the config holds the ratio in [0, 1).
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type=cfg.lr_scheduler_type,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        **_checkpointing_args(TrainingArguments, cfg.gradient_checkpointing),
        dataloader_num_workers=cfg.dataloader_num_workers,
        remove_unused_columns=False,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        ddp_find_unused_parameters=not all_have_images or None,
        use_cpu=cfg.use_cpu,
        deepspeed=str(resolve_config_path(cfg.deepspeed)) if cfg.deepspeed else None,
        disable_tqdm=True,
        **_precision_flags(cfg.precision),
    )


def _log_forwarder(on_log: Any):
    """A callback passing each logged step with a loss to ``on_log`` (rank 0)."""
    from transformers import TrainerCallback

    class _Forward(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if on_log is not None and logs and "loss" in logs and state.is_world_process_zero:
                on_log({"step": state.global_step, **logs})

    return _Forward()


def train(cfg: TrainConfig, on_log: Any = None, output: Output | None = None) -> dict[str, Any]:
    """Run one training stage; returns a summary (see module doc for what is written).

    ``on_log`` receives each logged step (rank 0); ``output`` shows a progress bar
    over the optimizer steps and the resume message (none when ``None``).
    """
    cfg.require_run_paths()
    resolve_resume(cfg, output, check_only=True)  # refuse before loading anything
    from transformers.trainer_callback import PrinterCallback

    from quilt_llava.train.data import Collator

    ws = world_size()
    accum = gradient_accumulation(cfg, ws)
    model, processor = load_for_training(cfg)
    dataset = training_dataset(cfg, processor)
    report = dataset.report
    model = set_trainable(model, cfg)
    params = count_parameters(model)

    resume = resolve_resume(cfg, output)
    args = training_arguments(cfg, accum, all(dataset.has_image))
    callbacks = [_log_forwarder(on_log)] + ([make_progress_callback(output)] if output is not None else [])
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=Collator(processor.tokenizer.pad_token_id),
        processing_class=processor,  # saved into every checkpoint-N, so each one loads on its own
        group_by=cfg.group_by,
        projector_lr=cfg.projector_lr,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through on_log / log_history.jsonl
    result = trainer.train(resume_from_checkpoint=resume)
    history = [
        {"step": e["step"], "loss": e["loss"], "learning_rate": e.get("learning_rate"), "epoch": e.get("epoch")}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    save_final(trainer, model, processor, cfg, history, report)
    return {
        "output_dir": cfg.output_dir,
        "steps": trainer.state.global_step,
        "final_loss": history[-1]["loss"] if history else math.nan,
        "train_loss": result.training_loss,
        "log_history": [{"step": h["step"], "loss": h["loss"], "lr": h["learning_rate"]} for h in history],
        "mismatched_ids": list(report.mismatched_ids),
        "data": report.summary(),
        "parameters": params,
        "world_size": ws,
        "gradient_accumulation_steps": accum,
    }


def save_final(trainer, model, processor, cfg: TrainConfig, history: list[dict[str, Any]], report) -> None:
    """Write the HF-layout model (LoRA merged), processor, ``quilt_llava.json`` and ``log_history.jsonl``."""
    from quilt_llava.files import write_json, write_jsonl
    from quilt_llava.model.checkpoint import make_tokenizer_config_portable

    out = Path(cfg.output_dir)
    if cfg.qlora:
        if trainer.is_world_process_zero():
            merge_qlora(trainer.model, cfg, out)
    elif cfg.lora:
        if trainer.is_world_process_zero():
            merged = trainer.model.merge_and_unload()
            merged.save_pretrained(out)
    else:
        trainer.save_model(str(out))  # gathers FSDP / ZeRO-3 shards
    if trainer.is_world_process_zero():
        processor.save_pretrained(out)
        make_tokenizer_config_portable(out)
        meta = dict(getattr(model.config, "quilt_llava", None) or {})
        meta["trained"] = {
            "config": cfg.to_dict(),
            "data": report.summary() | {"mismatched_ids": report.mismatched_ids[:1000]},
        }
        write_json(out / "quilt_llava.json", meta)
        write_jsonl(out / "log_history.jsonl", history)


def merge_qlora(peft_model, cfg: TrainConfig, out: Path) -> None:
    """Merge a QLoRA adapter into a full-precision copy of the base checkpoint and save it."""
    import torch
    from peft import PeftModel

    from quilt_llava.model.checkpoint import load_model_and_processor

    adapter_dir = out / "adapter"
    peft_model.save_pretrained(adapter_dir)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    base, _ = load_model_and_processor(cfg.model_name_or_path, dtype=dtype, device="cpu")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.quilt_llava = peft_model.base_model.model.config.quilt_llava
    merged.save_pretrained(out)


def _latest_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def _checkpoints(output_dir: str) -> list[Path]:
    root = Path(output_dir)
    return sorted(p for p in root.glob("checkpoint-*") if p.is_dir()) if root.is_dir() else []


def resolve_resume(cfg: TrainConfig, output: Output | None = None, check_only: bool = False) -> str | None:
    """The checkpoint a run continues from (``None``: a fresh start); see ``TrainConfig.resume_from_checkpoint``.

    A fresh start into an ``output_dir`` that holds ``checkpoint-*`` folders is refused
    unless ``overwrite_output_dir`` (then those folders are deleted, so a later ``auto``
    run cannot pick up a stale one).
    """
    value = (cfg.resume_from_checkpoint or "").strip()
    if value == "auto":
        latest = _latest_checkpoint(cfg.output_dir)
        if latest and not check_only:
            log.info("resuming from %s", latest)
            if output is not None:
                output.info(f"resuming from {latest} (set resume_from_checkpoint: none to start over)")
        return latest
    if value.lower() in ("", "none"):
        existing = _checkpoints(cfg.output_dir)
        if existing and not cfg.overwrite_output_dir:
            raise ConfigError(
                f"output_dir {cfg.output_dir} holds {len(existing)} checkpoint(s) ({existing[-1].name}, ...) and "
                "resume_from_checkpoint is none: resume with resume_from_checkpoint: auto, start over with "
                "overwrite_output_dir: true (deletes them), or choose another output_dir"
            )
        if existing and not check_only and is_main_process():
            import shutil

            for ckpt in existing:
                shutil.rmtree(ckpt)
            log.info("deleted %d old checkpoint(s) in %s (overwrite_output_dir)", len(existing), cfg.output_dir)
        return None
    if not Path(value).is_dir():
        raise ConfigError(f"resume_from_checkpoint '{value}' is not a checkpoint folder (or 'auto' / 'none')")
    return value


def make_progress_callback(output: Output):
    """A ``TrainerCallback`` that drives ``output.progress()`` over ``state.max_steps`` on rank 0."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def __init__(self) -> None:
            self.progress = None
            self.task = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and self.progress is None:
                self.progress = output.progress()
                self.progress.start()
                self.task = self.progress.add_task("training", total=state.max_steps, completed=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.progress is not None and logs and "loss" in logs:
                self.progress.update(self.task, description=f"training (loss {logs['loss']:.4f})")

        def on_train_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                self.progress.update(self.task, completed=state.global_step)
                self.progress.stop()
                self.progress = None

    return _Progress()
