"""NIR export (stca_engine.nir_export): the file reads back with nir.read with the documented graph
and weights, and re-simulated by a discrete-time interpreter of the NIR nodes it gives the engine's
spikes (exactly: the only possible difference, V landing exactly on ϑ, does not occur here)."""

from __future__ import annotations

import io
import json

import nir
import numpy as np
import pytest
import torch

import stca_engine as se
from stca_engine import cli
from stca_engine.checkpoint import save_model
from stca_engine.nir_export import nir_bytes, simulate, to_nir

CFG = se.NeuronConfig()
CLASSES = ["bells", "whistle", "horn"]


def _net(sizes, seed=3, init_std=0.45, output_spiking=True):
    net = se.SNN(sizes, CFG, dtype=torch.float64, seed=seed, init_std=init_std)
    if not output_spiking:
        net.output_spiking = False
    return net


def _demo_inputs(n_clips=3):
    """Demo clips (one per class) through the fast spectral encoder, end to end as one raster."""
    import librosa

    from stca_engine.data import demo
    from stca_engine.encoders import make_encoder

    enc = make_encoder("spectral")
    parts = []
    for c in range(n_clips):
        wave = demo.synth_clip(c, 5).astype(np.float32)
        wave = librosa.resample(wave, orig_sr=demo.SR, target_sr=16000)
        tr = enc.encode(wave / np.abs(wave).max())
        tr = tr[0] if isinstance(tr, tuple) else tr
        parts.append(tr.to_dense(torch.float64).numpy())
        parts.append(np.zeros((40, enc.n_units)))
    return np.concatenate(parts), enc


def test_export_reads_back_with_the_documented_graph(tmp_path):
    net = _net([20, 12, 3])
    path = tmp_path / "model"
    save_model(path, net, CFG, class_names=CLASSES, encoder_settings={"name": "spectral"}, task="detect")
    out = tmp_path / "model.nir"
    assert cli.main(["--quiet", "export", str(path), "--format", "nir", "--out", str(out)]) == 0
    g = nir.read(str(out))
    assert set(g.nodes) == {
        "input",
        "output",
        *(
            f"layer{i}.{part}"
            for i in (0, 1)
            for part in ("weights", "psp", "spike", "reset_delay", "reset_scale", "reset")
        ),
    }
    kinds = {n: type(v).__name__ for n, v in g.nodes.items()}
    assert kinds["layer0.weights"] == "Linear" and kinds["layer0.psp"] == "CubaLI"
    assert kinds["layer0.spike"] == "Threshold" and kinds["layer0.reset"] == "LI"
    assert kinds["layer0.reset_delay"] == "Delay" and kinds["layer0.reset_scale"] == "Scale"
    edges = {tuple(e) for e in g.edges}
    assert {
        ("input", "layer0.weights"),
        ("layer0.weights", "layer0.psp"),
        ("layer0.psp", "layer0.spike"),
        ("layer0.spike", "layer0.reset_delay"),
        ("layer0.reset_delay", "layer0.reset_scale"),
        ("layer0.reset_scale", "layer0.reset"),
        ("layer0.reset", "layer0.spike"),
        ("layer0.spike", "layer1.weights"),
        ("layer1.spike", "output"),
    } <= edges
    assert len(edges) == 15
    tm, ts = CFG.tau_m_ms / 1000, CFG.tau_s_ms / 1000
    for i, W in enumerate(net.weights):
        np.testing.assert_allclose(
            g.nodes[f"layer{i}.weights"].weight, W.detach().numpy() * CFG.v0 * (tm - ts), rtol=1e-12
        )
        psp = g.nodes[f"layer{i}.psp"]
        np.testing.assert_allclose(psp.tau_mem, tm)
        np.testing.assert_allclose(psp.tau_syn, ts)
        np.testing.assert_allclose(psp.r, 1.0)
        np.testing.assert_allclose(psp.v_leak, 0.0)
        np.testing.assert_allclose(g.nodes[f"layer{i}.spike"].threshold, CFG.theta)
        np.testing.assert_allclose(g.nodes[f"layer{i}.reset_delay"].delay, CFG.dt_ms / 1000)
        np.testing.assert_allclose(g.nodes[f"layer{i}.reset_scale"].scale, -CFG.theta * tm)
        np.testing.assert_allclose(g.nodes[f"layer{i}.reset"].tau, tm)
    assert json.loads(g.metadata["class_names"]) == CLASSES
    assert json.loads(g.metadata["neuron_cfg"]) == CFG.to_dict()
    assert float(g.metadata["dt_s"]) == pytest.approx(0.003)


def test_nir_graph_resimulated_gives_the_engines_spikes_on_demo_sounds():
    x, enc = _demo_inputs()
    net = _net([enc.n_units, 24, 3], seed=7, init_std=0.5)
    g = nir.read(io.BytesIO(nir_bytes(to_nir(net, CFG, CLASSES))))
    with torch.no_grad():
        rec = net(torch.tensor(x)[:, None, :], record=True)
    sim = simulate(
        g, x, CFG.dt_ms / 1000, record=("layer0.spike", "layer0.psp", "layer0.reset", "layer1.psp", "layer1.reset")
    )
    hidden, output = rec.spikes[0][:, 0].numpy(), rec.spikes[1][:, 0].numpy()
    assert hidden.sum() > 50 and output.sum() > 5  # the comparison means something: both layers fire
    np.testing.assert_array_equal(sim["layer0.spike"], hidden)
    np.testing.assert_array_equal(sim["output"], output)
    # the states themselves: CubaLI v = M − S, LI v = −E, so V = M − S − E to rounding
    for i in (0, 1):
        np.testing.assert_allclose(sim[f"layer{i}.psp"], (rec.m[i] - rec.s[i])[:, 0].numpy(), atol=1e-10)
        np.testing.assert_allclose(sim[f"layer{i}.reset"], -rec.e[i][:, 0].numpy(), atol=1e-10)
        np.testing.assert_allclose(
            sim[f"layer{i}.psp"] + sim[f"layer{i}.reset"], rec.voltages[i][:, 0].numpy(), atol=1e-10
        )
    # where they could differ: NIR's Threshold fires on v > ϑ, the engine on V ≥ ϑ; no V is within 1e-9 of ϑ here
    V = rec.voltages[0][:, 0].numpy()
    assert np.abs(V - CFG.theta).min() > 1e-9


def test_margin_readout_exports_its_voltage():
    net = _net([10, 6, 2], output_spiking=False)
    g = to_nir(net, CFG)
    assert "layer1.spike" not in g.nodes and ("layer1.psp", "output") in {tuple(e) for e in g.edges}
    rng = np.random.default_rng(1)
    x = (rng.random((200, 10)) < 0.08).astype(np.float64)
    with torch.no_grad():
        rec = net(torch.tensor(x)[:, None, :])
    np.testing.assert_allclose(simulate(g, x, CFG.dt_ms / 1000)["output"], rec.voltages[1][:, 0].numpy(), atol=1e-10)


def test_export_errors_are_one_line(tmp_path, capsys):
    assert (
        cli.main(["--quiet", "export", str(tmp_path / "nope"), "--format", "nir", "--out", str(tmp_path / "m.nir")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("stca: error: ") and len(err.strip().splitlines()) == 1
