"""numba C-LIF kernels for the CPU: the maths of ``reference.py``, fused and parallel over samples.

Why this shape: the recurrence is serial in time but independent across samples and neurons, so
each thread takes whole samples and walks time with the innermost loop over neurons (contiguous,
vectorisable). Sound inputs are ~98 % silent, so the input current is gathered from the nonzero
inputs inside the same loop instead of a dense matmul; dense inputs fall back to one matmul.
Backward starts each sample at its last step that carries gradient (after k* nothing matters).

Compiled lazily on first use (``cache=True`` keeps the machine code on disk).
"""
from __future__ import annotations

import numba as nb
import numpy as np
import torch

from . import LayerParams

SPARSE_MAX_DENSITY = 0.2  # above this fraction of nonzero inputs a BLAS matmul is faster


@nb.njit(parallel=True, cache=True, fastmath=False)
def _forward(x, Wt, I, use_x, v0, bm, bs, theta, spiking, record, V, O, M, S, E):
    T, B, N = V.shape
    n_in = x.shape[2]
    for b in nb.prange(B):
        m = np.zeros(N, V.dtype)
        s = np.zeros(N, V.dtype)
        e = np.zeros(N, V.dtype)
        o = np.zeros(N, V.dtype)
        cur = np.zeros(N, V.dtype)
        for t in range(T):
            if use_x:
                cur[:] = 0
                for j in range(n_in):
                    xv = x[t, b, j]
                    if xv != 0:
                        for n in range(N):
                            cur[n] += xv * Wt[j, n]
            else:
                for n in range(N):
                    cur[n] = I[t, b, n]
            for n in range(N):
                i = v0 * cur[n]
                m[n] = bm * m[n] + i
                s[n] = bs * s[n] + i
                if spiking:
                    e[n] = bm * e[n] + theta * o[n]
                    v = m[n] - s[n] - e[n]
                    o[n] = 1 if v >= theta else 0
                    O[t, b, n] = o[n]
                else:
                    v = m[n] - s[n]
                V[t, b, n] = v
                if record:
                    M[t, b, n] = m[n]
                    S[t, b, n] = s[n]
                    E[t, b, n] = e[n]


@nb.njit(parallel=True, cache=True, fastmath=False)
def _grad_current(V, gV, gO, has_gV, has_gO, bm, bs, theta, inv_alpha, half, spiking, gI, k_last):
    T, B, N = V.shape
    for b in nb.prange(B):
        kl = -1
        for t in range(T - 1, -1, -1):
            for n in range(N):
                if (has_gV and gV[t, b, n] != 0) or (has_gO and gO[t, b, n] != 0):
                    kl = t
                    break
            if kl >= 0:
                break
        k_last[b] = kl
        aM = np.zeros(N, V.dtype)
        aS = np.zeros(N, V.dtype)
        aE = np.zeros(N, V.dtype)
        for t in range(kl, -1, -1):
            for n in range(N):
                gv = gV[t, b, n] if has_gV else gV[0, 0, 0]  # the dummy is 0 (keeps the dtype)
                if spiking:
                    go = theta * aE[n]
                    if has_gO:
                        go += gO[t, b, n]
                    if abs(V[t, b, n] - theta) < half:
                        gv += inv_alpha * go
                    aE[n] = -gv + bm * aE[n]
                aM[n] = gv + bm * aM[n]
                aS[n] = -gv + bs * aS[n]
                gI[t, b, n] = aM[n] + aS[n]


@nb.njit(parallel=True, cache=True, fastmath=False)
def _wgrad_sparse(x, gI, k_last, acc):
    """acc[c, j, n] = Σ over samples b ≡ c (mod chunks), t ≤ k_last[b] of x[t,b,j]·gI[t,b,n]."""
    n_chunk = acc.shape[0]
    B = x.shape[1]
    n_in = x.shape[2]
    N = gI.shape[2]
    for c in nb.prange(n_chunk):
        for b in range(c, B, n_chunk):
            for t in range(k_last[b] + 1):
                for j in range(n_in):
                    xv = x[t, b, j]
                    if xv != 0:
                        for n in range(N):
                            acc[c, j, n] += xv * gI[t, b, n]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _density(x: torch.Tensor) -> float:
    return float(torch.count_nonzero(x)) / max(1, x.numel())


def _dummy(dtype) -> np.ndarray:
    return np.zeros((1, 1, 1), dtype=dtype)


def forward(x: torch.Tensor, W: torch.Tensor, p: LayerParams, record: bool = False):
    T, B, _ = x.shape
    N = W.shape[0]
    dt = W.dtype
    x = x.detach().to(dt).contiguous()
    W = W.detach().contiguous()
    npdt = _np(W).dtype.type
    V = torch.empty(T, B, N, dtype=dt)
    O = torch.zeros(T, B, N, dtype=dt)
    rec = [torch.empty(T, B, N, dtype=dt) for _ in range(3)] if record else None
    Mn, Sn, En = (_np(r) for r in rec) if record else (_dummy(npdt),) * 3
    if _density(x) <= SPARSE_MAX_DENSITY:
        _forward(_np(x), _np(W.t()), _dummy(npdt), True, *_scalars(p, npdt), p.spiking, record,
                 V.numpy(), O.numpy(), Mn, Sn, En)
    else:
        I = torch.matmul(x, W.t())
        _forward(_dummy(npdt), np.zeros((1, 1), npdt), _np(I), False, *_scalars(p, npdt), p.spiking, record,
                 V.numpy(), O.numpy(), Mn, Sn, En)
    if record:
        return V, O, rec[0], rec[1], rec[2]
    return V, O, None, None, None


def _scalars(p: LayerParams, npdt):
    return npdt(p.v0), npdt(p.beta_m), npdt(p.beta_s), npdt(p.theta)


def grad_current(V, gV, gO, p: LayerParams):
    """dL/dI ``[T, B, N]`` and the per-sample last active step ``[B]``."""
    T, B, N = V.shape
    npdt = _np(V).dtype.type
    gI = torch.zeros(T, B, N, dtype=V.dtype)
    k_last = np.full(B, -1, dtype=np.int64)
    gVn = _np(gV.to(V.dtype)) if gV is not None else _dummy(npdt)
    gOn = _np(gO.to(V.dtype)) if gO is not None else _dummy(npdt)
    _grad_current(_np(V), gVn, gOn, gV is not None, gO is not None, npdt(p.beta_m), npdt(p.beta_s),
                  npdt(p.theta), npdt(1.0 / p.alpha), npdt(0.5 * p.alpha), p.spiking, gI.numpy(), k_last)
    return gI, k_last


def backward(x, W, V, gV, gO, p: LayerParams, need_x: bool = True, need_w: bool = True):
    gI, k_last = grad_current(V, gV, gO, p)
    n = int(k_last.max()) + 1 if k_last.size else 0
    gx = gW = None
    dt = W.dtype
    if need_w:
        gW = torch.zeros_like(W)
        if n > 0:
            xs = x[:n].detach().to(dt).contiguous()
            if _density(xs) <= SPARSE_MAX_DENSITY:
                chunks = max(1, min(x.shape[1], nb.get_num_threads()))
                acc = np.zeros((chunks, W.shape[1], W.shape[0]), dtype=_np(W).dtype)
                _wgrad_sparse(_np(xs), gI[:n].numpy(), k_last, acc)
                gW = p.v0 * torch.from_numpy(acc.sum(axis=0)).t().contiguous()
            else:
                gW = p.v0 * torch.matmul(gI[:n].reshape(-1, W.shape[0]).t(), xs.reshape(-1, W.shape[1]))
    if need_x:
        gx = torch.zeros(x.shape, dtype=dt)
        if n > 0:
            gx[:n] = p.v0 * torch.matmul(gI[:n], W.detach())
    return gx, gW
