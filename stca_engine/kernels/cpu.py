"""numba C-LIF kernels for the CPU: the maths of ``reference.py``, fused and parallel over samples.

Why this shape: the recurrence is serial in time but independent across samples and neurons, so
each thread takes whole samples and walks time with the innermost loop over neurons (contiguous,
vectorisable). Sound inputs are ~98 % silent, so the input current is gathered from the nonzero
inputs inside the same loop instead of a dense matmul (dense inputs fall back to one BLAS matmul).
The backward is one pass per layer: the adjoint recurrence from each sample's last step that
carries gradient (after k* nothing matters) down to step 0, accumulating dW from the nonzero inputs
and writing the input gradient gx = V0·gI·W at the same time, so dL/dI is never stored.

Compiled lazily on first use (``cache=True`` keeps the machine code on disk), ``fastmath=False``.
"""
from __future__ import annotations

import numba as nb
import numpy as np
import torch

from . import LayerParams

SPARSE_MAX_DENSITY = 0.15  # above this fraction of nonzero inputs a BLAS matmul is faster


@nb.njit(parallel=True, cache=True, fastmath=False)
def _forward(x, Wt, I, use_x, v0, bm, bs, theta, spiking, record, V, O, M, S, E):
    T, B, N = V.shape
    n_in = x.shape[2]
    one = v0 / v0
    zero = one - one
    for b in nb.prange(B):
        m = np.zeros(N, V.dtype)
        s = np.zeros(N, V.dtype)
        e = np.zeros(N, V.dtype)
        o = np.zeros(N, V.dtype)
        cur = np.zeros(N, V.dtype)
        for t in range(T):
            if use_x:
                cur[:] = 0
                xt = x[t, b]
                for j in range(n_in):
                    xv = xt[j]
                    if xv != 0:
                        w = Wt[j]
                        for n in range(N):
                            cur[n] += xv * w[n]
            else:
                cur[:] = I[t, b]
            Vt = V[t, b]
            if spiking:
                Ot = O[t, b]
                for n in range(N):
                    i = v0 * cur[n]
                    mn = bm * m[n] + i
                    sn = bs * s[n] + i
                    en = bm * e[n] + theta * o[n]
                    m[n] = mn
                    s[n] = sn
                    e[n] = en
                    v = mn - sn - en
                    Vt[n] = v
                    on = one if v >= theta else zero
                    o[n] = on
                    Ot[n] = on
            else:
                for n in range(N):
                    i = v0 * cur[n]
                    mn = bm * m[n] + i
                    sn = bs * s[n] + i
                    m[n] = mn
                    s[n] = sn
                    Vt[n] = mn - sn
            if record:
                M[t, b] = m
                S[t, b] = s
                E[t, b] = e


@nb.njit(parallel=True, cache=True, fastmath=False)
def _backward(x, W, V, gV, gO, has_gV, has_gO, v0, bm, bs, theta, inv_alpha, half, spiking,
              need_x, wgrad_mode, gx, acc, gI, k_last):
    """One reverse pass per sample. wgrad_mode: 0 none, 1 sparse accumulate into acc, 2 store gI."""
    T, B, N = V.shape
    n_in = x.shape[2]
    n_chunk = acc.shape[0]
    for c in nb.prange(n_chunk):
        aM = np.zeros(N, V.dtype)
        aS = np.zeros(N, V.dtype)
        aE = np.zeros(N, V.dtype)
        gi = np.zeros(N, V.dtype)
        for b in range(c, B, n_chunk):
            kl = -1
            for t in range(T - 1, -1, -1):
                if has_gV:
                    gvt = gV[t, b]
                    for n in range(N):
                        if gvt[n] != 0:
                            kl = t
                            break
                if kl < 0 and has_gO:
                    got = gO[t, b]
                    for n in range(N):
                        if got[n] != 0:
                            kl = t
                            break
                if kl >= 0:
                    break
            k_last[b] = kl
            aM[:] = 0
            aS[:] = 0
            aE[:] = 0
            if need_x:
                for t in range(kl + 1, T):
                    gx[t, b] = 0
            for t in range(kl, -1, -1):
                Vt = V[t, b]
                for n in range(N):
                    gv = gV[t, b, n] if has_gV else gV[0, 0, 0]  # the dummy is 0 (keeps the dtype)
                    if spiking:
                        go = theta * aE[n]
                        if has_gO:
                            go += gO[t, b, n]
                        if abs(Vt[n] - theta) < half:
                            gv += inv_alpha * go
                        aE[n] = -gv + bm * aE[n]
                    aM[n] = gv + bm * aM[n]
                    aS[n] = -gv + bs * aS[n]
                    gi[n] = aM[n] + aS[n]
                if wgrad_mode == 1:
                    xt = x[t, b]
                    for j in range(n_in):
                        xv = xt[j]
                        if xv != 0:
                            a = acc[c, j]
                            for n in range(N):
                                a[n] += xv * gi[n]
                elif wgrad_mode == 2:
                    gI[t, b] = gi
                if need_x:
                    gxt = gx[t, b]
                    gxt[:] = 0
                    for n in range(N):
                        g = v0 * gi[n]
                        if g != 0:
                            w = W[n]
                            for j in range(n_in):
                                gxt[j] += g * w[j]


PARALLEL_MIN_WORK = 200_000  # neuron-steps below which waking a second thread costs more than it saves


class _threads:
    """Run small problems on the calling thread only (numba's thread pool wake-up is ~0.1 ms idle,
    far more on a busy machine); large ones on all of numba's threads."""

    def __init__(self, work: int):
        self.n = 1 if work < PARALLEL_MIN_WORK else nb.config.NUMBA_NUM_THREADS

    def __enter__(self):
        self.prev = nb.get_num_threads()
        nb.set_num_threads(max(1, min(self.n, nb.config.NUMBA_NUM_THREADS)))

    def __exit__(self, *exc):
        nb.set_num_threads(self.prev)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _dense(x: torch.Tensor) -> bool:
    """Is ``x`` dense enough for BLAS? Estimated from a strided sample (a full count costs ~1 ms)."""
    flat = x.detach().reshape(-1).numpy()
    sample = flat[:: max(1, flat.size // 65536)]
    return np.count_nonzero(sample) > SPARSE_MAX_DENSITY * max(1, sample.size)


def _dummy(dtype, nd=3) -> np.ndarray:
    return np.zeros((1,) * nd, dtype=dtype)


def forward(x: torch.Tensor, W: torch.Tensor, p: LayerParams, record: bool = False):
    T, B, _ = x.shape
    N = W.shape[0]
    dt = W.dtype
    x = x.detach().to(dt).contiguous()
    W = W.detach().contiguous()
    npdt = _np(W).dtype.type
    V = torch.empty(T, B, N, dtype=dt)
    O = torch.empty(T, B, N, dtype=dt) if p.spiking else torch.from_numpy(np.zeros((T, B, N), dtype=npdt))
    rec = [torch.from_numpy(np.zeros((T, B, N), dtype=npdt)) for _ in range(3)] if record else None
    Mn, Sn, En = (r.numpy() for r in rec) if record else (_dummy(npdt),) * 3
    sc = (npdt(p.v0), npdt(p.beta_m), npdt(p.beta_s), npdt(p.theta))
    if not _dense(x):
        with _threads(T * B * N):
            _forward(_np(x), _np(W.t()), _dummy(npdt), True, *sc, p.spiking, record, V.numpy(), O.numpy(),
                     Mn, Sn, En)
    else:
        I = torch.matmul(x, W.t())
        with _threads(T * B * N):
            _forward(_dummy(npdt), _dummy(npdt, 2), _np(I), False, *sc, p.spiking, record, V.numpy(), O.numpy(),
                     Mn, Sn, En)
    if record:
        return V, O, rec[0], rec[1], rec[2]
    return V, O, None, None, None


def backward(x, W, V, gV, gO, p: LayerParams, need_x: bool = True, need_w: bool = True):
    T, B, N = V.shape
    dt = W.dtype
    x = x.detach().to(dt).contiguous()
    W = W.detach().contiguous()
    npdt = _np(W).dtype.type
    n_in = W.shape[1]
    k_last = np.full(B, -1, dtype=np.int64)
    mode = 0
    if need_w:
        mode = 2 if _dense(x) else 1
    n_chunk = max(1, min(B, _threads(T * B * N).n))
    acc = np.zeros((n_chunk, n_in, N), dtype=npdt) if mode == 1 else np.zeros((n_chunk, 1, 1), dtype=npdt)
    gI = torch.from_numpy(np.zeros((T, B, N), dtype=npdt)) if mode == 2 else None
    gx = torch.empty(T, B, n_in, dtype=dt) if need_x else None
    with _threads(T * B * N):
        _backward(_np(x), _np(W), _np(V),
                  _np(gV.to(dt)) if gV is not None else _dummy(npdt),
                  _np(gO.to(dt)) if gO is not None else _dummy(npdt),
                  gV is not None, gO is not None, npdt(p.v0), npdt(p.beta_m), npdt(p.beta_s), npdt(p.theta),
                  npdt(1.0 / p.alpha), npdt(0.5 * p.alpha), p.spiking, need_x, mode,
                  gx.numpy() if need_x else _dummy(npdt), acc, gI.numpy() if mode == 2 else _dummy(npdt), k_last)
    gW = None
    if mode == 1:
        gW = p.v0 * torch.from_numpy(acc.sum(axis=0)).t().contiguous()
    elif mode == 2:
        n = int(k_last.max()) + 1
        gW = torch.zeros_like(W)
        if n > 0:
            gW = p.v0 * torch.matmul(gI[:n].reshape(-1, N).t(), x[:n].reshape(-1, n_in))
    return gx, gW
