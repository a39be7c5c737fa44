"""The Train page's live part: one fragment that follows the run (counter, status, the figures of the
finished epochs, the model line). The page calls ``live(model_box)`` as a fragment and ``settled_key``
to know when a full rerun is due; everything here reads the run from ``st.session_state["train.run"]``."""

from __future__ import annotations

import time

import engine_runs as er
import figures as se_figs  # app/figures: pure plotly builders
import models_ui
import numpy as np
import streamlit as st
import training_worker as tw

from components import plain, plot
from components.credit_view import credit_view

ss = st.session_state
REDRAW_MIN_S = 1.0  # while epochs come faster, the figures redraw at most this often (see _view_snapshot)
POLL_S = 0.25  # a poll that finds nothing new costs the browser nothing: unchanged elements are not redrawn


def current_run():
    """This session's run (worker, settings, published epoch), or None."""
    return ss.get("train.run")


def _fig(key, build):
    """Figures are rebuilt only when their inputs change (the live fragment reruns on every poll)."""
    cache = ss.setdefault("train.figcache", {})
    if key not in cache:
        if len(cache) > 48:
            cache.clear()
        cache[key] = build()
    return cache[key]


def _records(reports):
    return [r.summary() for r in reports]


def _weight_records(reports, n_layers):
    names = [f"input → hidden {i + 1}" if i == 0 else f"hidden {i} → hidden {i + 1}" for i in range(n_layers - 1)] + [
        "→ output"
    ]
    out = []
    for r in reports:
        out.append(
            {
                "epoch": r.epoch,
                "layers": [
                    dict(
                        name=names[w.layer] if w.layer < len(names) else f"layer {w.layer + 1}",
                        mean=w.mean,
                        std=w.std,
                        min=w.min,
                        max=w.max,
                    )
                    for w in r.weights
                ],
            }
        )
    return out


def _probe_table(probe, class_names, task, objective):
    """Per output neuron: wanted vs. fired clusters and what the loss does (for the students); the loss's
    own verdicts (k*, sign, no admissible k⁺) come with the probe from the engine."""
    n = probe.voltages.shape[1]
    n_o = probe.spikes.sum(axis=0).astype(int) if objective == "tdp1" else probe.n_clusters
    if task == "detect":
        wanted = np.asarray(probe.target).astype(int)
    else:
        wanted = np.array([1 if i == int(probe.target) else 0 for i in range(n)])
    no_kplus = np.asarray(probe.no_kplus, dtype=bool)
    rows = []
    for i in range(n):
        k, sg = int(probe.k_star[i]), int(probe.sign[i])
        if sg > 0:
            what = f"▲ k⁺ at {k * probe.dt_ms / 1000:.2f} s: push V up"
        elif sg < 0:
            what = f"▼ k⁻ at {k * probe.dt_ms / 1000:.2f} s: push V down"
        elif i < no_kplus.size and no_kplus[i]:
            what = "⚠ needs k⁺ but no step qualifies"
        else:
            what = "✓ no loss"
        rows.append(
            {
                "neuron": class_names[i] if i < len(class_names) else f"neuron {i}",
                "wanted": int(wanted[i]),
                "fired": int(n_o[i]),
                "loss": what,
            }
        )
    return rows


def _probe_for(run, label, epoch, index, reports):
    """The epoch's own report when it probed this sample, else a replay from the kept weights."""
    rep = reports[epoch - 1]
    if rep.probe is not None and rep.probe.index == index:
        return rep.probe
    key = ("probe", label, epoch, index)
    cache = ss.setdefault("train.figcache", {})
    if key not in cache:
        runner = run["worker"].runner(label)
        cache[key] = runner.probe_at(epoch, index) if runner is not None else None
    return cache[key] or rep.probe


def _publish_model(run, snap):
    """Hand the newest weights of the main run to the Detect page (a copy; training goes on)."""
    if snap.epoch <= run["published"] or not snap.labels:
        return
    label = snap.labels[0]
    runner = run["worker"].runner(label)
    weights = run["worker"].model(label)
    if runner is None or weights is None:
        return
    s = run["settings"]
    ss[models_ui.SESSION_KEY] = models_ui.make_model(
        runner.build_net(weights),
        runner.neuron_cfg,
        snap.info.get("class_names", []),
        snap.info.get("encoder_settings", {}),
        s.task,
        runner.objective,
        train_config=runner.trainer.cfg,
        epochs_trained=snap.epoch,
        source="train page",
    )
    run["published"] = snap.epoch


def settled_key(snap):
    """What the rest of the page (buttons, sidebar) depends on: a full rerun happens only when this changes;
    a new epoch alone redraws the live fragment only."""
    settled = snap.finished or (snap.status == tw.PAUSED and not snap.wants_run)
    return (settled, snap.status if settled else None)


STATUS_TEXT = {
    tw.IDLE: "ready",
    tw.PREPARING: "encoding the datasets…",
    tw.RUNNING: "training…",
    tw.PAUSED: "paused",
    tw.DONE: "finished",
    tw.STOPPED: "stopped",
    tw.ERROR: "stopped with an error",
}


def live(model_box):
    """The part of the page that follows the run: polled every ``POLL_S`` while a run is alive. It tells the
    worker the page is still open, draws the status and, from the finished epochs, the live view; the
    browser redraws only elements whose content changed, so a poll between epochs is nearly free. The rest
    of the page reruns only when the run settles (the buttons change)."""
    run = current_run()
    snap = ticker(run) if run is not None else None
    if snap is not None:
        _data_summary(snap.info)
    if snap is not None and snap.epoch > 0:
        live_view(run, _view_snapshot(run, snap))
    else:
        _empty_curves()
    models_ui.render_model_status(model_box, ss.get(models_ui.SESSION_KEY))


def _view_snapshot(run, snap):
    """The snapshot the figures show: the newest, except while epochs finish faster than
    ``REDRAW_MIN_S`` apart; then the figures keep the last one drawn (the counter above still moves), so
    the browser is never sent a second full redraw while it is still drawing the first."""
    now = time.monotonic()
    held = ss.get("train.view")
    settled = settled_key(snap)[0]
    if (
        held is None
        or held[0] is not run["worker"]
        or settled
        or held[1].epoch == snap.epoch
        or now - held[2] >= REDRAW_MIN_S
    ):
        held = (run["worker"], snap, now if held is None or held[1].epoch != snap.epoch else held[2])
        ss["train.view"] = held
    return held[1]


def _empty_curves():
    """Before the first epoch: the learning curves' empty axes. Besides showing where the curves will grow,
    this makes the browser load its Plotly code with the page instead of at the first epoch, which
    delayed that epoch on screen by seconds."""
    st.subheader("Learning curves")
    plot(_fig(("curves", "empty"), lambda: se_figs.learning_curves(None)), key="train.curves.empty")
    st.caption("Loss and accuracy appear here after the first epoch.")


def ticker(run):
    """Epoch counter, status, progress and messages; returns the snapshot the live view draws."""
    worker = run["worker"]
    worker.heartbeat()
    snap = worker.snapshot()
    head, status_col = st.columns([2, 3])
    head.markdown(f"### Epoch {snap.epoch} / {snap.n_epochs}")
    extra = f" · last epoch took {snap.epoch_seconds:.1f} s" if snap.epoch_seconds else ""
    status_col.markdown(f"**Status:** {STATUS_TEXT[snap.status]}{extra}")
    if snap.status == tw.PREPARING:
        done, total, msg = snap.progress
        st.progress(min(1.0, done / total) if total else 0.0, text=msg or "preparing the data…")
    if snap.status == tw.ERROR:
        st.error(plain(snap.error))
    if snap.status == tw.PAUSED and snap.pause_reason:
        st.info(f"Paused by itself: {plain(snap.pause_reason)}. Press **Resume** to go on.")
    if snap.status == tw.STOPPED and snap.stop_reason and snap.stop_reason != "reset":
        st.warning(f"Training stopped: {plain(snap.stop_reason)}. Press Start for a new run.")
    if ss.get("train.polling") and settled_key(snap) != ss.get("train.settled"):
        st.rerun(scope="app")
    return snap


def _data_summary(info):
    """What the run trains on, and which files were left out (shown from the end of preparation on)."""
    if info.get("summary"):
        st.caption(plain(info["summary"]))
    if info.get("skipped"):
        with st.expander(f"{len(info['skipped'])} file(s) left out", expanded=False):
            st.dataframe(
                {"file": [p for p, _ in info["skipped"]], "reason": [r for _, r in info["skipped"]]},
                hide_index=True,
                key="train.skipped",
            )


def live_view(run, snap):
    """Everything drawn from the finished epochs (at least one)."""
    worker = run["worker"]
    s = run["settings"]
    info = snap.info
    _publish_model(run, snap)
    labels = list(snap.labels)
    names = {lb: er.OBJECTIVE_LABELS.get(lb, lb) for lb in labels}
    class_names = list(info.get("class_names", []))
    ncfg = worker.runner(labels[0]).neuron_cfg
    last = {lb: snap.reports[lb][-1] for lb in labels}

    # headline numbers
    cols = st.columns(4 if len(labels) == 1 else 2 * len(labels))
    for j, lb in enumerate(labels):
        r = last[lb]
        prev = snap.reports[lb][-2] if len(snap.reports[lb]) > 1 else None
        tag = f" ({names[lb]})" if len(labels) > 1 else ""
        cols[j * (4 if len(labels) == 1 else 2)].metric(
            f"Test accuracy{tag}",
            f"{r.test_accuracy:.1%}" if np.isfinite(r.test_accuracy) else "–",
            None
            if prev is None or not np.isfinite(prev.test_accuracy)
            else f"{(r.test_accuracy - prev.test_accuracy) * 100:+.1f} pts",
        )
        cols[j * (4 if len(labels) == 1 else 2) + 1].metric(
            f"Train loss{tag}",
            f"{r.train_loss:.3f}",
            None if prev is None else f"{r.train_loss - prev.train_loss:+.3f}",
            delta_color="inverse",
        )
        if len(labels) == 1:
            cols[2].metric("Mean clusters / neuron", f"{r.mean_clusters:.2f}")
            cols[3].metric(
                "No valid k⁺ (this epoch)",
                f"{r.n_no_kplus}",
                help="(sample, neuron) pairs that needed one more cluster but had no admissible "
                "time point: they gave no loss.",
            )
    for lb in labels:
        silent = getattr(last[lb], "silent_layers", [])
        if silent:
            st.warning(
                f"{names[lb]}: silent {', '.join(silent)} this epoch (no spikes"
                + (
                    "; the output's needed k⁺ found no step whose voltage any weight can move"
                    if "output" in silent
                    else ""
                )
                + (
                    f"). {last[lb].n_revived} silent hidden (sample, neuron) pairs were pushed up to bring it "
                    "back; if it stays silent, try a larger initial weight std or a smaller learning rate."
                    if getattr(last[lb], "n_revived", 0)
                    else "). Try a larger initial weight std or a smaller learning rate."
                ),
                icon="⚠️",
            )

    # learning curves
    st.subheader("Learning curves")
    curves = _fig(
        ("curves", snap.version),
        lambda: se_figs.learning_curves(None, compare={names[lb]: _records(snap.reports[lb]) for lb in labels}),
    )
    left, right = st.columns([3, 1])
    with left:
        plot(curves, key="train.curves")
    right.markdown(
        "**Loss** (left) is what gradient descent lowers: how far each output voltage is from where the "
        "loss wants it at k⁺/k⁻.\n\n**Accuracy** (right): "
        + (
            "a (stream, class) pair counts as right when the neuron fired exactly as many clusters as the class occurs."
            if s.task == "detect"
            else "the class whose neuron fired the most clusters is the answer."
        )
        + " Solid = training data, dashed = unseen test data."
    )

    # epoch replay + probe sample
    st.subheader("Inside the network")
    n_done = snap.epoch
    ctrl1, ctrl2 = st.columns([2, 3])
    probe_set_names = info.get("probe_names") or []
    with ctrl1:
        if probe_set_names:
            if ss.get("train.probe_index", 0) >= len(probe_set_names):
                ss["train.probe_index"] = 0
            idx = st.selectbox(
                "Probe sample (test set)",
                list(range(len(probe_set_names))),
                format_func=lambda i: probe_set_names[i],
                key="train.probe_index",
            )
            for lb in labels:
                runner = worker.runner(lb)
                if runner is not None:
                    runner.set_probe_index(idx)
        else:
            idx = last[labels[0]].probe.index if last[labels[0]].probe is not None else 0
    with ctrl2:
        # Follow = show the newest epoch; off = a slider the user owns. The page never moves that slider
        # itself: a value set by the server can race with the browser echoing the old one.
        if "train.follow" not in ss:
            ss["train.follow"] = True
        follow = st.toggle(
            "Show the latest epoch", key="train.follow", help="Switch off to replay earlier epochs with a slider."
        )
        if follow or snap.n_epochs < 2:
            epoch = n_done
        else:
            if not 1 <= ss.get("train.epoch_view", n_done) <= snap.n_epochs:
                ss["train.epoch_view"] = n_done
            wanted = st.slider(
                "Replay epoch",
                1,
                snap.n_epochs,
                key="train.epoch_view",
                help="Drag to see the network after an earlier epoch.",
            )
            epoch = min(int(wanted), n_done)
            if wanted > n_done:
                st.caption(f"Epoch {wanted} is not trained yet: showing epoch {n_done}.")

    trace_cols = st.columns(len(labels))
    for col, lb in zip(trace_cols, labels):
        probe = _probe_for(run, lb, epoch, idx, snap.reports[lb])
        if probe is None:
            col.info("No probe for this epoch.")
            continue
        with col:
            # the title goes above the figure: in two narrow columns the legend would cover it
            st.markdown(f"**{names[lb]}** · epoch {epoch} · output neurons on *{plain(probe.name)}*")
            fig = _fig(
                ("traces", lb, epoch, probe.index),
                lambda probe=probe: se_figs.output_traces(
                    probe.voltages,
                    probe.spikes,
                    ncfg.theta,
                    probe.dt_ms,
                    ncfg.t_in_steps,
                    class_names,
                    k_star=probe.k_star,
                    sign=probe.sign,
                    events=probe.events,
                    title=None,
                ),
            )
            plot(fig, key=f"train.traces.{lb}")
            rows = _probe_table(probe, class_names, s.task, runner_objective(worker, lb))
            missing = sum(1 for r in rows if r["loss"].startswith("⚠"))
            st.dataframe(rows, hide_index=True, width="stretch")
            st.caption(f"Neurons with no valid k⁺ in this sample: **{missing}**.")
    st.caption(
        "Each row is one output neuron: its voltage V (line), the threshold ϑ (dashed), its spikes (ticks) "
        "and its spike clusters (shaded). Dark bars at the bottom mark where its sound really occurs. "
        "▲ k⁺: the loss raises V here to create a missing cluster. ▼ k⁻: the loss lowers V at the end of "
        "the weakest cluster to remove an extra one. Zoom with the mouse: the zoom stays while training runs."
    )

    raster_col, weight_col = st.columns(2)
    main_probe = _probe_for(run, labels[0], epoch, idx, snap.reports[labels[0]])
    with raster_col:
        if main_probe is not None and main_probe.n_hidden:
            fig = _fig(
                ("raster", labels[0], epoch, main_probe.index),
                lambda: se_figs.spike_raster(
                    main_probe.hidden_times,
                    main_probe.hidden_units,
                    main_probe.n_hidden,
                    main_probe.dt_ms,
                    title=f"hidden layer ({names[labels[0]]})",
                    events=main_probe.events,
                    class_names=class_names,
                    unit_label="neuron",
                    uirevision="train.hidden_raster",
                ),
            )
            plot(fig, key="train.raster")
            st.caption(
                "Spikes of the last hidden layer for the probe sample: the features the output "
                "neurons listen to. Coloured bands: the true events."
            )
        else:
            st.info("This network has no hidden layer.")
    with weight_col:
        n_layers = len(last[labels[0]].weights)
        fig = _fig(
            ("weights", labels[0], snap.version),
            lambda: se_figs.weight_stats(
                _weight_records(snap.reports[labels[0]][:epoch], n_layers),
                title=f"weights per layer: mean ± std ({names[labels[0]]})",
            ),
        )
        plot(fig, key="train.weights")
        st.caption(
            "How the weights move: a band that widens means the layer is learning stronger "
            "positive and negative connections."
        )

    credit_view(worker, labels, names, epoch, idx, class_names, ncfg.theta, info, _fig)


def runner_objective(worker, label):
    r = worker.runner(label)
    return r.objective if r is not None else label
