"""NeuronConfig: derived constants and validation."""

import dataclasses
import math

import pytest

import stca_engine as se
from stca_engine.errors import ConfigError, StcaError


def test_derived_defaults():
    cfg = se.NeuronConfig(dt_ms=3.0, tau_m_ms=30.0, tau_s_ms=7.5, theta=1.0, alpha=2.0, t_in_ms=141.0)
    assert cfg.beta_m == pytest.approx(math.exp(-0.1), rel=1e-15)
    assert cfg.beta_s == pytest.approx(math.exp(-0.4), rel=1e-15)
    assert cfg.v0 == pytest.approx(2.1165, abs=5e-5)
    assert cfg.t_in_steps == 47
    assert cfg == se.NeuronConfig() == se.NeuronConfig.paper()


@pytest.mark.parametrize("tau_m", [10.0, 30.0, 80.0])
def test_v0_normalises_psp_peak_for_any_ratio(tau_m):
    for ratio in (4.0, 2.0, 1.5):
        cfg = se.NeuronConfig(tau_m_ms=tau_m, tau_s_ms=tau_m / ratio)
        peak = max(
            math.exp(-t / cfg.tau_m_ms) - math.exp(-t / cfg.tau_s_ms)
            for t in (i * tau_m / 20000 for i in range(1, 200000))
        )
        assert cfg.v0 * peak == pytest.approx(1.0, rel=1e-7)
        if ratio == 4.0:
            assert cfg.v0 == pytest.approx(2.1165, abs=5e-5)


def test_t_in_rounding():
    assert se.NeuronConfig(dt_ms=3.0, t_in_ms=4.5).t_in_steps == 2  # 1.5 rounds up (not to even)
    assert se.NeuronConfig(dt_ms=2.0, t_in_ms=5.0).t_in_steps == 3  # 2.5 -> 3
    assert se.NeuronConfig(dt_ms=1.0, t_in_ms=141.4).t_in_steps == 141


@pytest.mark.parametrize(
    "kw,word",
    [
        (dict(dt_ms=0), "dt_ms"),
        (dict(dt_ms=-1), "dt_ms"),
        (dict(tau_m_ms=0), "tau_m_ms"),
        (dict(tau_s_ms=-2), "tau_s_ms"),
        (dict(tau_s_ms=30.0), "smaller"),
        (dict(tau_s_ms=40.0), "smaller"),
        (dict(alpha=0), "alpha"),
        (dict(alpha=-1), "alpha"),
        (dict(theta=0), "theta"),
        (dict(theta=-0.5), "theta"),
        (dict(t_in_ms=1.0), "t_in_ms"),
        (dict(t_in_ms=0), "t_in_ms"),
        (dict(dt_ms=float("nan")), "finite"),
        (dict(theta=float("inf")), "finite"),
        (dict(alpha="2"), "number"),
        (dict(dt_ms=True), "number"),
    ],
)
def test_validation(kw, word):
    with pytest.raises(ConfigError, match=word) as e:
        se.NeuronConfig(**kw)
    assert isinstance(e.value, StcaError) and isinstance(e.value, ValueError)
    assert "neuron config" in str(e.value)


def test_dict_roundtrip_and_frozen():
    cfg = se.NeuronConfig(dt_ms=1.0, tau_m_ms=20.0, tau_s_ms=5.0, theta=1.2, alpha=1.0, t_in_ms=50.0)
    d = cfg.to_dict()
    assert d == {"dt_ms": 1.0, "tau_m_ms": 20.0, "tau_s_ms": 5.0, "theta": 1.2, "alpha": 1.0, "t_in_ms": 50.0}
    assert se.NeuronConfig.from_dict(d) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        se.NeuronConfig.from_dict({**d, "tau_x": 1})
    with pytest.raises(ConfigError):
        se.NeuronConfig.from_dict({**d, "tau_s_ms": 25.0})
    with pytest.raises(ConfigError):
        se.NeuronConfig.from_dict([1, 2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.theta = 2.0
    assert cfg.replace(theta=1.5).theta == 1.5 and cfg.theta == 1.2
    assert isinstance(se.NeuronConfig(dt_ms=2).dt_ms, float)


def test_tau_s_defaults_to_a_quarter_of_tau_m():
    """SPEC §2: when only τm is given, τs = τm/4; an explicit τs (as in saved configs) is kept."""
    cfg = se.NeuronConfig(tau_m_ms=25)
    assert cfg.tau_s_ms == 6.25 and cfg.beta_s == pytest.approx(math.exp(-3.0 / 6.25))
    assert se.NeuronConfig().tau_s_ms == 7.5
    assert se.NeuronConfig(tau_m_ms=25, tau_s_ms=5.0).tau_s_ms == 5.0
    d = cfg.to_dict()
    assert d["tau_s_ms"] == 6.25 and se.NeuronConfig.from_dict(d) == cfg
    assert se.NeuronConfig.from_dict({k: v for k, v in d.items() if k != "tau_s_ms"}) == cfg
    assert cfg.replace(theta=1.5).tau_s_ms == 6.25
    with pytest.raises(ConfigError, match="tau_m_ms"):
        se.NeuronConfig(tau_m_ms=-4)
