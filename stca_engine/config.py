"""Neuron constants of the C-LIF model (SPEC §2) and the values derived from them.

``NeuronConfig`` is frozen and validated on construction, so a bad setting is reported before any
work starts (``ConfigError``), never as a NaN halfway through training.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields

from .errors import ConfigError

_WHERE = "neuron config"


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
