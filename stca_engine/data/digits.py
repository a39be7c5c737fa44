"""scikit-learn's bundled 8x8 digits: an image set that needs no download (1797 images)."""

from __future__ import annotations

import numpy as np

from .mnist import ImageSet


def load_digits(test_fraction: float = 0.3, seed: int = 0) -> ImageSet:
    """Images in [0, 1] (the originals are 0..16) with a seeded, per-class stratified split."""
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    images = (d.images / 16.0).astype(np.float32)
    labels = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(test_fraction * idx.size))
        test.extend(idx[:n_test].tolist())
        train.extend(idx[n_test:].tolist())
    return ImageSet(images, labels, [str(c) for c in range(10)], sorted(train), sorted(test), "digits")
