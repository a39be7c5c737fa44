"""A silenced network must not be a fixed point of training (issue #11): ``revive.py`` hands a needed k⁺
that no output step can take to the silent hidden neurons below, and changes nothing otherwise."""

import pytest
import torch
from test_trainer import CFG, TEST, TRAIN, _cfg

from stca_engine.config import NeuronConfig
from stca_engine.errors import ConfigError
from stca_engine.network import SNN
from stca_engine.revive import revive_loss
from stca_engine.trainer import TrainConfig, Trainer


def _silenced(revive: bool) -> Trainer:
    """The toy detection set with every hidden weight made inhibitory: no hidden spike, output V ≡ 0."""
    t = Trainer(None, TRAIN, TEST, CFG, _cfg(revive=revive, epochs=16))
    with torch.no_grad():
        t.net.weights[0].copy_(-t.net.weights[0].abs())
    return t


def test_without_revive_a_silenced_network_never_moves():
    t = _silenced(False)
    before = [w.detach().clone() for w in t.net.weights]
    reports = t.fit(3)
    assert all(r.layer_spikes == [0, 0] and r.silent_layers == ["hidden 1", "output"] for r in reports)
    assert all(r.n_revived == 0 for r in reports)
    for w0, w in zip(before, t.net.weights):
        assert torch.equal(w0, w.detach())  # the fixed point: no gradient reaches any weight


def test_with_revive_a_silenced_network_comes_back_and_learns():
    t = _silenced(True)
    reports = t.fit(16)
    assert reports[0].n_revived > 0 and reports[0].layer_spikes[0] == 0
    assert reports[-1].layer_spikes[0] > 0 and reports[-1].layer_spikes[1] > 0
    assert reports[-1].silent_layers == []
    # stuck at 0.531 (the never-firing floor) without revive; a healthy run of this set reaches 1.0
    assert reports[-1].train_accuracy >= 0.9
    assert reports[-1].n_revived == 0  # once every needed k⁺ finds a step, the extra term is gone


def test_revive_changes_nothing_while_every_needed_kplus_is_placed():
    runs = []
    for revive in (False, True):
        t = Trainer(None, TRAIN, TEST, CFG, _cfg(revive=revive, init_std=0.3))  # alive enough: no stuck pair
        reports = t.fit(2)
        assert all(r.n_no_kplus == 0 and r.n_revived == 0 for r in reports)
        runs.append([w.detach().clone() for w in t.net.weights])
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def _net(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    net = SNN(sizes, CFG, dtype=torch.float64, backend="torch")
    with torch.no_grad():
        for w in net.weights:
            w.copy_(torch.randn(w.shape, generator=g, dtype=w.dtype) * 0.3)
    return net


def _input(n_in, T=60, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, 2, n_in, generator=g, dtype=torch.float64) < 0.08).double()


def test_the_push_goes_to_the_silent_neurons_that_excite_the_stuck_output_at_their_highest_voltage():
    net = _net([12, 6, 2])
    with torch.no_grad():
        net.weights[0].copy_(-net.weights[0].abs())  # hidden held below 0: silent, V < 0 where inputs arrive
        net.weights[1].copy_(torch.tensor([[0.5, 0.2, 0.3, -0.4, 0.0, -0.1], [0.1, -0.2, 0.0, 0.0, 0.0, 0.4]]))
    x = _input(12)
    rec = net(x)
    assert int(rec.spikes[0].detach().sum()) == 0
    stuck = torch.tensor([[True, False], [False, False]])  # only sample 0, output 0
    term, pushed = revive_loss(rec.voltages, rec.spikes, list(net.weights), stuck, CFG.theta)
    assert pushed == 3  # hidden 0, 1, 2: the positive weights onto output 0
    (g0,) = torch.autograd.grad(term, net.weights[0], retain_graph=True)
    moved = g0.abs().sum(dim=1) > 0
    assert moved.tolist() == [True, True, True, False, False, False]
    # each pushed neuron is trained where its V is highest among the steps its weights reach: raising it
    v = rec.voltages[0][:, 0].detach()
    for j in range(3):
        k = int(torch.where(v[:, j] != 0, v[:, j], torch.tensor(-torch.inf, dtype=v.dtype)).argmax())
        dv = torch.autograd.grad(rec.voltages[0][k, 0, j], net.weights[0], retain_graph=True)[0][j]
        share = [0.5, 0.2, 0.3][j] / 1.0
        assert torch.allclose(g0[j], -share * dv / 2)  # mean over the batch of 2


def test_a_share_with_no_weight_dependent_step_passes_one_layer_down():
    net = _net([12, 5, 4, 2])
    with torch.no_grad():
        net.weights[0].copy_(-net.weights[0].abs())  # first hidden silent (V < 0) ...
        net.weights[2].copy_(net.weights[2].abs())  # ... so the second hidden sees nothing: V ≡ 0
    rec = net(_input(12))
    assert int(rec.spikes[0].detach().sum()) == 0 and float(rec.voltages[1].detach().abs().max()) == 0.0
    stuck = torch.ones(2, 2, dtype=torch.bool)
    term, pushed = revive_loss(rec.voltages, rec.spikes, list(net.weights), stuck, CFG.theta)
    assert pushed > 0
    g0, g1 = torch.autograd.grad(term, [net.weights[0], net.weights[1]], allow_unused=True)
    assert g0 is not None and float(g0.abs().sum()) > 0
    assert g1 is None or float(g1.abs().sum()) == 0.0


def test_nothing_stuck_gives_no_term():
    net = _net([12, 6, 2])
    rec = net(_input(12))
    assert revive_loss(rec.voltages, rec.spikes, list(net.weights), torch.zeros(2, 2, dtype=torch.bool), 1.0) == (
        None,
        0,
    )
    one_layer = SNN([12, 2], NeuronConfig(), dtype=torch.float64, backend="torch")
    r1 = one_layer(_input(12))  # no hidden layer: nothing below the output to hand the push to
    assert revive_loss(r1.voltages, r1.spikes, list(one_layer.weights), torch.ones(2, 2, dtype=torch.bool), 1.0) == (
        None,
        0,
    )


def test_revive_must_be_a_boolean():
    with pytest.raises(ConfigError, match="revive"):
        TrainConfig(revive="yes").validate(check_device=False)
    assert TrainConfig.from_dict(TrainConfig(revive=False).to_dict()).revive is False
