"""From a video's voice to a corrected transcript file: what ``narratives extract
--asr-model`` and ``narratives correct`` run.

Files, for a video with id ``ID`` under ``OUT/transcripts/``:

- ``ID.asr.json``: the raw recognition (Whisper JSON with word timings and an ``asr``
  block); kept, so a re-run with the same video and settings does not transcribe again;
- ``ID.json``: the transcript after vocabulary correction (what extraction reads);
- ``ID.changes.jsonl``: one line per change, with before/after, word range and times (and,
  when the audio judged the changes, its scores; edits it refused are logged as rejected).

The vocabulary pass is judged by the audio (:mod:`quilt_llava.narratives.acoustic_check`)
when the recording and a recogniser are at hand (``extract --asr-model``, or ``correct
--audio FILE --asr-model DIR``); a bare transcript is corrected on its text alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quilt_llava.files import read_json, write_json, write_jsonl
from quilt_llava.narratives.acoustic_check import (
    ACOUSTIC_ALTERNATIVES,
    ACOUSTIC_CHECK,
    ACOUSTIC_PHONEMES,
    ACOUSTIC_SPANS,
)
from quilt_llava.narratives.correct import CorrectionConfig, Edit, correct_with_vocabulary
from quilt_llava.narratives.transcript import Transcript, read_transcript
from quilt_llava.narratives.vocabulary import Vocabulary


@dataclass
class CorrectOptions:
    """What ``narratives correct`` was asked to do."""

    transcript: Path
    out: Path
    vocabulary: list[Path] = field(default_factory=list)
    builtin_vocabulary: bool = True
    vocabulary_pass: bool = True
    llm: Any = None  # an LLMConfig: run the LLM pass after the vocabulary pass
    # The acoustic check of the vocabulary pass: the recording the transcript was made from and
    # the recogniser (a loaded faster-whisper model, or a folder or name to load).
    acoustic_check: bool = ACOUSTIC_CHECK
    phonemes: bool = ACOUSTIC_PHONEMES  # also espeak-ng sound-alike candidates, judged by the audio (PHONEME_BAR)
    alternatives: bool = ACOUSTIC_ALTERNATIVES  # also terms of the recogniser's other hypotheses (asr_alternatives)
    spans: bool = ACOUSTIC_SPANS  # also re-joined and re-cut runs of heard words (correct_spans)
    audio: Path | None = None
    asr_model: str | None = None
    model: Any = None

    @property
    def changes_path(self) -> Path:
        return changes_path(self.out)


def changes_path(out: Path) -> Path:
    name = out.name[:-5] if out.name.endswith(".json") else out.name
    return out.with_name(name + ".changes.jsonl")


def correct_transcript(
    transcript: Transcript, options: CorrectOptions, output: Any = None
) -> tuple[Transcript, list[dict[str, Any]], dict[str, Any] | None]:
    """Vocabulary pass, then the LLM pass if configured: (the result, the change log rows, what the
    acoustic check did, or None when the correction was text-only)."""
    vocab = Vocabulary.load(options.vocabulary, builtin=options.builtin_vocabulary)
    log: list[dict[str, Any]] = []
    heard = None
    current = transcript
    if options.vocabulary_pass:
        check = _acoustic_check(options, vocab, output)
        if check is None:
            fixed, edits = correct_with_vocabulary(current, vocab, CorrectionConfig())
            log += _rows(current, edits)
        else:
            from quilt_llava.narratives.acoustic_check import correct_heard
            from quilt_llava.narratives.asr import read_audio

            audio, _bad = read_audio(options.audio)  # type: ignore[arg-type]
            fixed, edits, refused = correct_heard(current, vocab, audio, check, CorrectionConfig())
            log += _rows(current, edits) + refused
            heard = {
                "changes": len(edits),
                "refused": len(refused),
                "clips": check.windows,
                "texts": check.texts,
                "seconds": round(check.seconds, 2),
                # espeak-ng sound-alike candidates (narratives.phonemes): off where it is not installed
                "phoneme_candidates": check.phonemes is not None,
                "phoneme_seconds": round(check.phoneme_seconds, 2),
                "alternative_decodes": check.decodes,  # utterances decoded again (asr_alternatives)
                "alternative_seconds": round(check.alternative_seconds, 2),
                "config": asdict(check.config),
            }
            _say(
                output,
                f"  acoustic check: {len(edits)} change(s) heard in the audio, {len(refused)} refused "
                f"({check.windows} clip(s), {check.texts} text(s) scored in {check.seconds:.1f} s; "
                f"{_alternatives_note(check)}; {_phoneme_note(check)})",
            )
        current = fixed
    if options.llm is not None:
        from quilt_llava.narratives.correct_llm import correct_with_llm

        fixed, edits, rejected = correct_with_llm(current, vocab, options.llm, output=output)
        log += _rows(current, edits) + [r.to_dict() for r in rejected]
        current = fixed
    return current, log, heard


def _acoustic_check(options: CorrectOptions, vocab: Vocabulary, output: Any) -> Any:
    """The :class:`AcousticCheck` to judge the vocabulary pass with, or None (text only, and why)."""
    if not options.acoustic_check:
        return None
    missing = []
    if options.audio is None:
        missing.append("no recording (--audio)")
    if options.model is None and not options.asr_model:
        missing.append("no recogniser (--asr-model)")
    if missing:
        _say(output, f"  text-only term correction: {' and '.join(missing)} for the acoustic check")
        return None
    from quilt_llava.narratives.acoustic_check import PHONEME_BAR, AcousticCheck, AcousticConfig
    from quilt_llava.narratives.asr import AsrConfig, load_model
    from quilt_llava.narratives.asr_alternatives import AlternativesConfig
    from quilt_llava.narratives.correct_spans import SpanConfig

    model = options.model if options.model is not None else load_model(AsrConfig(model=options.asr_model or ""))
    config = AcousticConfig(
        phoneme_min=PHONEME_BAR if options.phonemes else None,
        alternatives=AlternativesConfig() if options.alternatives else None,
        spans=SpanConfig() if options.spans else None,
    )
    return AcousticCheck(model, vocab, config)


def _rows(transcript: Transcript, edits: list[Edit]) -> list[dict[str, Any]]:
    return [e.to_dict(transcript) for e in edits]


def correct_file(options: CorrectOptions, output: Any = None) -> dict[str, Any]:
    """Correct ``options.transcript`` into ``options.out`` (+ the change log); returns a summary."""
    transcript = read_transcript(options.transcript)
    fixed, log, heard = correct_transcript(transcript, options, output)
    data = fixed.to_whisper_json()
    try:
        source = read_json(options.transcript) if options.transcript.suffix.lower() == ".json" else {}
    except ValueError:
        source = {}
    if isinstance(source, dict) and "asr" in source:
        data["asr"] = source["asr"]
    changes = [r for r in log if not r.get("rejected")]
    data["correction"] = {
        "source": str(options.transcript),
        "changes": len(changes),
        "builtin_vocabulary": options.builtin_vocabulary,
        "vocabulary_files": [str(p) for p in options.vocabulary],
        "llm": getattr(options.llm, "model", None),
        "acoustic_check": heard,  # None: the vocabulary pass was text-only
    }
    write_json(options.out, data)
    write_jsonl(options.changes_path, log)
    return {
        "out": str(options.out),
        "changes": len(changes),
        "rejected": len(log) - len(changes),
        "log": str(options.changes_path),
    }


def transcribe_missing(
    videos: list[Path],
    transcripts: dict[Path, Path | None],
    out_dir: Path,
    asr: Any,
    correct: bool = True,
    vocabulary: list[Path] | None = None,
    output: Any = None,
    acoustic_check: bool = ACOUSTIC_CHECK,
    phonemes: bool = ACOUSTIC_PHONEMES,
    alternatives: bool = ACOUSTIC_ALTERNATIVES,
    spans: bool = ACOUSTIC_SPANS,
) -> tuple[dict[Path, Path | None], dict[Path, str]]:
    """ASR (+ vocabulary correction) for the videos without a transcript.

    Returns (video -> transcript path, video -> error text); a video that failed (no
    audio track, corrupt audio) is left out of the first mapping so the caller reports
    it and goes on with the rest. The model is loaded once, and only if some video needs it.
    """
    from quilt_llava.errors import QuiltError
    from quilt_llava.narratives.asr import cached_transcript, load_model, transcribe_to_file
    from quilt_llava.narratives.batch import find_transcript
    from quilt_llava.narratives.rows import video_id_for

    result: dict[Path, Path | None] = {}
    failed: dict[Path, str] = {}
    model = None
    terms = None  # the second pass listens for the same terms the correction uses
    if asr.second_pass:
        from quilt_llava.narratives.vocabulary import Vocabulary

        try:
            terms = Vocabulary.load(list(vocabulary or []))
        except QuiltError as exc:
            return result, {video: str(exc) for video in videos}
    for video in videos:
        existing = transcripts[video] if video in transcripts else find_transcript(video)
        if existing is not None:
            result[video] = existing
            continue
        folder = out_dir / "transcripts"
        raw = folder / f"{video_id_for(video)}.asr.json"
        try:
            if cached_transcript(video, raw, asr, terms):
                _say(output, f"{video}: speech already recognised ({raw})")
            else:
                _say(output, f"{video}: recognising speech with {asr.model}")
                model = model or load_model(asr)
                transcribe_to_file(video, raw, asr, model, terms)
                meta = read_json(raw)["asr"]
                _say(
                    output,
                    f"  {meta['audio_seconds']:.0f} s of audio in {meta['seconds']:.1f} s "
                    f"({meta['realtime_factor']:.2f} x real time)",
                )
            if correct:
                fixed = folder / f"{video_id_for(video)}.json"
                if acoustic_check:
                    model = model or load_model(asr)
                options = CorrectOptions(
                    transcript=raw,
                    out=fixed,
                    vocabulary=list(vocabulary or []),
                    acoustic_check=acoustic_check,
                    phonemes=phonemes,
                    alternatives=alternatives,
                    spans=spans,
                    audio=video,
                    model=model,
                )
                summary = correct_file(options, output)
                _say(output, f"  {summary['changes']} term correction(s), logged in {summary['log']}")
                result[video] = fixed
            else:
                result[video] = raw
        except QuiltError as exc:
            failed[video] = str(exc)
    return result, failed


def _say(output: Any, text: str) -> None:
    if output is not None:
        output.info(text)


def _alternatives_note(check: Any) -> str:
    if check.config.alternatives is None:
        return "the recogniser's other hypotheses off"
    return f"{check.decodes} utterance(s) decoded again for other hypotheses in {check.alternative_seconds:.1f} s"


def _phoneme_note(check: Any) -> str:
    if check.phonemes is not None:
        return f"phoneme candidates from espeak-ng in {check.phoneme_seconds:.1f} s"
    if check.config.phoneme_min is None:
        return "phoneme candidates off"
    return "no phoneme candidates: espeak-ng not found"
