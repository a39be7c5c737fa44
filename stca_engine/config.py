"""The settings of a run, validated before any work starts: the names every module agrees on, the
C-LIF neuron constants (SPEC §2) and the training settings.

``NeuronConfig`` is frozen and validated on construction, ``TrainConfig`` by ``validate()``, so a bad
setting is reported before any work starts (``ConfigError``), never as a NaN halfway through training.
The task, objective, optimiser, selection and dtype names come from ``names.py`` (``Literal`` types with
their tuples of values), the one place every module (losses, data sources, checkpoints, CLI, app) takes
them from.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from .errors import ConfigError
from .names import (  # noqa: F401  (re-exported: the names live in names.py, once)
    DTYPE_NAMES,
    OBJECTIVES,
    OPTIMIZERS,
    SELECTIONS,
    TASKS,
    DTypeName,
    Objective,
    Optimizer,
    Selection,
    Task,
)

DTYPES: dict[str, torch.dtype] = dict(zip(DTYPE_NAMES, (torch.float32, torch.float64)))

_WHERE = "neuron config"
_TRAIN_WHERE = "train config"


def check_setting_names(cls, d, what: str, where: str) -> None:
    """``d`` must be a mapping whose keys are fields of dataclass ``cls``: a typo in a saved or typed
    config must not silently fall back to a default."""
    if not isinstance(d, dict):
        raise ConfigError(f"expected a mapping of {what} settings, got {type(d).__name__}", where)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; known: {sorted(names)}", where)


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number, got {value!r}", _WHERE)
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}", _WHERE)
    return value


@dataclass(frozen=True)
class NeuronConfig:
    """C-LIF constants. Defaults are the authors' code: dt 3 ms, τm 30 ms, τs = τm/4, ϑ 1, α 2, T_in 141 ms.

    ``tau_s_ms=None`` (the default) means τm/4, so ``NeuronConfig(tau_m_ms=25)`` has τs = 6.25 ms;
    the instance (and ``to_dict``) always holds the explicit value.

    ``alpha`` is the width of the rectangular surrogate h(V) = 1/α for |V − ϑ| < α/2.
    ``t_in_ms`` is the cluster interval: spikes closer than T_in belong to one cluster.
    """

    dt_ms: float = 3.0
    tau_m_ms: float = 30.0
    tau_s_ms: float | None = None  # None: tau_m_ms / 4
    theta: float = 1.0
    alpha: float = 2.0
    t_in_ms: float = 141.0

    def __post_init__(self):
        if self.tau_s_ms is None:
            object.__setattr__(self, "tau_s_ms", _number("tau_m_ms", self.tau_m_ms) / 4.0)
        for f in fields(self):
            object.__setattr__(self, f.name, _number(f.name, getattr(self, f.name)))
        if self.dt_ms <= 0:
            raise ConfigError(f"dt_ms must be > 0, got {self.dt_ms}", _WHERE)
        if self.tau_m_ms <= 0:
            raise ConfigError(f"tau_m_ms must be > 0, got {self.tau_m_ms}", _WHERE)
        if self.tau_s_ms <= 0:
            raise ConfigError(f"tau_s_ms must be > 0, got {self.tau_s_ms}", _WHERE)
        if self.tau_s_ms >= self.tau_m_ms:
            raise ConfigError(
                f"tau_s_ms ({self.tau_s_ms}) must be smaller than tau_m_ms ({self.tau_m_ms}); "
                "otherwise the PSP kernel exp(-t/τm) - exp(-t/τs) is not positive",
                _WHERE,
            )
        if self.theta <= 0:
            raise ConfigError(f"theta (threshold) must be > 0, got {self.theta}", _WHERE)
        if self.alpha <= 0:
            raise ConfigError(f"alpha (surrogate width) must be > 0, got {self.alpha}", _WHERE)
        if not math.isfinite(self.t_in_ms / self.dt_ms):
            raise ConfigError(f"t_in_ms ({self.t_in_ms}) is too many time steps of dt_ms ({self.dt_ms})", _WHERE)
        if self.t_in_ms <= 0 or self.t_in_steps < 1:
            raise ConfigError(f"t_in_ms ({self.t_in_ms}) must be at least one time step (dt_ms = {self.dt_ms})", _WHERE)
        # extreme but positive constants can still round to a degenerate model (found by hypothesis)
        if not 0.0 <= self.beta_s < self.beta_m < 1.0:
            raise ConfigError(
                f"dt_ms ({self.dt_ms}), tau_m_ms ({self.tau_m_ms}) and tau_s_ms ({self.tau_s_ms}) give decays "
                f"beta_m = {self.beta_m:.17g}, beta_s = {self.beta_s:.17g}; they must satisfy "
                "0 <= beta_s < beta_m < 1 (keep dt a usable fraction of the time constants)",
                _WHERE,
            )
        try:
            v0 = self.v0
        except (ZeroDivisionError, OverflowError, ValueError):
            v0 = math.inf
        if not (math.isfinite(v0) and v0 > 0):
            raise ConfigError(
                f"tau_m_ms ({self.tau_m_ms}) and tau_s_ms ({self.tau_s_ms}) are too far apart or too close: the PSP "
                "kernel cannot be normalised to a finite V0",
                _WHERE,
            )

    # ---- derived values -------------------------------------------------------------------------
    @property
    def beta_m(self) -> float:
        """Membrane decay per step, exp(−dt/τm)."""
        return math.exp(-self.dt_ms / self.tau_m_ms)

    @property
    def beta_s(self) -> float:
        """Synaptic decay per step, exp(−dt/τs)."""
        return math.exp(-self.dt_ms / self.tau_s_ms)

    @property
    def v0(self) -> float:
        """Normalises the continuous PSP kernel exp(−t/τm) − exp(−t/τs) to a peak of 1."""
        tm, ts = self.tau_m_ms, self.tau_s_ms
        t_peak = tm * ts / (tm - ts) * math.log(tm / ts)
        return 1.0 / (math.exp(-t_peak / tm) - math.exp(-t_peak / ts))

    @property
    def t_in_steps(self) -> int:
        """T_in in steps: round(T_in / dt), halves rounded up (not Python's banker's rounding)."""
        return int(math.floor(self.t_in_ms / self.dt_ms + 0.5))

    # ---- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NeuronConfig:
        """Inverse of ``to_dict``; unknown keys are an error (a typo must not silently use a default)."""
        check_setting_names(cls, d, "neuron", _WHERE)
        return cls(**d)

    def replace(self, **changes) -> NeuronConfig:
        """A copy with some constants changed (validated again)."""
        return self.from_dict({**self.to_dict(), **changes})

    # ---- presets --------------------------------------------------------------------------------
    @classmethod
    def paper(cls) -> NeuronConfig:
        """The constants of the paper / authors' code (= the defaults)."""
        return cls(dt_ms=3.0, tau_m_ms=30.0, tau_s_ms=7.5, theta=1.0, alpha=2.0, t_in_ms=141.0)


@dataclass
class TrainConfig:
    """Settings of one training run (validated by ``validate()``, called by ``Trainer``).

    ``lr`` is the output layer's learning rate and ``lr_hidden`` that of every other layer.
    ``None`` means the paper preset: SGD ``lr = 1e-2 / V0`` and ``lr_hidden = lr / V0`` (the
    hidden layers see inputs scaled by V0 once more); Adam ``lr = 1e-3`` and ``lr_hidden = lr``.
    ``init_std``: new networks start with weights ~ N(0, init_std²) (paper: 0.01; small networks with
    few inputs need more to fire at all). ``event_tolerance_ms`` widens event spans for event F1 (``None``: T_in, the cluster interval).
    ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...

    Against memorising the training clips (docs/RESULTS.md, "real sound"): ``augment`` (see
    ``augment.Augment``: spike jitter, dropped spikes, time stretch, noise spikes; training batches only),
    ``dropout`` on the spikes each hidden layer passes on (training only, inverted scaling),
    ``weight_decay`` (L2, in the optimiser), ``lr_step_epoch`` (after that many epochs the learning
    rates are multiplied by ``lr_step_factor``) and ``select``: ``"last"`` keeps the last epoch's
    weights, ``"best-val"`` the weights of the epoch that scored best on the validation set (carved from
    the training clips; never the test set).

    ``revive`` (default on): when an output needed a k⁺ and no step could take it (the layers below fell
    silent), push the silent hidden neurons that would excite it (``revive.py``); without it a silenced
    network never recovers. It changes nothing while every needed k⁺ can be placed.
    ``tdp1_spikes`` (objective ``tdp1`` only): spikes asked for per event (the paper's Fig. 4e: 3 … 11).
    """

    task: Task = "detect"
    objective: Objective = "stca"
    hidden: list[int] = field(default_factory=lambda: [300])
    epochs: int = 20
    batch_size: int = 16
    optimizer: Optimizer = "sgd"
    lr: float | None = None
    lr_hidden: float | None = None
    momentum: float = 0.0
    init_std: float = 0.01
    seed: int = 0
    probe_index: int = 0
    device: str = "auto"
    dtype: DTypeName = "float32"
    event_tolerance_ms: float | None = None
    augment: dict = field(default_factory=dict)
    dropout: float = 0.0
    weight_decay: float = 0.0
    lr_step_epoch: int | None = None
    lr_step_factor: float = 0.1
    select: Selection = "last"
    revive: bool = True
    tdp1_spikes: int = 1

    def validate(self, check_device: bool = True) -> TrainConfig:
        """Check and normalise every setting (``ConfigError`` naming it). ``check_device=False`` skips
        asking whether a CUDA device is present (a saved config may come from another machine)."""

        def bad(name, problem):
            raise ConfigError(f"{name}: {problem}", _TRAIN_WHERE)

        def integer(name, lo):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                bad(name, f"must be an integer, got {v!r}")
            if v < lo:
                bad(name, f"must be >= {lo}, got {v}")
            setattr(self, name, int(v))

        def positive(name, allow_none=True, allow_zero=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(float(v)):
                bad(name, f"must be a finite number, got {v!r}")
            if float(v) < 0 or (float(v) == 0 and not allow_zero):
                bad(name, f"must be {'>= 0' if allow_zero else '> 0'}, got {v}")
            setattr(self, name, float(v))

        if self.task not in TASKS:
            bad("task", f"must be one of {TASKS}, got {self.task!r}")
        if self.objective not in OBJECTIVES:
            bad("objective", f"must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.objective == "margin" and self.task != "classify":
            bad("objective", "'margin' (non-spiking output, max-V rule) is for task 'classify' only")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.dtype not in DTYPES:
            bad("dtype", f"must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if isinstance(self.hidden, (int, np.integer)):
            self.hidden = [int(self.hidden)]
        if not isinstance(self.hidden, (list, tuple)):
            bad("hidden", f"must be a list of layer sizes, got {self.hidden!r}")
        hidden = []
        for h in self.hidden:
            if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 1 <= h <= 100_000:
                bad("hidden", f"layer sizes must be integers in 1..100000, got {list(self.hidden)!r}")
            hidden.append(int(h))
        self.hidden = hidden
        integer("epochs", 0)
        integer("batch_size", 1)
        integer("seed", 0)
        integer("probe_index", 0)
        positive("lr")
        positive("lr_hidden")
        for name in ("lr", "lr_hidden"):
            if getattr(self, name) is not None and getattr(self, name) > 1e3:
                bad(name, f"must be <= 1000, got {getattr(self, name)}")
        positive("event_tolerance_ms", allow_zero=True)
        positive("momentum", allow_none=False, allow_zero=True)
        positive("init_std", allow_none=False, allow_zero=True)
        if self.momentum >= 1:
            bad("momentum", f"must be < 1, got {self.momentum}")
        if self.momentum and self.optimizer != "sgd":
            bad("momentum", "applies to optimizer 'sgd' only")
        integer("tdp1_spikes", 1)
        if self.tdp1_spikes > 100:
            bad("tdp1_spikes", f"must be <= 100, got {self.tdp1_spikes}")
        if self.tdp1_spikes != 1 and self.objective != "tdp1":
            bad("tdp1_spikes", "applies to objective 'tdp1' only")
        if not isinstance(self.revive, (bool, np.bool_)):
            bad("revive", f"must be true or false, got {self.revive!r}")
        self.revive = bool(self.revive)
        if self.select not in SELECTIONS:
            bad("select", f"must be one of {SELECTIONS}, got {self.select!r}")
        positive("weight_decay", allow_none=False, allow_zero=True)
        positive("dropout", allow_none=False, allow_zero=True)
        if self.dropout >= 1:
            bad("dropout", f"must be < 1, got {self.dropout}")
        positive("lr_step_factor", allow_none=False)
        if self.lr_step_epoch is not None:
            integer("lr_step_epoch", 1)
        if not isinstance(self.augment, dict):
            bad("augment", f"must be a dict of augment settings, got {self.augment!r}")
        from .augment import Augment

        try:
            check_setting_names(Augment, self.augment, "augment", _TRAIN_WHERE)
            full = Augment.from_dict(self.augment).to_dict()  # checks every value
            self.augment = {k: full[k] for k in self.augment}
        except TypeError as exc:
            bad("augment", str(exc))
        if not isinstance(self.device, str) or not self.device:
            bad("device", f"must be 'auto', 'cpu' or 'cuda[:n]', got {self.device!r}")
        if self.device != "auto":
            try:
                dev = torch.device(self.device)
            except (RuntimeError, ValueError):
                bad("device", f"must be 'auto', 'cpu' or 'cuda[:n]', got {self.device!r}")
            if check_device and dev.type == "cuda" and not torch.cuda.is_available():
                bad("device", f"{self.device!r} asked for, but no CUDA device is available")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["augment"] = dict(self.augment)
        return d

    @classmethod
    def from_dict(cls, d: dict, check_device: bool = True) -> TrainConfig:
        """Inverse of ``to_dict`` (validated); unknown keys are an error, missing keys take defaults."""
        check_setting_names(cls, d, "training", _TRAIN_WHERE)
        return cls(**d).validate(check_device=check_device)

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            from .device import default_device

            return default_device()
        return torch.device(self.device)

    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]
