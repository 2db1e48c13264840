"""CLI for serving (chat, serve). Heavy imports live inside command bodies."""

from __future__ import annotations

from pathlib import Path

import typer

from quilt_llava.model.precision import DTYPES

_LOAD_HELP = "Loading"
_DEC_HELP = "Decoding"
_LIMIT_HELP = "Image limits"


def _region(text: str | None) -> tuple[float, float, float, float] | None:
    from quilt_llava.serve.session import parse_region

    if text is None:
        return None
    try:
        return parse_region(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--region") from None


def chat(
    model: Path = typer.Option(..., "--model", "-m", help="A saved LlavaForConditionalGeneration directory."),
    image: str | None = typer.Option(None, "--image", "-i", help="Image path or http(s) URL to chat about."),
    region: str | None = typer.Option(None, "--region", help="Circle x0,y0,x1,y1 (fractions of width, height) in red."),
    max_new_tokens: int = typer.Option(256, help="Longest answer, in tokens.", rich_help_panel=_DEC_HELP),
    temperature: float = typer.Option(0.0, help="0 = greedy decoding; above 0 samples.", rich_help_panel=_DEC_HELP),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass (sampling only).", rich_help_panel=_DEC_HELP),
    repetition_penalty: float = typer.Option(1.0, rich_help_panel=_DEC_HELP),
    seed: int | None = typer.Option(None, help="Seed for sampled decoding.", rich_help_panel=_DEC_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, mps ...", rich_help_panel=_LOAD_HELP),
    dtype: str = typer.Option("auto", help=", ".join(("auto", *DTYPES)) + ".", rich_help_panel=_LOAD_HELP),
    load_4bit: bool = typer.Option(
        False, "--load-4bit", help="Quantize to 4 bits (needs bitsandbytes).", rich_help_panel=_LOAD_HELP
    ),
    load_8bit: bool = typer.Option(
        False, "--load-8bit", help="Quantize to 8 bits (needs bitsandbytes).", rich_help_panel=_LOAD_HELP
    ),
    template: str | None = typer.Option(
        None, help="Conversation template; default: the checkpoint's.", rich_help_panel=_LOAD_HELP
    ),
    max_image_mb: float = typer.Option(32.0, help="Largest image file.", rich_help_panel=_LIMIT_HELP),
    max_pixels: int = typer.Option(
        64_000_000, help="Largest image, in pixels (decompression bombs are refused).", rich_help_panel=_LIMIT_HELP
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notices on stderr."),
    json_out: bool = typer.Option(
        False, "--json", help="One JSON line {question, answer} per turn instead of streaming."
    ),
) -> None:
    """Chat with a model in the terminal: streamed answers, /image PATH, /region, /reset, /quit."""
    from quilt_llava.console import Output
    from quilt_llava.images import ImageLimits
    from quilt_llava.serve.session import DecodingOptions, LoadOptions
    from quilt_llava.serve.terminal import ChatOptions, run_chat

    options = ChatOptions(
        load=LoadOptions(
            model, device=device, dtype=dtype, load_in_4bit=load_4bit, load_in_8bit=load_8bit, template=template
        ),
        decoding=DecodingOptions(max_new_tokens, temperature, top_p, repetition_penalty, seed),
        image=image,
        region=_region(region),
        limits=ImageLimits(max_bytes=int(max_image_mb * 2**20), max_pixels=max_pixels),
    )
    from quilt_llava.model.hf import quiet_libraries

    quiet_libraries(quiet or json_out)  # transformers' own "Loading weights" bars
    errors = run_chat(options, out=Output(quiet=quiet, json=json_out))
    raise typer.Exit(1 if errors else 0)


def serve(
    model: Path = typer.Option(..., "--model", "-m", help="A saved LlavaForConditionalGeneration directory."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; the default keeps the page on this machine."),
    port: int = typer.Option(7860, help="Port to listen on."),
    share: bool = typer.Option(False, "--share/--no-share", help="Open a public Gradio share link (off by default)."),
    examples: Path | None = typer.Option(None, help="Folder of PNG/JPEG example images; default: a bundled IHC crop."),
    max_new_tokens: int = typer.Option(256, help="Default longest answer.", rich_help_panel=_DEC_HELP),
    temperature: float = typer.Option(0.0, help="Default temperature; 0 = greedy.", rich_help_panel=_DEC_HELP),
    top_p: float = typer.Option(1.0, rich_help_panel=_DEC_HELP),
    repetition_penalty: float = typer.Option(1.0, rich_help_panel=_DEC_HELP),
    seed: int | None = typer.Option(None, rich_help_panel=_DEC_HELP),
    device: str = typer.Option("auto", rich_help_panel=_LOAD_HELP),
    dtype: str = typer.Option("auto", rich_help_panel=_LOAD_HELP),
    load_4bit: bool = typer.Option(False, "--load-4bit", rich_help_panel=_LOAD_HELP),
    load_8bit: bool = typer.Option(False, "--load-8bit", rich_help_panel=_LOAD_HELP),
    template: str | None = typer.Option(None, rich_help_panel=_LOAD_HELP),
    max_upload_mb: float = typer.Option(16.0, help="Largest upload.", rich_help_panel=_LIMIT_HELP),
    max_pixels: int = typer.Option(
        40_000_000, help="Largest upload, in pixels (decompression bombs are refused).", rich_help_panel=_LIMIT_HELP
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Serve a chat web page (Gradio): upload, circle a region, ask, read streamed answers."""
    from dataclasses import replace

    from quilt_llava.console import Output
    from quilt_llava.serve.session import DecodingOptions, LoadOptions
    from quilt_llava.serve.web import WEB_LIMITS, ServeOptions, WebOptions
    from quilt_llava.serve.web import serve as run_server

    options = ServeOptions(
        load=LoadOptions(
            model, device=device, dtype=dtype, load_in_4bit=load_4bit, load_in_8bit=load_8bit, template=template
        ),
        web=WebOptions(
            decoding=DecodingOptions(max_new_tokens, temperature, top_p, repetition_penalty, seed),
            limits=replace(WEB_LIMITS, max_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels),
            examples_dir=examples,
        ),
        host=host,
        port=port,
        share=share,
    )
    from quilt_llava.model.hf import quiet_libraries

    quiet_libraries(quiet)
    run_server(options, out=Output(quiet=quiet))


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
    app.command("serve")(serve)
