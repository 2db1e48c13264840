"""Stage A pipeline: a video and its transcript to segment images and grounded rows.

One decoding pass does everything (frames are decoded and reduced on a producer thread, a
few ahead of the analysis). :class:`Analyser` takes each frame through named steps, each
the home of one thing that flows through the stage:

- frame reduction (:mod:`.frames`): small and tiny luma images of each analysed frame;
- view stability (:mod:`.views`): still runs, their ends trimmed where a pan eases;
- the webcam (:mod:`.webcam`): the narrator's box, kept out of the other steps;
- the cursor (:mod:`.cursor`, on its own thread: :mod:`.cursor_thread`, which shares each
  frame's template matches and whole-frame searches with a helper: :mod:`.split_work`):
  pointer hits on the full-resolution luma plane. Its frames wait in a deep queue
  (``ExtractConfig.locator_queue``): its cost per frame is very uneven, and decoding goes on
  while it works through a whole-frame search; a still run's end does not wait for it either
  (what the segment image needs from it is read on its thread, :meth:`.CursorThread.call`);
- a pointer seen in colour only (:mod:`.chroma_pointer`): a second locator on the frames' chroma
  plane, on a thread of its own, whose hits fill the views the luma locator left nearly empty
  (it stops in a view once the luma locator has hits on half its frames: ``LumaGate``; a view's
  frames are held until then, for up to ``ChromaConfig.release_s``, and dropped if it stops);
- the content area (:mod:`.content`): where on screen the slide view is, from statistics
  kept per still view;
- tissue (:mod:`.tissue`): whether a still view shows tissue at all (a cut to a text
  slide, the presenter's camera, the desktop or a blank screen does not); the tissue area
  is found from the tissue views only, other views get their own box;
- segment images (:mod:`.segment_images`): a few colour frames per still run, their
  median and PNG made on a worker thread while decoding goes on.

After the pass, hits become traces (:mod:`.segments`), and rows (:mod:`.rows`) split speech
over segments and ground it. Folders of videos are run by :mod:`.batch`.

Output layout (SPEC A): ``out_dir/<video_id>/frames/<segment_id>.png`` and one row per
segment in ``out_dir/narratives.jsonl``. Each finished video also leaves
``out_dir/<video_id>/rows.jsonl`` (written atomically, last); its presence marks the
video done, so a re-run skips it, and ``narratives.jsonl`` is rebuilt atomically
from every finished video.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from quilt_llava.errors import ConfigError, InputError
from quilt_llava.files import atomic_write_bytes, write_jsonl
from quilt_llava.narratives.chroma_pointer import ChromaConfig, ChromaPointer, LumaGate, chroma_gain, sparse_views
from quilt_llava.narratives.clustering import CLUSTERERS
from quilt_llava.narratives.content import ContentConfig, ContentStats
from quilt_llava.narratives.cursor import (
    AnalysedFrame,
    CursorConfig,
    CursorHit,
    TemplateCursorLocator,
)
from quilt_llava.narratives.cursor_thread import CursorThread
from quilt_llava.narratives.frames import analysis_scale, reduced_frames
from quilt_llava.narratives.resting_pointer import RestingPointerConfig
from quilt_llava.narratives.rows import ROWS_FILE, build_rows, rebuild_narratives, video_id_for
from quilt_llava.narratives.segment_images import PointerSearch, RunSamples, SegmentImages, encode_png
from quilt_llava.narratives.segments import Analysis, Segment, assign_traces, late_rest_hits
from quilt_llava.narratives.stability import Span, StabilityConfig
from quilt_llava.narratives.tissue import TissueConfig, tissue_score
from quilt_llava.narratives.transcript import read_transcript
from quilt_llava.narratives.video import NEUTRAL, Frame, FrameSource, PyAVSource, prefetch
from quilt_llava.narratives.views import StillRuns, drift_image
from quilt_llava.narratives.webcam import Rect, WebcamWatch

log = logging.getLogger(__name__)

SPILL_DIR = ".segments-pending"


@dataclass
class ExtractConfig:
    """How a video is analysed. ``sample_fps=None`` analyses every decoded frame."""

    sample_fps: float | None = None
    min_segment_s: float = 3.0  # published: a still span of 3 s or more
    analysis_width: int = 320  # width of the small frames used for stability and motion
    median_frames: int = 7  # colour frames whose per-pixel median is the segment image
    clustering: str = "spatiotemporal"  # or "published"
    transcript_slack_s: float = 1.0  # a transcript may run this far past the last frame
    threads: int = 0  # decoder threads (0: FFmpeg decides)
    prefetch: int = 8  # frames decoded ahead on a producer thread
    # (0: decoding, reduction and cursor search all on the calling thread)
    # analysed frames queued for the cursor thread (with ``prefetch`` > 0): decoding and the view analysis
    # run ahead while the locator works through a whole-frame search (20-90 ms at 720p, against 0.02 ms
    # for the median frame); each holds its decoded frame (~1.4 MB at 720p, ~3 MB at 1080p)
    locator_queue: int = 48
    seed: int = 0  # the clusterer's KMeans seed
    hide_webcam: bool = True  # paint a detected narrator webcam box in segment images with their mean colour
    held_segments: int = (
        16  # segment images kept in memory (the one being made included); older ones wait on disk (0: all in memory)
    )
    keep_non_tissue: bool = (
        False  # keep rows of views that are not tissue (slides, camera, desktop), flagged is_tissue: false
    )
    cursor: CursorConfig = field(default_factory=CursorConfig)
    chroma: ChromaConfig = field(default_factory=ChromaConfig)  # a pointer seen in colour only
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    tissue: TissueConfig = field(default_factory=TissueConfig)
    resting_pointer: RestingPointerConfig = field(default_factory=RestingPointerConfig)

    def validate(self) -> None:
        problems = []
        if self.sample_fps is not None and self.sample_fps <= 0:
            problems.append(f"sample_fps must be > 0 or None (every frame), got {self.sample_fps}")
        if self.min_segment_s <= 0:
            problems.append(f"min_segment_s must be > 0, got {self.min_segment_s}")
        if self.analysis_width < 64:
            problems.append(f"analysis_width must be >= 64, got {self.analysis_width}")
        if self.prefetch < 0:
            problems.append(f"prefetch must be >= 0, got {self.prefetch}")
        if self.locator_queue < 1:
            problems.append(f"locator_queue must be >= 1, got {self.locator_queue}")
        if self.held_segments < 0:
            problems.append(f"held_segments must be >= 0, got {self.held_segments}")
        if self.median_frames < 1:
            problems.append(f"median_frames must be >= 1, got {self.median_frames}")
        if self.cursor.history_stride < 1:
            problems.append(
                "cursor.history_stride must be >= 1 (1: every held frame keeps its pixels), got "
                f"{self.cursor.history_stride}"
            )
        if self.cursor.match_threads < 1:
            problems.append(f"cursor.match_threads must be >= 1, got {self.cursor.match_threads}")
        if self.cursor.backfill_frames < 0:
            problems.append(f"cursor.backfill_frames must be >= 0, got {self.cursor.backfill_frames}")
        if not 0.0 <= self.tissue.threshold <= 1.0:
            problems.append(f"tissue.threshold must be in [0, 1], got {self.tissue.threshold}")
        if not 0.0 < self.tissue.min_contrast <= 1.0:
            problems.append(f"tissue.min_contrast must be in (0, 1], got {self.tissue.min_contrast}")
        for name in ("contrast_reference", "middle_reference"):
            if getattr(self.tissue, name) <= 0:
                problems.append(f"tissue.{name} must be > 0 grey levels, got {getattr(self.tissue, name)}")
        if self.clustering not in CLUSTERERS:
            problems.append(f"clustering must be one of {', '.join(CLUSTERERS)}, got {self.clustering!r}")
        if problems:
            raise ConfigError(problems, source="ExtractConfig")


# --------------------------------------------------------------------------- analysis


CONTENT_EVERY = 12  # analysed frames between content-area samples


class Analyser:
    """One pass over a frame source: :meth:`_process_frame` per frame, :meth:`_close_run` per
    still run, :meth:`_post_process` at the end (see :func:`analyse`)."""

    def __init__(self, config: ExtractConfig, name: str = "video", spill_dir: Path | None = None) -> None:
        self.cfg = config
        self.name = name
        self.times: list[float] = []
        self.moving: list[bool] = []
        self.hits: dict[int, CursorHit] = {}
        self.segments: list[Segment] = []
        # Per segment, the first frame of the pointer locators' view it lies in (``StillRuns.view_start``):
        # the segments a slow pan split share it.
        self.segment_views: list[int | None] = []
        self.run_view: int | None = None  # that frame for the open still run
        self.views = StillRuns(config.stability)
        self.content: ContentStats | None = None  # content statistics of the open still run
        self.view_content: list[ContentStats] = []  # per segment
        self.tissue_content: ContentStats | None = None  # merged over the tissue views so far
        self.webcam = WebcamWatch(config.stability.grid)
        self.images = SegmentImages(config.held_segments, spill_dir)
        self.locator: TemplateCursorLocator | None = None
        self.cursor: CursorThread | None = None
        # more locators on chroma planes (``chroma_pointer``): the distance from grey, then from the view's colour
        self.chromas: list[ChromaPointer] = []
        self.chroma_gate: LumaGate | None = None  # where it runs (not in views the luma locator tracks)
        self.samples: RunSamples | None = None  # colour frames of the open still run
        self.prev_small: np.ndarray | None = None
        self.size: tuple[int, int] | None = None  # (width, height)
        self.scale = 1  # full-resolution pixels per analysis pixel
        self.frame_interval = 0.04

    def run(self, source: FrameSource, settle: bool = True) -> Analysis:
        cfg = self.cfg
        try:
            for frame, small, tiny in prefetch(
                lambda: reduced_frames(source, cfg.sample_fps, cfg.analysis_width), cfg.prefetch
            ):
                self._process_frame(frame, small, tiny)
        except BaseException:
            if self.cursor is not None:
                self.cursor.close(check=False)
            for chroma in self.chromas:
                chroma.close(check=False)
            self.images.abort()
            raise
        return self._post_process(settle)

    def _start(self, luma: np.ndarray) -> None:
        """The first frame: its size decides the analysis scale and the cursor's sizes."""
        h, w = luma.shape
        self.size = (w, h)
        self.scale = analysis_scale(w, self.cfg.analysis_width)
        self.locator = TemplateCursorLocator(h, self.cfg.cursor)
        self.cursor = CursorThread(self.locator, self.hits, self.cfg.locator_queue if self.cfg.prefetch else 0)

    def _start_chroma(self, frame: Frame) -> None:
        """The chroma locators, each with its gain from the first frame (none for a first frame
        without colour): on the distance from grey and, with ``ChromaConfig.dominant``, on the
        distance from each still view's own colour."""
        centre = frame.chroma_centre()
        if centre is None:
            return
        cfg = self.cfg
        depth = cfg.locator_queue if cfg.prefetch else 0
        for dominant in (False, True) if cfg.chroma.dominant else (False,):
            dist = frame.chroma(centre if dominant else NEUTRAL)
            assert dist is not None
            gain = chroma_gain(dist, cfg.chroma)
            self.chromas.append(
                ChromaPointer(
                    frame.luma.shape[0],
                    cfg.chroma,
                    cfg.cursor,
                    depth,
                    gain,
                    cfg.analysis_width,
                    dominant=dominant,
                    hold_view=dominant and cfg.chroma.dominant_holds_view,
                )
            )
        assert self.cursor is not None
        cursor = self.cursor
        self.chroma_gate = LumaGate(
            cfg.chroma, lambda start, j: cursor.call(functools.partial(self._luma_cover, start, j))
        )

    def _luma_cover(self, start: int, end: int) -> tuple[int, int]:
        """(frames of ``start..end`` with a luma hit, shown or held back on the open track at a
        score the locator keeps them at whatever comes (``CursorConfig.sure_score``), frames): run
        on the luma locator's thread. (A pointer resting where a view begins is held back until it
        moves, and shown then; a lookalike held back below that score is not counted.)"""
        assert self.locator is not None
        sure = self.cfg.cursor.sure_score
        held = {h.index for h in self.locator.pending if h.score >= sure}
        return sum(i in self.hits or i in held for i in range(start, end + 1)), end - start + 1

    def _sample_stride(self) -> int:
        """Analysed frames between colour samples: one a second."""
        rate = 1.0 / self.frame_interval if self.cfg.sample_fps is None else self.cfg.sample_fps
        return max(1, round(rate))

    def _webcam_rects(self) -> tuple[Rect, ...]:
        """What segment images paint over as known now (nothing when ``hide_webcam`` is off)."""
        return self.webcam.rects(self.scale, self.size) if self.cfg.hide_webcam and self.size is not None else ()

    def _process_frame(
        self,
        frame: Frame,
        small: np.ndarray,
        tiny: np.ndarray,
    ) -> None:
        import cv2

        luma = frame.luma
        if self.size is None:
            self._start(luma)
        elif luma.shape != (self.size[1], self.size[0]):
            raise InputError(self.name, f"frame size changed mid-stream at {frame.t:.2f} s")
        assert self.cursor is not None
        index = len(self.times)
        if index == 1:
            self.frame_interval = max(1e-3, frame.t - self.times[0])
            self.views.set_frame_rate(1.0 / self.frame_interval)
            if self.samples is not None:  # made on the first frame, before the frame rate was known
                self.samples.set_stride(self._sample_stride())
        self.times.append(frame.t)
        ignore = self.webcam.ignore_cells()
        moving = self.views.moving(tiny, ignore)
        self.moving.append(moving)
        # A slow pan's frame found by its shift alone ends the still run, not the pointer's view.
        changing = moving and not self.views.shifted
        motion = cv2.absdiff(small, self.prev_small) if self.prev_small is not None else None
        self.prev_small = small
        self.webcam.observe(index, small, changing)
        self.cursor.submit(AnalysedFrame(index, frame.t, luma, motion, changing, self.webcam.mask, self.scale))
        if index == 0 and self.cfg.chroma.enabled:
            self._start_chroma(frame)
        step = self.views.step(index, moving, drift_image(small, tiny, self.scale), ignore)
        if self.chromas and self.chroma_gate is not None:
            # (after the step: the still view's start as known at this frame)
            start = self.views.view_start
            verdict = self.chroma_gate.wanted(index, start, self.frame_interval)
            for chroma in self.chromas:
                chroma.offer(index, frame, changing, self.webcam.mask, self.scale, verdict, start)
        if step.closed is not None:
            self._close_run(step.closed)
        if not moving:
            if step.started:
                self.run_view = self.views.view_start
                if self.samples is None:
                    self.samples = RunSamples(self.cfg.median_frames, self._sample_stride())
                self.samples.reset()
                self.content = ContentStats(self.cfg.content)
            assert self.samples is not None and self.content is not None
            self.samples.offer(index, frame.colour)
            if step.started or index % CONTENT_EVERY == 0:
                self.content.add(small)

    def _close_run(self, span: Span, final: bool = False) -> None:
        """A still run ended: a segment when it lasted long enough, its image started."""
        times, samples = self.times, self.samples
        if times[span.end] - times[span.start] + self.frame_interval < self.cfg.min_segment_s or samples is None:
            return
        assert self.size is not None and self.cursor is not None
        # Where the pointer was in the run's colour samples: read on the locator's thread once it has
        # processed the frame just analysed (the sequential order's state), while analysis goes on.
        held = [i for i, _ in samples.frames if span.start <= i <= span.end]
        pointer = self.cursor.call(functools.partial(self._footprints, held))
        chosen = samples.pick(span.start, span.end)
        if not chosen or self.content is None:
            return
        own = self.content
        score = self._tissue_score(chosen, own.box(self.scale, self.size))
        own_box_holds = score >= self.cfg.tissue.threshold
        if not own_box_holds and self.tissue_content is not None:
            # A view's own box can miss its tissue (empty glass or faint texture splits the rows
            # and columns it is found from, or it falls back to the whole frame with the chrome):
            # the same image inside the tissue area of the tissue views so far is judged too.
            score = max(score, self._tissue_score(chosen, self.tissue_content.box(self.scale, self.size)))
        is_tissue = score >= self.cfg.tissue.threshold
        if own_box_holds:  # the tissue area is learnt from views whose own box held their tissue
            self.tissue_content = self.tissue_content or ContentStats(self.cfg.content)
            self.tissue_content.merge(own)
        self.view_content.append(own)
        seg = Segment(
            span,
            times[span.start],
            times[span.end] + self.frame_interval,
            np.empty(0),
            [],
            tissue=score,
            is_tissue=is_tissue,
        )
        self.segments.append(seg)
        self.segment_views.append(self.run_view)
        # Cropped to the content box as known now, refined on the first tissue image as at the end.
        self.images.submit(
            chosen,
            pointer,
            self._view_box(len(self.segments) - 1),
            2 * self.scale + 4,
            self._webcam_rects(),
            split=final,
            tissue=is_tissue,
            # (a view that is not tissue gives no row unless kept: no pointer to look for in its image)
            search=(
                self.cursor.call(functools.partial(self._pointer_search, [i for i, _ in chosen], pointer))
                if (is_tissue or self.cfg.keep_non_tissue) and self.cfg.resting_pointer.remove
                else None
            ),
        )

    def _footprints(self, frames: list[int]) -> dict[int, Rect]:
        """What the pointer covered in each of ``frames`` that has a hit (run on the locator's thread)."""
        assert self.locator is not None and self.size is not None
        pointer = {}
        for i in frames:
            hit = self.hits.get(i)
            if hit is not None:
                pointer[i] = self.locator.footprint(hit.x, hit.y, self.size)
        return pointer

    def _pointer_search(self, chosen: list[int], pointer: Future[dict[int, Rect]]) -> PointerSearch | None:
        """What the view's median is searched with for a pointer left in it: the locator's shapes
        now; the whole content box when the locator missed the pointer in most samples (``chosen``:
        the frames of the samples; run on the locator's thread after ``pointer`` is known; asked for
        only where ``resting_pointer.remove`` is on)."""
        if self.locator is None:
            return None
        found = pointer.result()
        missed = sum(i not in found for i in chosen)
        return PointerSearch(
            tuple(self.locator.templates),
            self.cfg.resting_pointer,
            self.cfg.cursor.min_contrast,
            whole=2 * missed > len(chosen),
        )

    def _tissue_score(self, chosen: list, box: Rect) -> float:
        """The tissue score of the run's middle colour sample, in its own content box."""
        x0, y0, x1, y1 = box
        return tissue_score(chosen[len(chosen) // 2][1].rgb()[y0:y1, x0:x1], self.cfg.tissue)

    def _sparse_views(self) -> list[Segment]:
        """The segments whose pointer view (:attr:`segment_views`) the luma hits leave sparse
        (:func:`sparse_views`), judged over that view from its first segment's start to its last one's
        end: the locators went on through the slow pans that split it, and whether they held the
        pointer there is a fact of the whole view, not of where a pan cut it."""
        groups: dict[tuple[str, int], list[Segment]] = {}
        for k, (seg, view) in enumerate(zip(self.segments, self.segment_views)):
            groups.setdefault(("segment", k) if view is None else ("view", view), []).append(seg)
        sparse: list[Segment] = []
        for group in groups.values():
            whole = Span(group[0].span.start, group[-1].span.end)
            probe = replace(group[0], span=whole)
            if sparse_views([probe], self.hits, self.cfg.chroma.sparse_share):
                sparse += group
        return sparse

    def _view_box(self, k: int) -> Rect:
        """Segment ``k``'s content box: for a tissue view, the tissue area of the tissue views
        seen so far; for another view, its own box."""
        assert self.size is not None
        stats = self.tissue_content if self.segments[k].is_tissue else self.view_content[k]
        assert stats is not None
        return stats.box(self.scale, self.size)

    def _post_process(self, settle: bool) -> Analysis:
        if self.size is None:
            raise InputError(self.name, "the video stream has no decodable frames")
        assert self.locator is not None and self.cursor is not None
        self.cursor.close()
        for hit in self.locator.finish():
            self.hits[hit.index] = hit
        last = self.views.close(len(self.times) - 1)
        if last is not None:
            self._close_run(last, final=True)
        self.images.close()  # the jobs already submitted still run
        w, h = self.size
        box: Rect = (0, 0, w, h)
        if self.tissue_content is not None:
            box = self.images.final_box(self.tissue_content.box(self.scale, self.size), 2 * self.scale + 4)
        for k, seg in enumerate(self.segments):
            seg.box = box if seg.is_tissue else self._view_box(k)
        self.images.finish(self.segments, self._webcam_rects(), settle, tuple(self.locator.templates))
        late_rest_hits(self.segments, self.hits)  # a pointer that never moved, found by a later shape
        # views with few luma hits: a pointer seen in colour only, if any; the plane from grey
        # first (its hits as they were), then the other on the frames still without one
        sparse = self._sparse_views()
        for chroma in self.chromas:
            chroma.close()
        for chroma in self.chromas:
            others = [c.hits for c in self.chromas if c is not chroma]
            chroma.fill(self.segments, self.hits, sparse, others)
        assign_traces(self.segments, self.hits, self.times, box, lambda x, y: self.webcam.covers(x, y, self.scale))
        duration = self.times[-1] + self.frame_interval if self.times else 0.0
        return Analysis(
            self.size[0],
            self.size[1],
            duration,
            box,
            np.array(self.times),
            np.array(self.moving),
            self.hits,
            self.segments,
        )


def analyse(
    source: FrameSource,
    config: ExtractConfig | None = None,
    name: str = "video",
    settle: bool = True,
    spill_dir: Path | None = None,
) -> Analysis:
    """One pass over ``source``: stability, cursor hits, segment images and the content box.

    With ``settle=False`` the segment images still being made when decoding ends (the last
    one, usually) are returned unfinished: call ``Segment.ready()`` before using one, so
    the caller can do other work (rows, earlier PNG files) meanwhile.

    ``spill_dir``: where finished segment images beyond the ``held_segments`` most recent
    wait until the video ends (memory stays bounded on long videos); such segments come
    back with ``image_file`` / ``png_file`` set instead of ``image`` / ``png``."""
    return Analyser(config or ExtractConfig(), name, spill_dir).run(source, settle)


# --------------------------------------------------------------------------- one video


def write_segment_png(seg: Segment, target: Path, box: Rect) -> None:
    """The segment's PNG at ``target``: moved in when it waited on disk (flushed first), else written atomically."""
    seg.ready()  # the last segment image is usually still being made while rows are built
    if seg.png_file is not None:  # made while decoding, waited on disk: flushed, then moved in
        fd = os.open(seg.png_file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(seg.png_file, target)
        return
    png = seg.png if seg.png is not None else encode_png(seg.rgb(), box)
    atomic_write_bytes(target, png)


def process_video(
    video: Path, transcript_path: Path | None, out_dir: Path, cfg: ExtractConfig, source: FrameSource | None = None
) -> list[dict[str, Any]]:
    """Extract one video into ``out_dir/<video_id>/`` (segment images, then ``rows.jsonl``, last)
    and return its rows; ``narratives.jsonl`` is left alone. Views that are not tissue give no
    row unless ``cfg.keep_non_tissue`` (segment ids count every view, so they are the same either
    way). Takes and returns plain picklable values, so a process pool or a remote task can run it."""
    cfg.validate()
    video = Path(video)
    video_id = video_id_for(video)
    transcript = read_transcript(transcript_path) if transcript_path is not None else None
    spill_dir = out_dir / video_id / SPILL_DIR  # segment images waiting for the video's end
    shutil.rmtree(spill_dir, ignore_errors=True)  # left by a killed run
    try:
        analysis = analyse(
            source or PyAVSource(video, threads=cfg.threads), cfg, name=str(video), settle=False, spill_dir=spill_dir
        )
        if transcript is not None and transcript.end > analysis.duration + cfg.transcript_slack_s:
            for seg in analysis.segments:
                seg.ready()
            raise InputError(
                str(transcript_path),
                f"the transcript runs to {transcript.end:.1f} s but the video {video.name} is only "
                f"{analysis.duration:.1f} s long; is it the transcript of another video?",
            )
        rows = build_rows(analysis, video_id, transcript, cfg.clustering, seed=cfg.seed)
        kept = [(row, seg) for row, seg in zip(rows, analysis.segments) if seg.is_tissue or cfg.keep_non_tissue]
        frames_dir = out_dir / video_id / "frames"
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:  # each file is fsynced: overlap the waits
            for done in [
                pool.submit(
                    write_segment_png, seg, frames_dir / f"{row['segment_id']}.png", seg.box or analysis.content_box
                )
                for row, seg in kept
            ]:
                done.result()
        for row, seg in kept:  # each image is made now: what was taken out of it
            row["pointer_removed"] = [list(r.box) for r in seg.removed]
        rows = [row for row, _ in kept]
        removed = [(row["segment_id"], r) for row, seg in kept for r in seg.removed]
        if removed:
            log.info(
                "%s: pointers left in the median taken out of segment images (%d): %s",
                video.name,
                len(removed),
                ", ".join(f"{sid} {r.box} ({r.fill}, score {r.score})" for sid, r in removed),
            )
        skipped = sum(not seg.is_tissue for seg in analysis.segments)
        if skipped:
            log.info(
                "%s: %d of %d still views are not tissue (%s)",
                video.name,
                skipped,
                len(analysis.segments),
                "kept, flagged" if cfg.keep_non_tissue else "no rows",
            )
        # Written last: its presence marks the video as finished.
        write_jsonl(out_dir / video_id / ROWS_FILE, rows)
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    return rows


def extract_video(
    video: Path, transcript: Path | None, out_dir: Path, config: ExtractConfig | None = None
) -> list[dict[str, Any]]:
    """Extract one video into ``out_dir`` (segment images + rows) and rebuild ``narratives.jsonl``."""
    out_dir = Path(out_dir)
    rows = process_video(
        Path(video), Path(transcript) if transcript is not None else None, out_dir, config or ExtractConfig()
    )
    rebuild_narratives(out_dir)
    return rows
