"""Spatio-temporal clustering of a cursor trace and mapping of speech to clusters.

Two methods share the post-processing (IQR outlier removal, boxes, area filter,
merging of clusters with too few words):

- ``"published"``: the released defaults. KMeans on (x, y) weighted by exp(-0.2 t),
  each utterance mapped to the cluster whose mean time is nearest its end time. The
  weighting pulls every point after ~20 s toward the origin, so late clusters
  collapse; it is kept only to reproduce the published behaviour.
- ``"spatiotemporal"`` (our default): KMeans on (x, y, t / time_scale_s), so a second
  of time weighs like 1/time_scale_s of the image width, with no decay. Each
  utterance goes to the cluster holding most trace points while it is spoken (falling
  back to the nearest cluster in time), which follows the pointer rather than a
  single instant. A box is then fitted to the points shown while its own words were
  spoken (0.3 s either side), so the pointer travelling between two features in a
  pause stretches neither box.

A :class:`Clusterer` has one required method, ``labels(points, n_words)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from quilt_llava.errors import ConfigError

# Released thresholds.
IQR_MULTIPLIER = 1.5
MIN_BOX_AREA = 0.02
MAX_BOX_AREA = 0.7
MIN_CLUSTER_WORDS = 3  # clusters with <= this many words are merged into a neighbour


def clusters_for_word_count(n_words: int) -> int:
    """The released rule: <=10 words: 1 cluster; 11-40: 2; 41-60: 3; more: 4."""
    if n_words <= 10:
        return 1
    if n_words <= 40:
        return 2
    if n_words <= 60:
        return 3
    return 4


def word_count(text: str) -> int:
    return len(text.split())


class Clusterer(Protocol):
    def labels(self, points: np.ndarray, n_words: int) -> np.ndarray:
        """Cluster ``points`` (n, 3) of [t, x, y] (t in seconds, x/y in [0, 1]); return (n,) int labels."""
        ...


def _kmeans(features: np.ndarray, k: int, seed: int, n_init: int = 10, max_iter: int = 100) -> np.ndarray:
    """Lloyd's KMeans with k-means++ seeding, best of ``n_init`` runs by inertia (deterministic for a seed).

    Traces hold hundreds of points and k <= 4, so plain NumPy is quick and avoids
    importing scikit-learn for every video."""
    k = max(1, min(k, len(np.unique(features, axis=0))))
    if k == 1:
        return np.zeros(len(features), dtype=int)
    rng = np.random.default_rng(seed)
    x = np.asarray(features, dtype=np.float64)
    best_labels, best_inertia = None, np.inf
    for _ in range(n_init):
        centers = [x[rng.integers(len(x))]]
        for _ in range(1, k):
            d2 = np.min(((x[:, None, :] - np.array(centers)[None]) ** 2).sum(-1), axis=1)
            probs = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
            centers.append(x[rng.choice(len(x), p=probs)])
        c = np.array(centers)
        labels = np.zeros(len(x), dtype=int)
        for it in range(max_iter):
            d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)  # (n, k)
            new_labels = d2.argmin(1)
            if it and np.array_equal(new_labels, labels):
                break
            labels = new_labels
            for j in range(k):
                members = x[labels == j]
                if len(members):
                    c[j] = members.mean(0)
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia - 1e-12:
            best_labels, best_inertia = labels.copy(), inertia
    assert best_labels is not None
    # Number clusters by first appearance, so labels do not depend on the random start.
    _, first = np.unique(best_labels, return_index=True)
    order = {old: new for new, old in enumerate(best_labels[np.sort(first)])}
    return np.array([order[v] for v in best_labels], dtype=int)


@dataclass(frozen=True)
class PublishedClusterer:
    """KMeans on (x, y) * exp(-decay * t), t in seconds from the segment start (the released weighting)."""

    decay: float = 0.2
    seed: int = 0

    def labels(self, points: np.ndarray, n_words: int) -> np.ndarray:
        t = points[:, 0] - points[:, 0].min()
        w = np.exp(-self.decay * t)[:, None]
        return _kmeans(points[:, 1:3] * w, clusters_for_word_count(n_words), self.seed)


@dataclass(frozen=True)
class SpatioTemporalClusterer:
    """KMeans on (x, y, t / time_scale_s) with no decay."""

    time_scale_s: float = 20.0
    seed: int = 0

    def labels(self, points: np.ndarray, n_words: int) -> np.ndarray:
        t = (points[:, 0] - points[:, 0].min()) / self.time_scale_s
        features = np.column_stack([points[:, 1], points[:, 2], t])
        return _kmeans(features, clusters_for_word_count(n_words), self.seed)


CLUSTERERS: dict[str, type] = {"published": PublishedClusterer, "spatiotemporal": SpatioTemporalClusterer}
# How utterances are mapped to clusters for each method.
MAPPINGS = {"published": "end_time", "spatiotemporal": "overlap"}


def make_clusterer(method: str, seed: int = 0) -> Clusterer:
    if method not in CLUSTERERS:
        raise ConfigError(f"clustering method {method!r} is unknown; choose one of {', '.join(CLUSTERERS)}")
    return CLUSTERERS[method](seed=seed)


@dataclass
class Cluster:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 normalised
    start: float
    end: float
    mean_t: float
    point_times: np.ndarray
    utterances: list[tuple[float, float, str]] = field(default_factory=list)
    points: np.ndarray | None = None  # (n, 3) [t, x, y] the box was made from

    @property
    def text(self) -> str:
        return " ".join(u[2] for u in sorted(self.utterances)).strip()

    @property
    def n_words(self) -> int:
        return word_count(self.text)

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 4) for v in self.box],
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
        }


def _iqr_keep(values: np.ndarray) -> np.ndarray:
    q1, q3 = np.percentile(values, [25, 75])
    spread = q3 - q1
    return (values >= q1 - IQR_MULTIPLIER * spread) & (values <= q3 + IQR_MULTIPLIER * spread)


def _build(points: np.ndarray, labels: np.ndarray) -> list[Cluster]:
    clusters = []
    for label in np.unique(labels):
        pts = points[labels == label]
        keep = _iqr_keep(pts[:, 1]) & _iqr_keep(pts[:, 2])
        pts = pts[keep]
        if len(pts) == 0:
            continue
        x1, y1 = pts[:, 1].min(), pts[:, 2].min()
        x2, y2 = pts[:, 1].max(), pts[:, 2].max()
        area = (x2 - x1) * (y2 - y1)
        if area < MIN_BOX_AREA or area > MAX_BOX_AREA:
            continue
        clusters.append(
            Cluster(
                (x1, y1, x2, y2),
                float(pts[:, 0].min()),
                float(pts[:, 0].max()),
                float(pts[:, 0].mean()),
                pts[:, 0],
                points=pts,
            )
        )
    clusters.sort(key=lambda c: c.mean_t)
    return clusters


def _map_utterances(clusters: list[Cluster], utterances: Sequence[tuple[float, float, str]], mapping: str) -> None:
    means = np.array([c.mean_t for c in clusters])
    for start, end, text in utterances:
        index = int(np.argmin(np.abs(means - end)))
        if mapping == "overlap":
            counts = [int(((c.point_times >= start) & (c.point_times <= end)).sum()) for c in clusters]
            if max(counts) > 0:
                index = int(np.argmax(counts))
            else:
                index = int(np.argmin(np.abs(means - 0.5 * (start + end))))
        clusters[index].utterances.append((start, end, text))


def _merge_small(clusters: list[Cluster]) -> list[Cluster]:
    """Merge clusters with <= MIN_CLUSTER_WORDS words into a neighbour until none is left (or one cluster)."""
    clusters = list(clusters)
    while len(clusters) > 1:
        small = next((i for i, c in enumerate(clusters) if c.n_words <= MIN_CLUSTER_WORDS), None)
        if small is None:
            break
        if small == 0:
            target = 1
        elif small == len(clusters) - 1:
            target = small - 1
        else:
            before, after = clusters[small - 1], clusters[small + 1]
            target = small - 1 if before.n_words >= after.n_words else small + 1
        clusters[target].utterances.extend(clusters[small].utterances)
        del clusters[small]
    return clusters


def ground(
    trace: Sequence[Sequence[float]],
    utterances: Sequence[tuple[float, float, str]],
    method: str = "spatiotemporal",
    clusterer: Clusterer | None = None,
    fit_to_speech: bool | None = None,
) -> list[Cluster]:
    """Cluster a segment's trace ([t, x, y] rows) and attach the utterances ((start, end, text)) to clusters.

    Returns the surviving clusters in time order; an empty list when there is no
    trace, no speech, or every box was filtered out. ``fit_to_speech``: fit each box
    to the points shown while its words were spoken (default: for ``spatiotemporal`` only).
    """
    if method not in MAPPINGS:
        raise ConfigError(f"clustering method {method!r} is unknown; choose one of {', '.join(MAPPINGS)}")
    points = np.asarray(trace, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0 or not utterances:
        return []
    clusterer = clusterer or make_clusterer(method)
    n_words = sum(word_count(u[2]) for u in utterances)
    labels = clusterer.labels(points, n_words)
    clusters = _build(points, labels)
    if not clusters:
        return []
    _map_utterances(clusters, utterances, MAPPINGS[method])
    clusters = _merge_small(clusters)
    if method == "spatiotemporal" if fit_to_speech is None else fit_to_speech:
        for c in clusters:
            _fit_to_speech(c)
    return [c for c in clusters if c.text]


SPEECH_PAD_S = 0.3  # pointer positions this close to a cluster's words still count for its box
MIN_SPEECH_POINTS = 5


def _fit_to_speech(cluster: Cluster) -> None:
    """Shrink a cluster's box to the points shown while its own words were spoken: the pointer
    travelling between two features in a pause belongs to neither. Kept as is when too few
    points fall inside its speech."""
    if cluster.points is None or not cluster.utterances:
        return
    t = cluster.points[:, 0]
    during = np.zeros(len(t), bool)
    for start, end, _ in cluster.utterances:
        during |= (t >= start - SPEECH_PAD_S) & (t <= end + SPEECH_PAD_S)
    if during.sum() < MIN_SPEECH_POINTS:
        return
    pts = cluster.points[during]
    x1, y1, x2, y2 = pts[:, 1].min(), pts[:, 2].min(), pts[:, 1].max(), pts[:, 2].max()
    if (x2 - x1) * (y2 - y1) >= MIN_BOX_AREA:
        cluster.box = (x1, y1, x2, y2)
