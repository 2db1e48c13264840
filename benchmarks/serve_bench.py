"""Serve benchmark: what streaming costs, and how soon the first words appear.

Both front ends (terminal and web) answer through ``ChatSession.stream``: ``generate``
in a worker thread feeding a ``TextIteratorStreamer``, a stopping criterion that lets
the reader cancel, and a filter that holds back text that may be the start of a stop
string. This script measures, on the same model, prompt and image, in the same run:

- baseline: one plain ``model.generate`` call (greedy, no streamer, no thread) on the
  exact inputs the session builds, timed until the whole answer exists;
- streamed: ``ChatSession.stream`` on the same question, timed to its first piece
  (what the user waits for before anything moves) and to its last piece.

Figures (medians over ``--repeats``): streamed total / baseline total (the overhead
of streaming; 1.00 = free), first piece / baseline total (the share of the wait a
streaming user no longer sits through), and whether both produced the same text.
Every answer is forced to ``--max-new-tokens`` tokens (``min_new_tokens``) so both
sides do the same work whatever a random model generates.

Run: ``.venv/bin/python benchmarks/serve_bench.py [--model DIR] [--device cpu|cuda]
[--max-new-tokens 64] [--repeats 5] [--threads 1] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

QUESTION = "Describe the tissue inside the red circle and the staining pattern you see."
REGION = (0.3, 0.3, 0.7, 0.7)


def load(args: argparse.Namespace, tmp: Path) -> Any:
    from quilt_llava.serve.session import ChatModel, LoadOptions

    model_dir = args.model
    if model_dir is None:
        from quilt_llava.model import build_model_and_processor

        model, processor = build_model_and_processor("tiny", seed=0)
        model_dir = tmp / "tiny"
        model.save_pretrained(model_dir)
        processor.save_pretrained(model_dir)
    return ChatModel.load(LoadOptions(Path(model_dir), device=args.device, dtype=args.dtype))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from PIL import Image

    from quilt_llava.serve.session import ChatSession, DecodingOptions
    from quilt_llava.serve.web import bundled_example

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        chat_model = load(args, Path(tmp))
    n = args.max_new_tokens
    chat_model_kwargs = DecodingOptions(max_new_tokens=n).generate_kwargs()
    session = ChatSession(chat_model, DecodingOptions(max_new_tokens=n))
    session.set_image(Image.open(bundled_example()), region=REGION)
    inputs = chat_model.encode(session.prompt_for(QUESTION), session.model_image())
    tok = chat_model.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def baseline() -> tuple[float, str]:
        start = time.perf_counter()
        with torch.inference_mode():
            out = chat_model.model.generate(**inputs, **chat_model_kwargs, min_new_tokens=n, pad_token_id=pad_id)
        elapsed = time.perf_counter() - start
        # out: (1, prompt + new tokens)
        return elapsed, tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()

    class ForcedLength(DecodingOptions):
        """The session's decoding with the answer length fixed, as in the baseline."""

        def generate_kwargs(self) -> dict[str, Any]:
            return {**super().generate_kwargs(), "min_new_tokens": self.max_new_tokens}

    def streamed() -> tuple[float, float, str]:
        fresh = replace(session, decoding=ForcedLength(max_new_tokens=n), history=[])
        start = time.perf_counter()
        first = None
        pieces = []
        for piece in fresh.stream(QUESTION):
            if first is None:
                first = time.perf_counter() - start
            pieces.append(piece)
        total = time.perf_counter() - start
        return first if first is not None else total, total, "".join(pieces).strip()

    baseline()  # warm-up (allocator, kernels)
    streamed()
    base_times, stream_first, stream_total = [], [], []
    same = True
    for _ in range(args.repeats):
        t, base_text = baseline()
        base_times.append(t)
        first, total, text = streamed()
        stream_first.append(first)
        stream_total.append(total)
        same = same and text == base_text
    b, f, s = statistics.median(base_times), statistics.median(stream_first), statistics.median(stream_total)
    return {
        "model": str(args.model or "tiny preset (random weights)"),
        "device": chat_model.device,
        "threads": args.threads,
        "new_tokens": n,
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "repeats": args.repeats,
        "baseline_generate_s": round(b, 4),
        "streamed_total_s": round(s, 4),
        "streamed_first_piece_s": round(f, 4),
        "streaming_overhead_ratio": round(s / b, 3),
        "first_piece_share_of_wait": round(f / b, 3),
        "same_text": same,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="A saved checkpoint; default: the tiny preset, built now.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"model {result['model']} on {result['device']} ({result['threads']} thread(s)), "
            f"prompt {result['prompt_tokens']} tokens, {result['new_tokens']} new tokens, median of {result['repeats']}"
        )
        print(f"  generate, no streaming (baseline): {result['baseline_generate_s']:.3f} s")
        print(
            f"  ChatSession.stream, whole answer : {result['streamed_total_s']:.3f} s  -> "
            f"x{result['streaming_overhead_ratio']:.3f} of baseline"
        )
        print(
            f"  ChatSession.stream, first piece  : {result['streamed_first_piece_s']:.3f} s  -> "
            f"{100 * result['first_piece_share_of_wait']:.1f}% of the baseline wait"
        )
        print(f"  same text: {'yes' if result['same_text'] else 'NO'}")
    return 0 if result["same_text"] else 1


if __name__ == "__main__":
    sys.exit(main())
