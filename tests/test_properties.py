"""Property-based tests (hypothesis): the audio loader and config validation never fail with anything
but their own user-facing error, and whatever they accept satisfies the documented invariants.

The oracles are independent of the code under test: which configs are valid is restated here from
SPEC §2 / the issue (τ > 0, τ_s < τ_m, α > 0, ϑ > 0, T_in ≥ one step, all finite numbers), and the
audio output is checked against its contract (1-D float32, 16 kHz length, finite, peak exactly 1).
"""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stca_engine import audio
from stca_engine.config import NeuronConfig
from stca_engine.errors import AudioError, ConfigError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONFIG_SETTINGS = settings(max_examples=400, deadline=None)  # configs are cheap: search harder

# ---- audio loader ---------------------------------------------------------------------------------

RATES = [100, 8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000]
# (container, subtype): integer and float PCM in the containers people upload
FORMATS = [
    ("WAV", "PCM_16"),
    ("WAV", "PCM_24"),
    ("WAV", "FLOAT"),
    ("WAV", "DOUBLE"),
    ("FLAC", "PCM_16"),
    ("AIFF", "PCM_16"),
    ("OGG", "VORBIS"),
]
SUFFIX = {"WAV": ".wav", "FLAC": ".flac", "AIFF": ".aiff", "OGG": ".ogg"}


@st.composite
def waves(draw):
    """A [frames, channels] signal that may be fine, silent, too short, clipped, or contain NaN/inf."""
    sr = draw(st.sampled_from(RATES))
    channels = draw(st.integers(1, 3))
    frames = draw(st.sampled_from([0, 1, 10, int(0.04 * sr), int(0.06 * sr), int(0.3 * sr)]))
    kind = draw(st.sampled_from(["tone", "noise", "silent", "tiny", "loud", "nan", "inf", "dc"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    t = np.arange(frames) / sr
    if kind == "tone":
        x = np.sin(2 * np.pi * draw(st.floats(50, 3000)) * t)[:, None] * np.ones(channels)
    elif kind == "noise":
        x = rng.uniform(-1, 1, (frames, channels))
    elif kind == "silent":
        x = np.zeros((frames, channels))
    elif kind == "tiny":
        x = rng.uniform(-1, 1, (frames, channels)) * 10 ** draw(st.floats(-9, -2))
    elif kind == "loud":
        x = rng.uniform(-8, 8, (frames, channels))
    elif kind == "dc":
        x = np.full((frames, channels), draw(st.floats(-1, 1)))
    else:
        x = rng.uniform(-1, 1, (frames, channels))
        if frames:
            x[rng.integers(0, frames), rng.integers(0, channels)] = np.nan if kind == "nan" else np.inf
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN: still a non-finite sample, as intended
        x *= draw(st.floats(0.0, 1.0))
    return x.astype(np.float32), sr


def _check_loaded(out: np.ndarray, frames: int, sr_in: int):
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.ndim == 1
    assert np.all(np.isfinite(out))
    assert abs(float(np.max(np.abs(out))) - 1.0) < 1e-6  # peak-normalised
    expected = frames * 16000 / sr_in
    assert abs(out.size - expected) <= max(2, 0.002 * expected)  # resampled to 16 kHz, same duration


@SETTINGS
@given(wave=waves(), fmt=st.sampled_from(FORMATS))
def test_load_audio_gives_contract_wave_or_audio_error(wave, fmt):
    x, sr = wave
    container, subtype = fmt
    assume(not (container == "OGG" and (x.shape[0] == 0 or x.shape[1] > 2)))
    assume(np.all(np.isfinite(x)) or subtype in ("FLOAT", "DOUBLE"))  # only float files can hold NaN/inf
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"clip{SUFFIX[container]}"
        sf.write(str(path), x, sr, format=container, subtype=subtype)
        try:
            out = audio.load_audio(path)
        except AudioError as exc:
            msg = str(exc)
            assert msg.startswith(f"{path}: ") and "\n" not in msg and len(msg) > len(str(path)) + 5
            return
    _check_loaded(out, x.shape[0], sr)


@SETTINGS
@given(wave=waves(), name=st.sampled_from(["up.wav", "x.flac", "rec.WAV", "a b.wav"]))
def test_load_audio_bytes_gives_contract_wave_or_audio_error(wave, name):
    x, sr = wave
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="FLOAT")
    try:
        out = audio.load_audio_bytes(buf.getvalue(), name)
    except AudioError as exc:
        assert str(exc).startswith(f"{name}: ") and "\n" not in str(exc)
        return
    _check_loaded(out, x.shape[0], sr)


@settings(max_examples=25, deadline=None)
@given(
    blob=st.one_of(
        st.binary(min_size=0, max_size=2000),
        st.binary(min_size=0, max_size=200).map(lambda b: b"RIFF\x24\x00\x00\x00WAVEfmt " + b),
    )
)
def test_random_bytes_named_wav_are_an_audio_error(blob):
    """Non-audio data renamed to .wav (including a truncated RIFF header) is never anything but AudioError."""
    with pytest.raises(AudioError, match=r"^upload\.wav: "):
        audio.load_audio_bytes(blob, "upload.wav")


def test_valid_clip_is_accepted_exactly():
    """Not just 'error or fine': a plain 0.3 s stereo 44.1 kHz tone must load (guards a loader that rejects all)."""
    sr = 44100
    t = np.arange(int(0.3 * sr)) / sr
    x = np.stack([0.2 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 440 * t)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="FLOAT")
    out = audio.load_audio_bytes(buf.getvalue(), "tone.wav")
    _check_loaded(out, x.shape[0], sr)
    ref = np.sin(2 * np.pi * 440 * np.arange(out.size) / 16000)
    inner = slice(200, out.size - 200)  # away from resampler edge effects
    assert np.max(np.abs(out[inner] - ref[inner])) < 1e-2


# ---- config validation ----------------------------------------------------------------------------

FIELDS = ["dt_ms", "tau_m_ms", "tau_s_ms", "theta", "alpha", "t_in_ms"]
DEFAULTS = dict(dt_ms=3.0, tau_m_ms=30.0, tau_s_ms=7.5, theta=1.0, alpha=2.0, t_in_ms=141.0)

any_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-50, max_value=300),
    st.floats(min_value=1e-6, max_value=1e6),
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, 0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7e308, True, False, None, "30", "", [1], float("nan")]),
    st.floats(min_value=1e-300, max_value=1e300).map(lambda v: 10 ** round(math.log10(v))),  # extreme magnitudes
)


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)


def _tau_s_filled(kw: dict) -> dict:
    """SPEC §2: τs not given (None) means τm/4."""
    if kw.get("tau_s_ms", 0) is None and _is_real(kw.get("tau_m_ms")):
        return {**kw, "tau_s_ms": float(kw["tau_m_ms"]) / 4.0}
    return kw


def _spec_valid(kw: dict) -> bool:
    """Independent restatement of what a usable neuron config is."""
    kw = _tau_s_filled(kw)
    if not all(_is_real(v) for v in kw.values()):
        return False
    c = {k: float(v) for k, v in kw.items()}
    if not (c["dt_ms"] > 0 and c["tau_m_ms"] > 0 and c["tau_s_ms"] > 0 and c["theta"] > 0 and c["alpha"] > 0):
        return False
    if not c["tau_s_ms"] < c["tau_m_ms"]:
        return False
    ratio = c["t_in_ms"] / c["dt_ms"]
    return c["t_in_ms"] > 0 and math.isfinite(ratio) and math.floor(ratio + 0.5) >= 1


def _sane(kw: dict) -> bool:
    """Inside the range a user can mean (µs..minutes, τ_s not within 1e-6 of τ_m, a step not longer than
    10 τ_m, where β_m = exp(−dt/τm) would be ~0 and V = M − S could never rise): must be accepted."""
    c = {k: float(v) for k, v in _tau_s_filled(kw).items()}
    return (
        all(1e-3 <= c[k] <= 1e5 for k in FIELDS)
        and c["tau_s_ms"] <= c["tau_m_ms"] * (1 - 1e-6)
        and c["dt_ms"] <= 10 * c["tau_m_ms"]
    )


def _check_usable(cfg: NeuronConfig):
    """An accepted config gives finite derived values the kernels can use."""
    assert 0.0 <= cfg.beta_s < cfg.beta_m < 1.0  # beta_s may underflow to 0 for dt >> tau_s: still a model
    assert math.isfinite(cfg.v0) and cfg.v0 >= 1.0
    assert isinstance(cfg.t_in_steps, int) and cfg.t_in_steps >= 1
    assert NeuronConfig.from_dict(cfg.to_dict()) == cfg


@CONFIG_SETTINGS
@given(changes=st.dictionaries(st.sampled_from(FIELDS), any_value, min_size=1, max_size=6))
def test_neuron_config_is_valid_or_config_error(changes):
    """Spec-invalid -> ConfigError; sane and valid -> accepted; extreme but valid -> either, never a crash."""
    kw = {**DEFAULTS, **changes}
    try:
        cfg = NeuronConfig(**kw)
    except ConfigError as exc:
        assert str(exc).startswith("neuron config: ") and "\n" not in str(exc)
        assert not (_spec_valid(kw) and _sane(kw)), f"valid config rejected: {kw} -> {exc}"
        return
    assert _spec_valid(kw), f"invalid config accepted: {kw}"
    _check_usable(cfg)


@CONFIG_SETTINGS
@given(
    tau_m=st.one_of(st.floats(1e-300, 1e300), st.sampled_from([1e-300, 1.0, 30.0, 1e300])),
    gap=st.one_of(st.integers(1, 4), st.floats(1e-300, 1.0)),
    dt=st.one_of(st.floats(1e-300, 1e300), st.just(3.0)),
    t_in=st.one_of(st.floats(1e-300, 1e300), st.just(141.0)),
)
def test_extreme_and_nearly_equal_time_constants_never_crash(tau_m, gap, dt, t_in):
    """τ_s a few ulps below τ_m, or 600 orders of magnitude apart, T_in/dt overflowing: ConfigError or usable."""
    tau_s = float(np.nextafter(tau_m, 0.0)) if isinstance(gap, int) else tau_m * gap
    if isinstance(gap, int):
        for _ in range(gap - 1):
            tau_s = float(np.nextafter(tau_s, 0.0))
    try:
        cfg = NeuronConfig(dt_ms=dt, tau_m_ms=tau_m, tau_s_ms=tau_s, t_in_ms=t_in)
    except ConfigError as exc:
        assert str(exc).startswith("neuron config: ") and "\n" not in str(exc)
        return
    _check_usable(cfg)


@SETTINGS
@given(tau_m=st.floats(0.5, 500), frac=st.floats(0.01, 0.99))
def test_v0_normalises_the_psp_peak_to_one(tau_m, frac):
    """For every valid (τm, τs), V0·max_t(exp(−t/τm) − exp(−t/τs)) = 1, checked on a dense grid."""
    cfg = NeuronConfig(dt_ms=1.0, tau_m_ms=tau_m, tau_s_ms=tau_m * frac, t_in_ms=10.0)
    t = np.linspace(0, 10 * tau_m, 200_001)
    peak = np.max(np.exp(-t / tau_m) - np.exp(-t / (tau_m * frac)))
    assert abs(cfg.v0 * peak - 1.0) < 1e-6


@settings(max_examples=40, deadline=None)
@given(
    d=st.one_of(
        st.dictionaries(st.text(max_size=8), any_value, max_size=4),
        st.lists(st.integers()),
        st.none(),
        st.text(max_size=5),
    )
)
def test_config_from_dict_rejects_junk_with_config_error(d):
    try:
        cfg = NeuronConfig.from_dict(d)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(d, dict) and set(d) <= set(FIELDS) and _spec_valid({**DEFAULTS, **d})
    assert cfg == NeuronConfig(**{**DEFAULTS, **d})
