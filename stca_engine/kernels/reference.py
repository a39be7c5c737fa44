"""Plain-torch C-LIF layer: one matmul for the input currents, then a loop over time.

This is the fallback on every device (and the readable statement of the maths the numba kernel
implements). Forward (SPEC §2), with step index k = 0..T-1 and all states 0 before k = 0:

    I[k] = V0 · x[k] @ Wᵀ
    M[k] = βm M[k-1] + I[k];   S[k] = βs S[k-1] + I[k];   E[k] = βm E[k-1] + ϑ O[k-1]
    V[k] = M[k] - S[k] - E[k];  O[k] = [V[k] ≥ ϑ]

Backward (exact BPTT with h(V) = 1/α for |V-ϑ| < α/2 standing in for dO/dV), going down in k from
the last step that carries any gradient (nothing later influences the loss):

    gO[k] = gO_ext[k] + ϑ aE[k+1]              (O[k] drives E[k+1])
    gV[k] = gV_direct[k] + h(V[k]) gO[k]
    aM[k] = gV[k] + βm aM[k+1];  aS[k] = -gV[k] + βs aS[k+1];  aE[k] = -gV[k] + βm aE[k+1]
    gI[k] = aM[k] + aS[k];   dW = V0 gIᵀx;   gx = V0 gI W

A non-spiking layer (``spiking=False``, the ``margin`` readout) has V = M - S, no E, no spikes.
"""

from __future__ import annotations

import torch

from . import LayerParams, LayerState


def last_active_step(*grads) -> int:
    """Index of the last time step where any of the ``[T, B, N]`` gradients is nonzero (-1: none)."""
    active = None
    for g in grads:
        if g is None:
            continue
        a = (g != 0).flatten(1).any(dim=1)
        active = a if active is None else active | a
    if active is None or not bool(active.any()):
        return -1
    return int(torch.nonzero(active)[-1])


def forward(x: torch.Tensor, W: torch.Tensor, p: LayerParams, record: bool = False, state: LayerState | None = None):
    T, B, _ = x.shape
    N = W.shape[0]
    I = torch.matmul(x.to(W.dtype), W.t()) * p.v0
    V = torch.empty(T, B, N, dtype=W.dtype, device=W.device)
    O = torch.zeros(T, B, N, dtype=W.dtype, device=W.device)
    M_rec = torch.empty_like(V) if record else None
    S_rec = torch.empty_like(V) if record else None
    E_rec = torch.empty_like(V) if record else None
    if state is None:
        m = torch.zeros(B, N, dtype=W.dtype, device=W.device)
        s, e, o = torch.zeros_like(m), torch.zeros_like(m), torch.zeros_like(m)
    else:
        m, s, e, o = (getattr(state.check(B, N), k).to(W.dtype) for k in "mseo")
    for k in range(T):
        m = p.beta_m * m + I[k]
        s = p.beta_s * s + I[k]
        if p.spiking:
            e = p.beta_m * e + p.theta * o
            v = m - s - e
            o = (v >= p.theta).to(W.dtype)
            O[k] = o
        else:
            v = m - s
        V[k] = v
        if record:
            M_rec[k], S_rec[k], E_rec[k] = m, s, e
    final = LayerState(m.clone(), s.clone(), e.clone(), o.clone())
    return V, O, M_rec, S_rec, E_rec, None, final


def grad_current(V, gV, gO, p: LayerParams, credit=None):
    """Reverse-time adjoint recurrence: dL/dI ``[T, B, N]`` and the last active step.

    ``credit`` (a ``LayerCredit``): also keep that sample's total ∂L/∂V and ∂L/∂I per step."""
    T, B, N = V.shape
    gI = torch.zeros_like(V)
    dV = torch.zeros_like(V[:, 0]) if credit is not None else None
    k_last = last_active_step(gV, gO)
    aM = torch.zeros(B, N, dtype=V.dtype, device=V.device)
    aS = torch.zeros_like(aM)
    aE = torch.zeros_like(aM)
    inv_alpha = 1.0 / p.alpha
    half = 0.5 * p.alpha
    for k in range(k_last, -1, -1):
        gv = gV[k] if gV is not None else torch.zeros_like(aM)
        if p.spiking:
            go = p.theta * aE
            if gO is not None:
                go = go + gO[k]
            h = ((V[k] - p.theta).abs() < half).to(V.dtype) * inv_alpha
            gv = gv + h * go
            aE = -gv + p.beta_m * aE
        aM = gv + p.beta_m * aM
        aS = -gv + p.beta_s * aS
        gI[k] = aM + aS
        if dV is not None:
            dV[k] = gv[credit.sample]
    if credit is not None:
        credit.dV, credit.dI = dV, gI[:, credit.sample].clone()
    return gI, k_last


def backward(x, W, V, gV, gO, p: LayerParams, need_x: bool = True, need_w: bool = True, rows=None, credit=None):
    gI, k_last = grad_current(V, gV, gO, p, credit)
    gx = gW = None
    n = k_last + 1
    if need_w:
        gW = torch.zeros_like(W)
        if n > 0:
            gW = p.v0 * torch.matmul(gI[:n].reshape(-1, W.shape[0]).t(), x[:n].reshape(-1, W.shape[1]).to(W.dtype))
    if need_x:
        gx = torch.zeros(x.shape, dtype=W.dtype, device=W.device)
        if n > 0:
            gx[:n] = p.v0 * torch.matmul(gI[:n], W)
    return gx, gW
