"""One C-LIF layer as a ``torch.autograd.Function``: fused forward, exact custom backward.

Autograd only sees one node per layer (``CLIFLayerFunction``; with the numba kernels one node per
network, ``CLIFStackFunction``), so the time loop never becomes thousands of tiny graph
nodes; the backward is the reverse-time adjoint recurrence written next to the forward in the
kernels (``kernels/reference.py`` states the maths). Gradients flow into ``W`` and into ``x`` (the
spikes of the layer below), which is how the error reaches hidden layers.
"""

from __future__ import annotations

import os

import torch

from .errors import ConfigError
from .kernels import LayerParams

BACKENDS = ("auto", "numba", "torch", "cuda")


def _triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def kernel_module(backend: str, device: torch.device):
    """The kernel module for a backend name on a device.

    ``auto``: numba on CPU; on CUDA the Triton kernels when Triton is installed (falling back to
    plain torch if they fail), else plain torch. ``cuda`` insists on Triton (on CPU only under
    TRITON_INTERPRET=1, which is how the tests check it). ``torch``: plain torch anywhere.
    """
    device = torch.device(device)
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}", "SNN")
    if backend == "auto":
        if device.type == "cpu":
            backend = "numba"
        else:
            try:
                from .kernels import cuda
            except ImportError:
                from .kernels import reference

                return reference
            return cuda.guarded
    if backend == "numba":
        if device.type != "cpu":
            raise ConfigError(f"backend 'numba' runs on the CPU only, but the network is on {device}", "SNN")
        from .kernels import cpu

        return cpu
    if backend == "cuda":
        if device.type != "cuda" and not _triton_interpreting():
            raise ConfigError(f"backend 'cuda' needs a CUDA device, but the network is on {device}", "SNN")
        try:
            from .kernels import cuda
        except ImportError:
            raise ConfigError(
                "backend 'cuda' needs the 'triton' package (it comes with CUDA builds of torch); "
                "use backend='torch' or 'auto'",
                "SNN",
            ) from None
        return cuda
    from .kernels import reference

    return reference


def _no_credit(credit, V: torch.Tensor) -> None:
    """A layer no gradient reached: its credit probe (if any) holds zeros ``[T, N]``."""
    if credit is not None:
        credit.dV = torch.zeros(V.shape[0], V.shape[2], dtype=V.dtype, device=V.device)
        credit.dI = torch.zeros_like(credit.dV)


class CLIFLayerFunction(torch.autograd.Function):
    """``(x [T,B,n_in], W [n_out,n_in]) -> (V, O)`` each ``[T, B, n_out]``.

    ``sink`` (a list or None) receives ``(M, S, E)`` traces when recording; they carry no gradient.
    ``credit`` (a ``LayerCredit`` or None) is filled by the backward with one sample's per-step error.
    ``state`` (a ``LayerState`` or None = zeros) is the neurons' state before the first step; the state
    after the last step is appended to ``state_out`` (a list) when given. No gradient reaches ``state``.
    """

    @staticmethod
    def forward(ctx, x, W, params: LayerParams, kernels, sink, credit=None, state=None, state_out=None):
        V, O, M, S, E, aux, final = kernels.forward(x, W, params, record=sink is not None, state=state)
        if sink is not None:
            sink.append((M, S, E))
        if state_out is not None:
            state_out.append(final)
        ctx.set_materialize_grads(False)  # None instead of zero tensors: lets backward skip work
        ctx.save_for_backward(x, W, V)
        ctx.params = params
        ctx.kernels = kernels
        ctx.aux = aux
        ctx.credit = credit
        if not params.spiking:
            ctx.mark_non_differentiable(O)
        return V, O

    @staticmethod
    def backward(ctx, gV, gO):
        x, W, V = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        credit = ctx.credit
        if gV is None and gO is None:
            _no_credit(credit, V)
            return (None,) * 8
        gx, gW = ctx.kernels.backward(
            x, W, V, gV, gO if ctx.params.spiking else None, ctx.params, need_x, need_w, ctx.aux, credit=credit
        )
        if gx is not None and gx.dtype != x.dtype:
            gx = gx.to(x.dtype)
        return gx, gW, None, None, None, None, None, None


def clif_layer(
    x: torch.Tensor,
    W: torch.Tensor,
    params: LayerParams,
    backend: str = "auto",
    sink=None,
    credit=None,
    state=None,
    state_out=None,
):
    """Run one layer; see ``CLIFLayerFunction``."""
    return CLIFLayerFunction.apply(x, W, params, kernel_module(backend, W.device), sink, credit, state, state_out)


class CLIFStackFunction(torch.autograd.Function):
    """Several C-LIF layers as one autograd node, for kernels with ``backward_to_current`` (numba):
    ``(x, *Ws) -> (V_1 … V_L, O_1 … O_L)``, the same values and gradients as ``CLIFLayerFunction``
    layer after layer.

    Why one node: a narrow layer (the output layer: one neuron per class) hands its error to the
    layer below inside that layer's backward loop, instead of through a ``[T, B, N]`` gradient that
    one matmul writes and the next kernel reads back (9.6 MB at 128-300-10, T = 500, batch 16; about
    a tenth of a training step). ``scales[i]`` (``[B, N_i]`` or None) multiplies layer i's spikes on
    their way up (dropout); the other arguments are ``CLIFLayerFunction``'s, one per layer.
    """

    @staticmethod
    def forward(ctx, x, params, kernels, scales, sink, credits, states, state_out, *Ws):
        n = len(Ws)
        hs, Vs, Os, aux = [], [], [], []
        h = x
        for i, W in enumerate(Ws):
            V, O, M, S, E, a, final = kernels.forward(h, W, params[i], record=sink is not None, state=states[i])
            if sink is not None:
                sink.append((M, S, E))
            if state_out is not None:
                state_out.append(final)
            hs.append(h)
            Vs.append(V)
            Os.append(O)
            aux.append(a)
            if i < n - 1:
                h = O if scales[i] is None else O * scales[i]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*hs, *Ws, *Vs)
        ctx.n, ctx.params, ctx.kernels, ctx.scales, ctx.aux, ctx.credits = n, params, kernels, scales, aux, credits
        if not params[-1].spiking:
            ctx.mark_non_differentiable(Os[-1])
        return (*Vs, *Os)

    @staticmethod
    def backward(ctx, *grads):
        n, kernels = ctx.n, ctx.kernels
        saved = ctx.saved_tensors
        hs, Ws, Vs = saved[:n], saved[n : 2 * n], saved[2 * n :]
        need_w = ctx.needs_input_grad[8:]
        # the layer below layer i needs its gradient when anything under it learns
        need_x = [ctx.needs_input_grad[0] or any(need_w[:i]) for i in range(n)]
        gWs: list = [None] * n
        gx = None
        up = None  # the layer above, fused in: (its v0 · dL/dI, its weights, the scale between)
        extra = None  # or its gradient as a tensor, for a wide layer above
        for i in range(n - 1, -1, -1):
            p, credit = ctx.params[i], ctx.credits[i]
            gV = grads[i]
            gO = grads[n + i] if p.spiking else None
            if extra is not None:
                gO = extra if gO is None else gO + extra
            if gV is None and gO is None and up is None:
                _no_credit(credit, Vs[i])
                up = extra = None
                continue
            gI, gWs[i] = kernels.backward_to_current(
                hs[i], Ws[i], Vs[i], gV, gO, p, need_x[i], need_w[i], ctx.aux[i], credit=credit, up=up
            )
            up = extra = None
            if gI is None:
                continue
            W = Ws[i].detach()
            if i == 0:
                gx = torch.matmul(gI, W).to(hs[0].dtype)
            elif W.shape[0] <= kernels.FUSE_MAX_WIDTH:
                up = (gI, W, ctx.scales[i - 1])
            else:
                extra = torch.matmul(gI, W)
                if ctx.scales[i - 1] is not None:
                    extra = extra * ctx.scales[i - 1]
        return (gx, None, None, None, None, None, None, None, *gWs)


def fuses_layers(kernels) -> bool:
    """Whether ``kernels`` can run a stack of layers as one ``CLIFStackFunction``."""
    return hasattr(kernels, "backward_to_current")
