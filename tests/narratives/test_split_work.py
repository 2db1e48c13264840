"""Work split between the cursor locator's thread and a helper: the same results as one thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from quilt_llava.narratives.split_work import SplitRunner, balanced_halves

from .test_pointer import needs_themes


def test_balanced_halves_share_the_cost():
    a, b = balanced_halves([5.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert sorted(a + b) == list(range(6))
    assert a == [0] and sorted(b) == [1, 2, 3, 4, 5]
    a, b = balanced_halves([3.0, 3.0, 2.0, 2.0])
    assert sum([3.0, 3.0, 2.0, 2.0][i] for i in a) == sum([3.0, 3.0, 2.0, 2.0][i] for i in b) == 5.0
    assert balanced_halves([1.0]) == ([0], [])
    assert balanced_halves([]) == ([], [])


@pytest.mark.parametrize("enabled", [True, False])
def test_results_in_order_each_group_on_one_thread(enabled):
    seen: dict[int, set[str]] = {}

    def call(g: int, i: int):
        def run() -> tuple[int, int]:
            seen.setdefault(g, set()).add(threading.current_thread().name)
            return g, i

        return run

    groups = [[call(g, i) for i in range(g + 1)] for g in range(6)]
    runner = SplitRunner(enabled)
    try:
        out = runner.run(groups, costs=[float(g + 1) for g in range(6)])
    finally:
        runner.close()
    assert out == [[(g, i) for i in range(g + 1)] for g in range(6)]
    assert all(len(names) == 1 for names in seen.values())  # a group never spans threads
    names = set().union(*seen.values())
    assert len(names) == (2 if enabled else 1)
    assert threading.current_thread().name in names


def test_an_error_in_either_share_is_raised_after_both_finish():
    finished = []

    def ok() -> int:
        finished.append(1)
        return 1

    def bad() -> int:
        raise ValueError("broken match")

    runner = SplitRunner()
    for groups in ([[bad], [ok, ok]], [[ok, ok], [bad]]):
        finished.clear()
        with pytest.raises(ValueError, match="broken match"):
            runner.run(groups, costs=[1.0, 1.0])
        assert len(finished) == 2  # the other thread's share ran to its end
    runner.close()
    assert runner.run([[ok]]) == [[1]]  # fewer groups than ``min_groups``: inline, no helper needed


@needs_themes
def test_locator_with_a_helper_thread_finds_exactly_what_one_thread_finds(tmp_path: Path, monkeypatch) -> None:
    """A pointer that changes shape (several learned sprites matched in every moving blob, each
    searched over the whole frame): hits and segments identical with one matching thread and two,
    and the helper thread did part of the matching and searching."""
    from quilt_llava.narratives import box_matches, whole_frame_search
    from quilt_llava.narratives.pipeline import ExtractConfig, analyse
    from quilt_llava.narratives.synthetic import SyntheticConfig, make_synthetic_video
    from quilt_llava.narratives.video import PyAVSource

    from .test_pointer import _views

    sv = make_synthetic_video(
        tmp_path,
        SyntheticConfig(
            name="v",
            width=640,
            height=360,
            fps=15.0,
            pan_seconds=0.8,
            views=_views(2),
            cursor_theme="DMZ-Black",
            cursor_size=24,
            cursor_shapes=("arrow", "hand"),
            shape_changes=True,
            grab_pans=True,
            crf=30,
        ),
    )
    threads: dict[str, int] = {}
    # where the helper thread's work calls them: matching boxes, the whole-frame search
    modules = {"match_in": box_matches, "correlation_peaks": whole_frame_search}
    real = {name: getattr(module, name) for name, module in modules.items()}

    def counted(name: str):
        def call(*args, **kwargs):
            who = threading.current_thread().name.split("_")[0]
            threads[f"{name}@{who}"] = threads.get(f"{name}@{who}", 0) + 1
            return real[name](*args, **kwargs)

        return call

    for name, module in modules.items():
        monkeypatch.setattr(module, name, counted(name))
    results = []
    for match_threads in (1, 2):
        threads.clear()
        config = ExtractConfig(min_segment_s=2.0, prefetch=0)
        config.cursor.match_threads = match_threads
        analysis = analyse(PyAVSource(sv.video), config)
        results.append(
            (
                {i: (h.x, h.y, h.score) for i, h in analysis.hits.items()},
                [(s.span.start, s.span.end) for s in analysis.segments],
                [np.asarray(s.rgb()).tobytes() for s in analysis.segments],
            )
        )
        helper = {k for k in threads if k.endswith("@split-work")}
        if match_threads == 1:
            assert not helper
        else:
            assert {"match_in@split-work", "correlation_peaks@split-work"} <= helper, threads
    assert len(results[0][0]) > 50
    assert results[0] == results[1]


def test_sprite_aligned_with_several_sightings_through_one_template():
    """The learner aligns a candidate with every earlier sighting through one template made from
    it: the same scores and offsets as a template made for each alignment."""
    from quilt_llava.narratives.pointer import Candidate, _align, template_from_sprite

    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (14, 11), dtype=np.uint8)
    mask = np.zeros((14, 11), np.uint8)
    mask[2:12, 1:9] = 255
    cand = Candidate(9, 0, 0, image, mask)
    own = template_from_sprite(image, mask, (0, 0))
    for shift in range(3):
        other_img = rng.integers(0, 255, (16, 13), dtype=np.uint8)
        other_img[shift : shift + 14, 1 : 1 + 11] = image
        other = Candidate(3, 5, 5, other_img, np.full((16, 13), 255, np.uint8))
        assert _align(cand, other, 3, own) == _align(cand, other, 3)
        assert _align(cand, other, 3)[1:] == (1, shift)


@pytest.mark.parametrize("size", [0, 6, 12, 20, 40, 80])
def test_pairs_shared_with_the_helper_are_those_matched_in_opencv(size, monkeypatch):
    """``in_opencv`` tells which matches ``match_in`` hands to OpenCV (the ones worth another
    thread), on small and large regions, for a prior template and a bigger one."""
    cv2 = pytest.importorskip("cv2")
    from quilt_llava.narratives import templates

    luma = np.random.default_rng(0).integers(0, 255, (360, 640), dtype=np.uint8)
    calls = []
    real = cv2.matchTemplate
    monkeypatch.setattr(cv2, "matchTemplate", lambda *a, **k: calls.append(1) or real(*a, **k))
    for t in templates.make_templates((0.6, 1.6), 720):
        for x, y in ((300, 150), (630 - size, 350 - size), (-5, -5)):
            box = (x, y, x + size, y + size)
            calls.clear()
            templates.match_in(luma, box, t)
            assert templates.in_opencv(luma.shape, box, t) == bool(calls), (box, t.image.shape)
