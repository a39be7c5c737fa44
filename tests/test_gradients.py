"""Weight gradients of the engine vs torch autograd through an independent plain loop (SPEC §4).

The reference (tests/_plain_clif.py) differentiates every step with the rectangular surrogate,
including the reset path O[k-1] → E[k] and the next layer's input current. The loss time points
(k*) come from the engine's LossInfo (their selection is tested in test_clusters/test_losses), and
the loss is rebuilt from the reference voltages, so only the gradient machinery is compared.
"""

import pytest
import torch
from _plain_clif import constants, plain_net

import stca_engine as se

MARGIN = 0.3


def _setup(sizes, backend, std, alpha, seed, T=90, B=3, density=0.06, output_spiking=True):
    cfg = se.NeuronConfig(alpha=alpha, t_in_ms=30.0)
    net = se.SNN(sizes, cfg, dtype=torch.float64, seed=seed, backend=backend, output_spiking=output_spiking)
    g = torch.Generator().manual_seed(seed + 11)
    with torch.no_grad():
        for W, sd in zip(net.weights, std):
            W.copy_(torch.randn(W.shape, generator=g, dtype=torch.float64) * sd)
    x = (torch.rand(T, B, sizes[0], generator=torch.Generator().manual_seed(seed + 5)) < density).double()
    return cfg, net, x


def _target(task, B, N, seed):
    g = torch.Generator().manual_seed(seed)
    if task == "detect":
        return torch.randint(0, 3, (B, N), generator=g)
    return torch.randint(0, N, (B,), generator=g)


def _reference_grads(net, x, cfg, info, theta, output_spiking, reset_grad=True, keep_steps=False):
    bm, bs, v0 = constants(cfg.dt_ms, cfg.tau_m_ms, cfg.tau_s_ms)
    ws = [w.detach().clone().requires_grad_(True) for w in net.weights]
    ref = plain_net(
        x, ws, v0, bm, bs, theta, cfg.alpha, output_spiking=output_spiking, reset_grad=reset_grad, keep_steps=keep_steps
    )
    V = ref["V"][-1]
    B, N = info.k_star.shape
    loss = V.new_zeros(())
    up_to = theta + MARGIN if info.objective == "margin" else theta
    down_to = theta - MARGIN if info.objective == "margin" else theta
    for b in range(B):
        for n in range(N):
            k, sg = int(info.k_star[b, n]), int(info.sign[b, n])
            if sg > 0:
                loss = loss + (up_to - V[k, b, n])
            elif sg < 0:
                loss = loss + (V[k, b, n] - down_to)
    (loss / B).backward()
    return ref, [w.grad for w in ws], float(loss.detach() / B)


CASES = [
    # sizes, weight std per layer, alpha
    ([24, 20, 5], [0.35, 0.45], 2.0),
    ([24, 20, 5], [0.35, 0.45], 0.7),
    ([24, 18, 14, 4], [0.35, 0.4, 0.45], 1.0),
]


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("objective", ["stca", "tdp1", "margin"])
@pytest.mark.parametrize("task", ["detect", "classify"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_weight_gradients_match_autograd(backend, objective, task, case):
    sizes, std, alpha = CASES[case]
    output_spiking = objective != "margin" or case == 0  # margin also on a spiking output once
    seed = 3 * case + len(objective) + len(task)
    cfg, net, x = _setup(sizes, backend, std, alpha, seed, output_spiking=output_spiking)
    rec = net(x)
    target = _target(task, x.shape[1], sizes[-1], seed)
    loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], target, cfg, task=task, objective=objective)
    loss.backward()
    ref, ref_grads, ref_loss = _reference_grads(net, x, cfg, info, cfg.theta, output_spiking)

    # same forward, so the same k*; the loss values agree
    for i in range(len(sizes) - 1):
        assert torch.equal(rec.spikes[i], ref["O"][i])
    assert abs(float(loss.detach()) - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss))
    # the test exercises what it claims: losses present, hidden spikes, surrogate windows hit before k*
    assert (info.sign != 0).any()
    for i in range(len(sizes) - 2):
        assert rec.spikes[i].sum() > 5, f"hidden layer {i} silent"
        k_max = int(info.k_star.max())
        window = (ref["V"][i][: k_max + 1] - cfg.theta).abs() < alpha / 2
        assert window.any() and not window.all(), "surrogate window must be hit and also missed"
    for g_eng, g_ref in zip((w.grad for w in net.weights), ref_grads):
        assert float(g_ref.abs().max()) > 0
        rel = float((g_eng - g_ref).norm() / g_ref.norm())
        assert rel <= 1e-9, rel
        torch.testing.assert_close(g_eng, g_ref, rtol=1e-9, atol=1e-12 * float(g_ref.abs().max()))


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_reset_path_matters(backend):
    """Cutting the O → E gradient path in the reference changes the first-layer gradient, so the
    comparison above would catch an engine that ignored it."""
    sizes, std, alpha = CASES[2]
    cfg, net, x = _setup(sizes, backend, std, alpha, seed=4)
    rec = net(x)
    loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], _target("detect", 3, 4, 4), cfg)
    loss.backward()
    _, full, _ = _reference_grads(net, x, cfg, info, cfg.theta, True)
    _, cut, _ = _reference_grads(net, x, cfg, info, cfg.theta, True, reset_grad=False)
    rel_cut = float((cut[0] - full[0]).norm() / full[0].norm())
    assert rel_cut > 1e-3
    assert float((net.weights[0].grad - full[0]).norm() / full[0].norm()) <= 1e-9


def test_input_gradient_and_float32():
    """Gradient w.r.t. the input raster (layer backward's gx) and a float32 run close to float64."""
    cfg, net, x = _setup([16, 12, 3], "numba", [0.4, 0.5], 1.0, seed=9, T=70, B=2)
    xg = x.clone().requires_grad_(True)
    rec = net(xg)
    loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], torch.tensor([[2, 0, 1], [0, 3, 0]]), cfg)
    loss.backward()
    bm, bs, v0 = constants()
    xr = x.clone().requires_grad_(True)
    ref = plain_net(xr, [w.detach() for w in net.weights], v0, bm, bs, 1.0, 1.0)
    V = ref["V"][-1]
    lr = (
        sum(
            (1.0 - V[int(info.k_star[b, n]), b, n])
            if info.sign[b, n] > 0
            else (V[int(info.k_star[b, n]), b, n] - 1.0)
            if info.sign[b, n] < 0
            else V.new_zeros(())
            for b in range(2)
            for n in range(3)
        )
        / 2
    )
    lr.backward()
    assert float(xr.grad.abs().max()) > 0
    torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-9, atol=1e-12)

    net32 = se.SNN([16, 12, 3], cfg, seed=0)
    with torch.no_grad():
        for a, b in zip(net32.weights, net.weights):
            a.copy_(b.float())
    r32 = net32(x.float())
    if torch.equal(r32.spikes[-1].double(), rec.spikes[-1].detach()):
        l32, _ = se.stca_loss(r32.voltages[-1], r32.spikes[-1], torch.tensor([[2, 0, 1], [0, 3, 0]]), cfg)
        l32.backward()
        torch.testing.assert_close(net32.weights[0].grad.double(), net.weights[0].grad, rtol=1e-3, atol=1e-4)


def test_backward_truncates_after_k_star():
    """Nothing after the last k* is needed: inputs after it get exactly zero gradient."""
    cfg, net, x = _setup([16, 12, 3], "numba", [0.4, 0.5], 1.0, seed=2, T=80, B=2)
    xg = x.clone().requires_grad_(True)
    rec = net(xg)
    loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], torch.tensor([[5, 5, 5], [5, 5, 5]]), cfg)
    loss.backward()
    for b in range(2):
        kb = int(info.k_star[b].max())
        assert kb >= 0
        assert not xg.grad[kb + 1 :, b].any()
        assert xg.grad[: kb + 1, b].any()


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("task", ["detect", "classify"])
def test_dense_inputs_use_the_blas_path_and_stay_exact(backend, task):
    """Inputs and hidden spikes denser than the sparse threshold take the matmul path (numba)."""
    from stca_engine.kernels.cpu import SPARSE_MAX_DENSITY

    cfg, net, x = _setup([24, 20, 5], backend, [0.1, 0.2], 1.0, seed=7, density=0.4)
    rec = net(x)
    assert float(x.mean()) > SPARSE_MAX_DENSITY and float(rec.spikes[0].detach().mean()) > SPARSE_MAX_DENSITY
    loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], _target(task, 3, 5, 7), cfg, task=task)
    loss.backward()
    _, ref_grads, _ = _reference_grads(net, x, cfg, info, cfg.theta, True)
    assert (info.sign != 0).any()
    for g_eng, g_ref in zip((w.grad for w in net.weights), ref_grads):
        assert float(g_ref.abs().max()) > 0
        torch.testing.assert_close(g_eng, g_ref, rtol=1e-9, atol=1e-12 * float(g_ref.abs().max()))


def _stack_run(backend, sizes, dropout, seed=21, T=80, B=3):
    """Weight, input and credit gradients of one loss that also reaches the hidden spikes directly."""
    cfg, net, x = _setup(sizes, backend, [0.3] + [0.25] * (len(sizes) - 2), 1.0, seed, T=T, B=B, density=0.1)
    xg = x.clone().requires_grad_(True)
    rec = net(xg, dropout=dropout, generator=torch.Generator().manual_seed(seed), credit=1)
    loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], _target("detect", B, sizes[-1], seed), cfg)
    g = torch.Generator().manual_seed(seed + 1)
    hidden_term = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in rec.spikes[:-1])
    (loss + 0.01 * hidden_term).backward()
    credit = [(c.dV.clone(), c.dI.clone()) for c in rec.credit]
    return rec, info, [w.grad.clone() for w in net.weights], xg.grad.clone(), credit


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_one_node_for_the_stack_gives_the_layer_by_layer_gradients(dropout):
    """The numba backend runs a network as one autograd node, handing narrow layers' error down inside
    the kernel (``FUSE_MAX_WIDTH``) and wide ones through a matmul; against the torch backend, where
    autograd chains one node per layer and applies dropout itself: the same spikes and k*, and the
    same gradients of W, of the input and of the credit probes, with a loss term on hidden spikes too."""
    from stca_engine.kernels.cpu import FUSE_MAX_WIDTH
    from stca_engine.layer import CLIFStackFunction

    sizes = [20, 40, FUSE_MAX_WIDTH + 4, 4]  # 36 wide above 40: matmul; 4 above 36: fused
    rec_n, info_n, gw_n, gx_n, cr_n = _stack_run("numba", sizes, dropout)
    rec_t, info_t, gw_t, gx_t, cr_t = _stack_run("torch", sizes, dropout)
    assert type(rec_n.voltages[0].grad_fn).__name__ == CLIFStackFunction.__name__ + "Backward"
    for a, b in zip(rec_n.spikes, rec_t.spikes):
        assert torch.equal(a, b)
    assert torch.equal(info_n.k_star, info_t.k_star) and (info_n.sign != 0).any()
    for a, b in zip(gw_n + [gx_n], gw_t + [gx_t]):
        assert float(b.abs().max()) > 0
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12 * float(b.abs().max()))
    for (dv_n, di_n), (dv_t, di_t) in zip(cr_n, cr_t):
        assert float(dv_t.abs().max()) > 0
        torch.testing.assert_close(dv_n, dv_t, rtol=1e-9, atol=1e-12 * float(dv_t.abs().max()))
        torch.testing.assert_close(di_n, di_t, rtol=1e-9, atol=1e-12 * float(di_t.abs().max()))
