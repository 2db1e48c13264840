"""The processor's Jinja chat template renders what the Python template renders."""

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment

from quilt_llava.model.chat_template import VICUNA_V1_CHAT_TEMPLATE, jinja_for
from quilt_llava.model.conversation import get_template


def _raise(msg):
    raise jinja2.exceptions.TemplateError(msg)


def render(messages, add_generation_prompt, source=VICUNA_V1_CHAT_TEMPLATE):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(source).render(messages=messages, add_generation_prompt=add_generation_prompt)


plain_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
# Turns holding <image> anywhere (and with blanks around it) check the image-first layout too.
text = plain_text | st.builds(lambda a, b: a + "<image>" + b, plain_text, plain_text)


@settings(max_examples=150, deadline=None)
@given(
    turns=st.lists(text, min_size=1, max_size=6),
    system=st.one_of(st.none(), text),
    gen=st.booleans(),
    name=st.sampled_from(["vicuna_v1", "mistral_instruct"]),
)
def test_jinja_equals_python(turns, system, gen, name):
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    if system is not None:
        messages = [{"role": "system", "content": system}, *messages]
    expected = get_template(name).render(messages, add_generation_prompt=gen)
    assert render(messages, gen, jinja_for(name)) == expected


def test_processor_template_and_list_content():
    from quilt_llava.model import build_model_and_processor

    _, processor = build_model_and_processor("tiny")
    msgs = [
        {"role": "user", "content": "<image>\nWhat stain is this?"},
        {"role": "assistant", "content": "H&E."},
        {"role": "user", "content": "Any tumour?"},
    ]
    want = get_template("vicuna_v1").render(msgs, add_generation_prompt=True)
    assert processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) == want
    parts = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What stain is this?"}]},
        *msgs[1:],
    ]
    assert processor.apply_chat_template(parts, add_generation_prompt=True, tokenize=False) == want


def test_bad_alternation_raises():
    with pytest.raises(jinja2.exceptions.TemplateError):
        render([{"role": "assistant", "content": "hi"}], True)


def test_plain_has_no_chat_form():
    with pytest.raises(ValueError, match="training only"):
        jinja_for("plain")
