"""Triton C-LIF kernels for CUDA: the maths of ``reference.py`` with the time loop inside one kernel.

Each program owns a block of (sample, neuron) columns and walks time with its states in registers;
the input currents come from one matmul for all steps, dW and gx from two matmuls after the adjoint
pass, which starts at the batch's last step that carries gradient. Scalars travel in a tensor of the
network's dtype so float64 runs stay float64.

Status: verified against the plain-torch path in Triton's interpreter (TRITON_INTERPRET=1, CPU) by
tests/test_forward.py; not yet run on a real GPU in this project. ``backend="auto"`` therefore falls
back to the plain-torch path (with a warning) if Triton is missing or a kernel fails.
"""

from __future__ import annotations

import warnings

import torch
import triton
import triton.language as tl

from . import LayerParams, LayerState, reference

BLOCK = 128


@triton.jit
def _clif_fwd(
    I_ptr,
    P_ptr,
    V_ptr,
    O_ptr,
    M_ptr,
    S_ptr,
    E_ptr,
    INIT_ptr,
    FINAL_ptr,
    T,
    BN,
    SPIKING: tl.constexpr,
    RECORD: tl.constexpr,
    HAS_STATE: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    pid = tl.program_id(0)
    col = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = col < BN
    v0 = tl.load(P_ptr + 0)
    bm = tl.load(P_ptr + 1)
    bs = tl.load(P_ptr + 2)
    theta = tl.load(P_ptr + 3)
    zero = tl.full([BLOCK_SIZE], 0, dtype=v0.dtype)
    m = zero
    s = zero
    e = zero
    o = zero
    if HAS_STATE:  # INIT/FINAL: [4, B*N] = M, S, E, O
        m = tl.load(INIT_ptr + col, mask=mask, other=0.0)
        s = tl.load(INIT_ptr + BN + col, mask=mask, other=0.0)
        e = tl.load(INIT_ptr + 2 * BN + col, mask=mask, other=0.0)
        o = tl.load(INIT_ptr + 3 * BN + col, mask=mask, other=0.0)
    for t in range(0, T):
        off = t * BN + col
        i = v0 * tl.load(I_ptr + off, mask=mask, other=0.0)
        m = bm * m + i
        s = bs * s + i
        if SPIKING:
            e = bm * e + theta * o
            v = m - s - e
            o = tl.where(v >= theta, zero + 1.0, zero)
            tl.store(O_ptr + off, o, mask=mask)
        else:
            v = m - s
        tl.store(V_ptr + off, v, mask=mask)
        if RECORD:
            tl.store(M_ptr + off, m, mask=mask)
            tl.store(S_ptr + off, s, mask=mask)
            tl.store(E_ptr + off, e, mask=mask)
    tl.store(FINAL_ptr + col, m, mask=mask)
    tl.store(FINAL_ptr + BN + col, s, mask=mask)
    tl.store(FINAL_ptr + 2 * BN + col, e, mask=mask)
    tl.store(FINAL_ptr + 3 * BN + col, o, mask=mask)


@triton.jit
def _clif_bwd(
    V_ptr,
    GV_ptr,
    GO_ptr,
    P_ptr,
    GI_ptr,
    DV_ptr,
    n_steps,
    BN,
    HAS_GV: tl.constexpr,
    HAS_GO: tl.constexpr,
    SPIKING: tl.constexpr,
    KEEP_DV: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    pid = tl.program_id(0)
    col = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = col < BN
    bm = tl.load(P_ptr + 1)
    bs = tl.load(P_ptr + 2)
    theta = tl.load(P_ptr + 3)
    inv_alpha = tl.load(P_ptr + 4)
    half = tl.load(P_ptr + 5)
    zero = tl.full([BLOCK_SIZE], 0, dtype=bm.dtype)
    aM = zero
    aS = zero
    aE = zero
    for tt in range(0, n_steps):
        off = (n_steps - 1 - tt) * BN + col
        gv = zero
        if HAS_GV:
            gv = tl.load(GV_ptr + off, mask=mask, other=0.0)
        if SPIKING:
            go = theta * aE
            if HAS_GO:
                go = go + tl.load(GO_ptr + off, mask=mask, other=0.0)
            v = tl.load(V_ptr + off, mask=mask, other=0.0)
            gv = gv + tl.where(tl.abs(v - theta) < half, inv_alpha * go, zero)
            aE = -gv + bm * aE
        aM = gv + bm * aM
        aS = -gv + bs * aS
        tl.store(GI_ptr + off, aM + aS, mask=mask)
        if KEEP_DV:
            tl.store(DV_ptr + off, gv, mask=mask)


def _params(p: LayerParams, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(
        [p.v0, p.beta_m, p.beta_s, p.theta, 1.0 / p.alpha, 0.5 * p.alpha], dtype=like.dtype, device=like.device
    )


def _grid(bn: int):
    return (triton.cdiv(max(bn, 1), BLOCK),)


_MAX_ELEMENTS = 2**31 - 1  # the kernels index with 32-bit offsets


def forward(x: torch.Tensor, W: torch.Tensor, p: LayerParams, record: bool = False, state: LayerState | None = None):
    T, B, _ = x.shape
    N = W.shape[0]
    if T * B * N > _MAX_ELEMENTS:
        return reference.forward(x, W, p, record, state)
    W = W.detach()
    I = torch.matmul(x.detach().to(W.dtype), W.t()).contiguous()
    V = torch.empty(T, B, N, dtype=W.dtype, device=W.device)
    O = torch.zeros_like(V)
    rec = [torch.zeros_like(V) for _ in range(3)] if record else [V, V, V]
    final = torch.empty(4, B, N, dtype=W.dtype, device=W.device)
    if state is not None:
        state.check(B, N)
        init = state.stacked(W.dtype, W.device)
    else:
        init = final  # a placeholder the kernel never reads
    _clif_fwd[_grid(B * N)](
        I,
        _params(p, W),
        V,
        O,
        rec[0],
        rec[1],
        rec[2],
        init,
        final,
        T,
        B * N,
        SPIKING=p.spiking,
        RECORD=record,
        HAS_STATE=state is not None,
        BLOCK_SIZE=BLOCK,
    )
    out = LayerState.from_stacked(final)
    if record:
        return V, O, rec[0], rec[1], rec[2], None, out
    return V, O, None, None, None, None, out


def backward(x, W, V, gV, gO, p: LayerParams, need_x: bool = True, need_w: bool = True, rows=None, credit=None):
    if V.numel() > _MAX_ELEMENTS:
        return reference.backward(x, W, V, gV, gO, p, need_x, need_w, credit=credit)
    n = reference.last_active_step(gV, gO) + 1
    T, B, N = V.shape
    W = W.detach()
    gI = torch.zeros_like(V)
    dV = torch.zeros_like(V) if credit is not None else gI  # gI: a placeholder the kernel never writes
    if n > 0:
        gVc = gV.to(V.dtype).contiguous() if gV is not None else V
        gOc = gO.to(V.dtype).contiguous() if (gO is not None and p.spiking) else V
        _clif_bwd[_grid(B * N)](
            V.contiguous(),
            gVc,
            gOc,
            _params(p, V),
            gI,
            dV,
            n,
            B * N,
            HAS_GV=gV is not None,
            HAS_GO=gO is not None and p.spiking,
            SPIKING=p.spiking,
            KEEP_DV=credit is not None,
            BLOCK_SIZE=BLOCK,
        )
    if credit is not None:
        credit.dV, credit.dI = dV[:, credit.sample].clone(), gI[:, credit.sample].clone()
    gx = gW = None
    if need_w:
        gW = torch.zeros_like(W)
        if n > 0:
            gW = p.v0 * torch.matmul(gI[:n].reshape(-1, N).t(), x[:n].detach().reshape(-1, W.shape[1]).to(W.dtype))
    if need_x:
        gx = torch.zeros(x.shape, dtype=W.dtype, device=W.device)
        if n > 0:
            gx[:n] = p.v0 * torch.matmul(gI[:n], W)
    return gx, gW


class _Guarded:
    """``backend="auto"`` on CUDA: the Triton kernels, falling back to plain torch (once, with a
    warning) if they fail to compile or run on this GPU."""

    failed = False

    @classmethod
    def forward(cls, x, W, p, record=False, state=None):
        if not cls.failed:
            try:
                return forward(x, W, p, record, state)
            except Exception as exc:  # noqa: BLE001 - any compiler/driver failure: use the fallback
                cls._fail(exc)
        return reference.forward(x, W, p, record, state)

    @classmethod
    def backward(cls, x, W, V, gV, gO, p, need_x=True, need_w=True, rows=None, credit=None):
        if not cls.failed:
            try:
                return backward(x, W, V, gV, gO, p, need_x, need_w, credit=credit)
            except Exception as exc:  # noqa: BLE001
                cls._fail(exc)
        return reference.backward(x, W, V, gV, gO, p, need_x, need_w, credit=credit)

    @classmethod
    def _fail(cls, exc):
        cls.failed = True
        warnings.warn(
            f"Triton C-LIF kernel unavailable on this GPU ({type(exc).__name__}: {exc}); using the plain-torch path",
            RuntimeWarning,
            stacklevel=3,
        )


guarded = _Guarded
