"""Forward pass of the engine vs an independent step-by-step float64 loop (tests/_plain_clif.py)."""

import numpy as np
import pytest
import torch
from _plain_clif import constants, plain_net

import stca_engine as se
from stca_engine.errors import ConfigError


def _net(sizes, backend, std, seed=0, output_spiking=True, cfg=None):
    cfg = cfg or se.NeuronConfig()
    net = se.SNN(sizes, cfg, dtype=torch.float64, seed=seed, backend=backend, output_spiking=output_spiking)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for W, sd in zip(net.weights, std):
            W.copy_(torch.randn(W.shape, generator=g, dtype=torch.float64) * sd)
    return net


def _input(T, B, n, density, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < density).double()


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("density", [0.05, 0.5])  # sparse gather path and dense matmul path
def test_forward_matches_plain_loop(backend, density):
    net = _net([30, 25, 12, 6], backend, std=[0.25 if density < 0.1 else 0.06, 0.4, 0.5])
    x = _input(120, 3, 30, density)
    rec = net(x, record=True)
    bm, bs, v0 = constants()
    ref = plain_net(x, [w.detach() for w in net.weights], v0, bm, bs, 1.0, 2.0)
    for i in range(3):
        assert torch.equal(rec.spikes[i], ref["O"][i]), f"layer {i} spikes differ"
        torch.testing.assert_close(rec.voltages[i], ref["V"][i], rtol=0, atol=1e-12)
        torch.testing.assert_close(rec.m[i], ref["M"][i], rtol=0, atol=1e-12)
        torch.testing.assert_close(rec.s[i], ref["S"][i], rtol=0, atol=1e-12)
        torch.testing.assert_close(rec.e[i], ref["E"][i], rtol=0, atol=1e-12)
        assert rec.spikes[i].sum() > 10, "test must exercise spikes and resets"
    # resets really happen: E is nonzero somewhere in every layer
    assert all(float(e.abs().max()) > 0.1 for e in rec.e)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_non_spiking_output_layer(backend):
    net = _net([20, 15, 4], backend, std=[0.3, 0.5], output_spiking=False)
    x = _input(80, 2, 20, 0.08)
    rec = net(x, record=True)
    bm, bs, v0 = constants()
    ref = plain_net(x, [w.detach() for w in net.weights], v0, bm, bs, 1.0, 2.0, output_spiking=False)
    torch.testing.assert_close(rec.voltages[-1], ref["V"][-1], rtol=0, atol=1e-12)
    assert not rec.spikes[-1].any() and not rec.e[-1].any()
    assert rec.voltages[-1].max() > 1.0  # would have spiked; the readout does not


def test_lean_mode_and_record_one_sample():
    net = _net([20, 15, 4], "numba", std=[0.3, 0.5])
    x = _input(60, 3, 20, 0.08)
    lean = net(x)
    assert lean.m is None and lean.s is None and lean.e is None
    one = net.record(x, sample=2)
    assert one.voltages[0].shape == (60, 1, 15) and one.m[1].shape == (60, 1, 4)
    assert torch.equal(one.spikes[1][:, 0], lean.spikes[1][:, 2])
    torch.testing.assert_close(one.voltages[1][:, 0], lean.voltages[1][:, 2], rtol=0, atol=1e-12)
    assert not one.voltages[0].requires_grad


def test_float32_backends_agree_and_default_dtype():
    net = se.SNN([128, 300, 10], se.NeuronConfig(), seed=3)
    assert net.weights[0].dtype == torch.float32 and net.weights[0].shape == (300, 128)
    assert net.weights[1].shape == (10, 300)
    assert 0.008 < float(net.weights[0].detach().std()) < 0.012  # N(0, 0.01²)
    assert isinstance(net.weights[0], torch.nn.Parameter)
    with torch.no_grad():
        net.weights[0].mul_(25)
        net.weights[1].mul_(30)
    x = _input(150, 2, 128, 0.03).float()
    a = net(x)
    net.backend = "torch"
    b = net(x)
    assert a.voltages[1].dtype == torch.float32
    assert a.spikes[0].sum() > 0
    torch.testing.assert_close(a.voltages[0], b.voltages[0], rtol=1e-4, atol=1e-4)


def test_seed_reproducible():
    a = se.SNN([5, 4, 3], seed=7)
    b = se.SNN([5, 4, 3], seed=7)
    assert all(torch.equal(u, v) for u, v in zip(a.weights, b.weights))


@pytest.mark.parametrize("sizes", [[], [5], [5, 0], [5, -1, 3], [5, 2.5], "abc", None, [5, True]])
def test_bad_sizes(sizes):
    with pytest.raises(ConfigError):
        se.SNN(sizes)


def test_bad_input_and_backend():
    net = se.SNN([5, 3], seed=0)
    with pytest.raises(ConfigError, match=r"\[T, B, 5\]"):
        net(torch.zeros(10, 2, 4))
    with pytest.raises(ConfigError):
        net(torch.zeros(10, 5))
    with pytest.raises(ConfigError, match="backend"):
        se.SNN([5, 3], backend="fpga")
    with pytest.raises(ConfigError, match="CUDA device"):
        se.SNN([5, 3], backend="cuda")


def test_to_dict_roundtrip():
    cfg = se.NeuronConfig(tau_m_ms=20.0, tau_s_ms=5.0)
    net = se.SNN([6, 4, 2], cfg, output_spiking=False, seed=1)
    d = net.to_dict()
    net2 = se.SNN.from_dict(d)
    assert net2.sizes == [6, 4, 2] and net2.cfg == cfg and net2.output_spiking is False


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_in", [1, 7, 8, 19, 64])
def test_compressed_rows_hold_exactly_the_nonzeros(dtype, n_in):
    from stca_engine.kernels.cpu import compress

    g = torch.Generator().manual_seed(n_in)
    x = torch.where(
        torch.rand(13, 3, n_in, generator=g) < 0.08, torch.randn(13, 3, n_in, generator=g), torch.zeros(())
    ).to(dtype)
    x[0, 0, 0] = 2.5
    rows = compress(x, max_density=1.0)
    dense = torch.zeros(13 * 3, n_in, dtype=dtype)
    for r in range(13 * 3):
        for k in range(rows.ptr[r], rows.ptr[r + 1]):
            dense[r, rows.idx[k]] = float(rows.val[k])
    assert torch.equal(dense.view(13, 3, n_in), x)
    assert rows.nnz == int(torch.count_nonzero(x))
    assert compress(torch.ones(4, 2, n_in, dtype=dtype)) is None  # dense: BLAS path


@pytest.mark.parametrize("burst_steps", [0, 30])
def test_compressed_rows_when_one_stretch_is_dense(burst_steps):
    """Rows are listed in one pass into chunks sized for the density limit; a dense stretch overflows
    its chunk (while the whole stays under the limit) and takes the two-pass path: same rows either way."""
    from stca_engine.kernels.cpu import SPARSE_MAX_DENSITY, compress

    g = torch.Generator().manual_seed(burst_steps)
    x = (torch.rand(400, 8, 128, generator=g) < 0.01).float()
    x[:burst_steps] = (torch.rand(burst_steps, 8, 128, generator=g) < 0.9).float()
    assert float((x != 0).float().mean()) < SPARSE_MAX_DENSITY
    rows = compress(x)
    flat = x.view(-1, 128)
    for r in range(flat.shape[0]):
        want = torch.nonzero(flat[r]).flatten().numpy()
        assert np.array_equal(rows.idx[rows.ptr[r] : rows.ptr[r + 1]], want)
    assert np.all(rows.val == 1.0) and rows.nnz == int(torch.count_nonzero(x))


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_non_binary_inputs(backend):
    """Graded inputs (not only 0/1 spikes) are weighted by their value."""
    net = _net([12, 9, 3], backend, std=[0.3, 0.5])
    g = torch.Generator().manual_seed(5)
    x = torch.where(
        torch.rand(50, 2, 12, generator=g) < 0.1,
        torch.rand(50, 2, 12, generator=g) * 3,
        torch.zeros((), dtype=torch.float64),
    ).double()
    rec = net(x)
    bm, bs, v0 = constants()
    ref = plain_net(x, [w.detach() for w in net.weights], v0, bm, bs, 1.0, 2.0)
    torch.testing.assert_close(rec.voltages[0], ref["V"][0], rtol=0, atol=1e-12)
    assert torch.equal(rec.spikes[1], ref["O"][1])


def test_concurrent_threads_give_serial_results():
    """Several app sessions may run networks at once from different threads."""
    import threading

    from stca_engine.kernels.cpu import PARALLEL_MIN_WORK

    net = _net([40, 80, 5], "numba", std=[0.3, 0.4])
    xs = [_input(400, 8, 40, 0.05, seed=s) for s in range(4)]
    assert 400 * 8 * 80 >= PARALLEL_MIN_WORK  # the parallel kernels are the ones launched concurrently
    serial = [net(x).voltages[-1] for x in xs]
    out = [None] * 4

    def run(i):
        for _ in range(3):
            out[i] = net(xs[i]).voltages[-1]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, out):
        assert torch.equal(a, b)


_TRITON_CHECK = r"""
import json, sys, torch
import stca_engine as se
out = {}
for dtype in (torch.float64, torch.float32):
    for spiking in (True, False):
        res = {}
        for backend in ("cuda", "torch"):
            net = se.SNN([20, 15, 4], se.NeuronConfig(alpha=1.0), dtype=torch.float64, seed=0, backend=backend,
                         output_spiking=spiking)
            g = torch.Generator().manual_seed(100)
            with torch.no_grad():
                for W, sd in zip(net.weights, (0.3, 0.5)):
                    W.copy_(torch.randn(W.shape, generator=g, dtype=torch.float64) * sd)
            net = net.to(dtype)
            x = (torch.rand(60, 3, 20, generator=torch.Generator().manual_seed(1)) < 0.08).to(dtype)
            x.requires_grad_(True)
            rec = net(x, record=True)
            loss, _ = se.stca_loss(rec.voltages[-1], rec.spikes[-1], torch.tensor([1, 0, 2]), net.cfg,
                                   task="classify", objective="stca" if spiking else "margin")
            loss.backward()
            res[backend] = [rec.voltages[0], rec.voltages[1], rec.e[0], rec.spikes[0], rec.spikes[1],
                            net.weights[0].grad, net.weights[1].grad, x.grad]
        a, b = res["cuda"], res["torch"]
        rel = [float((u - v).abs().max() / max(float(v.abs().max()), 1e-30)) for u, v in zip(a, b)]
        out[f"{dtype}-{spiking}"] = {"rel": rel, "spikes_equal": all(torch.equal(a[i], b[i]) for i in (3, 4)),
                                     "hidden_spikes": float(b[3].sum()), "grad_max": float(b[5].abs().max())}
print(json.dumps(out))
"""


def test_triton_kernels_in_interpreter_match_torch_path():
    """The CUDA (Triton) kernels, run by Triton's CPU interpreter in a fresh process (the mode must be
    on before Triton is imported), agree with the plain-torch path: forward traces, spikes, weight and
    input gradients, float64 and float32, spiking and non-spiking output."""
    pytest.importorskip("triton")
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", _TRITON_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out) == 4
    for key, r in out.items():
        tol = 1e-9 if "float64" in key else 1e-4
        assert r["spikes_equal"], key
        assert r["hidden_spikes"] > 0 and r["grad_max"] > 0, key
        assert max(r["rel"]) <= tol, (key, r["rel"])
