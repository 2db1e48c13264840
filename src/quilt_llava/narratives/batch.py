"""Folder batches: many videos, in parallel over videos, resumable, one failure reported and skipped.

Each video is one call of :func:`pipeline.process_video` (a plain function of picklable
arguments, so a process pool, or a Ray task, can run it); a video whose ``rows.jsonl``
exists is finished and skipped, and ``narratives.jsonl`` is rebuilt from every finished
video at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quilt_llava.errors import QuiltError
from quilt_llava.narratives.pipeline import ExtractConfig, process_video
from quilt_llava.narratives.rows import ROWS_FILE, rebuild_narratives, video_id_for
from quilt_llava.narratives.video import FrameSource

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts")
TRANSCRIPT_SUFFIXES = (".transcript.json", ".json", ".srt", ".vtt")


def find_transcript(video: Path) -> Path | None:
    """The sidecar transcript of ``video``: <stem>.transcript.json, <stem>.json, <stem>.srt or <stem>.vtt."""
    for suffix in TRANSCRIPT_SUFFIXES:
        candidate = video.with_name(video.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def list_videos(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


@dataclass
class FolderResult:
    done: list[str] = field(default_factory=list)  # video ids extracted in this run
    skipped: list[str] = field(default_factory=list)  # already finished before this run
    failed: dict[str, str] = field(default_factory=dict)  # video path -> error message
    rows: int = 0  # rows in narratives.jsonl after the run

    @property
    def ok(self) -> bool:
        return not self.failed


Outcome = tuple[str, int | None, str | None]  # video path, rows written (None: failed), error message
VideoJob = tuple[Path, Path | None, Path, ExtractConfig]  # video, transcript, out_dir, config


def run_one(args: VideoJob, source: FrameSource | None = None) -> Outcome:
    """One video of a batch, as every engine runs it (local pool, Ray task): never raising for a
    bad video (the others go on). ``source``: the frames, when not decoded from ``video`` here."""
    video, transcript, out_dir, cfg = args
    try:
        rows = process_video(video, transcript, out_dir, cfg, source)
        return str(video), len(rows), None
    except QuiltError as exc:
        return str(video), None, str(exc)
    except Exception as exc:  # one bad video must not stop the others
        log.exception("unexpected failure on %s", video)
        return str(video), None, f"{video}: unexpected error ({type(exc).__name__}: {exc})"


def plan_folder(
    videos: Path | list[Path], out_dir: Path, cfg: ExtractConfig, transcripts: dict[Path, Path | None] | None = None
) -> tuple[FolderResult, list[VideoJob]]:
    """The videos still to extract, each with its transcript, and a result listing the finished ones
    as skipped (a video is finished when ``<video_id>/rows.jsonl`` exists). Creates ``out_dir``."""
    cfg.validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (
        list_videos(videos)
        if isinstance(videos, Path) and videos.is_dir()
        else [Path(v) for v in ([videos] if isinstance(videos, Path) else videos)]
    )
    result = FolderResult()
    todo: list[VideoJob] = []
    for video in paths:
        vid = video_id_for(video)
        if (out_dir / vid / ROWS_FILE).is_file():
            result.skipped.append(vid)
            continue
        transcript = transcripts.get(video) if transcripts is not None else find_transcript(video)
        todo.append((video, transcript, out_dir, cfg))
    return result, todo


def extract_folder(
    videos: Path | list[Path],
    out_dir: Path,
    config: ExtractConfig | None = None,
    workers: int = 1,
    transcripts: dict[Path, Path | None] | None = None,
    on_done: Callable[[str, int | None, str | None], None] | None = None,
) -> FolderResult:
    """Extract every video of a folder (or list), in parallel over videos, skipping finished ones.

    Transcripts come from ``transcripts`` when given, else from sidecar files (see
    :func:`find_transcript`). A failing video is reported in the result; the others go on.
    """
    cfg = config or ExtractConfig()
    out_dir = Path(out_dir)
    result, todo = plan_folder(videos, out_dir, cfg, transcripts)
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            for outcome in pool.map(run_one, todo):
                _collect(result, outcome, on_done)
    else:
        for item in todo:
            _collect(result, run_one(item), on_done)
    result.rows = rebuild_narratives(out_dir)
    return result


def _collect(
    result: FolderResult, outcome: Outcome, on_done: Callable[[str, int | None, str | None], None] | None
) -> None:
    video, n, error = outcome
    if error is not None:
        result.failed[video] = error
    else:
        result.done.append(video_id_for(Path(video)))
    if on_done is not None:
        on_done(video, n, error)
