"""Images -> spike trains by rate coding (paper §3.1: firing rate equals the pixel value).

Regular coding gives pixel ``p`` exactly ``round(max_spikes * p)`` evenly spaced spikes in ``n_steps``
steps (deterministic, so MNIST runs are reproducible); Poisson coding fires in each step with
probability ``max_spikes * p / n_steps`` (same expected count).
"""

from __future__ import annotations

import numpy as np

from .data.types import SpikeTrain
from .errors import ConfigError, DatasetError

__all__ = ["rate_encode", "rate_encode_batch", "spike_counts"]


def spike_counts(pixels: np.ndarray, max_spikes: int) -> np.ndarray:
    """round(max_spikes * p), rounding halves up (Python's round() would round 62.5 to 62)."""
    return np.floor(np.asarray(pixels, dtype=np.float64) * max_spikes + 0.5).astype(np.int64)


def _check(image, n_steps, max_spikes, mode, name) -> np.ndarray:
    if mode not in ("regular", "poisson"):
        raise ConfigError(f"must be 'regular' or 'poisson' (got {mode!r})", "rate.mode")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ConfigError(f"must be a positive integer (got {n_steps!r})", "rate.n_steps")
    if isinstance(max_spikes, bool) or not isinstance(max_spikes, (int, np.integer)) or not 0 <= max_spikes <= n_steps:
        raise ConfigError(f"must be an integer in [0, n_steps={n_steps}] (got {max_spikes!r})", "rate.max_spikes")
    p = np.asarray(image, dtype=np.float64).ravel()
    if p.size == 0:
        raise DatasetError("image has no pixels", name)
    if not np.all(np.isfinite(p)):
        raise DatasetError("image contains NaN/inf pixels", name)
    if p.min() < 0 or p.max() > 1:
        raise DatasetError(f"pixel values must lie in [0, 1] (found {p.min():g}..{p.max():g}); divide by 255", name)
    return p


def rate_encode(
    image: np.ndarray,
    n_steps: int = 250,
    max_spikes: int = 125,
    mode: str = "regular",
    dt_ms: float = 1.0,
    rng: np.random.Generator | int | None = None,
    name: str = "image",
) -> SpikeTrain:
    """One image (any shape, pixels in [0, 1]) -> SpikeTrain with afferent ``i`` = flattened pixel ``i``."""
    p = _check(image, n_steps, max_spikes, mode, name)
    if mode == "regular":
        counts = spike_counts(p, max_spikes)
        units = np.repeat(np.arange(p.size, dtype=np.int64), counts)
        # k-th of c spikes at floor(k * n_steps / c): evenly spaced, distinct since c <= n_steps
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        k = np.arange(units.size, dtype=np.int64) - starts
        c = counts[units]
        times = (k * n_steps) // np.maximum(c, 1)
    else:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        fire = gen.random((n_steps, p.size)) < (max_spikes * p / n_steps)[None, :]
        times, units = np.nonzero(fire)
    order = np.lexsort((units, times))
    return SpikeTrain(np.asarray(times)[order], np.asarray(units)[order], p.size, n_steps, dt_ms)


def rate_encode_batch(
    images: np.ndarray,
    n_steps: int = 250,
    max_spikes: int = 125,
    mode: str = "regular",
    dt_ms: float = 1.0,
    seed: int | None = 0,
) -> list[SpikeTrain]:
    """``[B, ...]`` images -> B spike trains; Poisson draws come from one seeded generator."""
    gen = np.random.default_rng(seed)
    return [
        rate_encode(img, n_steps, max_spikes, mode, dt_ms, gen, name=f"image {i}")
        for i, img in enumerate(np.asarray(images))
    ]
