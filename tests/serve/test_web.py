"""The web page's logic without a browser: uploads, regions, examples, streamed answers."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from quilt_llava.errors import InputError
from quilt_llava.images import ImageLimits
from quilt_llava.serve.session import ChatSession, DecodingOptions
from quilt_llava.serve.web import (
    WEB_LIMITS,
    ChatHandlers,
    WebOptions,
    WebState,
    bundled_example,
    choose_region,
    example_paths,
    region_from_layers,
)


def _layer(size=(200, 100), stroke=None) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    if stroke:
        ImageDraw.Draw(layer).line(stroke, fill=(255, 0, 0, 255), width=6)
    return layer


def test_region_from_painted_layers():
    assert region_from_layers(None) is None
    assert region_from_layers([_layer()]) is None  # nothing painted
    box = region_from_layers([_layer(stroke=[(50, 20), (150, 80)]), _layer(), _layer(stroke=[(20, 50), (30, 50)])])
    x0, y0, x1, y1 = box
    assert x0 == pytest.approx(17 / 200, abs=0.02) and x1 == pytest.approx(153 / 200, abs=0.02)
    assert y0 == pytest.approx(17 / 100, abs=0.03) and y1 == pytest.approx(83 / 100, abs=0.03)


def test_typed_region_wins_over_paint_and_bad_typing_is_reported():
    painted = {"layers": [_layer(stroke=[(50, 20), (150, 80)])]}
    assert choose_region("0.1 0.1 0.2 0.2", painted) == (0.1, 0.1, 0.2, 0.2)
    assert choose_region("", painted) is not None
    assert choose_region("", None) is None
    with pytest.raises(ValueError, match="four numbers"):
        choose_region("0.1, 0.2", painted)


def test_example_images(tmp_path):
    assert example_paths(None) == [bundled_example()]
    assert bundled_example().stat().st_size < 100_000
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in example_paths(tmp_path)] == ["a.JPG", "b.png"]
    with pytest.raises(InputError, match="not found"):
        example_paths(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no example images"):
        example_paths(tmp_path / "empty")


@pytest.fixture()
def handlers(chat_model):
    options = WebOptions(
        decoding=DecodingOptions(max_new_tokens=6),
        limits=ImageLimits(max_bytes=200_000, max_pixels=100_000, formats=WEB_LIMITS.formats),
    )
    return ChatHandlers(chat_model, options, [("ihc.png", Image.open(bundled_example()).convert("RGB"))])


def test_uploads_are_checked_before_use(handlers, tissue_png, png_bomb, tmp_path):
    state = WebState(name="kept")
    big = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(big)  # 120,000 pixels > 100,000
    gif = tmp_path / "anim.gif"
    Image.new("RGB", (10, 10)).save(gif)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG not really")
    expected = {png_bomb: "decompression bomb", big: "pixels", gif: "GIF is not accepted", junk: "not a readable image"}
    for path, reason in expected.items():
        new_state, *_, status = handlers.upload(str(path), state)
        assert new_state is state and state.image is None
        assert "Upload rejected" in status and path.name in status and reason in status, status
        assert str(path.parent) not in status  # the server's temp folder is not shown

    new_state, editor, preview, chat, status = handlers.upload(str(tissue_png), state)
    assert new_state.image.size == (160, 120) and new_state.history == [] and chat == []
    assert editor["background"].size == (160, 120)
    assert preview.size == (160, 160)  # padded to square, as the model sees it
    assert "tissue.png" in status and "160x120" in status


def test_ask_streams_into_the_chat_and_keeps_history(handlers, chat_model):
    state, *_ = handlers.pick_example(0)
    steps = list(handlers.ask("What is shown?", state, None, "0.2, 0.2, 0.8, 0.8", 0.0, 1.0, 6))
    chats = [step[0] for step in steps]
    assert chats[0][-1] == {"role": "assistant", "content": ""}
    assert len(steps) >= 3, "the answer should arrive in several updates"
    final_chat, final_state, question_box, _, status = steps[-1]
    assert question_box == "" and "region [0.2, 0.2, 0.8, 0.8]" in status
    assert final_state.history == final_chat and len(final_chat) == 2

    expected = ChatSession(
        chat_model, DecodingOptions(max_new_tokens=6), image=state.image, region=(0.2, 0.2, 0.8, 0.8)
    )
    assert final_chat[1]["content"] == expected.ask("What is shown?")

    steps = list(handlers.ask("Anything else?", final_state, None, "", 0.0, 1.0, 6))
    assert len(steps[-1][1].history) == 4
    state, chat, status = handlers.reset(steps[-1][1])
    assert state.history == [] and chat == [] and state.image is not None


def test_ask_reports_bad_input_without_generating(handlers):
    state, *_ = handlers.pick_example(0)
    (out,) = handlers.ask("   ", state, None, "", 0.0, 1.0, 6)
    assert "Type a question" in out[-1]
    (out,) = handlers.ask("Where?", state, None, "0.1, 0.2", 0.0, 1.0, 6)
    assert "Region not understood" in out[-1] and out[2] == "Where?"  # the question is kept
    (out,) = handlers.ask("Where?", state, None, "", 0.0, 0.0, 6)
    assert "top_p" in out[-1]
    assert state.history == []


def test_serve_cli_rejects_bad_inputs_before_listening(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from quilt_llava.cli import make_app
    from quilt_llava.errors import ConfigError

    runner = CliRunner()
    result = runner.invoke(make_app(), ["serve", "--model", str(tmp_path / "missing")])
    assert isinstance(result.exception, ConfigError) and "does not exist" in str(result.exception)
    result = runner.invoke(make_app(), ["serve", "--model", str(tiny_model_dir), "--port", "70000"])
    assert isinstance(result.exception, ConfigError) and "port" in str(result.exception)
    result = runner.invoke(
        make_app(), ["serve", "--model", str(tiny_model_dir), "--examples", str(tmp_path / "none"), "--port", "0"]
    )
    assert isinstance(result.exception, InputError) and "examples directory not found" in str(result.exception)


def test_stopping_keeps_the_cut_answer(handlers):
    state, *_ = handlers.pick_example(0)
    steps = handlers.ask("Tell me everything.", state, None, "", 0.0, 1.0, 400)
    next(steps)  # the question appears
    shown = next(steps)[0][-1]["content"]  # the first piece of the answer
    steps.close()  # what Gradio does on Stop
    assert [m["role"] for m in state.history] == ["user", "assistant"]
    assert state.history[1]["content"] == shown.strip()
