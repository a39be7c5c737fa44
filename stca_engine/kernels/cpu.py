"""numba C-LIF kernels for the CPU: the maths of ``reference.py``, fused and parallel over samples.

Why this shape:
- the recurrence is serial in time but independent across samples and neurons, so each thread
  takes whole samples and walks time with the innermost loop over neurons (contiguous, vectorised);
- layer inputs are spikes and mostly silent (~98 % for sound, a few % for hidden layers), so the
  input is compressed once per layer into a row-compressed list of its nonzeros (rows = (t, b);
  found 8 entries at a time through the bit pattern) that both the forward current
  gather and the backward weight gradient walk; inputs denser than ``SPARSE_MAX_DENSITY`` use BLAS;
- the backward is one pass per layer: the adjoint recurrence from each sample's last step that
  carries gradient (after k* nothing matters) down to step 0, accumulating dW from the nonzero
  inputs; when the layer below needs its gradient, dL/dI is stored and gx = V0·gI·W is one BLAS
  matmul afterwards (written inside the loop it ran unvectorised on one thread and was 80 % of a
  128-300-10 training step); a narrow layer above (the output layer) is instead folded into the
  loop of the layer below (``backward_to_current(up=...)``): its K-wide gI times W per step costs
  less than writing and reading back a ``[T, B, N]`` gradient (a 128-300-10 step 17.2 → 14.7 ms).

Compiled lazily on first use (``cache=True`` keeps the machine code on disk), ``fastmath=False``.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np
import torch

from . import LayerParams, LayerState

SPARSE_MAX_DENSITY = 0.15  # above this fraction of nonzero inputs a BLAS matmul is faster
PARALLEL_MIN_WORK = 200_000  # neuron-steps below which waking a second thread costs more than it saves


# ------------------------------------------------------------------------------------------------
# compressed input rows
@nb.njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _row_fill(bits, vals_in, ptr, idx, val):
    R, n = bits.shape
    for r in nb.prange(R):
        row = bits[r]
        xr = vals_in[r]
        k = ptr[r]
        j = 0
        while j + 8 <= n:
            if (row[j] | row[j + 1] | row[j + 2] | row[j + 3] | row[j + 4] | row[j + 5] | row[j + 6] | row[j + 7]) != 0:
                for q in range(j, j + 8):
                    if row[q] != 0:
                        idx[k] = q
                        val[k] = xr[q]
                        k += 1
            j += 8
        for q in range(j, n):
            if row[q] != 0:
                idx[k] = q
                val[k] = xr[q]
                k += 1


@nb.njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _chunk_fill(bits, vals_in, rows_per, cap, counts, cidx, cval, ctot):
    """One pass: chunk c (rows ``c·rows_per`` …) lists its nonzeros at ``cidx/cval[c·cap :]`` (at most
    ``cap``; ``ctot[c]`` counts them all, so a chunk over ``cap`` is seen) and each row's count."""
    R, n = bits.shape
    n_chunks = ctot.shape[0]
    for c in nb.prange(n_chunks):
        base = c * cap
        pos = 0
        for r in range(c * rows_per, min(R, (c + 1) * rows_per)):
            row = bits[r]
            xr = vals_in[r]
            start = pos
            j = 0
            while j + 8 <= n:
                if (
                    row[j] | row[j + 1] | row[j + 2] | row[j + 3] | row[j + 4] | row[j + 5] | row[j + 6] | row[j + 7]
                ) != 0:
                    for q in range(j, j + 8):
                        if row[q] != 0:
                            if pos < cap:
                                cidx[base + pos] = q
                                cval[base + pos] = xr[q]
                            pos += 1
                j += 8
            for q in range(j, n):
                if row[q] != 0:
                    if pos < cap:
                        cidx[base + pos] = q
                        cval[base + pos] = xr[q]
                    pos += 1
            counts[r] = pos - start
        ctot[c] = pos


class SparseRows:
    """The nonzeros of an input ``[T, B, n_in]``: row r = t·B + b holds idx/val[ptr[r]:ptr[r+1]]."""

    def __init__(self, ptr, idx, val):
        self.ptr, self.idx, self.val = ptr, idx, val

    @property
    def nnz(self) -> int:
        return int(self.ptr[-1])


def compress(x: torch.Tensor, max_density: float = SPARSE_MAX_DENSITY):
    """``SparseRows`` of ``x`` (contiguous CPU float tensor), or None when it is denser than ``max_density``."""
    xf = x.numpy().reshape(-1, x.shape[-1])
    bits = xf.view(np.uint32 if xf.dtype == np.float32 else np.uint64)
    R = xf.shape[0]
    counts = np.empty(R, np.int64)
    threads = _threads(xf.size // 8)
    # one pass into per-chunk lists sized for the density limit (pages never written are never
    # resident); only a chunk denser than that sends the input through the two-pass path
    n_chunks = max(1, min(R, 4 * threads.n))
    rows_per = -(-R // n_chunks)
    cap = int(min(1.0, max_density) * rows_per * xf.shape[1]) + 1
    cidx = np.empty(n_chunks * cap, np.int32)
    cval = np.empty(n_chunks * cap, xf.dtype)
    ctot = np.zeros(n_chunks, np.int64)
    with threads:
        _chunk_fill(bits, xf, rows_per, cap, counts, cidx, cval, ctot)
    nnz = int(ctot.sum())
    if nnz > max_density * max(1, xf.size):
        return None
    ptr = np.zeros(R + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    if int(ctot.max()) <= cap:
        parts = [slice(c * cap, c * cap + int(ctot[c])) for c in range(n_chunks)]
        return SparseRows(ptr, np.concatenate([cidx[p] for p in parts]), np.concatenate([cval[p] for p in parts]))
    idx = np.empty(nnz, np.int32)
    val = np.empty(nnz, xf.dtype)
    with _threads(xf.size // 8):
        _row_fill(bits, xf, ptr, idx, val)
    return SparseRows(ptr, idx, val)


# ------------------------------------------------------------------------------------------------
# forward
@nb.njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _forward(
    ptr, idx, val, Wt, I, use_rows, v0, bm, bs, theta, tiny, spiking, record, V, O, M, S, E, has_state, init, final
):
    """``init``/``final`` ``[4, B, N]``: (M, S, E, O) before the first step (read when ``has_state``) and
    after the last one (always written). Traces that have decayed below ``tiny`` (the dtype's smallest
    normal number) become 0: subnormal arithmetic is ~20x slower on x86, and a silent stretch of
    ~220 steps takes S there (β_s = 0.67 at the default 3 ms step)."""
    T, B, N = V.shape
    one = v0 / v0
    zero = one - one
    for b in nb.prange(B):
        m = np.zeros(N, V.dtype)
        s = np.zeros(N, V.dtype)
        e = np.zeros(N, V.dtype)
        o = np.zeros(N, V.dtype)
        if has_state:
            m[:] = init[0, b]
            s[:] = init[1, b]
            e[:] = init[2, b]
            o[:] = init[3, b]
        cur = np.zeros(N, V.dtype)
        for t in range(T):
            if use_rows:
                cur[:] = 0
                r = t * B + b
                for k in range(ptr[r], ptr[r + 1]):
                    xv = val[k]
                    w = Wt[idx[k]]
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
                    mn = mn if abs(mn) >= tiny else zero
                    sn = sn if abs(sn) >= tiny else zero
                    en = en if abs(en) >= tiny else zero
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
                    mn = mn if abs(mn) >= tiny else zero
                    sn = sn if abs(sn) >= tiny else zero
                    m[n] = mn
                    s[n] = sn
                    Vt[n] = mn - sn
            if record:
                M[t, b] = m
                S[t, b] = s
                E[t, b] = e
        final[0, b] = m
        final[1, b] = s
        final[2, b] = e
        final[3, b] = o


# ------------------------------------------------------------------------------------------------
# backward
@nb.njit(cache=True, inline="always")
def _any_nonzero(row):
    for v in row:
        if v != 0:
            return True
    return False


@nb.njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _backward(
    ptr,
    idx,
    val,
    V,
    gV,
    gO,
    has_gV,
    has_gO,
    v0,
    bm,
    bs,
    theta,
    inv_alpha,
    half,
    tiny,
    spiking,
    store_gi,
    wgrad_mode,
    acc,
    gI,
    k_last,
    probe_b,
    pdV,
    pdI,
    has_up,
    gIup,
    Wup,
    has_scale,
    upscale,
):
    """One reverse pass per sample. wgrad_mode: 0 none, 1 accumulate from the sparse rows into acc,
    2 dense input (the caller does one BLAS matmul from gI). ``store_gi``: write v0 · dL/dI into gI (zero
    after each sample's last step that carries gradient: the caller zero-fills it). Adjoints below
    ``tiny`` become 0, as the forward's traces do. Sample ``probe_b`` (-1: none) also
    writes its total ∂L/∂V and ∂L/∂I per step into ``pdV``/``pdI`` ``[T, N]``.

    ``has_up``: the layer above is fused in. Its stored v0 · ∂L/∂I ``gIup [T, B, K]`` and weights
    ``Wup [K, N]`` give this layer's spike gradient row by row, ``gO + upscale[b] ⊙ (gIup[t, b] · Wup)``
    (``upscale``: the dropout scale between the layers, when ``has_scale``), so the ``[T, B, N]``
    gradient is never written to memory and read back."""
    T, B, N = V.shape
    n_chunk = acc.shape[0]
    zero = v0 - v0
    win = half if spiking else zero - v0 / v0  # |V - ϑ| < -1 never holds: no spike, no reset to pass on
    zrow = np.zeros(N, V.dtype)
    K = gIup.shape[2]
    for c in nb.prange(n_chunk):
        up = np.zeros(N, V.dtype)
        aM = np.zeros(N, V.dtype)
        aS = np.zeros(N, V.dtype)
        aE = np.zeros(N, V.dtype)
        gi = np.zeros(N, V.dtype)
        gvb = np.zeros(N, V.dtype)
        for b in range(c, B, n_chunk):
            kl = -1
            for t in range(T - 1, -1, -1):  # the last step that carries any gradient
                if (
                    (has_gV and _any_nonzero(gV[t, b]))
                    or (has_gO and _any_nonzero(gO[t, b]))
                    or (has_up and _any_nonzero(gIup[t, b]))
                ):
                    kl = t
                    break
            k_last[b] = kl
            is_probe = b == probe_b
            aM[:] = 0
            aS[:] = 0
            aE[:] = 0
            for t in range(kl, -1, -1):
                Vt = V[t, b]
                gvr = gV[t, b] if has_gV else zrow
                gor = gO[t, b] if has_gO else zrow
                if has_up:
                    for n in range(N):
                        up[n] = zero
                    gut = gIup[t, b]
                    for k in range(K):
                        g = gut[k]
                        if g != 0:
                            w = Wup[k]
                            for n in range(N):
                                up[n] += g * w[n]
                    if has_scale:
                        sc = upscale[b]
                        for n in range(N):
                            up[n] = gor[n] + sc[n] * up[n]
                    else:
                        for n in range(N):
                            up[n] = gor[n] + up[n]
                    gor = up
                # one branch-free inner loop (a missing gradient is a zero row, a non-spiking layer's
                # surrogate window is empty, the probe copies rows afterwards): it vectorises, which
                # halved the hidden layer's backward
                for n in range(N):
                    go = theta * aE[n] + gor[n]
                    gv = gvr[n] + (inv_alpha * go if abs(Vt[n] - theta) < win else zero)
                    ae = bm * aE[n] - gv
                    am = bm * aM[n] + gv
                    a_s = bs * aS[n] - gv
                    aE[n] = ae if abs(ae) >= tiny else zero
                    am = am if abs(am) >= tiny else zero
                    a_s = a_s if abs(a_s) >= tiny else zero
                    aM[n] = am
                    aS[n] = a_s
                    gi[n] = am + a_s
                    gvb[n] = gv
                if is_probe:
                    pdV[t] = gvb
                    pdI[t] = gi
                if wgrad_mode == 1:
                    r = t * B + b
                    for k in range(ptr[r], ptr[r + 1]):
                        xv = val[k]
                        a = acc[c, idx[k]]
                        for n in range(N):
                            a[n] += xv * gi[n]
                if store_gi:  # with v0 folded in: the matmuls after it then need no extra pass over [T, B, N]
                    gIt = gI[t, b]
                    for n in range(N):
                        gIt[n] = v0 * gi[n]


# ------------------------------------------------------------------------------------------------
# threads
_LAUNCH_LOCK = threading.Lock()
_LAYER: list[str] = []


def _needs_lock() -> bool:
    """numba's fallback 'workqueue' threading layer aborts the process on concurrent parallel launches
    (e.g. two app sessions training at once); 'omp' and 'tbb' do not need the lock."""
    if not _LAYER:
        try:
            _LAYER.append(nb.threading_layer())
        except ValueError:  # no parallel launch yet: unknown, be safe
            return True
    return _LAYER[0] == "workqueue"


class _threads:
    """Run small problems on the calling thread only (numba's thread pool wake-up is ~0.1 ms idle,
    far more on a busy machine); large ones on all of numba's threads."""

    def __init__(self, work: int):
        self.n = 1 if work < PARALLEL_MIN_WORK else nb.get_num_threads()  # respects numba.set_num_threads

    def __enter__(self):
        self.locked = _needs_lock()
        if self.locked:
            _LAUNCH_LOCK.acquire()
        self.prev = nb.get_num_threads()
        nb.set_num_threads(max(1, self.n))

    def __exit__(self, *exc):
        nb.set_num_threads(self.prev)
        if self.locked:
            _LAUNCH_LOCK.release()


# ------------------------------------------------------------------------------------------------
# allocator
_MALLOC_TUNED: list[bool] = []


def _tune_malloc() -> None:
    """Keep large freed buffers in the heap (glibc only; once per process; STCA_NO_MALLOPT=1 opts out).

    Every training step allocates fresh ``[T, B, N]`` buffers (voltages, spikes, gradients). glibc
    serves blocks above its mmap threshold (at most 32 MB) by mmap and unmaps them on free, so
    each step page-faults them in again: at T = 2000 that doubled the step time. Raising the
    thresholds lets the next step reuse the memory; the cost is that the process keeps its peak heap.
    """
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED.append(True)
    import os

    if os.environ.get("STCA_NO_MALLOPT") == "1":
        return
    libc = _glibc()
    if libc is not None:
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 30)


def _glibc():
    """glibc's ``mallopt`` / ``malloc_trim``, or None where the C library is another one."""
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist in glibc only
    except (OSError, AttributeError):
        return None
    return libc


ENV_MALLOC_ARENAS = "STCA_MALLOC_ARENAS"
DEFAULT_MALLOC_ARENAS = 2


def limit_heap_arenas() -> int | None:
    """Cap glibc's malloc arenas for a long-lived multi-session process (the app server); the cap set,
    or None where it was not (not glibc, or ``STCA_MALLOC_ARENAS=0``).

    glibc gives each new thread that allocates its own arena, up to 8 per core, and ``malloc_trim``
    cannot return the fragmented pages those arenas keep: five concurrent training sessions for 10
    minutes left the server +18.5 % above its start after every tab had closed. The cap works best
    from the process's start, so ``make app`` (and the tests' server) also set ``MALLOC_ARENA_MAX``
    from the same setting: +3.9 % then (``benchmarks/soak.py``, docs/ROBUSTNESS.md). Set here as well
    for servers started otherwise; arenas made before stay."""
    import os

    raw = os.environ.get(ENV_MALLOC_ARENAS, str(DEFAULT_MALLOC_ARENAS)).strip()
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_MALLOC_ARENAS}={raw!r}: expected a whole number of arenas (0 = glibc's default)"
        ) from None
    if n < 0:
        raise ValueError(f"{ENV_MALLOC_ARENAS}={raw!r}: expected 0 or more arenas")
    libc = _glibc()
    if n == 0 or libc is None:
        return None
    m_arena_max = -8
    libc.mallopt(m_arena_max, n)
    return n


def release_free_heap() -> bool:
    """Give the heap's free memory back to the OS (glibc ``malloc_trim``); True where it ran.

    The thresholds ``_tune_malloc`` raises keep a finished run's buffers in the heap for the next
    step; a long-lived server (the app) calls this when runs and sessions are gone, so their peak does
    not stay in its RSS."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


# ------------------------------------------------------------------------------------------------
# entry points (same contract as reference.py, plus the compressed input passed forward → backward)
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _dummy(dtype, nd=3) -> np.ndarray:
    return np.zeros((1,) * nd, dtype=dtype)


def _no_rows(npdt):
    return np.zeros(1, np.int64), np.zeros(1, np.int32), np.zeros(1, npdt)


def forward(x: torch.Tensor, W: torch.Tensor, p: LayerParams, record: bool = False, state: LayerState | None = None):
    """Returns ``(V, O, M, S, E, rows, final)``; ``rows`` (the compressed input or None) goes to ``backward``.

    With a ``state`` the input currents are always summed from the compressed rows (input by input, in
    increasing order), never by a BLAS matmul whose rounding depends on the matrix shape: so a run
    split into pieces adds exactly what one run adds, and gives the same spikes."""
    _tune_malloc()
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
    sc = (npdt(p.v0), npdt(p.beta_m), npdt(p.beta_s), npdt(p.theta), np.finfo(npdt).tiny)
    final = torch.empty(4, B, N, dtype=dt)
    if state is not None:
        state.check(B, N)
        init = state.stacked(dt, "cpu").numpy()
    else:
        init = _dummy(npdt)
    carry = (state is not None, init, final.numpy())
    rows = compress(x, max_density=1.0 if state is not None else SPARSE_MAX_DENSITY)
    if rows is not None:
        with _threads(T * B * N):
            _forward(
                rows.ptr,
                rows.idx,
                rows.val,
                _np(W.t()),
                _dummy(npdt),
                True,
                *sc,
                p.spiking,
                record,
                V.numpy(),
                O.numpy(),
                Mn,
                Sn,
                En,
                *carry,
            )
    else:
        I = torch.matmul(x, W.t())
        with _threads(T * B * N):
            _forward(
                *_no_rows(npdt),
                _dummy(npdt, 2),
                _np(I),
                False,
                *sc,
                p.spiking,
                record,
                V.numpy(),
                O.numpy(),
                Mn,
                Sn,
                En,
                *carry,
            )
    out = LayerState.from_stacked(final)
    if record:
        return V, O, rec[0], rec[1], rec[2], rows, out
    return V, O, None, None, None, rows, out


def backward(x, W, V, gV, gO, p: LayerParams, need_x: bool = True, need_w: bool = True, rows=None, credit=None):
    gI, gW = backward_to_current(x, W, V, gV, gO, p, need_x, need_w, rows, credit)
    gx = torch.matmul(gI, W.detach()) if need_x else None  # gI holds v0 · dL/dI
    return gx, gW


# the layer above may hand its gradient over fused (see ``_backward``) when it is at most this wide:
# then K multiply-adds per neuron-step inside the loop cost less than writing and reading the
# [T, B, N] gradient; wider layers above go through a BLAS matmul
FUSE_MAX_WIDTH = 32


def backward_to_current(
    x, W, V, gV, gO, p: LayerParams, need_x: bool = True, need_w: bool = True, rows=None, credit=None, up=None
):
    """``(gI, gW)``: the stored v0 · ∂L/∂I ``[T, B, N]`` (None unless ``need_x``; the layer below's
    gradient is gI · W) and ∂L/∂W. ``up = (gI_above, W_above, scale or None)`` fuses the layer above in:
    its gradient reaches this layer's spikes inside the loop, added to ``gO`` (see ``_backward``)."""
    T, B, N = V.shape
    dt = W.dtype
    x = x.detach().to(dt).contiguous()
    W = W.detach().contiguous()
    npdt = _np(W).dtype.type
    n_in = W.shape[1]
    k_last = np.full(B, -1, dtype=np.int64)
    mode = 0
    if need_w:
        if rows is None:
            rows = compress(x)
        mode = 1 if rows is not None else 2
    n_chunk = max(1, min(B, _threads(T * B * N).n))
    acc = np.zeros((n_chunk, n_in, N), dtype=npdt) if mode == 1 else np.zeros((n_chunk, 1, 1), dtype=npdt)
    store_gi = mode == 2 or need_x
    gI = torch.from_numpy(np.zeros((T, B, N), dtype=npdt)) if store_gi else None
    ptr, idx, val = (rows.ptr, rows.idx, rows.val) if mode == 1 else _no_rows(npdt)
    if credit is not None:
        pdV, pdI = torch.zeros(T, N, dtype=dt), torch.zeros(T, N, dtype=dt)
        probe = (int(credit.sample), pdV.numpy(), pdI.numpy())
    else:
        probe = (-1, _dummy(npdt, 2), _dummy(npdt, 2))
    if up is not None:
        g_up, w_up, scale = up
        up_args = (
            True,
            _np(g_up.to(dt)),
            _np(w_up.detach().to(dt)),
            scale is not None,
            _np(scale.to(dt)) if scale is not None else _dummy(npdt, 2),
        )
    else:
        up_args = (False, _dummy(npdt), _dummy(npdt, 2), False, _dummy(npdt, 2))
    with _threads(T * B * N):
        _backward(
            ptr,
            idx,
            val,
            _np(V),
            _np(gV.to(dt)) if gV is not None else _dummy(npdt),
            _np(gO.to(dt)) if gO is not None else _dummy(npdt),
            gV is not None,
            gO is not None,
            npdt(p.v0),
            npdt(p.beta_m),
            npdt(p.beta_s),
            npdt(p.theta),
            npdt(1.0 / p.alpha),
            npdt(0.5 * p.alpha),
            np.finfo(npdt).tiny,
            p.spiking,
            store_gi,
            mode,
            acc,
            gI.numpy() if store_gi else _dummy(npdt),
            k_last,
            *probe,
            *up_args,
        )
    if credit is not None:
        credit.dV, credit.dI = pdV, pdI
    gW = None
    if mode == 1:
        gW = p.v0 * torch.from_numpy(acc.sum(axis=0)).t().contiguous()
    elif mode == 2:
        n = int(k_last.max()) + 1
        gW = torch.zeros_like(W)
        if n > 0:
            gW = torch.matmul(gI[:n].reshape(-1, N).t(), x[:n].reshape(-1, n_in))
    return gI if need_x else None, gW
