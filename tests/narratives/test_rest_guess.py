"""A pointer that rests from a view's start and never moves, while an annotation stroke starts
being drawn elsewhere: the spot where the stroke began changed, so the locator's look for "a
pointer that rested and left" (made while no pointer is verified) took a lookalike in the tissue
there for the pointer. Once the real pointer is verified, its backfill replaces those guesses
where it matches better (``ViewHistory.guessed``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")


def test_a_stroke_started_elsewhere_does_not_take_the_place_of_a_pointer_at_rest(tmp_path: Path) -> None:
    from quilt_llava.narratives.pipeline import ExtractConfig, analyse
    from quilt_llava.narratives.synthetic import SyntheticConfig, make_synthetic_video
    from quilt_llava.narratives.video import PyAVSource

    # The benchmark's quick "webcam" video: in its second view the pointer rests from the view's
    # start until it is hidden, and a stroke is drawn far from it before that.
    cfg = SyntheticConfig(name="v", seed=7, n_views=2, view_seconds=(5.0, 6.0), crf=23, webcam=True, annotations=True)
    sv = make_synthetic_video(tmp_path, cfg)
    view = sv.truth["views"][1]
    assert not view["hidden"] or view["hidden"][0][0] > view["strokes"][0]["start"]  # the set-up holds
    analysis = analyse(PyAVSource(sv.video), ExtractConfig(min_segment_s=2.0))
    resting = [i for i, f in enumerate(sv.truth["frames"]) if f["view"] == 1 and f["cursor"] is not None]
    ok = []
    for i in resting:
        hit = analysis.hits.get(i)
        cx, cy = sv.truth["frames"][i]["cursor"]
        ok.append(hit is not None and np.hypot(hit.x - cx, hit.y - cy) <= 10)
    assert np.mean(ok) >= 0.95, f"the pointer found on {np.mean(ok):.2f} of its frames in the second view"
