"""The Gradio web page: upload an image, circle a region, ask, read the streamed answer.

Uploads arrive as plain files and are checked by :func:`quilt_llava.images.open_image`
(file size, pixel count before decoding, image type) before anything displays them; the
server also refuses uploads over the byte limit. A region of interest is either typed
(``x0, y0, x1, y1`` as fractions of the image) or painted with the brush; the bounding box
of the paint becomes the red ellipse drawn on the image the model sees. Every browser tab
keeps its own image and history in a ``gr.State``; the model is shared and answers one
request at a time.

gradio is imported inside :func:`build_demo` and :func:`serve`, so importing this module
is cheap.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quilt_llava.console import Output
from quilt_llava.errors import ConfigError, InputError
from quilt_llava.images import ImageLimits, open_image
from quilt_llava.serve.session import (
    Box,
    ChatModel,
    ChatSession,
    DecodingOptions,
    LoadOptions,
    parse_region,
    prepare_model_image,
)

if TYPE_CHECKING:
    from PIL import Image

EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_EXAMPLES = 12
# Web uploads get tighter limits than local files: this is what a stranger can send.
WEB_LIMITS = ImageLimits(
    max_bytes=16 * 1024 * 1024, max_pixels=40_000_000, formats=("PNG", "JPEG", "WEBP", "TIFF", "BMP")
)


@dataclass
class WebOptions:
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    limits: ImageLimits = WEB_LIMITS
    examples_dir: Path | None = None
    title: str = "Quilt-LLaVA pathology chat"


@dataclass
class ServeOptions:
    load: LoadOptions
    web: WebOptions = field(default_factory=WebOptions)
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False


@dataclass
class WebState:
    """One browser tab's conversation: the validated upload and the turns so far."""

    image: "Image.Image | None" = None
    name: str = ""
    history: list[dict[str, str]] = field(default_factory=list)


def bundled_example() -> Path:
    """A small immunohistochemistry crop shipped with the package (from scikit-image's ihc.png)."""
    return Path(str(resources.files("quilt_llava.serve") / "assets" / "ihc_crop.png"))


def example_paths(examples_dir: Path | None) -> list[Path]:
    """PNG/JPEG files of ``examples_dir`` (sorted, at most 12), or the bundled example."""
    if examples_dir is None:
        return [bundled_example()]
    examples_dir = Path(examples_dir)
    if not examples_dir.is_dir():
        raise InputError(str(examples_dir), "examples directory not found")
    paths = sorted(p for p in examples_dir.iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES and p.is_file())
    if not paths:
        raise InputError(str(examples_dir), f"no example images ({', '.join(EXAMPLE_SUFFIXES)}) in this directory")
    return paths[:MAX_EXAMPLES]


def load_examples(paths: list[Path], limits: ImageLimits, out: Output | None = None) -> list[tuple[str, "Image.Image"]]:
    """Open the example images; a bad one is reported and skipped."""
    loaded = []
    for path in paths:
        try:
            loaded.append((path.name, open_image(path, limits)))
        except InputError as exc:
            if out is not None:
                out.warn(f"skipping example {exc}")
    return loaded


def region_from_layers(layers: list["Image.Image"] | None) -> Box | None:
    """Bounding box (fractions of the canvas) of everything painted on the editor's layers."""
    box = None
    size = None
    for layer in layers or []:
        if layer is None:
            continue
        alpha = layer.getchannel("A") if "A" in layer.getbands() else layer.convert("L")
        bbox = alpha.point(lambda v: 255 if v > 0 else 0).getbbox()
        if bbox is None:
            continue
        size = layer.size
        box = (
            bbox
            if box is None
            else (min(box[0], bbox[0]), min(box[1], bbox[1]), max(box[2], bbox[2]), max(box[3], bbox[3]))
        )
    if box is None or size is None:
        return None
    w, h = size
    x0, y0, x1, y1 = box  # pixel edges; x1, y1 exclusive
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None  # a click, not a region
    return (x0 / w, y0 / h, x1 / w, y1 / h)


def choose_region(typed: str, editor_value: dict[str, Any] | None) -> Box | None:
    """The typed region wins; otherwise the painted one; otherwise none. Bad typing raises ValueError."""
    region = parse_region(typed or "")
    if region is not None:
        return region
    if editor_value:
        return region_from_layers(editor_value.get("layers"))
    return None


class ChatHandlers:
    """The page's event handlers, kept apart from the layout so they are testable without a browser."""

    def __init__(self, model: ChatModel, options: WebOptions, examples: list[tuple[str, "Image.Image"]]) -> None:
        self.model = model
        self.options = options
        self.examples = examples

    def upload(self, file_path: str | None, state: WebState | None) -> tuple[WebState, Any, Any, list, str]:
        """A new file: validate it, show it in the editor, start a new conversation."""
        state = state or WebState()
        if not file_path:
            return state, _keep(), _keep(), _keep(), ""
        name = Path(file_path).name
        try:
            image = open_image(file_path, self.options.limits)
        except InputError as exc:
            # PIL's messages can quote the server-side temp path; show the file's name only.
            reason = exc.reason.replace(str(file_path), name)
            return state, _keep(), _keep(), _keep(), f"**Upload rejected** - {name}: {reason}"
        return self._use_image(image, name)

    def pick_example(self, index: int) -> tuple[WebState, Any, Any, list, str]:
        name, image = self.examples[index]
        return self._use_image(image.copy(), name)

    def _use_image(self, image: "Image.Image", name: str) -> tuple[WebState, Any, Any, list, str]:
        state = WebState(image=image, name=name)
        editor = {"background": image, "layers": [], "composite": image}
        status = f"Loaded **{name}** ({image.width}x{image.height}). Paint over a region or type one, then ask."
        return state, editor, prepare_model_image(image, None, self.model.processor), [], status

    def reset(self, state: WebState | None) -> tuple[WebState, list, str]:
        state = state or WebState()
        state.history = []
        return state, [], "New conversation."

    def ask(
        self,
        question: str,
        state: WebState | None,
        editor_value: dict[str, Any] | None,
        region_text: str,
        temperature: float,
        top_p: float,
        max_new_tokens: float,
    ) -> Iterator[tuple[list, WebState, str, Any, str]]:
        """Stream the answer into the chat; yields (chat, state, question box, preview, status)."""
        state = state or WebState()
        question = (question or "").strip()
        if not question:
            yield list(state.history), state, "", _keep(), "Type a question first."
            return
        try:
            region = choose_region(region_text, editor_value)
        except ValueError as exc:
            yield list(state.history), state, question, _keep(), f"**Region not understood** - {exc}"
            return
        decoding = DecodingOptions(
            max_new_tokens=int(max_new_tokens),
            temperature=float(temperature),
            top_p=float(top_p),
            repetition_penalty=self.options.decoding.repetition_penalty,
            seed=self.options.decoding.seed,
        )
        if problems := decoding.problems():
            yield list(state.history), state, question, _keep(), "**Decoding options** - " + "; ".join(problems)
            return
        session = ChatSession(self.model, decoding, image=state.image, region=region, history=list(state.history))
        preview = session.model_image()
        where = f"region {[round(v, 2) for v in region]} circled" if region else "no region"
        status = f"Answering ({where})..." if state.image is not None else "Answering without an image..."
        chat = [*state.history, {"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        yield list(chat), state, "", preview if preview is not None else _keep(), status
        answer = ""
        stream = session.stream(question)
        try:
            for piece in stream:
                answer += piece
                chat[-1] = {"role": "assistant", "content": answer}
                yield list(chat), state, "", _keep(), status
        except GeneratorExit:
            # Stop pressed or tab closed: end generation now and keep the cut answer, as shown.
            stream.close()
            state.history = session.history
            raise
        except ValueError as exc:
            yield list(state.history), state, question, _keep(), f"**Could not answer** - {exc}"
            return
        state.history = session.history
        done = (
            f"Done ({where})." if answer.strip() else f"Done ({where}); the model produced no text for this question."
        )
        if session.trimmed_turns:
            done += f" The oldest {session.trimmed_turns} exchange(s) were dropped to fit the model's context."
        yield list(state.history), state, "", _keep(), done


def _keep() -> Any:
    import gradio as gr

    return gr.skip()


def build_demo(model: ChatModel, options: WebOptions, out: Output | None = None) -> Any:
    """The Gradio ``Blocks`` page around a loaded model."""
    import gradio as gr

    examples = load_examples(example_paths(options.examples_dir), options.limits, out)
    handlers = ChatHandlers(model, options, examples)
    mb = options.limits.max_bytes / 2**20
    accepted = ", ".join(options.limits.formats)
    with gr.Blocks(title=options.title) as demo:
        state = gr.State(None)
        gr.Markdown(
            f"## {options.title}\n"
            "Upload a histopathology image, optionally mark a region of interest (paint over it, "
            "or type `x0, y0, x1, y1` as fractions of width and height; the model sees a red "
            "ellipse around it), then ask questions. Research use only, not for diagnosis."
        )
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(
                    label=f"Image ({accepted}; up to {mb:.0f} MiB, {options.limits.max_pixels / 1e6:.0f} MP)",
                    file_types=["image"],
                    type="filepath",
                    elem_id="upload",
                )
                editor = gr.ImageEditor(
                    label="Paint over the region of interest",
                    type="pil",
                    image_mode="RGBA",
                    sources=[],
                    transforms=[],
                    layers=False,
                    brush=gr.Brush(colors=["#ff0000"], color_mode="fixed"),
                    elem_id="editor",
                )
                region_box = gr.Textbox(
                    label="...or type a region: x0, y0, x1, y1 (0-1)",
                    placeholder="0.25, 0.25, 0.75, 0.75",
                    elem_id="region",
                )
                gallery = gr.Gallery(
                    value=[(img, name) for name, img in examples],
                    label="Examples (click one)",
                    columns=6,
                    height=140,
                    allow_preview=False,
                    object_fit="contain",
                    elem_id="examples",
                )
            with gr.Column(scale=1):
                chatbot = gr.Chatbot(label="Conversation", height=420, elem_id="chat")
                question = gr.Textbox(label="Question", placeholder="What tissue is this?", elem_id="question")
                with gr.Row():
                    send = gr.Button("Ask", variant="primary", elem_id="ask")
                    stop = gr.Button("Stop", elem_id="stop")
                    new = gr.Button("New conversation", elem_id="reset")
                status = gr.Markdown(elem_id="status")
                preview = gr.Image(label="What the model sees", interactive=False, height=240, elem_id="preview")
                with gr.Accordion("Decoding", open=False):
                    d = options.decoding
                    temperature = gr.Slider(0.0, 1.5, value=d.temperature, step=0.05, label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1.0, value=d.top_p, step=0.05, label="Top-p")
                    max_tokens = gr.Slider(
                        1, max(1024, d.max_new_tokens), value=d.max_new_tokens, step=1, label="Max new tokens"
                    )

        image_outputs = [state, editor, preview, chatbot, status]
        # Empty the file box after every attempt so the next image can be dropped straight in.
        upload.upload(handlers.upload, [upload, state], image_outputs).then(lambda: None, None, upload, queue=False)

        def _pick(evt: gr.SelectData) -> tuple:
            return handlers.pick_example(evt.index)

        gallery.select(_pick, None, image_outputs)
        ask_inputs = [question, state, editor, region_box, temperature, top_p, max_tokens]
        ask_outputs = [chatbot, state, question, preview, status]
        asked = [
            send.click(handlers.ask, ask_inputs, ask_outputs),
            question.submit(handlers.ask, ask_inputs, ask_outputs),
        ]
        stop.click(None, None, None, cancels=asked)
        new.click(handlers.reset, [state], [state, chatbot, status])
    return demo


def serve(options: ServeOptions, out: Output | None = None, block: bool = True) -> Any:
    """Load the model and serve the page; with ``block=False`` return the running ``Blocks``."""
    out = out or Output()
    options.web.decoding.validate()
    if not 0 <= options.port < 65536:
        raise ConfigError(f"port must be between 0 and 65535, got {options.port}")
    example_paths(options.web.examples_dir)  # a typo should fail before a large model loads
    # A medical demo should not phone home; the user's environment can still override.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    model = ChatModel.load(options.load)
    demo = build_demo(model, options.web, out)
    demo.queue(default_concurrency_limit=1)
    out.info(f"Serving {options.load.model_dir} at http://{options.host}:{options.port} (Ctrl-C to stop)")
    demo.launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        max_file_size=options.web.limits.max_bytes,
        prevent_thread_lock=not block,
        ssr_mode=False,
        show_error=True,
        quiet=out.quiet,
    )
    return demo
