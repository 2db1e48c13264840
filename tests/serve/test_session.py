"""The generation core shared by the terminal chat and the web page."""

from __future__ import annotations

import threading

import pytest
from PIL import Image

from quilt_llava.errors import ConfigError, InputError, MissingDependencyError
from quilt_llava.serve.session import (
    ChatModel,
    ChatSession,
    DecodingOptions,
    LoadOptions,
    _cut_at_stops,
    load_image,
    parse_region,
    prepare_model_image,
)

STOPS = ["</s>", "USER:"]


def _cut(pieces: list[str]) -> tuple[list[str], bool]:
    cancel = threading.Event()
    return list(_cut_at_stops(iter(pieces), STOPS, cancel)), cancel.is_set()


def test_cut_at_stops_strips_the_lead_and_ends_at_a_stop_string():
    out, cancelled = _cut([" ", " The", " cells", " are</", "s> USER: more"])
    assert "".join(out) == "The cells are"
    assert cancelled
    # a stop string split over pieces is held back, never streamed half
    out, cancelled = _cut(["Fine. US", "ER: next"])
    assert "".join(out).strip() == "Fine."
    assert all("US" not in piece for piece in out)
    assert cancelled


def test_cut_at_stops_passes_everything_without_a_stop():
    out, cancelled = _cut(["Looks like ", "a gland <", "/s"])
    assert "".join(out) == "Looks like a gland </s"
    assert not cancelled


def test_parse_region():
    assert parse_region("0.1, 0.2, 0.5, 0.6") == (0.1, 0.2, 0.5, 0.6)
    assert parse_region("[0.5 0.6 0.1 0.2]") == (0.1, 0.2, 0.5, 0.6)  # corners in any order
    assert parse_region("  ") is None
    for bad in ("0.1, 0.2, 0.5", "a, b, c, d", "0.1, 0.2, 1.5, 0.6", "0.3, 0.2, 0.3, 0.6"):
        with pytest.raises(ValueError, match="region"):
            parse_region(bad)


def test_decoding_options_report_every_problem():
    with pytest.raises(ConfigError) as info:
        DecodingOptions(max_new_tokens=0, temperature=-1, top_p=0, repetition_penalty=0).validate()
    assert len(info.value.problems) == 4
    assert DecodingOptions().generate_kwargs()["do_sample"] is False
    sampled = DecodingOptions(temperature=0.7, top_p=0.9).generate_kwargs()
    assert sampled["do_sample"] is True and sampled["temperature"] == 0.7 and sampled["top_p"] == 0.9


def test_load_options_name_the_problems(tmp_path):
    problems = LoadOptions(
        tmp_path / "nope", dtype="int3", load_in_4bit=True, load_in_8bit=True, template="chatml"
    ).problems()
    text = "\n".join(problems)
    assert "does not exist" in text and "int3" in text and "at most one" in text and "chatml" in text
    (tmp_path / "empty").mkdir()
    assert "no config.json" in LoadOptions(tmp_path / "empty").problems()[0]
    with pytest.raises(ConfigError):
        ChatModel.load(LoadOptions(tmp_path / "empty"))


def test_quantized_loading_needs_bitsandbytes(tiny_model_dir):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    with pytest.raises(MissingDependencyError, match="quant"):
        ChatModel.load(LoadOptions(tiny_model_dir, load_in_4bit=True))


def test_prompt_snapshot(chat_model):
    session = ChatSession(chat_model, image=Image.new("RGB", (8, 8)))
    session.history = [
        {"role": "user", "content": "What stain is this?"},
        {"role": "assistant", "content": "An immunohistochemical stain."},
    ]
    assert session.prompt_for("Which cells are positive?") == (
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions. "
        "USER: <image>\nWhat stain is this? ASSISTANT: An immunohistochemical stain.</s>"
        "USER: Which cells are positive? ASSISTANT:"
    )
    text_only = ChatSession(chat_model, DecodingOptions(max_new_tokens=4))
    assert "<image>" not in text_only.prompt_for("Hello?")
    assert text_only.ask("Hello?")  # no image: a text-only turn still works


def test_model_image_draws_the_red_circle_and_pads_to_square(tissue_png, chat_model):
    image = Image.open(tissue_png).convert("RGB")  # 160 x 120
    plain = prepare_model_image(image, None, chat_model.processor)
    circled = prepare_model_image(image, (0.25, 0.25, 0.75, 0.75), chat_model.processor)
    assert plain.size == circled.size == (160, 160)
    assert plain.getpixel((0, 0)) == circled.getpixel((0, 0)) == (122, 116, 104)  # the processor's mean (CLIP)
    # left edge of the ellipse, vertically centred, shifted by the 20 px top padding
    assert circled.getpixel((40, 80)) == (255, 0, 0)
    assert plain.getpixel((40, 80)) != (255, 0, 0)


def test_stream_is_deterministic_and_keeps_history(chat_model, tissue_png):
    image = Image.open(tissue_png)
    decoding = DecodingOptions(max_new_tokens=8)
    first = ChatSession(chat_model, decoding)
    first.set_image(image, region=(0.2, 0.2, 0.8, 0.8))
    pieces = list(first.stream("What tissue is this?"))
    answer = "".join(pieces).strip()
    assert answer, "the tiny model should produce some text in 8 tokens"
    assert len(pieces) > 1, "answers are streamed in pieces"
    second = ChatSession(chat_model, decoding)
    second.set_image(image, region=(0.2, 0.2, 0.8, 0.8))
    assert second.ask("What tissue is this?") == answer
    # the region is part of what the model sees
    third = ChatSession(chat_model, decoding)
    third.set_image(image)
    assert third.model_image().tobytes() != second.model_image().tobytes()

    first.ask("And the stain?")
    assert [m["role"] for m in first.history] == ["user", "assistant"] * 2
    assert first.history[0] == {"role": "user", "content": "What tissue is this?"}
    first.set_image(image)
    assert first.history == []


def test_sampling_with_a_seed_is_reproducible(chat_model, tissue_png):
    image = Image.open(tissue_png)
    answers = []
    for _ in range(2):
        session = ChatSession(chat_model, DecodingOptions(max_new_tokens=8, temperature=1.0, seed=3))
        session.set_image(image)
        answers.append(session.ask("Describe it."))
    assert answers[0] == answers[1]


def test_leaving_early_stops_generation_and_keeps_the_partial_answer(chat_model, tissue_png):
    session = ChatSession(chat_model, DecodingOptions(max_new_tokens=400))
    session.set_image(Image.open(tissue_png))
    calls = []
    hook = chat_model.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        stream = session.stream("Describe it.")
        first = next(stream)
        stream.close()
    finally:
        hook.remove()
    assert len(calls) < 100, f"generation went on for {len(calls)} steps after the reader left"
    assert session.history[-1] == {"role": "assistant", "content": first.strip()}


def test_empty_or_image_token_questions_are_refused(chat_model):
    session = ChatSession(chat_model)
    with pytest.raises(ValueError, match="empty"):
        session.ask("  ")
    with pytest.raises(ValueError, match="<image>"):
        session.ask("look <image>")
    assert session.history == []


def test_load_image_applies_limits(png_bomb, tissue_png, tmp_path):
    from quilt_llava.images import ImageLimits

    with pytest.raises(InputError, match="decompression bomb"):
        load_image(str(png_bomb))
    with pytest.raises(InputError, match="pixels"):
        load_image(str(tissue_png), ImageLimits(max_pixels=1000))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(InputError, match=r"notes\.png"):
        load_image(str(text))
    assert load_image(str(tissue_png)).size == (160, 120)


def test_load_image_from_a_url(tissue_png):
    import functools
    import http.server
    import threading

    from quilt_llava.images import ImageLimits

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tissue_png.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert load_image(f"{base}/tissue.png").size == (160, 120)
        with pytest.raises(InputError, match="could not download"):
            load_image(f"{base}/missing.png")
        with pytest.raises(InputError, match="larger than"):
            load_image(f"{base}/tissue.png", ImageLimits(max_bytes=1000))
    finally:
        server.shutdown()
        server.server_close()


def test_long_conversations_drop_the_oldest_exchanges_to_fit_the_context(chat_model, tissue_png):
    limit = chat_model.context_limit()
    assert limit == chat_model.model.config.text_config.max_position_embeddings
    session = ChatSession(chat_model, DecodingOptions(max_new_tokens=8))
    session.set_image(Image.open(tissue_png))
    filler = " ".join(["the glands are lined by columnar epithelium"] * 12)
    for i in range(12):
        session.history += [
            {"role": "user", "content": f"question {i}: {filler}"},
            {"role": "assistant", "content": filler},
        ]
    assert session.ask("And now?")
    assert session.trimmed_turns > 0
    kept = session.history
    assert kept[-2]["content"] == "And now?" and kept[0]["content"].startswith(f"question {session.trimmed_turns}:")
    prompt_tokens = chat_model.encode(session.prompt_for("next"), session.model_image())["input_ids"].shape[1]
    assert prompt_tokens < limit
    assert session.prompt_for("next").count("<image>") == 1  # the image moved to the first kept turn

    with pytest.raises(ValueError, match="shorter question"):
        ChatSession(chat_model).ask(" ".join(["word"] * limit))
