"""Independent plain step-by-step C-LIF network for the engine tests (SPEC §2 and §4 written out).

Deliberately naive: a Python loop over time with one matmul per step and torch autograd through
everything; the spike uses the rectangular surrogate h(V) = 1/α for |V − ϑ| < α/2 as dO/dV.
"""

from __future__ import annotations

import math

import torch


def constants(dt=3.0, tau_m=30.0, tau_s=7.5):
    """β_m, β_s and V0 computed here from the formulas, not taken from the engine."""
    bm, bs = math.exp(-dt / tau_m), math.exp(-dt / tau_s)
    # peak of exp(-t/τm) - exp(-t/τs): bisection on its derivative (independent of the closed form)
    lo, hi = 0.0, 10 * tau_m
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if -math.exp(-mid / tau_m) / tau_m + math.exp(-mid / tau_s) / tau_s > 0:
            lo = mid
        else:
            hi = mid
    return bm, bs, 1.0 / (math.exp(-lo / tau_m) - math.exp(-lo / tau_s))


class SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, theta, alpha):
        ctx.save_for_backward(v)
        ctx.theta, ctx.alpha = theta, alpha
        return (v >= theta).to(v.dtype)

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        h = ((v - ctx.theta).abs() < ctx.alpha / 2).to(v.dtype) / ctx.alpha
        return g * h, None, None


def plain_net(x, weights, v0, beta_m, beta_s, theta, alpha, output_spiking=True, reset_grad=True, keep_steps=False):
    """Returns lists (V, O, M, S, E) per layer, each ``[T, B, n]``. ``reset_grad=False`` cuts the
    O[k-1] → E[k] gradient path (used only to show the tests are sensitive to it).
    ``keep_steps=True`` also returns ``V_steps``/``I_steps``: per layer, the list of each step's V and I
    tensors with ``retain_grad()``, so their ``.grad`` after ``backward`` is ∂L/∂V[k] and ∂L/∂I[k]."""
    h = x
    out = {"V": [], "O": [], "M": [], "S": [], "E": []}
    steps = {"V_steps": [], "I_steps": []}
    for li, W in enumerate(weights):
        spiking = output_spiking or li < len(weights) - 1
        T, B, _ = h.shape
        N = W.shape[0]
        m = torch.zeros(B, N, dtype=W.dtype)
        s, e, o = torch.zeros_like(m), torch.zeros_like(m), torch.zeros_like(m)
        rec = {k: [] for k in out}
        v_steps, i_steps = [], []
        for k in range(T):
            I = v0 * (h[k] @ W.t())
            if keep_steps and I.requires_grad:
                I.retain_grad()
                i_steps.append(I)
            m = beta_m * m + I
            s = beta_s * s + I
            if spiking:
                e = beta_m * e + theta * (o if reset_grad else o.detach())
                v = m - s - e
                o = SurrogateSpike.apply(v, theta, alpha)
            else:
                v = m - s
                o = torch.zeros_like(v)
            if keep_steps and v.requires_grad:
                v.retain_grad()
                v_steps.append(v)
            for name, val in zip("VOMSE", (v, o, m, s, e)):
                rec[name].append(val)
        for name in out:
            out[name].append(torch.stack(rec[name]))
        steps["V_steps"].append(v_steps)
        steps["I_steps"].append(i_steps)
        h = out["O"][-1]
    if keep_steps:
        out.update(steps)
    return out
