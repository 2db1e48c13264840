"""Stage A on a Ray cluster: one Ray task per video, running the per-video function of the local pool.

``extract_folder_ray`` is :func:`~quilt_llava.narratives.batch.extract_folder` with Ray as
the scheduler: the same plan (finished videos are skipped), the same per-video function
(``batch.run_one``, which calls ``pipeline.process_video``, so both engines write the same
rows and segment images), the same
``narratives.jsonl`` rebuilt at the end from every ``<video_id>/rows.jsonl``. What Ray adds:

- placement over every node of a cluster (``ray.init(address=...)``), or a local instance
  when no address is given (``RAY_ADDRESS`` is honoured, as ``ray.init`` does);
- retries of a task whose worker process died (a crash, the OOM killer, a lost node):
  ``max_retries`` times, then the video is recorded as failed with that reason;
- failures of a video's own (a corrupt file, a transcript that does not fit) are
  *returned* by the per-video function, so Ray never retries them.

A retried video starts again from its first frame: its files are written atomically and its
``rows.jsonl`` last, so a half-done attempt leaves nothing that counts, and the rebuilt
``narratives.jsonl`` holds every row exactly once.

Files: every node must see the videos and the output folder at the same path (NFS,
Lustre, CephFS, or an object store mounted through FUSE such as mountpoint-s3, gcsfuse or
s3fs). Object-store URLs are not written directly: the per-video function writes with
renames and ``fsync``, which object stores do not offer. A worker that wrote where this
machine cannot see is caught (its ``rows.jsonl`` is missing here) and reported.

``ray`` is imported only inside these functions: the core and the local engine never load it.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quilt_llava.errors import ConfigError, MissingDependencyError
from quilt_llava.narratives.batch import FolderResult, VideoJob, _collect, plan_folder, run_one
from quilt_llava.narratives.pipeline import ExtractConfig
from quilt_llava.narratives.rows import ROWS_FILE, rebuild_narratives, video_id_for
from quilt_llava.narratives.video import Frame, PyAVSource


@dataclass
class RayConfig:
    """Where and how the tasks run."""

    address: str | None = None  # "auto", "ray://head:10001", "head:6379"; None: a local instance
    num_cpus: int | None = None  # CPUs of a local instance (None: all of this machine's); not with an address
    cpus_per_task: float = 1.0  # CPUs Ray reserves for one video (the extractor uses ~1.5 busy threads)
    max_retries: int = 3  # re-runs of a video whose worker process died
    # Called in the worker, with the video path, before each attempt: a seam for fault injection.
    before_task: Callable[[Path], None] | None = None

    def validate(self) -> None:
        problems = []
        if self.num_cpus is not None and self.num_cpus < 1:
            problems.append(f"num_cpus must be >= 1, got {self.num_cpus}")
        if self.num_cpus is not None and self.address is not None:
            problems.append("num_cpus sizes a local instance; a cluster (address given) has its own CPUs")
        if self.cpus_per_task <= 0:
            problems.append(f"cpus_per_task must be > 0, got {self.cpus_per_task}")
        if self.max_retries < 0:
            problems.append(f"max_retries must be >= 0, got {self.max_retries}")
        if problems:
            raise ConfigError(problems, source="RayConfig")


@dataclass
class VideoOutcome:
    """What one task reports back."""

    video: str
    rows: int | None  # None when it failed
    error: str | None
    frames: int = 0  # frames decoded
    seconds: float = 0.0  # wall time of the attempt that finished
    node: str = ""  # host name of the worker

    @property
    def ok(self) -> bool:
        return self.error is None


class FrameTally:
    """Frames decoded so far by every task of a run; lives as a Ray actor the tasks report to
    while they decode, so the progress bar moves during long videos, not only at their end."""

    def __init__(self) -> None:
        self.frames = 0

    def add(self, n: int) -> None:
        self.frames += n

    def total(self) -> int:
        return self.frames


TALLY_EVERY = 250  # frames between two reports to the tally (10 s of 25 fps video)


class _CountingSource:
    """PyAV decoding of one video, counting the frames it hands out (opened on first use,
    so that a missing file or a missing PyAV is the per-video function's failure to report)."""

    def __init__(self, video: Path, threads: int, tally: Any = None) -> None:
        self.video, self.threads, self.count, self.tally = video, threads, 0, tally

    def frames(self) -> Iterator[Frame]:
        try:
            for frame in PyAVSource(self.video, threads=self.threads).frames():
                self.count += 1
                if self.tally is not None and self.count % TALLY_EVERY == 0:
                    self.tally.add.remote(TALLY_EVERY)  # not waited for
                yield frame
        finally:
            if self.tally is not None and self.count % TALLY_EVERY:
                self.tally.add.remote(self.count % TALLY_EVERY)


def extract_task(job: VideoJob, before_task: Callable[[Path], None] | None = None, tally: Any = None) -> VideoOutcome:
    """One video in a Ray worker (also callable directly): the local pool's per-video function.
    ``tally``: a :class:`FrameTally` actor handle to report decoded frames to."""
    video, _, _, cfg = job
    if before_task is not None:
        before_task(video)
    source = _CountingSource(video, cfg.threads, tally)
    start = time.perf_counter()
    name, rows, error = run_one(job, source=source)
    return VideoOutcome(name, rows, error, source.count, time.perf_counter() - start, socket.gethostname())


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "distributed") from None
    return ray


@contextlib.contextmanager
def connected(config: RayConfig) -> Iterator[Any]:
    """The ``ray`` module, connected to the cluster (or a local instance) for the block.

    A connection made before (``ray.init`` by the caller) is used as it is and left open."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"address": config.address, "include_dashboard": False, "log_to_driver": False}
    if config.address is None:
        kwargs["num_cpus"] = config.num_cpus
    ray.init(**kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def _outcome(ray: Any, ref: Any, job: VideoJob, config: RayConfig) -> VideoOutcome:
    video = job[0]
    try:
        outcome: VideoOutcome = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # raised by before_task or outside the per-video function
        return VideoOutcome(str(video), None, f"{video}: the task failed ({type(exc.cause).__name__}: {exc.cause})")
    except ray.exceptions.RayError as exc:  # the worker died (crash, OOM kill, lost node) on every attempt
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return VideoOutcome(
            str(video),
            None,
            f"{video}: its worker died on all {config.max_retries + 1} attempts ({type(exc).__name__}: {reason})",
        )
    if outcome.ok and not (job[2] / video_id_for(video) / ROWS_FILE).is_file():
        outcome.error = (
            f"{video}: node {outcome.node} extracted it, but its {video_id_for(video)}/{ROWS_FILE} "
            f"is not visible here; is {job[2]} on a filesystem shared by every node, at the same path?"
        )
        outcome.rows = None
    return outcome


def extract_folder_ray(
    videos: Path | list[Path],
    out_dir: Path,
    config: ExtractConfig | None = None,
    ray_config: RayConfig | None = None,
    transcripts: dict[Path, Path | None] | None = None,
    on_outcome: Callable[[VideoOutcome], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> FolderResult:
    """Extract every video not yet finished in ``out_dir``, one Ray task per video.

    Same arguments and result as :func:`~quilt_llava.narratives.batch.extract_folder`;
    ``on_outcome`` is called on this machine as each video finishes (in completion order),
    ``on_frames`` about once a second with the frames decoded so far over all workers.
    Paths are made absolute before they are sent to the workers.
    """
    cfg = config or ExtractConfig()
    rc = ray_config or RayConfig()
    rc.validate()
    out_dir = Path(out_dir).resolve()
    if isinstance(videos, Path):
        videos = videos.resolve()
    else:
        videos = [Path(v).resolve() for v in videos]
    if transcripts is not None:
        transcripts = {
            Path(k).resolve(): (Path(v).resolve() if v is not None else None) for k, v in transcripts.items()
        }
    result, todo = plan_folder(videos, out_dir, cfg, transcripts)
    if todo:
        with connected(rc) as ray:
            task = ray.remote(extract_task).options(
                num_cpus=rc.cpus_per_task, max_retries=rc.max_retries, retry_exceptions=False
            )
            tally = ray.remote(FrameTally).options(num_cpus=0).remote() if on_frames is not None else None
            jobs = {task.remote(job, rc.before_task, tally): job for job in todo}
            pending = list(jobs)
            try:
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                    if tally is not None:
                        on_frames(ray.get(tally.total.remote()))
                    for ref in ready:
                        outcome = _outcome(ray, ref, jobs[ref], rc)
                        _collect(result, (outcome.video, outcome.rows, outcome.error), None)
                        if on_outcome is not None:
                            on_outcome(outcome)
            except BaseException:  # Ctrl-C: stop the cluster's work too; a re-run resumes
                for ref in pending:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)
                raise
    result.rows = rebuild_narratives(out_dir)
    return result


class ClusterProgress:
    """A rich bar for a run: videos done and failed, and frames decoded per second over all workers
    (pass :meth:`update` as ``on_outcome`` and :meth:`decoded` as ``on_frames``)."""

    def __init__(self, output: Any, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.frames = 0
        self.failed = 0
        self.start = time.perf_counter()
        self.bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[fps]} frames/s"),
            TimeElapsedColumn(),
            console=output.err,
            disable=output.quiet or output.json,
        )
        self.task = self.bar.add_task("videos", total=total, failed=0, fps="-")

    def __enter__(self) -> ClusterProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, outcome: VideoOutcome) -> None:
        """A video finished."""
        self.failed += not outcome.ok
        self.bar.update(self.task, advance=1, failed=self.failed)

    def decoded(self, frames: int) -> None:
        """Frames decoded so far over all workers."""
        self.frames = frames
        self.bar.update(self.task, fps=f"{frames / max(time.perf_counter() - self.start, 1e-9):.0f}")
