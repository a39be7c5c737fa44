"""Credit-assignment figures: where STCA sends the error, in time and across neurons (paper Eq. 11–18).

Pure functions from the engine's ``CreditMap`` arrays to Plotly figures. Colours follow what an SGD
step does with the error: where ∂L/∂V < 0 the update raises V (warm), where it is > 0 it lowers V
(cool); white is no error. Large maps are pooled in time (largest |value| per block, sign kept) so
the browser never gets more than ``MAX_CELLS`` cells; the hover still reads real numbers.

The Train page rebuilds these every epoch while training runs, so each figure is assembled from plain
dicts in one ``go.Figure`` call (Plotly validates every update call separately: ``add_shape`` and
``make_subplots`` made them several times slower).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .rasters import event_layout
from .style import (
    K_MINUS_COLOR,
    K_PLUS_COLOR,
    THETA_COLOR,
    class_color,
    finish,
    text,
)
from .traces import _np

MAX_CELLS = 160_000  # heatmap cells sent to the browser (time is pooled beyond this)
MAX_SVG_POINTS = 5_000  # more points than this are drawn with WebGL
MAX_WEIGHT_ROWS = 128  # ΔW heatmap: the neurons whose weights changed most, when a layer has more
# "raise V" warm, "lower V" cool (colour-blind-safe diverging scale, reversed so that negative is warm)
DIVERGING = "RdBu"


def pool_time(a: np.ndarray, max_cells: int = MAX_CELLS) -> tuple[np.ndarray, int]:
    """``[T, N]`` → ``[ceil(T / f), N]`` keeping, per block of ``f`` steps, the entry of largest |value|
    (with its sign), and ``f``: a short error pulse stays visible however long the sample is."""
    a = np.asarray(a, dtype=np.float32)
    T, N = a.shape
    f = max(1, int(np.ceil(T * max(N, 1) / max_cells)))
    if f == 1:
        return a, 1
    pad = (-T) % f
    b = np.concatenate([a, np.zeros((pad, N), a.dtype)]).reshape(-1, f, N)
    pick = np.abs(b).argmax(axis=1)
    return np.take_along_axis(b, pick[:, None, :], axis=1)[:, 0, :], f


def _symmetric(z: np.ndarray) -> float:
    m = float(np.nanmax(np.abs(z))) if z.size else 0.0
    return m if m > 0 else 1.0


def _k_points(k_star, sign) -> list[tuple[int, int, int]]:
    """``(neuron, step, sign)`` of every output neuron the loss acts on."""
    if k_star is None or sign is None:
        return []
    ks, ss = _np(k_star).astype(int).ravel(), _np(sign).astype(int).ravel()
    return [(i, int(k), int(sg)) for i, (k, sg) in enumerate(zip(ks, ss)) if sg != 0 and k >= 0]


def _k_marker_traces(points, x_of, y_of, names, yaxis: str, xaxis: str = "x") -> list[dict]:
    """One marker trace per kind (k⁺ ▲ green, k⁻ ▼ vermilion), each point named in its hover."""
    out = []
    for sg, kind, color, symbol in ((1, "k⁺", K_PLUS_COLOR, "triangle-up"), (-1, "k⁻", K_MINUS_COLOR, "triangle-down")):
        pts = [p for p in points if p[2] == sg]
        if not pts:
            continue
        out.append(
            dict(
                type="scatter",
                x=[x_of(p) for p in pts],
                y=[y_of(p) for p in pts],
                xaxis=xaxis,
                yaxis=yaxis,
                mode="markers",
                marker=dict(symbol=symbol, size=13, color=color, line=dict(color="white", width=1)),
                name=kind,
                text=[f"{kind} of {names[p[0]]}" for p in pts],
                hovertemplate="%{text}<br>t=%{x:.3f} s<extra></extra>",
                cliponaxis=False,
            )
        )
    return out


def _names(class_names: Sequence[str], n: int) -> list[str]:
    return [text(c) for c in list(class_names)[:n]] + [f"neuron {i}" for i in range(len(class_names), n)]


def credit_heatmap(
    dV,
    dt_ms: float,
    k_star=None,
    sign=None,
    class_names: Sequence[str] = (),
    events=None,
    spikes=None,
    title: str | None = None,
    unit_label: str = "hidden neuron",
    uirevision: str = "credit_heatmap",
) -> go.Figure:
    """Time × neuron map of one layer's ∂L/∂V for one sample, with the output neurons' k⁺/k⁻ as dotted
    lines, the true events as class-coloured bands, and (``spikes [T, N]``) the layer's own spikes as dots:
    the error spreads backwards from each k* and lands on the neurons that fired (or nearly fired) before it.
    """
    d = _np(dV).astype(np.float32)
    if d.ndim != 2:
        raise ValueError(f"dV must be [T, N], got shape {d.shape}")
    T, N = d.shape
    z, f = pool_time(d)
    t = (np.arange(z.shape[0]) * f + (f - 1) / 2.0) * dt_ms / 1000.0
    zmax = _symmetric(z)
    data = [
        dict(
            type="heatmap",
            x=t,
            y=np.arange(N),
            z=z.T,
            zmin=-zmax,
            zmax=zmax,
            colorscale=DIVERGING,
            colorbar=dict(
                title=dict(text="∂L/∂V", side="right"),
                thickness=12,
                tickvals=[-zmax, 0, zmax],
                ticktext=[f"{-zmax:.2g} raise V", "0", f"{zmax:.2g} lower V"],
            ),
            hovertemplate=f"t=%{{x:.3f}} s<br>{unit_label} %{{y}}<br>∂L/∂V = %{{z:.3g}}<extra></extra>",
            name="∂L/∂V",
            showlegend=False,
        )
    ]
    if spikes is not None:
        s = _np(spikes)
        if s.shape != d.shape:
            raise ValueError(f"spikes {s.shape} must have the shape of dV {d.shape}")
        st, su = np.nonzero(s > 0)
        # SVG for the usual few hundred spikes: every WebGL figure holds a browser GL context, and the page
        # redraws each epoch (Chromium keeps only ~16 contexts alive)
        data.append(
            dict(
                type="scattergl" if st.size > MAX_SVG_POINTS else "scatter",
                x=st * dt_ms / 1000.0,
                y=su,
                mode="markers",
                marker=dict(symbol="circle-open", size=4, color="#222222", opacity=0.55),
                name="spike",
                hovertemplate=f"spike<br>t=%{{x:.3f}} s<br>{unit_label} %{{y}}<extra></extra>",
            )
        )
    points = _k_points(k_star, sign)
    names = _names(class_names, max([p[0] for p in points], default=-1) + 1)
    # the k* markers sit just above the map on an overlaid 0..1 axis (y2), so they never hide a row
    data += _k_marker_traces(points, lambda p: p[1] * dt_ms / 1000.0, lambda p: 1.04, names, yaxis="y2")
    shapes, notes = event_layout(events, dt_ms, class_names)
    for _, k, sg in points:
        shapes.append(
            dict(
                type="line",
                xref="x",
                yref="y domain",
                x0=k * dt_ms / 1000.0,
                x1=k * dt_ms / 1000.0,
                y0=0,
                y1=1,
                line=dict(color=K_PLUS_COLOR if sg > 0 else K_MINUS_COLOR, width=2, dash="dot"),
            )
        )
    fig = go.Figure(
        data=data,
        layout=dict(
            shapes=shapes,
            annotations=notes,
            xaxis=dict(title=dict(text="time (s)"), range=[0, T * dt_ms / 1000.0]),
            yaxis=dict(title=dict(text=unit_label), range=[-0.5, N - 0.5]),
            yaxis2=dict(overlaying="y", range=[0, 1.12], visible=False, fixedrange=True),
        ),
    )
    pooled = f" (max |∂L/∂V| per {f * dt_ms:g} ms)" if f > 1 else ""
    height = int(min(620, max(340, 180 + 2.2 * N)))
    fig = finish(fig, uirevision=uirevision, title=(title + pooled) if title else None, height=height)
    # the legend (spike ○, k⁺, k⁻) goes under the time axis: on top it would cover the event names
    return fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0.0))


def output_credit(
    voltages,
    dV,
    theta: float,
    dt_ms: float,
    class_names: Sequence[str] = (),
    k_star=None,
    sign=None,
    uirevision: str = "output_credit",
) -> go.Figure:
    """Output neurons' voltage V (top, with ϑ) and their ∂L/∂V over time (bottom) on one time axis: the
    error enters at k* and flows back along the reset trace E wherever V came near ϑ."""
    v = _np(voltages).astype(np.float32)
    d = _np(dV).astype(np.float32)
    if v.ndim != 2 or v.shape != d.shape:
        raise ValueError(f"voltages {v.shape} and dV {d.shape} must both be [T, N]")
    T, N = v.shape
    t = np.arange(T) * dt_ms / 1000.0
    names = _names(class_names, N)
    kind = "scattergl" if T * N > MAX_SVG_POINTS * 4 else "scatter"
    data = []
    for i in range(N):
        for yaxis, y, what, fmt in (("y", v[:, i], "V", ".3f"), ("y2", d[:, i], "∂L/∂V", ".3g")):
            data.append(
                dict(
                    type=kind,
                    x=t,
                    y=y,
                    xaxis="x" if yaxis == "y" else "x2",
                    yaxis=yaxis,
                    mode="lines",
                    line=dict(color=class_color(i), width=1.6),
                    name=names[i],
                    legendgroup=f"n{i}",
                    showlegend=yaxis == "y",
                    hovertemplate=f"{names[i]}<br>t=%{{x:.3f}} s<br>{what}=%{{y:{fmt}}}<extra></extra>",
                )
            )
    points = _k_points(k_star, sign)
    data += _k_marker_traces(points, lambda p: p[1] * dt_ms / 1000.0, lambda p: float(v[p[1], p[0]]), names, "y")
    theta_line = dict(
        type="line",
        xref="x domain",
        yref="y",
        x0=0,
        x1=1,
        y0=float(theta),
        y1=float(theta),
        line=dict(color=THETA_COLOR, dash="dash", width=1.2),
    )
    fig = go.Figure(
        data=data,
        layout=dict(
            shapes=[theta_line],
            annotations=[
                dict(
                    text="∂L/∂V (below 0: the update raises V there)",
                    x=0.5,
                    y=0.45,
                    xref="paper",
                    yref="paper",
                    xanchor="center",
                    yanchor="bottom",
                    showarrow=False,
                )
            ],
            xaxis=dict(anchor="y", matches="x2", showticklabels=False, domain=[0, 1]),
            xaxis2=dict(anchor="y2", title=dict(text="time (s)"), domain=[0, 1]),
            yaxis=dict(domain=[0.55, 1.0], title=dict(text="output voltage V")),
            yaxis2=dict(domain=[0.0, 0.42], title=dict(text="∂L/∂V")),
        ),
    )
    return finish(fig, uirevision=uirevision, height=520)


def _unique(labels: list[str]) -> list[str]:
    """Category labels must differ (equal ones would be merged into one row): number repeats."""
    if len(set(labels)) == len(labels):
        return labels
    return [f"{a} [{j}]" for j, a in enumerate(labels)]


def weight_change_heatmap(
    dW,
    afferent_names: Sequence[str] | None = None,
    neuron_names: Sequence[str] | None = None,
    title: str | None = None,
    max_rows: int = MAX_WEIGHT_ROWS,
    uirevision: str = "weight_change",
    value_label: str = "ΔW",
) -> go.Figure:
    """``[n_out, n_in]`` weight change as a heatmap, inputs along x (named by afferent: frequency band and
    loudness level for sound) and receiving neurons along y; layers wider than ``max_rows`` show the
    neurons whose weights changed most (their indices kept on the axis)."""
    w = _np(dW).astype(np.float32)
    if w.ndim != 2:
        raise ValueError(f"dW must be [n_out, n_in], got shape {w.shape}")
    n_out, n_in = w.shape
    rows = np.arange(n_out)
    if n_out > max_rows:
        rows = np.sort(np.argsort(-np.linalg.norm(w, axis=1), kind="stable")[:max_rows])
        w = w[rows]
    inputs = [text(a) for a in afferent_names] if afferent_names is not None else []
    if len(inputs) != n_in:
        inputs = [f"afferent {j}" for j in range(n_in)]
    neurons = [text(n) for n in neuron_names] if neuron_names is not None else []
    ylab = [neurons[r] if r < len(neurons) else f"neuron {r}" for r in rows]
    inputs, ylab = _unique(inputs), _unique(ylab)
    zmax = _symmetric(w)
    x_ticks = np.unique(np.linspace(0, n_in - 1, min(n_in, 12)).round().astype(int)) if n_in else []
    y_ticks = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), 12)).round().astype(int)) if len(rows) else []
    fig = go.Figure(
        data=[
            dict(
                type="heatmap",
                z=w,
                x=inputs,  # category axes: the hover names afferent and neuron without a string per cell
                y=ylab,
                zmin=-zmax,
                zmax=zmax,
                colorscale=DIVERGING,
                reversescale=True,
                colorbar=dict(title=dict(text=value_label, side="right"), thickness=12),
                hovertemplate="%{x}<br>→ %{y}<br>" + value_label + " = %{z:.3g}<extra></extra>",
            )
        ],
        layout=dict(
            xaxis=dict(
                title=dict(text="input afferent"),
                type="category",
                tickvals=[inputs[j] for j in x_ticks],
                ticktext=[inputs[j] for j in x_ticks],
                tickangle=-35,
            ),
            yaxis=dict(
                title=dict(text="receiving neuron"),
                type="category",
                tickvals=[ylab[i] for i in y_ticks],
                ticktext=[ylab[i] for i in y_ticks],
            ),
        ),
    )
    shown = f" · the {len(rows)} of {n_out} neurons that changed most" if n_out > len(rows) else ""
    height = int(min(620, max(320, 200 + 3 * len(rows))))
    return finish(fig, uirevision=uirevision, title=(title + shown) if title else None, height=height, legend=False)


def neuron_credit(
    dV,
    dI,
    dW,
    input_spike_times,
    dt_ms: float,
    k_star: int | None = None,
    sign: int = 0,
    lr: float | None = None,
    uirevision: str = "neuron_credit",
) -> go.Figure:
    """One neuron's STCA update, read left to right: its ∂L/∂V over time (top), the input raster under it
    with each spike coloured by ∂L/∂I at its step (the amount that spike adds to its weight's gradient,
    since ∂L/∂w_j = V0 · Σₖ ∂L/∂I[k] · x_j[k]), and (right, sharing the afferent axis) each input weight's
    ∂L/∂w, or the change −lr·∂L/∂w when ``lr`` is given."""
    from .traces import _input_lists

    d = _np(dV).astype(np.float64).ravel()
    di = _np(dI).astype(np.float64).ravel()
    g = _np(dW).astype(np.float64).ravel()
    inputs = _input_lists(input_spike_times) or []
    if len(inputs) != g.size:
        raise ValueError(f"{len(inputs)} input spike trains but {g.size} weights")
    T = d.size
    t = np.arange(T) * dt_ms / 1000.0
    fig = make_subplots(
        rows=2,
        cols=2,
        shared_xaxes="columns",
        shared_yaxes="rows",
        column_widths=[0.74, 0.26],
        row_heights=[0.4, 0.6],
        horizontal_spacing=0.04,
        vertical_spacing=0.1,
        specs=[[{}, None], [{}, {}]],
        subplot_titles=[
            "<b>∂L/∂V of the neuron</b>",
            "<b>input spikes</b> (colour: ∂L/∂I when each arrived)",
            "<b>Δw = −lr·∂L/∂w</b>" if lr is not None else "<b>∂L/∂w</b>",
        ],
    )
    fig.add_trace(
        go.Scatter(
            x=t,
            y=d,
            mode="lines",
            line=dict(color=THETA_COLOR, width=2),
            fill="tozeroy",
            fillcolor="rgba(120,120,120,0.18)",
            name="∂L/∂V",
            showlegend=False,
            hovertemplate="t=%{x:.3f} s<br>∂L/∂V=%{y:.3g}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    if k_star is not None and k_star >= 0 and sign:
        color = K_PLUS_COLOR if sign > 0 else K_MINUS_COLOR
        for r in (1, 2):
            fig.add_vline(x=k_star * dt_ms / 1000.0, line=dict(color=color, width=2, dash="dot"), row=r, col=1)
    xs = np.concatenate(inputs) if inputs else np.zeros(0, np.int64)
    ys = np.concatenate([np.full(a.size, j) for j, a in enumerate(inputs)]) if inputs else np.zeros(0)
    cmax = _symmetric(di)
    fig.add_trace(
        go.Scatter(
            x=xs * dt_ms / 1000.0,
            y=ys,
            mode="markers",
            marker=dict(
                symbol="line-ns-open",
                size=10,
                color=di[np.clip(xs, 0, max(T - 1, 0))] if T else [],
                colorscale=DIVERGING,
                cmin=-cmax,
                cmax=cmax,
                line=dict(width=2.5),
            ),
            showlegend=False,
            name="input spike",
            customdata=di[np.clip(xs, 0, max(T - 1, 0))] if T else [],
            hovertemplate="afferent %{y}<br>t=%{x:.3f} s<br>∂L/∂I = %{customdata:.3g}<extra></extra>",
        ),
        row=2,
        col=1,
    )
    shown = -float(lr) * g if lr is not None else g
    fig.add_trace(
        go.Bar(
            x=shown,
            y=np.arange(g.size),
            orientation="h",
            marker=dict(color=["#B2182B" if v > 0 else "#2166AC" for v in shown]),
            showlegend=False,
            name="Δw" if lr is not None else "∂L/∂w",
            hovertemplate="afferent %{y}<br>%{x:.3g}<extra></extra>",
        ),
        row=2,
        col=2,
    )
    fig.update_yaxes(title_text="∂L/∂V", row=1, col=1)
    fig.update_yaxes(title_text="afferent", range=[-0.7, max(g.size, 1) - 0.3], row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    fig.update_xaxes(title_text="Δw" if lr is not None else "∂L/∂w", row=2, col=2)
    return finish(fig, uirevision=uirevision, height=520, legend=False)


def why_inputs_changed(dI, dW, input_spike_times, dt_ms: float, k_star: int, sign: int, top: int = 3) -> str:
    """One plain sentence on why the update changed the weights it changed (for the playground).

    ∂L/∂w_j = V0 · Σₖ ∂L/∂I[k] · x_j[k]: a weight moves by the error present at the moments its afferent
    spiked; that error is only non-zero in a window before k*, so only inputs that fired there change."""
    from .traces import _input_lists

    g = _np(dW).astype(np.float64).ravel()
    if not sign or k_star is None or k_star < 0 or not np.any(g):
        return "No loss for this neuron, so the update leaves every weight as it is."
    d = np.abs(_np(dI).astype(np.float64).ravel())
    live = np.flatnonzero(d > 0.05 * d.max()) if d.max() > 0 else np.array([k_star])
    start, end = int(live.min()), int(live.max())
    inputs = _input_lists(input_spike_times) or []
    order = [j for j in np.argsort(-np.abs(g), kind="stable")[:top] if g[j] != 0]
    fired = sum(1 for a in inputs if np.any((a >= start) & (a <= end)))
    verb = "raises" if sign > 0 else "lowers"
    point = "k⁺" if sign > 0 else "k⁻"
    names = ", ".join(str(int(j)) for j in order)
    return (
        f"The update {verb} V at {point} (t = {k_star * dt_ms / 1000:.3f} s), and the error behind that reaches "
        f"back only to t = {start * dt_ms / 1000:.3f} s: afferents {names} changed most because they spiked in "
        f"that window, just before {point} ({fired} of {len(inputs)} afferents spiked there); inputs that were "
        f"silent then keep their weights."
    )
