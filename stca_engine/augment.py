"""Training-time changes to spike rasters, so a network learns the sound and not one take's exact spikes.

A network trained on a few hundred clips reaches zero loss by placing clusters on the precise spike
patterns of those clips, and then falls silent on new recordings of the same classes (docs/RESULTS.md,
"real sound"). Each training batch therefore sees a slightly different version of every sample:

* ``jitter_steps``: every spike moves by a random whole number of steps in ``[-j, j]``;
* ``drop``: every spike is removed with this probability;
* ``stretch``: the whole sample is played ``1 ± stretch`` times as fast (spike times scaled);
* ``noise_hz``: random extra spikes at this rate per afferent.

Everything is drawn from a ``numpy`` generator the caller seeds (the Trainer seeds it from the run's seed,
the epoch and the batch), so a run stays repeatable and a paused epoch resumes identically.
Test and validation data are never augmented.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .data.types import SpikeTrain
from .errors import ConfigError

__all__ = ["Augment", "augment_train"]


@dataclass(frozen=True)
class Augment:
    jitter_steps: int = 0
    drop: float = 0.0
    stretch: float = 0.0
    noise_hz: float = 0.0

    def __post_init__(self):
        j = self.jitter_steps
        if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j <= 50:
            raise ConfigError(f"jitter_steps must be an integer in 0..50, got {j!r}", "augment")
        for name, hi in (("drop", 0.9), ("stretch", 0.5), ("noise_hz", 100.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= hi:
                raise ConfigError(f"{name} must be a number in 0..{hi:g}, got {v!r}", "augment")

    @property
    def active(self) -> bool:
        return bool(self.jitter_steps or self.drop or self.stretch or self.noise_hz)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Augment:
        return cls(**(d or {}))


def augment_train(train: SpikeTrain, aug: Augment, rng: np.random.Generator) -> SpikeTrain:
    """A changed copy of ``train`` (same afferents and length); repeated spikes at one step are kept once."""
    if not aug.active:
        return train
    t = train.times.astype(np.float64)
    u = train.units
    if aug.stretch:
        t = t * rng.uniform(1.0 - aug.stretch, 1.0 + aug.stretch)
    if aug.jitter_steps:
        t = t + rng.integers(-aug.jitter_steps, aug.jitter_steps + 1, size=t.size)
    t = np.rint(t).astype(np.int64)
    keep = (t >= 0) & (t < train.n_steps)
    if aug.drop:
        keep &= rng.random(t.size) >= aug.drop
    t, u = t[keep], u[keep]
    if aug.noise_hz:
        expected = aug.noise_hz * train.n_units * train.n_steps * train.dt_ms / 1000.0
        n = int(rng.poisson(expected))
        t = np.concatenate([t, rng.integers(0, train.n_steps, size=n)])
        u = np.concatenate([u, rng.integers(0, train.n_units, size=n)])
    key = np.unique(t * train.n_units + u)
    return SpikeTrain(key // train.n_units, key % train.n_units, train.n_units, train.n_steps, train.dt_ms)
