"""Train: live STCA training with voltage traces, spike clusters and the k⁺/k⁻ points, epoch by epoch.

The page only draws and sends commands. Training runs in this session's ``TrainingWorker`` thread;
one fragment polls it four times a second and draws what changed (figures keep their zoom through
``uirevision``).
Settings live in the URL so a link reopens the same run.
"""

from __future__ import annotations

import time
from dataclasses import replace

import engine_runs as er
import figures as se_figs  # app/figures: pure plotly builders
import models_ui
import numpy as np
import state
import streamlit as st
import training_worker as tw
from components import plain, plot, session_alive_check, setup_page
from components.credit_view import credit_view

from stca_engine import limits as se_limits
from stca_engine import memory as se_memory
from stca_engine.errors import StcaError

setup_page("Train", "🏋️")

ss = st.session_state
K = state.widget_key
REDRAW_MIN_S = 1.0  # while epochs come faster, the figures redraw at most this often (see _view_snapshot)
POLL_S = 0.25  # a poll that finds nothing new costs the browser nothing: unchanged elements are not redrawn

# ---- session init: settings from the URL (once per session) -----------------------------------
if "train.settings" not in ss:
    settings0, url_problems = state.settings_from_query(st.query_params)
    ss["train.settings"] = settings0
    ss["train.url_problems"] = url_problems
    ss[K("classroom")] = state.classroom_from_query(st.query_params)
    ss["train.classroom_saved"] = ss[K("classroom")]
if K("classroom") not in ss:  # widget state is dropped while another page is shown
    ss[K("classroom")] = ss.get("train.classroom_saved", False)
cur: state.TrainSettings = ss["train.settings"]


def _seed_widget(name: str):
    if K(name) not in ss:
        ss[K(name)] = getattr(ss["train.settings"], name)


def _tau_s_follows_tau_m():
    """τm typed: τs becomes τm/4, as when only τm is given to the engine or the CLI (SPEC §2)."""
    ss[K("tau_s_ms")] = float(ss[K("tau_m_ms")]) / 4.0


def _upload_set():
    """The ClipSet this session uploaded or recorded on the Data page (None if there is none)."""
    held = ss.get("data.upload_set")
    return held[1] if held else None


def _use_uploads():
    """The "train on my sounds" switch: data becomes the session's uploads, or goes back to what it was."""
    cur = ss["train.settings"]
    if ss[K("use_uploads")]:
        if cur.data != er.UPLOADS:
            ss["train.data_before_uploads"] = cur.data
        new = er.UPLOADS
    else:
        new = ss.get("train.data_before_uploads", "demo") if cur.data == er.UPLOADS else cur.data
    ss["train.settings"] = replace(cur, data=new, classes="")
    ss[K("data")], ss[K("classes")] = new, ""


def _apply_preset():
    """Preset picked: every setting takes the preset's value (the data source is kept)."""
    name = ss[K("preset")]
    try:
        data = ss["train.settings"].data
        new = replace(state.preset_settings(name), data=data)
        if data == er.UPLOADS:  # a preset's class list names its own data set's classes, not the user's
            new = replace(new, classes="")
    except StcaError as exc:
        ss["train.flash"] = ("error", str(exc))
        return
    ss["train.settings"] = new
    state.write_settings_to_session(ss, new)


# ---- sidebar: device, classroom mode, preset, settings ------------------------------------------
presets = state.load_presets()
with st.sidebar:
    classroom = st.toggle(
        "Classroom mode",
        key=K("classroom"),
        help="Hide the advanced controls: only the preset, task, objective and comparison.",
    )
    ss["train.classroom_saved"] = classroom
    st.header("Run settings")
    _seed_widget("preset")
    if ss[K("preset")] not in presets:
        ss[K("preset")] = next(iter(presets))
    st.selectbox(
        "Preset",
        list(presets),
        key=K("preset"),
        format_func=lambda n: presets[n].label,
        on_change=_apply_preset,
        help="Fills every setting below; you can still change them.",
    )
    st.caption(presets[ss[K("preset")]].description)
    uploads = _upload_set()
    if uploads is not None or cur.data == er.UPLOADS:
        ss[K("use_uploads")] = ss["train.settings"].data == er.UPLOADS
        n_clips = 0 if uploads is None else len(uploads.clips)
        n_classes = 0 if uploads is None else len(uploads.class_names)
        st.toggle(
            f"Train on my sounds ({n_clips} clips, {n_classes} classes)",
            key=K("use_uploads"),
            on_change=_use_uploads,
            help="The sounds uploaded (files or a .zip of class folders) or recorded on the Data page in "
            "this session; they stay on the server only while this session lasts.",
        )
        if cur.data == er.UPLOADS and uploads is None:
            st.warning(er.NO_UPLOADS[0].upper() + er.NO_UPLOADS[1:] + ".")

    values: dict = {}

    def widget(name, options=None, **extra):
        """The setting's widget as ``state.widget_args`` describes it (bounds from FIELD_SPEC)."""
        _seed_widget(name)
        kind, kw = state.widget_args(name, options)
        kw.update(extra)
        values[name] = getattr(st, kind)(key=K(name), **kw)
        return values[name]

    task = widget("task")
    objectives = [o for o in state.OBJECTIVES if task == "classify" or o != "margin"]
    for name in ("objective", "compare_objective"):
        if ss.get(K(name), getattr(cur, name)) not in objectives:
            ss[K(name)] = "stca"
    widget("objective", objectives, help=state.OBJECTIVE_HELP)
    if widget("compare"):
        widget("compare_objective", objectives)
    for name in ("epochs", "regularise", "seed"):
        widget(name)
    if not classroom:
        for title, names in state.SIDEBAR_GROUPS:
            with st.expander(title, expanded=False):
                for name in names:
                    widget(name, **({"on_change": _tau_s_follows_tau_m} if name == "tau_m_ms" else {}))

values["preset"] = ss[K("preset")]
settings, widget_problems = state.settings_from_session({K(k): v for k, v in values.items()}, cur)
ss["train.settings"] = settings

# keep the URL in step with the settings (a teacher shares the address bar)
want_query = state.settings_to_query(settings)
if classroom:
    want_query[state.CLASSROOM_KEY] = "1"
if {k: st.query_params.get(k) for k in st.query_params} != want_query:
    st.query_params.from_dict(want_query)

# ---- header ---------------------------------------------------------------------------------------
st.title("Train")
st.markdown(
    "Train a spiking network and watch it learn. Each **output neuron** stands for one sound class; during "
    "training it should fire one **spike cluster** (a burst of spikes closer than T_in) per occurrence of its "
    "class. After every epoch the loss picks one time point per neuron: **k⁺** where the voltage should rise "
    "(a cluster is missing) or **k⁻** where a cluster should disappear."
)
if not classroom:
    st.caption("The address bar holds these settings: copy it to share this exact run (same data, same seed).")

for p in ss.pop("train.url_problems", []) or []:
    st.warning(f"Link setting ignored — {plain(p)}")  # p quotes the link: shown as plain text
for p in widget_problems:
    st.error(plain(p))
flash = ss.pop("train.flash", None)
if flash:
    getattr(st, flash[0])(plain(flash[1]))


# ---- run control ------------------------------------------------------------------------------------
def _run():
    return ss.get("train.run")


def _new_run_checked(s: state.TrainSettings):
    # a bad value typed into a widget blocks the run (never train silently with the fallback value)
    _, typed_problems = state.settings_from_session(ss, s)
    problems = list(dict.fromkeys([*typed_problems, *er.check_settings(s)]))
    if problems:
        ss["train.flash"] = ("error", " · ".join(problems))
        return None
    try:
        worker = tw.TrainingWorker(
            er.make_engine_setup(s, upload_set=_upload_set() if s.data == er.UPLOADS else None),
            n_epochs=s.epochs,
            heartbeat_timeout_s=tw.heartbeat_timeout_s(),
            idle_pause_s=tw.idle_pause_s(),
            owner_alive=session_alive_check(),
            tab_closed_s=tw.tab_closed_s(),
        )
    except StcaError as exc:
        ss["train.flash"] = ("error", str(exc))
        return None
    run = {"worker": worker, "settings": s, "published": 0}
    ss["train.run"] = run
    ss["train.follow"] = True
    ss["train.figcache"] = {}
    return run


def _on_start():
    run = _run()
    if run is None or run["worker"].snapshot().finished:
        run = _new_run(ss["train.settings"])
    if run is not None:
        run["worker"].start()


def _on_step():
    run = _run()
    if run is None or run["worker"].snapshot().finished:
        run = _new_run(ss["train.settings"])
    if run is not None:
        run["worker"].step()


def _on_pause():
    run = _run()
    if run is not None:
        run["worker"].pause()


def _on_reset():
    run = ss.pop("train.run", None)
    if run is not None:
        run["worker"].stop("reset")
    for k in ("train.figcache", "train.probe_index", "train.view"):
        ss.pop(k, None)
    ss["train.follow"] = True


def _planned_estimate(s: state.TrainSettings):
    """(estimate or None, problem or None) of a run with these settings, before Start (the source's
    listing is read once per data/classes/seed and kept in the session)."""
    key = (s.data, s.classes, s.seed, id(_upload_set()) if s.data == er.UPLOADS else None)
    outlines = ss.setdefault("train.outline", {})
    if key not in outlines:
        try:
            outlines.clear()
            outlines[key] = er.source_outline(s, _upload_set())
        except StcaError:
            outlines[key] = None  # the source's own error is shown when Start is pressed
    outline = outlines[key]
    if outline is None:
        return None, None
    try:
        est = er.planned_estimate(s, outline["longest_clip_s"], outline["n_inputs"], outline["n_classes"])
        se_memory.check_run(est, "training run")
        return est, None
    except StcaError as exc:
        return None, str(exc)


def _new_run(s: state.TrainSettings):
    _, too_big = _planned_estimate(s)
    if too_big:
        ss["train.flash"] = ("error", too_big)
        return None
    return _new_run_checked(s)


run = _run()
snap = run["worker"].snapshot() if run else None
running = bool(snap and snap.status in (tw.PREPARING, tw.RUNNING) and snap.wants_run)
estimate, too_big = _planned_estimate(settings) if run is None or snap.finished else (None, None)
if too_big:
    st.error(plain(too_big))
elif estimate is not None:
    st.caption(
        f"Estimated memory of this run: {plain(estimate.describe())} — the server's limit is "
        f"{se_limits.max_run_mb():g} MB ({se_limits.ENV_MAX_RUN_MB})."
    )
c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 1, 3])
c1.button(
    "Resume" if snap is not None and snap.status == tw.PAUSED else "Start",
    icon=":material/play_arrow:",
    on_click=_on_start,
    type="primary",
    width="stretch",
    key="train.btn_start",
    disabled=running or bool(too_big),
)
c2.button(
    "Pause", icon=":material/pause:", on_click=_on_pause, width="stretch", key="train.btn_pause", disabled=not running
)
c3.button(
    "Step",
    icon=":material/skip_next:",
    on_click=_on_step,
    width="stretch",
    key="train.btn_step",
    disabled=running or bool(too_big),
    help="Train exactly one epoch, then pause.",
)
c4.button(
    "Reset",
    icon=":material/restart_alt:",
    on_click=_on_reset,
    width="stretch",
    key="train.btn_reset",
    disabled=run is None,
)
if run is not None and run["settings"] != settings:
    c5.info("Settings changed since this run started: **Reset** to train with the new ones.")
if run is None:
    st.info(
        "Press **Start** to train (or **Step** for one epoch at a time). "
        + (f"Preset: {presets[settings.preset].label}." if settings.preset in presets else "")
    )


# ---- live view --------------------------------------------------------------------------------------
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


def _settled_key(snap):
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
    run = _run()
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
    settled = _settled_key(snap)[0]
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
    if ss.get("train.polling") and _settled_key(snap) != ss.get("train.settled"):
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


# the ticker polls while a run can still change (also while paused: it is the page's heartbeat)
run = _run()
snap = run["worker"].snapshot() if run else None
ss["train.polling"] = bool(snap is not None and not snap.finished)
ss["train.settled"] = _settled_key(snap) if snap is not None else None
live_box = st.container()
st.divider()
st.subheader("Model")
model_box = st.container()
models_ui.render_models_panel(
    st, default_name=f"{settings.preset}-{settings.objective}-seed{settings.seed}", status_line=False
)
with live_box:
    st.fragment(live, run_every=POLL_S if ss["train.polling"] else None)(model_box)
