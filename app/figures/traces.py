"""Voltage-trace figures: the output layer during training (one row per output neuron) and the
single neuron of the playground (the paper's Fig. 1). Pure functions: numpy in, Plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import EVENT_COLOR, K_MINUS_COLOR, K_PLUS_COLOR, PALETTE, THETA_COLOR, class_color, finish, rgba, text


def _np(x) -> np.ndarray:
    """Accept numpy arrays, lists and (CPU or CUDA) torch tensors."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _cluster_spans(spike_steps, t_in_steps: int) -> list[tuple[int, int]]:
    """(first_step, last_step) of each cluster, by the engine's own rule so plots and loss never disagree."""
    from stca_engine.clusters import cluster_spans

    return [(int(a), int(b)) for a, b, _ in cluster_spans(np.asarray(spike_steps, dtype=np.int64), int(t_in_steps))]


def _axis_refs(row: int) -> tuple[str, str]:
    suffix = "" if row == 1 else str(row)
    return f"x{suffix}", f"y{suffix}"


def _add_span(fig, row, x0, x1, *, kind, color, name, legend_shown: set, full=True):
    """A shaded time span on one subplot row. The shape's ``name`` is its legend label ("spike cluster",
    "true event"); only the first shape of each kind shows in the legend."""
    xref, yref = _axis_refs(row)
    y0, y1 = (0.0, 1.0) if full else (0.0, 0.08)
    fig.add_shape(
        type="rect",
        xref=xref,
        yref=f"{yref} domain",
        x0=x0,
        x1=x1,
        y0=y0,
        y1=y1,
        fillcolor=color,
        line=dict(width=0),
        layer="below",
        name=name,
        showlegend=kind not in legend_shown,
        legendgroup=kind,
    )
    legend_shown.add(kind)


def _event_fields(ev):
    if isinstance(ev, dict):
        return int(ev["class_index"]), int(ev["onset_step"]), int(ev["offset_step"])
    return int(ev.class_index), int(ev.onset_step), int(ev.offset_step)


def output_traces(
    voltages,
    spikes,
    theta: float,
    dt_ms: float,
    t_in_steps: int,
    class_names: Sequence[str],
    k_star=None,
    sign=None,
    events=None,
    title: str | None = None,
    t0_steps: int = 0,
) -> go.Figure:
    """One row per output neuron on a shared time axis (s): V with the threshold ϑ, its spikes, its spike
    clusters shaded in the class colour, the loss's k⁺ (▲) / k⁻ (▼) point, and the true events of that
    neuron's class as a dark bar along the bottom.

    ``voltages``/``spikes``: ``[T, N]``; ``k_star``: ``[N]`` step (−1 = none); ``sign``: ``[N]`` +1 k⁺, −1 k⁻,
    0 none; ``events``: ``Event``s (or dicts with class_index/onset_step/offset_step). ``t0_steps``: the step of
    row 0 when the arrays are a window of a longer recording (``k_star`` and events stay in absolute steps).
    """
    v = _np(voltages).astype(np.float64)
    s = _np(spikes)
    if v.ndim == 1:
        v, s = v[:, None], s.reshape(-1, 1)
    T, N = v.shape
    if s.shape != v.shape:
        raise ValueError(f"voltages {v.shape} and spikes {s.shape} must have the same [T, N] shape")
    names = [text(n) for n in class_names] + [f"neuron {i}" for i in range(len(class_names), N)]
    t0 = int(t0_steps)
    t = (np.arange(T) + t0) * dt_ms / 1000.0
    k_star = None if k_star is None else _np(k_star).astype(np.int64).ravel() - t0
    sign = None if sign is None else _np(sign).astype(np.int64).ravel()
    events = list(events or [])

    height = 140 + 150 * N
    fig = make_subplots(
        rows=N,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.1, 48.0 / (height - 155)),
        subplot_titles=[f"<b>{names[i]}</b>" for i in range(N)],
    )
    legend_shown: set = set()
    for i in range(N):
        row, color = i + 1, class_color(i)
        spike_steps = np.flatnonzero(s[:, i] > 0)
        for a, b in _cluster_spans(spike_steps, t_in_steps):
            _add_span(
                fig,
                row,
                (a + t0 - 0.5) * dt_ms / 1000,
                (b + t0 + 0.5) * dt_ms / 1000,
                kind="cluster",
                color=rgba(color, 0.22),
                name="spike cluster",
                legend_shown=legend_shown,
            )
        for ev in events:
            c, on, off = _event_fields(ev)
            if c == i and off > t0 and on < t0 + T:
                _add_span(
                    fig,
                    row,
                    on * dt_ms / 1000,
                    off * dt_ms / 1000,
                    kind="event",
                    color=EVENT_COLOR,
                    name="true event",
                    legend_shown=legend_shown,
                    full=False,
                )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=v[:, i],
                mode="lines",
                line=dict(color=color, width=2),
                name="V",
                legendgroup="V",
                showlegend=(i == 0),
                hovertemplate=f"{names[i]}<br>t=%{{x:.3f}} s<br>V=%{{y:.3f}}<extra></extra>",
            ),
            row=row,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=[t[0], t[-1]] if T else [],
                y=[theta, theta],
                mode="lines",
                name="ϑ threshold",
                legendgroup="theta",
                line=dict(color=THETA_COLOR, width=1.5, dash="dash"),
                showlegend=(i == 0),
                hoverinfo="skip",
            ),
            row=row,
            col=1,
        )
        if spike_steps.size:
            fig.add_trace(
                go.Scatter(
                    x=t[spike_steps],
                    y=v[spike_steps, i],
                    mode="markers",
                    name="spikes",
                    legendgroup="spikes",
                    marker=dict(symbol="line-ns-open", size=11, color="rgba(0,0,0,0.7)", line=dict(width=1.5)),
                    showlegend="spikes" not in legend_shown,
                    hovertemplate=f"{names[i]} spike<br>t=%{{x:.3f}} s<extra></extra>",
                ),
                row=row,
                col=1,
            )
            legend_shown.add("spikes")
        if k_star is not None and sign is not None and i < k_star.size and 0 <= k_star[i] < T and sign[i] != 0:
            k = int(k_star[i])
            plus = sign[i] > 0
            label = "k⁺" if plus else "k⁻"
            why = "loss pushes V up to ϑ (one more cluster)" if plus else "loss pushes V down (one cluster fewer)"
            fig.add_trace(
                go.Scatter(
                    x=[t[k]],
                    y=[v[k, i]],
                    mode="markers",
                    name=label,
                    legendgroup=label,
                    marker=dict(
                        symbol="triangle-up" if plus else "triangle-down",
                        size=18,
                        color=K_PLUS_COLOR if plus else K_MINUS_COLOR,
                        line=dict(width=1.5, color="white"),
                    ),
                    showlegend=label not in legend_shown,
                    hovertemplate=f"{label} for {names[i]}<br>step {k + t0} (t=%{{x:.3f}} s)<br>V=%{{y:.3f}}<br>{why}<extra></extra>",
                ),
                row=row,
                col=1,
            )
            legend_shown.add(label)
        fig.update_yaxes(title_text="V", row=row, col=1)
    fig.update_xaxes(title_text="time (s)", row=N, col=1)
    finish(fig, uirevision="output_traces", title=title, height=height)
    # the legend sits at the very top of the figure, clear of the first subplot's title
    fig.update_layout(
        margin=dict(t=130 if title else 95), legend=dict(yref="container", y=1.0, yanchor="top", x=1.0, xanchor="right")
    )
    return fig


def _input_lists(input_spike_times):
    """Per-afferent step arrays from a list of arrays, a ``(times, units)`` pair or a SpikeTrain."""
    if input_spike_times is None:
        return None
    if hasattr(input_spike_times, "units") and hasattr(input_spike_times, "times"):
        tt, uu, n = _np(input_spike_times.times), _np(input_spike_times.units), int(input_spike_times.n_units)
        return [tt[uu == j] for j in range(n)]
    return [_np(a).astype(np.int64).ravel() for a in input_spike_times]


def neuron_traces(
    m,
    s,
    e,
    v,
    spikes,
    theta: float,
    dt_ms: float,
    t_in_steps: int,
    input_spike_times=None,
    k_plus=None,
    k_minus=None,
    v_after=None,
) -> go.Figure:
    """The paper's Fig. 1 for one C-LIF neuron: input raster, the two PSP traces M and S, the reset trace E,
    and V = M − S − E with ϑ, spikes, shaded clusters, k⁺/k⁻ and, if given, V after one STCA update.

    All traces are ``[T]``; ``input_spike_times`` is one step array per afferent (or ``(times, units)`` or a
    ``SpikeTrain``); ``k_plus``/``k_minus`` are step indices or None.
    """
    m, s_, e, v = (_np(a).astype(np.float64).ravel() for a in (m, s, e, v))
    o = _np(spikes).ravel()
    T = v.size
    t = np.arange(T) * dt_ms / 1000.0
    inputs = _input_lists(input_spike_times)
    rows = ["input spikes", "PSP traces M and S", "reset trace E", "membrane potential V = M − S − E"]
    if inputs is None:
        rows = rows[1:]
    heights = [0.22, 0.22, 0.16, 0.40] if inputs is not None else [0.3, 0.2, 0.5]
    fig = make_subplots(
        rows=len(rows),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=[f"<b>{r}</b>" for r in rows],
        row_heights=heights,
    )
    r = 1
    if inputs is not None:
        xs = np.concatenate([a for a in inputs]) if inputs else np.zeros(0)
        ys = np.concatenate([np.full(a.size, j) for j, a in enumerate(inputs)]) if inputs else np.zeros(0)
        fig.add_trace(
            go.Scatter(
                x=xs * dt_ms / 1000.0,
                y=ys,
                mode="markers",
                name="input spikes",
                showlegend=False,
                marker=dict(symbol="line-ns-open", size=9, color=PALETTE[0], line=dict(width=2, color=PALETTE[0])),
                hovertemplate="afferent %{y}<br>t=%{x:.3f} s<extra></extra>",
            ),
            row=r,
            col=1,
        )
        fig.update_yaxes(title_text="afferent", range=[-0.7, max(len(inputs), 1) - 0.3], row=r, col=1)
        r += 1
    fig.add_trace(
        go.Scatter(
            x=t,
            y=m,
            mode="lines",
            name="M",
            line=dict(color=PALETTE[0], width=2),
            hovertemplate="t=%{x:.3f} s<br>M=%{y:.3f}<extra></extra>",
        ),
        row=r,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=t,
            y=s_,
            mode="lines",
            name="S",
            line=dict(color=PALETTE[1], width=2, dash="dot"),
            hovertemplate="t=%{x:.3f} s<br>S=%{y:.3f}<extra></extra>",
        ),
        row=r,
        col=1,
    )
    fig.update_yaxes(title_text="M, S", row=r, col=1)
    r += 1
    fig.add_trace(
        go.Scatter(
            x=t,
            y=e,
            mode="lines",
            name="E (reset)",
            line=dict(color=PALETTE[4], width=2),
            hovertemplate="t=%{x:.3f} s<br>E=%{y:.3f}<extra></extra>",
        ),
        row=r,
        col=1,
    )
    fig.update_yaxes(title_text="E", row=r, col=1)
    r += 1
    legend_shown: set = set()
    spike_steps = np.flatnonzero(o > 0)
    for a, b in _cluster_spans(spike_steps, t_in_steps):
        _add_span(
            fig,
            r,
            (a - 0.5) * dt_ms / 1000,
            (b + 0.5) * dt_ms / 1000,
            kind="cluster",
            color=rgba(PALETTE[0], 0.18),
            name="spike cluster",
            legend_shown=legend_shown,
        )
    fig.add_trace(
        go.Scatter(
            x=t,
            y=v,
            mode="lines",
            name="V" if v_after is None else "V before update",
            line=dict(color="#222222", width=2.2),
            hovertemplate="t=%{x:.3f} s<br>V=%{y:.3f}<extra></extra>",
        ),
        row=r,
        col=1,
    )
    if v_after is not None:
        va = _np(v_after).astype(np.float64).ravel()
        fig.add_trace(
            go.Scatter(
                x=t[: va.size],
                y=va,
                mode="lines",
                name="V after update",
                line=dict(color=PALETTE[3], width=2.2, dash="dash"),
                hovertemplate="t=%{x:.3f} s<br>V after=%{y:.3f}<extra></extra>",
            ),
            row=r,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=[t[0], t[-1]] if T else [],
            y=[theta, theta],
            mode="lines",
            name="ϑ threshold",
            line=dict(color=THETA_COLOR, width=1.5, dash="dash"),
            hoverinfo="skip",
        ),
        row=r,
        col=1,
    )
    if spike_steps.size:
        fig.add_trace(
            go.Scatter(
                x=t[spike_steps],
                y=v[spike_steps],
                mode="markers",
                name="spikes",
                marker=dict(symbol="line-ns-open", size=14, color="black", line=dict(width=2.5, color="black")),
                hovertemplate="spike<br>t=%{x:.3f} s<extra></extra>",
            ),
            row=r,
            col=1,
        )
    for k, label, sym, col, why in (
        (k_plus, "k⁺", "triangle-up", K_PLUS_COLOR, "raise V here to ϑ → one more cluster"),
        (k_minus, "k⁻", "triangle-down", K_MINUS_COLOR, "lower V here below ϑ → one cluster fewer"),
    ):
        if k is not None and int(k) >= 0:
            k = int(k)
            fig.add_trace(
                go.Scatter(
                    x=[t[k]],
                    y=[v[k]],
                    mode="markers",
                    name=label,
                    marker=dict(symbol=sym, size=20, color=col, line=dict(width=1.5, color="white")),
                    hovertemplate=f"{label}: step {k} (t=%{{x:.3f}} s)<br>V=%{{y:.3f}}<br>{why}<extra></extra>",
                ),
                row=r,
                col=1,
            )
    fig.update_yaxes(title_text="V", row=r, col=1)
    fig.update_xaxes(title_text="time (s)", row=r, col=1)
    finish(fig, uirevision="neuron_traces", height=800 if inputs is not None else 660)
    fig.update_layout(
        margin=dict(t=120),  # the two-row legend at the very top, clear of the first subplot title
        legend=dict(yref="container", y=1.0, yanchor="top", x=1.0, xanchor="right"),
    )
    return fig
