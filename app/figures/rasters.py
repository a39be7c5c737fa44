"""Spike rasters: WebGL (``go.Scattergl``) so tens of thousands of spikes stay smooth, SVG for a few."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .style import class_color, class_label, finish, rgba
from .traces import _event_fields, _np


def event_layout(events, dt_ms: float, class_names: Sequence[str] | None) -> tuple[list[dict], list[dict]]:
    """Class-coloured spans with the class name on top, where the true sound events are: ``(shapes,
    annotations)`` as layout dicts, for figures assembled in one ``go.Figure`` call."""
    shapes, notes = [], []
    for ev in events or []:
        c, on, off = _event_fields(ev)
        color = class_color(c)
        shapes.append(
            dict(
                type="rect",
                xref="x",
                yref="y domain",
                x0=on * dt_ms / 1000,
                x1=off * dt_ms / 1000,
                y0=0,
                y1=1,
                fillcolor=rgba(color, 0.16),
                line=dict(width=1, color=color),
                layer="below",
                name="true event",
            )
        )
        notes.append(
            dict(
                x=(on + off) / 2 * dt_ms / 1000,
                y=1.0,
                xref="x",
                yref="y domain",
                yanchor="bottom",
                text=f"<b>{class_label(int(c), class_names)}</b>",
                showarrow=False,
                font=dict(color=color, size=15),
            )
        )
    return shapes, notes


def _event_shapes(fig: go.Figure, events, dt_ms: float, class_names: Sequence[str] | None):
    """``event_layout`` added to an existing figure."""
    shapes, notes = event_layout(events, dt_ms, class_names)
    if shapes:
        fig.update_layout(shapes=[*fig.layout.shapes, *shapes], annotations=[*fig.layout.annotations, *notes])


# Up to this many spikes a raster is drawn as SVG: starting a WebGL context costs the browser ~0.1 s even
# for a handful of dots (measured in headless Chromium), while SVG stays cheaper below a few thousand.
SVG_MAX_SPIKES = 3000


def spike_raster(
    times,
    units,
    n_units: int,
    dt_ms: float,
    title: str | None = None,
    events=None,
    class_names: Sequence[str] | None = None,
    unit_label: str = "afferent",
    uirevision: str = "spike_raster",
    n_steps: int | None = None,
) -> go.Figure:
    """A raster: one dot per spike at (time in s, unit). ``times`` are steps; ``events`` (``Event`` or dicts
    with class_index/onset_step/offset_step) shade the true event spans in their class colour; ``n_steps``
    fixes the time axis to the whole recording (silence included) instead of the span of the spikes."""
    times = _np(times).astype(np.int64).ravel()
    units = _np(units).astype(np.int64).ravel()
    if times.shape != units.shape:
        raise ValueError(f"times {times.shape} and units {units.shape} must have the same length")
    n = times.size
    trace = go.Scatter if n <= SVG_MAX_SPIKES else go.Scattergl
    fig = go.Figure(
        trace(
            x=times * dt_ms / 1000.0,
            y=units,
            mode="markers",
            name="spikes",
            showlegend=False,
            marker=dict(
                symbol="square", size=4 if n < 20_000 else 3, color="#1f1f1f", opacity=0.85 if n < 20_000 else 0.6
            ),
            hovertemplate=f"t=%{{x:.3f}} s<br>{unit_label} %{{y}}<extra></extra>",
        )
    )
    _event_shapes(fig, events, dt_ms, class_names)
    fig.update_yaxes(title_text=unit_label, range=[-0.5, max(int(n_units), 1) - 0.5])
    fig.update_xaxes(title_text="time (s)")
    if n_steps is not None:
        fig.update_xaxes(range=[0, max(int(n_steps), 1) * dt_ms / 1000.0])
    height = int(min(620, max(300, 140 + 2.2 * n_units)))
    shown = f"{title} · " if title else ""
    return finish(
        fig,
        uirevision=uirevision,
        title=f"{shown}{n:,} spikes on {int(n_units)} {unit_label}s" if title is not None else None,
        height=height,
        legend=False,
    )


def hidden_raster(
    spikes, dt_ms: float, title: str | None = None, events=None, class_names: Sequence[str] | None = None
) -> go.Figure:
    """Raster of one hidden layer from its dense ``[T, N]`` 0/1 spikes (the same style as ``spike_raster``)."""
    s = _np(spikes)
    if s.ndim != 2:
        raise ValueError(f"hidden spikes must be [T, N], got shape {s.shape}")
    t, u = np.nonzero(s > 0)
    return spike_raster(
        t,
        u,
        s.shape[1],
        dt_ms,
        title=title if title is not None else "hidden layer",
        events=events,
        class_names=class_names,
        unit_label="neuron",
        uirevision="hidden_raster",
        n_steps=s.shape[0],
    )
