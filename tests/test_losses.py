"""STCA (Eq. 9/10), TDP1 and margin losses, LossInfo and predictions on hand-made output traces."""

import pytest
import torch

import stca_engine as se
from stca_engine.errors import ConfigError
from stca_engine.losses import predict

CFG = se.NeuronConfig(dt_ms=1.0, t_in_ms=5.0)  # T_in = 5 steps


@pytest.fixture(autouse=True, params=["numba", "torch"])
def selection_impl(request, monkeypatch):
    """Every loss test runs with the numba and the torch time-point selection."""
    import stca_engine.clusters as c

    monkeypatch.setattr(c, "USE_NUMBA", request.param == "numba")
    return request.param


def _traces(T, specs):
    """specs[b][n] = (spike steps, {step: voltage}) -> v, s [T, B, N]; base voltage 0.1."""
    B, N = len(specs), len(specs[0])
    v = torch.full((T, B, N), 0.1, dtype=torch.float64)
    s = torch.zeros(T, B, N, dtype=torch.float64)
    for b, row in enumerate(specs):
        for n, (spikes, volts) in enumerate(row):
            for t, val in volts.items():
                v[t, b, n] = val
            for t in spikes:
                s[t, b, n] = 1
                v[t, b, n] = max(1.2, float(v[t, b, n]))
    return v.requires_grad_(True), s


def test_detect_eq9_signs_values_and_gradient():
    # neuron 0: 1 cluster, wants 2 -> k+ ; neuron 1: 2 clusters, wants 1 -> k- ; neuron 2: 1 == 1 -> none
    v, s = _traces(40, [[([5, 6], {20: 0.7, 30: 0.8}), ([5, 20, 21], {21: 1.4}), ([10], {})]])
    target = torch.tensor([[2, 1, 1]])
    loss, info = se.stca_loss(v, s, target, CFG, task="detect")
    assert info.n_clusters.tolist() == [[1, 2, 1]]
    assert info.sign.tolist() == [[1, -1, 0]]
    assert info.k_star.tolist() == [[30, 5, -1]]  # k- = last spike of the 1-spike cluster {5}
    assert info.k_star.dtype == torch.long
    assert float(loss.detach()) == pytest.approx((1.0 - 0.8) + (1.2 - 1.0))
    loss.backward()
    g = v.grad
    assert float(g[30, 0, 0]) == -1 and float(g[5, 0, 1]) == 1
    assert int((g != 0).sum()) == 2


def test_classify_eq10():
    # true class 1. n0 silent (other: 0), n1 silent (true -> k+), n2 fires (other -> k-), n3 fires (... )
    row = [([], {}), ([], {12: 0.6}), ([8, 9], {}), ([], {})]
    row2 = [([3], {}), ([3, 4, 30], {}), ([], {}), ([], {})]  # true class 1 fires 2 clusters: no loss for it
    v, s = _traces(40, [row, row2])
    loss, info = se.stca_loss(v, s, torch.tensor([1, 1]), CFG, task="classify")
    assert info.sign.tolist() == [[0, 1, -1, 0], [-1, 0, 0, 0]]
    assert info.k_star.tolist() == [[-1, 12, 9, -1], [3, -1, -1, -1]]
    assert info.desired.tolist() == [[0, 1, 0, 0], [0, 1, 0, 0]]
    per = [(1.0 - 0.6) + (1.2 - 1.0), (1.2 - 1.0)]
    torch.testing.assert_close(info.per_sample, torch.tensor(per, dtype=torch.float64))
    assert float(loss.detach()) == pytest.approx(sum(per) / 2)  # sum over neurons, mean over samples


def test_tdp1_counts_single_spikes():
    # one cluster of 3 spikes, wants 1: STCA is happy, TDP1 pushes down the last spike
    v, s = _traces(40, [[([10, 11, 12], {25: 0.5, 11: 1.5})]])
    _, stca = se.stca_loss(v, s, torch.tensor([[1]]), CFG)
    loss, tdp = se.stca_loss(v, s, torch.tensor([[1]]), CFG, objective="tdp1")
    assert stca.sign.tolist() == [[0]] and stca.n_clusters.tolist() == [[1]]
    assert tdp.n_clusters.tolist() == [[3]] and tdp.sign.tolist() == [[-1]] and tdp.k_star.tolist() == [[12]]
    # wants 4 spikes: TDP1 k+ is the highest local max below ϑ anywhere (14 is next to the spikes)
    v2, s2 = _traces(40, [[([10, 11, 12], {14: 0.9, 25: 0.5})]])
    _, tdp = se.stca_loss(v2, s2, torch.tensor([[4]]), CFG, objective="tdp1")
    _, stca = se.stca_loss(v2, s2, torch.tensor([[2]]), CFG, objective="stca")
    assert tdp.k_star.tolist() == [[14]] and stca.k_star.tolist() == [[25]]


def test_tdp1_classify_wants_exactly_one_spike():
    v, s = _traces(40, [[([5, 6], {}), ([], {}), ([30], {})]])
    _, info = se.stca_loss(v, s, torch.tensor([0]), CFG, task="classify", objective="tdp1")
    assert info.desired.tolist() == [[1, 0, 0]]
    assert info.sign.tolist() == [[-1, 0, -1]] and info.k_star.tolist() == [[6, -1, 30]]


def test_no_kplus_is_counted_and_gives_no_loss():
    v, s = _traces(12, [[([0, 4, 8], {})]])
    loss, info = se.stca_loss(v, s, torch.tensor([[5]]), CFG)
    assert info.no_kplus.tolist() == [[True]] and info.n_no_kplus == 1
    assert info.sign.tolist() == [[0]] and info.k_star.tolist() == [[-1]]
    assert float(loss.detach()) == 0


def test_margin_objective():
    v = torch.full((20, 1, 3), 0.1, dtype=torch.float64)
    v[5, 0, 0] = 1.1  # true class, max 1.1 <= 1.3 -> push up: 1.3 - 1.1
    v[7, 0, 1] = 0.9  # other, 0.9 > 0.7 -> push down: 0.9 - 0.7
    v[9, 0, 2] = 0.6  # other, below 0.7 -> nothing
    v.requires_grad_(True)
    loss, info = se.stca_loss(v, None, torch.tensor([0]), CFG, task="classify", objective="margin")
    assert info.sign.tolist() == [[1, -1, 0]] and info.k_star.tolist() == [[5, 7, -1]]
    assert float(loss.detach()) == pytest.approx(0.2 + 0.2)
    loss.backward()
    assert float(v.grad[5, 0, 0]) == -1 and float(v.grad[7, 0, 1]) == 1
    v2 = v.detach().clone()
    v2[5, 0, 0] = 1.5  # true class above ϑ + 0.3: no loss
    _, info = se.stca_loss(v2, None, torch.tensor([0]), CFG, task="classify", objective="margin")
    assert info.sign.tolist() == [[0, -1, 0]]


def test_predict():
    # n0: 2 clusters, n1: 2 clusters with higher max V, n2: 1 cluster
    v, s = _traces(40, [[([2, 20], {}), ([3, 25], {25: 1.6}), ([4], {})]])
    v = v.detach()
    assert predict(v, s, CFG).tolist() == [1]
    assert predict(v, s, CFG, objective="tdp1").tolist() == [1]
    v3, s3 = _traces(40, [[([2, 3, 4], {}), ([3, 25], {}), ([4], {})]])
    assert predict(v3.detach(), s3, CFG).tolist() == [1]  # 2 clusters beat 1 cluster of 3
    assert predict(v3.detach(), s3, CFG, objective="tdp1").tolist() == [0]  # 3 spikes beat 2
    assert predict(v.detach(), None, CFG, objective="margin").tolist() == [1]


@pytest.mark.parametrize(
    "target,task",
    [
        (torch.tensor([[1, 2]]), "detect"),
        (torch.tensor([[1, -1, 0]]), "detect"),
        (torch.tensor([3]), "classify"),
        (torch.tensor([[0]]), "classify"),
        (torch.tensor([[0.5, 1, 1]]), "detect"),
    ],
)
def test_bad_targets(target, task):
    v, s = _traces(10, [[([], {}), ([], {}), ([], {})]])
    with pytest.raises(ConfigError):
        se.stca_loss(v, s, target, CFG, task=task)


def test_bad_task_objective():
    v, s = _traces(10, [[([], {})]])
    with pytest.raises(ConfigError, match="task"):
        se.stca_loss(v, s, torch.tensor([[0]]), CFG, task="segment")
    with pytest.raises(ConfigError, match="objective"):
        se.stca_loss(v, s, torch.tensor([[0]]), CFG, objective="mse")
    with pytest.raises(ConfigError, match="spikes"):
        se.stca_loss(v, None, torch.tensor([[0]]), CFG)


@pytest.mark.parametrize("objective", ["stca", "tdp1", "margin"])
def test_padding_after_a_short_sample_never_moves_its_k_star(objective):
    """A sample batched with a longer one is zero-padded; with ``lengths`` its k*, counts and loss are
    those of the sample alone (a trace still rising at its end has its local maximum at its own last step)."""
    cfg = se.NeuronConfig(t_in_ms=30.0)
    T_short, T_long = 30, 50
    t = torch.arange(T_long, dtype=torch.float64)
    short = 0.015 * t  # rising all along its own 30 steps (and on)
    long_ = 0.5 * torch.sin(t / 7.0) * (t > 0)
    v = torch.stack([short, long_], 1).unsqueeze(-1).repeat(1, 1, 2)  # [T, 2 samples, 2 neurons]
    s = torch.zeros_like(v)
    target = torch.tensor([[1, 0], [1, 0]]) if objective != "margin" else torch.tensor([0, 0])
    task = "detect" if objective != "margin" else "classify"
    loss, info = se.stca_loss(v, s, target, cfg, task=task, objective=objective, lengths=[T_short, T_long])
    alone, info_a = se.stca_loss(v[:T_short, :1], s[:T_short, :1], target[:1], cfg, task=task, objective=objective)
    assert torch.equal(info.k_star[0], info_a.k_star[0]) and torch.equal(info.sign[0], info_a.sign[0])
    assert float(info.per_sample[0]) == pytest.approx(float(info_a.per_sample[0]))
    if objective != "margin":
        assert int(info.k_star[0, 0]) == T_short - 1  # the short sample's own last step
    with pytest.raises(ConfigError, match="lengths"):
        se.stca_loss(v, s, target, cfg, task=task, objective=objective, lengths=[T_long + 1, T_long])


def test_tdp1_asked_for_n_spikes_per_event():
    """Fig. 4e's TDP1 variants: N_d = n × the event count (classify: n from the true class)."""
    v, s = _traces(40, [[([10, 11, 12], {25: 0.5})]])  # 3 spikes
    _, three = se.stca_loss(v, s, torch.tensor([[1]]), CFG, objective="tdp1", tdp1_spikes=3)
    assert three.desired.tolist() == [[3]] and three.sign.tolist() == [[0]]  # exactly right: no loss
    _, five = se.stca_loss(v, s, torch.tensor([[1]]), CFG, objective="tdp1", tdp1_spikes=5)
    assert five.desired.tolist() == [[5]] and five.sign.tolist() == [[1]] and five.k_star.tolist() == [[25]]
    _, two_events = se.stca_loss(v, s, torch.tensor([[2]]), CFG, objective="tdp1", tdp1_spikes=3)
    assert two_events.desired.tolist() == [[6]]
    _, stca = se.stca_loss(v, s, torch.tensor([[1]]), CFG, objective="stca", tdp1_spikes=3)
    assert stca.desired.tolist() == [[1]]  # STCA's clusters are not touched
    vc, sc = _traces(40, [[([5, 6], {}), ([30], {})]])
    _, cls = se.stca_loss(vc, sc, torch.tensor([0]), CFG, task="classify", objective="tdp1", tdp1_spikes=3)
    assert cls.desired.tolist() == [[3, 0]] and cls.sign.tolist() == [[1, -1]]
    with pytest.raises(ConfigError, match="tdp1_spikes"):
        se.stca_loss(v, s, torch.tensor([[1]]), CFG, objective="tdp1", tdp1_spikes=0)


def test_tdp1_counts_divide_the_spikes_by_n():
    from stca_engine.evaluation import output_counts

    s = torch.zeros(30, 1, 3)
    s[[1, 2, 3], 0, 0] = 1  # 3 spikes
    s[[1, 2, 3, 4, 5, 6, 7], 0, 1] = 1  # 7 spikes
    s[[4], 0, 2] = 1  # 1 spike
    assert output_counts(s, CFG, "tdp1").tolist() == [[3, 7, 1]]
    assert output_counts(s, CFG, "tdp1", tdp1_spikes=3).tolist() == [[1, 2, 0]]
