"""The spiking network: a stack of C-LIF layers with weights ``[out, in]`` and no bias (SPEC §2, §5)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .config import NeuronConfig
from .errors import ConfigError
from .kernels import LayerCredit, LayerParams
from .layer import BACKENDS, CLIFLayerFunction, CLIFStackFunction, fuses_layers, kernel_module


@dataclass
class Recording:
    """What one forward pass produced, per layer (index 0 = first hidden layer, -1 = output).

    ``voltages[i]``, ``spikes[i]`` are ``[T, B, n_i]`` (the output ones keep the autograd graph).
    ``m``, ``s``, ``e`` hold the M, S, E traces when recorded (``record=True``), else ``None``.
    ``inputs`` is the input raster ``[T, B, n_in]`` as fed to the network.
    ``credit`` (``forward(..., credit=b)``): one ``LayerCredit`` per layer, filled with sample b's
    per-step ∂L/∂V and ∂L/∂I once the loss is back-propagated.
    ``state``: one ``LayerState`` per layer, every neuron's state after the last step; pass it as
    ``forward(next_piece, state=rec.state)`` to go on where this run stopped.
    """

    voltages: list
    spikes: list
    inputs: torch.Tensor | None = None
    m: list | None = None
    s: list | None = None
    e: list | None = None
    sample_index: int | None = None
    credit: list | None = None
    state: list | None = None
    extra: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return len(self.voltages)

    @property
    def output_voltage(self) -> torch.Tensor:
        return self.voltages[-1]

    @property
    def output_spikes(self) -> torch.Tensor:
        return self.spikes[-1]


def _check_sizes(sizes) -> list[int]:
    try:
        sizes = list(sizes)
    except TypeError:
        raise ConfigError(f"layer sizes must be a list of positive integers, got {sizes!r}", "SNN sizes") from None
    if len(sizes) < 2:
        raise ConfigError(f"need at least 2 layer sizes (inputs and outputs), got {sizes!r}", "SNN sizes")
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) and not (hasattr(s, "__index__")):
            raise ConfigError(f"layer sizes must be positive integers, got {s!r} in {sizes!r}", "SNN sizes")
        s = int(s)
        if s < 1:
            raise ConfigError(f"layer sizes must be positive integers, got {s} in {sizes!r}", "SNN sizes")
        out.append(s)
    return out


class SNN(nn.Module):
    """Deep C-LIF network ``sizes = [n_in, hidden..., n_out]``; weights init N(0, init_std²).

    ``output_spiking=False`` makes the output layer a non-spiking readout (V = M − S), used by the
    ``margin`` objective. ``backend``: ``auto`` (numba on CPU, torch on GPU), ``numba``, ``torch``,
    or ``cuda`` (no compiled CUDA kernel in this build: raises ``ConfigError``).
    """

    def __init__(
        self,
        sizes,
        cfg: NeuronConfig | None = None,
        dtype=torch.float32,
        device=None,
        output_spiking: bool = True,
        seed: int | None = None,
        backend: str = "auto",
        init_std: float = 0.01,
    ):
        super().__init__()
        self.sizes = _check_sizes(sizes)
        if cfg is None:
            cfg = NeuronConfig()
        if not isinstance(cfg, NeuronConfig):
            raise ConfigError(f"cfg must be a NeuronConfig, got {type(cfg).__name__}", "SNN")
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}", "SNN")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}", "SNN")
        if not (isinstance(init_std, (int, float)) and init_std >= 0):
            raise ConfigError(f"init_std must be a number >= 0, got {init_std!r}", "SNN")
        self.cfg = cfg
        self.output_spiking = bool(output_spiking)
        self.backend = backend
        self.init_std = float(init_std)
        device = torch.device(device) if device is not None else torch.device("cpu")
        gen = torch.Generator(device="cpu")
        if seed is not None:
            gen.manual_seed(int(seed))
        else:
            gen.seed()
        ws = []
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            w = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64) * self.init_std
            ws.append(nn.Parameter(w.to(dtype=dtype, device=device)))
        self.weights = nn.ParameterList(ws)
        kernel_module(backend, device)  # fail now, not at the first batch, if the backend cannot run here

    # ---- info -----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    @property
    def n_inputs(self) -> int:
        return self.sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.sizes[-1]

    def to_dict(self) -> dict:
        """Architecture + neuron constants (JSON-able); weights travel separately (state_dict)."""
        return {
            "sizes": list(self.sizes),
            "neuron": self.cfg.to_dict(),
            "output_spiking": self.output_spiking,
            "init_std": self.init_std,
        }

    @classmethod
    def from_dict(cls, d: dict, dtype=torch.float32, device=None, backend: str = "auto") -> SNN:
        if not isinstance(d, dict) or "sizes" not in d or "neuron" not in d:
            raise ConfigError("network description needs 'sizes' and 'neuron'", "SNN config")
        return cls(
            d["sizes"],
            NeuronConfig.from_dict(d["neuron"]),
            dtype=dtype,
            device=device,
            output_spiking=bool(d.get("output_spiking", True)),
            backend=backend,
            init_std=float(d.get("init_std", 0.01)),
            seed=0,
        )

    def layer_params(self, i: int) -> LayerParams:
        last = i == len(self.weights) - 1
        return LayerParams.from_config(self.cfg, spiking=self.output_spiking or not last)

    # ---- running --------------------------------------------------------------------------------
    def _check_input(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ConfigError(
                f"input must be a torch.Tensor [T, B, {self.n_inputs}], got {type(x).__name__}", "SNN input"
            )
        if x.dim() != 3 or x.shape[2] != self.n_inputs or x.shape[0] < 1:
            raise ConfigError(f"input must have shape [T, B, {self.n_inputs}], got {list(x.shape)}", "SNN input")
        if (
            not torch.is_floating_point(x)
            and x.dtype != torch.bool
            and x.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
        ):
            raise ConfigError(f"input dtype {x.dtype} is not numeric", "SNN input")
        return x.to(device=self.device, dtype=self.dtype)

    def forward(
        self,
        x: torch.Tensor,
        record: bool = False,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
        credit: int | None = None,
        state: list | None = None,
    ) -> Recording:
        """Run all layers on ``x [T, B, n_in]``; ``record=True`` also keeps M, S, E traces.

        ``credit=b``: the backward of this pass also keeps sample b's per-step error in every layer
        (``Recording.credit``); without it the kernels do no extra work.

        ``state`` (one ``LayerState`` per layer, e.g. the ``Recording.state`` of the previous piece): start
        from it instead of all zeros. A long input run piece by piece this way gives the same spikes as one
        run (``Recording.state`` is always the state after the last step; no gradient flows into it).

        ``dropout > 0`` (training only): each hidden neuron is silenced for the whole sample with that
        probability and the survivors' spikes reach the next layer scaled by ``1 / (1 - dropout)``, so
        the next layer's input current keeps its expected size (the recorded spikes stay 0/1)."""
        x = self._check_input(x)
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}", "SNN forward")
        sink = [] if record else None
        credits = None
        if credit is not None:
            if isinstance(credit, bool) or not -x.shape[1] <= int(credit) < x.shape[1]:
                raise ConfigError(f"credit sample {credit!r} out of range for a batch of {x.shape[1]}", "SNN forward")
            credits = [LayerCredit(int(credit) % x.shape[1]) for _ in self.weights]
        if state is not None:
            state = list(state)
            if len(state) != len(self.weights):
                raise ConfigError(f"state has {len(state)} layers, the network {len(self.weights)}", "SNN forward")
            for i, (st, W) in enumerate(zip(state, self.weights)):
                try:
                    st.check(x.shape[1], W.shape[0])
                except (ValueError, AttributeError) as exc:
                    raise ConfigError(f"state of layer {i + 1}: {exc}", "SNN forward") from None
        finals: list = []
        kernels = kernel_module(self.backend, self.device)
        n = len(self.weights)
        if n > 1 and fuses_layers(kernels) and torch.is_grad_enabled() and any(W.requires_grad for W in self.weights):
            # one autograd node for the whole stack, so narrow layers hand their error down fused
            scales = [
                _dropout_scale((x.shape[1], W.shape[0]), dropout, generator, x) if dropout else None
                for W in self.weights[:-1]
            ]
            out = CLIFStackFunction.apply(
                x,
                [self.layer_params(i) for i in range(n)],
                kernels,
                scales,
                sink,
                [None] * n if credits is None else credits,
                [None] * n if state is None else state,
                finals,
                *self.weights,
            )
            voltages, spikes = list(out[:n]), list(out[n:])
        else:
            h = x
            voltages, spikes = [], []
            for i, W in enumerate(self.weights):
                V, O = CLIFLayerFunction.apply(
                    h,
                    W,
                    self.layer_params(i),
                    kernels,
                    sink,
                    None if credits is None else credits[i],
                    None if state is None else state[i],
                    finals,
                )
                voltages.append(V)
                spikes.append(O)
                h = O
                if dropout and i < n - 1:
                    h = O * _dropout_scale(O.shape[1:], dropout, generator, O)
        rec = Recording(voltages, spikes, inputs=x, credit=credits, state=finals)
        if record:
            rec.m = [t[0] for t in sink]
            rec.s = [t[1] for t in sink]
            rec.e = [t[2] for t in sink]
        return rec

    @torch.no_grad()
    def record(self, x: torch.Tensor, sample: int | None = None) -> Recording:
        """Full traces (no gradient) for plots; ``sample=i`` runs only sample ``i`` (B = 1)."""
        if sample is not None:
            if not isinstance(x, torch.Tensor) or x.dim() != 3:
                raise ConfigError("record(x, sample=i) needs x of shape [T, B, n_in]", "SNN input")
            if not -x.shape[1] <= int(sample) < x.shape[1]:
                raise ConfigError(f"sample {sample} out of range for a batch of {x.shape[1]}", "SNN input")
            x = x[:, int(sample) : int(sample) + 1]
        rec = self.forward(x, record=True)
        rec.sample_index = None if sample is None else int(sample)
        return rec


def _dropout_scale(shape, dropout: float, generator, like: torch.Tensor) -> torch.Tensor:
    """``[B, N]``: 0 for a neuron silenced for the whole sample, else ``1 / (1 - dropout)``."""
    keep = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype) >= dropout
    return keep.to(like.dtype) / (1.0 - float(dropout))


def build_network(
    train_cfg, neuron_cfg: NeuronConfig, n_inputs: int, n_classes: int, device=None, init_std=None
) -> SNN:
    """The one rule from settings to a fresh network, used by the CLI, the ``Trainer`` and the app:
    ``n_inputs``-``train_cfg.hidden``-``n_classes`` C-LIF layers in the run's dtype on its device, a
    non-spiking readout for the ``margin`` objective, weights ~ N(0, init_std²) seeded by the run's seed
    (so two objectives compared side by side start from the same weights). ``init_std`` defaults to
    ``train_cfg.init_std``; ``device`` to ``train_cfg.resolved_device()``."""
    return SNN(
        [int(n_inputs), *train_cfg.hidden, int(n_classes)],
        neuron_cfg,
        dtype=train_cfg.torch_dtype(),
        device=train_cfg.resolved_device() if device is None else device,
        output_spiking=train_cfg.objective != "margin",
        seed=train_cfg.seed,
        init_std=train_cfg.init_std if init_std is None else float(init_std),
    )
