"""Conversation templates: how a LLaVA-format record becomes a prompt string.

Templates matching the formats the published checkpoints were trained with:

- ``vicuna_v1``: a system sentence, then ``USER: ... ASSISTANT: ...`` turns
  separated by a space, each assistant turn closed by ``</s>``. Used in stage 2,
  evaluation and chat. (The system sentence is FastChat's Vicuna v1.1 text; it is
  part of the input format the released weights expect, so it is kept verbatim.)
- ``mistral_instruct``: LLaVA-Med v1.5 (Mistral-7B-Instruct base):
  ``[INST] question [/INST] answer </s>`` per exchange, no system text.
- ``plain``: stage-1 alignment; the image followed directly by the caption and a
  newline; no system text, no roles, the human instruction is dropped.

Every user turn that holds ``<image>`` is laid out image first, as the release
did before rendering (:func:`image_first`): the tag removed, the text stripped and
``<image>\n`` put in front.

This module is pure Python (no torch) so the data stages can use it. Turning a
rendered conversation into token ids is :mod:`quilt_llava.model.prompt` (one path
for training, evaluation and chat); the loss mask is :mod:`quilt_llava.model.tensorize`.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_TOKEN = "<image>"
ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class Segment:
    """A piece of the rendered prompt; ``trainable`` marks assistant text (and its end token)."""

    text: str
    trainable: bool


@dataclass(frozen=True)
class ConversationTemplate:
    name: str
    system: str
    user_prefix: str
    assistant_prefix: str
    turn_sep: str  # after a user turn
    assistant_end: str  # closes every assistant turn (trained on)
    answer_lead: str = ""  # between the assistant prefix and the answer (trained on)
    drop_user_text: bool = False  # ``plain``: keep only the image token of the user turn
    # (open, close): a system text goes inside the first user turn, wrapped (Llama-2 style), not before it
    system_in_first_turn: tuple[str, str] | None = None

    def segments(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> list[Segment]:
        """Split a conversation into prompt segments, marking what the loss sees.

        ``messages`` are ``{"role": "user"|"assistant"|"system", "content": str}``
        (LLaVA ``{"from": "human"|"gpt", "value"}`` is accepted too).
        """
        msgs = [normalize_message(m) for m in messages]
        system = self.system
        if msgs and msgs[0]["role"] == "system":
            system = msgs[0]["content"]
            msgs = msgs[1:]
        out: list[Segment] = []
        first_turn_system = ""
        if system and self.system_in_first_turn is not None:
            first_turn_system = self.system_in_first_turn[0] + system + self.system_in_first_turn[1]
        elif system:
            out.append(Segment(system + self.turn_sep, False))
        for i, msg in enumerate(msgs):
            expected = "user" if i % 2 == 0 else "assistant"
            if msg["role"] != expected:
                raise ValueError(
                    f"turn {i} has role '{msg['role']}' but '{expected}' was expected "
                    "(conversations alternate user/assistant, starting with user)"
                )
            if expected == "user":
                text = image_first(msg["content"])
                if self.drop_user_text:
                    text = IMAGE_TOKEN if IMAGE_TOKEN in text else ""
                if i == 0:
                    text = first_turn_system + text
                out.append(Segment(self.user_prefix + text + self.turn_sep + self.assistant_prefix, False))
            else:
                out.append(Segment(self.answer_lead + msg["content"] + self.assistant_end, True))
        if not add_generation_prompt and out and not out[-1].trainable and msgs:
            # A prompt ending on a user turn without generation prompt: strip the assistant prefix.
            last = out[-1]
            if self.assistant_prefix and last.text.endswith(self.assistant_prefix):
                out[-1] = Segment(last.text[: -len(self.assistant_prefix)].rstrip(), False)
        return out

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        return "".join(s.text for s in self.segments(messages, add_generation_prompt))

    def prompt(self, question: str, with_image: bool = True) -> str:
        """A single-turn generation prompt for ``question`` (image token first when ``with_image``)."""
        content = f"{IMAGE_TOKEN}\n{question}" if with_image and IMAGE_TOKEN not in question else question
        return self.render([{"role": "user", "content": content}], add_generation_prompt=True)


def image_first(text: str) -> str:
    """The release's layout of a turn holding ``<image>``: tag removed, text stripped, ``<image>\n`` in front
    (just ``<image>`` when no text is left). Turns without the tag are returned unchanged."""
    if IMAGE_TOKEN not in text:
        return text
    return (IMAGE_TOKEN + "\n" + text.replace(IMAGE_TOKEN, "").strip()).strip()


def normalize_message(message: dict[str, str]) -> dict[str, str]:
    if "role" in message:
        role, content = message["role"], message.get("content", "")
    elif "from" in message:
        role, content = message["from"], message.get("value", "")
    else:
        raise ValueError(f"message has neither 'role' nor 'from': {sorted(message)}")
    if role not in ROLE_ALIASES:
        raise ValueError(f"unknown role '{role}'; expected one of {sorted(ROLE_ALIASES)}")
    if not isinstance(content, str):
        raise ValueError(f"message content must be a string, got {type(content).__name__}")
    return {"role": ROLE_ALIASES[role], "content": content}


# The template of checkpoints that record none, of presets, and of chat after a training-only template.
DEFAULT_TEMPLATE = "vicuna_v1"

TEMPLATES: dict[str, ConversationTemplate] = {
    "vicuna_v1": ConversationTemplate(
        name="vicuna_v1",
        system=(
            "A chat between a curious user and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the user's questions."
        ),
        user_prefix="USER: ",
        assistant_prefix="ASSISTANT:",
        turn_sep=" ",
        assistant_end="</s>",
        answer_lead=" ",
    ),
    # LLaVA-Med v1.5 (Mistral-7B-Instruct): "[INST] question [/INST] answer </s>[INST] ..." with no
    # system text by default; a given system text goes Llama-2 style inside the first [INST].
    "mistral_instruct": ConversationTemplate(
        name="mistral_instruct",
        system="",
        user_prefix="[INST] ",
        assistant_prefix="[/INST]",
        turn_sep=" ",
        assistant_end=" </s>",
        answer_lead=" ",
        system_in_first_turn=("<<SYS>>\n", "\n<</SYS>>\n\n"),
    ),
    "plain": ConversationTemplate(
        name="plain",
        system="",
        user_prefix="",
        assistant_prefix="",
        turn_sep="",
        assistant_end="\n",
        drop_user_text=True,
    ),
}


def get_template(name: str) -> ConversationTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown conversation template '{name}'; choose one of {sorted(TEMPLATES)}") from None
