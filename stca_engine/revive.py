"""Reviving a silenced network: a needed k⁺ that no output step can take is handed to the layer below.

Why: STCA's error reaches a hidden neuron only through its spikes, and an output's k⁺ needs a step whose
V depends on some weight (V > 0, see ``clusters``). Once the hidden layer stops firing (large k⁻ pushes,
a small init, strong inhibition), the outputs' V is 0 everywhere, no k⁺ can be placed, no gradient flows,
and training sits there for good: a silent network was a fixed point. The paper has no rule for it.

The rule here acts only on (sample, output neuron) pairs that needed a k⁺ and found none
(``LossInfo.no_kplus``); every other pair, and every batch without such a pair, is trained exactly as
before (the extra term is absent). For each such pair, one unit of k⁺ push (the weight an output k⁺
has) is shared among the hidden neurons of the layer below that were silent in that sample, in
proportion to their excitatory weight onto the stuck neuron (``relu(W) / sum relu(W)``): the neurons
whose spikes would lift it. Each of them is pushed up (ϑ − V[k]) at its highest V among the steps where
V depends on the weights (V ≠ 0; a hidden neuron held below 0 by inhibition is pushed too, which is
what lets it out). A hidden neuron with no such step (its own inputs silent) passes its share one
layer further down, to the encoder at most.
"""

from __future__ import annotations

import torch

from .clusters import first_argmax

_EPS = 1e-12


def _own_steps(v: torch.Tensor, lengths: list[int] | None) -> torch.Tensor:
    """Bool ``[T, B, 1]``: the steps that belong to each sample (padding after a short one excluded)."""
    T, B = v.shape[:2]
    if lengths is None:
        return torch.ones(T, B, 1, dtype=torch.bool, device=v.device)
    t = torch.arange(T, device=v.device).view(T, 1, 1)
    return t < torch.as_tensor(lengths, device=v.device).view(1, B, 1)


def revive_loss(
    voltages: list, spikes: list, weights: list, stuck: torch.Tensor, theta: float, lengths: list[int] | None = None
) -> tuple[torch.Tensor | None, int]:
    """Extra loss for stuck output neurons (``stuck [B, N_out]`` bool); ``(None, 0)`` when nothing is stuck.

    ``voltages`` / ``spikes``: per layer ``[T, B, n_i]`` (``Recording.voltages`` / ``.spikes``; the
    hidden voltages must keep their graph); ``weights``: the network's ``[out, in]`` weights. Returns the
    term to add to the batch loss (mean over samples, like the loss) and how many hidden (sample, neuron)
    pairs were pushed.
    """
    if stuck is None or not bool(stuck.any()) or len(weights) < 2:
        return None, 0
    need = stuck.to(voltages[-1].dtype)
    total = None
    pushed = 0
    B = need.shape[0]
    for i in range(len(weights) - 2, -1, -1):  # hidden layers, top down
        with torch.no_grad():
            w_up = torch.relu(weights[i + 1].detach()).to(need.dtype)  # [n_above, n_i]
            share = w_up / w_up.sum(dim=1, keepdim=True).clamp_min(_EPS)
            v = voltages[i].detach()
            silent = ~(spikes[i].detach() != 0).any(dim=0)  # [B, n_i]
            a = (need @ share) * silent
            if not bool((a > 0).any()):
                break
            k = first_argmax(v, (v != 0) & _own_steps(v, lengths))
            ok = (k >= 0) & (a > 0)
            weight = torch.where(ok, a, torch.zeros_like(a))
            need = torch.where(ok, torch.zeros_like(a), a)
        if bool(ok.any()):
            v_k = voltages[i].gather(0, k.clamp(min=0).unsqueeze(0)).squeeze(0)
            term = (weight * (theta - v_k)).sum() / B
            total = term if total is None else total + term
            pushed += int(ok.sum())
        if not bool((need > 0).any()):
            break
    return total, pushed
