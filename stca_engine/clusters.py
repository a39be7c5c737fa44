"""Spike clusters and the k⁺ / k⁻ time points of STCA (SPEC §3).

All selections work on time-major tensors ``[T, ...]`` (usually ``[T, B, N]``) with vectorised torch
ops, so they run unchanged on CPU and GPU without a Python loop over samples or neurons.

Rules (T_in in steps):
- a cluster is a run of spikes whose inter-spike intervals are < T_in; a gap ≥ T_in starts a new one;
- k⁺: among steps at distance ≥ T_in from every spike of the neuron, the highest local maximum of V
  below ϑ (V[k-1] < V[k] ≥ V[k+1]; the first/last step compare with their one neighbour), ties: the
  earliest; if there is none, the highest V among those steps (ties: earliest); if no step
  qualifies: none (-1, counted as ``no_kplus``). A step qualifies only where V > 0, i.e. where some
  (net excitatory) input has reached the neuron. V is exactly 0 before any input (always at the
  first step, whose PSP kernel is 0) and all along a neuron whose inputs are silent: there V depends
  on no weight, so a k⁺ there (a flat trace's first step used to count as its peak) gave a loss with
  no gradient and training sat at that silent fixed point unseen. Steps with V < 0 are left out too:
  pushing a net-inhibited neuron up at a negative "peak" is what the first-step rule happened to
  avoid, and allowing it made the toy learning tests learn worse (see docs/ARCHITECTURE.md);
- k⁻: the last spike of the cluster with the fewest spikes (ties: smaller sum of V over its spikes,
  then the earliest cluster); -1 when the neuron never fired.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import ConfigError

_FAR = 1 << 40  # "no spike" distance, larger than any time axis


def _as_tensor(a, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach()
    try:
        return torch.as_tensor(np.asarray(a))
    except Exception:  # noqa: BLE001 - anything not array-like
        raise ConfigError(f"{name} must be an array or tensor, got {type(a).__name__}", "clusters") from None


def _check_t_in(t_in_steps) -> int:
    if isinstance(t_in_steps, bool) or not isinstance(t_in_steps, (int, np.integer)) or t_in_steps < 1:
        raise ConfigError(f"t_in_steps must be an integer >= 1, got {t_in_steps!r}", "clusters")
    return int(t_in_steps)


def _time_index(x: torch.Tensor) -> torch.Tensor:
    """``[T, 1, 1, ...]`` long step index broadcastable against ``x``."""
    return torch.arange(x.shape[0], device=x.device).view(-1, *([1] * (x.dim() - 1)))


def _prev_spike(spk: torch.Tensor) -> torch.Tensor:
    """Step of the latest spike at or before each step (``-_FAR`` if none)."""
    t = _time_index(spk).expand_as(spk)
    marked = torch.where(spk, t, torch.full_like(t, -_FAR))
    return torch.cummax(marked, dim=0).values


def _next_spike(spk: torch.Tensor) -> torch.Tensor:
    """Step of the earliest spike at or after each step (``+_FAR`` if none)."""
    t = _time_index(spk).expand_as(spk)
    marked = torch.where(spk, t, torch.full_like(t, _FAR))
    return torch.flip(torch.cummin(torch.flip(marked, [0]), dim=0).values, [0])


def cluster_starts(spikes, t_in_steps: int) -> torch.Tensor:
    """Bool ``[T, ...]``: True at each spike that opens a new cluster."""
    t_in = _check_t_in(t_in_steps)
    spk = _as_tensor(spikes, "spikes") != 0
    prev = _prev_spike(spk)
    prev_excl = torch.cat([torch.full_like(prev[:1], -_FAR), prev[:-1]], dim=0)
    return spk & (_time_index(spk) - prev_excl >= t_in)


def count_clusters(spikes, t_in_steps: int) -> torch.Tensor:
    """Number of spike clusters per neuron: ``[T, B, N] -> [B, N]`` (any ``[T, ...] -> [...]``), long."""
    return cluster_starts(spikes, t_in_steps).sum(dim=0)


def cluster_ids(spikes, t_in_steps: int) -> torch.Tensor:
    """``[T, ...]`` long: 0-based cluster index at spike steps, -1 elsewhere."""
    spk = _as_tensor(spikes, "spikes") != 0
    ids = torch.cumsum(cluster_starts(spk, t_in_steps).long(), dim=0) - 1
    return torch.where(spk, ids, torch.full_like(ids, -1))


def cluster_spans(spike_times, t_in_steps: int) -> list[tuple[int, int, int]]:
    """Clusters of one neuron from its spike times (steps): ``[(first_step, last_step, n_spikes), ...]``."""
    t_in = _check_t_in(t_in_steps)
    times = np.sort(np.asarray(_as_tensor(spike_times, "spike_times").cpu().numpy(), dtype=np.int64).ravel())
    spans: list[tuple[int, int, int]] = []
    for t in times.tolist():
        if spans and t - spans[-1][1] < t_in:
            first, _, n = spans[-1]
            spans[-1] = (first, t, n + 1)
        else:
            spans.append((t, t, 1))
    return spans


def first_argmax(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per position of ``values [T, ...]``: earliest step of the highest value where ``mask``; -1 if none."""
    neg = torch.tensor(-torch.inf, dtype=values.dtype, device=values.device)
    masked = torch.where(mask, values, neg)
    best = masked.max(dim=0, keepdim=True).values
    hit = mask & (masked == best)
    t = _time_index(values).expand_as(values)
    first = torch.where(hit, t, torch.full_like(t, _FAR)).min(dim=0).values
    return torch.where(first >= _FAR, torch.full_like(first, -1), first)


def local_maxima(v: torch.Tensor) -> torch.Tensor:
    """Bool ``[T, ...]``: V[k-1] < V[k] >= V[k+1]; the first/last step compare with their one neighbour."""
    true = torch.ones_like(v[:1], dtype=torch.bool)
    left = torch.cat([true, v[1:] > v[:-1]], dim=0)
    right = torch.cat([v[:-1] >= v[1:], true], dim=0)
    return left & right


def _k_plus(v: torch.Tensor, spk: torch.Tensor, t_in: int | None, theta: float):
    if t_in is None:  # TDP1: anywhere below threshold
        allowed = v < theta
    else:
        t = _time_index(v)
        allowed = (t - _prev_spike(spk) >= t_in) & (_next_spike(spk) - t >= t_in)
    allowed = allowed & (v > 0)  # V ≤ 0: no (net excitatory) input has reached the neuron there
    cand = allowed & local_maxima(v) & (v < theta)
    k_max = first_argmax(v, cand)
    k_any = first_argmax(v, allowed)
    return torch.where(k_max >= 0, k_max, k_any)


def _k_minus(v: torch.Tensor, spk: torch.Tensor, t_in: int | None):
    if t_in is None:  # TDP1: the last spike
        last = _prev_spike(spk)[-1]
        return torch.where(last < 0, torch.full_like(last, -1), last)
    ids = cluster_ids(spk, t_in)
    n_max = int(ids.max()) + 1 if ids.numel() else 0
    if n_max <= 0:
        return torch.full(v.shape[1:], -1, dtype=torch.long, device=v.device)
    idx = ids.clamp(min=0)
    shape = (n_max, *v.shape[1:])
    counts = torch.zeros(shape, dtype=torch.long, device=v.device).scatter_add_(0, idx, spk.long())
    vsum = torch.zeros(shape, dtype=v.dtype, device=v.device).scatter_add_(
        0, idx, torch.where(spk, v, torch.zeros_like(v))
    )
    t = _time_index(v).expand_as(ids)
    last = torch.full(shape, -1, dtype=torch.long, device=v.device).scatter_reduce_(
        0, idx, torch.where(spk, t, torch.full_like(t, -1)), reduce="amax"
    )
    exists = counts > 0
    c_min = torch.where(exists, counts, torch.full_like(counts, _FAR)).min(dim=0, keepdim=True).values
    fewest = exists & (counts == c_min)
    pick = first_argmax(-vsum, fewest)  # smallest V sum, then earliest cluster
    k = last.gather(0, pick.clamp(min=0).unsqueeze(0)).squeeze(0)
    return torch.where(pick < 0, torch.full_like(k, -1), k)


def _prepare(v, spikes):
    v = _as_tensor(v, "v")
    if not torch.is_floating_point(v):
        v = v.double()
    spk = _as_tensor(spikes, "spikes").to(v.device) != 0
    if v.shape != spk.shape or v.dim() < 1 or v.shape[0] < 1:
        raise ConfigError(
            f"v and spikes must have the same shape [T, ...], got {list(v.shape)} and {list(spk.shape)}", "clusters"
        )
    return v, spk


def _out(k: torch.Tensor, one_d: bool):
    return int(k) if one_d else k


def k_plus(v, spikes, t_in_steps: int | None, theta: float = 1.0, cluster_mask: bool = True):
    """k⁺ for ``[T]`` traces (→ int, -1 none) or ``[T, ...]`` (→ long tensor ``[...]``).

    ``cluster_mask=False`` (or ``t_in_steps=None``) is TDP1's rule: the highest local maximum below
    ϑ anywhere, else the highest V below ϑ.
    """
    v, spk = _prepare(v, spikes)
    t_in = _check_t_in(t_in_steps) if cluster_mask and t_in_steps is not None else None
    one_d = v.dim() == 1
    k = _k_plus(v.unsqueeze(1) if one_d else v, spk.unsqueeze(1) if one_d else spk, t_in, float(theta))
    return _out(k.squeeze(0) if one_d else k, one_d)


def k_minus(v, spikes, t_in_steps: int | None, cluster_mask: bool = True):
    """k⁻ for ``[T]`` traces (→ int, -1 none) or ``[T, ...]`` (→ long tensor). TDP1: the last spike."""
    v, spk = _prepare(v, spikes)
    t_in = _check_t_in(t_in_steps) if cluster_mask and t_in_steps is not None else None
    one_d = v.dim() == 1
    k = _k_minus(v.unsqueeze(1) if one_d else v, spk.unsqueeze(1) if one_d else spk, t_in)
    return _out(k.squeeze(0) if one_d else k, one_d)


USE_NUMBA = True  # CPU tensors use the numba kernel in ``select``; tests switch it off to check torch


def select(v: torch.Tensor, spikes: torch.Tensor, t_in_steps: int | None, theta: float):
    """Everything a loss needs per neuron of ``[T, B, N]`` traces, in one call: ``(n_o, k⁺, k⁻)``.

    ``t_in_steps=None`` selects TDP1's rules (n_o = spikes, k⁺ anywhere below ϑ, k⁻ = last spike).
    """
    v, spk = _prepare(v, spikes)
    if v.dim() != 3:
        raise ConfigError(f"select needs [T, B, N] traces, got {list(v.shape)}", "clusters")
    cluster_mode = t_in_steps is not None
    t_in = _check_t_in(t_in_steps) if cluster_mode else 1
    if USE_NUMBA and v.device.type == "cpu":
        from .kernels.cpu import _threads
        from .kernels.select_cpu import select as _sel

        T, B, N = v.shape
        n_o = np.zeros((B, N), np.int64)
        k_p = np.zeros((B, N), np.int64)
        k_m = np.zeros((B, N), np.int64)
        with _threads(T * B * N):
            _sel(
                v.contiguous().numpy(),
                spk.contiguous().numpy(),
                t_in,
                v.new_tensor(theta).numpy()[()],
                cluster_mode,
                n_o,
                k_p,
                k_m,
            )
        return torch.from_numpy(n_o), torch.from_numpy(k_p), torch.from_numpy(k_m)
    n_o = count_clusters(spk, t_in) if cluster_mode else spk.sum(dim=0)
    t_sel = t_in if cluster_mode else None
    return n_o, _k_plus(v, spk, t_sel, float(theta)), _k_minus(v, spk, t_sel)
