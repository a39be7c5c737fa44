"""Stateful kernels: every backend starts from a given state (M, S, E, last spike) and returns the final
one, so a run split into pieces equals one run, spike for spike (issue #12 item 1)."""

from __future__ import annotations

import pytest
import torch
from conftest import in_triton_interpreter

import stca_engine as se
from stca_engine.kernels import LayerState


def _net(backend, dtype=torch.float64, output_spiking=True, sizes=(30, 24, 5)):
    net = se.SNN(list(sizes), se.NeuronConfig(), dtype=dtype, seed=4, backend=backend, output_spiking=output_spiking)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for W, sd in zip(net.weights, (0.45, 0.6)):
            W.copy_(torch.randn(W.shape, generator=g, dtype=torch.float64) * sd)
    return net


def _x(T=400, B=3, n=30, density=0.05, seed=2):
    return (torch.rand(T, B, n, generator=torch.Generator().manual_seed(seed)) < density).double()


def _pieces(net, x, cuts):
    state, vs, ss = None, [], []
    for a, b in zip([0, *cuts], [*cuts, x.shape[0]]):
        rec = net(x[a:b], state=state)
        state = rec.state
        vs.append([v.detach() for v in rec.voltages])
        ss.append([s.detach() for s in rec.spikes])
    return (
        [torch.cat([p[i] for p in vs]) for i in range(len(vs[0]))],
        [torch.cat([p[i] for p in ss]) for i in range(len(ss[0]))],
        state,
    )


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("output_spiking", [True, False])
def test_a_run_split_into_pieces_equals_one_run(backend, dtype, output_spiking):
    net = _net(backend, dtype, output_spiking)
    x = _x().to(dtype)
    with torch.no_grad():
        one = net(x, state=[LayerState.zeros(3, n, dtype) for n in net.sizes[1:]])
        V, S, last = _pieces(net, x, [1, 57, 58, 200, 399])
    for a, b in zip(one.spikes, S):
        assert torch.equal(a, b)  # spike for spike
    assert float(one.spikes[0].sum()) > 50 and (not output_spiking or float(one.spikes[-1].sum()) > 5)
    # numba sums each step's input current input by input whatever the piece: bit-equal voltages; the
    # plain-torch path uses one matmul per piece, whose last-bit rounding may depend on the piece's length
    same = torch.equal if backend == "numba" else (lambda a, b: torch.allclose(a, b, rtol=1e-5, atol=1e-6))
    for a, b in zip(one.voltages, V):
        assert same(a, b)
    for a, b in zip(one.state, last):
        for k in "mseo":
            assert same(getattr(a, k), getattr(b, k))


def test_without_a_state_a_run_starts_from_zeros_and_reports_its_final_state():
    net = _net("numba")
    x = _x()
    with torch.no_grad():
        plain = net(x)
        zero = net(x, state=[LayerState.zeros(3, n, torch.float64) for n in net.sizes[1:]])
        rec = net(x, record=True)
    for a, b in zip(plain.spikes, zero.spikes):
        assert torch.equal(a, b)
    for i, st in enumerate(rec.state):  # the final state is the last step of the recorded traces
        assert torch.equal(st.m, rec.m[i][-1]) and torch.equal(st.e, rec.e[i][-1])
        assert torch.equal(st.o, rec.spikes[i][-1])


def test_a_given_state_changes_what_follows_and_is_not_modified():
    net = _net("numba")
    x = _x(T=60)
    with torch.no_grad():
        first = net(_x(T=200, seed=7))
        held = [LayerState(*(getattr(s, k).clone() for k in "mseo")) for s in first.state]
        after = net(x, state=first.state)
        fresh = net(x)
    assert not torch.equal(after.voltages[0], fresh.voltages[0])
    for a, b in zip(first.state, held):
        assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in "mseo")


def test_bad_states_are_config_errors():
    net = _net("numba")
    x = _x(T=10)
    with pytest.raises(se.ConfigError, match="state has 1 layers"):
        net(x, state=[LayerState.zeros(3, 24)])
    with pytest.raises(se.ConfigError, match=r"state of layer 2: state.m must be \[3, 5\]"):
        net(x, state=[LayerState.zeros(3, 24), LayerState.zeros(2, 5)])


def test_training_through_a_given_state_still_matches_autograd_for_the_weights():
    """The backward is unchanged by a start state (no gradient flows into it): the weight gradients of a
    piece started from a state equal those of the plain loop started from the same state."""
    from _plain_clif import SurrogateSpike

    net = _net("numba")
    with torch.no_grad():
        st = net(_x(T=150, seed=11)).state
    x = _x(T=80, seed=12)
    rec = net(x, state=st)
    loss = rec.voltages[-1][40:].sum() + rec.voltages[0][10:30].sum()
    loss.backward()
    cfg = net.cfg
    ws = [w.detach().clone().requires_grad_(True) for w in net.weights]
    h, vs = x, []
    for W, s0 in zip(ws, st):
        m, s, e, o = (getattr(s0, k).clone() for k in "mseo")
        V = []
        O = []
        for k in range(h.shape[0]):
            cur = cfg.v0 * (h[k] @ W.t())
            m = cfg.beta_m * m + cur
            s = cfg.beta_s * s + cur
            e = cfg.beta_m * e + cfg.theta * o
            v = m - s - e
            o = SurrogateSpike.apply(v, cfg.theta, cfg.alpha)
            V.append(v)
            O.append(o)
        vs.append(torch.stack(V))
        h = torch.stack(O)
    (vs[-1][40:].sum() + vs[0][10:30].sum()).backward()
    for w, r in zip(net.weights, ws):
        assert torch.allclose(w.grad, r.grad, rtol=1e-10, atol=1e-12)


_TRITON_STATE = r"""
import json, torch
import stca_engine as se
out = {}
net = se.SNN([30, 24, 5], se.NeuronConfig(), dtype=torch.float64, seed=4, backend="cuda")
g = torch.Generator().manual_seed(9)
with torch.no_grad():
    for W, sd in zip(net.weights, (0.45, 0.6)):
        W.copy_(torch.randn(W.shape, generator=g, dtype=torch.float64) * sd)
x = (torch.rand(300, 2, 30, generator=torch.Generator().manual_seed(2)) < 0.05).double()
with torch.no_grad():
    one = net(x)
    state, parts = None, []
    for a, b in ((0, 1), (1, 120), (120, 300)):
        rec = net(x[a:b], state=state)
        state, parts = rec.state, parts + [rec.spikes]
out["equal"] = all(torch.equal(one.spikes[i], torch.cat([p[i] for p in parts])) for i in range(2))
out["n_spikes"] = float(one.spikes[0].sum())
out["final_equal"] = all(torch.equal(getattr(a, k), getattr(b, k)) for a, b in zip(one.state, state) for k in "mseo")
print(json.dumps(out))
"""


def test_triton_kernel_carries_state_in_interpreter():
    out = in_triton_interpreter(_TRITON_STATE)
    assert out["equal"] and out["final_equal"] and out["n_spikes"] > 20, out
