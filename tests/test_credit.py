"""Per-step credit (∂L/∂V[k], ∂L/∂I[k]) kept by the backward kernels vs autograd through a plain loop.

The reference (tests/_plain_clif.py) is differentiated step by step in float64 with ``retain_grad`` on
every step's V and I; the engine's numbers come from its fused backward kernels (``credit=b``).
"""

import numpy as np
import pytest
import torch
from conftest import in_triton_interpreter
from test_gradients import CASES, _reference_grads, _setup, _target

import stca_engine as se
from stca_engine.credit import credit_assignment, credit_of_sample


def _reference_credit(net, x, cfg, info, output_spiking, b):
    ref, grads, loss = _reference_grads(net, x, cfg, info, cfg.theta, output_spiking, keep_steps=True)
    zeros = lambda n: torch.zeros(x.shape[0], n, dtype=torch.float64)
    dV, dI = [], []
    for layer, W in enumerate(net.weights):
        vs, is_ = ref["V_steps"][layer], ref["I_steps"][layer]
        dV.append(torch.stack([v.grad[b] if v.grad is not None else zeros(W.shape[0])[0] for v in vs]))
        dI.append(torch.stack([i.grad[b] if i.grad is not None else zeros(W.shape[0])[0] for i in is_]))
    return dV, dI, grads, loss


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("objective", ["stca", "tdp1", "margin"])
@pytest.mark.parametrize("task", ["detect", "classify"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_per_step_credit_equals_autograd_float64(backend, objective, task, case):
    sizes, std, alpha = CASES[case]
    output_spiking = objective != "margin"
    seed = 7 * case + len(objective) + 2 * len(task)
    cfg, net, x = _setup(sizes, backend, std, alpha, seed, output_spiking=output_spiking)
    target = _target(task, x.shape[1], sizes[-1], seed)
    b = 1
    cm = credit_assignment(net, x, target, cfg, task=task, objective=objective, sample=b)
    # the engine's k* (the same forward), then the reference loss built on them
    rec = net(x)
    _, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], target, cfg, task=task, objective=objective)
    dV, dI, grads, loss = _reference_credit(net, x, cfg, info, output_spiking, b)
    assert cm.loss == pytest.approx(loss, rel=1e-12, abs=1e-15)
    assert np.array_equal(cm.k_star, info.k_star[b].numpy()) and np.array_equal(cm.sign, info.sign[b].numpy())
    for layer in range(len(sizes) - 1):
        for mine, want in ((cm.dV[layer], dV[layer]), (cm.dI[layer], dI[layer])):
            assert mine.shape == tuple(want.shape)
            scale = max(float(want.abs().max()), 1e-12)
            assert np.abs(mine - want.float().numpy()).max() <= 1e-6 * scale + 1e-12  # float32 copies
        gw = grads[layer].float().numpy()
        assert np.abs(cm.dW[layer] - gw).max() <= 1e-6 * max(float(np.abs(gw).max()), 1e-12) + 1e-12
    # the case is not trivial: error reaches the first layer before the output's k*
    ks = [int(k) for k, sg in zip(cm.k_star, cm.sign) if sg != 0]
    if ks:
        assert np.abs(cm.dV[-1]).max() > 0
        if len(sizes) > 2 and float(dV[0].abs().max()) > 0:
            assert int(np.flatnonzero(np.abs(cm.dV[0]).sum(axis=1))[0]) < max(ks)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_kernel_credit_equals_autograd_to_rounding_in_float64(backend):
    """The kernels' own float64 tensors (before the float32 copies of ``CreditMap``): 1e-12 relative."""
    sizes, std, alpha = CASES[2]
    cfg, net, x = _setup(sizes, backend, std, alpha, 5)
    target = _target("detect", x.shape[1], sizes[-1], 5)
    net = net.double()
    with torch.enable_grad():
        rec = net(x, credit=0)
        loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], target, cfg, task="detect")
        loss.backward()
    dV, dI, _, _ = _reference_credit(net, x, cfg, info, True, 0)
    for c, want_v, want_i in zip(rec.credit, dV, dI):
        assert c.dV.dtype == torch.float64
        assert torch.allclose(c.dV, want_v, rtol=1e-12, atol=1e-15)
        assert torch.allclose(c.dI, want_i, rtol=1e-12, atol=1e-15)
    assert float(dV[0].abs().max()) > 0  # error did reach the first hidden layer


def test_no_credit_requested_means_none_kept_and_same_gradients():
    sizes, std, alpha = CASES[0]
    grads = []
    for credit in (None, 2):
        cfg, net, x = _setup(sizes, "numba", std, alpha, 1)
        target = _target("classify", x.shape[1], sizes[-1], 1)
        rec = net(x, credit=credit)
        loss, _ = se.stca_loss(rec.voltages[-1], rec.spikes[-1], target, cfg, task="classify")
        loss.backward()
        grads.append([w.grad.clone() for w in net.weights])
        if credit is None:
            assert rec.credit is None
        else:
            assert all(c.dV is not None and c.dV.shape == (x.shape[0], n) for c, n in zip(rec.credit, sizes[1:]))
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_credit_leaves_weights_and_their_grad_alone_and_checks_the_sample():
    sizes, std, alpha = CASES[0]
    cfg, net, x = _setup(sizes, "numba", std, alpha, 2)
    before = [w.detach().clone() for w in net.weights]
    target = _target("detect", x.shape[1], sizes[-1], 2)
    credit_assignment(net, x, target, cfg, sample=-1)
    assert all(w.grad is None for w in net.weights)
    assert all(torch.equal(a, w) for a, w in zip(before, net.weights))
    with pytest.raises(se.ConfigError, match="out of range"):
        net(x, credit=x.shape[1])


def test_silent_sample_has_zero_credit_everywhere():
    """A sample whose output already fires as wanted gives no loss: all maps are zero (not missing)."""
    cfg = se.NeuronConfig()
    net = se.SNN([6, 4, 2], cfg, dtype=torch.float64, seed=0)
    x = torch.zeros(40, 1, 6, dtype=torch.float64)
    cm = credit_assignment(net, x, torch.zeros(1, 2, dtype=torch.long), cfg, task="detect")
    assert cm.loss == 0.0
    assert [a.shape for a in cm.dV] == [(40, 4), (40, 2)]
    assert all(float(np.abs(a).max()) == 0.0 for a in cm.dV + cm.dI + cm.dW)


def test_credit_of_a_dataset_sample_carries_its_name_and_events():
    from stca_engine.data.types import Sample, SpikeDataset

    cfg = se.NeuronConfig()
    rng = np.random.default_rng(0)
    steps = np.sort(rng.integers(0, 80, 60))
    train = se.SpikeTrain(steps, rng.integers(0, 8, 60), 8, 80, cfg.dt_ms)
    ds = SpikeDataset([Sample(train, 1, [], "clip-7")], 8, ["a", "b"], "classify", cfg.dt_ms)
    net = se.SNN([8, 5, 2], cfg, dtype=torch.float64, seed=3, init_std=0.3)
    cm = credit_of_sample(net, ds, 0, cfg, "classify", "stca")
    assert cm.name == "clip-7" and cm.index == 0 and cm.n_steps == 80
    with pytest.raises(se.ConfigError):
        credit_of_sample(net, ds, 1, cfg, "classify", "stca")


_TRITON_CREDIT = r"""
import json, torch
import stca_engine as se
from stca_engine.credit import credit_assignment
out = {}
for backend in ("cuda", "torch"):
    net = se.SNN([20, 15, 4], se.NeuronConfig(alpha=1.0), dtype=torch.float64, seed=0, backend=backend)
    g = torch.Generator().manual_seed(100)
    with torch.no_grad():
        for W, sd in zip(net.weights, (0.3, 0.5)):
            W.copy_(torch.randn(W.shape, generator=g, dtype=torch.float64) * sd)
    x = (torch.rand(60, 3, 20, generator=torch.Generator().manual_seed(1)) < 0.08).double()
    cm = credit_assignment(net, x, torch.tensor([1, 0, 2]), net.cfg, task="classify", sample=2)
    out[backend] = [a.tolist() for a in cm.dV + cm.dI]
print(json.dumps(out))
"""


def test_triton_kernel_keeps_the_same_credit_in_interpreter():
    out = in_triton_interpreter(_TRITON_CREDIT)
    for a, b in zip(out["cuda"], out["torch"]):
        a, b = np.asarray(a), np.asarray(b)
        assert np.abs(a - b).max() <= 1e-9 * max(np.abs(b).max(), 1e-12)
    assert max(np.abs(np.asarray(a)).max() for a in out["torch"]) > 0


def test_afferent_labels_name_frequency_band_and_level():
    from stca_engine.encoders import afferent_labels, make_encoder
    from stca_engine.spikegram import erb_space

    enc = make_encoder("spikegram", n_kernels=8, n_bins=2, f_min=100.0, f_max=4000.0)
    labels = afferent_labels(enc.settings(), enc.n_units)
    hz = erb_space(100.0, 4000.0, 8)
    assert len(labels) == 16 and labels[0] == "100 Hz · level 1/2" and labels[1] == "100 Hz · level 2/2"
    assert labels[-1] == "4.0 kHz · level 2/2" and labels[2].startswith(f"{hz[1]:.0f} Hz")
    spec = make_encoder("spectral", n_bands=4, n_levels=3)
    assert len(afferent_labels(spec.settings(), 12)) == 12 and afferent_labels(spec.settings(), 12)[3].endswith("1/3")
    assert afferent_labels({"encoder": "rate"}, 4) == ["pixel (0, 0)", "pixel (0, 1)", "pixel (1, 0)", "pixel (1, 1)"]
    # settings that do not describe these inputs: plain indices, never an error
    assert afferent_labels(enc.settings(), 5) == [f"afferent {i}" for i in range(5)]
    assert afferent_labels({"encoder": "spikegram", "n_kernels": "x"}, 2) == ["afferent 0", "afferent 1"]


def test_credit_follows_a_tdp1_run_asked_for_n_spikes_per_event():
    """The map's k* and sign are those of the loss the run trained with (``tdp1_spikes``), not of n = 1."""
    sizes, std, alpha = CASES[0]
    cfg, net, x = _setup(sizes, "torch", std, alpha, 3)
    target = _target("detect", x.shape[1], sizes[-1], 3)
    rec = net(x)
    for n in (1, 5):
        cm = credit_assignment(net, x, target, cfg, task="detect", objective="tdp1", sample=1, tdp1_spikes=n)
        _, info = se.stca_loss(
            rec.voltages[-1], rec.spikes[-1], target, cfg, task="detect", objective="tdp1", tdp1_spikes=n
        )
        assert np.array_equal(cm.k_star, info.k_star[1].numpy()) and np.array_equal(cm.sign, info.sign[1].numpy())
