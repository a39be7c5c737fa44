"""Metrics on hand-computed cases (and scikit-learn as an independent reference for classification)."""

import numpy as np
import pytest

from stca_engine.data.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    count_accuracy,
    event_f1,
    precision_recall_f1,
    stream_accuracy,
)
from stca_engine.data.types import Event


def test_count_and_stream_accuracy_by_hand():
    true = np.array([[1, 0, 2], [0, 1, 1], [3, 0, 0]])
    pred = np.array([[1, 0, 2], [0, 2, 1], [2, 0, 1]])
    # pairs right: 3 + 2 + 1 = 6 of 9; streams fully right: only the first
    assert count_accuracy(pred, true) == pytest.approx(6 / 9)
    assert stream_accuracy(pred, true) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        count_accuracy(pred[:2], true)
    with pytest.raises(ValueError):
        stream_accuracy(pred.ravel(), true.ravel())


def _raster(T, C, spikes):
    r = np.zeros((T, C), dtype=np.uint8)
    for t, c in spikes:
        r[t, c] = 1
    return r


def test_event_f1_by_hand():
    t_in = 5
    # stream 0: class 0 event [10, 20), class 1 event [40, 50), class 0 event [60, 70)
    ev0 = [Event(0, 10, 20), Event(1, 40, 50), Event(0, 60, 70)]
    r0 = _raster(
        100,
        2,
        [
            (12, 0),
            (15, 0),  # one class-0 cluster 12..15 inside [10, 19]  -> detects event 1
            (30, 0),  # class-0 cluster at 30: inside no class-0 event -> FP
            (45, 0),  # class-0 cluster inside a class-1 event only   -> FP
            (49, 1),
            (52, 1),  # class-1 cluster 49..52 sticks out of [40, 49] -> FP (tol 0)
        ],
    )  # class-0 event [60, 70) never detected -> FN; class-1 event -> FN
    # stream 1: no events, no spikes; stream 2: one event hit by two clusters (both inside, no FP)
    ev2 = [Event(1, 0, 40)]
    r2 = _raster(60, 2, [(1, 1), (20, 1)])
    out = event_f1([r0, np.zeros((30, 2)), r2], [ev0, [], ev2], t_in, 0)
    assert (out["tp"], out["fp"], out["fn"]) == (2, 3, 2)
    assert out["precision"] == pytest.approx(2 / 5)
    assert out["recall"] == pytest.approx(2 / 4)
    assert out["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)

    # a tolerance of 3 steps lets the class-1 cluster 49..52 count for the event ending at 49
    out = event_f1([r0], [ev0], t_in, tolerance_steps=3)
    assert (out["tp"], out["fp"], out["fn"]) == (2, 2, 1)


def test_event_f1_edge_cases():
    assert event_f1([np.zeros((10, 3))], [[]], 4)["f1"] == 1.0
    only_fp = event_f1([_raster(10, 1, [(3, 0)])], [[]], 4)
    assert (only_fp["tp"], only_fp["fp"], only_fp["fn"], only_fp["f1"]) == (0, 1, 0, 0.0)
    only_fn = event_f1([np.zeros((10, 1))], [[Event(0, 2, 5)]], 4)
    assert (only_fn["fn"], only_fn["recall"], only_fn["precision"]) == (1, 0.0, 0.0)
    with pytest.raises(ValueError):
        event_f1([np.zeros((10, 1))], [[Event(2, 2, 5)]], 4)
    with pytest.raises(ValueError):
        event_f1([np.zeros((10, 1))], [], 4)


def test_classification_by_hand():
    true = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    assert accuracy(pred, true) == pytest.approx(4 / 6)
    cm = confusion_matrix(pred, true, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    prf = precision_recall_f1(pred, true, 3)
    # precision: class0 1/2, class1 2/3, class2 1/1 ; recall: 1/2, 2/2, 1/2
    p = np.array([1 / 2, 2 / 3, 1.0])
    r = np.array([1 / 2, 1.0, 1 / 2])
    f = 2 * p * r / (p + r)
    assert prf["precision"] == pytest.approx(p.mean())
    assert prf["recall"] == pytest.approx(r.mean())
    assert prf["f1"] == pytest.approx(f.mean())
    np.testing.assert_array_equal(prf["per_class"]["support"], [2, 2, 2])
    with pytest.raises(ValueError):
        confusion_matrix(np.array([3]), np.array([0]), 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_matches_sklearn(seed):
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n_classes = 5
    true = rng.integers(0, 4, size=40)  # class 4 never occurs in true
    pred = rng.integers(0, 5, size=40)
    rep = classification_report(pred, true, n_classes)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(true, pred))
    for key, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert rep[key] == pytest.approx(fn(true, pred, average="macro", zero_division=0)), key
    np.testing.assert_array_equal(rep["confusion_matrix"], skm.confusion_matrix(true, pred, labels=range(n_classes)))


def _brute_force_f1_counts(raster, events, t_in, tol):
    """Independent reference: walk each neuron's spikes one step at a time."""
    tp = fp = fn = 0
    T, C = raster.shape
    for c in range(C):
        clusters, last = [], None
        for t in range(T):
            if raster[t, c]:
                if last is not None and t - last < t_in:
                    clusters[-1][1] = t
                else:
                    clusters.append([t, t])
                last = t
        evs = [e for e in events if e.class_index == c]
        inside = lambda cl, e: e.onset_step - tol <= cl[0] and cl[1] <= e.offset_step - 1 + tol  # noqa: E731
        tp += sum(any(inside(cl, e) for cl in clusters) for e in evs)
        fn += sum(not any(inside(cl, e) for cl in clusters) for e in evs)
        fp += sum(not any(inside(cl, e) for e in evs) for cl in clusters)
    return tp, fp, fn


def test_event_f1_matches_brute_force_on_random_streams():
    rng = np.random.default_rng(7)
    for _ in range(60):
        T, C, t_in, tol = (
            int(rng.integers(20, 80)),
            int(rng.integers(1, 4)),
            int(rng.integers(1, 8)),
            int(rng.integers(0, 4)),
        )
        rasters, evss, want = [], [], np.zeros(3, int)
        for _s in range(int(rng.integers(1, 4))):
            raster = (rng.random((T, C)) < rng.choice([0.02, 0.1])).astype(np.uint8)
            evs = []
            for _e in range(int(rng.integers(0, 4))):
                on = int(rng.integers(0, T - 5))
                evs.append(Event(int(rng.integers(0, C)), on, on + int(rng.integers(1, 20))))
            rasters.append(raster)
            evss.append(evs)
            want += _brute_force_f1_counts(raster, evs, t_in, tol)
        out = event_f1(rasters, evss, t_in, tol)
        assert (out["tp"], out["fp"], out["fn"]) == tuple(want)
        assert out["tp"] + out["fn"] == sum(len(e) for e in evss)


def test_strict_event_f1_counts_a_split_detection_as_a_false_positive():
    """Issue #11 item 7: one event hit by two clusters is one hit and one false alarm when strict."""
    t_in = 5
    ev = [Event(1, 0, 40), Event(0, 50, 60)]
    r = _raster(80, 2, [(1, 1), (20, 1), (52, 0)])  # class 1: two clusters inside one event
    lenient = event_f1([r], [ev], t_in, 0)
    strict = event_f1([r], [ev], t_in, 0, strict=True)
    assert (lenient["tp"], lenient["fp"], lenient["fn"]) == (2, 0, 0)
    assert (strict["tp"], strict["fp"], strict["fn"]) == (2, 1, 0)
    assert strict["precision"] == pytest.approx(2 / 3) and lenient["f1"] == 1.0


def test_strict_event_f1_is_one_to_one_on_random_streams():
    from stca_engine.clusters import cluster_spans

    rng = np.random.default_rng(11)
    for _ in range(60):
        T, C, t_in, tol = 80, int(rng.integers(1, 4)), int(rng.integers(1, 8)), int(rng.integers(0, 4))
        raster = (rng.random((T, C)) < rng.choice([0.02, 0.1])).astype(np.uint8)
        # events that do not overlap (as in spliced streams), so one to one loses no true hit
        evs, at = [], 0
        while at < T - 10 and len(evs) < 4:
            on = at + int(rng.integers(0, 10))
            off = on + int(rng.integers(1, 15))
            evs.append(Event(int(rng.integers(0, C)), on, off))
            at = off + 2 * tol + 1
        lenient = event_f1([raster], [evs], t_in, tol)
        strict = event_f1([raster], [evs], t_in, tol, strict=True)
        n_clusters = sum(len(cluster_spans(np.flatnonzero(raster[:, c]), t_in)) for c in range(C))
        assert strict["tp"] + strict["fp"] == n_clusters  # every cluster is one hit or one false alarm
        assert strict["tp"] == lenient["tp"] and strict["fn"] == lenient["fn"]
        assert strict["fp"] >= lenient["fp"]
