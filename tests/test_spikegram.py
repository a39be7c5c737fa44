"""Spikegram: gammatone dictionary, fast matching pursuit vs a plain one, binning and merging."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate

from stca_engine.errors import AudioError, ConfigError
from stca_engine.spikegram import (
    Atoms,
    SpikegramConfig,
    atoms_to_spikes,
    encode_spikegram,
    gammatone_dictionary,
    matching_pursuit,
    reconstruct,
    snr_db,
)

SR = 16000


def plain_mp(x: np.ndarray, cfg: SpikegramConfig, n_atoms: int):
    """Textbook non-negative MP: recompute every correlation from the residual each iteration."""
    d = gammatone_dictionary(cfg)
    kernels = [d.kernels[k, : d.lengths[k]] for k in range(d.n_kernels)]
    r = np.concatenate([np.asarray(x, dtype=np.float64), np.zeros(d.kernels.shape[1])])
    n = x.size
    found = []
    for _ in range(n_atoms):
        C = np.stack([correlate(r, g, mode="valid", method="fft")[:n] for g in kernels])
        i = int(np.argmax(C))
        k, t = divmod(i, n)
        a = C[k, t]
        if a <= 0:
            break
        found.append((k, t, a))
        r[t : t + kernels[k].size] -= a * kernels[k]
    return found


def test_kernels_unit_norm_erb_spaced_and_tuned():
    cfg = SpikegramConfig()
    d = gammatone_dictionary(cfg)
    assert d.kernels.shape[0] == 32
    np.testing.assert_allclose(np.linalg.norm(d.kernels, axis=1), 1.0, atol=1e-12)
    # ERB-rate (Glasberg & Moore): 21.4 log10(1 + 4.37 f / 1000) -- equal steps, ends at f_min / f_max
    e = 21.4 * np.log10(1 + 4.37 * d.centre_hz / 1000)
    steps = np.diff(e)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)
    assert d.centre_hz[0] == pytest.approx(50.0) and d.centre_hz[-1] == pytest.approx(8000.0)
    # each kernel's magnitude spectrum peaks at its centre frequency (within the FFT resolution)
    nfft = 1 << 16
    spec = np.abs(np.fft.rfft(d.kernels, nfft, axis=1))
    peak_hz = np.argmax(spec, axis=1) * SR / nfft
    for fc, fp in zip(d.centre_hz[:-1], peak_hz[:-1]):  # the 8 kHz kernel sits on Nyquist
        assert abs(fp - fc) < 0.05 * fc + 2.0
    # 4th-order envelope: t^3 rise, so low kernels are long, high ones short; all start at zero
    assert np.all(np.diff(d.lengths) <= 0) and d.lengths[0] > 10 * d.lengths[-1]
    assert np.all(d.kernels[:, 0] == 0.0)


def test_cross_correlation_table_matches_numpy():
    d = gammatone_dictionary(SpikegramConfig())
    for k, j in [(0, 0), (0, 31), (31, 0), (7, 12), (20, 19)]:
        gk, gj = d.kernels[k, : d.lengths[k]], d.kernels[j, : d.lengths[j]]
        np.testing.assert_allclose(d.cross(k, j), np.correlate(gk, gj, "full"), atol=1e-13)


def _test_signal(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = 0.3 * rng.standard_normal(n)
    x += np.sin(2 * np.pi * 440 * t) * np.exp(-5 * t) + 0.5 * np.sin(2 * np.pi * (300 + 3000 * t) * t)
    x[n // 2 : n // 2 + 40] += 2.0 * rng.standard_normal(40)  # a click
    return x


@pytest.mark.parametrize("seed,n,n_kernels", [(0, 2500, 32), (1, 1777, 12), (2, 3100, 20)])
def test_fast_mp_equals_plain_mp_float64(seed, n, n_kernels):
    cfg = SpikegramConfig(n_kernels=n_kernels, f_min=80.0, f_max=7000.0, precision="float64")
    x = _test_signal(n, seed)
    ref = plain_mp(x, cfg, 60)
    got = matching_pursuit(x, cfg, max_atoms=60, residual_db=-200)
    assert len(got) == len(ref) == 60
    assert list(zip(got.kernel.tolist(), got.time.tolist())) == [(k, t) for k, t, _ in ref]
    np.testing.assert_allclose(got.amplitude, [a for _, _, a in ref], rtol=1e-9, atol=1e-12)


def test_fast_mp_default_float32_matches_plain_mp():
    cfg = SpikegramConfig()
    x = _test_signal(2000, 5)
    ref = plain_mp(x, cfg, 40)
    got = matching_pursuit(x, cfg, max_atoms=40, residual_db=-200)
    assert list(zip(got.kernel.tolist(), got.time.tolist())) == [(k, t) for k, t, _ in ref]
    np.testing.assert_allclose(got.amplitude, [a for _, _, a in ref], rtol=1e-4)


def test_amplitudes_positive_and_energy_bookkeeping():
    cfg = SpikegramConfig(precision="float64")
    x = _test_signal(4000, 3)
    atoms = matching_pursuit(x, cfg, max_atoms=300, residual_db=-200)
    assert np.all(atoms.amplitude > 0)
    assert np.all(atoms.time >= 0) and np.all(atoms.time < x.size)
    # MP with unit-norm atoms: |x|^2 = sum a^2 + |residual|^2 (residual over the zero-padded signal)
    d = gammatone_dictionary(cfg)
    padded = np.concatenate([x, np.zeros(d.kernels.shape[1])])
    rec = reconstruct(atoms, cfg, padded.size)
    resid = float(np.sum((padded - rec) ** 2))
    assert atoms.residual_energy == pytest.approx(resid, rel=1e-8)
    assert np.dot(x, x) == pytest.approx(np.sum(atoms.amplitude**2) + resid, rel=1e-9)


def test_snr_grows_with_spike_budget():
    x = _test_signal(8000, 4).astype(np.float32)  # 0.5 s
    snrs = []
    for sps in (100, 400, 1600, 6400):
        _, rep = encode_spikegram(x, SpikegramConfig(spikes_per_second=sps, residual_db=-100))
        assert rep.n_atoms == int(np.ceil(sps * 0.5))
        assert rep.stop_reason == "spike budget"
        snrs.append(rep.snr_db)
    assert all(b > a + 0.5 for a, b in zip(snrs, snrs[1:])), snrs
    assert snrs[-1] > 15


def test_signal_of_a_few_atoms_is_recovered_exactly():
    cfg = SpikegramConfig(precision="float64")
    d = gammatone_dictionary(cfg)
    planted = [(3, 200, 1.0), (17, 2500, 0.6), (28, 4000, 0.3), (10, 5200, 0.15)]
    n = 7000
    x = np.zeros(n)
    for k, t, a in planted:  # built independently of reconstruct()
        g = d.kernels[k, : d.lengths[k]]
        x[t : t + g.size] += a * g[: n - t]
    atoms = matching_pursuit(x, cfg, max_atoms=50, residual_db=-80)
    assert atoms.stop_reason == "residual target"
    # far apart in time, so MP picks each planted atom, loudest first, and nothing else is needed
    assert list(zip(atoms.kernel[:4].tolist(), atoms.time[:4].tolist())) == [(k, t) for k, t, _ in planted]
    np.testing.assert_allclose(atoms.amplitude[:4], [a for *_, a in planted], rtol=1e-6)
    rec = reconstruct(
        Atoms(np.array([p[0] for p in planted]), np.array([p[1] for p in planted]), np.array([p[2] for p in planted])),
        cfg,
        n,
    )
    np.testing.assert_allclose(rec, x, atol=1e-12)
    assert snr_db(x, reconstruct(atoms, cfg, n)) > 80


def test_binning_and_merging_counted():
    cfg = SpikegramConfig(n_kernels=32, n_bins=4, dynamic_range_db=48.0, dt_ms=3.0)  # 12 dB bins, 48 samples/step
    amps = np.array([1.0, 0.5, 0.2, 0.05, 0.0031, 0.001, 0.9, 0.99])
    #              0 dB  -6dB  -14dB -26dB -50dB  -60dB -0.9dB -0.09dB
    times = np.array([0, 30, 100, 500, 600, 700, 23, 10])
    kernel = np.array([5, 5, 6, 7, 8, 9, 5, 5])
    train, info = atoms_to_spikes(Atoms(kernel, times, amps), cfg, 1000)
    # bins: 1.0->0, 0.5->0 (-6 dB), 0.2->1, 0.05->2, 0.0031, 0.001 -> below 48 dB
    # steps: round(t / 48): 0->0, 30->1, 100->2, 500->10, 23->0, 10->0
    # (kernel 5, bin 0) at step 0 from atoms 0, 6 and 7 -> one spike, two merged
    assert info["n_below_range"] == 2
    assert info["n_merged"] == 2
    got = sorted(zip(train.times.tolist(), train.units.tolist()))
    assert got == sorted([(0, 5 * 4 + 0), (1, 5 * 4 + 0), (2, 6 * 4 + 1), (10, 7 * 4 + 2)])
    assert train.n_units == 128 and train.n_steps == 21  # ceil(1000 / 48)


def test_encode_report_consistent_and_presets():
    x = _test_signal(16000, 6).astype(np.float32)
    train, rep = encode_spikegram(x)
    assert train.n_units == 128 and train.dt_ms == 3.0 and train.n_steps == int(np.ceil(16000 / 48))
    assert rep.n_atoms == rep.n_spikes + rep.n_merged + rep.n_below_range
    assert rep.n_spikes == train.n_spikes
    assert len(set(zip(train.times.tolist(), train.units.tolist()))) == train.n_spikes
    assert rep.audio_seconds == pytest.approx(1.0) and rep.realtime_factor > 0 and np.isfinite(rep.snr_db)
    med = SpikegramConfig.medleydb()
    assert med.n_units == 384 and med.n_kernels == 128 and med.n_bins == 3
    t2, r2 = encode_spikegram(x[:4000], med)
    assert t2.n_units == 384 and t2.units.max() < 384 and r2.n_atoms > 0


@pytest.mark.parametrize(
    "field,value",
    [
        ("n_kernels", 0),
        ("n_kernels", 2.5),
        ("f_min", -1.0),
        ("f_max", 9000.0),
        ("f_min", 9000.0),
        ("n_bins", 0),
        ("dynamic_range_db", 0.0),
        ("spikes_per_second", 0),
        ("residual_db", 3.0),
        ("dt_ms", 0.0),
        ("kernel_ms", 0.1),
        ("precision", "float16"),
        ("dt_ms", float("nan")),
    ],
)
def test_config_validation_names_the_setting(field, value):
    with pytest.raises(ConfigError, match=f"spikegram.{field}"):
        SpikegramConfig(**{field: value})


def test_config_roundtrip_and_unknown_keys():
    cfg = SpikegramConfig(n_kernels=16, spikes_per_second=500)
    assert SpikegramConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown setting"):
        SpikegramConfig.from_dict({"n_kernel": 16})


def test_bad_waveforms():
    with pytest.raises(AudioError, match="NaN"):
        encode_spikegram(np.array([0.1, np.nan, 0.2] * 100))
    with pytest.raises(AudioError, match="empty"):
        encode_spikegram(np.zeros(0))
    with pytest.raises(AudioError, match="mono"):
        encode_spikegram(np.zeros((100, 2)))


def test_silence_gives_no_spikes():
    train, rep = encode_spikegram(np.zeros(1600, dtype=np.float32))
    assert train.n_spikes == 0 and rep.n_atoms == 0


def test_long_clips_are_pursued_in_chunks_with_an_exact_residual():
    x = np.concatenate([_test_signal(6000, s) for s in range(4)])  # 1.5 s
    whole = SpikegramConfig(precision="float64")
    chunked = whole.replace(chunk_seconds=0.3)  # 5 chunks of 4800 samples
    a_whole = matching_pursuit(x, whole, max_atoms=1200, residual_db=-200)
    calls = []
    a_chunk = matching_pursuit(x, chunked, max_atoms=1200, residual_db=-200, progress=lambda *c: calls.append(c))
    assert [c[:2] for c in calls] == [(i, 5) for i in range(1, 6)]
    assert len(a_chunk) == 1200 and np.all(np.diff(np.searchsorted([4800, 9600, 14400, 19200], a_chunk.time)) >= 0)
    d = gammatone_dictionary(chunked)
    padded = np.concatenate([x, np.zeros(d.kernels.shape[1])])
    resid = padded - reconstruct(a_chunk, chunked, padded.size)
    assert a_chunk.residual_energy == pytest.approx(float(resid @ resid), rel=1e-9)
    s_whole = snr_db(x, reconstruct(a_whole, whole, x.size))
    s_chunk = snr_db(x, reconstruct(a_chunk, chunked, x.size))
    assert abs(s_whole - s_chunk) < 1.0, (s_whole, s_chunk)
    # an atom straddling a chunk border is found once and its tail is not re-explained by the next chunk
    n = 9600
    y = np.zeros(n)
    planted = [(2, 4500, 1.0), (20, 7000, 0.5)]  # kernel 2 is ~1000 samples long: crosses 4800
    for k, t, a in planted:
        g = d.kernels[k, : d.lengths[k]]
        y[t : t + g.size] += a * g[: n - t]
    got = matching_pursuit(y, chunked, max_atoms=20, residual_db=-80)
    assert list(zip(got.kernel.tolist(), got.time.tolist())) == [(k, t) for k, t, _ in planted]
    assert got.stop_reason == "residual target"


@pytest.mark.parametrize("freq", [220.0, 1000.0, 4000.0])
def test_a_tone_is_coded_by_the_kernels_tuned_to_it(freq):
    t = np.arange(8000) / SR
    x = np.sin(2 * np.pi * freq * t) * np.hanning(t.size)
    cfg = SpikegramConfig()
    atoms = matching_pursuit(x, cfg, max_atoms=300)
    cf = gammatone_dictionary(cfg).centre_hz
    nearest = int(np.argmin(np.abs(np.log(cf / freq))))
    near = np.abs(atoms.kernel - nearest) <= 1  # the tuned kernel and its ERB neighbours
    energy = atoms.amplitude**2
    assert energy[near].sum() > 0.9 * energy.sum()
    train, _ = atoms_to_spikes(atoms, cfg, x.size)
    loud = train.units[train.units % cfg.n_bins == 0] // cfg.n_bins
    assert loud.size > 0 and np.all(np.abs(loud - nearest) <= 1)
