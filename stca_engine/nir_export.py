"""Export a trained network to NIR, the Neuromorphic Intermediate Representation (``nir`` package),
and a small discrete-time interpreter of the NIR nodes the export uses (to check the export).

NIR describes neurons in continuous time; the engine runs the C-LIF neuron on a grid of ``dt``
(SPEC §2): ``I = V0·W·x``, ``M = βm M + I``, ``S = βs S + I``, ``E = βm E + ϑ O_prev``,
``V = M − S − E``, ``O = [V ≥ ϑ]``. Each C-LIF layer ``l`` becomes this sub-graph (docs/NIR.md has
the derivation and every place where the semantics differ):

    (spikes in) → l.weights  Linear  W' = V0 · (τm − τs) · W        (τ in seconds)
                → l.psp      CubaLI  tau_syn = τs, tau_mem = τm, r = 1, v_leak = 0, w_in = 1
                → l.spike    Threshold  ϑ                             → (spikes out)
    l.spike → l.reset_delay  Delay  dt
            → l.reset_scale  Scale  −ϑ · τm
            → l.reset        LI     tau = τm, r = 1, v_leak = 0      → l.spike

The CubaLI's ``v`` is ``M − S`` (the dual-exponential PSP) and the LI's ``v`` is ``−E`` (the
subtractive reset decaying with τm); NIR sums the two edges into ``l.spike``, so the threshold sees
``V = M − S − E``. A margin (non-spiking) readout is exported as ``weights → psp → output``.

``simulate`` runs such a graph on a spike raster by integrating every linear node exactly between
grid points, with each input spike a unit-area impulse at its step's time; sampled at the grid, that
is exactly the engine's recursion, so spikes agree with the engine except where ``V`` lands exactly
on ϑ (NIR's Threshold fires on ``v > ϑ``, the engine on ``V ≥ ϑ``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .errors import ConfigError

FORMAT_VERSION = 1


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - nir is in requirements.txt
        raise ConfigError(
            "the 'nir' package is not installed (pip install -r requirements.txt)", "stca export"
        ) from exc
    return nir


def to_nir(net, neuron_cfg, class_names=None, encoder_settings=None):
    """The network as a ``nir.NIRGraph`` (node names and mapping in the module docstring)."""
    nir = _nir()
    weights = [w.detach().to("cpu").double().numpy() for w in net.weights]
    out_spiking = bool(getattr(net, "output_spiking", True))
    tm = neuron_cfg.tau_m_ms / 1000.0
    ts = neuron_cfg.tau_s_ms / 1000.0
    dt = neuron_cfg.dt_ms / 1000.0
    theta = float(neuron_cfg.theta)
    scale = float(neuron_cfg.v0) * (tm - ts)
    nodes = {"input": nir.Input(input_type={"input": np.array([weights[0].shape[1]])})}
    edges = []
    prev = "input"
    for li, W in enumerate(weights):
        n = W.shape[0]
        ones = np.ones(n)
        name = f"layer{li}"
        spiking = out_spiking or li < len(weights) - 1
        nodes[f"{name}.weights"] = nir.Linear(weight=W * scale)
        nodes[f"{name}.psp"] = nir.CubaLI(
            tau_syn=ts * ones, tau_mem=tm * ones, r=ones.copy(), v_leak=np.zeros(n), w_in=ones.copy()
        )
        edges += [(prev, f"{name}.weights"), (f"{name}.weights", f"{name}.psp")]
        if spiking:
            nodes[f"{name}.spike"] = nir.Threshold(threshold=theta * ones)
            nodes[f"{name}.reset_delay"] = nir.Delay(delay=dt * ones)
            nodes[f"{name}.reset_scale"] = nir.Scale(scale=-theta * tm * ones)
            nodes[f"{name}.reset"] = nir.LI(tau=tm * ones, r=ones.copy(), v_leak=np.zeros(n))
            edges += [
                (f"{name}.psp", f"{name}.spike"),
                (f"{name}.spike", f"{name}.reset_delay"),
                (f"{name}.reset_delay", f"{name}.reset_scale"),
                (f"{name}.reset_scale", f"{name}.reset"),
                (f"{name}.reset", f"{name}.spike"),
            ]
            prev = f"{name}.spike"
        else:
            prev = f"{name}.psp"
    nodes["output"] = nir.Output(output_type={"output": np.array([weights[-1].shape[0]])})
    edges.append((prev, "output"))
    import json

    meta = {
        "producer": "stca_engine",
        "format_version": FORMAT_VERSION,
        "neuron": "C-LIF (docs/NIR.md)",
        "dt_s": dt,
        "neuron_cfg": json.dumps(neuron_cfg.to_dict()),
        "output_spiking": int(out_spiking),
        "class_names": json.dumps(list(class_names) if class_names else []),
        "encoder_settings": json.dumps(encoder_settings or {}, default=str),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def nir_bytes(graph) -> bytes:
    """The graph as the bytes of a ``.nir`` file (HDF5, gzip-compressed) written by ``nir.write``."""
    nir = _nir()
    buf = io.BytesIO()
    nir.write(buf, graph)
    return buf.getvalue()


def export_nir(model_dir, out) -> Path:
    """Load a saved model and write it as a NIR file at ``out`` (atomically); returns ``out``."""
    from .atomic import write_atomic
    from .checkpoint import load_model

    net, info = load_model(model_dir, device="cpu")
    graph = to_nir(net, info.neuron_cfg, info.class_names, info.encoder_settings)
    return write_atomic(out, nir_bytes(graph))


# ------------------------------------------------------------------------------------------------
# a discrete-time interpreter of the NIR nodes above
# ------------------------------------------------------------------------------------------------
def _topological(nodes, edges):
    """Evaluation order within one step; edges out of Delay nodes carry last steps' values, so they
    do not constrain the order (a cycle without a Delay cannot be run step by step)."""
    deps = {n: [a for a, b in edges if b == n and type(nodes[a]).__name__ != "Delay"] for n in nodes}
    order, state = [], {}

    def visit(n, path=()):
        if state.get(n) == "done":
            return
        if state.get(n) == "active":
            raise ConfigError(f"the NIR graph has a cycle without a Delay node through {n!r}", "nir")
        state[n] = "active"
        for d in deps[n]:
            visit(d)
        state[n] = "done"
        order.append(n)

    for n in nodes:
        visit(n)
    return order


def simulate(graph, x: np.ndarray, dt_s: float, record: tuple[str, ...] = ()) -> dict:
    """Run a NIR graph on a 0/1 input raster ``x [T, n_in]`` on a grid of ``dt_s`` seconds.

    Conventions (what makes a continuous-time graph a discrete one): an input spike at step ``k`` is a
    unit-area impulse at ``t = k·dt``; LI and CubaLI nodes integrate their ODEs exactly between grid
    points and take the impulses arriving at ``t`` into their state at ``t`` (right-continuous); a
    Threshold emits a unit impulse at step ``k`` when its summed input sampled at ``k·dt`` is
    ``> threshold``; a Delay shifts by ``round(delay / dt)`` steps (at least 1). Supported nodes:
    Input, Output, Linear, Affine, Scale, Delay, LI, CubaLI, Threshold.

    Returns ``{"output": [T, n_out]}`` plus ``{name: [T, n]}`` for each node named in ``record``.
    """
    nodes, edges = graph.nodes, graph.edges
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[0]
    order = _topological(nodes, edges)
    preds = {n: [a for a, b in edges if b == n] for n in nodes}
    out = {}  # node -> value at the current step
    state = {}
    delay_buf = {}
    rec = {name: [] for name in ("output", *record)}
    for n, node in nodes.items():
        kind = type(node).__name__
        if kind == "Delay":
            d = np.asarray(node.delay, dtype=np.float64).ravel()
            steps = max(1, int(round(float(d.max()) / dt_s)))
            if not np.allclose(d, d.max()):
                raise ConfigError(f"node {n!r}: per-neuron delays are not supported", "nir")
            size = d.size
            delay_buf[n] = [np.zeros(size) for _ in range(steps)]
    for k in range(T):
        for n in delay_buf:  # what entered each Delay `steps` steps ago leaves it now
            out[n] = delay_buf[n][0]
        for n in order:
            node = nodes[n]
            kind = type(node).__name__
            if kind == "Delay":
                continue
            if kind == "Input":
                out[n] = x[k]
                continue
            inp = None
            for p in preds[n]:
                inp = out[p] if inp is None else inp + out[p]
            if kind == "Output":
                out[n] = inp
            elif kind == "Linear":
                out[n] = node.weight @ inp
            elif kind == "Affine":
                out[n] = node.weight @ inp + node.bias
            elif kind == "Scale":
                out[n] = node.scale * inp
            elif kind == "Threshold":
                out[n] = (inp > node.threshold).astype(np.float64)
            elif kind == "LI":
                beta = np.exp(-dt_s / node.tau)
                v = state.get(n, np.zeros_like(node.tau, dtype=np.float64))
                # between impulses: v relaxes to v_leak; an impulse of area a adds r·a/τ
                v = node.v_leak + beta * (v - node.v_leak) + node.r * inp / node.tau
                state[n] = v
                out[n] = v
            elif kind == "CubaLI":
                tm, ts = node.tau_mem, node.tau_syn
                bm, bs = np.exp(-dt_s / tm), np.exp(-dt_s / ts)
                i_syn, v = state.get(n, (np.zeros_like(tm, dtype=np.float64), np.zeros_like(tm, dtype=np.float64)))
                # exact over one step of the current decaying from i_syn: ∫ e^{-(dt-s)/τm} e^{-s/τs} ds / τm
                v = node.v_leak + bm * (v - node.v_leak) + node.r * i_syn * ts * (bm - bs) / (tm - ts)
                i_syn = bs * i_syn + node.w_in * inp / ts
                state[n] = (i_syn, v)
                out[n] = v
            else:
                raise ConfigError(f"node {n!r}: NIR node type {kind} is not supported by this interpreter", "nir")
        for n in delay_buf:  # the Delay's input at this step leaves it `steps` steps later
            src = sum(out[p] for p in preds[n])
            delay_buf[n] = delay_buf[n][1:] + [np.asarray(src, dtype=np.float64)]
        for name in rec:
            rec[name].append(np.array(out[name], dtype=np.float64))
    return {name: np.stack(v) if v else np.zeros((0,)) for name, v in rec.items()}
