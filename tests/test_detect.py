"""detect_events: chunked streaming equals the unchunked run and the plain-torch reference layer."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from stca_engine.config import NeuronConfig
from stca_engine.data.types import SpikeTrain
from stca_engine.detect import detect_events, run_streaming
from stca_engine.errors import ConfigError
from stca_engine.kernels import LayerParams, reference

CFG = NeuronConfig()


def _fake_net(sizes, seed=0, scale=0.4):
    """Just what detect needs: ``weights`` [out, in] (the SNN contract, SPEC §5)."""
    g = torch.Generator().manual_seed(seed)
    ws = [
        torch.nn.Parameter(torch.randn(b, a, generator=g, dtype=torch.float64) * scale)
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    return types.SimpleNamespace(weights=ws)


def _random_train(n_units, n_steps, density, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_steps, n_units)) < density
    t, u = np.nonzero(mask)
    return SpikeTrain(t, u, n_units, n_steps, CFG.dt_ms)


def _reference_output(net, train):
    """Layer by layer through kernels.reference (plain torch, state starts at 0, one pass)."""
    x = train.to_dense(torch.float64)[:, None, :]
    p = LayerParams.from_config(CFG)
    for W in net.weights:
        V, O, *_ = reference.forward(x, W.detach(), p)
        x = O
    return V[:, 0, :].numpy(), O[:, 0, :].numpy()


def test_streaming_matches_reference_layer_and_is_chunk_invariant():
    net = _fake_net([20, 15, 4], seed=1)
    train = _random_train(20, 700, 0.05, seed=2)
    V_ref, O_ref = _reference_output(net, train)
    assert O_ref.sum() > 5, "test network should spike"
    V1, steps1, n1 = run_streaming(net, CFG, train, chunk_steps=10_000)
    assert n1 == 1
    np.testing.assert_allclose(V1, V_ref.astype(np.float32), rtol=0, atol=1e-5)
    for c in range(4):
        np.testing.assert_array_equal(steps1[c], np.flatnonzero(O_ref[:, c]))
    for chunk in (1, 7, 100, 699, 700):
        Vc, stepsc, nc = run_streaming(net, CFG, train, chunk_steps=chunk)
        assert nc == -(-700 // chunk)
        np.testing.assert_array_equal(Vc, V1)  # bit-for-bit: state is carried, arithmetic identical
        for c in range(4):
            np.testing.assert_array_equal(stepsc[c], steps1[c])


def test_chunked_detection_equals_unchunked_events():
    net = _fake_net([16, 12, 3], seed=3, scale=0.5)
    train = _random_train(16, 1500, 0.03, seed=4)
    whole = detect_events(net, CFG, train, ["a", "b", "c"], chunk_steps=100_000)
    parts = detect_events(net, CFG, train, ["a", "b", "c"], chunk_steps=64)
    assert whole.chunks == 1 and parts.chunks == -(-1500 // 64)
    assert len(whole.events) > 0
    assert whole.events == parts.events


def test_events_are_output_clusters_with_times():
    """One afferent drives output 0 hard: bursts of input spikes a few steps apart give one output
    cluster each, and bursts ~200 steps apart (> T_in = 47 steps) give separate events."""
    W1 = torch.tensor([[3.0]], dtype=torch.float64)  # 1 -> 1 hidden
    W2 = torch.tensor([[3.0], [0.0]], dtype=torch.float64)  # hidden -> 2 outputs, second silent
    net = types.SimpleNamespace(weights=[torch.nn.Parameter(W1), torch.nn.Parameter(W2)])
    times = [10, 12, 14, 200, 202, 204, 206, 400]
    train = SpikeTrain(times, [0] * len(times), 1, 600, CFG.dt_ms)
    res = detect_events(net, CFG, train, ["bell", "horn"], chunk_steps=50)
    V_ref, O_ref = _reference_output(net, train)
    steps = np.flatnonzero(O_ref[:, 0])
    assert steps.size >= 3
    # expected events from the reference spikes and the T_in clustering rule, written out directly
    groups, cur = [], [steps[0]]
    for t in steps[1:]:
        if t - cur[-1] < CFG.t_in_steps:
            cur.append(t)
        else:
            groups.append(cur)
            cur = [t]
    groups.append(cur)
    assert len(groups) == 3
    dt = CFG.dt_ms / 1000
    assert [(e["class"], e["start_s"], e["end_s"], e["n_spikes"]) for e in res.events] == [
        ("bell", round(g[0] * dt, 6), round((g[-1] + 1) * dt, 6), len(g)) for g in groups
    ]
    assert res.counts() == {"bell": 3, "horn": 0}
    assert res.voltages.shape == (600, 2)
    assert all(e["peak_v"] >= CFG.theta for e in res.events)
    np.testing.assert_allclose(res.voltages, V_ref, atol=1e-5)


def test_mismatched_inputs_are_clear_errors():
    net = _fake_net([8, 4, 2])
    with pytest.raises(ConfigError, match="expects 8 input afferents"):
        detect_events(net, CFG, _random_train(9, 50, 0.1, 0), ["a", "b"])
    with pytest.raises(ConfigError, match="class names"):
        detect_events(net, CFG, _random_train(8, 50, 0.1, 0), ["a"])
    with pytest.raises(ConfigError, match="chunk_steps"):
        detect_events(net, CFG, _random_train(8, 50, 0.1, 0), ["a", "b"], chunk_steps=0)


def test_matches_the_engine_snn_forward():
    """The streaming forward agrees with ``SNN.forward`` (the training path) on a real network."""
    from stca_engine.network import SNN

    net = SNN([24, 30, 5], CFG, dtype=torch.float64, seed=5, init_std=0.35)
    train = _random_train(24, 400, 0.04, seed=6)
    with torch.no_grad():
        rec = net(train.to_dense(torch.float64)[:, None, :])
    V_net, O_net = rec.voltages[-1][:, 0].numpy(), rec.spikes[-1][:, 0].numpy()
    assert O_net.sum() > 3
    V, steps, _ = run_streaming(net, CFG, train, chunk_steps=33)
    np.testing.assert_allclose(V, V_net, atol=1e-5)
    for c in range(5):
        np.testing.assert_array_equal(steps[c], np.flatnonzero(O_net[:, c]))


def test_margin_readout_is_refused():
    from stca_engine.network import SNN

    net = SNN([4, 3, 2], CFG, output_spiking=False, seed=0)
    with pytest.raises(ConfigError, match="non-spiking"):
        detect_events(net, CFG, _random_train(4, 20, 0.1, 0), ["a", "b"])


def test_sound_regions_find_the_bursts():
    sr = 1000
    wave = np.zeros(3000, np.float32)
    wave[200:500] = 1.0  # loud burst
    wave[1000:1100] = 0.01  # 40 dB quieter: inside the 60 dB floor
    wave[1130:1200] = 0.01  # 30 ms later: bridged into the same region (gap < 80 ms)
    wave[2500:2510] = 0.5  # 10 ms: too short, dropped
    from stca_engine.detect import sound_regions

    assert sound_regions(wave, sr) == [(200, 500), (1000, 1200)]
    assert sound_regions(wave, sr, floor_db=20) == [(200, 500)]
    assert sound_regions(np.zeros(100, np.float32), sr) == []


def test_encode_recording_places_each_region_at_its_offset():
    """Each region is encoded alone (encoder sees only that piece) and shifted to its place."""
    from stca_engine.detect import encode_recording

    class Recorder:
        dt_ms, n_units = 10.0, 3

        def __init__(self):
            self.pieces = []

        def encode(self, piece):
            self.pieces.append(piece.copy())
            return SpikeTrain([0, 1], [2, 0], 3, 2, 10.0), {}

    sr = 1000
    wave = np.zeros(2000, np.float32)
    wave[300:600] = 1.0
    wave[1200:1400] = 0.5
    enc = Recorder()
    tr = encode_recording(wave, sr, enc)
    assert [p.size for p in enc.pieces] == [300, 200]
    assert tr.n_steps == 200 and tr.n_units == 3
    assert list(zip(tr.times.tolist(), tr.units.tolist())) == [(30, 2), (31, 0), (120, 2), (121, 0)]
    whole = encode_recording(wave, sr, Recorder(), segment=False)
    assert whole.times.tolist() == [0, 1]
