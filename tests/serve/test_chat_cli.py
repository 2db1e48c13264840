"""``quilt-llava chat`` driven through the CLI with scripted input."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.serve.session import ChatSession, DecodingOptions


def _chat(args: list[str], script: str):
    return CliRunner().invoke(make_app(), ["chat", *args], input=script)


def test_scripted_chat_streams_answers_and_runs_commands(tiny_model_dir, tissue_png, chat_model):
    script = (
        "\n".join(
            [
                "What tissue is this?",
                "/region 0.2, 0.2, 0.8, 0.8",
                "And inside the circle?",
                "/reset",
                "/help",
                "What tissue is this?",
                "/quit",
                "never asked",
            ]
        )
        + "\n"
    )
    result = _chat(["--model", str(tiny_model_dir), "--image", str(tissue_png), "--max-new-tokens", "8"], script)
    assert result.exit_code == 0, result.output

    # The same conversation through the library gives the same answers, line by line.
    decoding = DecodingOptions(max_new_tokens=8)
    session = ChatSession(chat_model, decoding)
    session.set_image(Image.open(tissue_png))
    first = session.ask("What tissue is this?")
    session.set_region((0.2, 0.2, 0.8, 0.8))
    second = session.ask("And inside the circle?")
    fresh = ChatSession(chat_model, decoding, image=Image.open(tissue_png).convert("RGB"), region=(0.2, 0.2, 0.8, 0.8))
    third = fresh.ask("What tissue is this?")
    # (compared on words: a random model's answer may itself contain a newline)
    assert result.stdout.split() == f"{first}\n{second}\n{third}".split()
    assert result.stdout.count("\n") >= 3
    assert "Conversation cleared" in result.stderr
    assert "/image PATH" in result.stderr  # the help text


def test_json_turns_and_failed_commands_set_the_exit_status(tiny_model_dir, tissue_png, png_bomb):
    script = f"/image {png_bomb}\n/region 2, 2, 3\n/bogus\nDescribe the image.\n"
    result = _chat(
        [
            "--model",
            str(tiny_model_dir),
            "--image",
            str(tissue_png),
            "--max-new-tokens",
            "4",
            "--json",
            "--temperature",
            "0.9",
            "--seed",
            "1",
        ],
        script,
    )
    assert result.exit_code == 1, result.output  # three bad commands, but the chat went on
    assert "decompression bomb" in result.stderr and "bomb.png" in result.stderr
    assert "region" in result.stderr and "unknown command /bogus" in result.stderr
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(turns) == 1 and turns[0]["question"] == "Describe the image."
    assert turns[0]["answer"]  # the image stayed the tissue crop after the rejected bomb


def test_bad_start_up_inputs(tiny_model_dir, tmp_path, png_bomb):
    result = _chat(["--model", str(tmp_path / "missing")], "")
    assert result.exit_code != 0 and "does not exist" in str(result.exception)
    result = _chat(["--model", str(tiny_model_dir), "--image", str(png_bomb)], "hello\n")
    assert result.exit_code == 1 and "decompression bomb" in result.stderr
    assert result.stdout == ""
    result = _chat(["--model", str(tiny_model_dir), "--region", "0.5, 0.5"], "")
    assert result.exit_code == 2 and "--region" in result.output
    result = _chat(["--model", str(tiny_model_dir), "--temperature", "-1", "--top-p", "2"], "")
    assert "temperature" in str(result.exception) and "top_p" in str(result.exception)
