"""The Train page's credit-assignment view: where the error of one sample goes, epoch by epoch.

UI only: the numbers come from ``EngineRunner.credit_at`` (the engine's backward kernels, equal to
autograd) and ``EngineRunner.weight_change``; the figures from ``figures.credit``.
"""

from __future__ import annotations

import streamlit as st
from figures.credit import credit_heatmap, output_credit, weight_change_heatmap

from stca_engine.encoders import afferent_labels

from . import plot

CAPTION_HIDDEN = (
    "**The error in the hidden layer.** Each row is a hidden neuron, time runs left to right. The loss "
    "touches each output neuron at one moment only (its k⁺ ▲ or k⁻ ▼, dotted lines). Back-propagation "
    "carries that error backwards in time and down into the neurons that fired, or nearly fired, just "
    "before it (circles: their spikes). Red: the update will raise that neuron's voltage there; blue: "
    "lower it. Coloured bands: where the sounds really are."
)
CAPTION_OUTPUT = (
    "**The error at the output.** Top: each output neuron's voltage; bottom: its ∂L/∂V. The error enters "
    "at k* and spreads a little further back wherever the voltage came close to the threshold."
)
CAPTION_WEIGHTS = (
    "**What the epoch changed.** Each cell is one weight: from an input (x axis: for sound, a frequency "
    "band and a loudness level, level 1 the loudest) to a neuron (y axis). Red: the epoch made it "
    "stronger; blue: weaker. A neuron's red inputs are the sounds it is learning to respond to."
)


def layer_names(n_layers: int) -> list[str]:
    """``input → hidden 1``, ``hidden 1 → hidden 2``, …, ``hidden k → output`` (or ``input → output``)."""
    ends = [f"hidden {i + 1}" for i in range(n_layers - 1)] + ["output"]
    starts = ["input"] + ends[:-1]
    return [f"{a} → {b}" for a, b in zip(starts, ends)]


def _neuron_names(layer: int, n_layers: int, class_names) -> list[str] | None:
    return list(class_names) if layer == n_layers - 1 else None


def credit_view(worker, labels, names: dict, epoch: int, index: int, class_names, theta: float, info: dict, cached):
    """Draw the view for the probe sample ``index`` after ``epoch`` for each run in ``labels`` (side by
    side when two objectives are compared). ``cached(key, build)`` memoises figures across reruns."""
    head, switch = st.columns([4, 1])
    head.subheader("Where the error goes")
    if not switch.toggle(
        "Show",
        value=True,
        key="train.show_credit",
        help="Drawing these maps takes about 0.3 s per epoch on a 2-core machine: switch them off to let "
        "the rest of the page keep up with a fast run.",
    ):
        return
    st.markdown(
        "STCA stands for *spatio-temporal credit assignment*: after each epoch, this is how the loss of the "
        "probe sample would be shared out, in time and across neurons, by the next update."
    )
    cols = st.columns(len(labels))
    credits = {}
    for col, lb in zip(cols, labels):
        runner = worker.runner(lb)
        cm = cached(("credit", lb, epoch, index), lambda runner=runner: runner.credit_at(epoch, index))
        credits[lb] = cm
        with col:
            st.markdown(f"**{names[lb]}** · epoch {epoch} · loss of this sample **{cm.loss:.3f}**" if cm else "")
            if cm is None:
                st.info("The weights of this epoch are no longer kept.")
                continue
            layer = cm.n_layers - 2 if cm.n_layers > 1 else cm.n_layers - 1
            fig = cached(
                ("credit.hidden", lb, epoch, index),
                lambda cm=cm, layer=layer, lb=lb: credit_heatmap(
                    cm.dV[layer],
                    cm.dt_ms,
                    k_star=cm.k_star,
                    sign=cm.sign,
                    class_names=class_names,
                    events=cm.events,
                    spikes=cm.spikes[layer],
                    title=f"∂L/∂V of {'hidden layer ' + str(layer + 1) if layer < cm.n_layers - 1 else 'the output'}",
                    unit_label="hidden neuron" if layer < cm.n_layers - 1 else "output neuron",
                    uirevision=f"train.credit.hidden.{lb}",
                ),
            )
            plot(fig, key=f"train.credit.hidden.{lb}")
            fig = cached(
                ("credit.output", lb, epoch, index),
                lambda cm=cm, lb=lb: output_credit(
                    cm.output_voltage,
                    cm.dV[-1],
                    theta,
                    cm.dt_ms,
                    class_names,
                    k_star=cm.k_star,
                    sign=cm.sign,
                    uirevision=f"train.credit.output.{lb}",
                ),
            )
            plot(fig, key=f"train.credit.output.{lb}")
    st.caption(CAPTION_HIDDEN)
    st.caption(CAPTION_OUTPUT)

    any_cm = next((c for c in credits.values() if c is not None), None)
    if any_cm is None:
        return
    layers = layer_names(any_cm.n_layers)
    pick = st.selectbox(
        "Weight change of layer",
        list(range(len(layers))),
        format_func=lambda i: layers[i],
        key="train.credit_layer",
    )
    afferents = (
        cached(("afferents",), lambda: afferent_labels(info.get("encoder_settings"), int(info.get("n_inputs") or 0)))
        if pick == 0
        else None
    )
    cols = st.columns(len(labels))
    for col, lb in zip(cols, labels):
        runner = worker.runner(lb)
        change = cached(("dW", lb, epoch), lambda runner=runner: runner.weight_change(epoch))
        with col:
            if change is None:
                st.info("The weights before this epoch are no longer kept.")
                continue
            dws, since = change
            span = f"epoch {epoch}" if since == epoch - 1 else f"epochs {since + 1}–{epoch}"
            fig = cached(
                ("dW.fig", lb, epoch, pick),
                lambda dws=dws, span=span, lb=lb: weight_change_heatmap(
                    dws[pick],
                    afferent_names=afferents,
                    neuron_names=_neuron_names(pick, len(dws), class_names),
                    title=f"ΔW {layers[pick]} in {span} ({names[lb]})",
                    uirevision=f"train.credit.dw.{lb}.{pick}",
                ),
            )
            plot(fig, key=f"train.credit.dw.{lb}")
    st.caption(CAPTION_WEIGHTS)
