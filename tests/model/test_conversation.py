import pytest

from quilt_llava.model.conversation import get_template

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
RECORD = [
    {"from": "human", "value": "<image>\nWhat tissue is this?"},
    {"from": "gpt", "value": "Lymph node."},
    {"from": "human", "value": "Any tumour?"},
    {"from": "gpt", "value": "No."},
]


def test_vicuna_v1_golden():
    text = get_template("vicuna_v1").render(RECORD)
    assert text == (
        SYSTEM + " USER: <image>\nWhat tissue is this? ASSISTANT: Lymph node.</s>USER: Any tumour? ASSISTANT: No.</s>"
    )


def test_vicuna_generation_prompt():
    assert get_template("vicuna_v1").prompt("Is it benign?") == (SYSTEM + " USER: <image>\nIs it benign? ASSISTANT:")


def test_plain_keeps_only_image_and_caption():
    record = [
        {"from": "human", "value": "Describe the image briefly.\n<image>"},
        {"from": "gpt", "value": "Granulomas in a lymph node."},
    ]
    assert get_template("plain").render(record) == "<image>Granulomas in a lymph node.\n"


def test_trainable_segments_are_exactly_the_answers():
    segs = get_template("vicuna_v1").segments(RECORD)
    trained = [s.text for s in segs if s.trainable]
    assert trained == [" Lymph node.</s>", " No.</s>"]


def test_bad_roles_are_rejected_with_reason():
    with pytest.raises(ValueError, match="expected"):
        get_template("vicuna_v1").render([{"from": "gpt", "value": "hi"}])
    with pytest.raises(ValueError, match="unknown conversation template"):
        get_template("llama9")


def test_mistral_instruct_golden():
    """LLaVA-Med v1.5's format: [INST] ... [/INST], each answer closed by " </s>", no system text."""
    template = get_template("mistral_instruct")
    assert template.render(RECORD) == (
        "[INST] <image>\nWhat tissue is this? [/INST] Lymph node. </s>[INST] Any tumour? [/INST] No. </s>"
    )
    assert template.prompt("Is it benign?") == "[INST] <image>\nIs it benign? [/INST]"
    assert [s.text for s in template.segments(RECORD) if s.trainable] == [" Lymph node. </s>", " No. </s>"]
    with_system = template.render([{"role": "system", "content": "Be brief."}, *RECORD[:2]])
    assert (
        with_system == "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\nWhat tissue is this? [/INST] Lymph node. </s>"
    )


def test_image_first_layout_is_the_releases():
    from quilt_llava.model.conversation import image_first

    assert image_first("What is shown?\n<image>") == "<image>\nWhat is shown?"
    assert image_first("  <image>  Describe.  ") == "<image>\nDescribe."
    assert image_first("Is <image> red?") == "<image>\nIs  red?"  # the tag removed, inner text kept as is
    assert image_first("<image>") == "<image>"  # nothing left: no trailing newline
    assert image_first("  no image  ") == "  no image  "  # turns without the tag are untouched
    rendered = get_template("vicuna_v1").render(
        [{"role": "user", "content": "Why?\n<image>"}, {"role": "assistant", "content": "Because."}]
    )
    assert "USER: <image>\nWhy? ASSISTANT: Because.</s>" in rendered
