"""One look for every figure: large fonts for a classroom projector, a clean white template and a
colour-blind-safe palette (Okabe–Ito, extended with Paul Tol's muted set for up to 14 classes)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

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
TEMPLATE = "stca"
FONT_FAMILY = "Inter, Segoe UI, Helvetica, Arial, sans-serif"


def _house_template() -> go.layout.Template:
    """plotly_white with the house fonts, legend and axes built in, and trace defaults only for the trace
    types the app draws: ``finish`` then sets a few per-figure values instead of validating the full
    template and restyling every subplot's axes on each redraw (that took most of a live epoch's
    server time), and each figure sent to the browser is smaller."""
    base = pio.templates["plotly_white"]
    t = go.layout.Template(layout=base.layout)
    for name in ("scatter", "scattergl", "bar", "heatmap"):
        t.data[name] = base.data[name]
    axis = dict(tickfont=dict(size=14), title_font=dict(size=FONT_SIZE), zeroline=False)
    t.layout.update(
        font=dict(size=FONT_SIZE, family=FONT_FAMILY),
        hoverlabel=dict(font_size=15),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1.0, font=dict(size=15)),
        xaxis=dict(axis, showgrid=True),
        yaxis=axis,
        annotationdefaults=dict(font=dict(size=FONT_SIZE)),  # subplot titles
    )
    return t


pio.templates[TEMPLATE] = _house_template()
# every go.Figure() starts from the default template: the house one is a fraction of "plotly"'s size to copy
pio.templates.default = TEMPLATE


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
    """Apply the shared layout: the house template (fonts ≥ 14, hover font, legend on top), constant ``uirevision``
    so that a user's zoom survives when the page redraws the figure with new data. ``title`` is plain
    text (it often names a user's file), never markup."""
    fig.update_layout(
        template=TEMPLATE,
        title=dict(text=text(title), font=dict(size=TITLE_SIZE), x=0.0, xanchor="left") if title else None,
        uirevision=uirevision,
        showlegend=legend,
        margin=dict(l=70, r=20, t=80 if title else 50, b=55),
        **({"height": int(height)} if height is not None else {}),
    )
    return fig
