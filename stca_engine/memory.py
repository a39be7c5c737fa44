"""How much memory a training run needs, estimated before it starts (``STCA_MAX_RUN_MB``).

One shared classroom server trains many sessions at once; four hidden layers of 4096 neurons on
5000 streams took it from 1.3 to 6-7 GB. So ``stca train`` and the Train page estimate a run from
what sets its size and refuse it above the operator's cap (``limits.max_run_mb``), naming the
estimate, the cap and what to reduce.

What is counted (``dtype`` bytes ``b``; ``T`` = longest sample in steps, ``B`` = batch, layer sizes
``n_0 .. n_L``; the CPU kernels, ``stca_engine.kernels.cpu``, allocate exactly these):

* **activations** of one minibatch: the dense input ``T·B·n_0``; per layer ``l`` the forward
  ``V`` and ``O`` (``2·T·B·n_l``), the backward ``gV``, ``gO`` and ``gI`` (``3·T·B·n_l``) and the
  input gradient ``T·B·n_{l-1}``; the row index of the sparse input (8 bytes per (step, sample));
  all times ``b``;
* **weights**: parameters, gradients, optimiser state (Adam 2, SGD with momentum 1), the last good
  copy kept for a NaN restore, the per-thread weight-gradient accumulators (``min(B, threads)``),
  two transient gradient temporaries (the summed and the scaled accumulator), and the weights kept
  per epoch for replay (the app) — per run (two when objectives are compared);
* **data**: the encoded datasets' spikes (16 bytes each: step + afferent) when known.

It is an estimate of the large arrays, not of Python's overhead (~300 MB per server process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import limits
from .errors import ConfigError

__all__ = ["RunEstimate", "estimate_run", "check_run", "dataset_spike_bytes", "longest_steps"]

MiB = 1024 * 1024
_DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
_OPTIMIZER_STATE = {"adam": 2, "sgd": 1}


@dataclass(frozen=True)
class RunEstimate:
    sizes: tuple[int, ...]
    n_steps: int
    batch_size: int
    dtype: str
    n_runs: int
    parts: dict = field(default_factory=dict)  # name -> bytes

    @property
    def total_bytes(self) -> int:
        return int(sum(self.parts.values()))

    @property
    def total_mb(self) -> float:
        return self.total_bytes / MiB

    def describe(self) -> str:
        """'≈ 812 MB (activations 700 MB, weights 12 MB, data 100 MB) for network 32-64-4, 2000 steps × batch 8, float32'."""
        parts = ", ".join(f"{k} {_mb(v)}" for k, v in self.parts.items() if v)
        runs = f", {self.n_runs} runs" if self.n_runs > 1 else ""
        return (
            f"≈ {_mb(self.total_bytes)} ({parts}) for network {'-'.join(map(str, self.sizes))}, "
            f"{self.n_steps} steps × batch {self.batch_size}, {self.dtype}{runs}"
        )

    def advice(self) -> str:
        """What to reduce, biggest part first."""
        act, w = self.parts.get("activations", 0), self.parts.get("weights", 0)
        data = self.parts.get("data", 0)
        if w >= act and w >= data:
            return "use fewer or smaller hidden layers"
        if data > act:
            return "use fewer training / test samples"
        return "use a smaller batch, shorter samples (fewer events per stream) or fewer or smaller hidden layers"


def _mb(n: int) -> str:
    mb = n / MiB
    return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"


def estimate_run(
    sizes,
    n_steps: int,
    batch_size: int,
    dtype: str = "float32",
    optimizer: str = "adam",
    momentum: float = 0.0,
    n_runs: int = 1,
    data_bytes: int = 0,
    kept_weight_bytes: int = 0,
    threads: int | None = None,
) -> RunEstimate:
    """The estimate of one run (see the module docstring); ``kept_weight_bytes``: the weight copies
    kept for replay per run (the app's cap), ``data_bytes``: the encoded datasets (``dataset_spike_bytes``)."""
    sizes = tuple(int(n) for n in sizes)
    b = _DTYPE_BYTES.get(str(dtype).replace("torch.", ""), 4)
    T, B = max(1, int(n_steps)), max(1, int(batch_size))
    threads = threads or os.cpu_count() or 1
    act = T * B * sizes[0] * b
    for n_prev, n in zip(sizes[:-1], sizes[1:]):
        act += T * B * (5 * n + n_prev) * b + 8 * T * B
    w = sum(a * c for a, c in zip(sizes[:-1], sizes[1:])) * b
    state = _OPTIMIZER_STATE.get(optimizer, 1) if optimizer != "sgd" or momentum else 0
    # params, grads, optimiser state, the last good copy, per-thread accumulators, 2 transient gradient temporaries
    copies = 1 + 1 + state + 1 + min(B, threads) + 2
    weights = (w * copies + int(kept_weight_bytes)) * max(1, int(n_runs))
    parts = {"activations": int(act), "weights": int(weights), "data": int(data_bytes)}
    return RunEstimate(sizes, T, B, str(dtype), max(1, int(n_runs)), parts)


def check_run(est: RunEstimate, what: str = "training run") -> RunEstimate:
    """ConfigError naming the estimate, the cap and what to reduce when ``est`` is over
    ``STCA_MAX_RUN_MB``; else ``est``."""
    cap = limits.max_run_mb()
    if est.total_mb > cap:
        raise ConfigError(
            f"needs an estimated {_mb(est.total_bytes)} of memory, over the limit of {cap:g} MB "
            f"(set by {limits.ENV_MAX_RUN_MB}): {est.describe()}; {est.advice()}",
            what,
        )
    return est


def dataset_spike_bytes(*datasets) -> int:
    """Bytes of the encoded spikes of ``datasets`` (``SpikeDataset``s; None is skipped)."""
    total = 0
    for ds in datasets:
        if ds is None:
            continue
        for smp in ds.samples:
            total += int(smp.spikes.times.nbytes) + int(smp.spikes.units.nbytes) + 200
    return total


def longest_steps(*datasets) -> int:
    """The longest sample of ``datasets`` in steps (what one dense minibatch is padded to)."""
    return max([int(smp.spikes.n_steps) for ds in datasets if ds is not None for smp in ds.samples] or [1])
