"""CLI for training. Heavy imports live inside command bodies.

``quilt-llava train --config stage1.yaml [--set key=value ...]`` runs one stage
(launch it with ``accelerate launch -m quilt_llava train ...`` for several
devices); ``quilt-llava train convert-llava SRC DST`` imports an original-layout
checkpoint; ``quilt-llava train configs`` lists the shipped configs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from quilt_llava.console import Output


@dataclass
class TrainOptions:
    config: str
    overrides: list[str] = field(default_factory=list)
    dry_run: bool = False


def run_train(options: TrainOptions, out: Output) -> dict:
    from quilt_llava.train.config import TrainConfig, parse_overrides

    cfg = TrainConfig.from_yaml(options.config, overrides=parse_overrides(options.overrides))
    if options.dry_run:
        cfg.require_run_paths()
        return {"config": cfg.to_dict(), "valid": True}
    from quilt_llava.model.hf import quiet_libraries
    from quilt_llava.train.trainer import close_process_group, train

    quiet_libraries(out.quiet or out.json)

    def show(entry: dict) -> None:
        out.info(f"step {entry['step']}: loss {entry['loss']:.4f} lr {entry.get('learning_rate', 0):.3g}")

    summary = train(cfg, on_log=show, output=out)
    close_process_group()  # a launched run ends here: leave no gloo/NCCL threads to interpreter shutdown
    summary.pop("log_history", None)
    return summary


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Train a LLaVA-style model (stage 1 alignment, stage 2 instruction tuning).",
        invoke_without_command=True,
        no_args_is_help=False,
    )

    @group.callback()
    def _train(
        ctx: typer.Context,
        config: str | None = typer.Option(
            None, "--config", "-c", help="YAML config: a path or a shipped name (stage1.yaml, stage2.yaml, ...)."
        ),
        set_: list[str] = typer.Option([], "--set", help="Override a setting: key=value (repeatable)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Validate the config and print it; do not train."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
        json_: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        if config is None:
            typer.echo(ctx.get_help())
            raise typer.Exit(code=2)
        import os

        # Under accelerate/torchrun every process runs this; only rank 0 reports.
        main = os.environ.get("RANK", "0") == "0"
        out = Output(quiet=quiet or not main, json=json_)
        summary = run_train(TrainOptions(config, list(set_), dry_run), out)
        if main:
            out.result(summary)

    @group.command("convert-llava")
    def _convert(
        src: str = typer.Argument(
            ..., help="Checkpoint folder in the original LLaVA layout (LlavaLlamaForCausalLM, LlavaMistralForCausalLM)."
        ),
        dst: str = typer.Argument(..., help="Output folder (Hugging Face LlavaForConditionalGeneration layout)."),
        vision_tower: str = typer.Option(
            "", "--vision-tower", help="Local vision tower folder instead of mm_vision_tower."
        ),
        conv_template: str = typer.Option(
            "",
            "--conv-template",
            help="Template the checkpoint expects; default: mistral_instruct for "
            "LlavaMistralForCausalLM, else vicuna_v1.",
        ),
        dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
        json_: bool = typer.Option(False, "--json"),
    ) -> None:
        """Convert an original-layout LLaVA checkpoint (Quilt-LLaVA, LLaVA-Med releases) to the HF layout."""
        from quilt_llava.model.convert import ConvertOptions, convert_llava_checkpoint
        from quilt_llava.model.hf import quiet_libraries

        out = Output(quiet=quiet, json=json_)
        quiet_libraries(quiet or json_)
        out.result(convert_llava_checkpoint(ConvertOptions(src, dst, vision_tower, conv_template, dtype)))

    @group.command("configs")
    def _configs(
        paths: bool = typer.Option(False, "--paths", help="Print full paths (for accelerate --config_file)."),
    ) -> None:
        """List the shipped training and accelerate configs."""
        from quilt_llava.train.config import resolve_config_path, shipped_configs

        for name in shipped_configs(include_accelerate=True):
            typer.echo(str(resolve_config_path(name)) if paths else name)

    app.add_typer(group, name="train")
