import json
import os
from pathlib import Path

import numpy as np
import pytest

from quilt_llava.errors import ConfigError
from quilt_llava.narratives.caption import format_box, grounded_caption
from quilt_llava.narratives.clustering import (
    PublishedClusterer,
    SpatioTemporalClusterer,
    clusters_for_word_count,
    ground,
)

GOLDEN = Path(__file__).parent / "data" / "clustering_golden.json"


def two_region_trace():
    """The pointer circles region A for 20 s, then region B for 20 s (two points per second)."""
    rng = np.random.default_rng(0)
    rows = []
    for t in np.arange(0, 40, 0.5):
        cx, cy = (0.25, 0.3) if t < 20 else (0.7, 0.7)
        rows.append([float(t), cx + rng.uniform(-0.12, 0.12), cy + rng.uniform(-0.12, 0.12)])
    return rows


UTTERANCES = [
    (0.5, 9.0, "here the glands are crowded and irregular with atypical nuclei"),
    (10.0, 19.0, "look at the brown membrane staining along these cells"),
    (21.0, 30.0, "over here the stroma is loose and edematous with few cells"),
    (31.0, 39.0, "and this small vessel has red cells inside it"),
]


@pytest.mark.parametrize(("words", "k"), [(0, 1), (10, 1), (11, 2), (40, 2), (41, 3), (60, 3), (61, 4)])
def test_word_count_rule(words, k):
    assert clusters_for_word_count(words) == k


def test_published_decay_collapses_late_points():
    """exp(-0.2 t) squeezes everything after ~20 s toward the origin: the flaw we do not copy."""
    points = np.array(two_region_trace())
    pub = PublishedClusterer().labels(points, n_words=20)
    ours = SpatioTemporalClusterer().labels(points, n_words=20)
    late = points[:, 0] >= 20
    # Ours separates the two regions cleanly; the published weighting mixes them.
    assert len(set(ours[late])) == 1 and len(set(ours[~late])) == 1 and ours[late][0] != ours[~late][0]
    assert len(set(pub[~late])) == 2


def test_golden_assignments_and_caption():
    trace = two_region_trace()
    result = {}
    for method in ("spatiotemporal", "published"):
        clusters = ground(trace, UTTERANCES, method=method)
        result[method] = {
            "clusters": [c.to_dict() for c in clusters],
            "caption": grounded_caption([(c.text, c.box) for c in clusters], "plain"),
        }
    if os.environ.get("UPDATE_GOLDEN"):  # regenerate deliberately, then review the diff
        GOLDEN.write_text(json.dumps(result, indent=1) + "\n")
    assert result == json.loads(GOLDEN.read_text())
    ours = result["spatiotemporal"]
    assert len(ours["clusters"]) == 2
    assert ours["clusters"][0]["text"].startswith("here the glands")
    assert ours["clusters"][1]["text"].startswith("over here the stroma")


def test_merge_small_cluster_into_neighbour():
    trace = two_region_trace()
    utterances = [
        (1.0, 15.0, "one two three four five six seven eight nine ten eleven twelve"),
        (25.0, 30.0, "tiny bit"),
    ]
    clusters = ground(trace, utterances, method="spatiotemporal")
    assert len(clusters) == 1
    assert clusters[0].text.endswith("tiny bit")


def test_area_filter_drops_point_clusters():
    trace = [[t, 0.5, 0.5] for t in np.arange(0, 5, 0.5)]
    assert ground(trace, [(0, 5, "a resting pointer says nothing")], method="published") == []


def test_empty_inputs():
    assert ground([], [(0, 1, "text")]) == []
    assert ground([[0, 0.1, 0.1]], []) == []
    with pytest.raises(ConfigError, match="published"):
        ground([[0, 0.1, 0.1]], [(0, 1, "x")], method="nope")


def test_caption_format():
    caption = grounded_caption(
        [("text of cluster one", (0.431, 0.629, 0.8449, 0.69)), ("text of cluster two", (-0.2, 0.0, 0.83, 1.4))],
        "plain",
    )
    assert caption == "text of cluster one [0.43, 0.63, 0.84, 0.69], text of cluster two [0.0, 0.0, 0.83, 1.0]"
    assert grounded_caption([], "just speech ") == "just speech"
    assert format_box((-0.001, 0.5, 0.999, 1)) == "[0.0, 0.5, 1.0, 1.0]"


def test_boxes_leave_out_the_pointer_travelling_in_a_pause():
    """Between two features the pointer crosses the view while nobody speaks; our boxes keep only
    where it was while each feature was talked about (the published method keeps the path)."""
    rows = []
    for t in np.arange(0, 18, 0.1):
        if t < 8:  # circles A while the first sentence is said
            cx, cy, phase = 0.2, 0.25, t
        elif t < 10:  # travels straight to B in the pause
            f = (t - 8) / 2
            rows.append([float(t), 0.2 + f * 0.55, 0.25 + f * 0.45])
            continue
        else:  # circles B during the second sentence
            cx, cy, phase = 0.75, 0.7, t
        rows.append(
            [float(t), cx + 0.08 * np.cos(2 * np.pi * phase / 1.6), cy + 0.08 * np.sin(2 * np.pi * phase / 1.6)]
        )
    speech = [
        (0.2, 7.8, "the glands here are crowded with atypical enlarged nuclei"),
        (10.2, 17.8, "while this loose stroma has only a few spindle cells"),
    ]
    ours = ground(rows, speech, method="spatiotemporal")
    assert [c.text for c in ours] == [s[2] for s in speech]
    for c, (cx, cy) in zip(ours, [(0.2, 0.25), (0.75, 0.7)]):
        assert c.box == pytest.approx((cx - 0.08, cy - 0.08, cx + 0.08, cy + 0.08), abs=0.01)
    published = ground(rows, speech, method="published")
    assert any(c.box[2] - c.box[0] > 0.2 for c in published)  # stretched along the path
