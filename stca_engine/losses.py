"""STCA losses (paper Eq. 9 / 10), the TDP1 and margin baselines, and predictions (SPEC §3).

The time point each output neuron is trained at (k*) is chosen without gradient from its spikes
and voltage; the loss is then a plain function of V[k*], so autograd sends the error into exactly
one step per neuron and the layer backward starts there.

Batch loss = sum over output neurons, mean over samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .clusters import count_clusters, first_argmax, select
from .config import OBJECTIVES, TASKS, NeuronConfig
from .errors import ConfigError

MARGIN = 0.3  # margin objective: push the true class up to ϑ + 0.3, the others down to ϑ − 0.3


@dataclass
class LossInfo:
    """Per sample and output neuron ``[B, N_out]``: what the loss did.

    ``k_star``: step trained at (-1: no loss). ``sign``: +1 pushed up (k⁺), -1 pushed down (k⁻),
    0 none. ``n_clusters``: N_o (clusters; single spikes for ``tdp1``). ``desired``: N_d (0/1 for
    classify). ``no_kplus``: needed k⁺ but no step qualified (no loss given). ``per_sample`` ``[B]``.
    """

    k_star: torch.Tensor
    sign: torch.Tensor
    n_clusters: torch.Tensor
    desired: torch.Tensor
    no_kplus: torch.Tensor
    per_sample: torch.Tensor
    task: str
    objective: str

    @property
    def n_no_kplus(self) -> int:
        return int(self.no_kplus.sum())


def _check(v, s, target, task, objective, need_spikes=True):
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}", "stca_loss")
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {OBJECTIVES}, got {objective!r}", "stca_loss")
    if not isinstance(v, torch.Tensor) or v.dim() != 3 or not torch.is_floating_point(v):
        raise ConfigError(f"v must be a float tensor [T, B, N], got {getattr(v, 'shape', type(v))}", "stca_loss")
    T, B, N = v.shape
    if s is None:
        if need_spikes:
            raise ConfigError(f"objective {objective!r} needs the output spikes", "stca_loss")
        s = torch.zeros_like(v, dtype=torch.bool)
    elif not isinstance(s, torch.Tensor) or s.shape != v.shape:
        raise ConfigError(
            f"spikes must have the shape of v {list(v.shape)}, got {getattr(s, 'shape', None)}", "stca_loss"
        )
    target = torch.as_tensor(target, device=v.device)
    if task == "detect":
        if target.shape != (B, N) or torch.is_floating_point(target) and bool((target != target.round()).any()):
            raise ConfigError(
                f"detect target must be integer counts [B, N] = [{B}, {N}], got {list(target.shape)}", "stca_loss"
            )
        target = target.long()
        if bool((target < 0).any()):
            raise ConfigError("detect target counts must be >= 0", "stca_loss")
    else:
        if target.shape != (B,):
            raise ConfigError(
                f"classify target must be class indices [B] = [{B}], got {list(target.shape)}", "stca_loss"
            )
        target = target.long()
        if bool(((target < 0) | (target >= N)).any()):
            raise ConfigError(f"classify target class index out of range 0..{N - 1}", "stca_loss")
    return s.detach() != 0, target


def _check_tdp1_spikes(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100:
        raise ConfigError(f"tdp1_spikes must be an integer in 1..100, got {n!r}", "stca_loss")
    return n


def _desired(target, task, n_out):
    if task == "classify":
        return torch.nn.functional.one_hot(target, n_out).long()
    return target


def _lengths(lengths, B: int, T: int) -> list[int] | None:
    """Per-sample lengths in steps (``None``: every sample fills the batch's ``T`` steps)."""
    if lengths is None:
        return None
    out = [int(x) for x in lengths]
    if len(out) != B or any(not 1 <= x <= T for x in out):
        raise ConfigError(f"lengths must be {B} step counts in 1..{T}, got {out}", "stca_loss")
    return None if all(x == T for x in out) else out


def _per_length(fn, vd: torch.Tensor, spk: torch.Tensor, lengths: list[int] | None):
    """``fn(v, s) -> tuple of [b, N] tensors`` on each sample's own steps only (padding after a
    short sample's end must not move its k⁺, k⁻ or counts), reassembled to ``[B, N]``."""
    if lengths is None:
        return fn(vd, spk)
    outs = None
    for L in sorted(set(lengths)):
        cols = torch.tensor([j for j, x in enumerate(lengths) if x == L], device=vd.device)
        part = fn(vd[:L].index_select(1, cols), spk[:L].index_select(1, cols))
        if outs is None:
            outs = [torch.zeros((vd.shape[1], *p.shape[1:]), dtype=p.dtype, device=p.device) for p in part]
        for o, p in zip(outs, part):
            o[cols.to(o.device)] = p
    return tuple(outs)


def stca_loss(
    v: torch.Tensor,
    s: torch.Tensor | None,
    target,
    cfg: NeuronConfig,
    task: str = "detect",
    objective: str = "stca",
    lengths=None,
    tdp1_spikes: int = 1,
) -> tuple[torch.Tensor, LossInfo]:
    """Loss over output voltages ``v [T, B, N]`` and spikes ``s``; returns ``(loss, LossInfo)``.

    ``lengths`` (optional, ``[B]`` steps): samples shorter than the batch were zero-padded; each is
    judged on its own steps only, so the loss does not depend on what it was batched with.
    ``tdp1_spikes`` (``tdp1`` only): spikes asked for per event (the paper's Fig. 4e tries 3 … 11);
    N_d becomes that many times the event count (classify: that many from the true class).

    - ``stca`` detect (Eq. 9): ϑ − V[k⁺] if N_o < N_d; V[k⁻] − ϑ if N_o > N_d.
      ``stca`` classify (Eq. 10): ϑ − V[k⁺] if N_o = 0 for the true class; V[k⁻] − ϑ if N_o > 0 for another.
    - ``tdp1``: the same with N_o = number of spikes, k⁺ anywhere below ϑ, k⁻ = last spike;
      classify wants exactly 1 spike from the true class and 0 from the others.
    - ``margin`` (non-spiking readout): for the true class (detect: classes with N_d > 0)
      ϑ + 0.3 − max V when max V ≤ ϑ + 0.3; for the others max V − (ϑ − 0.3) when max V > ϑ − 0.3.
    """
    spk, target = _check(v, s, target, task, objective, need_spikes=objective != "margin")
    theta = float(cfg.theta)
    T, B, N = v.shape
    desired = _desired(target, task, N)
    if objective == "tdp1":
        desired = desired * _check_tdp1_spikes(tdp1_spikes)
    lengths = _lengths(lengths, B, T)
    with torch.no_grad():
        vd = v.detach()
        zero = torch.zeros(B, N, dtype=torch.long, device=v.device)
        if objective == "margin":
            n_o, vmax, k_top = _per_length(
                lambda v_, s_: (
                    count_clusters(s_, cfg.t_in_steps),
                    v_.max(dim=0).values,
                    first_argmax(v_, torch.ones_like(s_)),
                ),
                vd,
                spk,
                lengths,
            )
            pos = desired > 0
            up = pos & (vmax <= theta + MARGIN)
            down = ~pos & (vmax > theta - MARGIN)
            sign = up.long() - down.long()
            k_star = torch.where(sign != 0, k_top, zero - 1)
            no_kplus = torch.zeros(B, N, dtype=torch.bool, device=v.device)
        else:
            t_in = cfg.t_in_steps if objective == "stca" else None
            n_o, k_p, k_m = _per_length(lambda v_, s_: select(v_, s_, t_in, theta), vd, spk, lengths)
            n_o, k_p, k_m = n_o.to(v.device), k_p.to(v.device), k_m.to(v.device)
            if objective == "stca" and task == "classify":
                need_plus = (n_o == 0) & (desired == 1)
                need_minus = (n_o > 0) & (desired == 0)
            else:
                need_plus = n_o < desired
                need_minus = n_o > desired
            plus = need_plus & (k_p >= 0)
            no_kplus = need_plus & (k_p < 0)
            sign = plus.long() - need_minus.long()
            k_star = torch.where(plus, k_p, torch.where(need_minus, k_m, zero - 1))
    v_k = v.gather(0, k_star.clamp(min=0).unsqueeze(0)).squeeze(0)
    if objective == "margin":
        up_term, down_term = (theta + MARGIN) - v_k, v_k - (theta - MARGIN)
    else:
        up_term, down_term = theta - v_k, v_k - theta
    terms = torch.where(sign > 0, up_term, torch.where(sign < 0, down_term, torch.zeros_like(v_k)))
    per_sample = terms.sum(dim=1)
    loss = per_sample.mean()
    info = LossInfo(
        k_star=k_star,
        sign=sign,
        n_clusters=n_o,
        desired=desired,
        no_kplus=no_kplus,
        per_sample=per_sample.detach(),
        task=task,
        objective=objective,
    )
    return loss, info


def predict(v: torch.Tensor, s: torch.Tensor | None, cfg: NeuronConfig, objective: str = "stca") -> torch.Tensor:
    """Class index ``[B]``: most clusters (``tdp1``: spikes), ties by the highest max V (then lowest index);
    ``margin``: highest max V."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {OBJECTIVES}, got {objective!r}", "predict")
    if not isinstance(v, torch.Tensor) or v.dim() != 3:
        raise ConfigError(f"v must be a tensor [T, B, N], got {getattr(v, 'shape', type(v))}", "predict")
    with torch.no_grad():
        vmax = v.detach().max(dim=0).values  # [B, N]
        if objective == "margin":
            cand = torch.ones_like(vmax, dtype=torch.bool)
        else:
            if s is None or s.shape != v.shape:
                raise ConfigError("predict needs spikes of the shape of v for this objective", "predict")
            spk = s.detach() != 0
            n = count_clusters(spk, cfg.t_in_steps) if objective == "stca" else spk.sum(dim=0)
            cand = n == n.max(dim=1, keepdim=True).values
        # first_argmax works along dim 0: put neurons first
        return first_argmax(vmax.t(), cand.t())
