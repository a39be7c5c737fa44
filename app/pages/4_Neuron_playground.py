"""Neuron playground: one C-LIF neuron, its M, S, E, V traces (the paper's Fig. 1), spike clusters,
the k⁺/k⁻ point the STCA loss picks for a desired cluster count, and one STCA update at a time."""

import numpy as np
import streamlit as st
import torch
from components import explain, plot, setup_page, user_errors
from figures import neuron_traces
from figures.credit import neuron_credit, why_inputs_changed

import stca_engine as se

setup_page("Neuron playground", ":material/science:")
st.title("Neuron playground")
st.markdown(
    "One **C-LIF neuron** listening to a handful of input spike trains. Move the sliders and watch how its "
    "potential **V = M − S − E** reacts, which spikes group into **clusters**, and where STCA would push."
)


def make_input(n_in: int, n_steps: int, rate_hz: float, dt_ms: float, pattern: str, seed: int) -> np.ndarray:
    """``[T, n_in]`` 0/1 input: Poisson at ``rate_hz`` throughout, or inside three 60 ms bursts (1 Hz outside)."""
    rng = np.random.default_rng(seed)
    p = np.full(n_steps, rate_hz * dt_ms / 1000.0)
    if pattern == "bursts":
        p[:] = 1.0 * dt_ms / 1000.0
        width = max(1, int(round(60.0 / dt_ms)))
        for c in np.linspace(0.15, 0.8, 3) * n_steps + rng.integers(-width, width + 1, 3):
            a = int(np.clip(c, 0, n_steps - 1))
            p[a : a + width] = rate_hz * dt_ms / 1000.0
    return (rng.random((n_steps, n_in)) < np.clip(p, 0, 1)[:, None]).astype(np.float64)


def run_neuron(cfg, w: np.ndarray, x: np.ndarray, desired: int):
    """Forward with recorded traces, the detection loss for ``desired`` clusters, the weight gradient, and
    the neuron's per-step ∂L/∂V and ∂L/∂I as the engine's backward computed them (``credit=0``)."""
    net = se.SNN([x.shape[1], 1], cfg, dtype=torch.float64, device="cpu", backend="torch", seed=0)
    with torch.no_grad():
        net.weights[0].copy_(torch.as_tensor(w).view(1, -1))
    rec = net(torch.as_tensor(x).unsqueeze(1), record=True, credit=0)
    loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], torch.tensor([[desired]]), cfg, task="detect")
    if loss.requires_grad and float(loss.detach()) != 0.0:
        loss.backward()
        grad = net.weights[0].grad.detach().numpy().ravel().copy()
    else:
        grad = np.zeros_like(w)
    tr = {name: getattr(rec, name)[-1][:, 0, 0].detach().numpy().copy() for name in ("m", "s", "e")}
    credit = rec.credit[0]
    for name, a in (("dV", credit.dV), ("dI", credit.dI)):
        tr[name] = a[:, 0].numpy().copy() if a is not None else np.zeros(x.shape[0])
    tr["v"] = rec.voltages[-1][:, 0, 0].detach().numpy().copy()
    tr["o"] = rec.spikes[-1][:, 0, 0].detach().numpy().copy()
    return tr, float(loss.detach()), info, grad


controls, view = st.columns([1, 3], gap="large")
with controls:
    st.subheader("Neuron")
    tau_m = st.slider("τ_m membrane time constant (ms)", 5.0, 100.0, 30.0, 1.0, key="pg_tau_m")
    tau_s = st.slider(
        "τ_s synaptic time constant (ms)",
        1.0,
        50.0,
        7.5,
        0.5,
        key="pg_tau_s",
        help="Must be smaller than τ_m. The paper uses τ_s = τ_m / 4.",
    )
    theta = st.slider("ϑ threshold", 0.2, 3.0, 1.0, 0.05, key="pg_theta")
    t_in = st.slider(
        "T_in cluster interval (ms)",
        15.0,
        400.0,
        141.0,
        3.0,
        key="pg_t_in",
        help="Spikes closer than T_in belong to the same cluster.",
    )
    st.subheader("Input")
    pattern = st.radio(
        "pattern",
        ["bursts", "steady"],
        horizontal=True,
        key="pg_pattern",
        help="bursts: three short bursts of input; steady: Poisson spikes all the time",
    )
    n_in = st.slider("input afferents", 2, 60, 20, 1, key="pg_n_in")
    rate = st.slider("input rate (Hz)", 1.0, 200.0, 30.0, 1.0, key="pg_rate")
    weight = st.slider(
        "mean weight",
        -0.3,
        0.6,
        0.10,
        0.01,
        key="pg_weight",
        help="Each afferent's weight is drawn around this mean (±30 %).",
    )
    duration = st.slider("duration (ms)", 150, 1500, 900, 30, key="pg_duration")
    seed = st.number_input("seed", 0, 10_000, 0, 1, key="pg_seed")
    st.subheader("Learning")
    desired = st.slider("desired number of clusters N_d", 0, 6, 2, 1, key="pg_desired")
    lr = st.select_slider("learning rate", [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0], 0.05, key="pg_lr")

with view:
    with user_errors("simulating the neuron"):
        cfg = se.NeuronConfig(dt_ms=3.0, tau_m_ms=tau_m, tau_s_ms=tau_s, theta=theta, t_in_ms=t_in)
        T = max(2, int(round(duration / cfg.dt_ms)))
        x = make_input(n_in, T, rate, cfg.dt_ms, pattern, int(seed))
        signature = (n_in, rate, weight, int(seed), T, pattern)
        state = st.session_state.setdefault("playground", {})
        if state.get("signature") != signature:
            rng = np.random.default_rng(int(seed) + 1)
            state.clear()
            state.update(signature=signature, w=weight * (1 + 0.3 * rng.standard_normal(n_in)), updates=0)

        b1, b2, b3 = st.columns([3, 2, 3])
        do_update = b1.button("Apply one STCA update", icon=":material/play_arrow:", type="primary", key="pg_update")
        if b2.button("Reset weights", icon=":material/restart_alt:", key="pg_reset"):
            rng = np.random.default_rng(int(seed) + 1)
            state.update(w=weight * (1 + 0.3 * rng.standard_normal(n_in)), updates=0)

        tr, loss, info, grad = run_neuron(cfg, state["w"], x, desired)
        v_after, after = None, None
        if do_update:
            state["w"] = state["w"] - lr * grad
            state["updates"] += 1
            after = run_neuron(cfg, state["w"], x, desired)
            v_after = after[0]["v"]
        b3.caption(f"updates applied: **{state['updates']}** · |∇w| = {np.linalg.norm(grad):.3g}")

        k = int(info.k_star[0, 0])
        sign = int(info.sign[0, 0])
        n_clusters = int(info.n_clusters[0, 0])
        tr_plot = tr  # the traces the loss saw; V after an update is overlaid
        st.session_state["playground_view"] = dict(
            v=tr_plot["v"],
            v_after=v_after,
            k_star=k,
            sign=sign,
            n_clusters=n_clusters,
            loss=loss,
            updates=state["updates"],
        )

        c1, c2, c3, c4 = st.columns(4)
        if after is None:
            c1.metric("spikes", int(tr["o"].sum()))
            c2.metric("clusters N_o", n_clusters)
            c4.metric("loss", f"{loss:.3f}")
        else:  # numbers after the update, with the change it made
            n_after = int(after[2].n_clusters[0, 0])
            c1.metric("spikes", int(after[0]["o"].sum()), delta=int(after[0]["o"].sum() - tr["o"].sum()))
            c2.metric("clusters N_o", n_after, delta=n_after - n_clusters)
            c4.metric("loss", f"{after[1]:.3f}", delta=f"{after[1] - loss:+.3f}", delta_color="inverse")
        c3.metric("desired N_d", desired)
        if sign > 0:
            st.success(
                f"N_o = {n_clusters} < N_d = {desired}: the loss **ϑ − V[k⁺]** raises V at **k⁺** "
                f"(step {k}, t = {k * cfg.dt_ms / 1000:.3f} s) so that a new cluster appears there.",
                icon=":material/arrow_upward:",
            )
        elif sign < 0:
            st.warning(
                f"N_o = {n_clusters} > N_d = {desired}: the loss **V[k⁻] − ϑ** lowers V at **k⁻** "
                f"(step {k}, t = {k * cfg.dt_ms / 1000:.3f} s), the last spike of the weakest cluster.",
                icon=":material/arrow_downward:",
            )
        elif int(info.no_kplus[0, 0]):
            st.info(
                "The neuron needs one more cluster, but every time step is within T_in of a spike: "
                "there is no room for a new cluster, so there is no loss this time.",
                icon=":material/info:",
            )
        else:
            st.info(
                f"N_o = N_d = {desired}: nothing to learn; the update leaves the weights unchanged.",
                icon=":material/check_circle:",
            )

        inputs = [np.flatnonzero(x[:, j]) for j in range(n_in)]
        fig = neuron_traces(
            tr_plot["m"],
            tr_plot["s"],
            tr_plot["e"],
            tr_plot["v"],
            tr_plot["o"],
            cfg.theta,
            cfg.dt_ms,
            cfg.t_in_steps,
            input_spike_times=inputs,
            k_plus=k if sign > 0 else None,
            k_minus=k if sign < 0 else None,
            v_after=v_after,
        )
        plot(fig, key="pg_fig")

        st.subheader("What the update changes")
        why = why_inputs_changed(tr["dI"], grad, inputs, cfg.dt_ms, k, sign)
        st.markdown(why)
        st.session_state["playground_view"].update(why=why, dV=tr["dV"], grad=grad)
        fig = neuron_credit(
            tr["dV"], tr["dI"], grad, inputs, cfg.dt_ms, k_star=k, sign=sign, lr=float(lr), uirevision="pg_credit"
        )
        plot(fig, key="pg_credit")
        st.caption(
            "Top: the error ∂L/∂V the loss puts on this neuron, at k* and, through the reset trace, wherever V "
            "came close to ϑ. Bottom: each input spike, coloured by ∂L/∂I at its moment — red: that spike makes "
            "its weight grow, blue: shrink. Right: the sum per afferent, the change one update of this "
            + ("learning rate makes." if not do_update else "learning rate just made.")
        )

    e1, e2, e3 = st.columns(3)
    with e1:
        explain(
            "**M and S** are two leaky copies of the input current, one slow (τ_m) and one fast (τ_s). "
            "Their difference is the post-synaptic potential: a quick rise and a slow fall after each input spike."
        )
    with e2:
        explain(
            "**E** is the reset: every output spike adds ϑ to E, which decays with τ_m and pulls V back "
            "down. Spikes closer than **T_in** form one **spike cluster** (shaded): STCA counts clusters, "
            "not single spikes, because one sound event usually makes a short burst."
        )
    with e3:
        explain(
            "**k⁺** (▲): too few clusters → STCA finds the highest sub-threshold peak of V far enough "
            "(≥ T_in) from every spike and pushes it up to ϑ. **k⁻** (▼): too many → it pushes down the last "
            "spike of the weakest cluster. The gradient flows back through M, S and E to the weights."
        )
