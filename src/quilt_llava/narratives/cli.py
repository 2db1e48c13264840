"""CLI for the narratives stage. Heavy imports live inside command bodies.

    quilt-llava narratives extract VIDEO --transcript FILE --out DIR
    quilt-llava narratives extract VIDEOS_DIR --out DIR --workers 2
    quilt-llava narratives show DIR
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer


@dataclass
class ExtractOptions:
    """What ``narratives extract`` was asked to do, parsed apart from running it."""

    input: Path
    out: Path
    transcript: Path | None = None
    asr_model: Path | None = None
    workers: int = 1
    sample_fps: float | None = None
    min_segment_s: float = 3.0
    clustering: str = "spatiotemporal"
    keep_webcam: bool = False


def run_extract(options: ExtractOptions, out) -> int:
    """Run an extraction; returns the exit code (0 when every video succeeded)."""
    from quilt_llava.errors import ConfigError, InputError
    from quilt_llava.narratives.batch import extract_folder, list_videos
    from quilt_llava.narratives.pipeline import ExtractConfig

    config = ExtractConfig(sample_fps=options.sample_fps, min_segment_s=options.min_segment_s,
                           clustering=options.clustering, hide_webcam=not options.keep_webcam)
    config.validate()
    if not options.input.exists():
        raise InputError(str(options.input), "no such video file or folder")
    transcripts = None
    if options.input.is_dir():
        if options.transcript is not None:
            raise ConfigError("--transcript names one transcript; for a folder put <video stem>.json/.srt/.vtt "
                              "(or .transcript.json) next to each video")
        videos = list_videos(options.input)
        if not videos:
            raise InputError(str(options.input), "the folder holds no video files")
    else:
        videos = [options.input]
        transcripts = {options.input: options.transcript}
    if options.asr_model is not None:
        transcripts = _transcribe_missing(videos, transcripts, options, out)
    out.info(f"extracting {len(videos)} video(s) into {options.out}")

    def report(video: str, n: int | None, error: str | None) -> None:
        if error is not None:
            out.error(error)
        else:
            out.info(f"{video}: {n} segment(s)")

    result = extract_folder(videos, options.out, config, workers=options.workers, transcripts=transcripts, on_done=report)
    summary = {"out": str(options.out), "done": result.done, "skipped": result.skipped,
               "failed": result.failed, "rows": result.rows}
    human = (f"{len(result.done)} extracted, {len(result.skipped)} already done, {len(result.failed)} failed; "
             f"{result.rows} rows in {options.out / 'narratives.jsonl'}")
    out.result(summary, human=human)
    return 0 if result.ok else 1


def _transcribe_missing(videos, transcripts, options: ExtractOptions, out):
    """ASR for videos without a transcript, written as Whisper JSON next to the output."""
    from quilt_llava.files import write_json
    from quilt_llava.narratives.batch import find_transcript
    from quilt_llava.narratives.rows import video_id_for
    from quilt_llava.narratives.transcript import AsrConfig, transcribe

    result = dict(transcripts or {})
    for video in videos:
        existing = result.get(video) if video in result else find_transcript(video)
        if existing is not None:
            result[video] = existing
            continue
        out.info(f"transcribing {video} with {options.asr_model}")
        transcript = transcribe(video, AsrConfig(model_dir=options.asr_model))
        path = options.out / "transcripts" / f"{video_id_for(video)}.json"
        write_json(path, {"segments": [{"start": u.start, "end": u.end, "text": u.text,
                                        "words": [{"start": w.start, "end": w.end, "word": w.text} for w in u.words]}
                                       for u in transcript.utterances]})
        result[video] = path
    return result


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="localized narratives (stable segments, cursor traces, grounded captions) from narrated slide-viewing videos.", no_args_is_help=True)
    app.add_typer(sub, name="narratives")

    @sub.command("extract")
    def extract(
        input: Path = typer.Argument(..., help="A video file, or a folder of videos (with sidecar transcripts)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder: <video_id>/frames/*.png and narratives.jsonl."),
        transcript: Path | None = typer.Option(None, "--transcript", "-t",
                                               help="Transcript of a single video (.srt, .vtt, Whisper .json, or a JSON list of {start, end, text})."),
        asr_model: Path | None = typer.Option(None, "--asr-model", help="Local faster-whisper model folder: transcribe videos that have no transcript."),
        workers: int = typer.Option(1, "--workers", "-w", min=1, help="Videos processed in parallel."),
        sample_fps: float | None = typer.Option(None, "--sample-fps", help="Analyse this many frames per second (default: every frame)."),
        min_segment: float = typer.Option(3.0, "--min-segment", help="Shortest still view kept as a segment, seconds."),
        clustering: str = typer.Option("spatiotemporal", "--clustering", help="spatiotemporal (ours) or published."),
        keep_webcam: bool = typer.Option(False, "--keep-webcam",
                                         help="Leave a detected narrator webcam box in segment images (default: painted over)."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Turn narrated slide-viewing videos into segment images, cursor traces and grounded captions."""
        from quilt_llava.console import Output

        options = ExtractOptions(input=input, out=out, transcript=transcript, asr_model=asr_model, workers=workers,
                                 sample_fps=sample_fps, min_segment_s=min_segment, clustering=clustering,
                                 keep_webcam=keep_webcam)
        code = run_extract(options, Output(quiet=quiet, json=json_out))
        if code:
            raise typer.Exit(code)

    @sub.command("show")
    def show(
        narratives_dir: Path = typer.Argument(..., help="Folder written by `narratives extract`."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Where to write the page (default: DIR/show)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Draw traces (colour = time) and cluster boxes on each segment image, next to its caption (HTML)."""
        from quilt_llava.console import Output
        from quilt_llava.narratives.show import write_show

        output = Output(quiet=quiet, json=json_out)
        page = write_show(narratives_dir, out)
        output.result({"html": str(page)}, human=f"wrote {page}")
