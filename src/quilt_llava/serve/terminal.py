"""Multi-turn chat in the terminal, on top of :class:`~quilt_llava.serve.session.ChatSession`.

Lines starting with ``/`` are commands (``/image PATH``, ``/region x0,y0,x1,y1``,
``/reset``, ``/help``, ``/quit``); anything else is a question. Answers stream to
stdout; notices and errors go to stderr, so ``quilt-llava chat < questions.txt >
answers.txt`` keeps only the answers. With ``--json`` each turn is one JSON line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from quilt_llava.console import Output
from quilt_llava.errors import InputError
from quilt_llava.images import ImageLimits
from quilt_llava.serve.session import (
    Box,
    ChatModel,
    ChatSession,
    DecodingOptions,
    LoadOptions,
    load_image,
    parse_region,
)

HELP = """\
Type a question and press Enter. Commands:
  /image PATH|URL    chat about another image (starts a new conversation)
  /region x0,y0,x1,y1  circle a region in red (fractions of width, height); /region off removes it
  /reset             forget the conversation, keep the image
  /help              show this help
  /quit              leave (Ctrl-D works too)"""


@dataclass
class ChatOptions:
    load: LoadOptions
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    image: str | None = None
    region: Box | None = None
    limits: ImageLimits = field(default_factory=ImageLimits)


@dataclass
class TerminalChat:
    """Reads lines, runs commands or questions, writes streamed answers. Returns the error count."""

    session: ChatSession
    out: Output
    stdout: TextIO
    limits: ImageLimits = field(default_factory=ImageLimits)
    errors: int = 0

    def run(self, lines: Iterable[str]) -> int:
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    break
            else:
                self.answer(line)
        return self.errors

    def command(self, line: str) -> bool:
        """Run a slash command; False means leave."""
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self.out.info(HELP)
        elif name == "/reset":
            self.session.reset()
            self.out.info("Conversation cleared.")
        elif name == "/image":
            self.switch_image(arg)
        elif name == "/region":
            self.change_region(arg)
        else:
            self.fail(f"unknown command {name}; type /help for the list")
        return True

    def switch_image(self, source: str) -> None:
        if not source:
            self.fail("/image needs a path or URL")
            return
        try:
            image = load_image(source, self.limits)
        except InputError as exc:
            self.fail(str(exc))
            return
        self.session.set_image(image)
        self.out.info(f"Image {source} ({image.width}x{image.height}); new conversation.")

    def change_region(self, text: str) -> None:
        if self.session.image is None:
            self.fail("/region needs an image first (/image PATH)")
            return
        if text.lower() in ("off", "none", ""):
            self.session.set_region(None)
            self.out.info("Region removed.")
            return
        try:
            self.session.set_region(parse_region(text))
        except ValueError as exc:
            self.fail(str(exc))
            return
        self.out.info(f"Region {list(self.session.region or ())} circled in red.")

    def answer(self, question: str) -> None:
        trimmed = self.session.trimmed_turns
        try:
            if self.out.json:
                answer = self.session.ask(question)
                self.stdout.write(json.dumps({"question": question, "answer": answer}, ensure_ascii=False) + "\n")
            else:
                for piece in self.session.stream(question):
                    self.stdout.write(piece)
                    self.stdout.flush()
                self.stdout.write("\n")
            self.stdout.flush()
            if self.session.trimmed_turns > trimmed:
                dropped = self.session.trimmed_turns - trimmed
                self.out.info(f"(dropped the oldest {dropped} exchange(s) to fit the model's context)")
        except ValueError as exc:
            self.fail(str(exc))
        except KeyboardInterrupt:
            # Ctrl-C stops this answer, not the chat; the cut answer stays in the history.
            self.stdout.write("\n")
            self.out.info("(stopped)")

    def fail(self, message: str) -> None:
        self.errors += 1
        self.out.error(message)


def interactive_lines(prompt: str = "you> ", stream: TextIO | None = None) -> Iterator[str]:
    """Lines from a terminal (with line editing) or from piped/scripted input."""
    stream = stream or sys.stdin
    if stream.isatty():
        while True:
            try:
                yield input(prompt)
            except EOFError:
                return
    else:
        yield from stream


def run_chat(
    options: ChatOptions,
    lines: Iterable[str] | None = None,
    out: Output | None = None,
    stdout: TextIO | None = None,
    load: Callable[[LoadOptions], ChatModel] = ChatModel.load,
) -> int:
    """Load the model, open the image and chat until the input ends. Returns the error count."""
    out = out or Output()
    options.decoding.validate()
    session = ChatSession(load(options.load), options.decoding)
    chat = TerminalChat(session, out, stdout or sys.stdout, options.limits)
    if options.image:
        chat.switch_image(options.image)
        if session.image is None:
            return chat.errors
        if options.region is not None:
            session.set_region(options.region)
    mode = "greedy" if options.decoding.greedy else f"sampling at temperature {options.decoding.temperature}"
    out.info(f"Model {Path(options.load.model_dir)} on {session.model.device}, {mode}. /help for commands.")
    return chat.run(lines if lines is not None else interactive_lines())
