"""Spectral threshold-crossing encoder and the Encoder protocol / make_encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stca_engine.data.types import SpikeTrain
from stca_engine.encoders import Encoder, encoder_from_settings, make_encoder
from stca_engine.errors import AudioError, ConfigError
from stca_engine.spectral import SpectralConfig, crossings, encode_spectral

SR = 16000


def burst(freq=1000.0, start=0.3, length=0.4, total=1.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(total * SR)
    x = 1e-4 * rng.standard_normal(n)
    t = np.arange(int(length * SR)) / SR
    i0 = int(start * SR)
    x[i0 : i0 + t.size] += np.sin(2 * np.pi * freq * t)
    return x.astype(np.float32)


def test_crossings_rising_only_with_hysteresis():
    lv = np.array([[-50.0], [-30.0], [-19.0], [-21.0], [-19.0], [-26.0], [-18.0], [-5.0], [-40.0], [-5.0]])
    thr = np.array([-10.0, -20.0])  # level 0 = -10 dB, level 1 = -20 dB
    t, u = crossings(lv, thr, hysteresis_db=5.0)
    # -20: up at 2; the dip to -21 does not re-arm (needs < -25); re-armed at 5 (-26), up at 6; re-armed at 8, up at 9
    # -10: up at 7, re-armed at 8, up at 9
    assert list(zip(t.tolist(), u.tolist())) == [(2, 1), (6, 1), (7, 0), (9, 0), (9, 1)]
    t0, u0 = crossings(lv, thr, hysteresis_db=0.0)
    assert (4, 1) in set(zip(t0.tolist(), u0.tolist()))  # without hysteresis the dip re-arms
    # a clip that starts loud spikes at step 0 (silence before it)
    t1, _ = crossings(np.array([[0.0], [0.0]]), np.array([-10.0]), 3.0)
    assert t1.tolist() == [0]


@pytest.mark.parametrize("kind", ["mel", "gammatone"])
def test_tone_burst_spikes_in_its_band_at_onset(kind):
    cfg = SpectralConfig(kind=kind)
    x = burst(1000.0)
    train, rep = encode_spectral(x, cfg)
    assert isinstance(train, SpikeTrain) and train.n_units == 128 and train.dt_ms == 3.0
    assert train.n_steps == int(np.ceil(x.size / 48)) and rep.n_frames == train.n_steps
    assert rep.n_spikes == train.n_spikes > 0
    onset = int(0.3 * SR / 48)
    # every band-level pair fires at most a couple of times: onset (and maybe a wobble), no chatter
    assert np.bincount(train.units, minlength=128).max() <= 3
    # the loudest level (0) only fires in bands around 1 kHz, within ~40 ms of the onset
    if kind == "mel":
        import librosa

        centres = librosa.mel_frequencies(cfg.n_bands + 2, fmin=cfg.f_min, fmax=cfg.f_max)[1:-1]
    else:
        from stca_engine.spikegram import SpikegramConfig, gammatone_dictionary

        centres = gammatone_dictionary(SpikegramConfig(n_kernels=32)).centre_hz
    top = train.units % cfg.n_levels == 0
    bands = train.units[top] // cfg.n_levels
    assert bands.size > 0
    assert np.all(np.abs(np.log2(centres[bands] / 1000.0)) < 0.5)
    assert np.all(np.abs(train.times[top] - onset) <= 14)


def test_spectral_config_validation():
    for field, value in [
        ("kind", "cqt"),
        ("n_bands", 0),
        ("n_levels", 0),
        ("f_max", 9000.0),
        ("hysteresis_db", 70.0),
        ("dt_ms", 0.0),
        ("n_fft", 8),
    ]:
        with pytest.raises(ConfigError, match=f"spectral.{field}"):
            SpectralConfig(**{field: value})
    assert SpectralConfig(n_levels=4, dynamic_range_db=50).thresholds_db().tolist() == [-10, -20, -30, -40]


def test_spectral_bad_waves():
    with pytest.raises(AudioError, match="NaN"):
        encode_spectral(np.array([0.0, np.inf] * 1000))
    with pytest.raises(AudioError, match="mono"):
        encode_spectral(np.zeros((10, 2)))
    train, _ = encode_spectral(np.zeros(4800, dtype=np.float32))
    assert train.n_spikes == 0


# ----------------------------------------------------------------------------- Encoder protocol
def test_make_encoder_both_kinds_follow_the_protocol():
    x = burst(2000.0, start=0.1, length=0.3, total=0.5)
    for enc in (make_encoder("spikegram", spikes_per_second=300), make_encoder("spectral", kind="gammatone")):
        assert isinstance(enc, Encoder)
        s = enc.settings()
        assert json.loads(json.dumps(s)) == s and s["encoder"] == enc.name
        train, report = enc.encode(x)
        assert train.n_units == enc.n_units == 128 and train.dt_ms == enc.dt_ms
        assert report.to_dict()["n_spikes"] == train.n_spikes
        again = encoder_from_settings(s)
        assert again.settings() == s


def test_settings_key_the_cache():
    a = make_encoder("spikegram").settings()
    b = make_encoder("spikegram", spikes_per_second=2000).settings()
    c = make_encoder("spectral").settings()
    assert len({json.dumps(v, sort_keys=True) for v in (a, b, c)}) == 3
    med = make_encoder("spikegram", preset="medleydb")
    assert med.n_units == 384 and med.settings()["n_kernels"] == 128
    assert make_encoder("spikegram", preset="medleydb", n_bins=2).n_units == 256


@pytest.mark.parametrize(
    "name,settings,match",
    [
        ("wavelet", {}, "unknown encoder"),
        ("spikegram", {"n_kernel": 3}, "unknown setting"),
        ("spikegram", {"preset": "paper2"}, "unknown preset"),
        ("spectral", {"n_bands": -1}, "spectral.n_bands"),
    ],
)
def test_make_encoder_errors(name, settings, match):
    with pytest.raises(ConfigError, match=match):
        make_encoder(name, **settings)
    with pytest.raises(ConfigError, match="version"):
        encoder_from_settings({**make_encoder("spectral").settings(), "version": 999})
