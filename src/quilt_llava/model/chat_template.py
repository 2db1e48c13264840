"""Jinja chat templates equal to the Python templates in :mod:`conversation`.

Saved with the processor (``processor.chat_template``) so that any tool that
formats chats from the checkpoint alone (vLLM's OpenAI-compatible server,
``processor.apply_chat_template``) produces exactly the string that
``get_template(name).render(...)`` produces (one Jinja template per chat template). ``tests/model`` checks the
equivalence on many conversations.

Message content may be a string or an OpenAI/HF-style list of parts
(``{"type": "image"}`` / ``{"type": "text", "text": ...}``); image parts become
``<image>\\n`` in front of the text, and a string turn holding ``<image>`` is laid out image first
(:func:`~quilt_llava.model.conversation.image_first`), which is the layout LLaVA was trained with.
"""

from __future__ import annotations

from quilt_llava.model.conversation import TEMPLATES

_CONTENT_MACRO = (
    "{%- macro content_of(m) -%}"
    "{%- if m['content'] is string -%}{{ m['content'] }}"
    "{%- else -%}"
    "{%- for part in m['content'] if part['type'] == 'image' or part['type'] == 'image_url' -%}{{ '<image>\\n' }}{%- "
    "endfor -%}"
    "{%- for part in m['content'] if part['type'] == 'text' -%}{{ part['text'] }}{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    # conversation.image_first: a user turn holding <image> is laid out image first
    "{%- macro image_first(c) -%}"
    "{%- if '<image>' in c -%}{{ ('<image>\\n' + c.replace('<image>', '').strip()).strip() }}"
    "{%- else -%}{{ c }}{%- endif -%}"
    "{%- endmacro -%}"
)


def _vicuna_like(
    system: str,
    user_prefix: str,
    assistant_prefix: str,
    turn_sep: str,
    answer_lead: str,
    assistant_end: str,
    system_in_first_turn: tuple[str, str] | None = None,
) -> str:
    q = _quote
    if system_in_first_turn is None:
        system_part = f"{{%- if system -%}}{{{{ system }}}}{{{{ {q(turn_sep)} }}}}{{%- endif -%}}"
        first_turn = ""
    else:
        open_, close = system_in_first_turn
        system_part = ""
        first_turn = f"{{%- set ns.first = ({q(open_)} + system + {q(close)}) if system else '' -%}}"
    return (
        _CONTENT_MACRO + "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system = content_of(messages[0]) -%}{%- set turns = messages[1:] -%}"
        "{%- else -%}"
        f"{{%- set system = {q(system)} -%}}{{%- set turns = messages -%}}"
        "{%- endif -%}"
        "{%- set ns = namespace(first='') -%}" + first_turn + system_part + "{%- for m in turns -%}"
        "{%- set expected = 'user' if loop.index0 % 2 == 0 else 'assistant' -%}"
        "{%- if m['role'] != expected -%}"
        "{{ raise_exception('conversation roles must alternate user/assistant starting with user') }}"
        "{%- endif -%}"
        "{%- if m['role'] == 'user' -%}"
        "{%- set text = (ns.first if loop.first else '') + image_first(content_of(m)) -%}"
        "{%- if loop.last and not add_generation_prompt -%}"
        f"{{{{ ({q(user_prefix)} + text + {q(turn_sep)}).rstrip() }}}}"
        "{%- else -%}"
        f"{{{{ {q(user_prefix)} + text + {q(turn_sep)} + {q(assistant_prefix)} }}}}"
        "{%- endif -%}"
        "{%- else -%}"
        f"{{{{ {q(answer_lead)} + content_of(m) + {q(assistant_end)} }}}}"
        "{%- endif -%}"
        "{%- endfor -%}"
    )


def _quote(text: str) -> str:
    """A Jinja string literal for ``text``."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def jinja_for(name: str) -> str:
    t = TEMPLATES[name]
    if t.drop_user_text:
        raise ValueError(f"template '{name}' drops user text and is for training only; it has no chat form")
    return _vicuna_like(
        t.system, t.user_prefix, t.assistant_prefix, t.turn_sep, t.answer_lead, t.assistant_end, t.system_in_first_turn
    )


def chat_template_for(name: str) -> str:
    """The Jinja chat template saved with a processor whose checkpoint expects template ``name``
    (training-only templates such as ``plain`` get the ``vicuna_v1`` chat form used after stage 2)."""
    return VICUNA_V1_CHAT_TEMPLATE if TEMPLATES[name].drop_user_text else jinja_for(name)


VICUNA_V1_CHAT_TEMPLATE = jinja_for("vicuna_v1")
