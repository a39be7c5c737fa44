"""A tiny network learns toy tasks with the STCA loss in a few seconds (end-to-end sanity of
forward, k*-selection, exact backward and an optimiser)."""

import torch

import stca_engine as se
from stca_engine.losses import predict

N_IN, T = 20, 150


def _patterns(n_cls):
    g = torch.Generator().manual_seed(1234)
    return [torch.randint(0, 12, (N_IN,), generator=g) for _ in range(n_cls)]  # one spike per afferent


def _streams(n, seed, n_cls=2):
    """Noise streams (1 % rate) with 0-2 embedded class patterns; target = per-class counts."""
    g = torch.Generator().manual_seed(seed)
    pats = _patterns(n_cls)
    x = (torch.rand(T, n, N_IN, generator=g) < 0.01).float()
    target = torch.zeros(n, n_cls, dtype=torch.long)
    for b in range(n):
        k = int(torch.randint(0, 3, (1,), generator=g))
        for slot in torch.randperm(4, generator=g)[:k].tolist():
            c = int(torch.randint(0, n_cls, (1,), generator=g))
            x[5 + slot * 35 + pats[c], b, torch.arange(N_IN)] = 1
            target[b, c] += 1
    return x, target


def _samples(n, seed, n_cls=2):
    """One class pattern per sample (each class: its own half of the afferents, fixed spike times)."""
    g = torch.Generator().manual_seed(seed)
    pg = torch.Generator().manual_seed(99)
    pats = [
        (torch.randperm(N_IN, generator=pg)[: N_IN // 2], torch.randint(0, 12, (N_IN // 2,), generator=pg))
        for _ in range(n_cls)
    ]
    x = (torch.rand(T, n, N_IN, generator=g) < 0.01).float()
    y = torch.randint(0, n_cls, (n,), generator=g)
    for b in range(n):
        aff, times = pats[int(y[b])]
        x[40 + times, b, aff] = 1
    return x, y


def _train(net, cfg, x, y, task, epochs, objective="stca", lr=0.01):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for i in range(0, x.shape[1], 10):
            rec = net(x[:, i : i + 10])
            loss, _ = se.stca_loss(rec.voltages[-1], rec.spikes[-1], y[i : i + 10], cfg, task=task, objective=objective)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total)
    return losses


def _count_acc(net, cfg, x, y):
    with torch.no_grad():
        n = se.count_clusters(net(x).spikes[-1], cfg.t_in_steps)
    return float((n == y).float().mean())


def test_learns_toy_detection():
    cfg = se.NeuronConfig(t_in_ms=30.0)
    x, y = _streams(60, 0)
    xt, yt = _streams(60, 1)
    net = se.SNN([N_IN, 30, 2], cfg, seed=0, init_std=0.1)
    before, before_test = _count_acc(net, cfg, x, y), _count_acc(net, cfg, xt, yt)
    losses = _train(net, cfg, x, y, "detect", epochs=30)
    after, after_test = _count_acc(net, cfg, x, y), _count_acc(net, cfg, xt, yt)
    assert before < 0.7 and before_test < 0.75
    assert after >= 0.85, (before, after, losses)
    assert after_test >= 0.75 and after_test > before_test + 0.08, (before_test, after_test)
    assert min(losses[-5:]) < 0.3 * losses[0]


def test_learns_toy_classification_stca_and_margin():
    cfg = se.NeuronConfig(t_in_ms=30.0)
    x, y = _samples(40, 2)
    xt, yt = _samples(40, 3)
    for objective, spiking in (("stca", True), ("margin", False)):
        net = se.SNN([N_IN, 30, 2], cfg, seed=1, init_std=0.1, output_spiking=spiking)
        with torch.no_grad():
            acc0 = float((predict(*_out(net, xt), cfg, objective) == yt).float().mean())
        _train(net, cfg, x, y, "classify", epochs=15, objective=objective)
        with torch.no_grad():
            acc = float((predict(*_out(net, xt), cfg, objective) == yt).float().mean())
        assert acc >= 0.9 and acc > acc0, (objective, acc0, acc)


def _out(net, x):
    rec = net(x)
    return rec.voltages[-1], rec.spikes[-1]
