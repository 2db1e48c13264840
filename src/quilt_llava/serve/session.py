"""The generation core shared by the terminal chat and the web page.

- :class:`ChatModel` is a loaded ``LlavaForConditionalGeneration`` with its processor and
  conversation template. It streams one answer at a time (a lock serialises callers, so
  one model can serve many web users without doubling memory).
- :class:`ChatSession` is one conversation: the image, an optional region of interest
  (drawn as a red ellipse on the image the model sees, as in red-circle prompting), the
  message history and the decoding options. Both front ends only call
  :meth:`ChatSession.stream`, so the chat logic is tested once.

torch and transformers are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quilt_llava.errors import ConfigError, InputError, MissingDependencyError
from quilt_llava.images import ImageLimits, draw_region_ellipse, open_image
from quilt_llava.model.conversation import IMAGE_TOKEN, ConversationTemplate, get_template
from quilt_llava.model.precision import DTYPES as MODEL_DTYPES

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
DTYPES = ("auto", *MODEL_DTYPES)


@dataclass
class DecodingOptions:
    """How answers are decoded. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None

    def problems(self) -> list[str]:
        out = []
        if self.max_new_tokens < 1:
            out.append(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            out.append(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            out.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            out.append(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        return out

    def validate(self) -> DecodingOptions:
        if problems := self.problems():
            raise ConfigError(problems, source="decoding options")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=None)
        return kwargs


@dataclass
class LoadOptions:
    """Which checkpoint to load and how. ``template`` None reads it from the checkpoint."""

    model_dir: Path
    device: str = "auto"
    dtype: str = "auto"
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    template: str | None = None

    def problems(self) -> list[str]:
        out = []
        if not Path(self.model_dir).is_dir():
            out.append(f"model directory {self.model_dir} does not exist")
        elif not (Path(self.model_dir) / "config.json").is_file():
            out.append(f"{self.model_dir} has no config.json; it is not a saved model directory")
        if self.dtype not in DTYPES:
            out.append(f"dtype '{self.dtype}' is not one of {', '.join(DTYPES)}")
        if self.load_in_4bit and self.load_in_8bit:
            out.append("choose at most one of 4-bit and 8-bit loading")
        if self.template is not None:
            try:
                get_template(self.template)
            except ValueError as exc:
                out.append(str(exc))
        return out


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class ChatModel:
    """A loaded LLaVA checkpoint that streams answers to rendered prompts."""

    def __init__(self, model: Any, processor: Any, template: ConversationTemplate, device: str) -> None:
        self.model = model.eval()
        self.processor = processor
        self.template = template
        self.device = device
        self._lock = threading.Lock()

    @classmethod
    def load(cls, options: LoadOptions) -> ChatModel:
        if problems := options.problems():
            raise ConfigError(problems, source="model loading options")
        if options.load_in_4bit or options.load_in_8bit:
            import importlib.util

            if importlib.util.find_spec("bitsandbytes") is None:
                raise MissingDependencyError("bitsandbytes", "quant")
        from quilt_llava.model import load_model_and_processor, resolve_conv_template

        device = resolve_device(options.device)
        model, processor = load_model_and_processor(
            options.model_dir,
            dtype=None if options.dtype == "auto" else options.dtype,
            device=device,
            load_in_4bit=options.load_in_4bit,
            load_in_8bit=options.load_in_8bit,
        )
        template_name = resolve_conv_template(options.template, model_dir=options.model_dir)
        return cls(model, processor, get_template(template_name), device)

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def stop_strings(self) -> list[str]:
        """Text that ends an answer: the template's turn end and the next user prefix."""
        t = self.template
        stops = {t.assistant_end.strip() or t.assistant_end, t.user_prefix.strip()}
        return sorted(s for s in stops if s)

    def encode(self, prompt: str, image: Image.Image | None) -> dict[str, Any]:
        """Model inputs for a rendered prompt, tokenized as training and evaluation do
        (:func:`quilt_llava.model.prompt.encode_prompts`); ``image`` is already prepared."""
        import torch

        from quilt_llava.model.prompt import encode_prompts

        batch = encode_prompts(self.processor, [prompt], [image] if image is not None else None)
        out: dict[str, Any] = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.model.dtype)
            out[key] = value
        return out

    def context_limit(self) -> int | None:
        """Longest sequence (prompt + answer) the language model takes, if the config says."""
        text_config = getattr(self.model.config, "text_config", self.model.config)
        limit = getattr(text_config, "max_position_embeddings", None)
        return int(limit) if limit else None

    def stream(
        self,
        prompt: str,
        image: Image.Image | None,
        decoding: DecodingOptions,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield the answer to ``prompt`` piece by piece, stopping at the template's stop strings."""
        return self.stream_inputs(self.encode(prompt, image), decoding, cancel)

    def stream_inputs(
        self,
        inputs: dict[str, Any],
        decoding: DecodingOptions,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Like :meth:`stream`, for inputs already built by :meth:`encode`.

        ``generate`` runs in a thread feeding a ``TextIteratorStreamer``; closing the
        iterator early (a web client leaving, Ctrl-C) or setting ``cancel`` stops it.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        decoding.validate()
        cancel = cancel or threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
                # input_ids: (batch, seq); one flag per row
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        kwargs = dict(
            **inputs,
            **decoding.generate_kwargs(),
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_Cancelled()]),
            pad_token_id=pad_id,
        )
        failure: list[BaseException] = []

        def _run() -> None:
            with self._lock, torch.inference_mode():
                try:
                    if decoding.seed is not None:
                        torch.manual_seed(decoding.seed)
                    self.model.generate(**kwargs)
                except Exception as exc:  # re-raised in the consuming thread below
                    failure.append(exc)
                    streamer.end()

        exhausted = False

        def _pieces() -> Iterator[str]:
            nonlocal exhausted
            yield from streamer
            exhausted = True

        worker = threading.Thread(target=_run, name="quilt-llava-generate", daemon=True)
        worker.start()
        try:
            yield from _cut_at_stops(_pieces(), self.stop_strings(), cancel)
        finally:
            cancel.set()
            if not exhausted:
                # Left early: read up to the streamer's end signal so nothing is left waiting.
                for _ in streamer:
                    pass
            worker.join()
        if failure:
            raise failure[0]


def _cut_at_stops(pieces: Iterator[str], stops: list[str], cancel: threading.Event) -> Iterator[str]:
    """Pass text through until a stop string appears; hold back a possible stop prefix."""
    text = ""
    sent = 0
    started = False
    for piece in pieces:
        text += piece
        if not started:
            # Answers follow "ASSISTANT:" with a space; do not stream leading blanks.
            stripped = text.lstrip()
            sent = len(text) - len(stripped)
            started = bool(stripped)
        hits = [i for i in (text.find(s, sent) for s in stops) if i >= 0]
        if hits:
            end = min(hits)
            if end > sent:
                yield text[sent:end].rstrip()
            cancel.set()
            return
        hold = max((_partial_suffix(text, s) for s in stops), default=0)
        safe = len(text) - hold
        if started and safe > sent:
            yield text[sent:safe]
            sent = safe
    if started and len(text) > sent:
        yield text[sent:].rstrip()


def _partial_suffix(text: str, stop: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``stop``."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


def parse_region(text: str) -> Box | None:
    """Parse a typed region ``"x0, y0, x1, y1"`` (fractions of width and height); blank means none."""
    cleaned = text.strip().strip("[]()")
    if not cleaned:
        return None
    parts = [p for p in cleaned.replace(",", " ").split() if p]
    if len(parts) != 4:
        raise ValueError(f"a region is four numbers x0, y0, x1, y1 between 0 and 1; got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"a region is four numbers x0, y0, x1, y1 between 0 and 1; got {text!r}") from None
    if any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"region values must lie between 0 and 1 (fractions of the image); got {text!r}")
    x0, y0, x1, y1 = values
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        raise ValueError(f"region {text!r} has no area")
    return (x0, y0, x1, y1)


def prepare_model_image(image: Image.Image, region: Box | None, processor: Any) -> Image.Image:
    """The picture the model sees: the red ellipse (if any), then padding to a square with ``processor``'s
    mean colour."""
    from quilt_llava.model import prepare_image

    if region is not None:
        image = draw_region_ellipse(image, region)
    return prepare_image(image, processor)


def load_image(source: str, limits: ImageLimits | None = None, timeout: float = 30.0) -> Image.Image:
    """Open a local path or an http(s) URL with the same size, pixel and type limits."""
    limits = limits or ImageLimits()
    if source.startswith(("http://", "https://")):
        return _fetch_image(source, limits, timeout)
    return open_image(Path(source).expanduser(), limits)


def _fetch_image(url: str, limits: ImageLimits, timeout: float) -> Image.Image:
    import tempfile

    import httpx

    with tempfile.TemporaryDirectory(prefix="quilt-llava-") as tmp:
        path = Path(tmp) / "download"
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as response:
                response.raise_for_status()
                size = 0
                with path.open("wb") as fh:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > limits.max_bytes:
                            raise InputError(
                                url, f"download is larger than the {limits.max_bytes / 2**20:.1f} MiB limit"
                            )
                        fh.write(chunk)
        except httpx.HTTPError as exc:
            raise InputError(url, f"could not download the image ({exc})") from None
        try:
            return open_image(path, limits)
        except InputError as exc:
            raise InputError(url, exc.reason) from None


@dataclass
class ChatSession:
    """One conversation with one image. Changing the image starts a new conversation."""

    model: ChatModel
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    image: Image.Image | None = None
    region: Box | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    trimmed_turns: int = 0  # oldest exchanges dropped so far to fit the model's context

    def set_image(self, image: Image.Image | None, region: Box | None = None) -> None:
        self.image = image.convert("RGB") if image is not None else None
        self.region = region
        self.reset()

    def set_region(self, region: Box | None) -> None:
        """Change the region of interest; the whole conversation is then about the new picture."""
        self.region = region

    def reset(self) -> None:
        self.history = []
        self.trimmed_turns = 0

    def model_image(self) -> Image.Image | None:
        return prepare_model_image(self.image, self.region, self.model.processor) if self.image is not None else None

    def messages_for(self, question: str) -> list[dict[str, str]]:
        """The conversation so far plus ``question``; the image token leads the first user turn."""
        messages = [*self.history, {"role": "user", "content": question}]
        if self.image is not None:
            first = messages[0]
            if IMAGE_TOKEN not in first["content"]:
                messages[0] = {"role": "user", "content": f"{IMAGE_TOKEN}\n{first['content']}"}
        return messages

    def prompt_for(self, question: str) -> str:
        return self.model.template.render(self.messages_for(question), add_generation_prompt=True)

    def stream(self, question: str, cancel: threading.Event | None = None) -> Iterator[str]:
        """Stream the answer to ``question``; the turn joins the history when the stream ends."""
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        if IMAGE_TOKEN in question:
            raise ValueError(f"the question must not contain {IMAGE_TOKEN}; the image is added for you")
        inputs = self.fit_context(question)
        answer: list[str] = []
        failed = False
        try:
            for piece in self.model.stream_inputs(inputs, self.decoding, cancel):
                answer.append(piece)
                yield piece
        except Exception:
            failed = True
            raise
        finally:
            # A cut-short answer (client gone, Ctrl-C) is still what the user saw: keep it.
            if not failed:
                self.history += [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": "".join(answer).strip()},
                ]

    def fit_context(self, question: str) -> dict[str, Any]:
        """Encode the prompt, dropping the oldest exchanges until prompt + answer fit the context."""
        image = self.model_image()
        limit = self.model.context_limit()
        while True:
            inputs = self.model.encode(self.prompt_for(question), image)
            length = int(inputs["input_ids"].shape[1])
            if limit is None or length + self.decoding.max_new_tokens <= limit:
                return inputs
            if not self.history:
                raise ValueError(
                    f"the prompt is {length} tokens and up to {self.decoding.max_new_tokens} new tokens are "
                    f"allowed, but the model takes {limit} in all; ask a shorter question or lower max_new_tokens"
                )
            # The image token moves to the new first turn (messages_for adds it there).
            self.history = self.history[2:]
            self.trimmed_turns += 1
            log.info("dropped the oldest exchange to fit the %d-token context", limit)

    def ask(self, question: str) -> str:
        return "".join(self.stream(question)).strip()
