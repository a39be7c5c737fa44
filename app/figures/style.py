"""One look for every figure: large fonts for a classroom projector, a clean white template and a
colour-blind-safe palette (Okabe–Ito, extended with Paul Tol's muted set for up to 14 classes)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

# Okabe & Ito (2008) without yellow/black first, then Tol "muted" colours that stay distinct from them.
PALETTE = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#882255",
    "#117733",
    "#332288",
    "#999933",
    "#AA4499",
    "#44AA99",
    "#DDCC77",
    "#661100",
]
K_PLUS_COLOR = "#009E73"  # bluish green: "push V up"
K_MINUS_COLOR = "#D55E00"  # vermilion: "push V down"
THETA_COLOR = "#444444"
EVENT_COLOR = "rgba(60,60,60,0.55)"
FONT_SIZE = 16
TITLE_SIZE = 20
TEMPLATE = "plotly_white"


def class_color(i: int) -> str:
    """Colour of class / output neuron ``i`` (cycles after 14)."""
    return PALETTE[int(i) % len(PALETTE)]


def rgba(hex_color: str, alpha: float) -> str:
    """``#RRGGBB`` → ``rgba(r,g,b,alpha)`` for translucent fills."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[k : k + 2], 16) for k in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def text(s) -> str:
    """User text (class names, file names) for Plotly to show literally. Plotly reads a small HTML subset
    in titles, labels, legends and hovers (``<a href>`` makes a clickable link, ``<b>``, ``<br>``), so
    ``&``, ``<`` and ``>`` become entities, which Plotly draws as the characters themselves."""
    return html.escape(str(s), quote=False)


def class_label(c, class_names: Sequence[str] | None) -> str:
    """The class's name as figure text (escaped: class names come from users' folders and files)."""
    if isinstance(c, (int, np.integer)):
        return text(class_names[int(c)]) if class_names is not None and 0 <= int(c) < len(class_names) else f"class {c}"
    return text(c)


def finish(
    fig: go.Figure, *, uirevision: str, title: str | None = None, height: int | None = None, legend: bool = True
) -> go.Figure:
    """Apply the shared layout: template, fonts ≥ 14, hover font, legend on top, constant ``uirevision``
    so that a user's zoom survives when the page redraws the figure with new data. ``title`` is plain
    text (it often names a user's file), never markup."""
    fig.update_layout(
        template=TEMPLATE,
        font=dict(size=FONT_SIZE, family="Inter, Segoe UI, Helvetica, Arial, sans-serif"),
        title=dict(text=text(title), font=dict(size=TITLE_SIZE), x=0.0, xanchor="left") if title else None,
        hoverlabel=dict(font_size=15),
        uirevision=uirevision,
        showlegend=legend,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1.0, font=dict(size=15)),
        margin=dict(l=70, r=20, t=80 if title else 50, b=55),
    )
    if height is not None:
        fig.update_layout(height=int(height))
    fig.update_annotations(font_size=FONT_SIZE)  # subplot titles
    fig.update_xaxes(tickfont=dict(size=14), title_font=dict(size=FONT_SIZE), showgrid=True, zeroline=False)
    fig.update_yaxes(tickfont=dict(size=14), title_font=dict(size=FONT_SIZE), zeroline=False)
    return fig
