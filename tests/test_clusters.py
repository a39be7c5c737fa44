"""Spike clusters, k⁺ and k⁻ on hand-made traces (every rule of SPEC §3) and vs a brute-force
per-trace implementation written here in plain Python."""

import random

import numpy as np
import pytest
import torch

from stca_engine.clusters import cluster_ids, cluster_spans, count_clusters, k_minus, k_plus
from stca_engine.errors import ConfigError


def _trace(T, spikes, base=0.0):
    v = torch.full((T,), base, dtype=torch.float64)
    s = torch.zeros(T)
    for t in spikes:
        s[t] = 1
        v[t] = 1.5
    return v, s


# ---------------------------------------------------------------- clusters
def test_cluster_interval_boundary():
    # ISI 2 < 3: same cluster; ISI 3 == T_in: new cluster
    s = torch.zeros(20)
    s[[1, 3, 6, 15]] = 1
    assert int(count_clusters(s, 3)) == 3
    assert cluster_spans([1, 3, 6, 15], 3) == [(1, 3, 2), (6, 6, 1), (15, 15, 1)]
    assert cluster_spans([15, 1, 6, 3], 3) == [(1, 3, 2), (6, 6, 1), (15, 15, 1)]  # order does not matter
    assert cluster_ids(s, 3)[[1, 3, 6, 15, 0]].tolist() == [0, 0, 1, 2, -1]
    assert int(count_clusters(s, 1)) == 4  # T_in = 1: every spike its own cluster
    assert int(count_clusters(s, 10)) == 1  # all gaps < 10
    assert cluster_spans([], 3) == []


def test_count_clusters_batched_shape_and_silent_neuron():
    s = torch.zeros(30, 2, 3)
    s[[0, 1, 2], 0, 0] = 1  # one cluster of 3
    s[[0, 10, 20], 1, 1] = 1  # three clusters (T_in 5)
    out = count_clusters(s, 5)
    assert out.dtype == torch.long and out.shape == (2, 3)
    assert out.tolist() == [[1, 0, 0], [0, 3, 0]]


def test_bad_t_in():
    with pytest.raises(ConfigError):
        count_clusters(torch.zeros(5), 0)
    with pytest.raises(ConfigError):
        cluster_spans([1, 2], 1.5)


# ---------------------------------------------------------------- k+
def test_k_plus_highest_local_max_outside_clusters():
    T, t_in = 40, 5
    v, s = _trace(T, [20], base=0.1)
    v[10], v[30], v[17] = 0.6, 0.8, 0.95  # 17 is within 5 steps of the spike at 20: excluded
    assert k_plus(v, s, t_in) == 30


def test_k_plus_distance_exactly_t_in_is_allowed():
    v, s = _trace(40, [20], base=0.1)
    v[15], v[25], v[5] = 0.9, 0.85, 0.3  # |15-20| = 5 = T_in allowed; 16 would not be
    assert k_plus(v, s, 5) == 15
    v[15], v[16] = 0.1, 0.9  # 16 is at distance 4: excluded
    assert k_plus(v, s, 5) == 25


def test_k_plus_ties_take_earliest():
    v, s = _trace(30, [], base=0.1)
    v[8], v[20] = 0.7, 0.7
    assert k_plus(v, s, 5) == 8


def test_k_plus_plateau_left_edge_is_the_local_max():
    v, s = _trace(30, [], base=0.1)
    v[10], v[11] = 0.7, 0.7  # V[9] < V[10] >= V[11]: 10 is a maximum, 11 is not (V[10] !< V[11])
    v[20] = 0.69
    assert k_plus(v, s, 5) == 10


def test_k_plus_first_and_last_step_compare_with_one_neighbour():
    v = torch.tensor([0.9, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)  # first step: 0.9 >= 0.2
    assert k_plus(v, torch.zeros(5), 3) == 0
    v = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.8], dtype=torch.float64)  # last step: 0.4 < 0.8
    assert k_plus(v, torch.zeros(5), 3) == 4
    v = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)  # flat: only the first step is a maximum
    assert k_plus(v, torch.zeros(3), 3) == 0


def test_k_plus_falls_back_to_highest_allowed_step_when_no_local_max():
    # Allowed steps 0..4 (spike at 10, T_in 6) rise monotonically into the excluded zone: no local max there.
    T = 16
    v = torch.linspace(0.1, 0.95, 10, dtype=torch.float64)
    v = torch.cat([v, torch.tensor([1.2, 0.9, 0.8, 0.7, 0.6, 0.5], dtype=torch.float64)])
    s = torch.zeros(T)
    s[10] = 1
    # allowed = 0..4 (distance >= 6 from the spike at 10), rising into the excluded zone: the highest = 4
    assert k_plus(v, s, 6) == 4


def test_k_plus_fallback_ties_take_earliest():
    # two allowed windows, each without a local max, both topping out at 0.4
    v = torch.tensor(
        [0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.2, 0.8, 0.6, 0.35, 0.3, 0.25, 0.2, 0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.8, 1.2],
        dtype=torch.float64,
    )
    s = (v >= 1.0).double()  # spikes at 6 and 20
    # T_in 3: allowed = 0..3 and 9..17; both windows have no local max (9 follows a higher step,
    # 17 precedes one) and both top out at 0.4 (steps 3 and 17)
    assert float(v[17]) == float(v[3]) == 0.4
    assert k_plus(v, s, 3) == 3
    # the maximum of the whole trace (below ϑ) is inside the excluded zone and must not be used
    assert float(v[4]) > 0.4


def test_k_plus_no_qualifying_step():
    v, s = _trace(12, [0, 4, 8], base=0.2)
    assert k_plus(v, s, 4) == -1  # every step is within 3 of a spike


def test_k_plus_tdp1_rule_ignores_clusters_and_spikes():
    v, s = _trace(30, [10], base=0.1)
    v[12], v[25] = 0.9, 0.5  # 12 is next to the spike: fine for TDP1, not for STCA (T_in 5)
    assert k_plus(v, s, None) == 12
    assert k_plus(v, s, 5) == 25
    assert k_plus(v, s, 5, cluster_mask=False) == 12


# ---------------------------------------------------------------- k-
def test_k_minus_fewest_spikes_last_spike():
    v, s = _trace(60, [2, 3, 4, 20, 22, 40, 41, 42, 43])  # clusters of 3, 2, 4 (T_in 5)
    assert k_minus(v, s, 5) == 22


def test_k_minus_tie_smaller_voltage_sum_then_earliest():
    v, s = _trace(60, [2, 4, 20, 22, 40, 42])  # three clusters of 2 spikes
    v[[2, 4]] = 1.3
    v[[20, 22]] = 1.1
    v[[40, 42]] = 1.2
    assert k_minus(v, s, 5) == 22
    v[[20, 22]] = 1.3
    v[[40, 42]] = 1.3
    assert k_minus(v, s, 5) == 4  # all sums equal: earliest cluster


def test_k_minus_no_spikes_and_tdp1_last_spike():
    v, s = _trace(30, [])
    assert k_minus(v, s, 5) == -1
    assert k_minus(v, s, None) == -1
    v, s = _trace(30, [3, 4, 5, 20])
    assert k_minus(v, s, 5) == 20
    assert k_minus(v, s, None) == 20
    v, s = _trace(30, [3, 20, 21, 22])
    assert k_minus(v, s, 5) == 3
    assert k_minus(v, s, None) == 22


# ---------------------------------------------------------------- batched vs brute force
def _brute_k_plus(v, spikes, t_in, theta):
    T = len(v)
    sp = [t for t in range(T) if spikes[t]]
    if t_in is None:  # TDP1
        allowed = [v[t] < theta for t in range(T)]
    else:
        allowed = [all(abs(t - u) >= t_in for u in sp) for t in range(T)]
    allowed = [a and v[t] > 0 for t, a in enumerate(allowed)]  # k⁺ only where input has raised V
    best = None
    for t in range(T):
        left = t == 0 or v[t - 1] < v[t]
        right = t == T - 1 or v[t] >= v[t + 1]
        if allowed[t] and left and right and v[t] < theta and (best is None or v[t] > v[best]):
            best = t
    fallback = best is None
    if best is None:
        for t in range(T):
            if allowed[t] and (best is None or v[t] > v[best]):
                best = t
    return (-1 if best is None else best), fallback and best is not None


def _brute_k_minus(v, spikes, t_in):
    sp = [t for t in range(len(v)) if spikes[t]]
    if t_in is None:  # TDP1
        return sp[-1] if sp else -1
    clusters = []
    for t in sp:
        if clusters and t - clusters[-1][-1] < t_in:
            clusters[-1].append(t)
        else:
            clusters.append([t])
    if not clusters:
        return -1
    best = min(range(len(clusters)), key=lambda c: (len(clusters[c]), sum(v[t] for t in clusters[c]), c))
    return clusters[best][-1]


@pytest.fixture(params=["numba", "torch"])
def impl(request, monkeypatch):
    import stca_engine.clusters as c

    monkeypatch.setattr(c, "USE_NUMBA", request.param == "numba")
    return request.param


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_selection_matches_brute_force(impl, dtype):
    from stca_engine.clusters import select

    rng = random.Random(0)
    T, B, N, t_in = 50, 6, 7, 6
    v = torch.zeros(T, B, N, dtype=torch.float64)
    for b in range(B):
        for n in range(N):
            # smooth-ish random trace with quantised values (makes ties likely) and occasional spikes
            x = 0.0
            for t in range(T):
                x = 0.7 * x + rng.choice([0.0, 0.1, 0.2, 0.3, 0.5])
                if rng.random() < 0.04 * n:
                    x = 1.0 + rng.choice([0.0, 0.25])
                v[t, b, n] = round(x, 1)
    v = v.to(dtype)
    s = (v >= 1.0).double()
    kp, km = k_plus(v, s, t_in), k_minus(v, s, t_in)
    n_sel, kp_sel, km_sel = select(v, s, t_in, 1.0)
    assert torch.equal(kp_sel, kp) and torch.equal(km_sel, km) and torch.equal(n_sel, count_clusters(s, t_in))
    n_tdp, kp_tdp, km_tdp = select(v, s, None, 1.0)
    assert torch.equal(n_tdp, s.sum(0).long())
    counts = count_clusters(s, t_in)
    used = {"fallback": 0, "none": 0}
    for b in range(B):
        for n in range(N):
            vv, ss = v[:, b, n].tolist(), s[:, b, n].tolist()
            want, fallback = _brute_k_plus(vv, ss, t_in, 1.0)
            assert int(kp[b, n]) == want
            used["fallback"] += fallback
            used["none"] += want == -1
            assert int(km[b, n]) == _brute_k_minus(vv, ss, t_in)
            assert int(kp_tdp[b, n]) == _brute_k_plus(vv, ss, None, 1.0)[0]
            assert int(km_tdp[b, n]) == _brute_k_minus(vv, ss, None)
            assert int(counts[b, n]) == len(cluster_spans(np.nonzero(ss)[0], t_in))
            assert k_plus(v[:, b, n], s[:, b, n], t_in) == int(kp[b, n])
    assert s.sum() > 20 and (kp >= 0).sum() > 10 and (km >= 0).sum() > 5
    assert used["fallback"] > 0 and used["none"] > 0, used


# ---------------------------------------------------------------- the silent fixed point
@pytest.mark.parametrize("cluster_mask", [True, False])
def test_flat_zero_voltage_gives_no_k_plus_not_step_0(impl, cluster_mask):
    """V ≡ 0 (a silent layer below): no step's V depends on a weight, so there is no k⁺ (it used to be
    step 0, the 'peak' of a flat trace, where the loss had no gradient and training sat still)."""
    from stca_engine.clusters import select

    T = 40
    t_in = 5 if cluster_mask else None
    zero = torch.zeros(T, dtype=torch.float64)
    assert k_plus(zero, torch.zeros(T), 5, cluster_mask=cluster_mask) == -1
    n_o, kp, km = select(torch.zeros(T, 2, 3), torch.zeros(T, 2, 3), t_in, 1.0)
    assert (kp == -1).all() and (km == -1).all() and (n_o == 0).all()
    # a flat start then inhibition only (V < 0): still no k⁺ (the flat start won before)
    v = torch.cat([torch.zeros(5, dtype=torch.float64), -torch.linspace(0.5, 0.1, T - 5, dtype=torch.float64)])
    assert k_plus(v, torch.zeros(T), 5, cluster_mask=cluster_mask) == -1
    # a flat start then a rise: the rise's peak, never the flat start, even when it is the only maximum
    v = torch.cat([torch.zeros(5, dtype=torch.float64), torch.linspace(0.1, 0.5, T - 5, dtype=torch.float64)])
    _, kp, _ = select(v.view(T, 1, 1), torch.zeros(T, 1, 1), t_in, 1.0)
    assert int(kp) == T - 1 == k_plus(v, torch.zeros(T), 5, cluster_mask=cluster_mask)


def test_silent_input_gives_no_kplus_and_no_loss_without_gradient(impl):
    """A neuron whose inputs never fire (V ≡ 0) or only inhibit it (V ≤ 0): its wanted cluster is counted
    as no_kplus with no loss, instead of a loss of ϑ at step 0 that no weight can change."""
    import stca_engine as se

    cfg = se.NeuronConfig()
    net = se.SNN([4, 2], cfg, dtype=torch.float64, device="cpu", seed=0)
    with torch.no_grad():
        net.weights[0][0].fill_(-0.3)  # neuron 0: inhibited by its inputs
        net.weights[0][1].fill_(0.1)  # neuron 1: excited, stays below ϑ
    x = torch.zeros(60, 2, 4, dtype=torch.float64)
    x[10, 0, :] = 1  # sample 0 has input; sample 1 is silent
    rec = net(x)
    target = torch.ones(2, 2, dtype=torch.long)
    loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], target, cfg, task="detect")
    assert info.no_kplus.tolist() == [[True, False], [True, True]]
    k = int(info.k_star[0, 1])
    v = rec.voltages[-1].detach()
    assert int(info.sign[0, 1]) == 1 and k > 10 and float(v[k, 0, 1]) > 0
    loss.backward()
    assert float(net.weights[0].grad[1].abs().sum()) > 0  # the excited neuron is trained
    assert float(loss.detach()) == pytest.approx((cfg.theta - float(v[k, 0, 1])) / 2)
