"""Learning curves and weight statistics over epochs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import PALETTE, finish
from .traces import _np


def _series(records: Sequence[Mapping], key: str) -> tuple[list, list]:
    """(epochs, values) for the records that have a finite value under ``key``."""
    xs, ys = [], []
    for i, r in enumerate(records):
        val = r.get(key) if isinstance(r, Mapping) else getattr(r, key, None)
        ep = r.get("epoch", i + 1) if isinstance(r, Mapping) else getattr(r, "epoch", i + 1)
        if val is not None and np.isfinite(float(val)):
            xs.append(ep)
            ys.append(float(val))
    return xs, ys


def learning_curves(
    history_records: Sequence[Mapping] | None,
    compare: Mapping[str, Sequence[Mapping]] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Two panels, loss and accuracy, over epochs: train solid, test dashed, one colour per run.

    ``history_records``: dicts with epoch/train_loss/test_loss/train_accuracy/test_accuracy (accuracy as a
    fraction 0–1, or a percentage, which is shown as such); ``compare``: more runs by label (e.g. STCA vs TDP1),
    overlaid on the same axes.
    """
    runs: dict[str, Sequence[Mapping]] = {}
    if history_records:
        runs["this run" if compare else "run"] = history_records
    runs.update(compare or {})
    fig = make_subplots(rows=1, cols=2, subplot_titles=["<b>loss</b>", "<b>accuracy</b>"], horizontal_spacing=0.1)
    acc_max = 0.0
    for ri, (label, recs) in enumerate(runs.items()):
        color = PALETTE[ri % len(PALETTE)]
        for col, metric in ((1, "loss"), (2, "accuracy")):
            for split, dash in (("train", "solid"), ("test", "dash")):
                xs, ys = _series(recs, f"{split}_{metric}")
                if not xs:
                    continue
                if metric == "accuracy":
                    acc_max = max(acc_max, max(ys))
                fmt = "%{y:.4f}" if metric == "loss" else "%{y:.3f}"
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines+markers",
                        name=f"{label} · {split}",
                        legendgroup=f"{label}-{split}",
                        showlegend=(col == 1),
                        line=dict(color=color, dash=dash, width=2.5),
                        marker=dict(size=7),
                        hovertemplate=f"{label}, {split} {metric}<br>epoch %{{x}}<br>{fmt}<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="loss", rangemode="tozero", row=1, col=1)
    if acc_max <= 1.0:
        fig.update_yaxes(title_text="accuracy", range=[0, 1.02], tickformat=".0%", row=1, col=2)
    else:
        fig.update_yaxes(title_text="accuracy (%)", range=[0, 102], row=1, col=2)
    return finish(fig, uirevision="learning_curves", title=title, height=420)


def weight_stats_record(epoch: int, weights, names: Sequence[str] | None = None) -> dict:
    """``{"epoch", "layers": [{"name", "mean", "std", "min", "max"}]}`` from a list of weight matrices
    (numpy or torch): what ``weight_stats`` plots, cheap enough to store every epoch."""
    layers = []
    for i, w in enumerate(weights):
        a = _np(w).astype(np.float64)
        name = names[i] if names is not None else f"layer {i + 1}"
        layers.append(dict(name=name, mean=float(a.mean()), std=float(a.std()), min=float(a.min()), max=float(a.max())))
    return {"epoch": int(epoch), "layers": layers}


def weight_stats(records: Sequence[Mapping], title: str | None = "weights per layer: mean ± std") -> go.Figure:
    """Per-layer mean weight over epochs with a ±1 std band (records from ``weight_stats_record``)."""
    fig = go.Figure()
    names: list[str] = []
    for r in records:
        for layer in r["layers"]:
            if layer["name"] not in names:
                names.append(layer["name"])
    for li, name in enumerate(names):
        color = PALETTE[li % len(PALETTE)]
        ep, mean, std = [], [], []
        for r in records:
            for layer in r["layers"]:
                if layer["name"] == name:
                    ep.append(r["epoch"])
                    mean.append(layer["mean"])
                    std.append(layer["std"])
        mean, std = np.asarray(mean), np.asarray(std)
        fig.add_trace(
            go.Scatter(
                x=list(ep) + list(ep)[::-1],
                y=list(mean + std) + list((mean - std)[::-1]),
                fill="toself",
                fillcolor=color,
                opacity=0.2,
                line=dict(width=0),
                name=f"{name} ± std",
                legendgroup=name,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=ep,
                y=mean,
                mode="lines+markers",
                name=name,
                legendgroup=name,
                line=dict(color=color, width=2.5),
                customdata=std,
                hovertemplate=f"{name}<br>epoch %{{x}}<br>mean %{{y:.4f}} ± %{{customdata:.4f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="weight")
    return finish(fig, uirevision="weight_stats", title=title, height=380)


def weight_histogram(
    weights, names: Sequence[str] | None = None, title: str | None = "weight distribution", bins: int = 60
) -> go.Figure:
    """Overlaid histograms of each layer's current weights (numpy or torch matrices)."""
    fig = go.Figure()
    for i, w in enumerate(weights):
        a = _np(w).astype(np.float64).ravel()
        name = names[i] if names is not None else f"layer {i + 1}"
        fig.add_trace(
            go.Histogram(
                x=a,
                nbinsx=bins,
                name=name,
                opacity=0.6,
                marker_color=PALETTE[i % len(PALETTE)],
                histnorm="probability density",
                hovertemplate=f"{name}<br>w=%{{x}}<br>density %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="weight")
    fig.update_yaxes(title_text="density")
    return finish(fig, uirevision="weight_histogram", title=title, height=360)
