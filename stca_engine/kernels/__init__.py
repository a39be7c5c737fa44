"""Fused per-layer C-LIF forward/backward kernels.

Every backend implements the same two functions (see ``reference.py`` for the maths):

``forward(x, W, p, record, state) -> (V, O, M, S, E, aux, final)``   (M, S, E are None unless ``record``)
``backward(x, W, V, gV, gO, p, need_x, need_w, aux, credit=None) -> (gx, gW)``

``state`` (a ``LayerState`` or None = all zeros) is every neuron's state before the first step and
``final`` the state after the last one, so a long input can run in pieces: piece by piece from the
carried state gives the same spikes as one run (no gradient flows into a given state).
``aux`` is whatever the forward wants to hand its backward (the CPU kernel's compressed input).
``credit`` (a ``LayerCredit`` or None) asks the backward to also keep one sample's per-step error;
when it is None the kernels do no extra work.

A backend may also offer ``backward_to_current(x, W, V, gV, gO, p, need_x, need_w, aux, credit, up)
-> (gI, gW)`` (numba does): it returns the layer's stored v0 · ∂L/∂I instead of the gradient below, and
takes the layer above's (``up``) to fold into its own loop; ``layer.CLIFStackFunction`` chains layers
with it as one autograd node.

``p`` is a ``LayerParams``. ``reference`` is plain torch (any device); ``cpu`` is numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LayerParams:
    """Scalars one layer needs (taken from a ``NeuronConfig``)."""

    v0: float
    beta_m: float
    beta_s: float
    theta: float
    alpha: float
    spiking: bool = True

    @classmethod
    def from_config(cls, cfg, spiking: bool = True) -> LayerParams:
        return cls(cfg.v0, cfg.beta_m, cfg.beta_s, cfg.theta, cfg.alpha, bool(spiking))


@dataclass
class LayerState:
    """Every neuron's state between two steps: the traces M, S, E and its last spike O, each ``[B, N]``
    (as Norse's ``*_step(input, state, p) -> (z, state)`` and SpikingJelly's ``v_init``)."""

    m: torch.Tensor
    s: torch.Tensor
    e: torch.Tensor
    o: torch.Tensor

    @classmethod
    def zeros(cls, batch: int, n: int, dtype=torch.float32, device=None) -> LayerState:
        z = torch.zeros(batch, n, dtype=dtype, device=device)
        return cls(z, z.clone(), z.clone(), z.clone())

    def stacked(self, dtype, device=None) -> torch.Tensor:
        """``[4, B, N]`` = (M, S, E, O), contiguous, for kernels that take the state as one array."""
        return torch.stack([getattr(self, k).detach().to(device=device, dtype=dtype) for k in "mseo"]).contiguous()

    @classmethod
    def from_stacked(cls, t: torch.Tensor) -> LayerState:
        """Inverse of ``stacked``."""
        return cls(t[0], t[1], t[2], t[3])

    def check(self, batch: int, n: int) -> LayerState:
        """Itself, after checking every trace is ``[batch, n]`` (``ValueError`` naming the mismatch)."""
        for name in ("m", "s", "e", "o"):
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != (batch, n):
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"state.{name} must be [{batch}, {n}], got {got}")
        return self


class LayerCredit:
    """One sample's per-step error inside a layer, filled by the backward kernel (paper Eq. 11–18).

    ``dV[k, n]`` = ∂L/∂V[k] of neuron n: the total error reaching its potential at step k (the loss
    itself at k*, plus what its spike at k passes on to its own reset E and to the next layer, through
    the surrogate h(V)); ``dI[k, n]`` = ∂L/∂I[k], the error of its input current, which becomes
    ∂L/∂W = V0 · Σₖ dIᵀ x. Both ``[T, N]``; rows after the last step with any error stay 0.
    """

    __slots__ = ("sample", "dV", "dI")

    def __init__(self, sample: int = 0):
        self.sample = int(sample)
        self.dV: torch.Tensor | None = None
        self.dI: torch.Tensor | None = None

    def __repr__(self) -> str:
        shape = None if self.dV is None else tuple(self.dV.shape)
        return f"LayerCredit(sample={self.sample}, shape={shape})"
