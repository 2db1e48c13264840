"""Stage A: localized narratives (stable segments, cursor traces, grounded captions) from narrated slide-viewing videos.

Public API (imported lazily so ``quilt_llava.narratives.cli`` stays light)::

    from quilt_llava.narratives import ExtractConfig, extract_video, extract_folder
    rows = extract_video(video, transcript, out_dir, ExtractConfig())

    from quilt_llava.narratives import AsrConfig, Vocabulary, correct_with_vocabulary, transcribe
    heard = transcribe("talk.mp4", AsrConfig(model="tiny.en")).transcript
    fixed, edits = correct_with_vocabulary(heard, Vocabulary.load(["my_terms.txt"]))
"""

from __future__ import annotations

from quilt_llava.lazy import lazy_exports

_EXPORTS = {
    "ExtractConfig": "quilt_llava.narratives.pipeline",
    "FolderResult": "quilt_llava.narratives.batch",
    "extract_video": "quilt_llava.narratives.pipeline",
    "extract_folder": "quilt_llava.narratives.batch",
    "analyse": "quilt_llava.narratives.pipeline",
    "read_transcript": "quilt_llava.narratives.transcript",
    "AsrConfig": "quilt_llava.narratives.asr",
    "transcribe": "quilt_llava.narratives.asr",
    "Vocabulary": "quilt_llava.narratives.vocabulary",
    "correct_with_vocabulary": "quilt_llava.narratives.correct",
    "correct_with_llm": "quilt_llava.narratives.correct_llm",
    "grounded_caption": "quilt_llava.narratives.caption",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
