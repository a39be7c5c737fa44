"""The shared currency between encoders, loaders, streams, the trainer, the CLI and the app.

Spike rasters are kept sparse (one time step and one afferent per spike) because sound datasets are
~98 % silence; they become dense ``[T, B, n_in]`` tensors only per minibatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class SpikeTrain:
    """A sparse spike raster: spike ``i`` is on afferent ``units[i]`` at step ``times[i]``."""

    times: np.ndarray  # int32, step index in [0, n_steps)
    units: np.ndarray  # int32, afferent index in [0, n_units)
    n_units: int
    n_steps: int
    dt_ms: float

    def __post_init__(self):
        # int32, not int64: a data set is held as spike lists, and 8 bytes per spike instead of 16 is the
        # difference between 12 000 rate-coded MNIST digits fitting the default run memory or not
        object.__setattr__(self, "times", _index_array(self.times, "times"))
        object.__setattr__(self, "units", _index_array(self.units, "units"))

    @property
    def n_spikes(self) -> int:
        return int(self.times.size)

    @property
    def duration_s(self) -> float:
        return self.n_steps * self.dt_ms / 1000.0

    def to_dense(self, dtype=torch.float32, device=None, n_steps: int | None = None) -> torch.Tensor:
        """``[n_steps, n_units]`` 0/1 tensor (optionally padded/cropped to ``n_steps``)."""
        n_steps = self.n_steps if n_steps is None else n_steps
        out = torch.zeros(n_steps, self.n_units, dtype=dtype, device=device)
        keep = self.times < n_steps
        if keep.any():
            t = torch.as_tensor(self.times[keep], device=device)
            u = torch.as_tensor(self.units[keep], device=device)
            out[t, u] = 1
        return out

    def shifted(self, offset_steps: int, n_steps: int) -> SpikeTrain:
        """The same spikes ``offset_steps`` later, in a raster ``n_steps`` long (for splicing streams)."""
        t = self.times + offset_steps
        keep = (t >= 0) & (t < n_steps)
        return SpikeTrain(t[keep], self.units[keep], self.n_units, n_steps, self.dt_ms)

    @staticmethod
    def merge(trains: list[SpikeTrain], n_steps: int) -> SpikeTrain:
        """Union of trains on the same afferents (duplicates at one step and afferent kept once)."""
        if not trains:
            raise ValueError("merge needs at least one spike train")
        n_units, dt = trains[0].n_units, trains[0].dt_ms
        t = np.concatenate([tr.times for tr in trains]).astype(np.int64)
        u = np.concatenate([tr.units for tr in trains]).astype(np.int64)
        key = np.unique(t * n_units + u)
        return SpikeTrain(key // n_units, key % n_units, n_units, n_steps, dt)


_INDEX_MAX = np.iinfo(np.int32).max


def _index_array(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.int32:
        return a
    if a.size and (a.max() > _INDEX_MAX or a.min() < -_INDEX_MAX):
        raise ValueError(f"spike {name} beyond the int32 range ({int(a.min())} .. {int(a.max())})")
    return a.astype(np.int32)


@dataclass(frozen=True)
class Event:
    """One sound event inside a stream, in steps (onset inclusive, offset exclusive)."""

    class_index: int
    onset_step: int
    offset_step: int


@dataclass
class Sample:
    """One training/test item.

    ``target`` is a per-class desired cluster count ``[C]`` (int64) for ``task="detect"`` and a class
    index (int) for ``task="classify"``. ``events`` is filled for streams only and is never used by the
    loss (evaluation and plots only).
    """

    spikes: SpikeTrain
    target: np.ndarray | int
    events: list[Event] = field(default_factory=list)
    name: str = ""


@dataclass
class SpikeDataset:
    samples: list[Sample]
    n_inputs: int
    class_names: list[str]
    task: str  # "detect" | "classify"
    dt_ms: float

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def lengths(self, indices) -> list[int]:
        """Steps of each sample that ``batch(indices)`` holds (the rest of its ``T`` is padding)."""
        return [self.samples[i].spikes.n_steps for i in indices]

    def batch(self, indices, dtype=torch.float32, device=None, transform=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense ``x [T, B, n_in]`` (zero-padded to the longest sample) and the stacked targets;
        ``transform(train) -> train`` changes each sample's spikes first (training augmentation)."""
        picked = [self.samples[i] for i in indices]
        T = max(s.spikes.n_steps for s in picked)
        trains = [s.spikes if transform is None else transform(s.spikes) for s in picked]
        x = torch.stack([t.to_dense(dtype, device, n_steps=T) for t in trains], dim=1)
        if self.task == "detect":
            target = torch.as_tensor(np.stack([np.asarray(s.target) for s in picked]), dtype=torch.long, device=device)
        else:
            target = torch.as_tensor([int(s.target) for s in picked], dtype=torch.long, device=device)
        return x, target
