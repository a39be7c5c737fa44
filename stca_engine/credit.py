"""Where STCA sends the error: one sample's per-step credit in every layer (paper Eq. 11–18).

The loss touches each output neuron at one step k* (k⁺ or k⁻). Back-propagation carries that error
backwards in time through the M, S and E traces and down through the spikes into the hidden layers.
``credit_assignment`` runs one sample forward and backward and keeps what the kernels computed on the
way: ∂L/∂V[k] and ∂L/∂I[k] of every neuron at every step, and the weight gradient ∂L/∂W it adds up
to. Nothing here is approximated or re-derived: the numbers are the backward kernels' own (the tests
hold them against autograd through a plain float64 loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .config import NeuronConfig
from .errors import ConfigError


@dataclass
class CreditMap:
    """One sample's error inside the network (numpy float32; layer 0 = first hidden, -1 = output).

    ``dV[i]``, ``dI[i]``: ``[T, n_i]`` per-step ∂L/∂V and ∂L/∂I of layer i; ``dW[i]``: ``[n_i, n_in_i]``,
    the sample's ∂L/∂W (an SGD step moves the weights by −lr · dW). ``spikes[i]``: ``[T, n_i]`` uint8.
    ``k_star``/``sign``: the loss's time point and direction per output neuron (−1 / 0: no loss).
    """

    loss: float
    dt_ms: float
    dV: list[np.ndarray]
    dI: list[np.ndarray]
    dW: list[np.ndarray]
    spikes: list[np.ndarray]
    output_voltage: np.ndarray  # [T, N_out]
    k_star: np.ndarray  # int64 [N_out]
    sign: np.ndarray  # int8 [N_out]
    index: int | None = None
    name: str = ""
    events: list = field(default_factory=list)

    @property
    def n_layers(self) -> int:
        return len(self.dV)

    @property
    def n_steps(self) -> int:
        return int(self.dV[-1].shape[0]) if self.dV else 0


def _float(t: torch.Tensor | None, shape) -> np.ndarray:
    if t is None:
        return np.zeros(shape, np.float32)
    return t.detach().to("cpu", torch.float32).numpy().copy()


def credit_assignment(
    net,
    x: torch.Tensor,
    target: torch.Tensor,
    neuron_cfg: NeuronConfig,
    task: str = "detect",
    objective: str = "stca",
    sample: int = 0,
    tdp1_spikes: int = 1,
) -> CreditMap:
    """The credit of sample ``sample`` of the batch ``x [T, B, n_in]`` under the batch loss the trainer
    uses (its mean over samples; with B = 1 that is the sample's own loss).

    The network's weights and their ``.grad`` are left as they were: the gradient is taken with
    ``torch.autograd.grad``, not accumulated. ``tdp1_spikes``: as the run was trained (``stca_loss``).
    """
    from .losses import stca_loss

    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ConfigError(f"x must be a tensor [T, B, n_in], got {getattr(x, 'shape', type(x))}", "credit")
    weights = list(net.weights)
    with torch.enable_grad():
        rec = net(x, credit=sample)
        v, s = rec.voltages[-1], rec.spikes[-1]
        loss, info = stca_loss(v, s, target, neuron_cfg, task=task, objective=objective, tdp1_spikes=tdp1_spikes)
        if loss.requires_grad:
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
        else:  # no neuron gave a loss: no error anywhere
            grads = [None] * len(weights)
    b = rec.credit[0].sample
    shapes = [(x.shape[0], W.shape[0]) for W in weights]
    return CreditMap(
        loss=float(loss.detach()),
        dt_ms=float(neuron_cfg.dt_ms),
        dV=[_float(c.dV, sh) for c, sh in zip(rec.credit, shapes)],
        dI=[_float(c.dI, sh) for c, sh in zip(rec.credit, shapes)],
        dW=[_float(g, tuple(W.shape)) for g, W in zip(grads, weights)],
        spikes=[o[:, b].detach().to("cpu").numpy().astype(np.uint8) for o in rec.spikes],
        output_voltage=_float(v[:, b], shapes[-1]),
        k_star=info.k_star[b].cpu().numpy().astype(np.int64),
        sign=info.sign[b].cpu().numpy().astype(np.int8),
    )


def credit_of_sample(
    net, dataset, index: int, neuron_cfg: NeuronConfig, task: str, objective: str, tdp1_spikes: int = 1
) -> CreditMap:
    """``credit_assignment`` of sample ``index`` of a ``SpikeDataset`` on its own (B = 1)."""
    if not 0 <= int(index) < len(dataset):
        raise ConfigError(f"sample {index} out of range for {len(dataset)} samples", "credit")
    p = next(net.parameters())
    x, target = dataset.batch([int(index)], dtype=p.dtype, device=p.device)
    cm = credit_assignment(
        net, x, target, neuron_cfg, task=task, objective=objective, sample=0, tdp1_spikes=tdp1_spikes
    )
    smp = dataset[int(index)]
    cm.index, cm.name, cm.events = int(index), smp.name, list(smp.events)
    return cm
