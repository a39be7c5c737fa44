"""Rate coding of images: exact regular counts and spacing, Poisson statistics, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from stca_engine.errors import ConfigError, DatasetError
from stca_engine.rate import rate_encode, rate_encode_batch


def test_regular_counts_are_round_125p_and_evenly_spaced():
    pixels = np.array([0.0, 1.0, 0.5, 0.004, 0.003, 0.2, 0.7, 1 / 3])
    train = rate_encode(pixels.reshape(2, 4))
    assert train.n_units == 8 and train.n_steps == 250
    counts = np.bincount(train.units, minlength=8)
    # 125 p: 0, 125, 62.5 -> 63 (half up), 0.5 -> 1, 0.375 -> 0, 25, 87.5 -> 88, 41.67 -> 42
    assert counts.tolist() == [0, 125, 63, 1, 0, 25, 88, 42]
    for u in range(8):
        t = np.sort(train.times[train.units == u])
        assert np.all((t >= 0) & (t < 250))
        assert np.unique(t).size == t.size
        if t.size > 1:
            gaps = np.diff(t)
            assert gaps.max() - gaps.min() <= 1  # regular train
    assert np.array_equal(np.sort(train.times[train.units == 1]), np.arange(0, 250, 2))
    # deterministic
    again = rate_encode(pixels.reshape(2, 4))
    assert np.array_equal(again.times, train.times) and np.array_equal(again.units, train.units)


def test_poisson_rates_and_seeding():
    pixels = np.array([0.0, 0.25, 0.5, 1.0])
    counts = np.zeros(4)
    gen = np.random.default_rng(123)
    n = 400
    for _ in range(n):
        counts += np.bincount(rate_encode(pixels, mode="poisson", rng=gen).units, minlength=4)
    mean = counts / n
    expected = 125 * pixels
    # Bernoulli(p/2) per step over 250 steps: sd of the mean over 400 draws is < 0.4 spikes
    assert np.all(np.abs(mean - expected) < 1.6), mean
    assert mean[0] == 0
    a = rate_encode(pixels, mode="poisson", rng=7)
    b = rate_encode(pixels, mode="poisson", rng=7)
    assert np.array_equal(a.times, b.times) and np.array_equal(a.units, b.units)
    batch = rate_encode_batch(np.stack([pixels, pixels]), mode="poisson", seed=1)
    assert len(batch) == 2 and not np.array_equal(batch[0].times, batch[1].times)


def test_custom_steps_and_dt():
    tr = rate_encode(np.array([1.0, 0.5]), n_steps=100, max_spikes=10, dt_ms=2.0)
    assert tr.n_steps == 100 and tr.dt_ms == 2.0 and np.bincount(tr.units).tolist() == [10, 5]
    dense = tr.to_dense()
    assert dense.shape == (100, 2) and int(dense.sum()) == 15


@pytest.mark.parametrize(
    "image,kwargs,err,match",
    [
        (np.array([0.5, 1.5]), {}, DatasetError, r"\[0, 1\]"),
        (np.array([0.5, np.nan]), {}, DatasetError, "NaN"),
        (np.zeros(0), {}, DatasetError, "no pixels"),
        (np.array([0.5]), {"mode": "burst"}, ConfigError, "rate.mode"),
        (np.array([0.5]), {"n_steps": 0}, ConfigError, "rate.n_steps"),
        (np.array([0.5]), {"max_spikes": 300}, ConfigError, "rate.max_spikes"),
    ],
)
def test_bad_inputs(image, kwargs, err, match):
    with pytest.raises(err, match=match):
        rate_encode(image, **kwargs)
