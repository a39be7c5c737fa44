"""Fused per-layer C-LIF forward/backward kernels.

Every backend implements the same two functions (see ``reference.py`` for the maths):

``forward(x, W, p, record) -> (V, O, M, S, E, aux)``   (M, S, E are None unless ``record``)
``backward(x, W, V, gV, gO, p, need_x, need_w, aux) -> (gx, gW)``

``aux`` is whatever the forward wants to hand its backward (the CPU kernel's compressed input).

``p`` is a ``LayerParams``. ``reference`` is plain torch (any device); ``cpu`` is numba.
"""

from __future__ import annotations

from dataclasses import dataclass


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
